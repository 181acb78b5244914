"""Small sequential networks with PyTorch's parameter order.

``Sequential([Dense(3, 4), Tanh(), Dense(4, 2)])``: ``init(key)`` returns
``params = [(W_1, b_1), (W_2, b_2), ...]`` with ``W_k`` of shape ``(out, in)``
and ``s_k = W_k a_{k-1} + b_k``; flattening with ``jax.flatten_util.ravel_pytree``
gives ``W_1`` row-major, ``b_1``, ``W_2``, ``b_2``, ... -- exactly the order of
``torch.nn.Sequential(...).parameters()``, so curvature matrices compare with a
PyTorch peer without permutation.

``model(params, x)`` maps a single example ``x`` of shape ``(in,)`` to outputs
``(C,)``, so a model is a valid ``f(params, x)`` for every reference in
fisherlab. A ``Dense`` layer also accepts an input with a leading sequence axis
``(T, in)`` (weight sharing); it is then applied to every position.

Convolutions: ``Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0)`` on a single
example of shape ``(C_in, H, W)`` (PyTorch's NCHW without the batch axis), weight of shape
``(out, in, kh, kw)`` and bias ``(out,)`` -- again PyTorch's layout and ``parameters()`` order;
``Flatten()`` turns ``(C, H, W)`` into ``(C H W,)`` in row-major (PyTorch) order, and
``MeanPool()`` averages over the leading (position) axis ``(T, F) -> (F,)``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from fisherlab._core.validation import check_int

__all__ = ["Layer", "Dense", "Conv2d", "Flatten", "MeanPool", "Tanh", "Sigmoid", "ReLU",
           "Identity", "Sequential"]


class Layer:
    """A layer; activations have no parameters."""

    has_params = False

    def __call__(self, params, a):  # pragma: no cover - abstract
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class Dense(Layer):
    """Affine layer ``s = W a + b`` with ``W`` of shape ``(out_features, in_features)``."""

    in_features: int
    out_features: int
    has_params = True

    def __post_init__(self):
        check_int(self.in_features, "in_features", minimum=1)
        check_int(self.out_features, "out_features", minimum=1)

    def init(self, key) -> tuple[jax.Array, jax.Array]:
        """PyTorch's default: uniform(-1/sqrt(in), 1/sqrt(in)) for W and b, float64."""
        kw, kb = jax.random.split(key)
        bound = 1.0 / math.sqrt(self.in_features)  # a Python float: exact whatever the x64 flag
        with jax.enable_x64(True):
            W = jax.random.uniform(kw, (self.out_features, self.in_features), jnp.float64,
                                   -bound, bound)
            b = jax.random.uniform(kb, (self.out_features,), jnp.float64, -bound, bound)
        return W, b

    def __call__(self, params, a):
        W, b = params
        return a @ W.T + b  # works for (in,) and (T, in)


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
    Parameters ``(W, b)`` in PyTorch's layout and order. The forward pass uses
    ``jax.lax.conv_general_dilated``; :meth:`patches` (im2col) is the matrix view used by
    K-FAC (KFC, Grosse & Martens 2016) and is tested against it.
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
        return (self.out_channels, self.in_channels) + tuple(self.kernel_size)

    @property
    def fan_in(self) -> int:
        return self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    def init(self, key) -> tuple[jax.Array, jax.Array]:
        """PyTorch's default: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b, float64."""
        kw, kb = jax.random.split(key)
        bound = 1.0 / math.sqrt(self.fan_in)
        with jax.enable_x64(True):
            W = jax.random.uniform(kw, self.weight_shape, jnp.float64, -bound, bound)
            b = jax.random.uniform(kb, (self.out_channels,), jnp.float64, -bound, bound)
        return W, b

    def _check_input(self, a):
        if a.ndim != 3 or a.shape[0] != self.in_channels:
            raise ValueError(
                f"Conv2d({self.in_channels}, {self.out_channels}) expects one example of shape "
                f"(C_in, H, W) = ({self.in_channels}, H, W), got shape {tuple(a.shape)}")

    def output_size(self, H: int, W: int) -> tuple[int, int]:
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


@dataclasses.dataclass(frozen=True)
class Flatten(Layer):
    """``(C, H, W) -> (C H W,)`` in row-major order (PyTorch's ``nn.Flatten`` per example)."""

    def __call__(self, params, a):
        return a.reshape((-1,))


@dataclasses.dataclass(frozen=True)
class MeanPool(Layer):
    """Average over the leading (position) axis: ``(T, F) -> (F,)``.

    Pools a weight-shared sequence before the output -- the *reduce setting* of
    Eschenhagen et al. (2023), in which K-FAC-reduce is exact for deep linear networks.
    """

    def __call__(self, params, a):
        return jnp.mean(a, axis=0)


@dataclasses.dataclass(frozen=True)
class _Activation(Layer):
    """An elementwise activation: no parameters, the same function on JAX and SymPy values."""

    def symbolic(self, z):
        """The same elementwise function applied to a SymPy expression."""
        raise NotImplementedError


class Tanh(_Activation):
    """``tanh(a)``, elementwise."""

    def __call__(self, params, a):
        return jnp.tanh(a)

    def symbolic(self, z):
        import sympy as sp

        return sp.tanh(z)


class Sigmoid(_Activation):
    """The logistic function ``1 / (1 + e^{-a})``, elementwise."""

    def __call__(self, params, a):
        return jax.nn.sigmoid(a)

    def symbolic(self, z):
        import sympy as sp

        return 1 / (1 + sp.exp(-z))


