"""The K-FAC blocks of a model and its forward pass with pre-activation offsets.

K-FAC treats every ``Dense`` and ``Conv2d`` layer -- at any depth of ``Sequential`` and
``Residual`` nesting -- as one matrix product ``s = a_mat W_mat^T + b`` over ``P``
weight-sharing positions: ``a_mat`` has one row per position (``P = 1`` for a dense layer on a
vector, ``P = R`` on a sequence ``(R, in)``, ``P = H_out W_out`` patches for a convolution, each
of length ``C_in k_h k_w``), and ``W_mat = W.reshape(out, -1)`` is PyTorch's row-major layout.
The other layers with parameters give:

* ``MultiHeadAttention``: two Kronecker blocks, ``[in_proj_weight in_proj_bias]`` on the
  sequence and ``[out_proj_weight out_proj_bias]`` on the heads' outputs, both shared over the
  ``R`` tokens;
* ``Embedding``: one Kronecker block without bias, ``s = onehot(t) E`` with ``W_mat = E^T``: its
  inputs are the one-hot rows of the token ids (so the expand input factor is the diagonal of
  token frequencies); its parameter vector ``E`` row-major is ``W_mat^T`` row-major, so its
  block in parameter order is ``A (x) G``;
* ``LayerNorm`` / ``RMSNorm`` with affine parameters: the layer's exact block (an ``"exact"``
  block: the second moment of the per-example gradients of its ``weight``/``bias``), not
  factorised.

Any other layer with parameters is refused, naming it. A test checks that the forward pass
reproduces the model's own.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from fisherlab import nn

__all__ = ["Block", "blocks", "forward_with_offsets", "layer_dims", "layer_matrix_input",
           "offset_shapes", "weight_matrix"]

_NORMS = (nn.LayerNorm, nn.RMSNorm)


class Block(NamedTuple):
    """One K-FAC block: ``kind`` is ``"dense"`` (``[W b]``, ``G (x) A``), ``"embedding"``
    (``E``, ``A (x) G``, no bias) or ``"exact"`` (the layer's own ``size x size`` block);
    ``out``/``inp`` are the sizes of ``G``/``A`` (``size``/0 for an exact block); ``where``
    names the layer in the model (``layers[1].block.layers[0]``)."""

    kind: str
    out: int
    inp: int
    where: str
    layer: Any

    @property
    def num_params(self) -> int:
        if self.kind == "dense":
            return self.out * (self.inp + 1)
        if self.kind == "embedding":
            return self.out * self.inp
        return self.out


def layer_dims(layer) -> tuple[int, int]:
    """``(out, in')`` of a ``Dense`` or ``Conv2d`` layer (``in' = C_in k_h k_w`` for a conv)."""
    if isinstance(layer, nn.Dense):
        return layer.out_features, layer.in_features
    return layer.out_channels, layer.fan_in


def _unsupported(layer, where):
    return TypeError(
        f"K-FAC does not support {where} = {layer!r}: supported layers with parameters are "
        "Dense, Conv2d, MultiHeadAttention, Embedding, LayerNorm and RMSNorm, inside "
        "Sequential and Residual")


def blocks(model, where: str = "") -> tuple[Block, ...]:
    """The K-FAC blocks of ``model`` in parameter order (raises for an unsupported layer)."""
    if isinstance(model, nn.Sequential):
        prefix = f"{where}.layers" if where else "layers"
        return sum((blocks(l, f"{prefix}[{i}]") for i, l in enumerate(model.layers)
                    if l.has_params), ())
    if isinstance(model, nn.Residual):
        return blocks(model.block, f"{where}.block")
    if isinstance(model, (nn.Dense, nn.Conv2d)):
        return (Block("dense", *layer_dims(model), where, model),)
    if isinstance(model, nn.MultiHeadAttention):
        d = model.d
        return (Block("dense", 3 * d, d, f"{where}.in_proj", model),
                Block("dense", d, d, f"{where}.out_proj", model))
    if isinstance(model, nn.Embedding):
        return (Block("embedding", model.d, model.num_embeddings, where, model),)
    if isinstance(model, _NORMS):
        return (Block("exact", model.num_params, 0, where, model),)
    raise _unsupported(model, where or "the model")


def layer_matrix_input(layer, a):
    """``(a_mat (P, in'), unflatten)`` with ``s = a_mat W_mat^T + b`` and ``unflatten(s)`` the
    layer's output in its own shape."""
    if isinstance(layer, nn.Dense):
        lead = a.shape[:-1]
        amat = a.reshape((-1, a.shape[-1]))
        return amat, (lambda s: s.reshape(lead + (s.shape[-1],)))
    if isinstance(layer, nn.Conv2d):
        patches, (ho, wo) = layer.patches(a)  # (ho*wo, C_in*kh*kw), rows in row-major (i, j)
        return patches, (lambda s: s.T.reshape((s.shape[-1], ho, wo)))
    raise TypeError(f"K-FAC supports Dense and Conv2d layers, got {layer!r}")  # pragma: no cover


def weight_matrix(W):
    """``W`` as ``(out, in')``: ``W.reshape(out, -1)``."""
    return W.reshape((W.shape[0], -1))


class _Run:
    """The state of one forward pass: the offsets to add, block by block, and the block inputs
    and pre-activation shapes recorded on the way."""

    def __init__(self, offsets):
        self.offsets, self.k, self.inputs = offsets, 0, []

    def shift(self, s, amat):
        """``s + offsets[k]`` (``s`` as ``(P, out)``), recording the block input ``amat``."""
        self.inputs.append(amat)
        if self.offsets is not None:
            s = s + self.offsets[self.k]
        self.k += 1
        return s


def _dense(run, amat, W, b):
    s = amat @ weight_matrix(W).T
    return run.shift(s if b is None else s + b, amat)


def _apply(layer, params, a, run):
    if isinstance(layer, nn.Sequential):
        k = 0
        for sub in layer.layers:
            if sub.has_params:
                a = _apply(sub, params[k], a, run)
                k += 1
            else:
                a = sub(None, a)
        return a
    if isinstance(layer, nn.Residual):
        return a + _apply(layer.block, params, a, run)
    if isinstance(layer, (nn.Dense, nn.Conv2d)):
        W, b = params
        amat, unflatten = layer_matrix_input(layer, a)
        return unflatten(_dense(run, amat, W, b))
    if isinstance(layer, nn.MultiHeadAttention):
        layer._check_input(a)
        in_w, in_b, out_w, out_b = params
        qkv = _dense(run, a, in_w, in_b)
        return _dense(run, layer.attention(qkv), out_w, out_b)
    if isinstance(layer, nn.Embedding):
        (E,) = params
        t = jnp.asarray(a)
        onehot = jax.nn.one_hot(t.reshape(-1), layer.num_embeddings, dtype=E.dtype)
        s = run.shift(onehot @ E, onehot)
        return s.reshape(t.shape + (layer.d,))
    if isinstance(layer, _NORMS):
        flat, unravel = ravel_pytree(tuple(params))
        delta = run.shift(jnp.zeros_like(flat), None)  # gradient w.r.t. delta = w.r.t. params
        return layer(unravel(flat + delta), a)
    if not layer.has_params:
        return layer(None, a)
    raise _unsupported(layer, "a layer")  # pragma: no cover - blocks() refuses it first


def forward_with_offsets(model, params, x, offsets):
    """One example's forward pass with ``s_k <- s_k + offsets[k]``; ``(out, [a_mat_k])``.

    ``offsets`` is ``None`` or one array per K-FAC block: ``(P_k, out_k)`` for a Kronecker
    block, the flat parameter vector's shape for an exact block (added to the parameters).
    With zero offsets the output is the model's; the gradient of a function of the output
    with respect to ``offsets[k]`` is its gradient with respect to the pre-activations ``s_k``
    (the parameters, for an exact block). ``a_mat_k`` is ``None`` for an exact block.
    """
    run = _Run(offsets)
    out = _apply(model, params, x, run)
    return out, run.inputs


def offset_shapes(model, params, x):
    """The shapes of the offsets of :func:`forward_with_offsets` for one example ``x``."""
    def shapes():
        run = _Run(None)
        recorded = []
        orig = run.shift

        def shift(s, amat):
            recorded.append(s)
            return orig(s, amat)

        run.shift = shift
        _apply(model, params, x, run)
        return recorded

    return [jax.ShapeDtypeStruct(s.shape, s.dtype) for s in jax.eval_shape(shapes)]
