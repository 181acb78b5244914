"""Scaling benchmark: dense GGN against N and d, matrix-free products against d.

Prints (a script, not a test), in one run, with the load average before and after:

* dense ``fl.ggn`` (layer-wise method, categorical likelihood, C = 10) on an MLP
  ``20-h-h-10`` (tanh): wall time (best of ``--repeats`` after a warm-up) against the number of
  examples N at fixed d, and against d (the width h) at fixed N; beside each time the flop
  bound ``2 N d^2`` at the matrix-multiply rate measured in the same run;
* the peak memory of each dense computation: fisherlab's own estimate (the memory plan checked
  before allocating) and the buffers of XLA's compiled kernel (arguments + outputs +
  temporaries, ``compiled.memory_analysis()``);
* the matrix-free ``fl.ggn_vp`` product (one call, N = 256) against d up to ~10^6: time and the
  compiled kernel's buffers, which grow like ``N d`` instead of ``d^2``.

Writes the figures to ``--figure`` (default docs/images/scaling.png) and the numbers as JSON
beside it. Usage: ``python3 benchmarks/bench_scaling.py [--repeats 2] [--max-n 100000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
jax.config.update("jax_enable_x64", True)

import fisherlab as fl  # noqa: E402
from fisherlab.curvature import _kernels, _memory  # noqa: E402

LIK = fl.Categorical()
C = 10


def best_of(fn, repeats):
    jax.block_until_ready(fn())  # warm-up (compile)
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
    return 2.0 * n ** 3 / best_of(lambda: mm(a, b), repeats)


def problem(width, n, seed=0):
    model = fl.nn.Sequential([fl.nn.Dense(20, width), fl.nn.Tanh(), fl.nn.Dense(width, width),
                              fl.nn.Tanh(), fl.nn.Dense(width, C)])
    params = model.init(jax.random.key(seed))
    x = jax.random.normal(jax.random.key(seed + 1), (n, 20), jnp.float64)
    y = jax.random.randint(jax.random.key(seed + 2), (n,), 0, C)
    return model, params, x, y


class Spy:
    """Records the jitted kernel and arguments of the last kernel call."""

    def __init__(self):
        self.last = None
        self._original = _kernels.compiled

    def __enter__(self):
        def spy(name, f, likelihood, *static, mesh=None):
            kernel = self._original(name, f, likelihood, *static, mesh=mesh)

            def call(*args):
                self.last = (kernel.jitted, args)
                return kernel(*args)

            return call

        _kernels.compiled = spy
        return self

    def __exit__(self, *exc):
        _kernels.compiled = self._original

    def compiled_bytes(self):
        jitted, args = self.last
        m = jitted.lower(*args).compile().memory_analysis()
        if m is None:
            return None
        return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes
                   - m.alias_size_in_bytes)


def dense_point(width, n, rate, repeats):
    model, params, x, y = problem(width, n)
    d = model.num_params
    with Spy() as spy:
        t = best_of(lambda: fl.ggn(model, params, x, y, LIK), repeats)
        xla = spy.compiled_bytes()
    plan = _memory.plan("ggn", f=model, num_examples=n, num_outputs=C, num_params=d,
                        method="layerwise", memory_budget="off")
    bound = 2.0 * n * d ** 2 / rate
    row = dict(n=n, d=d, width=width, time=t, bound=bound, ratio=t / bound,
               estimate=plan.peak, xla=xla, chunk=plan.chunk_size)
    print(f"  N = {n:>6}, d = {d:>6}: {t:8.3f} s, bound 2 N d^2 {bound:8.3f} s "
          f"(ratio {t / bound:4.2f}x); peak estimate {plan.peak / 1e6:8.1f} MB, XLA buffers "
          f"{(xla or 0) / 1e6:8.1f} MB, chunks of {plan.chunk_size}", flush=True)
    return row


def product_point(width, n, repeats):
    model, params, x, y = problem(width, n)
    d = model.num_params
    v = jax.random.normal(jax.random.key(9), (d,), jnp.float64)
    with Spy() as spy:
        mv = fl.ggn_vp(model, params, x, y, LIK)
        t = best_of(lambda: mv(v), repeats)
        xla = spy.compiled_bytes()
    row = dict(n=n, d=d, width=width, time=t, xla=xla, dense_bytes=8 * d * d)
    print(f"  N = {n:>6}, d = {d:>8}: {t:8.4f} s per product; XLA buffers "
          f"{(xla or 0) / 1e6:8.1f} MB (a dense matrix would be {8 * d * d / 1e9:9.1f} GB)",
          flush=True)
    return row


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    rows = results["dense_vs_n"]
    ax = axes[0]
    ax.loglog([r["n"] for r in rows], [r["time"] for r in rows], "o-", label="fl.ggn (layer-wise)")
    ax.loglog([r["n"] for r in rows], [r["bound"] for r in rows], "k--",
              label="flop bound 2 N d² / rate")
    ax.set(xlabel="examples N", ylabel="seconds", title=f"dense GGN, d = {rows[0]['d']:,}")
    ax2 = ax.twinx()
    ax2.loglog([r["n"] for r in rows], [r["estimate"] / 1e6 for r in rows], "s:", color="C2",
               label="peak estimate (MB)")
    ax2.loglog([r["n"] for r in rows], [(r["xla"] or 0) / 1e6 for r in rows], "^:",
               color="C3", label="XLA buffers (MB)")
    ax2.set_ylabel("MB")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8)
    rows = results["dense_vs_d"]
    ax = axes[1]
    ax.loglog([r["d"] for r in rows], [r["time"] for r in rows], "o-", label="fl.ggn time (s)")
    ax.loglog([r["d"] for r in rows], [r["bound"] for r in rows], "k--", label="flop bound (s)")
    ax2 = ax.twinx()
    ax2.loglog([r["d"] for r in rows], [r["estimate"] / 1e6 for r in rows], "s:", color="C2",
               label="peak estimate (MB)")
    ax2.loglog([r["d"] for r in rows], [(r["xla"] or 0) / 1e6 for r in rows], "^:",
               color="C3", label="XLA buffers (MB)")
    ax2.set_ylabel("MB")
    ax.set(xlabel="parameters d", ylabel="seconds", title=f"dense GGN, N = {rows[0]['n']:,}")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8)
    rows = results["product_vs_d"]
    ax = axes[2]
    ax.loglog([r["d"] for r in rows], [r["time"] for r in rows], "o-", label="fl.ggn_vp (s)")
    ax.set(xlabel="parameters d", ylabel="seconds per product",
           title=f"matrix-free G v, N = {rows[0]['n']}")
    ax2 = ax.twinx()
    ax2.loglog([r["d"] for r in rows], [(r["xla"] or 0) / 1e6 for r in rows], "^:",
               color="C3", label="XLA buffers (MB)")
    ax2.loglog([r["d"] for r in rows], [r["dense_bytes"] / 1e6 for r in rows], "k--",
               label="a dense d × d matrix (MB)")
    ax2.set_ylabel("MB")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8)
    for ax in axes:
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    fig.suptitle(f"{results['machine']}; load average {results['load_before'][0]:.1f} → "
                 f"{results['load_after'][0]:.1f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--max-n", type=int, default=100_000)
    parser.add_argument("--width", type=int, default=16, help="hidden width of the N sweep")
    parser.add_argument("--n-for-d", type=int, default=1000)
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32, 48, 64])
    parser.add_argument("--product-widths", type=int, nargs="+",
                        default=[16, 64, 256, 512, 1000])
    parser.add_argument("--figure", default=os.path.join(os.path.dirname(__file__), "..",
                                                         "docs", "images", "scaling.png"))
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the figure from the JSON written by an earlier run")
    args = parser.parse_args()
    if args.plot_only:
        with open(os.path.splitext(args.figure)[0] + ".json") as fh:
            plot(json.load(fh), args.figure)
        return

    load_before = os.getloadavg()
    machine = f"jax {jax.__version__} {jax.default_backend()}, {os.cpu_count()} cpus"
    print(f"{machine}; load average before: {load_before}")
    rate = matmul_rate()
    print(f"float64 matmul rate: {rate / 1e9:.2f} GFLOP/s")
    results = dict(machine=machine, load_before=load_before, rate=rate)
    ns = [n for n in (1_000, 3_000, 10_000, 30_000, 100_000) if n <= args.max_n]
    print(f"dense fl.ggn against N (MLP 20-{args.width}-{args.width}-10):")
    results["dense_vs_n"] = [dense_point(args.width, n, rate, args.repeats) for n in ns]
    print(f"dense fl.ggn against d (N = {args.n_for_d}):")
    results["dense_vs_d"] = [dense_point(w, args.n_for_d, rate, args.repeats)
                             for w in args.widths]
    print("matrix-free fl.ggn_vp against d (N = 256):")
    results["product_vs_d"] = [product_point(w, 256, args.repeats) for w in args.product_widths]
    results["load_after"] = os.getloadavg()
    print(f"load average after: {results['load_after']}")
    with open(os.path.splitext(args.figure)[0] + ".json", "w") as fh:
        json.dump(results, fh, indent=1)
    plot(results, args.figure)
    print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
