"""Affine layers with weight sharing: ``Dense`` (over leading axes) and ``Conv2d`` (over locations)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from fisherlab._core.validation import check_int
from fisherlab.nn._base import Layer, bound_fan_in, check_last_axis, uniform, unknown_width

__all__ = ["Conv2d", "Dense"]


@dataclasses.dataclass(frozen=True)
class Dense(Layer):
    """Affine layer ``s = W a + b`` on the last axis, ``W`` of shape ``(out_features, in_features)``.

    Parameters ``(W, b)``: ``torch.nn.Linear``'s ``(weight, bias)`` layout and order. On an input
    with leading axes, e.g. a sequence ``(R, in)``, the same ``W, b`` act on every position
    (weight sharing), as ``torch.nn.Linear`` does. Initialisation: PyTorch's default
    ``U(-1/sqrt(in), 1/sqrt(in))`` for ``W`` and ``b``.

    >>> import jax, jax.numpy as jnp, fisherlab as fl
    >>> layer = fl.nn.Dense(3, 2)
    >>> W, b = layer.init(jax.random.key(0))
    >>> W.shape, layer((W, b), jnp.ones((5, 3))).shape
    ((2, 3), (5, 2))
    """

    in_features: int
    out_features: int
    has_params = True

    def __post_init__(self):
        check_int(self.in_features, "in_features", minimum=1)
        check_int(self.out_features, "out_features", minimum=1)

    def param_spec(self):
        return (("W", (self.out_features, self.in_features), "(out, in)"),
                ("b", (self.out_features,), ""))

    def init(self, key) -> tuple[jax.Array, jax.Array]:
        """PyTorch's default: ``U(-1/sqrt(in), 1/sqrt(in))`` for ``W`` and ``b``, float64."""
        kw, kb = jax.random.split(key)
        bound = bound_fan_in(self.in_features)
        return (uniform(kw, (self.out_features, self.in_features), bound),
                uniform(kb, (self.out_features,), bound))

    def input_spec(self):
        return ("features", self.in_features)

    def chain(self, state, where):
        width = unknown_width(state)
        if width is not None and width != self.in_features:
            raise ValueError(f"layer widths do not chain: {where} is {self}, which expects "
                             f"{self.in_features} features, but the previous layers produce "
                             f"{width}")
        if state is not None and state[0] == "tokens":
            raise ValueError(f"{where} is {self}, which expects float features, but it receives "
                             "integer token ids: put an Embedding first")
        return ("features", self.out_features)

    def __call__(self, params, a):
        check_last_axis(self, a, self.in_features)
        W, b = params
        return a @ W.T + b  # (in,) or (..., in)


def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
        return (check_int(value[0], name, minimum=minimum),
                check_int(value[1], name, minimum=minimum))
    v = check_int(value, name, minimum=minimum)
    return (v, v)


