r"""A symmetric ``d x d`` matrix computed from its upper block triangle and mirrored.

Every dense curvature matrix is symmetric, ``M = A^T B = sum_r a_r b_r^T`` with ``A^T B``
symmetric in exact arithmetic (``A = J, B = Lambda J``; ``A = B = g``; ``R`` rows: examples
times outputs). Splitting the parameters into contiguous *panels* ``P_1, ..., P_p`` (widths
``w_a``), only the blocks on and above the diagonal

.. math:: Q_{ab} = M[P_a, P_b] = A[:, P_a]^\top B[:, P_b],\qquad a \le b,

are multiplied out -- a fraction ``(1 + sum_a w_a^2 / d^2) / 2`` of the products
(``~(1 + 1/p)/2`` for equal panels) -- and the block below the diagonal is the transpose of the
one above it. Each diagonal block is made exactly symmetric by keeping its upper triangle, so
the result equals its transpose bit for bit (as a symmetric reference must), and differs from
the full product ``A^T B`` only by rounding. ``A`` and ``B`` are transposed once to ``(d, R)``
so that every panel is a contiguous block of rows and every block product an ``(w_a, R)`` by
``(R, w_b)`` matrix product with no copies of the operands per block.

The result is written once into a ``d x d`` buffer with in-place ``dynamic_update_slice``s; a
transposed copy is written in slabs of :data:`SLAB` rows, which keeps the strided reads of the
transpose within cache (a whole-block transpose is several times slower on a CPU).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from jax import lax

from fisherlab.curvature._chunking import HIGHEST

__all__ = ["PANEL_WIDTH", "SLAB", "assemble", "block_products", "panels", "symmetric_upper",
           "write", "write_transposed"]

#: rows of a block transposed at a time when writing its mirror image.
SLAB = 64
#: target panel width: blocks of at least this many rows keep the matrix products efficient.
PANEL_WIDTH = 384


def panels(d: int, width: int = PANEL_WIDTH) -> tuple[tuple[int, int], ...]:
    """Contiguous ``(start, stop)`` panels of nearly equal width (about ``width``) covering
    ``d``."""
    p = max(1, math.ceil(d / width))
    edges = np.linspace(0, d, p + 1).round().astype(int)
    return tuple((int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a)


def block_products(a, b, parts) -> tuple:
    """The blocks ``Q[i][j - i] = a[:, P_i]^T b[:, P_j]`` (``j >= i``) of ``a^T b`` for ``a``,
    ``b`` of shape ``(R, d)`` and the panels ``parts``; one matrix product per block."""
    at, bt = a.T, b.T
    ap = [at[p0:p1] for p0, p1 in parts]
    bp = [bt[p0:p1] for p0, p1 in parts]
    return tuple(tuple(jnp.matmul(ap[i], bp[j].T, precision=HIGHEST)
                       for j in range(i, len(parts))) for i in range(len(parts)))


def symmetric_upper(block):
    """``block`` ``(w, w)`` with its strict lower triangle replaced by the upper one's mirror."""
    w = block.shape[0]
    upper = np.triu(np.ones((w, w), bool))
    return jnp.where(upper, block, block.T)


def write(m, block, row: int, col: int):
    """``m`` with ``block`` written at ``(row, col)`` (in place under ``jit``)."""
    return lax.dynamic_update_slice(m, block, (row, col))


def write_transposed(m, block, row: int, col: int, slab: int = SLAB):
    """``m`` with ``block.T`` written at ``(row, col)``, transposed ``slab`` rows at a time."""
    for r0 in range(0, block.shape[0], slab):
        m = lax.dynamic_update_slice(m, block[r0:r0 + slab].T, (row, col + r0))
    return m


def assemble(blocks, parts, d: int):
    """The symmetric ``(d, d)`` matrix whose blocks on and above the diagonal over the panels
    ``parts`` are ``blocks`` (as returned by :func:`block_products`)."""
    m = jnp.zeros((d, d), blocks[0][0].dtype)
    for i, (p0, _) in enumerate(parts):
        m = write(m, symmetric_upper(blocks[i][0]), p0, p0)
        for j in range(i + 1, len(parts)):
            q0 = parts[j][0]
            m = write(m, blocks[i][j - i], p0, q0)
            m = write_transposed(m, blocks[i][j - i], q0, p0)
    return m
