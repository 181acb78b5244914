"""Float64 whatever the caller's x64 flag (flag restored), jit-compatibility, ravel order."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fisherlab as fl
from curvature_cases import make_problem


def _all_dense(f, params, x, y, lik):
    key = jax.random.key(0)
    return {
        "hessian": fl.hessian(f, params, x, y, lik),
        "ggn": fl.ggn(f, params, x, y, lik),
        "fisher": fl.fisher(f, params, x, lik),
        "fisher_mc": fl.fisher_mc(f, params, x, lik, key, 2),
        "empirical_fisher": fl.empirical_fisher(f, params, x, y, lik),
        "gradient_covariance": fl.gradient_covariance(f, params, x, y, lik),
        "gradient": fl.gradient(f, params, x, y, lik),
    }


def test_float64_results_with_x64_disabled_and_flag_restored():
    f, params, x, y, lik = make_problem("categorical", seed=0, n=3)
    reference = _all_dense(f, params, x, y, lik)
    v = np.linspace(-1.0, 1.0, reference["gradient"].shape[0])
    with jax.enable_x64(False):
        # the caller's arrays are float32 under this flag
        params32 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), params)
        x32 = np.asarray(x, np.float32)
        got = _all_dense(f, params32, x32, y, lik)
        mv = fl.ggn_vp(f, params32, x32, y, lik)(v)
        assert jax.config.jax_enable_x64 is False
        assert jnp.zeros(1).dtype == jnp.float32
    assert jax.config.jax_enable_x64 is True
    for name, value in got.items():
        assert value.dtype == jnp.float64, name
        # inputs were rounded to float32, so compare at float32 resolution
        np.testing.assert_allclose(value, reference[name], rtol=1e-5, atol=1e-6, err_msg=name)
    assert mv.dtype == jnp.float64
    np.testing.assert_allclose(mv, reference["ggn"] @ v, rtol=1e-5, atol=1e-6)


def test_float64_params_under_x64_disabled_match_exactly():
    f, params, x, y, lik = make_problem("gaussian", seed=1, n=3)
    expected = fl.ggn(f, params, x, y, lik)
    with jax.enable_x64(False):
        got = fl.ggn(f, params, np.asarray(x), np.asarray(y), lik)
    np.testing.assert_allclose(got, expected, rtol=1e-14, atol=0)


@pytest.mark.parametrize("family", ["categorical", "gaussian_mean_variance"])
def test_jit_compatible(family):
    f, params, x, y, lik = make_problem(family, seed=2, n=4)
    key = jax.random.key(3)
    eager = _all_dense(f, params, x, y, lik)
    jitted = jax.jit(lambda p, x, y, k: {
        "hessian": fl.hessian(f, p, x, y, lik),
        "ggn": fl.ggn(f, p, x, y, lik, chunk_size=3),
        "fisher": fl.fisher(f, p, x, lik),
        "fisher_mc": fl.fisher_mc(f, p, x, lik, k, 2),
        "empirical_fisher": fl.empirical_fisher(f, p, x, y, lik),
        "gradient_covariance": fl.gradient_covariance(f, p, x, y, lik),
        "gradient": fl.gradient(f, p, x, y, lik),
    })(params, x, y, jax.random.key(0))
    for name in eager:
        np.testing.assert_allclose(jitted[name], eager[name], rtol=1e-12, atol=1e-14,
                                   err_msg=name)
    d = eager["gradient"].shape[0]
    v = jnp.linspace(-1.0, 1.0, d)
    hv = jax.jit(lambda p, v: fl.hvp(f, p, x, y, lik)(v))(params, v)
    np.testing.assert_allclose(hv, eager["hessian"] @ v, rtol=1e-10, atol=1e-12)
    del key


def test_parameter_order_is_ravel_pytree_order():
    # dict params: ravel_pytree sorts keys. Perturbing one named leaf must move exactly the
    # matching block of the gradient (finite difference in that leaf only).
    f, params, x, y, lik = make_problem("gaussian", seed=4, n=3, model="dict")
    from jax.flatten_util import ravel_pytree

    theta, unravel = ravel_pytree(params)
    g = np.asarray(fl.gradient(f, params, x, y, lik))
    loss = lambda p: float(jnp.mean(lik.nll(jax.vmap(f, in_axes=(None, 0))(p, x), y)))
    offset = 0
    for name in sorted(params):  # "W", "a", "b", "c": ravel_pytree's (sorted-key) order
        leaf = jax.tree_util.tree_leaves(params[name])[0]
        idx = offset + leaf.size - 1  # last entry of this leaf
        e = np.zeros_like(theta)
        e[idx] = 1e-6
        fd = (loss(unravel(theta + e)) - loss(unravel(theta - e))) / 2e-6
        np.testing.assert_allclose(g[idx], fd, rtol=1e-5, atol=1e-8, err_msg=name)
        offset += leaf.size
