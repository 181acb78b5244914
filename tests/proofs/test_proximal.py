"""proximal: both derivations verify at general dimension with every control refuted, and
the library's damped natural-gradient / Gauss-Newton steps are the minimisers of Grosse's
proximal objective, whose curvature term is computed here independently -- the Hessian, by
automatic differentiation, of the KL divergence between the softmax predictives (resp. of half
the squared output distance) at the current parameters -- and minimised by a direct solve."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from jax.flatten_util import ravel_pytree

import fisherlab as fl
from fisherlab import proofs

NAMES = ["proximal.damped_natural_gradient", "proximal.damped_gauss_newton"]


@pytest.mark.parametrize("name", NAMES)
def test_derivation_verifies_at_general_dimension_with_every_control_refuted(name):
    d = proofs.get(name)
    report = d.verify()
    report.raise_if_failed()
    assert report.achieved == d.tier == "A"
    assert report.controls_rejected == len(d.controls) >= 3
    assert any(c.name == "first_order_distance" for c in d.controls)
    assert len(d.parts) == 4 and d.parts[3].rel_op == ">="


def _problem(seed, n, c):
    rng = np.random.default_rng(seed)
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, c)])
    params = model.init(jax.random.key(seed))
    x = jnp.asarray(rng.normal(size=(n, 3)))
    return model, params, x, rng


def _proximal_minimiser(model, params, x, nll, distance, lam_fsd, lam_wsd):
    """argmin_D g^T D + lam_fsd (1/2) D^T H D + (lam_wsd / 2) ||D||^2, H = Hess of the distance."""
    w0, unravel = ravel_pytree(params)
    out0 = jax.vmap(lambda xi: model(params, xi))(x)

    def outputs(w):
        return jax.vmap(lambda xi: model(unravel(w), xi))(x)

    g = jax.grad(lambda w: nll(outputs(w)))(w0)
    H = jax.hessian(lambda w: distance(out0, outputs(w)))(w0)
    A = lam_fsd * H + lam_wsd * jnp.eye(w0.size)
    delta = jnp.linalg.solve(A, -g)
    # the minimiser: the objective's gradient vanishes there and its Hessian is positive definite
    np.testing.assert_allclose(g + A @ delta, 0.0, atol=1e-10)
    assert np.linalg.eigvalsh(np.asarray((A + A.T) / 2)).min() > 0
    return delta, unravel


def _kl(out0, out):
    """Mean over examples of KL(softmax(out0) || softmax(out))."""
    lp0, lp = jax.nn.log_softmax(out0, axis=-1), jax.nn.log_softmax(out, axis=-1)
    return jnp.mean(jnp.sum(jnp.exp(lp0) * (lp0 - lp), axis=-1))


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2 ** 16), n=st.integers(1, 4),
       lam_fsd=st.floats(0.2, 5.0), lam_wsd=st.floats(1e-2, 2.0))
def test_natural_gradient_minimises_the_proximal_objective(seed, n, lam_fsd, lam_wsd):
    model, params, x, rng = _problem(seed, n, 3)
    y = jnp.asarray(rng.integers(0, 3, size=n))

    def nll(out):
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(out, axis=-1), y[:, None], axis=-1))

    want, unravel = _proximal_minimiser(model, params, x, nll, _kl, lam_fsd, lam_wsd)
    got = fl.updates.natural_gradient(model, params, x, y, fl.Categorical(),
                                      lr=1 / lam_fsd, damping=lam_wsd / lam_fsd)
    np.testing.assert_allclose(ravel_pytree(got)[0], want, rtol=1e-7, atol=1e-10)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 2 ** 16), n=st.integers(1, 4),
       lam_fsd=st.floats(0.2, 5.0), lam_wsd=st.floats(1e-2, 2.0))
def test_gauss_newton_minimises_the_proximal_objective(seed, n, lam_fsd, lam_wsd):
    model, params, x, rng = _problem(seed, n, 2)
    y = jnp.asarray(rng.normal(size=(n, 2)))

    def nll(out):
        return jnp.mean(0.5 * jnp.sum((y - out) ** 2, axis=-1))

    def half_sq_distance(out0, out):
        return jnp.mean(0.5 * jnp.sum((out - out0) ** 2, axis=-1))

    want, _ = _proximal_minimiser(model, params, x, nll, half_sq_distance, lam_fsd, lam_wsd)
    got = fl.updates.gauss_newton(model, params, x, y, fl.Gaussian(),
                                  lr=1 / lam_fsd, damping=lam_wsd / lam_fsd)
    np.testing.assert_allclose(ravel_pytree(got)[0], want, rtol=1e-7, atol=1e-10)


def test_first_order_distance_gives_gradient_descent_not_the_natural_gradient():
    """The control's counterpart: without the curvature term the minimiser is -g / lam_wsd."""
    model, params, x, rng = _problem(3, 3, 3)
    y = jnp.asarray(rng.integers(0, 3, size=3))
    g = ravel_pytree(fl.gradient(model, params, x, y, fl.Categorical()))[0]
    nat = ravel_pytree(fl.updates.natural_gradient(model, params, x, y, fl.Categorical(),
                                                   lr=1.0, damping=0.5))[0]
    assert np.linalg.norm(nat - (-g / 0.5)) > 1e-3 * np.linalg.norm(g)
