"""A model's parameters as one flat list of exact numbers, in ``ravel_pytree(params)`` order.

:func:`layout` gives, for a :class:`fisherlab.nn.Sequential`, the same nesting as its ``params``
with every array replaced by the integer array of its entries' positions in that flat list;
:func:`values` checks ``params`` against the model (shapes named after PyTorch's parameters)
and converts every entry to its exact value.
"""

from __future__ import annotations

import numpy as np

from fisherlab import nn
from fisherlab.testing.references.symbolic._values import as_array

__all__ = ["layout", "values"]


def layout(model):
    """``(positions, d)``: ``params``'s nesting with integer position arrays, and ``d``."""
    count = [0]

    def walk(layer):
        if isinstance(layer, nn.Sequential):
            return [walk(l) for l in layer.param_layers]
        if isinstance(layer, nn.Residual):
            return walk(layer.block)
        out = []
        for _, shape, _ in layer.param_spec():
            size = int(np.prod(shape, dtype=np.int64))
            out.append(np.arange(count[0], count[0] + size).reshape(shape))
            count[0] += size
        return tuple(out)

    positions = walk(model)
    return positions, count[0]


def values(model, params) -> list:
    """The entries of ``params`` as exact numbers, in ``ravel_pytree`` order (shapes checked)."""
    out: list = []

    def walk(layer, p, name):
        if isinstance(layer, nn.Sequential):
            layers = layer.param_layers
            if not isinstance(p, (list, tuple)) or len(p) != len(layers):
                kinds = ", ".join(sorted({type(l).__name__ for l in layers}))
                raise ValueError(
                    f"{name} must be a list of {len(layers)} parameter entries (one per layer "
                    f"with parameters: {kinds}), got {type(p).__name__}"
                    + (f" of length {len(p)}" if hasattr(p, "__len__") else ""))
            for k, (l, q) in enumerate(zip(layers, p)):
                walk(l, q, f"{name}[{k}]")
            return
        if isinstance(layer, nn.Residual):
            walk(layer.block, p, name)
            return
        spec = layer.param_spec()
        names = ", ".join(n for n, _, _ in spec) + ("," if len(spec) == 1 else "")
        if not isinstance(p, (list, tuple)) or len(p) != len(spec):
            what = "pair" if len(spec) == 2 else "tuple"
            raise ValueError(f"{name} must be a ({names}) {what} for {layer}, got "
                             f"{type(p).__name__}")
        for i, ((pname, shape, lay), q) in enumerate(zip(spec, p)):
            out.extend(as_array(q, f"{name}[{i}] ({pname}, shape {lay or tuple(shape)})", shape))

    walk(model, params, "params")
    return out
