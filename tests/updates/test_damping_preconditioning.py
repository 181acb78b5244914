"""Damping and preconditioning (proofs/damping_preconditioning.py), numerically.

Ground truth: NumPy spectral forms and the closed-form gradient and Fisher (= Hessian) of
logistic regression (``update_problems.logistic_problem``).
"""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from update_problems import flat, linear, logistic_problem, rel

import fisherlab as fl


@given(st.integers(0, 2 ** 16), st.integers(2, 5), st.floats(1e-3, 10.0))
def test_damped_inverse_has_the_eigenvectors_and_shifted_eigenvalues(seed, d, eta):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    nu = rng.uniform(0.0, 5.0, size=d)
    nu[0] = 0.0                                      # a singular H: damping keeps it solvable
    H = Q @ np.diag(nu) @ Q.T
    v = rng.normal(size=d)
    out = np.asarray(fl.updates.precondition(jnp.asarray(H), jnp.asarray(v), damping=eta))
    assert rel(out, Q @ ((Q.T @ v) / (nu + eta))) < 1e-10
    # every eigenvalue of the damped inverse lies in (0, 1/eta]: the step is bounded
    assert np.linalg.norm(out) <= np.linalg.norm(v) / eta * (1 + 1e-12)
    assert v @ out > 0


@given(st.integers(0, 2 ** 16), st.sampled_from([0.0, 1e-3, 1.0]))
def test_psd_preconditioned_steps_are_descent_directions(seed, damping):
    P = logistic_problem(seed=seed)
    for update in (fl.updates.natural_gradient, fl.updates.gauss_newton):
        delta = flat(update(linear, P["params"], P["X"], P["y"], fl.Bernoulli(), lr=1.0,
                            damping=damping))
        assert P["grad"] @ delta < 0, update.__name__     # g^T(-P g) < 0 for g != 0


@given(st.integers(0, 2 ** 16), st.floats(0.01, 1.0))
def test_precondition_is_gradient_descent_after_reparameterisation(seed, lr):
    """One gradient step on J~(w~) = J(R w~ + b), mapped back by w = R w~ + b, equals the step
    preconditioned by C^{-1} when R R^T = C^{-1} (R = L^{-T}, C = L L^T)."""
    P = logistic_problem(seed=seed)
    rng = np.random.default_rng(seed + 1)
    B = rng.normal(size=(4, 4))
    C = B @ B.T + 0.5 * np.eye(4)
    R = np.linalg.inv(np.linalg.cholesky(C)).T
    b = rng.normal(size=4)
    w = flat(P["params"])
    Xa = np.hstack([np.asarray(P["X"]), np.ones((P["X"].shape[0], 1))])
    y = np.asarray(P["y"])[:, 0]

    def J_tilde(wt):
        z = Xa @ (R @ wt + b)
        return jnp.mean(jnp.logaddexp(0.0, z) - y * z)

    wt = np.linalg.solve(R, w - b)
    mapped = R @ (wt - lr * np.asarray(jax.grad(J_tilde)(jnp.asarray(wt)))) + b
    step = -lr * np.asarray(fl.updates.precondition(jnp.asarray(C), jnp.asarray(P["grad"]),
                                                    damping=0.0))
    assert rel(mapped, w + step) < 1e-9
    # the Hessian in w~ is R^T H R; with C = H it is the identity (Newton)
    Rh = np.linalg.inv(np.linalg.cholesky(P["F"])).T
    assert rel(Rh.T @ P["F"] @ Rh, np.eye(4)) < 1e-10


@given(st.integers(0, 2 ** 16), st.floats(1e-3, 10.0))
def test_damped_newton_step_minimises_the_model_with_a_proximity_term(seed, eta):
    P = logistic_problem(seed=seed)
    g, H = P["grad"], P["F"]                             # logistic regression: Hessian = Fisher
    delta = flat(fl.updates.newton(linear, P["params"], P["X"], P["y"], fl.Bernoulli(),
                                   lr=1.0, damping=eta))

    def model(v):
        return g @ v + 0.5 * v @ H @ v + 0.5 * eta * v @ v

    assert np.linalg.norm(g + (H + eta * np.eye(4)) @ delta) < 1e-10 * (1 + np.linalg.norm(g))
    rng = np.random.default_rng(seed)
    for v in rng.normal(size=(5, 4)):
        v *= 1e-3 / np.linalg.norm(v)
        assert model(delta + v) > model(delta)
