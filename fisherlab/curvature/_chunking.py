"""Chunked accumulation over examples, shared by the generic and the layer-wise kernels.

Every curvature quantity is a weighted sum over examples, ``M = sum_n w_n M_n`` with
``w_n = 1/N`` (mean) or ``1`` (sum). Inside a compiled kernel the examples are processed in
*chunks* of ``B`` under one ``lax.scan`` (:func:`accumulate`), so the memory of the per-example
intermediates is ``O(B ...)`` rather than ``O(N ...)``; the chunk size is chosen by
:mod:`fisherlab.curvature._memory`. When ``B`` does not divide ``N`` the batch is padded with
copies of its first example carrying weight ``0``, so a padded example contributes exactly
``0``. :func:`balanced_chunk_size` spreads the examples evenly over the fewest chunks of at
most the requested size, so at most ``K - 1`` examples are padding.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

__all__ = ["HIGHEST", "accumulate", "balanced_chunk_size", "flat_model", "symmetrize"]

#: matrix products in full float64 precision.
HIGHEST = lax.Precision.HIGHEST


def balanced_chunk_size(num_examples: int, max_chunk: int) -> int:
    """The chunk size ``B <= max_chunk`` covering ``N`` examples in the fewest, equal chunks."""
    max_chunk = max(1, min(int(max_chunk), num_examples))
    k = math.ceil(num_examples / max_chunk)
    return math.ceil(num_examples / k)


def _split(tree, weights, chunk_size: int):
    """Leaves ``(N, ...)`` -> ``(K, B, ...)`` (padding: example 0, weight 0)."""
    n = weights.shape[0]
    k = math.ceil(n / chunk_size)
    total = k * chunk_size
    idx = np.concatenate([np.arange(n), np.zeros(total - n, np.int64)])

    def leaf(a):
        if total != n:
            a = jnp.take(a, idx, axis=0)
        return a.reshape((k, chunk_size) + tuple(a.shape[1:]))

    w = jnp.concatenate([weights, jnp.zeros((total - n,), weights.dtype)]) if total != n \
        else weights
    return jax.tree_util.tree_map(leaf, tree), w.reshape(k, chunk_size)


def accumulate(body, data, weights, chunk_size: int):
    """``sum_k body(data_k, weights_k)`` over chunks of ``chunk_size`` examples (traced).

    Args:
      body: ``(data chunk, weights (B,)) -> pytree`` of arrays, additive over examples.
      data: pytree of arrays with leading axis ``N`` (``None`` leaves allowed).
      weights: ``(N,)`` per-example weights.
      chunk_size: ``B`` (at most ``N``); one chunk runs without a loop.
    """
    n = weights.shape[0]
    b = int(min(chunk_size, n))
    if b >= n:
        return body(data, weights)
    chunks, w = _split(data, weights, b)
    shapes = jax.eval_shape(body, jax.tree_util.tree_map(lambda a: a[0], chunks), w[0])
    init = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    def step(acc, chunk):
        return jax.tree_util.tree_map(jnp.add, acc, body(*chunk)), None

    acc, _ = lax.scan(step, init, (chunks, w))
    return acc


def symmetrize(m):
    """``(m + m^T) / 2``: removes the rounding asymmetry of an accumulated symmetric matrix."""
    return 0.5 * (m + m.T)


def flat_model(f, params):
    """``(theta, f_flat)``: the flat parameters and ``f_flat(theta, x_n) = f(unravel(theta), x_n)``."""
    theta, unravel = ravel_pytree(params)

    def f_flat(th, xn):
        return f(unravel(th), xn)

    return theta, f_flat
