"""A parametric layer as a matrix product ``s = a_mat W_mat^T + b``.

K-FAC treats every ``Dense`` and ``Conv2d`` layer as one matrix product over ``P``
weight-sharing positions: ``a_mat`` has one row per position (``P = 1`` for a dense layer on a
vector, ``P = T`` on a sequence ``(T, in)``, ``P = H_out W_out`` patches for a convolution,
each of length ``C_in k_h k_w``), and ``W_mat = W.reshape(out, -1)`` is PyTorch's row-major
layout. A test checks that this forward pass reproduces the model's own.
"""

from __future__ import annotations

from fisherlab import nn

__all__ = ["forward_with_offsets", "layer_dims", "layer_matrix_input", "weight_matrix"]


def layer_dims(layer) -> tuple[int, int]:
    """``(out, in')`` of a ``Dense`` or ``Conv2d`` layer (``in' = C_in k_h k_w`` for a conv)."""
    if isinstance(layer, nn.Dense):
        return layer.out_features, layer.in_features
    return layer.out_channels, layer.fan_in


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


def forward_with_offsets(model, params, x, offsets):
    """One example's forward pass with ``s_k <- s_k + offsets[k]``; ``(out, [a_mat_k])``.

    ``offsets`` is ``None`` or one ``(P_k, out_k)`` array per parametric layer. With zero
    offsets the output is the model's; the gradient of a function of the output with respect
    to ``offsets[k]`` is its gradient with respect to the pre-activations ``s_k``.
    """
    a, k, inputs = x, 0, []
    for layer in model.layers:
        if layer.has_params:
            W, b = params[k]
            amat, unflatten = layer_matrix_input(layer, a)
            s = amat @ weight_matrix(W).T + b
            if offsets is not None:
                s = s + offsets[k]
            inputs.append(amat)
            a = unflatten(s)
            k += 1
        else:
            a = layer(None, a)
    return a, inputs
