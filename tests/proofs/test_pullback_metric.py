"""pullback_metric: the derivation verifies (tier A-model) with every control refuted, and its
two special cases hold for the numeric references: the Hessian in the second argument, at the
diagonal, of the KL divergence between the predictive distributions (autodiff of the closed
forms written here) is fl.fisher, of half the squared output distance is fl.ggn with a unit
Gaussian; the gradient there is zero and the Hessian positive semidefinite."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from jax.flatten_util import ravel_pytree

import fisherlab as fl
from fisherlab import proofs


def test_derivation_verifies_with_every_control_refuted():
    d = proofs.get("pullback_metric.general")
    report = d.verify()
    report.raise_if_failed()
    assert report.achieved == d.tier == "A-model"
    assert report.controls_rejected == len(d.controls) >= 3
    assert len(d.parts) == 6


def _setup(seed, n, c):
    rng = np.random.default_rng(seed)
    model = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh(), fl.nn.Dense(3, c)])
    params = model.init(jax.random.key(seed))
    x = jnp.asarray(rng.normal(size=(n, 2)))
    w0, unravel = ravel_pytree(params)

    def outputs(w):
        return jax.vmap(lambda xi: model(unravel(w), xi))(x)

    return model, params, x, w0, outputs


def _check_pullback(h, w0, want):
    grad = jax.grad(h)(w0)
    hess = np.asarray(jax.hessian(h)(w0))
    np.testing.assert_allclose(grad, 0.0, atol=1e-12)
    np.testing.assert_allclose(hess, want, rtol=1e-8, atol=1e-12)
    assert np.linalg.eigvalsh((hess + hess.T) / 2).min() >= -1e-10


KL = {
    "categorical": (fl.Categorical(), 3, lambda a, b: jnp.sum(
        jax.nn.softmax(a) * (jax.nn.log_softmax(a) - jax.nn.log_softmax(b)), axis=-1)),
    "bernoulli": (fl.Bernoulli(), 2, lambda a, b: jnp.sum(
        jax.nn.sigmoid(a) * (jax.nn.log_sigmoid(a) - jax.nn.log_sigmoid(b))
        + jax.nn.sigmoid(-a) * (jax.nn.log_sigmoid(-a) - jax.nn.log_sigmoid(-b)), axis=-1)),
    "poisson": (fl.Poisson(), 2, lambda a, b: jnp.sum(
        jnp.exp(a) * (a - b) - jnp.exp(a) + jnp.exp(b), axis=-1)),
}


@pytest.mark.parametrize("family", sorted(KL))
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2 ** 16), n=st.integers(1, 3))
def test_kl_pullback_is_the_fisher(family, seed, n):
    lik, c, kl = KL[family]
    model, params, x, w0, outputs = _setup(seed, n, c)
    out0 = outputs(w0)
    _check_pullback(lambda w: jnp.mean(kl(out0, outputs(w))), w0,
                    np.asarray(fl.fisher(model, params, x, lik)))


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2 ** 16), n=st.integers(1, 3))
def test_squared_distance_pullback_is_the_gauss_newton_matrix(seed, n):
    model, params, x, w0, outputs = _setup(seed, n, 2)
    out0 = outputs(w0)
    y = jnp.zeros((n, 2))   # the GGN of a unit Gaussian does not depend on the targets
    _check_pullback(lambda w: jnp.mean(0.5 * jnp.sum((outputs(w) - out0) ** 2, axis=-1)), w0,
                    np.asarray(fl.ggn(model, params, x, y, fl.Gaussian())))