@dataclasses.dataclass(frozen=True)
class Conv2d(Layer):
    """2-d convolution (cross-correlation, as PyTorch) on one example ``(C_in, H, W)``.

    ``s[o, i, j] = b[o] + sum_{c, u, v} W[o, c, u, v] x_pad[c, i*sh + u, j*sw + v]`` with
    ``W`` of shape ``(out_channels, in_channels, kh, kw)``, zero padding ``padding`` on each
    side, output ``(out_channels, H_out, W_out)``, ``H_out = (H + 2 ph - kh) // sh + 1``.
    Parameters ``(W, b)`` in PyTorch's layout and order; initialisation PyTorch's default
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, ``fan_in = C_in kh kw``. The forward pass uses
    ``jax.lax.conv_general_dilated``; :meth:`patches` (im2col) is the matrix view used by
    K-FAC and is tested against it.

    References:
      R. Grosse & J. Martens, "A Kronecker-factored approximate Fisher matrix for convolution
      layers", ICML 2016.

    >>> import jax, fisherlab as fl
    >>> conv = fl.nn.Conv2d(1, 2, 3, padding=1)
    >>> conv(conv.init(jax.random.key(0)), jax.numpy.ones((1, 4, 4))).shape
    (2, 4, 4)
    """

    in_channels: int
    out_channels: int
    kernel_size: int | tuple[int, int]
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] = 0
    has_params = True

    def __post_init__(self):
        check_int(self.in_channels, "in_channels", minimum=1)
        check_int(self.out_channels, "out_channels", minimum=1)
        object.__setattr__(self, "kernel_size", _pair(self.kernel_size, "kernel_size", 1))
        object.__setattr__(self, "stride", _pair(self.stride, "stride", 1))
        object.__setattr__(self, "padding", _pair(self.padding, "padding", 0))

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """``(out_channels, in_channels, kh, kw)``."""
        return (self.out_channels, self.in_channels) + tuple(self.kernel_size)

    @property
    def fan_in(self) -> int:
        """``in_channels kh kw``, the length of one receptive field."""
        return self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    def param_spec(self):
        return (("W", self.weight_shape, "(out, in, kh, kw)"), ("b", (self.out_channels,), ""))

    def init(self, key) -> tuple[jax.Array, jax.Array]:
        """PyTorch's default: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for W and b, float64."""
        kw, kb = jax.random.split(key)
        bound = bound_fan_in(self.fan_in)
        return uniform(kw, self.weight_shape, bound), uniform(kb, (self.out_channels,), bound)

    def chain(self, state, where):
        if state is not None and state[0] == "channels" and state[1] != self.in_channels:
            raise ValueError(f"channels do not chain: {where} is {self}, which expects "
                             f"{self.in_channels} channels, but the previous layers produce "
                             f"{state[1]}")
        return ("channels", self.out_channels)

    def _check_input(self, a):
        if a.ndim != 3 or a.shape[0] != self.in_channels:
            raise ValueError(
                f"Conv2d({self.in_channels}, {self.out_channels}) expects one example of shape "
                f"(C_in, H, W) = ({self.in_channels}, H, W), got shape {tuple(a.shape)}")

    def output_size(self, H: int, W: int) -> tuple[int, int]:
        """``(H_out, W_out)`` for an input of spatial size ``(H, W)``."""
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        ho, wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
        if ho < 1 or wo < 1:
            raise ValueError(
                f"input of spatial size ({H}, {W}) is smaller than the kernel {self.kernel_size} "
                f"with padding {self.padding}")
        return ho, wo

    def __call__(self, params, a):
        W, b = params
        self._check_input(a)
        self.output_size(a.shape[1], a.shape[2])
        (ph, pw) = self.padding
        s = jax.lax.conv_general_dilated(
            a[None], W, window_strides=self.stride, padding=((ph, ph), (pw, pw)),
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
            precision=jax.lax.Precision.HIGHEST)[0]
        return s + b[:, None, None]

    def patches(self, a) -> tuple[jax.Array, tuple[int, int]]:
        """im2col: ``(patches (H_out W_out, C_in kh kw), (H_out, W_out))``.

        Row ``i W_out + j`` holds the receptive field of output location ``(i, j)``, flattened
        in the order ``(c, u, v)`` of ``W[o]``, so ``patches @ W.reshape(out, -1).T + b`` is the
        output with locations in row-major order.
        """
        self._check_input(a)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        ho, wo = self.output_size(a.shape[1], a.shape[2])
        xp = jnp.pad(a, ((0, 0), (ph, ph), (pw, pw)))
        rows = (jnp.arange(ho) * sh)[:, None] + jnp.arange(kh)[None, :]  # (ho, kh)
        cols = (jnp.arange(wo) * sw)[:, None] + jnp.arange(kw)[None, :]  # (wo, kw)
        # P[c, i, u, j, v] = xp[c, rows[i, u], cols[j, v]]
        P = xp[:, rows[:, :, None, None], cols[None, None, :, :]]
        P = jnp.transpose(P, (1, 3, 0, 2, 4))  # (ho, wo, c, kh, kw)
        return P.reshape((ho * wo, -1)), (ho, wo)
