"""Layers with PyTorch's parameter layout and order, for models fisherlab can take apart.

``fl.nn.Sequential([...])`` chains layers; ``model.init(key)`` draws float64 parameters with
PyTorch's default initialisation and ``model(params, x)`` maps one example to its outputs, so
a model is a valid ``f(params, x)`` for every reference. Every layer stores its parameters in
PyTorch's layout and ``parameters()`` order (docs/CONVENTIONS.md, "Parameter order"), so a
curvature matrix compares with a PyTorch peer without permutation:

* ``Dense(in, out)``: ``(W (out, in), b (out,))``, on the last axis;
* ``Conv2d(c_in, c_out, k, stride, padding)``: ``(W (c_out, c_in, kh, kw), b (c_out,))``;
* ``LayerNorm(d, eps=1e-5)``: ``(weight (d,), bias (d,))``;
* ``RMSNorm(d, eps=None)``: ``(weight (d,),)``;
* ``Embedding(num, d)``: ``(weight (num, d),)``, on integer token ids ``(R,)``;
* ``MultiHeadAttention(d, h, causal=False)``: ``(in_proj_weight (3d, d), in_proj_bias (3d,),
  out_proj_weight (d, d), out_proj_bias (d,))``;
* ``Residual(block)``: the block's, nested as the block nests them;
* ``Tanh``, ``Sigmoid``, ``ReLU``, ``Identity``, ``GELU(approximate)``, ``Flatten``,
  ``MeanPool``: none.

One example is a vector ``(in,)``, a sequence ``(R, d)`` (``Dense``, the norms and ``GELU`` act
on every position; ``MeanPool`` averages over positions), token ids ``(R,)`` or an image
``(C, H, W)``. ``Sequential.check_inputs`` checks a batch (e.g. a sequence length that changes
within it) before any work.
"""

from fisherlab.nn._activations import GELU, Activation, Identity, ReLU, Sigmoid, Tanh
from fisherlab.nn._attention import MultiHeadAttention
from fisherlab.nn._base import Layer
from fisherlab.nn._embedding import Embedding
from fisherlab.nn._linear import Conv2d, Dense
from fisherlab.nn._normalization import LayerNorm, RMSNorm
from fisherlab.nn._reshape import Flatten, MeanPool
from fisherlab.nn._residual import Residual
from fisherlab.nn._sequential import Sequential

__all__ = ["Activation", "Conv2d", "Dense", "Embedding", "Flatten", "GELU", "Identity", "Layer",
           "LayerNorm", "MeanPool", "MultiHeadAttention", "RMSNorm", "ReLU", "Residual",
           "Sequential", "Sigmoid", "Tanh"]


def __dir__():
    return list(__all__)
