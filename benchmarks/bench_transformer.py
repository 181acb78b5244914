"""Benchmark: dense GGN of a 2-block pre-LN transformer (d ~ 4,800, N R = 256 tokens) vs curvlinops.

One PyTorch module (token features -> input projection -> 2 pre-LN blocks with 2-head
self-attention and a GELU MLP -> final LayerNorm -> per-token head over C = 10 classes), one
batch of ``N = 16`` sequences of ``R = 16`` tokens, ``CrossEntropyLoss(reduction="mean")`` over
the flattened tokens. Prints (a script, not a test):

* fisherlab's dense GGN through the torch bridge (``fl.testing.torch``: the module converted to
  ``fl.nn`` layers, ``fl.ggn(..., tokens="flatten")``, per-example Jacobians and one
  ``J^T (Lambda J)`` product), wall time after a warm-up, best of ``--repeats``;
* curvlinops' dense GGN on the same module, weights and batch (``GGNLinearOperator`` applied to
  the identity, in blocks of ``--block`` columns because its ``vmap`` over all ``d`` columns at
  once does not fit in memory; ``scaled_dot_product_attention`` on its ``MATH`` backend, since
  the fused CPU kernel has no forward-mode AD), best of ``--repeats``;
* the ratio (target >= 3x), the relative Frobenius difference of the two matrices, and the load
  average before and after (the machine is shared: the figures are noisy).

Usage: ``python3 benchmarks/bench_transformer.py [--repeats 2] [--block 600]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
jax.config.update("jax_enable_x64", True)

import fisherlab as fl  # noqa: E402

D_IN, D, HEADS, HIDDEN, C, N, R = 8, 16, 2, 32, 10, 16, 16


def make_module(torch):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1 = nn.LayerNorm(D)
            self.attn = nn.MultiheadAttention(D, HEADS, batch_first=True)
            self.ln2 = nn.LayerNorm(D)
            self.mlp = nn.Sequential(nn.Linear(D, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, D))
            self.register_buffer("mask", torch.triu(torch.ones(R, R, dtype=torch.bool), 1))

        def forward(self, x):
            h = self.ln1(x)
            x = x + self.attn(h, h, h, need_weights=False, attn_mask=self.mask)[0]
            return x + self.mlp(self.ln2(x))

    class Transformer(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(D_IN, D)
            self.blocks = nn.Sequential(Block(), Block())
            self.ln = nn.LayerNorm(D)
            self.head = nn.Linear(D, C)

        def forward(self, x):
            return self.head(self.ln(self.blocks(self.proj(x))))

    class ClassesSecond(nn.Module):
        """(N, R, C) -> (N, C, R): PyTorch's layout for cross-entropy over tokens."""

        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x).transpose(1, 2)

    torch.manual_seed(0)
    net = Transformer().double()
    with torch.no_grad():  # move the norms' affine parameters away from (1, 0)
        for name, p in net.named_parameters():
            if "ln" in name:
                p.add_(0.3 * torch.randn_like(p))
    return net, ClassesSecond(net)


def best_of(fn, repeats):
    out = fn()  # warm-up (compile / first call)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--block", type=int, default=600, help="curvlinops columns per matmat")
    parser.add_argument("--skip-curvlinops", action="store_true")
    args = parser.parse_args()

    import torch

    from fisherlab.testing import torch as flt

    print(f"jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__}, "
          f"cpus {os.cpu_count()}, torch threads {torch.get_num_threads()}")
    print(f"load average before: {os.getloadavg()}")
    net, net_cl = make_module(torch)
    g = torch.Generator().manual_seed(1)
    X = torch.randn(N, R, D_IN, dtype=torch.float64, generator=g)
    y = torch.randint(0, C, (N, R), generator=g)
    loss = torch.nn.CrossEntropyLoss(reduction="mean")
    d = sum(p.numel() for p in net.parameters())
    print(f"2-block pre-LN transformer: d = {d}, N = {N}, R = {R} (N R = {N * R} tokens), "
          f"C = {C}, CrossEntropyLoss(mean) over the flattened tokens")

    P = flt.problem(net, X, y, loss)

    def fisherlab_ggn():
        G = fl.ggn(P.f, P.params, P.x, P.y, P.likelihood, tokens="flatten")
        return np.asarray(jax.block_until_ready(G))

    t_fl, G_fl = best_of(fisherlab_ggn, args.repeats)
    print(f"fisherlab fl.ggn (torch bridge, tokens='flatten'): {t_fl:.2f} s "
          f"(best of {args.repeats})")
    if args.skip_curvlinops:
        return
    import curvlinops
    from importlib.metadata import version
    from torch.nn.attention import SDPBackend, sdpa_kernel

    params = list(net_cl.parameters())

    def curvlinops_ggn():
        op = curvlinops.GGNLinearOperator(net_cl, loss, params, [(X, y)],
                                          check_deterministic=False)
        cols = []
        with sdpa_kernel(SDPBackend.MATH):
            for start in range(0, d, args.block):
                stop = min(d, start + args.block)
                eye = torch.zeros(d, stop - start, dtype=torch.float64)
                eye[start:stop] = torch.eye(stop - start, dtype=torch.float64)
                cols.append((op @ eye).detach())
        return torch.cat(cols, dim=1).numpy()

    t_cl, G_cl = best_of(curvlinops_ggn, args.repeats)
    err = float(np.linalg.norm(G_fl - G_cl) / np.linalg.norm(G_cl))
    print(f"curvlinops {version('curvlinops-for-pytorch')} GGNLinearOperator @ I (blocks of "
          f"{args.block} columns): {t_cl:.2f} s (best of {args.repeats})")
    print(f"relative Frobenius difference fisherlab vs curvlinops: {err:.2e}")
    ratio = t_cl / t_fl
    print(f"ratio curvlinops / fisherlab: {ratio:.1f}x (target >= 3x) -> "
          f"{'PASS' if ratio >= 3 else 'FAIL'}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
