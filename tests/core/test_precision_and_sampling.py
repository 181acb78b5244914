"""``fisherlab._core.precision`` and ``fisherlab._core.sampling`` against direct constructions.

* precision: inside ``float64()`` (and a function decorated with ``reference``) arrays are
  float64 even when the caller runs with x64 off, and the caller's flag is restored after;
* sampling: ``sample_each`` draws row ``b`` with ``keys[b]`` (checked against the per-example
  kernel called row by row), and ``output_grads`` is the closed-form output gradient at every
  drawn label (softmax minus one-hot for the categorical, ``(f - y) / sigma^2`` for the
  Gaussian), built here with NumPy.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fisherlab import Categorical, Gaussian
from fisherlab._core.precision import float64, reference
from fisherlab._core.sampling import output_grads, sample_each


def test_float64_context_under_x32_and_the_flag_is_restored(x32):
    assert jnp.zeros(2).dtype == jnp.float32
    with float64():
        assert jnp.zeros(2).dtype == jnp.float64
        assert jnp.asarray(1.0).dtype == jnp.float64
    assert jnp.zeros(2).dtype == jnp.float32
    assert not jax.config.jax_enable_x64


def test_reference_decorator_computes_in_float64_and_keeps_the_name(x32):
    @reference
    def third(x):
        """Docstring kept."""
        return jnp.asarray(x) / 3.0

    out = third(1.0)
    assert out.dtype == jnp.float64
    # 1/3 in float64, not the float32 rounding (error 1e-8)
    assert abs(float(out) - 1.0 / 3.0) < 1e-16
    assert third.__name__ == "third" and third.__doc__ == "Docstring kept."
    assert jnp.zeros(1).dtype == jnp.float32


OUTS = np.array([[0.3, -1.2, 2.0], [1.5, 0.1, -0.4]])


@pytest.mark.parametrize("lik", [Categorical(), Gaussian(variance=0.5)], ids=repr)
def test_sample_each_draws_row_b_with_key_b(lik):
    keys = jax.random.split(jax.random.key(3), 2)
    got = np.asarray(sample_each(lik, keys, jnp.asarray(OUTS), 5))
    assert got.shape[:2] == (2, 5)
    for b in range(2):
        np.testing.assert_array_equal(got[b], np.asarray(lik._sample(keys[b], OUTS[b], 5)))
    # the two rows use different keys: not the same draws
    assert not np.array_equal(got[0], got[1])


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def test_output_grads_are_the_closed_form_gradients_at_each_label():
    labels = np.array([[0, 2, 1, 2], [1, 1, 0, 2]])
    got = np.asarray(output_grads(Categorical(), jnp.asarray(OUTS), jnp.asarray(labels)))
    assert got.shape == (2, 4, 3)
    for b in range(2):
        for s in range(4):
            expected = _softmax(OUTS[b]) - np.eye(3)[labels[b, s]]
            np.testing.assert_allclose(got[b, s], expected, rtol=1e-13, atol=1e-15)


def test_output_grads_gaussian_closed_form():
    y = np.arange(2 * 3 * 3, dtype=np.float64).reshape(2, 3, 3) / 7.0
    got = np.asarray(output_grads(Gaussian(variance=0.5), jnp.asarray(OUTS), jnp.asarray(y)))
    np.testing.assert_allclose(got, (OUTS[:, None, :] - y) / 0.5, rtol=1e-14)
