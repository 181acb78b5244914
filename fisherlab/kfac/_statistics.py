"""Per-example layer inputs and pre-activation gradients, and their second moments.

For every parametric layer ``k`` and example ``n`` the K-FAC references need the layer input
as a matrix ``a_{n,k}`` (``(P, in')``, one row per weight-sharing position) and the
pre-activation gradients ``v_{n,k,j} = J_{s_k}^T u_{n,j}`` (``(K, P, out)``) for the ``K``
output cotangents of :mod:`fisherlab.kfac._cotangents`. All layers' gradients come from one
reverse pass per cotangent: the forward pass adds a zero offset to every pre-activation, and
the gradient with respect to the offsets is the gradient with respect to the pre-activations.
The ``K`` reverse passes are one ``vmap`` of the same VJP. :func:`second_moment` turns the rows
into the (augmented) second-moment matrices that become ``A`` and ``G``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fisherlab.kfac._cotangents import output_cotangents
from fisherlab.kfac._layers import forward_with_offsets

__all__ = ["batched", "per_example", "second_moment"]

#: below this many columns a second-moment matrix is one product; from it on, two column blocks
_SPLIT_MIN = 128


def per_example(model, params, likelihood, fisher_type, num_samples, x, y, key, reduced):
    """One example: ``([a_mat_k (P_k, in'_k)], [v_k (K, P_k, out_k)], out)``.

    ``out`` has shape ``(..., C)``; its leading axes (if any) are output positions whose
    losses are summed, ``l_n = sum_q l(f_{n,q}, y_{n,q})``.
    """
    shapes = jax.eval_shape(lambda: forward_with_offsets(model, params, x, None)[1])
    offsets = [jnp.zeros((a.shape[0], W.shape[0]), a.dtype) for a, (W, _) in zip(shapes, params)]
    out, vjp_fn, inputs = jax.vjp(lambda o: forward_with_offsets(model, params, x, o),
                                  offsets, has_aux=True)
    cots = output_cotangents(likelihood, fisher_type, num_samples, out, y, key, reduced=reduced)
    (vs,) = jax.vmap(vjp_fn)(cots.reshape((cots.shape[0],) + out.shape))  # [(K, P, out)]
    return inputs, vs, out


def batched(model, params, likelihood, fisher_type, num_samples, x, y, key, reduced=False):
    """:func:`per_example` over the batch: ``([(N, P, in')], [(N, K, P, out)], (N, ..., C))``.

    For ``"mc"`` example ``n`` draws with ``jax.random.split(key, N)[n]`` (the key of
    :func:`fisherlab.fisher_mc` for that example).
    """
    N = x.shape[0]
    keys = jax.random.split(key, N) if fisher_type == "mc" else jnp.zeros((N,), x.dtype)
    y = jnp.zeros((N,), x.dtype) if y is None else y  # unused placeholder (exact / mc)
    return jax.vmap(lambda xn, yn, kn: per_example(model, params, likelihood, fisher_type,
                                                   num_samples, xn, yn, kn, reduced))(x, y, keys)


def second_moment(a, count, *, augment: bool = False):
    r"""``(1/count) sum_m abar_m abar_m^T`` for the rows ``a_m`` of ``a`` ``(M, d)``, and the
    diagonal of ``sum_m abar_m abar_m^T`` (before the division, for the finiteness bound of
    :func:`fisherlab.kfac._checks.bounded_diagonal`).

    ``abar = [a; 1]`` with ``augment`` (the ones column is appended once), else ``abar = a``.
    From 128 columns on, ``abar = [b_1 b_2]`` is split in two column blocks and only the block
    row and the corner are multiplied,

    .. math::  \bar a^\top \bar a = \begin{pmatrix} b_1^\top b_1 & b_1^\top b_2 \\
               (b_1^\top b_2)^\top & b_2^\top b_2 \end{pmatrix},

    3/4 of the multiplications of one product; the lower-left block is the transpose of the
    upper-right one, and the diagonal blocks are symmetric to rounding.
    """
    if augment:
        a = jnp.concatenate([a, jnp.ones((a.shape[0], 1), a.dtype)], axis=1)
    d = a.shape[1]
    if d < _SPLIT_MIN:
        S = a.T @ a
        return S / count, jnp.diagonal(S)
    h = d // 2
    top = a[:, :h].T @ a  # (h, d)
    corner = a[:, h:].T @ a[:, h:]
    S = jnp.concatenate([top, jnp.concatenate([top[:, h:].T, corner], axis=1)], axis=0) / count
    return S, jnp.concatenate([jnp.diagonal(top), jnp.diagonal(corner)])
