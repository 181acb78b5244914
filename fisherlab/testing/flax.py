"""Flax adapter (``fl.testing.flax``): references for a Flax model in Flax's own parameter order.

A Flax model is already JAX, so it *is* the model of fisherlab's dense references: for
``flax.linen`` ``f(params, x_n) = module.apply({"params": params, **other}, x_n[None])[0]``
(the module applied to a batch of one example; ``other`` holds the remaining variable
collections, e.g. ``batch_stats``, as constants), for ``flax.nnx``
``f(params, x_n) = nnx.merge(graphdef, params, rest)(x_n[None])[0]`` with
``graphdef, params, rest = nnx.split(model, nnx.Param, ...)``. The references therefore come out
in exactly Flax's order and layout, with no permutation to undo:

* the rows and columns follow ``jax.tree_util.tree_leaves(params)``: for linen the ``params``
  dict with its keys sorted (``Dense_0/bias`` before ``Dense_0/kernel``, ``Dense_0`` before
  ``Dense_1``), for nnx the ``nnx.State`` of the ``nnx.Param`` variables (attribute names
  sorted, ``.value`` leaves);
* each leaf is flattened row-major as stored: a ``Dense``/``Linear`` kernel is ``(in, out)``,
  so its entry ``(i, o)`` is row ``start + i * out + o`` (PyTorch and ``fl.nn`` store
  ``W = kernel.T`` of shape ``(out, in)``); the bias is a separate leaf.

:func:`parameter_slices` names the rows (key path, slice, shape) and :func:`unflatten` turns a
flat vector back into Flax's pytree. The loss is a fisherlab likelihood with ``reduction`` and,
for models with per-token outputs ``(R, C)``, ``tokens`` (docs/CONVENTIONS.md): for optax's
``softmax_cross_entropy_with_integer_labels(...).mean()`` over a batch use ``fl.Categorical()``
and ``reduction="mean"``; over the tokens of ``(N, R)`` labels, ``tokens="flatten"``.

K-FAC layout maps (Flax ``(in, out)`` kernels to ``fl.nn`` layers) are not offered: only the
dense references (:data:`DENSE_QUANTITIES`).

Requires the optional ``flax`` extra (``pip install 'fisherlab[flax]'``); ``flax`` is imported
when an adapter function is called.

>>> import jax, jax.numpy as jnp, flax.linen as nn, fisherlab as fl
>>> from fisherlab.testing import flax as flf
>>> net = nn.Sequential([nn.Dense(4), nn.tanh, nn.Dense(2)])
>>> variables = net.init(jax.random.key(0), jnp.ones((1, 3), jnp.float32))
>>> x, y = jnp.ones((5, 3)), jnp.array([0, 1, 1, 0, 1])
>>> G = flf.reference(net, x, y, fl.Categorical(), "ggn", variables=variables)
>>> G.shape, [s.name for s in flf.parameter_slices(variables["params"])][:2]
((26, 26), ["['layers_0']['bias']", "['layers_0']['kernel']"])
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax

from fisherlab.testing._problem import Problem
from fisherlab.testing._pytree_params import (DENSE_QUANTITIES, ParameterSlice, compute,
                                              parameter_slices, unflatten)

__all__ = ["DENSE_QUANTITIES", "LinenModel", "NnxModel", "ParameterSlice", "model_and_params",
           "parameter_slices", "problem", "reference", "references", "unflatten"]

_HINT = ("fisherlab.testing.flax needs Flax: install it with `python3 -m pip install flax` "
         "(or the extra: pip install 'fisherlab[flax]')")


def _flax():
    try:
        import flax
        import flax.linen
        import flax.nnx  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_HINT) from exc
    return flax


def _batch_of_one(apply, x, batch_axis: bool):
    if not batch_axis:
        return apply(x)
    out = apply(jax.tree_util.tree_map(lambda a: a[None], x))
    return out[0]


@dataclasses.dataclass(frozen=True)
class LinenModel:
    """``f(params, x_n)`` of a ``flax.linen`` module (module docstring); ``constants`` are the
    variable collections other than ``params``."""

    module: Any
    constants: Any = dataclasses.field(default_factory=dict)
    batch_axis: bool = True

    def __call__(self, params, x):
        variables = {"params": params, **self.constants}
        return _batch_of_one(lambda xb: self.module.apply(variables, xb), x, self.batch_axis)


@dataclasses.dataclass(frozen=True)
class NnxModel:
    """``f(params, x_n)`` of a ``flax.nnx`` module: ``nnx.merge(graphdef, params, rest)``."""

    graphdef: Any
    rest: Any
    batch_axis: bool = True

    def __call__(self, params, x):
        from flax import nnx

        model = nnx.merge(self.graphdef, params, self.rest)
        return _batch_of_one(model, x, self.batch_axis)


def model_and_params(model, variables=None, *, batch_axis: bool = True):
    """``(f, params)``: the Flax model as fisherlab's ``f(params, x_n)`` and its parameters.

    Args:
      model: a ``flax.linen.Module`` (then ``variables`` is ``model.init(...)``'s dict, with a
        ``"params"`` collection) or a ``flax.nnx.Module`` (then ``variables`` is ``None``: the
        ``nnx.Param`` variables are its parameters, every other state a constant).
      batch_axis: apply the model to a batch of one example (``x_n[None]``, default: Flax
        models are written for batches) or to the example itself.

    Returns:
      ``f`` and ``params`` (the pytree whose ``jax.tree_util`` order indexes every reference).
    """
    flax = _flax()
    if not isinstance(batch_axis, bool):
        raise TypeError(f"batch_axis must be a bool, got {batch_axis!r}")
    if isinstance(model, flax.nnx.Module):
        if variables is not None:
            raise TypeError("variables must be None for a flax.nnx module (its parameters are "
                            f"its nnx.Param variables), got {type(variables).__name__}")
        graphdef, params, rest = flax.nnx.split(model, flax.nnx.Param, ...)
        if not jax.tree_util.tree_leaves(params):
            raise ValueError(f"the nnx module {type(model).__name__} has no nnx.Param variables")
        return NnxModel(graphdef, rest, batch_axis), params
    if isinstance(model, flax.linen.Module):
        if variables is None or not hasattr(variables, "keys") or "params" not in variables:
            raise TypeError(
                "variables must be the dict returned by model.init(key, x) (with a 'params' "
                f"collection) for a flax.linen module, got {type(variables).__name__}"
                + ("" if variables is None or not hasattr(variables, "keys")
                   else f" with collections {sorted(variables.keys())}"))
        constants = {k: v for k, v in variables.items() if k != "params"}
        return LinenModel(model, constants, batch_axis), variables["params"]
    raise TypeError(f"model must be a flax.linen.Module or a flax.nnx.Module, got "
                    f"{type(model).__name__}")


def problem(model, x, y, likelihood, *, variables=None, batch_axis: bool = True,
            reduction: str = "mean") -> Problem:
    """The :class:`fisherlab.testing.Problem` of a Flax model and batch (for
    ``assert_curvature_close(..., problem=...)`` and ``diagnose``), in Flax's parameter order.

    Args:
      model, variables, batch_axis: as in :func:`model_and_params`.
      x, y, likelihood: the batch and the likelihood, as in :func:`reference`.
      reduction: ``"mean"`` (default) or ``"sum"``.
    """
    f, params = model_and_params(model, variables, batch_axis=batch_axis)
    return Problem(f, params, x, y, likelihood, reduction=reduction)


def reference(model, x, y, likelihood, quantity: str, *, variables=None, batch_axis: bool = True,
              **options):
    """fisherlab's float64 reference ``quantity`` for a Flax model, in Flax's parameter order.

    Args:
      model, variables, batch_axis: as in :func:`model_and_params`.
      x, y: the batch (leading axis ``N``); ``y`` in ``likelihood``'s format (``y`` is ignored
        for ``"fisher"``).
      likelihood: a fisherlab likelihood, e.g. ``fl.Categorical()``.
      quantity: one of :data:`DENSE_QUANTITIES`.
      **options: passed on, e.g. ``reduction="sum"``, ``tokens="flatten"``.

    Returns:
      ``(d, d)`` (``(d,)`` for ``"gradient"``) float64 NumPy, rows in
      :func:`parameter_slices` order.
    """
    f, params = model_and_params(model, variables, batch_axis=batch_axis)
    return compute(f, params, x, y, likelihood, quantity, **options)


def references(model, x, y, likelihood, quantities=("ggn", "fisher", "empirical_fisher"), *,
               variables=None, batch_axis: bool = True, **options) -> dict:
    """Several references at once: ``{quantity: matrix}``."""
    f, params = model_and_params(model, variables, batch_axis=batch_axis)
    for q in quantities:
        if q not in DENSE_QUANTITIES:
            raise ValueError(f"quantity must be one of {list(DENSE_QUANTITIES)}, got {q!r}")
    return {q: compute(f, params, x, y, likelihood, q, **options) for q in quantities}
