"""``Sequential``: a chain of layers, parameters in PyTorch's ``parameters()`` order."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab.nn._activations import Activation
from fisherlab.nn._base import Layer
from fisherlab.nn._embedding import check_token_ids
from fisherlab.nn._linear import Dense

__all__ = ["Sequential"]


class Sequential(Layer):
    """A chain of layers; ``params`` holds one entry per layer with parameters, in order.

    ``Sequential([Dense(3, 4), Tanh(), Dense(4, 2)])``: ``init(key)`` returns
    ``params = [(W_1, b_1), (W_2, b_2)]`` with ``W_k`` of shape ``(out, in)``;
    ``jax.flatten_util.ravel_pytree(params)`` gives ``W_1`` row-major, ``b_1``, ``W_2``,
    ``b_2`` -- exactly the order of ``torch.nn.Sequential(...).parameters()``. Every layer
    stores its parameters in PyTorch's layout and order (a tuple per layer; a list for a
    nested ``Sequential``, e.g. inside :class:`~fisherlab.nn.Residual`), so a curvature matrix
    compares with a PyTorch peer without permutation (docs/CONVENTIONS.md, "Parameter order").
    Layers without parameters (activations, ``Flatten``, ``MeanPool``, ``LayerNorm`` without
    ``elementwise_affine``) own no entry.

    ``model(params, x)`` maps one example to its outputs, so a model is a valid
    ``f(params, x)`` for every reference. The layer widths are checked to chain when the model
    is built.

    >>> import jax, fisherlab as fl
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> [W.shape for W, b in params], model.num_params
    ([(4, 3), (2, 4)], 26)
    >>> model(params, jax.numpy.ones(3)).shape
    (2,)

    A pre-LN transformer block on token ids, pooled to one output per sequence:

    >>> d, h = 4, 2
    >>> block = [fl.nn.Residual(fl.nn.Sequential([fl.nn.LayerNorm(d),
    ...                                           fl.nn.MultiHeadAttention(d, h, causal=True)])),
    ...          fl.nn.Residual(fl.nn.Sequential([fl.nn.LayerNorm(d), fl.nn.Dense(d, 8),
    ...                                           fl.nn.GELU(), fl.nn.Dense(8, d)]))]
    >>> model = fl.nn.Sequential([fl.nn.Embedding(10, d), *block, fl.nn.MeanPool(),
    ...                           fl.nn.Dense(d, 3)])
    >>> params = model.init(jax.random.key(0))
    >>> model(params, jax.numpy.asarray([1, 5, 2])).shape, model.num_params
    ((3,), 227)
    """

    def __init__(self, layers: Sequence[Layer]):
        layers = tuple(layers)
        if not layers:
            raise ValueError("layers must contain at least one layer, got an empty sequence")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}] must be a fisherlab.nn layer, got {layer!r}")
        self.layers = layers
        self._out_state = self.chain(None, "")

    # ------------------------------------------------------------------ structure
    def chain(self, state, where: str):
        prefix = f"{where}.layers" if where else "layers"
        for i, layer in enumerate(self.layers):
            state = layer.chain(state, f"{prefix}[{i}]")
        return state

    def input_spec(self):
        for layer in self.layers:
            if not isinstance(layer, Activation):
                return layer.input_spec()
        return None

    @property
    def has_params(self) -> bool:
        return any(layer.has_params for layer in self.layers)

    @property
    def dense_layers(self) -> tuple[Dense, ...]:
        """The top-level ``Dense`` layers, in order (not those inside a ``Residual``)."""
        return tuple(l for l in self.layers if isinstance(l, Dense))

    @property
    def param_layers(self) -> tuple[Layer, ...]:
        """The layers that own an entry of ``params``, in order."""
        return tuple(l for l in self.layers if l.has_params)

    @property
    def in_features(self) -> int | None:
        """The last-axis width of one input example, ``None`` if the first layer takes token
        ids or images."""
        first = self.input_spec()
        return first[1] if first is not None and first[0] == "features" else None

    @property
    def out_features(self) -> int | None:
        """The last-axis width of the outputs (``None`` where it is not known statically)."""
        state = self._out_state
        return state[1] if state is not None and state[0] == "features" else None

    @property
    def num_params(self) -> int:
        """``d``, the number of scalar parameters."""
        return sum(l.num_params for l in self.param_layers)

    # ------------------------------------------------------------------ parameters
    def init(self, key) -> list:
        """One float64 entry per layer with parameters (PyTorch's default initialisation)."""
        layers = self.param_layers
        keys = jax.random.split(key, max(len(layers), 1))
        return [layer.init(k) for layer, k in zip(layers, keys)]

    def check_params(self, params, name: str = "params") -> None:
        """Raise ``ValueError`` unless ``params`` has one correctly shaped entry per layer with
        parameters."""
        layers = self.param_layers
        if not isinstance(params, (list, tuple)) or len(params) != len(layers):
            kinds = sorted({type(l).__name__ for l in layers})
            raise ValueError(
                f"{name} must be a list of {len(layers)} parameter tuples (one per layer with "
                f"parameters: {', '.join(kinds)}), got {type(params).__name__} of length "
                f"{len(params) if hasattr(params, '__len__') else '?'}")
        for k, (layer, p) in enumerate(zip(layers, params)):
            layer.check_params(p, f"{name}[{k}]")

    # ------------------------------------------------------------------ inputs
    def check_inputs(self, x, name: str = "x"):
        """A batch of inputs for this model, checked before any work: a stacked array.

        ``x`` is an array with a leading batch axis, or a list of per-example arrays. Raises
        ``ValueError`` when the examples differ in shape -- in particular a sequence length
        ``R`` that changes within the batch --, when the last axis does not match the first
        layer, or when token ids lie outside ``0..num_embeddings-1``; ``TypeError`` for token
        ids that are not integers. (Inside ``jax.jit`` the values are not checked.)

        >>> import fisherlab as fl
        >>> model = fl.nn.Sequential([fl.nn.Embedding(5, 2), fl.nn.MeanPool()])
        >>> model.check_inputs([[1, 2, 3], [0, 4, 4]]).shape
        (2, 3)
        """
        if isinstance(x, (list, tuple)):
            shapes = [tuple(np.shape(xi)) for xi in x]
            for n, s in enumerate(shapes[1:], 1):
                if s != shapes[0]:
                    if len(s) == len(shapes[0]) and len(s) >= 1 and s[1:] == shapes[0][1:]:
                        raise ValueError(
                            f"{name}: the sequence length changes within the batch: {name}[0] "
                            f"has R = {shapes[0][0]} tokens but {name}[{n}] has R = {s[0]}; "
                            "every example of a batch must have the same length (pad the "
                            "sequences, or compute one batch per length)")
                    raise ValueError(f"{name}: the examples of a batch must share their shape, "
                                     f"got {name}[0] of shape {shapes[0]} and {name}[{n}] of "
                                     f"shape {s}")
            if not shapes:
                raise ValueError(f"{name} must contain at least one example, got an empty list")
            x = np.stack([np.asarray(xi) for xi in x]) if shapes[0] else np.asarray(x)
        if isinstance(x, jax.core.Tracer):
            arr = x
        else:
            arr = np.asarray(x)
        if arr.ndim < 1 or arr.shape[0] == 0:
            raise ValueError(f"{name} must have a leading batch axis with at least one example, "
                             f"got shape {tuple(arr.shape)}")
        first = self.input_spec()
        if first is not None and first[0] == "tokens":
            check_token_ids(arr, first[1], name)
            return jnp.asarray(arr)
        if first is not None and (arr.ndim < 2 or arr.shape[-1] != first[1]):
            raise ValueError(f"{name} must have shape (N, ..., {first[1]}) (the first layer "
                             f"expects {first[1]} features), got shape {tuple(arr.shape)}")
        return jnp.asarray(arr)

    # ------------------------------------------------------------------ forward
    def forward_with_intermediates(self, params, x):
        """Outputs plus, for each top-level layer with parameters, its input and its output
        (for ``Dense``/``Conv2d`` the pre-activation ``s_k``)."""
        inputs, outputs = [], []
        a, k = x, 0
        for layer in self.layers:
            if layer.has_params:
                inputs.append(a)
                a = layer(params[k], a)
                outputs.append(a)
                k += 1
            else:
                a = layer(None, a)
        return a, inputs, outputs

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
