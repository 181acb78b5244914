"""Dense K-FAC / EKFAC matrix in parameter order."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab import nn
from fisherlab._precision import reference
from fisherlab._validation import check_choice
from fisherlab.kfac import _core

__all__ = ["matrix", "permutation"]


def permutation(out_features: int, in_features: int) -> np.ndarray:
    """Indices ``perm`` with ``block_param = block_wb[perm][:, perm]``.

    ``block_wb`` is indexed by the row-major flattening of the augmented weight ``[W b]``
    (``(out, in+1)``, entry ``(i, j)`` at ``i (in+1) + j``); parameter order (CONVENTIONS.md)
    is ``W`` row-major (``i in + j``) followed by ``b`` (``i``). So ``perm`` lists, for each
    parameter-order position, its ``[W b]`` index.
    """
    i, j = np.meshgrid(np.arange(out_features), np.arange(in_features), indexing="ij")
    w_idx = (i * (in_features + 1) + j).ravel()
    b_idx = np.arange(out_features) * (in_features + 1) + in_features
    return np.concatenate([w_idx, b_idx])


def _layer_dims(layer):
    if isinstance(layer, nn.Dense):
        return layer.out_features, layer.in_features
    return layer.out_channels, layer.fan_in


def infer_bias(entry, layer, k: int, name: str, bias=None) -> str:
    """``"augmented"`` or ``"separate"`` from the shape of ``A`` (checked against ``bias``)."""
    out, inp = _layer_dims(layer)
    A_dim = entry[0].shape[0]
    if tuple(entry[1].shape[:1]) != (out,):
        raise ValueError(
            f"{name}[{k}] does not match layer {layer}: expected G (or its eigenbasis) with "
            f"{out} rows, got shape {tuple(entry[1].shape)}")
    found = {inp + 1: "augmented", inp: "separate"}.get(A_dim)
    if found is None:
        raise ValueError(
            f"{name}[{k}] does not match layer {layer}: expected A of size {inp + 1} "
            f"(bias='augmented') or {inp} (bias='separate'), got shape {tuple(entry[0].shape)}")
    if bias is not None and bias != found:
        raise ValueError(
            f"bias={bias!r} but {name}[{k}].A has shape {tuple(entry[0].shape)}, which is the "
            f"{found!r} layout (input dimension {inp})")
    return found


def _check_entries(factor_list, model, name="factors"):
    layers = _core.check_model(model)
    if not isinstance(factor_list, (list, tuple)) or len(factor_list) != len(layers):
        raise ValueError(
            f"{name} must be a list with one entry per Dense/Conv2d layer ({len(layers)}), "
            f"got {type(factor_list).__name__} of length "
            f"{len(factor_list) if hasattr(factor_list, '__len__') else '?'}")
    return layers


@reference
def matrix(factors, model, *, bias: str | None = None) -> jax.Array:
    r"""Dense block-diagonal K-FAC (or EKFAC) matrix ``(d, d)`` in parameter order.

    Layer ``k`` contributes the block ``G_k (x) A_k`` (indexed by the row-major ``[W_k b_k]``),
    permuted to parameter order ``W_k`` row-major then ``b_k`` (:func:`permutation`); with
    ``bias="separate"`` the block is ``diag(G (x) A, G)`` (no weight--bias cross terms).
    Blocks of different layers are zero. For :class:`~fisherlab.kfac.EKFACFactors` the block
    is ``(U_G (x) U_A) diag(vec S) (U_G (x) U_A)^T`` (and ``U_G diag(S_b) U_G^T`` for a separate
    bias).

    Args:
      factors: list from :func:`fisherlab.kfac.factors` or :func:`fisherlab.kfac.ekfac`.
      model: the :class:`fisherlab.nn.Sequential` they were computed for.
      bias: ``"augmented"`` | ``"separate"``; inferred from the shape of ``A`` when ``None``
        and checked against it otherwise.

    Returns:
      ``(d, d)`` float64, ``d = model.num_params``, in ``ravel_pytree(params)`` order.

    References:
      Martens & Grosse, ICML 2015, §3; George et al., "Fast approximate natural gradient
      descent in a Kronecker-factored eigenbasis", NeurIPS 2018.
    
    >>> import jax, fisherlab as fl
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jax.random.normal(jax.random.key(1), (5, 3))
    >>> f = fl.kfac.factors(model, params, x, None, fl.Categorical())
    >>> fl.kfac.matrix(f, model).shape == (model.num_params, model.num_params)
    True
    """
    from fisherlab.kfac._ekfac import EKFACFactors

    if bias is not None:
        check_choice(bias, "bias", _core.BIASES)
    layers = _check_entries(factors, model)
    layouts, entries = [], []
    for k, (entry, layer) in enumerate(zip(factors, layers)):
        layouts.append(infer_bias(entry, layer, k, "factors", bias))
        if isinstance(entry, EKFACFactors):
            entries.append(EKFACFactors(*(jnp.asarray(t, jnp.float64) if t is not None else None
                                          for t in entry)))
        else:
            entries.append(tuple(jnp.asarray(t, jnp.float64) for t in entry[:2]))
    return _matrix_jit(tuple(_layer_dims(l) for l in layers), tuple(layouts), entries)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _matrix_jit(dims, layouts, entries):
    from fisherlab.kfac._ekfac import EKFACFactors

    blocks = []
    for (out, inp), lay_bias, entry in zip(dims, layouts, entries):
        if isinstance(entry, EKFACFactors):
            UA, UG, S, Sb = entry
            U = jnp.kron(UG, UA)
            W_block = (U * S.reshape(-1)) @ U.T
            b_block = (UG * Sb) @ UG.T if lay_bias == "separate" else None
        else:
            A, G = entry
            W_block = jnp.kron(G, A)
            b_block = G if lay_bias == "separate" else None
        if lay_bias == "augmented":
            perm = permutation(out, inp)
            blocks.append(W_block[perm][:, perm])
        else:
            blocks.append(jax.scipy.linalg.block_diag(W_block, b_block))
    return jax.scipy.linalg.block_diag(*blocks)
