"""Equinox adapter (``fl.testing.equinox``): references for an Equinox model in its own order.

An Equinox model is a pytree and already a single-example JAX function, so it *is* the model of
fisherlab's dense references: ``params, static = eqx.partition(model, filter_spec)`` (default
``eqx.is_inexact_array``: every floating-point array is a parameter) and
``f(params, x_n) = eqx.combine(params, static)(x_n)``. The references come out in Equinox's own
order and layout, with no permutation to undo:

* rows and columns follow ``jax.tree_util.tree_leaves(params)``: the module's fields in
  definition order, recursively (``eqx.nn.Linear``: ``weight`` then ``bias``; a list of layers
  in list order); fields that are not parameters are skipped;
* each leaf is flattened row-major as stored: ``eqx.nn.Linear.weight`` is ``(out, in)`` (as
  PyTorch and ``fl.nn``), ``eqx.nn.MultiheadAttention`` keeps four separate ``Linear``
  projections (query, key, value, output; bias-free by default), ``eqx.nn.LayerNorm`` has
  ``weight`` then ``bias`` of the normalised shape.

:func:`parameter_slices` names the rows (key path, slice, shape) and :func:`unflatten` turns a
flat vector back into the parameter pytree (``eqx.combine(unflatten(params, v), static)``
rebuilds a model). The loss is a fisherlab likelihood with ``reduction`` and, for models with
per-token outputs ``(R, C)``, ``tokens`` (docs/CONVENTIONS.md).

K-FAC layout maps (Equinox layers to ``fl.nn`` layers) are not offered: only the dense
references (:data:`DENSE_QUANTITIES`).

Requires the optional ``equinox`` extra (``pip install 'fisherlab[equinox]'``); ``equinox`` is
imported when an adapter function is called.

>>> import jax, jax.numpy as jnp, equinox as eqx, fisherlab as fl
>>> from fisherlab.testing import equinox as fle
>>> net = eqx.nn.MLP(3, 2, width_size=4, depth=1, activation=jnp.tanh, key=jax.random.key(0))
>>> x, y = jnp.ones((5, 3)), jnp.array([0, 1, 1, 0, 1])
>>> G = fle.reference(net, x, y, fl.Categorical(), "ggn")
>>> G.shape, [s.name for s in fle.parameter_slices(fle.model_and_params(net)[1])][:2]
((26, 26), ['.layers[0].weight', '.layers[0].bias'])
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from fisherlab.testing._problem import Problem
from fisherlab.testing._pytree_params import (DENSE_QUANTITIES, ParameterSlice, compute,
                                              parameter_slices, unflatten)

__all__ = ["DENSE_QUANTITIES", "EquinoxModel", "ParameterSlice", "model_and_params",
           "parameter_slices", "problem", "reference", "references", "unflatten"]

_HINT = ("fisherlab.testing.equinox needs Equinox: install it with `python3 -m pip install "
         "equinox` (or the extra: pip install 'fisherlab[equinox]')")


def _eqx():
    try:
        import equinox
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_HINT) from exc
    return equinox


@dataclasses.dataclass(frozen=True)
class EquinoxModel:
    """``f(params, x_n) = eqx.combine(params, static)(x_n)``."""

    static: Any

    def __call__(self, params, x):
        return _eqx().combine(params, self.static)(x)


def model_and_params(model, *, filter_spec=None):
    """``(f, params)``: the Equinox model as fisherlab's ``f(params, x_n)`` and its parameters.

    Args:
      model: an ``equinox.Module`` mapping one example to its outputs ``(C,)`` or ``(R, C)``.
      filter_spec: which leaves are parameters, as for ``eqx.partition`` (default
        ``eqx.is_inexact_array``).

    Returns:
      ``f`` and ``params`` (``model`` with every non-parameter leaf ``None``).
    """
    eqx = _eqx()
    if not isinstance(model, eqx.Module):
        raise TypeError(f"model must be an equinox.Module, got {type(model).__name__}")
    params, static = eqx.partition(model, eqx.is_inexact_array if filter_spec is None
                                   else filter_spec)
    if not jax.tree_util.tree_leaves(params):
        raise ValueError(f"{type(model).__name__} has no parameters (no leaf passes "
                         "filter_spec)")
    return EquinoxModel(static), params


def problem(model, x, y, likelihood, *, filter_spec=None, reduction: str = "mean") -> Problem:
    """The :class:`fisherlab.testing.Problem` of an Equinox model and batch (for
    ``assert_curvature_close(..., problem=...)`` and ``diagnose``), in its parameter order.

    Args:
      model, filter_spec: as in :func:`model_and_params`.
      x, y, likelihood: the batch and the likelihood, as in :func:`reference`.
      reduction: ``"mean"`` (default) or ``"sum"``.
    """
    f, params = model_and_params(model, filter_spec=filter_spec)
    return Problem(f, params, x, y, likelihood, reduction=reduction)


def reference(model, x, y, likelihood, quantity: str, *, filter_spec=None, **options):
    """fisherlab's float64 reference ``quantity`` for an Equinox model, in its parameter order.

    Args:
      model, filter_spec: as in :func:`model_and_params`.
      x, y: the batch (leading axis ``N``); ``y`` in ``likelihood``'s format (ignored for
        ``"fisher"``).
      likelihood: a fisherlab likelihood, e.g. ``fl.Categorical()``.
      quantity: one of :data:`DENSE_QUANTITIES`.
      **options: passed on, e.g. ``reduction="sum"``, ``tokens="flatten"``.

    Returns:
      ``(d, d)`` (``(d,)`` for ``"gradient"``) float64 NumPy, rows in
      :func:`parameter_slices` order.
    """
    f, params = model_and_params(model, filter_spec=filter_spec)
    return compute(f, params, x, y, likelihood, quantity, **options)


def references(model, x, y, likelihood, quantities=("ggn", "fisher", "empirical_fisher"), *,
               filter_spec=None, **options) -> dict:
    """Several references at once: ``{quantity: matrix}``."""
    f, params = model_and_params(model, filter_spec=filter_spec)
    for q in quantities:
        if q not in DENSE_QUANTITIES:
            raise ValueError(f"quantity must be one of {list(DENSE_QUANTITIES)}, got {q!r}")
    return {q: compute(f, params, x, y, likelihood, q, **options) for q in quantities}
