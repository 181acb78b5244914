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
from fisherlab.kfac._layers import forward_with_offsets, offset_shapes

__all__ = ["batched", "example_keys", "per_example", "second_moment"]

#: below this many columns a second-moment matrix is one product; from it on, two column blocks
_SPLIT_MIN = 128
#: contract the last axes of a materialised transpose (faster on XLA:CPU from JAX 0.10 on)
_TRANSPOSED_OPERANDS = tuple(int(p) for p in jax.__version__.split(".")[:2]) >= (0, 10)


def per_example(model, params, likelihood, fisher_type, num_samples, x, y, key, reduced,
                tokens="sum"):
    """One example: ``([a_mat_k (P_k, in'_k)], [v_k (K, P_k, out_k)], out)``.

    ``out`` has shape ``(..., C)``; its leading axes (if any) are output positions whose
    losses are summed, ``l_n = sum_q l(f_{n,q}, y_{n,q})``. For an exact block ``a_mat_k`` is
    ``None`` and ``v_k`` is ``(K, p_k)``, the gradients with respect to its parameters.
    ``key`` is the example's key, or ``(Q,)`` keys, one per output position.
    """
    offsets = [jnp.zeros(s.shape, s.dtype) for s in offset_shapes(model, params, x)]
    out, vjp_fn, inputs = jax.vjp(lambda o: forward_with_offsets(model, params, x, o),
                                  offsets, has_aux=True)
    cots = output_cotangents(likelihood, fisher_type, num_samples, out, y, key, reduced=reduced,
                             per_position=tokens == "flatten")
    (vs,) = jax.vmap(vjp_fn)(cots.reshape((cots.shape[0],) + out.shape))  # [(K, P, out)]
    return inputs, vs, out


def example_keys(model, params, fisher_type, x, key, tokens="sum"):
    """The Monte-Carlo keys of the examples of ``x``: ``jax.random.split(key, N)`` (the keys of
    :func:`fisherlab.fisher_mc`), ``(N, Q)`` keys ``jax.random.split(key, N Q)`` for
    ``tokens="flatten"`` with ``Q`` output positions; zeros ``(N,)`` unless ``"mc"``."""
    N = x.shape[0]
    if fisher_type != "mc":
        return jnp.zeros((N,), jnp.float64)
    if tokens == "flatten":
        shape = jax.eval_shape(lambda: model(params, x[0])).shape
        Q = 1
        for s in shape[:-1]:
            Q *= s
        return jax.random.split(key, N * Q).reshape((N, Q))
    return jax.random.split(key, N)


def batched(model, params, likelihood, fisher_type, num_samples, x, y, key, reduced=False,
            tokens="sum", keys=None):
    """:func:`per_example` over the batch: ``([(N, P, in')], [(N, K, P, out)], (N, ..., C))``.

    For ``"mc"`` example ``n`` draws with ``jax.random.split(key, N)[n]`` (the key of
    :func:`fisherlab.fisher_mc` for that example); with ``tokens="flatten"`` output position
    ``q`` of example ``n`` draws with ``jax.random.split(key, N Q)[n Q + q]``. ``keys``, when
    given, are these :func:`example_keys` of ``x`` (for a part of a larger batch).
    """
    N = x.shape[0]
    if keys is None:
        keys = example_keys(model, params, fisher_type, x, key, tokens)
    y = jnp.zeros((N,), jnp.float64) if y is None else y  # unused placeholder (exact / mc)
    return jax.vmap(lambda xn, yn, kn: per_example(model, params, likelihood, fisher_type,
                                                   num_samples, xn, yn, kn, reduced, tokens)
                    )(x, y, keys)


def _gram(a):
    """The products of ``a^T a`` for ``a`` ``(M, d)``: ``(top, corner)``, the rows ``0..h`` of
    ``a^T a`` (``(h, d)``) and its lower-right ``(d - h, d - h)`` block, with ``h = d`` (no
    corner) below 128 columns and ``h = d // 2`` from then on (:func:`second_moment`)."""
    if _TRANSPOSED_OPERANDS:  # T = a^T materialised: T T^T contracts the last axes
        t = jax.lax.optimization_barrier(jnp.transpose(a))
        prod = lambda i, j, k: t[i:j] @ t[k:].T  # noqa: E731 - rows i..j of a^T a, from column k
    else:
        prod = lambda i, j, k: a[:, i:j].T @ a[:, k:]  # noqa: E731
    d = a.shape[1]
    if d < _SPLIT_MIN:
        return prod(0, d, 0), None
    h = d // 2
    return prod(0, h, 0), prod(h, d, h)


def second_moment(a, count, *, augment: bool = False):
    r"""``(1/count) sum_m abar_m abar_m^T`` for the rows ``a_m`` of ``a`` ``(M, d)``, and the
    diagonal of ``sum_m abar_m abar_m^T`` (before the division, for the finiteness bound of
    :func:`fisherlab.kfac._checks.bounded_diagonal`).

    ``abar = [a; 1]`` with ``augment``, else ``abar = a``. The augmented matrix is assembled
    from ``a^T a``, the column sums ``a^T 1`` and ``M``, so the product keeps the layer's own
    width (512 rather than 513: aligned blocks). From 128 columns on, ``a = [b_1 b_2]`` is
    split in two column blocks and only the block row and the corner are multiplied,

    .. math::  a^\top a = \begin{pmatrix} b_1^\top b_1 & b_1^\top b_2 \\
               (b_1^\top b_2)^\top & b_2^\top b_2 \end{pmatrix},

    3/4 of the multiplications of one product; the lower-left block is the transpose of the
    upper-right one, and the diagonal blocks are symmetric to rounding. The pieces (blocks,
    transposed block, column sums, ``M``) are each zero-padded to the full size and summed, so
    the compiler writes the result, divided by ``count``, in one pass over the output (adding
    zeros is exact: every entry is one piece). On XLA's CPU backend from JAX 0.10 on, a product
    contracting the *first* axis of both operands runs at half the speed of one contracting the
    last axes, so there ``a^T`` is materialised first (the optimisation barrier keeps the
    compiler from folding the transpose back into the product); earlier versions run both at
    one speed and skip the copy.
    """
    top, corner = _gram(a)
    h, d = top.shape
    e = d + 1 if augment else d  # the result's size
    S = jnp.pad(top, ((0, e - h), (0, e - d)))
    diag = [jnp.diagonal(top)]
    if corner is not None:
        S = (S + jnp.pad(top[:, h:].T, ((h, e - d), (0, e - h)))
             + jnp.pad(corner, ((h, e - d), (h, e - d))))
        diag.append(jnp.diagonal(corner))
    if augment:
        M = jnp.full((1,), a.shape[0], a.dtype)
        s = jnp.sum(a, axis=0)
        S = (S + jnp.pad(jnp.concatenate([s, M])[None], ((d, 0), (0, 0)))
             + jnp.pad(s[:, None], ((0, 1), (d, 0))))
        diag.append(M)
    return S / count, jnp.concatenate(diag)
