"""K-FAC on a small MLP: the factors, how close the Kronecker blocks are to the exact Fisher, and the step.

For a 4-8-3 tanh network with a categorical likelihood, this script

1. computes the K-FAC factors ``A`` (layer inputs) and ``G`` (pre-activation gradients) of each
   dense layer with ``fl.kfac.factors`` and the dense block-diagonal matrix ``fl.kfac.matrix``;
2. compares every layer block with the same block of the exact Fisher ``fl.fisher`` (relative
   Frobenius error), and reports what K-FAC drops between layers;
3. checks that K-FAC is exact for a single example (a theorem: ``kfac_exactness.single_example``);
4. compares the K-FAC step ``fl.updates.kfac_update`` with the natural-gradient step.

Run it from the repository root:

    python3 examples/kfac_mlp.py
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import fisherlab as fl

jax.config.update("jax_enable_x64", True)  # float64, the precision of the references

MODEL = fl.nn.Sequential([fl.nn.Dense(4, 8), fl.nn.Tanh(), fl.nn.Dense(8, 3)])
LIKELIHOOD = fl.Categorical()


def problem(n: int = 64, seed: int = 0):
    """Parameters, inputs and labels of the example (labels drawn from a random teacher)."""
    kp, kx, ky = jax.random.split(jax.random.key(seed), 3)
    params = MODEL.init(kp)
    x = jax.random.normal(kx, (n, 4))
    y = jax.random.randint(ky, (n,), 0, 3)
    return params, x, y


def layer_slices(params) -> list[slice]:
    """Where each layer's ``(W, b)`` sits in the flat ``ravel_pytree(params)`` order."""
    out, start = [], 0
    for W, b in params:
        size = W.size + b.size
        out.append(slice(start, start + size))
        start += size
    return out


def exact_and_kfac(params, x, y):
    """The exact Fisher and the K-FAC matrix (augmented bias), both ``(d, d)``."""
    F = fl.fisher(MODEL, params, x, LIKELIHOOD)
    factors = fl.kfac.factors(MODEL, params, x, y, LIKELIHOOD, fisher_type="exact")
    return F, fl.kfac.matrix(factors, MODEL), factors


def relative_error(a, b) -> float:
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def main() -> None:
    params, x, y = problem()
    F, K, factors = exact_and_kfac(params, x, y)
    print(f"d = {F.shape[0]} parameters, N = {x.shape[0]} examples")
    for k, fac in enumerate(factors):
        print(f"layer {k}: A {tuple(fac.A.shape)} (inputs and bias), G {tuple(fac.G.shape)}")

    slices = layer_slices(params)
    for k, s in enumerate(slices):
        print(f"layer {k} block: relative error of K-FAC vs exact Fisher "
              f"{relative_error(K[s, s], F[s, s]):.3f}")
    mask = np.zeros(F.shape, bool)
    for s in slices:
        mask[s, s] = True
    off = float(jnp.linalg.norm(jnp.where(mask, 0.0, F)) / jnp.linalg.norm(F))
    print(f"share of the Fisher's norm between layers (dropped by K-FAC): {off:.3f}")
    print(f"whole matrix: relative error {relative_error(K, F):.3f}")

    # one example: the K-FAC blocks equal the exact Fisher blocks
    F1, K1, _ = exact_and_kfac(params, x[:1], y[:1])
    err1 = max(relative_error(K1[s, s], F1[s, s]) for s in slices)
    print(f"N = 1: largest block error {err1:.1e} (exact up to rounding)")
    assert err1 < 1e-12, err1

    ng = fl.updates.natural_gradient(MODEL, params, x, y, LIKELIHOOD, lr=1.0, damping=1e-3)
    kf = fl.updates.kfac_update(MODEL, params, x, y, LIKELIHOOD, lr=1.0, damping=1e-3)
    a = jax.flatten_util.ravel_pytree(ng)[0]
    b = jax.flatten_util.ravel_pytree(kf)[0]
    g = fl.gradient(MODEL, params, x, y, LIKELIHOOD)
    cos = lambda u, v: float(u @ v / (jnp.linalg.norm(u) * jnp.linalg.norm(v)))  # noqa: E731
    print(f"cosine(K-FAC step, natural-gradient step) = {cos(a, b):.3f}; "
          f"cosine(gradient step, natural-gradient step) = {cos(-g, a):.3f}")


if __name__ == "__main__":
    main()
