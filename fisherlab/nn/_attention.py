"""Multi-head self-attention with ``torch.nn.MultiheadAttention``'s parameters and semantics."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from fisherlab._core.validation import check_int
from fisherlab.nn._base import Layer, bound_fan_in, uniform, unknown_width

__all__ = ["MultiHeadAttention"]


@dataclasses.dataclass(frozen=True)
class MultiHeadAttention(Layer):
    r"""Multi-head self-attention on one sequence ``(R, d)``, as ``torch.nn.MultiheadAttention``.

    ``MultiHeadAttention(d, h)(params, x)`` equals ``torch.nn.MultiheadAttention(d, h,
    batch_first=True)(x, x, x)[0]`` for one example (query = key = value = ``x``):

    .. math::

        [Q\ K\ V] = x W_{in}^\top + b_{in}, \qquad
        O_j = \operatorname{softmax}\Bigl(\frac{Q_j K_j^\top}{\sqrt{d/h}} + M\Bigr) V_j,
        \qquad y = [O_1 \cdots O_h]\, W_{out}^\top + b_{out},

    with ``Q_j`` the columns ``j d/h .. (j+1) d/h - 1`` of ``Q`` (head ``j``; likewise ``K_j``,
    ``V_j``), the softmax over keys (rows), and the mask ``M`` zero, or with ``causal=True``
    ``-inf`` above the diagonal (token ``r`` attends to tokens ``<= r``: PyTorch's
    ``attn_mask=nn.Transformer.generate_square_subsequent_mask(R)``). The projections are dense
    layers shared over the ``R`` tokens.

    Parameters, in PyTorch's ``parameters()`` order and layout: ``in_proj_weight (3d, d)`` (rows
    ``[W_q; W_k; W_v]``), ``in_proj_bias (3d,)``, ``out_proj_weight (d, d)``, ``out_proj_bias
    (d,)``; initialised as PyTorch does: ``in_proj_weight`` Xavier-uniform
    ``U(-sqrt(6/(4d)), sqrt(6/(4d)))``, ``out_proj_weight`` ``U(-1/sqrt(d), 1/sqrt(d))``, both
    biases zero.

    Args:
      d: the model (embedding) size, PyTorch's ``embed_dim``.
      num_heads: the number of heads; must divide ``d``.
      causal: mask every token from attending to later tokens.

    References:
      A. Vaswani et al., "Attention is all you need", NeurIPS 2017.

    >>> import jax, jax.numpy as jnp, fisherlab as fl
    >>> mha = fl.nn.MultiHeadAttention(4, 2, causal=True)
    >>> params = mha.init(jax.random.key(0))
    >>> [p.shape for p in params]
    [(12, 4), (12,), (4, 4), (4,)]
    >>> mha(params, jnp.ones((3, 4))).shape
    (3, 4)
    """

    d: int
    num_heads: int
    causal: bool = False
    has_params = True

    def __post_init__(self):
        check_int(self.d, "d", minimum=1)
        check_int(self.num_heads, "num_heads", minimum=1)
        if self.d % self.num_heads:
            raise ValueError(f"num_heads = {self.num_heads} must divide d = {self.d} (each head "
                             f"gets d / num_heads features)")
        if not isinstance(self.causal, bool):
            raise TypeError(f"causal must be a bool, got {self.causal!r}")

    @property
    def head_dim(self) -> int:
        """``d / num_heads``."""
        return self.d // self.num_heads

    def param_spec(self):
        d = self.d
        return (("in_proj_weight", (3 * d, d), "(3d, d)"), ("in_proj_bias", (3 * d,), ""),
                ("out_proj_weight", (d, d), "(d, d)"), ("out_proj_bias", (d,), ""))

    def init(self, key):
        """PyTorch's default: Xavier-uniform ``in_proj_weight``, ``U(+-1/sqrt(d))`` ``out_proj_weight``,
        zero biases; float64."""
        k_in, k_out = jax.random.split(key)
        d = self.d
        with jax.enable_x64(True):
            zeros3, zeros = jnp.zeros((3 * d,), jnp.float64), jnp.zeros((d,), jnp.float64)
        return (uniform(k_in, (3 * d, d), math.sqrt(6.0 / (d + 3 * d))), zeros3,
                uniform(k_out, (d, d), bound_fan_in(d)), zeros)

    def input_spec(self):
        return ("features", self.d)

    def chain(self, state, where):
        if state is not None and state[0] == "tokens":
            raise ValueError(f"{where} is {self}, which attends over float features, but it "
                             "receives integer token ids: put an Embedding first")
        width = unknown_width(state)
        if width is not None and width != self.d:
            raise ValueError(f"layer widths do not chain: {where} is {self}, which expects "
                             f"d = {self.d} features, but the previous layers produce {width}")
        return ("features", self.d)

    def mask(self, R: int) -> jax.Array:
        """``(R, R)`` bool, ``True`` where token ``r`` (row) may attend to token ``s`` (column)."""
        if not self.causal:
            return jnp.ones((R, R), bool)
        return jnp.arange(R)[None, :] <= jnp.arange(R)[:, None]

    def attention(self, qkv) -> jax.Array:
        """The heads' outputs ``[O_1 ... O_h]`` ``(R, d)`` from the projections ``[Q K V]`` ``(R, 3d)``."""
        R, d, h, hd = qkv.shape[0], self.d, self.num_heads, self.head_dim
        q, k, v = (qkv[:, i * d:(i + 1) * d].reshape(R, h, hd).transpose(1, 0, 2)
                   for i in range(3))  # (h, R, hd)
        scores = jnp.einsum("hrk,hsk->hrs", q, k,
                            precision=jax.lax.Precision.HIGHEST) / math.sqrt(hd)
        scores = jnp.where(self.mask(R)[None], scores, -jnp.inf)
        weights = jax.nn.softmax(scores, axis=-1)
        out = jnp.einsum("hrs,hsk->hrk", weights, v, precision=jax.lax.Precision.HIGHEST)
        return out.transpose(1, 0, 2).reshape(R, d)

    def _check_input(self, a):
        shape = tuple(jnp.shape(a))
        if len(shape) != 2 or shape[1] != self.d:
            raise ValueError(f"{self} expects one sequence of shape (R, d) = (R, {self.d}), "
                             f"got shape {shape}")
        if self.causal and shape[0] == 0:
            raise ValueError(f"{self}: causal attention needs at least one token (R >= 1), "
                             f"got shape {shape}")

    def __call__(self, params, a):
        self._check_input(a)
        in_w, in_b, out_w, out_b = params
        qkv = a @ in_w.T + in_b
        return self.attention(qkv) @ out_w.T + out_b
