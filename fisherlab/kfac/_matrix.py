"""The dense K-FAC / EKFAC matrix in parameter order."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab._core.precision import reference
from fisherlab._core.validation import check_choice
from fisherlab.kfac._inputs import BIASES, check_factor_list, infer_bias
from fisherlab.kfac._types import EKFACFactors, ExactBlock

__all__ = ["matrix", "permutation"]


def permutation(out_features: int, in_features: int) -> np.ndarray:
    """Indices ``perm`` with ``block_param = block_wb[perm][:, perm]``.

    ``block_wb`` is indexed by the row-major flattening of the augmented weight ``[W b]``
    (``(out, in+1)``, entry ``(i, j)`` at ``i (in+1) + j``); parameter order
    (``docs/CONVENTIONS.md``) is ``W`` row-major (``i in + j``) followed by ``b`` (``i``), so
    ``perm`` lists, for each parameter-order position, its ``[W b]`` index.

    Args:
      out_features: ``out``, the rows of ``W``.
      in_features: ``in``, the columns of ``W`` (``C_in k_h k_w`` for a convolution).

    Returns:
      ``(out (in + 1),)`` int array.

    >>> import fisherlab as fl
    >>> fl.kfac.permutation(2, 1).tolist()  # [W b] = [[w0, b0], [w1, b1]]
    [0, 2, 1, 3]
    """
    i, j = np.meshgrid(np.arange(out_features), np.arange(in_features), indexing="ij")
    w_idx = (i * (in_features + 1) + j).ravel()
    b_idx = np.arange(out_features) * (in_features + 1) + in_features
    return np.concatenate([w_idx, b_idx])


@reference
def matrix(factors, model, *, bias: str | None = None) -> jax.Array:
    r"""Dense block-diagonal K-FAC (or EKFAC) matrix ``(d, d)`` in parameter order.

    Layer ``k`` contributes a block indexed by the row-major ``[W_k b_k]`` and permuted to
    parameter order (:func:`permutation`); blocks of different layers are zero:

    .. math::

        B_k = G_k \otimes A_k \ (\text{augmented}), \qquad
        B_k = \operatorname{diag}(G_k \otimes A_k,\ G_k) \ (\text{separate bias}),

    and for :class:`~fisherlab.kfac.EKFACFactors`
    ``B_k = (U_G (x) U_A) diag(vec S) (U_G (x) U_A)^T`` (with the bias block
    ``U_G diag(S_bias) U_G^T`` for a separate bias).

    Args:
      factors: the list from :func:`fisherlab.kfac.factors` or :func:`fisherlab.kfac.ekfac`.
      model: the :class:`fisherlab.nn.Sequential` they were computed for.
      bias: ``"augmented"`` | ``"separate"``; inferred from the shape of ``A`` when ``None``
        and checked against it otherwise.

    Returns:
      ``(d, d)`` float64, ``d = model.num_params``, in ``ravel_pytree(params)`` order.

    References:
      J. Martens and R. Grosse, "Optimizing neural networks with Kronecker-factored
      approximate curvature", ICML 2015. T. George, C. Laurent, X. Bouthillier, N. Ballas and
      P. Vincent, "Fast approximate natural gradient descent in a Kronecker-factored
      eigenbasis", NeurIPS 2018.

    >>> import jax, fisherlab as fl
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jax.random.normal(jax.random.key(1), (5, 3))
    >>> f = fl.kfac.factors(model, params, x, None, fl.Categorical())
    >>> fl.kfac.matrix(f, model).shape == (model.num_params, model.num_params)
    True

    Derivations: ``kfac_conv.kfc_exactness``, ``kfac_exactness.deep_linear``,
    ``kfac_exactness.single_example``, ``kfac_structure.dense_layer``,
    ``kfac_weight_sharing.expand_exactness``, ``kfac_weight_sharing.reduce_exactness``,
    ``kronecker.mixed_product``, ``kronecker.psd``, ``kronecker.transpose``.
    """
    if bias is not None:
        check_choice(bias, "bias", BIASES)
    found = check_factor_list(factors, model)
    layouts, entries = [], []
    for k, (entry, block) in enumerate(zip(factors, found)):
        if isinstance(entry, ExactBlock):
            layouts.append("exact")
            entries.append((jnp.asarray(entry.B, jnp.float64),))
            continue
        layouts.append(infer_bias(entry, block, k, "factors", bias))
        if isinstance(entry, EKFACFactors):
            entries.append(EKFACFactors(*(jnp.asarray(t, jnp.float64) if t is not None else None
                                          for t in entry)))
        else:
            entries.append(tuple(jnp.asarray(t, jnp.float64) for t in entry[:2]))
    return _matrix(tuple((b.out, b.inp) for b in found), tuple(layouts), entries)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _matrix(dims, layouts, entries):
    blocks = []
    for (out, inp), layout, entry in zip(dims, layouts, entries):
        if layout == "exact":
            blocks.append(entry[0])
            continue
        if isinstance(entry, EKFACFactors):
            UA, UG, S, Sb = entry
            U = jnp.kron(UG, UA)
            W_block = (U * S.reshape(-1)) @ U.T
            b_block = (UG * Sb) @ UG.T if layout == "separate" else None
        else:
            A, G = entry
            W_block = jnp.kron(G, A)
            b_block = G if layout == "separate" else None
        if layout == "none":  # embedding: E = W_mat^T, so parameter order is A (x) G
            blocks.append(jnp.kron(A, G))
        elif layout == "augmented":
            perm = permutation(out, inp)
            blocks.append(W_block[perm][:, perm])
        else:
            blocks.append(jax.scipy.linalg.block_diag(W_block, b_block))
    return jax.scipy.linalg.block_diag(*blocks)
