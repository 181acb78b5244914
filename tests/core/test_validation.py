"""The shared input checks: one tracer test, one array coercion, messages that name the argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fisherlab._core.validation import (as_array, as_float_array, check_choice, check_finite,
                                        check_int, check_key, check_scalar, is_tracer)


def test_is_tracer_only_inside_a_trace():
    seen = []
    jax.jit(lambda a: seen.append(is_tracer(a)) or a)(jnp.ones(2))
    jax.vmap(lambda a: seen.append(is_tracer(a)) or a)(jnp.ones(2))
    assert seen == [True, True]
    assert not is_tracer(jnp.ones(2)) and not is_tracer(np.ones(2)) and not is_tracer(1.0)


class _NotArrayLike:
    def __array__(self, *args, **kwargs):
        raise RuntimeError("no")


def test_as_array_names_the_argument():
    with pytest.raises(TypeError, match="weights must be array-like, got _NotArrayLike"):
        as_array(_NotArrayLike(), "weights")
    assert as_array([1, 2], "weights").tolist() == [1, 2]


def test_tracers_pass_through_unchecked():
    def f(a):
        assert as_array(a, "a") is a and as_float_array(a, "a", ndim=1) is a
        check_finite(a, "a")
        assert check_scalar(a[0], "lr", positive=True) is not None
        return a

    jax.jit(f)(jnp.array([jnp.nan, -1.0]))


@pytest.mark.parametrize("value, error, match", [
    (np.array(["a"]), TypeError, "x must be a numeric array, got dtype <U1"),
    (np.array([1j]), TypeError, "x must be real, got dtype complex128"),
    (np.ones((2, 2)), ValueError, r"x must have 1 dimensions, got shape \(2, 2\)"),
    (np.array([1.0, np.inf]), ValueError, r"x must be finite, got inf at index \(1,\)"),
])
def test_as_float_array_rejects(value, error, match):
    with pytest.raises(error, match=match):
        as_float_array(value, "x", ndim=1)


@pytest.mark.parametrize("value, positive, error, match", [
    (True, True, TypeError, "lr must be a real number, got True"),
    ("1", True, TypeError, "lr must be a real number, got '1'"),
    (0.0, True, ValueError, "lr must be a finite number > 0, got 0.0"),
    (-1.0, False, ValueError, "lr must be a finite number >= 0, got -1.0"),
    (float("nan"), False, ValueError, "lr must be a finite number >= 0, got nan"),
])
def test_check_scalar_rejects(value, positive, error, match):
    with pytest.raises(error, match=match):
        check_scalar(value, "lr", positive=positive)


def test_check_scalar_accepts():
    assert check_scalar(np.float32(0.5), "lr", positive=True) == 0.5
    assert check_scalar(0, "damping", positive=False) == 0.0


def test_int_choice_and_key_checks():
    assert check_int(np.int64(3), "n", minimum=1) == 3
    with pytest.raises(TypeError, match="n must be an int, got True"):
        check_int(True, "n")
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        check_int(0, "n", minimum=1)
    with pytest.raises(ValueError, match=r"mode must be one of \['a', 'b'\], got 'c'"):
        check_choice("c", "mode", ("b", "a"))
    with pytest.raises(ValueError, match="key is required for a Monte-Carlo estimate"):
        check_key(None)
    with pytest.raises(TypeError, match="key must be a jax.random key"):
        check_key(np.zeros(3))
    assert check_key(jax.random.key(0)) is not None and check_key(jax.random.PRNGKey(0)) is not None
