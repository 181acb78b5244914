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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from fisherlab._validation import check_int

__all__ = ["Layer", "Dense", "Tanh", "Sigmoid", "ReLU", "Identity", "Sequential"]


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
        bound = 1.0 / jnp.sqrt(self.in_features)
        with jax.enable_x64(True):
            W = jax.random.uniform(kw, (self.out_features, self.in_features), jnp.float64,
                                   -bound, bound)
            b = jax.random.uniform(kb, (self.out_features,), jnp.float64, -bound, bound)
        return W, b

    def __call__(self, params, a):
        W, b = params
        return a @ W.T + b  # works for (in,) and (T, in)


@dataclasses.dataclass(frozen=True)
class _Activation(Layer):
    def symbolic(self, z):
        """The same elementwise function applied to a SymPy expression."""
        raise NotImplementedError


class Tanh(_Activation):
    def __call__(self, params, a):
        return jnp.tanh(a)

    def symbolic(self, z):
        import sympy as sp

        return sp.tanh(z)


class Sigmoid(_Activation):
    def __call__(self, params, a):
        return jax.nn.sigmoid(a)

    def symbolic(self, z):
        import sympy as sp

        return 1 / (1 + sp.exp(-z))


class ReLU(_Activation):
    """``max(a, 0)``; its derivative at 0 is taken as 0 (as in PyTorch and JAX)."""

    def __call__(self, params, a):
        return jnp.maximum(a, 0.0)

    def symbolic(self, z):
        import sympy as sp

        return sp.Max(z, 0)


class Identity(_Activation):
    def __call__(self, params, a):
        return a

    def symbolic(self, z):
        return z


class Sequential:
    """A chain of layers; ``params`` holds one ``(W, b)`` tuple per ``Dense`` layer."""

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
        self.layers = layers

    @property
    def dense_layers(self) -> tuple[Dense, ...]:
        return tuple(l for l in self.layers if isinstance(l, Dense))

    @property
    def in_features(self) -> int:
        return self.dense_layers[0].in_features if self.dense_layers else None

    @property
    def out_features(self) -> int:
        return self.dense_layers[-1].out_features if self.dense_layers else None

    @property
    def num_params(self) -> int:
        return sum(l.out_features * (l.in_features + 1) for l in self.dense_layers)

    def init(self, key) -> list[tuple[jax.Array, jax.Array]]:
        keys = jax.random.split(key, max(len(self.dense_layers), 1))
        return [layer.init(k) for layer, k in zip(self.dense_layers, keys)]

    def check_params(self, params, name: str = "params") -> None:
        """Raise unless ``params`` is ``[(W, b), ...]`` matching the Dense layers."""
        dense = self.dense_layers
        if not isinstance(params, (list, tuple)) or len(params) != len(dense):
            raise ValueError(
                f"{name} must be a list of {len(dense)} (W, b) tuples (one per Dense layer), "
                f"got {type(params).__name__} of length "
                f"{len(params) if hasattr(params, '__len__') else '?'}")
        for k, (layer, p) in enumerate(zip(dense, params)):
            if not isinstance(p, (list, tuple)) or len(p) != 2:
                raise ValueError(f"{name}[{k}] must be a (W, b) pair, got {type(p).__name__}")
            W, b = p
            if jnp.shape(W) != (layer.out_features, layer.in_features):
                raise ValueError(
                    f"{name}[{k}][0] (W) must have shape ({layer.out_features}, "
                    f"{layer.in_features}) = (out, in), got {jnp.shape(W)}")
            if jnp.shape(b) != (layer.out_features,):
                raise ValueError(
                    f"{name}[{k}][1] (b) must have shape ({layer.out_features},), got {jnp.shape(b)}")

    def forward_with_intermediates(self, params, x):
        """Outputs plus, for each Dense layer k, its input ``a_{k-1}`` and pre-activation ``s_k``."""
        inputs, preacts = [], []
        a, k = x, 0
        for layer in self.layers:
            if isinstance(layer, Dense):
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
            if isinstance(layer, Dense):
                a = layer(params[k], a)
                k += 1
            else:
                a = layer(None, a)
        return a

    def __repr__(self) -> str:
        return f"Sequential({list(self.layers)!r})"
