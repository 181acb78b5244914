"""Benchmark: K-FAC factors vs exact per-layer GGN blocks for an MLP.

Model: ``Dense(512, 512) - tanh - Dense(512, 512) - tanh - Dense(512, 10)`` (inputs of
dimension 512, 10 classes, Categorical likelihood), ``N = 512`` examples, float64.
``d = 2 * 262,656 + 5,130 = 530,442`` parameters.

What is timed (wall clock, after one warm-up call that includes the jit compile, median of
``--repeats`` runs):

* ``fl.kfac.factors`` for ``fisher_type`` = ``"exact"``, ``"mc"`` (1 sample) and
  ``"empirical"`` -- all three layers' ``(A, G)``;
* the *exact* GGN block of the last layer (``5,130 x 5,130``), computed densely as
  ``(1/N) sum_n J_n^T F_out J_n`` from the per-example Jacobians of the logits with respect
  to that layer's parameters.

The exact blocks of the two hidden layers are ``262,656 x 262,656`` (552 GB each in float64)
and cannot be formed here; their cost is *extrapolated* from the last-layer block by the flop
count of the contraction ``J^T F J`` (proportional to ``d_layer^2 N C``), i.e. multiplied by
``(262,656 / 5,130)^2 ~ 2,621``. The extrapolation is stated as such in the output.

Usage: ``python benchmarks/bench_kfac.py [--n 512] [--repeats 5]``. The load average is
printed before and after (the machine may be shared). For the comparison with kfac-jax see
``benchmarks/kfac_jax_compare.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a source checkout

import jax
import jax.numpy as jnp

import fisherlab as fl


def _time(fn, repeats):
    jax.block_until_ready(fn())  # warm-up (compile)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)

    w, N, C = args.width, args.n, 10
    model = fl.nn.Sequential([fl.nn.Dense(w, w), fl.nn.Tanh(), fl.nn.Dense(w, w), fl.nn.Tanh(),
                              fl.nn.Dense(w, C)])
    lik = fl.Categorical()
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (N, w), jnp.float64)
    y = jax.random.randint(jax.random.key(2), (N,), 0, C)
    print(f"model: {model}\nN = {N}, d = {model.num_params}, cpus = {os.cpu_count()}, "
          f"devices = {jax.devices()}\nload average (1, 5, 15 min) before: {os.getloadavg()}")

    times = {}
    for ft in ("exact", "mc", "empirical"):
        kw = dict(key=jax.random.key(3)) if ft == "mc" else {}
        times[ft] = _time(lambda: fl.kfac.factors(model, params, x, y, lik, fisher_type=ft, **kw),
                          args.repeats)
        print(f"kfac.factors fisher_type={ft!r:12} {times[ft]:8.3f} s")

    (W1, b1), (W2, b2), (W3, b3) = params

    @jax.jit
    def last_block(W3, b3, x):
        def feats(xn):
            return jnp.tanh(W2 @ jnp.tanh(W1 @ xn + b1) + b2)

        def logits(theta, h):
            Wl = theta[:W3.size].reshape(W3.shape)
            return Wl @ h + theta[W3.size:]

        theta = jnp.concatenate([W3.ravel(), b3])
        h = jax.vmap(feats)(x)
        J = jax.vmap(lambda hn: jax.jacobian(logits)(theta, hn))(h)  # (N, C, d_L)
        F = jax.vmap(lik._output_fisher)(jax.vmap(lambda hn: logits(theta, hn))(h))
        return jnp.einsum("nci,ncd,ndj->ij", J, F, J) / N

    t_last = _time(lambda: last_block(W3, b3, x), args.repeats)
    d_last, d_hidden = W3.size + b3.size, W1.size + b1.size
    ratio = (d_hidden / d_last) ** 2
    t_extrap = t_last + 2 * ratio * t_last
    print(f"exact GGN block, last layer ({d_last} x {d_last}), dense: {t_last:8.3f} s")
    print(f"exact GGN blocks, all layers: EXTRAPOLATED by flop count "
          f"(x {ratio:.0f} per hidden layer, {d_hidden} x {d_hidden} each = "
          f"{d_hidden ** 2 * 8 / 1e9:.0f} GB): ~{t_extrap:,.0f} s")
    print(f"speed-up of exact K-FAC factors over the (extrapolated) exact blocks: "
          f"~{t_extrap / times['exact']:,.0f}x; over the last-layer block alone: "
          f"{t_last / times['exact']:.1f}x")
    print(f"load average (1, 5, 15 min) after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
