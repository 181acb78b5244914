r"""Layer-wise (Kronecker-structured) Gauss-Newton-type matrices for ``fl.nn.Sequential`` MLPs.

For a chain of ``Dense`` layers and elementwise activations, the Jacobian of the outputs
with respect to a weight has Kronecker structure: with ``abar_k = [a_{k-1}; 1]`` the
(augmented) input of layer ``k`` and ``B_k = d f / d s_k`` (``C x o_k``, ``s_k`` its
pre-activation),

.. math:: \frac{\partial f_c}{\partial [W_k\ b_k]_{o i}} = (B_k)_{c o}\, (\bar a_k)_i ,

so every block of ``M = w sum_n J_n^T Lambda_n J_n`` factorises per example:

.. math::
    M_{kl}[(o,i),(p,j)] = w \sum_n (D_n)_{op}\, (\bar a_{n,k})_i (\bar a_{n,l})_j,
    \qquad D_n = B_{n}^\top \Lambda_n B_{n} \ (O \times O,\ O = \textstyle\sum_k o_k).

The sum over the ``C`` outputs is done once in the small ``O x O`` space, and each block is
one matrix product ``(o_k o_l x B)(B x i_k i_l)``: about ``2 N d^2`` flops for the whole
matrix instead of ``2 N C d^2`` for ``J^T (Lambda J)`` -- a factor ``C`` fewer. Only the
blocks on and above the diagonal are multiplied out: each layer's outputs are split into
*units* of about :data:`UNIT_PARAMS` parameters, and for a unit ``u`` of layer ``k`` the rows
``(o, p)`` with ``o`` in ``u`` and ``p`` in ``u`` or a later unit of the same layer form one
matrix product with every later layer ``l > k``'s (full) blocks. That is about half of
``2 N d^2`` (``(1 + sum_u d_u^2 / d^2) / 2``); the block below the diagonal is written as the
transpose of the one above it, the blocks of a unit with itself are made exactly symmetric,
and the per-chunk products are summed in this compact form and written into the ``d x d``
result once (:mod:`fisherlab.curvature._symmetric`). This is the
same identity that K-FAC starts from (Martens & Grosse, 2015, §3), used here *without* its
approximation (all cross terms kept). Exact: tested against the generic Jacobian path
and the naive per-example loop.

Only ``Sequential`` models made of ``Dense`` layers (on 1-D inputs) and elementwise
activations (``Tanh``, ``Sigmoid``, ``ReLU``, ``Identity``) qualify (:func:`supports`);
everything else uses the generic path.

References:
  J. Martens & R. Grosse, "Optimizing neural networks with Kronecker-factored approximate
  curvature", ICML 2015, §3; M. Johnson, "Natural gradients and K-FAC" (note, 2017), §8 and App. A.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab import nn as _nn
from fisherlab._core import sampling
from fisherlab.curvature._chunking import HIGHEST, accumulate
from fisherlab.curvature._symmetric import write, write_transposed

__all__ = ["UNIT_PARAMS", "build", "compact_entries", "per_example_entries", "supports"]

#: target number of parameters in a unit (a group of a layer's outputs, see the module doc).
UNIT_PARAMS = 384


def _elementwise_types():
    return tuple(t for t in (getattr(_nn, n, None) for n in ("Tanh", "Sigmoid", "ReLU",
                                                              "Identity")) if t is not None)


def supports(f, params, x) -> bool:
    """Whether ``f`` is a ``Sequential`` of Dense + elementwise layers on (N, in) inputs."""
    if not isinstance(f, _nn.Sequential) or not hasattr(x, "ndim") or x.ndim != 2:
        return False
    allowed = (_nn.Dense,) + _elementwise_types()
    if not all(type(layer) in allowed for layer in f.layers):
        return False
    dense = [layer for layer in f.layers if isinstance(layer, _nn.Dense)]
    if not dense or x.shape[1] != dense[0].in_features:
        return False
    if not isinstance(params, (list, tuple)) or len(params) != len(dense):
        return False
    for layer, p in zip(dense, params):
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            return False
        W, b = p
        if tuple(W.shape) != (layer.out_features, layer.in_features) or tuple(b.shape) != (
                layer.out_features,):
            return False
    return True


class _Layer(NamedTuple):
    """Static sizes of one Dense layer: ``o`` outputs, ``i`` inputs, ``m = i + 1``, ``start``
    (its first index in the flat parameters), ``out_start`` (its first row of ``D``), ``units``
    (``(s, e)`` output ranges) and ``rows`` (the ``(o, p)`` pairs of its diagonal product)."""

    o: int
    i: int
    start: int
    out_start: int
    units: tuple
    rows: tuple

    @property
    def m(self) -> int:
        return self.i + 1


def _units(o: int, m: int) -> tuple:
    count = max(1, min(o, round(o * m / UNIT_PARAMS)))
    edges = np.linspace(0, o, count + 1).round().astype(int)
    return tuple((int(a), int(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a)


def _layout(model) -> tuple[_Layer, ...]:
    dense = [layer for layer in model.layers if isinstance(layer, _nn.Dense)]
    out, start, out_start = [], 0, 0
    for layer in dense:
        o, i = layer.out_features, layer.in_features
        units = _units(o, i + 1)
        rows = tuple((a, b) for s, e in units for a in range(s, e) for b in range(s, o))
        out.append(_Layer(o, i, start, out_start, units, rows))
        start += o * (i + 1)
        out_start += o
    return tuple(out)


def compact_entries(model) -> int:
    """Float64 entries of the compact accumulators (the products above the diagonal)."""
    lay = _layout(model)
    diag = sum(len(a.rows) * a.m ** 2 for a in lay)
    off = sum(a.o * b.o * a.m * b.m for k, a in enumerate(lay) for b in lay[k + 1:])
    return diag + off


def per_example_entries(model, num_outputs: int, num_samples: int = 1) -> int:
    """Float64 entries of one example's intermediates (output Jacobians, ``D``, Kronecker
    products of inputs)."""
    lay = _layout(model)
    total_out = sum(a.o for a in lay)
    pairs = sum(a.m * b.m for k, a in enumerate(lay) for b in lay[k:])
    rows = sum(len(a.rows) for a in lay) + sum(a.o * b.o for k, a in enumerate(lay)
                                               for b in lay[k + 1:])
    return (2 * total_out ** 2 + 2 * num_outputs * total_out + 2 * pairs + rows
            + num_outputs * (num_outputs + num_samples))


def _write_parts(m, P, rows: tuple, cols: tuple, mirror: bool):
    """Write ``P[o, p, i', j']`` (``i' = i`` a weight input, ``i' = i_k`` the bias) into ``m``
    in parameter order: ``W`` rows ``(o, i)`` from ``rows[0]``, bias rows ``o`` from ``rows[1]``
    (the same for the columns); with ``mirror`` also the transpose below the diagonal."""
    oa, ob, ma, mb = P.shape
    ia, ib = ma - 1, mb - 1
    parts = ((P[:, :, :ia, :ib].transpose(0, 2, 1, 3).reshape(oa * ia, ob * ib), 0, 0),
             (P[:, :, :ia, ib].transpose(0, 2, 1).reshape(oa * ia, ob), 0, 1),
             (P[:, :, ia, :ib].reshape(oa, ob * ib), 1, 0),
             (P[:, :, ia, ib], 1, 1))
    for block, r, c in parts:
        m = write(m, block, rows[r], cols[c])
        if mirror:
            m = write_transposed(m, block, cols[c], rows[r])
    return m


def _self_symmetric(P):
    """``P[o, p, i, j]`` of a unit with itself made exactly symmetric under
    ``(o, i) <-> (p, j)``: the entries with ``(o, i) <= (p, j)`` (lexicographically) are kept."""
    o, m = P.shape[0], P.shape[2]
    io, ii = np.arange(o), np.arange(m)
    keep = ((io[:, None, None, None] < io[None, :, None, None])
            | ((io[:, None, None, None] == io[None, :, None, None])
               & (ii[None, None, :, None] <= ii[None, None, None, :])))
    return jnp.where(keep, P, P.transpose(1, 0, 3, 2))


def _assemble(lay, compact, d: int):
    diag, off = compact
    m = jnp.zeros((d, d), jnp.float64)

    def at(layer, s):  # first W row/column and first bias row/column of outputs s.. of layer
        return layer.start + s * layer.i, layer.start + layer.o * layer.i + s

    for k, a in enumerate(lay):
        r0 = 0
        for s, e in a.units:
            n_rows = (e - s) * (a.o - s)
            P = diag[k][r0:r0 + n_rows].reshape(e - s, a.o - s, a.m, a.m)
            r0 += n_rows
            m = _write_parts(m, _self_symmetric(P[:, :e - s]), at(a, s), at(a, s), False)
            if e < a.o:
                m = _write_parts(m, P[:, e - s:], at(a, s), at(a, e), True)
        for b, Q in zip(lay[k + 1:], off[k]):
            m = _write_parts(m, Q.reshape(a.o, b.o, a.m, b.m), at(a, 0), at(b, 0), True)
    return m


def build(model, likelihood, kind: str, num_samples: int, chunk_size: int):
    """``(partial, finish)`` for ``kind`` in ``ggn``/``fisher``/``fisher_mc``.

    ``partial(params, x, extra, w)`` is the compact sum over the examples ``x`` ``(N, in)``
    (``extra``: the targets, ``None`` or one PRNG key per example; ``w`` ``(N,)`` the weights),
    additive over examples; ``finish(compact)`` writes the ``(d, d)`` matrix.
    """
    lay = _layout(model)
    d = sum(a.o * a.m for a in lay)
    diag_rows = [(np.array([a.out_start + r[0] for r in a.rows], np.int32),
                  np.array([a.out_start + r[1] for r in a.rows], np.int32)) for a in lay]

    def forward(params, eps, xn):
        a, k, inputs = xn, 0, []
        for layer in model.layers:
            if isinstance(layer, _nn.Dense):
                inputs.append(a)
                a = layer(params[k], a) + eps[k]
                k += 1
            else:
                a = layer(None, a)
        return a, (a, inputs)

    def body(params, chunk, wb):
        xb, extra = chunk
        eps0 = tuple(jnp.zeros((a.o,), jnp.float64) for a in lay)
        jac = jax.vmap(jax.jacrev(lambda e, xn: forward(params, e, xn), has_aux=True),
                       in_axes=(None, 0))
        Bs, (outs, inputs) = jac(eps0, xb)  # Bs[k]: (B, C, o_k)
        Ball = jnp.concatenate(Bs, axis=2)  # (B, C, O)
        if kind == "ggn":
            lam = jax.vmap(likelihood._output_hessian)(outs, extra)
        elif kind == "fisher":
            lam = jax.vmap(likelihood._output_fisher)(outs)
        else:  # fisher_mc
            scores = sampling.output_grads(likelihood, outs, sampling.sample_each(
                likelihood, extra, outs, num_samples))
            lam = jnp.einsum("bsc,bse->bce", scores, scores, precision=HIGHEST) / num_samples
        lam = lam * wb[:, None, None]
        # D and the input products are formed with the examples last, so that every block
        # product contracts the last axes of two row-major operands (the layout XLA's CPU
        # backend multiplies fastest from JAX 0.10 on, and no slower before)
        D = jnp.einsum("bco,bce,bep->opb", Ball, lam, Ball, precision=HIGHEST)  # (O, O, B)
        nb = xb.shape[0]
        abar = [jnp.concatenate([u.T, jnp.ones((1, nb), u.dtype)], axis=0) for u in inputs]

        def kron_inputs(k, l):  # (m_k m_l, B)
            return (abar[k][:, None, :] * abar[l][None, :, :]).reshape(-1, nb)

        def product(rows, k, l):  # (r, B) x (m_k m_l, B)^T
            return jnp.matmul(rows, kron_inputs(k, l).T, precision=HIGHEST)

        diag = tuple(product(D[ro, rp], k, k) for k, (ro, rp) in enumerate(diag_rows))
        off = tuple(tuple(
            product(D[a.out_start:a.out_start + a.o, b.out_start:b.out_start + b.o]
                    .reshape(a.o * b.o, nb), k, l)
            for l, b in enumerate(lay) if l > k) for k, a in enumerate(lay))
        return diag, off

    def partial(params, x, extra, w):
        return accumulate(lambda chunk, wb: body(params, chunk, wb), (x, extra), w, chunk_size)

    def finish(compact):
        return _assemble(lay, compact, d)

    return partial, finish
