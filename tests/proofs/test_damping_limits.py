"""damping_limits: the derivation verifies at general dimension with its controls refuted, and
the library's damped solves behave as it says: along each eigenvector of F the damped step is
u^T g / (nu + beta) (the eigendecomposition computed by numpy, independent of the library's
Cholesky solve), and the natural-gradient step tends to the undamped step as beta -> 0 and,
scaled by beta, to the gradient step as beta -> oo, within the exact bounds that the resolvent
identities give."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings, strategies as st
from jax.flatten_util import ravel_pytree

import fisherlab as fl
from fisherlab import proofs
from fisherlab.testing import strategies as fst


def test_derivation_verifies_at_general_dimension_with_its_controls_refuted():
    d = proofs.get("damping_limits.interpolation")
    report = d.verify()
    report.raise_if_failed()
    assert report.achieved == d.tier == "A"
    assert report.controls_rejected == len(d.controls) >= 2
    assert any("Limit" in type(p.lhs).__name__ for p in d.parts)


@settings(max_examples=15, deadline=None)
@given(F=fst.spd_matrices(min_dim=1, max_dim=6), beta=st.floats(1e-3, 1e3),
       seed=st.integers(0, 2 ** 16))
def test_damped_step_interpolates_in_the_eigenbasis(F, beta, seed):
    g = np.random.default_rng(seed).normal(size=F.shape[0])
    p = np.asarray(fl.updates.precondition(jnp.asarray(F), jnp.asarray(g), damping=beta))
    nu, U = np.linalg.eigh(F)
    comp = U.T @ p
    np.testing.assert_allclose(comp, U.T @ g / (nu + beta), rtol=1e-8, atol=1e-12)
    # the fractions of the undamped and the gradient step, nu/(nu + beta) and beta/(nu + beta)
    np.testing.assert_allclose(comp, nu / (nu + beta) * (U.T @ g / nu), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(beta * comp, beta / (nu + beta) * (U.T @ g), rtol=1e-8, atol=1e-12)


def test_natural_gradient_tends_to_the_undamped_and_gradient_steps():
    model = fl.nn.Sequential([fl.nn.Dense(2, 2)])
    params = model.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(8, 2)))
    lik = fl.Gaussian()   # its Fisher J^T J / N is nonsingular here
    yg = jnp.asarray(rng.normal(size=(8, 2)))
    F = np.asarray(fl.fisher(model, params, x, lik))
    g = np.asarray(ravel_pytree(fl.gradient(model, params, x, yg, lik))[0])
    nu = np.linalg.eigvalsh(F)
    assert nu.min() > 1e-3
    undamped = -np.linalg.solve(F, g)
    for beta in (1e-1, 1e-3, 1e-5):
        step = ravel_pytree(fl.updates.natural_gradient(model, params, x, yg, lik, lr=1.0,
                                                        damping=beta))[0]
        err = np.linalg.norm(step - undamped)
        # (F + bI)^-1 g - F^-1 g = -b (F + bI)^-1 F^-1 g
        assert err <= beta / (nu.min() * (nu.min() + beta)) * np.linalg.norm(g) * (1 + 1e-8)
    for beta in (1e2, 1e4, 1e6):
        step = ravel_pytree(fl.updates.natural_gradient(model, params, x, yg, lik, lr=beta,
                                                        damping=beta))[0]
        err = np.linalg.norm(step - (-g))
        # b (F + bI)^-1 g - g = -(F + bI)^-1 F g
        assert err <= nu.max() / (nu.max() + beta) * np.linalg.norm(g) * (1 + 1e-8)
    assert err < 1e-4 * np.linalg.norm(g)
