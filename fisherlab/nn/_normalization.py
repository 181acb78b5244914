"""Normalisation over the last axis: ``LayerNorm`` and ``RMSNorm`` (PyTorch's definitions)."""

from __future__ import annotations

import dataclasses
import numbers

import jax
import jax.numpy as jnp

from fisherlab._core.validation import check_int
from fisherlab.nn._base import Layer, check_last_axis, unknown_width

__all__ = ["LayerNorm", "RMSNorm"]


def _check_flag(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {value!r}")


def _check_eps(value, name="eps"):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            float(value) > 0 and float(value) < float("inf")):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


def _chain_width(layer, d, state, where):
    width = unknown_width(state)
    if state is not None and state[0] == "tokens":
        raise ValueError(f"{where} is {layer}, which normalises float features, but it receives "
                         "integer token ids: put an Embedding first")
    if width is not None and width != d:
        raise ValueError(f"layer widths do not chain: {where} is {layer}, which normalises "
                         f"{d} features, but the previous layers produce {width}")
    return ("features", d)


def _ones(d):
    with jax.enable_x64(True):
        return jnp.ones((d,), jnp.float64)


def _zeros(d):
    with jax.enable_x64(True):
        return jnp.zeros((d,), jnp.float64)


@dataclasses.dataclass(frozen=True)
class LayerNorm(Layer):
    r"""Layer normalisation over the last axis, as ``torch.nn.LayerNorm(d)``.

    .. math::

        \mu = \tfrac1d \textstyle\sum_i a_i,\quad
        \sigma^2 = \tfrac1d \textstyle\sum_i (a_i - \mu)^2 \ \text{(biased)},\quad
        y_i = \frac{a_i - \mu}{\sqrt{\sigma^2 + \epsilon}}\, w_i + b_i .

    Applied to every position of a ``(R, d)`` input. Parameters ``(weight (d,), bias (d,))`` in
    PyTorch's order (only ``(weight,)`` with ``bias=False``, none with
    ``elementwise_affine=False``), initialised as PyTorch does: ``weight = 1``, ``bias = 0``.

    Args:
      d: the normalised (last-axis) size; PyTorch's ``normalized_shape`` as one int.
      eps: ``epsilon`` added to the variance (default ``1e-5``, as PyTorch).
      elementwise_affine: learn ``weight`` (and ``bias``).
      bias: learn ``bias`` (with ``elementwise_affine``).

    References:
      J. L. Ba, J. R. Kiros & G. E. Hinton, "Layer normalization", arXiv:1607.06450, 2016.

    >>> import jax, jax.numpy as jnp, fisherlab as fl
    >>> ln = fl.nn.LayerNorm(2)
    >>> ln(ln.init(jax.random.key(0)), jnp.asarray([[1.0, 3.0]])).round(4)
    Array([[-1.,  1.]], dtype=float64)
    """

    d: int
    eps: float = 1e-5
    elementwise_affine: bool = True
    bias: bool = True

    def __post_init__(self):
        check_int(self.d, "d", minimum=1)
        _check_eps(self.eps)
        _check_flag(self.elementwise_affine, "elementwise_affine")
        _check_flag(self.bias, "bias")

    @property
    def has_params(self) -> bool:
        return self.elementwise_affine

    def param_spec(self):
        if not self.elementwise_affine:
            return ()
        spec = (("weight", (self.d,), ""),)
        return spec + ((("bias", (self.d,), ""),) if self.bias else ())

    def init(self, key):
        """PyTorch's default: ``weight = 1``, ``bias = 0`` (float64); ``None`` without parameters."""
        if not self.elementwise_affine:
            return None
        return (_ones(self.d), _zeros(self.d)) if self.bias else (_ones(self.d),)

    def input_spec(self):
        return ("features", self.d)

    def chain(self, state, where):
        return _chain_width(self, self.d, state, where)

    def __call__(self, params, a):
        check_last_axis(self, a, self.d, "d")
        mu = jnp.mean(a, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(a - mu), axis=-1, keepdims=True)
        y = (a - mu) / jnp.sqrt(var + self.eps)
        if self.elementwise_affine:
            y = y * params[0]
            if self.bias:
                y = y + params[1]
        return y


@dataclasses.dataclass(frozen=True)
class RMSNorm(Layer):
    r"""Root-mean-square normalisation over the last axis, as ``torch.nn.RMSNorm(d)``.

    .. math:: y_i = \frac{a_i}{\sqrt{\tfrac1d \sum_j a_j^2 + \epsilon}}\, w_i .

    Applied to every position of a ``(R, d)`` input. Parameters ``(weight (d,),)`` (none with
    ``elementwise_affine=False``), initialised as PyTorch does: ``weight = 1``.

    Args:
      d: the normalised (last-axis) size.
      eps: ``epsilon``; ``None`` (default, as PyTorch) means ``jnp.finfo(a.dtype).eps`` of the
        input, ``2.22e-16`` in float64.
      elementwise_affine: learn ``weight``.

    References:
      B. Zhang & R. Sennrich, "Root mean square layer normalization", NeurIPS 2019.

    >>> import jax, jax.numpy as jnp, fisherlab as fl
    >>> rms = fl.nn.RMSNorm(2)
    >>> rms(rms.init(jax.random.key(0)), jnp.asarray([3.0, 4.0])).round(4)
    Array([0.8485, 1.1314], dtype=float64)
    """

    d: int
    eps: float | None = None
    elementwise_affine: bool = True

    def __post_init__(self):
        check_int(self.d, "d", minimum=1)
        if self.eps is not None:
            _check_eps(self.eps)
        _check_flag(self.elementwise_affine, "elementwise_affine")

    @property
    def has_params(self) -> bool:
        return self.elementwise_affine

    def param_spec(self):
        return (("weight", (self.d,), ""),) if self.elementwise_affine else ()

    def init(self, key):
        """PyTorch's default: ``weight = 1`` (float64); ``None`` without parameters."""
        return (_ones(self.d),) if self.elementwise_affine else None

    def input_spec(self):
        return ("features", self.d)

    def chain(self, state, where):
        return _chain_width(self, self.d, state, where)

    def __call__(self, params, a):
        check_last_axis(self, a, self.d, "d")
        eps = float(jnp.finfo(jnp.result_type(a)).eps) if self.eps is None else self.eps
        y = a / jnp.sqrt(jnp.mean(jnp.square(a), axis=-1, keepdims=True) + eps)
        if self.elementwise_affine:
            y = y * params[0]
        return y
