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
_GRAM_SPLIT_MIN = 128


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
    r"""``(1/count) sum_m abar_m abar_m^T`` for the rows ``a_m`` of ``a`` ``(M, d)``.

    ``abar = [a; 1]`` with ``augment``, else ``abar = a``. The matrix is formed from the products

    .. math::  \sum_m \bar a_m \bar a_m^\top = \begin{pmatrix} a_1^\top a_1 & a_1^\top a_2 &
               a_1^\top 1 \\ a_2^\top a_1 & a_2^\top a_2 & a_2^\top 1 \\
               1^\top a_1 & 1^\top a_2 & M \end{pmatrix}, \qquad a = [a_1\ a_2],

    with ``a`` split in two column blocks from ``d = 128`` columns on: only the block row
    ``a_1^T [a_1 a_2]`` and the corner ``a_2^T a_2`` are multiplied (3/4 of the multiplications
    of ``a^T a``) and the lower-left block is the transpose of the upper-right one, so the
    result is symmetric by construction off the diagonal blocks (and exactly symmetric on CPU,
    where a product ``x^T x`` is; tested). ``a`` is never copied into an augmented array.
    """
    d = a.shape[1]
    if d < _GRAM_SPLIT_MIN:
        blocks = [[a.T @ a]]
        cols = [a]
    else:
        h = d // 2
        top = a[:, :h].T @ a  # (h, d)
        corner = a[:, h:].T @ a[:, h:]
        blocks = [[top], [top[:, h:].T, corner]]
        cols = [a[:, :h], a[:, h:]]
    if augment:
        sums = [jnp.sum(c, axis=0) for c in cols]
        for row, s_ in zip(blocks, sums):
            row.append(s_[:, None])
        blocks.append([s_[None, :] for s_ in sums] + [jnp.full((1, 1), a.shape[0], a.dtype)])
    S = jnp.concatenate([jnp.concatenate(row, axis=1) for row in blocks], axis=0)
    return S / count
