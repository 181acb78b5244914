"""Closed-form regression problems shared by the update tests (NumPy ground truth only)."""

import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


def flat(tree):
    return np.asarray(ravel_pytree(tree)[0])


def linear(params, x):
    (W, b), = params
    return W @ x + b


def logistic_problem(seed=0, N=12, D=3, scales=None):
    """Logistic regression: returns params, X, y and the closed-form grad, F (= H = G), E."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D))
    if scales is not None:
        X = X * np.asarray(scales)
    W = 0.5 * rng.normal(size=(1, D))
    b = 0.3 * rng.normal(size=(1,))
    y = (rng.uniform(size=N) < 0.5).astype(np.float64)[:, None]
    return dict(params=[(jnp.asarray(W), jnp.asarray(b))], X=jnp.asarray(X), y=jnp.asarray(y),
                **logistic_closed_form(np.concatenate([W.ravel(), b]), X, y[:, 0]))


def logistic_closed_form(theta, X, y):
    N, D = X.shape
    Xa = np.hstack([X, np.ones((N, 1))])
    z = Xa @ theta
    p = 1 / (1 + np.exp(-z))
    loss = float(np.mean(np.logaddexp(0, z) - y * z))
    return dict(loss=loss, grad=Xa.T @ (p - y) / N, F=Xa.T @ np.diag(p * (1 - p)) @ Xa / N,
                E=Xa.T @ np.diag((p - y) ** 2) @ Xa / N)
