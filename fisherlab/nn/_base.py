"""The layer protocol shared by every ``fl.nn`` layer.

A layer is an immutable description (a frozen dataclass, so it hashes and compares by value);
``layer(params, a)`` applies it to one example. A layer with parameters (``has_params``)
describes them by :meth:`Layer.param_spec` -- names, shapes and layouts in PyTorch's order --
from which ``num_params`` and ``check_params`` follow. ``init(key)`` draws them as float64 with
PyTorch's default initialisation.

Static checks of a chain of layers use a small *feature state* that every layer maps forward
(:meth:`Layer.chain`): ``None`` (unknown), ``("features", d)`` (the last axis has ``d`` entries),
``("channels", c)`` (a ``(C, H, W)`` image with ``c`` channels) or ``("tokens", None)`` (integer
token ids).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["Layer", "bound_fan_in", "check_last_axis", "uniform", "unknown_width"]


def unknown_width(state):
    """The last-axis width of a feature state, or ``None``."""
    return state[1] if state is not None and state[0] == "features" else None


class Layer:
    """A layer of a :class:`~fisherlab.nn.Sequential`: ``layer(params, a)`` on one example.

    Layers without parameters (activations, ``Flatten``, ``MeanPool``) are called with
    ``params=None`` and own no entry of a ``Sequential``'s parameter list.
    """

    has_params = False

    def param_spec(self) -> tuple[tuple[str, tuple[int, ...], str], ...]:
        """``((name, shape, layout), ...)`` of the parameters, in PyTorch's ``parameters()`` order."""
        return ()

    @property
    def num_params(self) -> int:
        """The number of scalar parameters."""
        return sum(int(np.prod(shape, dtype=np.int64)) for _, shape, _ in self.param_spec())

    def init(self, key):
        """Parameters drawn with PyTorch's default initialisation (float64); ``None`` if none."""
        return None

    def check_params(self, params, name: str = "params") -> None:
        """Raise ``ValueError`` unless ``params`` has the layout of :meth:`param_spec`."""
        spec = self.param_spec()
        names = tuple(n for n, _, _ in spec)
        what = "pair" if len(spec) == 2 else "tuple"
        if not isinstance(params, (list, tuple)) or len(params) != len(spec):
            got = type(params).__name__ + (f" of length {len(params)}"
                                           if isinstance(params, (list, tuple)) else "")
            raise ValueError(f"{name} must be a ({', '.join(names)}{',' if len(names) == 1 else ''}) "
                             f"{what} for {self}, got {got}")
        for i, ((pname, shape, layout), p) in enumerate(zip(spec, params)):
            if tuple(jnp.shape(p)) != tuple(shape):
                desc = f" = {layout}" if layout else ""
                raise ValueError(f"{name}[{i}] ({pname}) must have shape {tuple(shape)}{desc}, "
                                 f"got {tuple(jnp.shape(p))}")

    def input_spec(self):
        """What one input example must be: ``("features", d)`` (last axis ``d``),
        ``("tokens", num_embeddings)`` (integer ids) or ``None`` (not fixed by this layer)."""
        return None

    def chain(self, state, where: str):
        """The feature state after this layer; raises ``ValueError`` when it cannot follow ``state``."""
        return state

    def __call__(self, params, a):  # pragma: no cover - abstract
        raise NotImplementedError


def check_last_axis(layer, a, size: int, name: str = "in_features") -> None:
    """Raise unless ``a`` (one example) has at least one axis and its last axis has ``size`` entries."""
    shape = tuple(jnp.shape(a))
    if len(shape) == 0 or shape[-1] != size:
        raise ValueError(f"{layer} expects inputs whose last axis has {name} = {size} entries, "
                         f"got shape {shape}")


def uniform(key, shape, bound: float) -> jax.Array:
    """float64 ``U(-bound, bound)`` whatever the global x64 flag (``bound`` a Python float)."""
    with jax.enable_x64(True):
        return jax.random.uniform(key, shape, jnp.float64, -bound, bound)


def bound_fan_in(fan_in: int) -> float:
    """PyTorch's default ``1/sqrt(fan_in)`` bound for ``Linear``/``Conv2d`` weights and biases."""
    return 1.0 / math.sqrt(fan_in)
