"""Chunked accumulation over examples, shared by the generic and the layer-wise kernels.

Every dense matrix is a weighted sum over examples, ``M = sum_n w_n M_n`` with ``w_n = 1/N``
(mean) or ``1`` (sum), computed in *chunks* of ``B`` examples under one ``lax.scan``, so that
the peak memory is ``O(B C d + d^2)`` rather than ``O(N C d)``. ``N`` is padded up to a multiple
of ``B`` by repeating the first example with weight ``0`` (a padded example contributes exactly
``0``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.flatten_util import ravel_pytree

__all__ = ["HIGHEST", "accumulate", "chunk_weights", "chunked", "default_chunk_size",
           "flat_model", "symmetrize"]

#: matrix products in full float64 precision.
HIGHEST = lax.Precision.HIGHEST
# Elements (float64) a chunk's Jacobian-sized intermediates may hold: 2**24 = 128 MiB each.
_CHUNK_BUDGET = 2 ** 24


def default_chunk_size(kind: str, num_examples: int, num_outputs: int, num_params: int) -> int:
    """Examples per chunk when the caller does not choose: keeps ``B C d <= 2^24``.

    For the Hessian (forward-over-reverse over ``d`` tangents, intermediates of size
    ``d x B x width``) the budget assumes a total activation width of 64 per example.
    """
    if kind in ("ggn", "fisher", "fisher_mc"):
        per_example = 2 * max(num_outputs, 1) * num_params
    elif kind in ("empirical_fisher", "gradient_covariance"):
        per_example = 2 * num_params
    elif kind == "hessian":
        per_example = 64 * num_params
    else:  # gradient
        per_example = 1
    return int(max(1, min(num_examples, _CHUNK_BUDGET // per_example)))


def chunked(tree, num_examples: int, chunk_size: int):
    """Reshape every leaf ``(N, ...)`` to ``(K, B, ...)``, padding with copies of example 0."""
    b = int(min(chunk_size, num_examples))
    k = int(math.ceil(num_examples / b))
    total = b * k
    idx = np.concatenate([np.arange(num_examples), np.zeros(total - num_examples, np.int64)])

    def leaf(a):
        if total != num_examples:
            a = a[idx]
        return a.reshape((k, b) + tuple(a.shape[1:]))

    return jax.tree_util.tree_map(leaf, tree)


def chunk_weights(num_examples: int, chunk_size: int, weight: float):
    """Per-example weights ``(K, B)``: ``weight`` for real examples, ``0`` for padding."""
    b = int(min(chunk_size, num_examples))
    k = int(math.ceil(num_examples / b))
    w = np.where(np.arange(b * k) < num_examples, weight, 0.0).astype(np.float64)
    return jnp.asarray(w.reshape(k, b), jnp.float64)


def accumulate(body, init, chunks):
    """``sum_k body(chunk_k)`` over the leading axis of ``chunks`` (one ``lax.scan``)."""
    num_chunks = jax.tree_util.tree_leaves(chunks)[0].shape[0]
    if num_chunks == 1:
        return body(jax.tree_util.tree_map(lambda a: a[0], chunks))

    def step(acc, chunk):
        return acc + body(chunk), None

    acc, _ = lax.scan(step, init, chunks)
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
