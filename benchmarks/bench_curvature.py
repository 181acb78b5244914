"""Benchmark: dense GGN of an MLP (d ~ 5,000, N = 256, C = 10, categorical).

Prints (a script, not a test):

* the machine's float64 matrix-multiply rate (a big ``jnp`` matmul, best of 3);
* ``fl.ggn`` wall time (after a warm-up, best of 3) for both exact methods, each against its
  own flop bound at the measured rate: the default ``method="layerwise"`` (Kronecker-structured
  blocks, used automatically for a Dense+elementwise ``Sequential``) against ``2 N d^2``
  (target <= 1.5x) and the generic ``method="jacobian"`` (any model, ``J^T (Lambda J)``) against
  ``2 N C d^2`` (target <= 1.3x). Both multiply out only the blocks on and above the diagonal,
  about half of those flops, so the ratio can fall below 1;
* the naive ``jax.jit(jax.hessian(mean loss of the flattened parameters))`` wall time and the
  speed-up of ``fl.ggn`` over it (target >= 5x). Note the naive Hessian itself costs only
  ``O(N d^2)`` flops (``d`` forward-over-reverse products), i.e. *less* than ``2 N C d^2``: the
  generic Jacobian path cannot be 5x faster than it; the layer-wise path can;
* optionally, the ratio to curvlinops' dense GGN when ``torch`` and ``curvlinops`` import.

Usage: ``cd /work/main && python3 benchmarks/bench_curvature.py [--repeats 3] [--n 256]``.
The figures depend on the load of the machine: the script prints ``os.getloadavg()``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
jax.config.update("jax_enable_x64", True)

import fisherlab as fl  # noqa: E402
from jax.flatten_util import ravel_pytree  # noqa: E402


def best_of(fn, repeats):
    fn()  # warm-up (compile)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return min(times)


def matmul_rate(n=2048, repeats=3):
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float64)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float64)
    mm = jax.jit(lambda a, b: a @ b)
    t = best_of(lambda: mm(a, b), repeats)
    return 2.0 * n ** 3 / t, t


def curvlinops_dense_ggn(model, params, x, y, repeats, reference):
    """Time curvlinops' dense GGN (its linear operator applied to the identity) on the same
    network, weights and batch; returns (best time, relative difference to ``reference``)."""
    import curvlinops
    import torch

    layers = []
    for layer in model.layers:
        if isinstance(layer, fl.nn.Dense):
            layers.append(torch.nn.Linear(layer.in_features, layer.out_features).double())
        else:
            layers.append(torch.nn.Tanh())
    net = torch.nn.Sequential(*layers)
    with torch.no_grad():
        dense = [m for m in net if isinstance(m, torch.nn.Linear)]
        for m, (W, b) in zip(dense, params):
            m.weight.copy_(torch.from_numpy(np.array(W)))
            m.bias.copy_(torch.from_numpy(np.array(b)))
    X = torch.from_numpy(np.array(x))
    Y = torch.from_numpy(np.array(y)).long()
    loss = torch.nn.CrossEntropyLoss(reduction="mean")
    ps = list(net.parameters())
    d = sum(p.numel() for p in ps)
    eye = torch.eye(d, dtype=torch.float64)

    def run():
        op = curvlinops.GGNLinearOperator(net, loss, ps, [(X, Y)], check_deterministic=False)
        return op @ eye

    G = run()
    t = best_of(run, repeats)
    G = G.detach().numpy()
    return t, float(np.linalg.norm(G - reference) / np.linalg.norm(reference))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=256, help="number of examples N")
    parser.add_argument("--skip-naive", action="store_true")
    args = parser.parse_args()

    print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
    print(f"load average before: {os.getloadavg()}, cpus {os.cpu_count()}")

    rate, t_mm = matmul_rate(repeats=args.repeats)
    print(f"float64 matmul 2048^3: {t_mm:.3f} s -> {rate / 1e9:.2f} GFLOP/s")

    model = fl.nn.Sequential([fl.nn.Dense(20, 64), fl.nn.Tanh(), fl.nn.Dense(64, 50),
                              fl.nn.Tanh(), fl.nn.Dense(50, 10)])
    params = model.init(jax.random.key(0))
    d = model.num_params
    n, c = args.n, 10
    x = jax.random.normal(jax.random.key(1), (n, 20), jnp.float64)
    y = jax.random.randint(jax.random.key(2), (n,), 0, c)
    lik = fl.Categorical()
    print(f"MLP 20-64-50-10 (tanh): d = {d}, N = {n}, C = {c}, categorical")

    bounds = {"layerwise": ("2 N d^2", 2.0 * n * d ** 2, 1.5),
              "jacobian": ("2 N C d^2", 2.0 * n * c * d ** 2, 1.3)}
    times = {}
    for method, (label, flops, target) in bounds.items():
        t_bound = flops / rate
        t = best_of(lambda: fl.ggn(model, params, x, y, lik, method=method), args.repeats)
        times[method] = t
        print(f"fl.ggn(method={method!r}): {t:.3f} s (best of {args.repeats}); flop bound "
              f"{label} = {flops / 1e9:.1f} GFLOP -> {t_bound:.3f} s; ratio {t / t_bound:.2f}x "
              f"(target <= {target}x) -> {'PASS' if t / t_bound <= target else 'FAIL'}")
    G1 = fl.ggn(model, params, x, y, lik, method="layerwise")
    G2 = fl.ggn(model, params, x, y, lik, method="jacobian")
    print(f"  relative Frobenius difference layerwise vs jacobian: "
          f"{float(jnp.linalg.norm(G1 - G2) / jnp.linalg.norm(G2)):.2e}")
    t_ggn = times["layerwise"]

    if not args.skip_naive:
        theta, unravel = ravel_pytree(params)

        def mean_loss(th):
            return jnp.mean(jax.vmap(lambda xn, yn: lik._nll(model(unravel(th), xn), yn))(x, y))

        naive = jax.jit(jax.hessian(mean_loss))
        t_naive = best_of(lambda: naive(theta), args.repeats)
        print(f"naive jax.jit(jax.hessian(mean loss)): {t_naive:.3f} s (best of {args.repeats})")
        for method, t in times.items():
            print(f"  speed-up of fl.ggn(method={method!r}) over it: {t_naive / t:.1f}x "
                  f"(target >= 5x) -> {'PASS' if t_naive / t >= 5 else 'FAIL'}")

    try:
        import curvlinops  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        print("curvlinops/torch not importable: peer comparison skipped")
    else:
        t_cl, err = curvlinops_dense_ggn(model, params, x, y, args.repeats,
                                         np.asarray(fl.ggn(model, params, x, y, lik)))
        best = min(times.values())
        from importlib.metadata import version

        print(f"curvlinops {version('curvlinops-for-pytorch')} GGNLinearOperator @ eye(d) (torch "
              f"{torch.__version__}, CrossEntropyLoss mean): {t_cl:.3f} s (best of {args.repeats}); "
              f"relative Frobenius difference to fl.ggn: {err:.2e}")
        print(f"  ratio curvlinops / fl.ggn (fastest method): {t_cl / best:.1f}x")

    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
