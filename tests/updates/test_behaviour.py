"""Behavioural test: natural gradient beats gradient descent on ill-conditioned logistic regression.

Fixed seeds, no randomness at test time (false-failure probability 0: the data and every
iterate are deterministic). Features are scaled by (1, 10, 0.1) so the Hessian's condition
number is ~1e4. Gradient descent uses the classical safe step 1/L with
L = lambda_max(X_a^T X_a) / (4 N) (the global smoothness constant of the logistic loss);
natural gradient uses lr = 1 and damping 1e-8 (for this linear model it is Newton's method,
proofs natural_gradient_newton.residual). Loss and gradient for GD and the optimum L* come
from the closed forms in NumPy; the natural-gradient step from fl.updates.
Stated margin: NG reaches L* + 1e-6 within 10 steps; GD needs more than 10x as many.
"""

import numpy as np
from update_problems import logistic_closed_form

import jax.numpy as jnp

import fisherlab as fl


def _problem():
    rng = np.random.default_rng(2024)
    N = 200
    X = rng.normal(size=(N, 3)) * np.array([1.0, 10.0, 0.1])
    w_true = np.array([1.0, 0.2, 8.0, -0.5])
    Xa = np.hstack([X, np.ones((N, 1))])
    y = (rng.uniform(size=N) < 1 / (1 + np.exp(-Xa @ w_true))).astype(np.float64)
    return X, y, Xa


def _optimum(X, y):
    theta = np.zeros(4)
    for _ in range(50):      # Newton's method to machine precision (numpy, independent)
        cf = logistic_closed_form(theta, X, y)
        theta = theta - np.linalg.solve(cf["F"], cf["grad"])
    return logistic_closed_form(theta, X, y)["loss"]


def test_natural_gradient_needs_far_fewer_steps_than_gradient_descent():
    X, y, Xa = _problem()
    target = _optimum(X, y) + 1e-6
    H0 = logistic_closed_form(np.zeros(4), X, y)["F"]
    assert np.linalg.cond(H0) > 1e3, "the problem must be ill-conditioned"

    # natural gradient (fl.updates)
    def f(params, x):
        (W, b), = params
        return W @ x + b

    params = [(jnp.zeros((1, 3)), jnp.zeros((1,)))]
    ng_steps = None
    for k in range(1, 11):
        delta = fl.updates.natural_gradient(f, params, jnp.asarray(X), jnp.asarray(y[:, None]),
                                            fl.Bernoulli(), lr=1.0, damping=1e-8)
        params = [(params[0][0] + delta[0][0], params[0][1] + delta[0][1])]
        theta = np.concatenate([np.asarray(params[0][0]).ravel(), np.asarray(params[0][1])])
        if logistic_closed_form(theta, X, y)["loss"] <= target:
            ng_steps = k
            break
    assert ng_steps is not None, "natural gradient did not reach the target in 10 steps"

    # gradient descent with the safe constant step 1/L
    L = np.linalg.eigvalsh(Xa.T @ Xa)[-1] / (4 * len(y))
    theta = np.zeros(4)
    gd_steps = None
    for k in range(1, 10 * ng_steps + 1):
        theta = theta - logistic_closed_form(theta, X, y)["grad"] / L
        if logistic_closed_form(theta, X, y)["loss"] <= target:
            gd_steps = k
            break
    assert gd_steps is None, (f"gradient descent reached the target in {gd_steps} steps, "
                              f"natural gradient in {ng_steps}: margin 10x not met")
