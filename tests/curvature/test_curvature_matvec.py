"""Matrix-free products equal their dense matrix times Hypothesis-drawn vectors.

``hvp``/``ggn_vp``/``fisher_vp``/``empirical_fisher_vp`` (JVP + transposed JVP, seed 003
eq. (43)) against ``hessian``/``ggn``/``fisher``/``empirical_fisher`` (chunked Jacobians)
-- different autodiff routes to the same matrix. Vectors are drawn by Hypothesis with a
wide dynamic range; one vector per problem is compared at the relative tolerance
``1e-10 * ||M|| ||v||`` (rounding of two float64 computations with ``O(d)`` terms).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fisherlab as fl
from curvature_cases import num_params, problems

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=64)
PAIRS = {
    "hessian": (fl.hvp, fl.hessian, True),
    "ggn": (fl.ggn_vp, fl.ggn, True),
    "fisher": (fl.fisher_vp, fl.fisher, False),
    "empirical_fisher": (fl.empirical_fisher_vp, fl.empirical_fisher, True),
}


@st.composite
def problem_and_vector(draw):
    problem = draw(problems())
    d = num_params(problem[1])
    v = draw(hnp.arrays(np.float64, (d,), elements=finite))
    return problem, v


@given(problem_and_vector(), st.sampled_from(sorted(PAIRS)), st.sampled_from(["mean", "sum"]))
def test_matvec_equals_dense_matrix_times_vector(pv, kind, reduction):
    (f, params, x, y, lik), v = pv
    vp, dense, needs_y = PAIRS[kind]
    args = (f, params, x, y, lik) if needs_y else (f, params, x, lik)
    mv = vp(*args, reduction=reduction)
    M = np.asarray(dense(*args, reduction=reduction))
    got = np.asarray(mv(jnp.asarray(v)))
    assert got.dtype == np.float64 and got.shape == v.shape
    bound = 1e-10 * np.linalg.norm(M) * np.linalg.norm(v) + 1e-300
    assert np.linalg.norm(got - M @ v) <= bound, (kind, np.linalg.norm(got - M @ v), bound)


@given(problems(), st.integers(0, 2 ** 16), st.integers(0, 3))
def test_matvecs_are_linear_and_jit_compatible(problem, seed, jitted):
    f, params, x, y, lik = problem
    d = num_params(params)
    k1, k2 = jax.random.split(jax.random.key(seed))
    u = jax.random.normal(k1, (d,), jnp.float64)
    w = jax.random.normal(k2, (d,), jnp.float64)
    for i, mv in enumerate((fl.hvp(f, params, x, y, lik), fl.ggn_vp(f, params, x, y, lik),
                            fl.fisher_vp(f, params, x, lik),
                            fl.empirical_fisher_vp(f, params, x, y, lik))):
        lhs = mv(2.0 * u - 3.0 * w)
        rhs = 2.0 * mv(u) - 3.0 * mv(w)
        scale = np.linalg.norm(mv(u)) + np.linalg.norm(mv(w)) + 1e-300
        assert np.linalg.norm(lhs - rhs) <= 1e-12 * 5 * scale
        if i == jitted:  # one jit per example (each jit of a new closure is a compile)
            np.testing.assert_allclose(jax.jit(mv)(u), mv(u), rtol=1e-12, atol=1e-14 * scale)


@given(problem_and_vector(), st.integers(1, 3), st.sampled_from(["mean", "sum"]),
       st.integers(0, 2 ** 16))
def test_fisher_mc_vp_equals_fisher_mc_times_vector_for_the_same_key(pv, S, reduction, seed):
    """Same key, same labels: the matrix-free product (a JVP, the sampled output Fisher
    applied in output space, a transposed JVP) equals the dense estimate (chunked Jacobians,
    J^T hat F_out J) times v."""
    (f, params, x, _, lik), v = pv
    key = jax.random.key(seed)
    M = np.asarray(fl.fisher_mc(f, params, x, lik, key, S, reduction=reduction))
    mv = fl.fisher_mc_vp(f, params, x, lik, key, S, reduction=reduction)
    got = np.asarray(mv(jnp.asarray(v)))
    assert got.dtype == np.float64 and got.shape == v.shape
    bound = 1e-10 * np.linalg.norm(M) * np.linalg.norm(v) + 1e-300
    assert np.linalg.norm(got - M @ v) <= bound, (np.linalg.norm(got - M @ v), bound)
    # a fixed operator: the labels are drawn once, and jit does not redraw them
    np.testing.assert_array_equal(np.asarray(mv(jnp.asarray(v))), got)
    np.testing.assert_allclose(np.asarray(jax.jit(mv)(jnp.asarray(v))), got, rtol=1e-12,
                               atol=1e-14 * (np.linalg.norm(got) + 1e-300))


def test_fisher_mc_vp_converges_to_the_fisher_vector_product():
    """An independent check of the scaling: E[hat F] = F, so with many samples hat F v -> F v
    (Chebyshev: the per-entry standard error decays as 1/sqrt(S))."""
    model = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh(), fl.nn.Dense(3, 3)])
    rng = np.random.default_rng(3)
    params = [(rng.normal(size=(3, 2)), rng.normal(size=3)),
              (rng.normal(size=(3, 3)), rng.normal(size=3))]
    x = rng.normal(size=(2, 2))
    v = rng.normal(size=21)
    exact = np.asarray(fl.fisher_vp(model, params, x, fl.Categorical())(v))
    errs = []
    for S in (100, 10000):
        mv = fl.fisher_mc_vp(model, params, x, fl.Categorical(), jax.random.key(0), S)
        errs.append(np.linalg.norm(np.asarray(mv(v)) - exact) / np.linalg.norm(exact))
    assert errs[1] < 0.05 and errs[1] < errs[0], errs


@pytest.mark.parametrize("kwargs, match", [
    ({"key": None}, "key"),
    ({"num_samples": 0}, "num_samples"),
    ({"reduction": "max"}, "reduction"),
])
def test_fisher_mc_vp_bad_input_names_the_argument(kwargs, match):
    model = fl.nn.Sequential([fl.nn.Dense(2, 2)])
    params = [(np.ones((2, 2)), np.zeros(2))]
    args = dict(key=jax.random.key(0), num_samples=1)
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        fl.fisher_mc_vp(model, params, np.ones((3, 2)), fl.Categorical(), args.pop("key"),
                        args.pop("num_samples"), **args)
    mv = fl.fisher_mc_vp(model, params, np.ones((3, 2)), fl.Categorical(), jax.random.key(0))
    with pytest.raises(ValueError, match="v"):
        mv(np.ones(5))
