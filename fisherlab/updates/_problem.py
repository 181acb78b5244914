"""The problem of one update step, validated and prepared once.

:func:`prepare_step` checks the problem ``(f, params, x, y, likelihood)`` and the reduction, and
computes the loss gradient on it; :func:`curvature_matrix` then computes the dense curvature on
the *same* prepared problem, so a step validates and casts its inputs once. The scalar options
(``lr``, ``damping``) and flat vectors (the gradient, a step) are checked here too.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from fisherlab._core.validation import check_key, check_scalar, is_tracer
from fisherlab.curvature._dense import (
    dense_plan,
    gauss_newton_matrix,
    gradient_outer_matrix,
    gradient_vector,
    hessian_matrix,
)
from fisherlab.curvature._problem import Prepared, check_num_samples, check_reduction, prepare
from fisherlab.curvature._sharding import batch_mesh

__all__ = ["Step", "as_float64_tree", "check_damping", "check_lr", "curvature_matrix",
           "flat_vector", "prepare_step"]


def check_lr(lr):
    """The learning rate: a finite real number ``> 0`` (a tracer passes unchecked)."""
    return check_scalar(lr, "lr", positive=True)


def check_damping(damping):
    """The damping: a finite real number ``>= 0`` (a tracer passes unchecked)."""
    return check_scalar(damping, "damping", positive=False)


def as_float64_tree(tree):
    """Every leaf of ``tree`` as a float64 JAX array."""
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


def flat_vector(tree, name: str = "grads"):
    """``(flat float64 vector, unravel)`` of a pytree or a flat array of real, finite entries."""
    leaves = jax.tree_util.tree_leaves(tree)
    if not leaves:
        raise ValueError(f"{name} must contain at least one array, got {tree!r}")
    for leaf in leaves:
        if not is_tracer(leaf):
            arr = np.asarray(leaf)
            if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
                raise TypeError(f"{name} must hold real arrays, got dtype {arr.dtype}")
            if arr.size and not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} must be finite, got a non-finite entry")
    flat, unravel = ravel_pytree(as_float64_tree(tree))
    return flat, unravel


#: ``d x d`` copies a dense solve makes (the symmetrised, damped matrix and its factor).
SOLVE_COPIES = 3


class Step(NamedTuple):
    """A prepared step: the validated problem, its reduction, the flat loss gradient ``(d,)``,
    ``unravel`` (a flat ``(d,)`` vector to a pytree like ``params``), the memory budget of
    its dense curvature (``None``: the default) and the ``(mesh, axis)`` its batch is sharded
    over (``None``: one device; docs/multi_device.md)."""

    problem: Prepared
    reduction: str
    gradient: jax.Array
    unravel: object
    memory_budget: object = None
    mesh: object = None


def prepare_step(f, params, x, y, likelihood, reduction: str, tokens: str = "sum", *,
                 dense: str | None = None, num_samples: int = 1, memory_budget=None,
                 name: str | None = None) -> Step:
    """Validate the problem once (``params`` cast to float64) and compute its loss gradient.

    ``tokens``: how per-token outputs are reduced (docs/CONVENTIONS.md, "Per-token outputs").

    With ``dense`` (the kind of dense curvature the step will form and solve with) the memory
    plan of that matrix and its solve is checked *before* the gradient is computed, so a step
    too large for the memory budget fails at once with
    :class:`~fisherlab.curvature.CurvatureMemoryError`.
    """
    params = as_float64_tree(params)
    reduction = check_reduction(reduction)
    mesh = batch_mesh(x)
    p = prepare(f, params, x, y, likelihood, tokens=tokens)
    if dense is not None:
        dense_plan(p, dense, num_samples=num_samples, memory_budget=memory_budget,
                   solve_copies=SOLVE_COPIES, name=name, mesh=mesh)
    g = gradient_vector(p, reduction=reduction, mesh=mesh)
    _, unravel = ravel_pytree(p.params)
    return Step(p, reduction, g, unravel, memory_budget, mesh)


def curvature_matrix(step: Step, kind: str, *, key=None, num_samples: int = 1) -> jax.Array:
    """The dense ``(d, d)`` curvature ``kind`` on the step's prepared problem.

    ``kind``: ``"fisher"``, ``"fisher_mc"`` (``key`` and ``num_samples`` are checked here),
    ``"empirical_fisher"``, ``"hessian"`` or ``"ggn"``.
    """
    p, reduction = step.problem, step.reduction
    memory = dict(memory_budget=step.memory_budget, solve_copies=SOLVE_COPIES, mesh=step.mesh)
    if kind in ("fisher", "ggn"):
        return gauss_newton_matrix(p, kind, reduction=reduction, **memory)
    if kind == "fisher_mc":
        num_samples = check_num_samples(num_samples)
        key = check_key(key)
        return gauss_newton_matrix(p, "fisher_mc", reduction=reduction, key=key,
                                   num_samples=num_samples, **memory)
    if kind == "empirical_fisher":
        return gradient_outer_matrix(p, reduction=reduction, **memory)
    return hessian_matrix(p, reduction=reduction, **memory)
