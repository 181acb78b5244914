"""Train a small MLP with SGD, natural gradient, K-FAC and Hessian-free on an ill-conditioned problem.

A 2-16-3 tanh network classifies three Gaussian blobs whose two input features live on very
different scales (x 10 and x 0.1). Every method takes full-batch steps
``theta <- theta + delta`` with the reference step of :mod:`fisherlab.updates`:

* SGD: ``delta = -lr grad L`` (``fl.gradient``), for a small grid of learning rates; the best
  final loss is reported;
* natural gradient: ``fl.updates.natural_gradient`` -- the exact Fisher, Tikhonov damping;
* K-FAC: ``fl.updates.kfac_update`` -- Kronecker-factored Fisher blocks, exact damping;
* Hessian-free: ``fl.updates.hessian_free`` -- truncated conjugate gradients on the GGN-vector
  product, never forming a matrix.

Each step function is wrapped in ``jax.jit`` once (fixed shapes, so it compiles once). Only
fisherlab and JAX are needed (no optax: the optax wrappers ``fl.optax.natural_gradient`` and
``fl.optax.kfac`` take the same steps inside an optax chain). Run it from the repository root:

    python3 examples/train_mlp.py

It prints the training loss every 5 steps and the final loss of each method; ``histories()``
returns the loss curves (the documentation build plots them).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import fisherlab as fl

jax.config.update("jax_enable_x64", True)  # train in float64, the precision of the references

STEPS = 30
SGD_LEARNING_RATES = (0.01, 0.03, 0.1, 0.3, 1.0)
MODEL = fl.nn.Sequential([fl.nn.Dense(2, 16), fl.nn.Tanh(), fl.nn.Dense(16, 3)])
LIKELIHOOD = fl.Categorical()


def make_data(seed: int = 0, n_per_class: int = 40):
    """Three Gaussian blobs in 2-d, features scaled by 10 and 0.1 (an ill-conditioned problem)."""
    rng = np.random.default_rng(seed)
    centers = np.array([[-1.0, -1.0], [1.0, -0.5], [0.0, 1.2]])
    x = np.concatenate([c + 0.45 * rng.normal(size=(n_per_class, 2)) for c in centers])
    y = np.repeat(np.arange(3), n_per_class)
    x = x * np.array([10.0, 0.1])
    return jnp.asarray(x), jnp.asarray(y)


def step_functions(x, y):
    """The jitted step ``params -> delta`` of every method, by name."""
    m, lik = MODEL, LIKELIHOOD
    steps = {
        "natural gradient": lambda p: fl.updates.natural_gradient(
            m, p, x, y, lik, lr=0.5, damping=1e-2),
        "K-FAC": lambda p: fl.updates.kfac_update(m, p, x, y, lik, lr=0.5, damping=1e-2),
        "Hessian-free": lambda p: fl.updates.hessian_free(
            m, p, x, y, lik, lr=0.5, damping=1e-2, curvature="ggn", maxiter=20, tol=1e-8),
    }
    for lr in SGD_LEARNING_RATES:
        steps[f"SGD (lr {lr})"] = (
            lambda p, lr=lr: jax.tree.map(lambda g: -lr * g, _grad_tree(p, x, y)))
    return {name: jax.jit(fn) for name, fn in steps.items()}


def _grad_tree(params, x, y):
    flat = fl.gradient(MODEL, params, x, y, LIKELIHOOD)
    _, unravel = jax.flatten_util.ravel_pytree(params)
    return unravel(flat)


def histories(steps: int = STEPS, seed: int = 0) -> dict[str, list[float]]:
    """Training loss (mean negative log-likelihood) before each step and after the last."""
    x, y = make_data(seed)
    params0 = MODEL.init(jax.random.key(seed))

    @jax.jit
    def loss(params):
        return jnp.mean(LIKELIHOOD.nll(jax.vmap(lambda xi: MODEL(params, xi))(x), y))

    out = {}
    for name, step in step_functions(x, y).items():
        params, curve = params0, []
        for _ in range(steps):
            curve.append(float(loss(params)))
            params = jax.tree.map(jnp.add, params, step(params))
        curve.append(float(loss(params)))
        out[name] = curve
    return out


def best_sgd(curves: dict[str, list[float]]) -> str:
    """Name of the SGD run with the lowest finite final loss."""
    sgd = {k: v for k, v in curves.items() if k.startswith("SGD") and np.isfinite(v[-1])}
    return min(sgd, key=lambda k: sgd[k][-1])


def main() -> None:
    curves = histories()
    print(f"training loss every 5 of {STEPS} full-batch steps (initial loss first)")
    for name, curve in curves.items():
        print(f"{name:>17}: " + " ".join(f"{v:.3f}" for v in curve[::5])
              + f"  | final {curve[-1]:.4f}")
    best = best_sgd(curves)
    print(f"best SGD: {best}, final loss {curves[best][-1]:.4f}")
    for name in ("natural gradient", "K-FAC", "Hessian-free"):
        print(f"{name}: final loss {curves[name][-1]:.4f} "
              f"({curves[best][-1] / curves[name][-1]:.1f}x lower than the best SGD)")


if __name__ == "__main__":
    main()
