"""Smooth reparameterisation (proofs/invariance.py, ``invariance.smooth_reparameterization``).

Logistic regression ``f(theta, x) = x^T theta`` with a Bernoulli likelihood, whose gradient and
Fisher have closed forms (NumPy ground truth), reparameterised by the diffeomorphism
``theta = phi(u) = u + tanh(B u) / 2`` (``||B|| < 1``: the perturbation is a contraction, so
``phi`` is a diffeomorphism of R^d) with the Jacobian ``J = I + diag(1 - tanh^2(B u)) B / 2``
written out by hand. Checked:

* the Fisher in ``u`` is the pull-back ``J^T F J`` of the closed-form Fisher at ``phi(u)``;
* the natural-gradient velocity maps: ``J delta_u = delta_theta`` for every step size (the flow
  is invariant);
* the discrete step maps for the affine map ``u + B u / 2`` and not for the nonlinear one, where
  ``phi(u + delta_u) - (theta + delta_theta)`` is second order in the step size.
"""

import jax.numpy as jnp
import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from update_problems import flat, rel

import fisherlab as fl

D, N = 3, 10
_rng = np.random.default_rng(7)
X = _rng.normal(size=(N, D))
Y = (_rng.uniform(size=(N, 1)) < 0.5).astype(np.float64)


def f(params, x):
    (theta,) = params
    return jnp.atleast_1d(x @ theta)


def phi_np(u, B, affine=False):
    return u + 0.5 * (B @ u if affine else np.tanh(B @ u))


def jacobian_np(u, B):
    return np.eye(D) + 0.5 * (1.0 - np.tanh(B @ u) ** 2)[:, None] * B


def _reparam(affine):
    def g(params, xb):
        """f(phi(u), x); B rides along with every example (one compiled kernel for all draws)."""
        (u,) = params
        Bu = xb["B"] @ u
        return f((u + 0.5 * (Bu if affine else jnp.tanh(Bu)),), xb["x"])
    return g


F_SMOOTH, F_AFFINE = _reparam(False), _reparam(True)


def batch(B):
    return {"x": jnp.asarray(X), "B": jnp.broadcast_to(jnp.asarray(B), (N, D, D))}


def closed_form(theta):
    """Mean-loss gradient and Fisher of logistic regression at theta."""
    p = 1.0 / (1.0 + np.exp(-X @ theta))
    g = X.T @ (p - Y[:, 0]) / N
    F = (X * (p * (1 - p))[:, None]).T @ X / N
    return g, F


@st.composite
def maps(draw):
    """(u, B): a point far enough from 0 that tanh is curved there, and ||B||_2 <= 0.9."""
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    B = rng.normal(size=(D, D))
    B *= draw(st.floats(0.3, 0.9)) / np.linalg.norm(B, 2)
    u = rng.choice([-1.0, 1.0], size=D) * rng.uniform(0.5, 1.5, size=D)
    return u, B


def natural_step(fn, u, B, lr):
    return flat(fl.updates.natural_gradient(fn, (jnp.asarray(u),), batch(B), jnp.asarray(Y),
                                            fl.Bernoulli(), lr=lr, damping=0.0))


@given(maps())
def test_fisher_of_a_smooth_reparameterisation_is_pulled_back(uB):
    u, B = uB
    J = jacobian_np(u, B)
    _, F = closed_form(phi_np(u, B))
    F_u = np.asarray(fl.fisher(F_SMOOTH, (jnp.asarray(u),), batch(B), fl.Bernoulli()))
    assert rel(F_u, J.T @ F @ J) < 1e-10
    # the Jacobian on the wrong side is a different matrix
    assert rel(F_u, J @ F @ J.T) > 1e-6


@given(maps(), st.floats(1e-3, 2.0))
def test_natural_gradient_flow_is_invariant(uB, lr):
    u, B = uB
    g, F = closed_form(phi_np(u, B))
    velocity = jacobian_np(u, B) @ natural_step(F_SMOOTH, u, B, lr)
    assert rel(velocity, -lr * np.linalg.solve(F, g)) < 1e-9


@given(maps())
def test_natural_gradient_step_maps_for_affine_maps_only(uB):
    u, B = uB
    # affine phi: phi(u + delta_u) = theta + delta_theta exactly, for a finite step
    theta = phi_np(u, B, affine=True)
    g, F = closed_form(theta)
    new = phi_np(u + natural_step(F_AFFINE, u, B, 1.0), B, affine=True)
    assert rel(new - theta, -np.linalg.solve(F, g)) < 1e-9
    # nonlinear phi: the mapped step misses theta + delta_theta by a second-order term
    theta = phi_np(u, B)
    g, F = closed_form(theta)
    natural = -np.linalg.solve(F, g)
    miss = [phi_np(u + natural_step(F_SMOOTH, u, B, lr), B) - (theta + lr * natural)
            for lr in (0.02, 0.01)]
    assume(np.linalg.norm(miss[1]) > 1e-8 * np.linalg.norm(natural))
    assert np.linalg.norm(miss[1]) > 1e-9
    assert 3.5 < np.linalg.norm(miss[0]) / np.linalg.norm(miss[1]) < 4.5
