"""Every dense reference and matrix-free product on the GPU against the CPU float64 result.

Run by scripts/gpu_check.sh on a machine with a CUDA JAX backend. Each quantity is computed
twice on the same problem, with ``jax.default_device`` set to the GPU and to the CPU, and the
relative Frobenius difference is required to be at most ``TOL`` (float64 on both: the two
differ only by the order of the floating-point additions). Exit status 1 when any is over.
"""

from __future__ import annotations

import os
import sys

import jax

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import fisherlab as fl  # noqa: E402

TOL = 1e-10


def main() -> int:
    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if not gpus:
        print("no GPU device: nothing to compare")
        return 0
    cpu = jax.devices("cpu")[0]
    lik = fl.Categorical()
    model = fl.nn.Sequential([fl.nn.Dense(20, 64), fl.nn.Tanh(), fl.nn.Dense(64, 50),
                              fl.nn.Tanh(), fl.nn.Dense(50, 10)])
    rng = np.random.default_rng(0)
    params_np = jax.tree_util.tree_map(np.asarray, model.init(jax.random.key(0)))
    x_np = rng.normal(size=(256, 20))
    y_np = rng.integers(0, 10, size=256)
    v_np = rng.normal(size=model.num_params)
    key_np = 3

    def quantities():
        params = jax.tree_util.tree_map(jnp.asarray, params_np)
        x, y, v = jnp.asarray(x_np), jnp.asarray(y_np), jnp.asarray(v_np)
        key = jax.random.key(key_np)
        return {
            "ggn (layer-wise)": lambda: fl.ggn(model, params, x, y, lik),
            "ggn (Jacobian)": lambda: fl.ggn(model, params, x, y, lik, method="jacobian"),
            "fisher": lambda: fl.fisher(model, params, x, lik),
            "fisher_mc": lambda: fl.fisher_mc(model, params, x, lik, key, 2),
            "empirical_fisher": lambda: fl.empirical_fisher(model, params, x, y, lik),
            "gradient_covariance": lambda: fl.gradient_covariance(model, params, x, y, lik),
            "hessian": lambda: fl.hessian(model, params, x[:32], y[:32], lik),
            "gradient": lambda: fl.gradient(model, params, x, y, lik),
            "ggn_vp": lambda: fl.ggn_vp(model, params, x, y, lik)(v),
            "fisher_vp": lambda: fl.fisher_vp(model, params, x, lik)(v),
            "fisher_mc_vp": lambda: fl.fisher_mc_vp(model, params, x, lik, key, 2)(v),
            "empirical_fisher_vp": lambda: fl.empirical_fisher_vp(model, params, x, y, lik)(v),
            "hvp": lambda: fl.hvp(model, params, x, y, lik)(v),
        }

    failed = []
    for name in quantities():
        with jax.default_device(gpus[0]):
            on_gpu = quantities()[name]()
            platform = next(iter(on_gpu.devices())).platform
        with jax.default_device(cpu):
            on_cpu = np.asarray(quantities()[name]())
        err = float(np.linalg.norm(np.asarray(on_gpu) - on_cpu) / np.linalg.norm(on_cpu))
        ok = err <= TOL and platform == "gpu"
        print(f"{name:22s} computed on {platform}: relative difference to CPU {err:.2e} "
              f"(tolerance {TOL:.0e}) {'ok' if ok else 'FAIL'}")
        if not ok:
            failed.append(name)
    print("all equal to the CPU references" if not failed else f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
