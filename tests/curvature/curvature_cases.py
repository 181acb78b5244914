"""Small curvature problems for the tests in tests/curvature/ (models, likelihoods, targets).

Each problem is ``(f, params, x, y, likelihood)`` with float64 arrays, drawn from a
Hypothesis strategy (:func:`problems`) or built directly (:func:`make_problem`).
Models: a ``fisherlab.nn.Sequential`` MLP and a hand-written model with *dict* params
(to exercise arbitrary pytrees and the ravel_pytree order).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

import fisherlab as fl

FAMILIES = ("categorical", "gaussian", "bernoulli", "poisson", "gaussian_mean_variance")


def likelihood_for(family: str):
    return {
        "categorical": fl.Categorical(),
        "gaussian": fl.Gaussian(variance=0.7),
        "bernoulli": fl.Bernoulli(),
        "poisson": fl.Poisson(),
        "gaussian_mean_variance": fl.GaussianMeanVariance(),
    }[family]


def targets_for(family: str, outputs: np.ndarray, rng: np.random.Generator):
    n, c = outputs.shape
    if family == "categorical":
        return jnp.asarray(rng.integers(0, c, size=n), jnp.int64)
    if family == "gaussian":
        return jnp.asarray(rng.normal(size=(n, c)), jnp.float64)
    if family == "bernoulli":
        return jnp.asarray(rng.integers(0, 2, size=(n, c)), jnp.float64)
    if family == "poisson":
        return jnp.asarray(rng.integers(0, 4, size=(n, c)), jnp.float64)
    if family == "gaussian_mean_variance":
        return jnp.asarray(rng.normal(size=(n, c // 2)), jnp.float64)
    raise ValueError(family)


def mlp(in_features: int, hidden: int, out_features: int):
    return fl.nn.Sequential([fl.nn.Dense(in_features, hidden), fl.nn.Tanh(),
                             fl.nn.Dense(hidden, out_features)])


def dict_model(params, x):
    """A non-Sequential model with dict params: ``a * tanh(W x + b) + c * sin(x).sum()``."""
    h = jnp.tanh(params["W"] @ x + params["b"])
    return params["a"] * h + params["c"][0] * jnp.sin(jnp.sum(x))


def dict_params(key, in_features: int, out_features: int):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    return {
        "W": 0.5 * jax.random.normal(k1, (out_features, in_features), jnp.float64),
        "b": 0.3 * jax.random.normal(k2, (out_features,), jnp.float64),
        "a": 1.0 + 0.2 * jax.random.normal(k3, (out_features,), jnp.float64),
        "c": (0.4 * jax.random.normal(k4, (out_features,), jnp.float64),),
    }


def make_problem(family: str, *, seed: int = 0, n: int = 5, in_features: int = 3,
                 hidden: int = 4, outputs: int = 3, model: str = "mlp"):
    """``(f, params, x, y, likelihood)``; ``outputs`` is doubled for GaussianMeanVariance."""
    c = 2 * outputs if family == "gaussian_mean_variance" else outputs
    if family == "categorical":
        c = max(c, 2)
    key = jax.random.key(seed)
    kp, kx = jax.random.split(key)
    if model == "mlp":
        f = mlp(in_features, hidden, c)
        params = f.init(kp)
    else:
        f = dict_model
        params = dict_params(kp, in_features, c)
    x = jax.random.normal(kx, (n, in_features), jnp.float64)
    lik = likelihood_for(family)
    outs = np.asarray(jax.vmap(f, in_axes=(None, 0))(params, x))
    y = targets_for(family, outs, np.random.default_rng(seed))
    return f, params, x, y, lik


# A few fixed shapes (values vary with the seed): every new shape costs an XLA compile,
# so drawing shapes freely would make the suite compile-bound on a small machine.
SHAPES = (
    dict(n=1, in_features=2, hidden=3, outputs=2),
    dict(n=5, in_features=3, hidden=2, outputs=1),
    dict(n=4, in_features=2, hidden=4, outputs=3),
)


@st.composite
def problems(draw, *, families=FAMILIES, shapes=SHAPES, models=("mlp", "dict")):
    family = draw(st.sampled_from(families))
    shape = draw(st.sampled_from(shapes))
    return make_problem(family, seed=draw(st.integers(0, 2 ** 16)),
                        model=draw(st.sampled_from(models)), **shape)


def num_params(params) -> int:
    return int(ravel_pytree(params)[0].size)


def rel_err(a, b) -> float:
    """Relative Frobenius error ``||a - b|| / max(||b||, tiny)`` (CONVENTIONS.md)."""
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))