class ReLU(_Activation):
    """``max(a, 0)``; its derivative at 0 is taken as 0 (as in PyTorch and JAX)."""

    def __call__(self, params, a):
        return jax.nn.relu(a)  # custom JVP: relu'(0) = 0, as in PyTorch (jnp.maximum gives 0.5)

    def symbolic(self, z):
        import sympy as sp

        return sp.Max(z, 0)


class Identity(_Activation):
    """``a`` unchanged."""

    def __call__(self, params, a):
        return a

    def symbolic(self, z):
        return z


class Sequential:
    """A chain of layers; ``params`` holds one ``(W, b)`` tuple per parametric layer.

    Parametric layers are ``Dense`` and ``Conv2d`` (``layer.has_params``); activations,
    ``Flatten`` and ``MeanPool`` take no parameters. ``model(params, x)`` maps one example to
    its outputs, so a model is a valid ``f(params, x)`` for every reference.

    >>> import jax, fisherlab as fl
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> [W.shape for W, b in params], model.num_params
    ([(4, 3), (2, 4)], 26)
    >>> model(params, jax.numpy.ones(3)).shape
    (2,)
    """

    def __init__(self, layers: Sequence[Layer]):
        layers = tuple(layers)
        if not layers:
            raise ValueError("layers must contain at least one layer, got an empty sequence")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be a fisherlab.nn layer, got {layer!r}")
        dense = [l for l in layers if isinstance(l, Dense)]
        for prev, nxt in zip(dense, dense[1:]):
            if prev.out_features != nxt.in_features:
                raise ValueError(
                    f"layer widths do not chain: {prev} outputs {prev.out_features} features "
                    f"but the next Dense layer expects {nxt.in_features}")
        convs = [l for l in layers if isinstance(l, Conv2d)]
        for prev, nxt in zip(convs, convs[1:]):
            if prev.out_channels != nxt.in_channels:
                raise ValueError(
                    f"channels do not chain: {prev} outputs {prev.out_channels} channels "
                    f"but the next Conv2d layer expects {nxt.in_channels}")
        self.layers = layers

    @property
    def dense_layers(self) -> tuple[Dense, ...]:
        """The ``Dense`` layers, in order."""
        return tuple(l for l in self.layers if isinstance(l, Dense))

    @property
    def param_layers(self) -> tuple[Layer, ...]:
        """The layers that own a ``(W, b)`` entry of ``params`` (Dense and Conv2d), in order."""
        return tuple(l for l in self.layers if l.has_params)

    @property
    def in_features(self) -> int:
        """Input width of the first ``Dense`` layer (``None`` without one)."""
        return self.dense_layers[0].in_features if self.dense_layers else None

    @property
    def out_features(self) -> int:
        """Output width of the last ``Dense`` layer (``None`` without one)."""
        return self.dense_layers[-1].out_features if self.dense_layers else None

    @property
    def num_params(self) -> int:
        """``d``, the number of scalar parameters."""
        total = 0
        for l in self.param_layers:
            if isinstance(l, Dense):
                total += l.out_features * (l.in_features + 1)
            else:
                total += l.out_channels * (l.fan_in + 1)
        return total

    def init(self, key) -> list[tuple[jax.Array, jax.Array]]:
        """``[(W, b), ...]``, one float64 pair per parametric layer (PyTorch's default init)."""
        layers = self.param_layers
        keys = jax.random.split(key, max(len(layers), 1))
        return [layer.init(k) for layer, k in zip(layers, keys)]

    def check_params(self, params, name: str = "params") -> None:
        """Raise unless ``params`` is ``[(W, b), ...]`` matching the parametric layers."""
        layers = self.param_layers
        if not isinstance(params, (list, tuple)) or len(params) != len(layers):
            raise ValueError(
                f"{name} must be a list of {len(layers)} (W, b) tuples (one per Dense/Conv2d "
                f"layer), got {type(params).__name__} of length "
                f"{len(params) if hasattr(params, '__len__') else '?'}")
        for k, (layer, p) in enumerate(zip(layers, params)):
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                raise ValueError(f"{name}[{k}] must be a (W, b) pair, got {type(p).__name__}")
            W, b = p
            if isinstance(layer, Dense):
                w_shape, w_desc = (layer.out_features, layer.in_features), "(out, in)"
                b_shape = (layer.out_features,)
            else:
                w_shape, w_desc = layer.weight_shape, "(out, in, kh, kw)"
                b_shape = (layer.out_channels,)
            if tuple(jnp.shape(W)) != w_shape:
                raise ValueError(
                    f"{name}[{k}][0] (W) must have shape {w_shape} = {w_desc}, "
                    f"got {jnp.shape(W)}")
            if tuple(jnp.shape(b)) != b_shape:
                raise ValueError(
                    f"{name}[{k}][1] (b) must have shape {b_shape}, got {jnp.shape(b)}")

    def forward_with_intermediates(self, params, x):
        """Outputs plus, for each parametric layer k, its input ``a_{k-1}`` and pre-activation ``s_k``."""
        inputs, preacts = [], []
        a, k = x, 0
        for layer in self.layers:
            if layer.has_params:
                inputs.append(a)
                a = layer(params[k], a)
                preacts.append(a)
                k += 1
            else:
                a = layer(None, a)
        return a, inputs, preacts

    def __call__(self, params, x):
        a, k = x, 0
        for layer in self.layers:
            if layer.has_params:
                a = layer(params[k], a)
                k += 1
            else:
                a = layer(None, a)
        return a

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.layers == self.layers

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.layers))

    def __repr__(self) -> str:
        return f"Sequential({list(self.layers)!r})"


def __dir__():
    return list(__all__)
