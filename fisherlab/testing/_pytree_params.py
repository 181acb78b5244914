"""References on a model whose parameters are any JAX pytree, indexed as ``jax.tree_util`` flattens it.

Shared by the Flax and Equinox adapters (:mod:`fisherlab.testing.flax`,
:mod:`fisherlab.testing.equinox`): the framework's own model is the ``f(params, x)`` of the dense
references, so every matrix is already in the framework's order and layout (the order of
``jax.tree_util.tree_leaves(params)``, each leaf flattened row-major as stored);
:func:`parameter_slices` names the rows and :func:`unflatten` maps a flat vector back.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
from jax.flatten_util import ravel_pytree

import fisherlab as fl

__all__ = ["DENSE_QUANTITIES", "ParameterSlice", "compute", "parameter_slices", "unflatten"]

#: the quantities the adapters compute (dense, in the framework's parameter order)
DENSE_QUANTITIES = ("hessian", "ggn", "fisher", "empirical_fisher", "gradient_covariance",
                    "gradient")


class ParameterSlice(NamedTuple):
    """One parameter tensor: its key path, its rows ``start:stop`` of a curvature matrix, its shape."""

    name: str
    start: int
    stop: int
    shape: tuple


def parameter_slices(params) -> list[ParameterSlice]:
    """The parameter tensors in the order of the rows of every reference (``ravel_pytree``).

    >>> import jax.numpy as jnp
    >>> [s.name for s in parameter_slices({"b": jnp.zeros(2), "a": jnp.zeros((2, 3))})]
    ["['a']", "['b']"]
    """
    out, start = [], 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        size = int(np.size(leaf))
        out.append(ParameterSlice(jax.tree_util.keystr(path), start, start + size,
                                  tuple(np.shape(leaf))))
        start += size
    return out


def unflatten(params, vector):
    """A flat vector (the rows' order) as a pytree like ``params``."""
    flat, unravel = ravel_pytree(params)
    v = np.asarray(vector)
    if v.shape != flat.shape:
        raise ValueError(f"vector must have shape {tuple(flat.shape)} (one entry per parameter), "
                         f"got {v.shape}")
    return unravel(jax.numpy.asarray(v, flat.dtype))


def compute(f, params, x, y, likelihood, quantity: str, **options) -> np.ndarray:
    """fisherlab's reference ``quantity`` of ``f(params, x)`` as a float64 NumPy array."""
    if quantity not in DENSE_QUANTITIES:
        raise ValueError(f"quantity must be one of {list(DENSE_QUANTITIES)}, got {quantity!r}")
    if quantity == "fisher":
        out = fl.fisher(f, params, x, likelihood, **options)
    else:
        out = getattr(fl, quantity)(f, params, x, y, likelihood, **options)
    return np.asarray(out, np.float64)
