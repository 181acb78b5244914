"""Checks on concrete values: finite inputs, and factors that are symmetric and PSD.

Every check is skipped for traced values (inside a caller's ``jax.jit``), where nothing can be
raised. On concrete values a violation is a ``ValueError`` naming the argument, the layer and
the offending value.

* :func:`all_finite` -- one reduction over any number of arrays, fused into the compiled
  computation, so the common case (everything finite) costs one scalar transfer; the named
  checks below then only run to say *which* entry is bad.
* :func:`bounded_diagonal` -- a second moment ``S = sum_m x_m x_m^T`` is finite everywhere when
  its diagonal is at most a quarter of the largest float64: by Cauchy--Schwarz every entry and
  every partial sum that formed it is at most ``(1 + O(M eps)) sqrt(S_ii S_jj)``. A NaN or inf
  anywhere in the ``x_m`` makes a diagonal entry NaN or inf. So reading the diagonal proves the
  whole matrix finite; a diagonal above the bound only sends the result to the full check.
* :func:`check_params_finite` -- every ``W``/``b`` is finite (as :func:`fisherlab.ggn` checks).
* :func:`check_factor` -- a factor is symmetric (relative asymmetry
  ``||M - M^T||_F / ||M||_F <= 1e-8``, the threshold of the dense solves of
  :mod:`fisherlab.updates`) and positive semi-definite (smallest eigenvalue ``>= -1e-10``
  times the largest magnitude); for inputs of lower precision than float64 the tolerances grow
  to ``16 eps`` and ``4 d eps`` of that dtype, whose rounding alone breaks exact symmetry.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab._core.validation import check_finite

__all__ = ["DIAGONAL_BOUND", "PSD_RTOL", "SYM_RTOL", "all_finite", "bounded_diagonal",
           "check_factor", "check_params_finite", "first_bad", "is_concrete", "tolerances"]

SYM_RTOL = 1e-8
PSD_RTOL = 1e-10
#: a second moment whose unnormalised diagonal is at most this is finite everywhere
DIAGONAL_BOUND = float(np.finfo(np.float64).max) / 4


def is_concrete(*trees) -> bool:
    """Whether no leaf of ``trees`` is a tracer (values can be checked and errors raised)."""
    return not any(isinstance(t, jax.core.Tracer) for t in jax.tree_util.tree_leaves(trees))


def all_finite(tree) -> jax.Array:
    """Whether every float entry of every array in ``tree`` is finite, as a (traceable)
    boolean scalar: one reduction, read with one host sync by the caller."""
    flags = [jnp.all(jnp.isfinite(t)) for t in jax.tree_util.tree_leaves(tree)
             if jnp.issubdtype(jnp.result_type(t), jnp.inexact)]
    return jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)


def bounded_diagonal(*diagonals):
    """Whether every entry of the diagonals of unnormalised second moments ``sum_m x_m x_m^T``
    is at most ``DIAGONAL_BOUND`` (traceable boolean scalar); then every entry of those
    matrices, and of the matrices divided by a count ``>= 1``, is finite."""
    return jnp.all(jnp.concatenate(diagonals) <= DIAGONAL_BOUND)


def first_bad(a):
    """``(value, index)`` of the first non-finite entry of the NumPy array ``a``."""
    bad = np.argwhere(~np.isfinite(a))[0]
    return a[tuple(bad)], tuple(int(i) for i in bad)


def check_params_finite(params, name: str = "params") -> None:
    """Every ``params[k][i]`` is finite (concrete values only)."""
    for k, p in enumerate(params):
        for i, t in enumerate(p):
            check_finite(t, f"{name}[{k}][{i}]")


def tolerances(dtype, d: int):
    """``(symmetry rtol, PSD rtol)`` for a factor of size ``d`` given in ``dtype``."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating) and np.finfo(dtype).eps > np.finfo(np.float64).eps:
        eps = float(np.finfo(dtype).eps)
        return max(SYM_RTOL, 16 * eps), max(PSD_RTOL, 4 * d * eps)
    return SYM_RTOL, PSD_RTOL


def check_factor(M, name: str, *, dtype=np.float64, psd: bool = True) -> None:
    """``M`` (concrete) is symmetric and, with ``psd``, positive semi-definite."""
    if not is_concrete(M):
        return
    a = np.asarray(M, np.float64)
    sym_tol, psd_tol = tolerances(dtype, a.shape[0])
    norm = max(float(np.linalg.norm(a)), np.finfo(np.float64).tiny)
    asym = float(np.linalg.norm(a - a.T)) / norm
    if asym > sym_tol:
        raise ValueError(
            f"{name} must be symmetric (a K-FAC factor is a mean of outer products), got "
            f"relative asymmetry ||M - M^T||_F / ||M||_F = {asym:.3g} > {sym_tol:g}")
    if not psd:
        return
    w = np.linalg.eigvalsh((a + a.T) / 2)
    scale = max(float(np.max(np.abs(w))), np.finfo(np.float64).tiny)
    if w[0] < -psd_tol * scale:
        raise ValueError(
            f"{name} must be positive semi-definite (a K-FAC factor is a mean of outer "
            f"products), but its smallest eigenvalue is {w[0]:.6g} < 0 (largest magnitude "
            f"{scale:.6g}, tolerance {psd_tol:g} relative)")
