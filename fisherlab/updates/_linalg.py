"""Checked damped solves and truncated conjugate gradient, shared by the updates.

Solvers for ``(M + lambda I) x = b``:

* :func:`dense_solve` -- ``M`` a dense ``(d, d)`` matrix. When the values are concrete
  it is checked first: square, shape matching ``b``, symmetric (relative asymmetry
  ``<= 1e-8``), positive semi-definite where required (the smallest eigenvalue is named in
  the error), and ``M + lambda I`` nonsingular (relative to its largest eigenvalue
  magnitude, threshold ``d * 1e-13``). The solve is a Cholesky factorisation of
  ``M + lambda I`` (PSD case) or an LU solve (``psd=False``, e.g. an indefinite Hessian).
* :func:`materialise` -- the dense matrix of a matrix-vector product (``d`` products), used
  by ``precondition`` to run the checks above on a matrix-free ``M`` when ``damping = 0``.
* :func:`conjugate_gradient` -- ``M`` given as a matrix-vector product; linear CG
  (Hestenes & Stiefel, 1952) in a ``lax.while_loop``, stopping when the relative residual
  ``||b - (M + lambda I) x|| / ||b|| <= tol``, after ``maxiter`` iterations, or on a
  direction of non-positive curvature ``p^T (M + lambda I) p <= 0`` (then the last iterate
  is kept -- the rule of Martens, 2010, §4.1 for indefinite curvature).

Under ``jax.jit`` the concrete checks are skipped (a Cholesky factorisation of a non-PD
matrix then yields NaN); everything else is traceable.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab._core.validation import is_tracer

__all__ = ["CGInfo", "MATERIALISE_MAX_DIM", "check_matrix", "conjugate_gradient", "dense_solve",
           "materialise"]

_SYM_RTOL = 1e-8
_PSD_RTOL = 1e-10
_SINGULAR_RTOL = 1e-13
#: largest ``d`` for which a matrix-free ``M`` is materialised to check it (8 d^2 bytes: 128 MiB)
MATERIALISE_MAX_DIM = 4096


class CGInfo(NamedTuple):
    """Diagnostics of a conjugate-gradient solve.

    Attributes:
      iterations: number of CG steps taken (matrix-vector products after the first).
      residual_norm: final relative residual ``||b - (M + lambda I) x|| / ||b||``
        (0 when ``b = 0``).
      converged: whether ``residual_norm <= tol``.
      negative_curvature: whether CG stopped at a direction with ``p^T (M + lambda I) p <= 0``.
    """

    iterations: jax.Array
    residual_norm: jax.Array
    converged: jax.Array
    negative_curvature: jax.Array


def check_matrix(M, d: int, *, psd: bool, damping, name: str):
    """Shape/symmetry/PSD/nonsingularity checks of a concrete curvature matrix."""
    shape = tuple(np.shape(M))
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"{name} must be a square (d, d) matrix, got shape {shape}")
    if shape[0] != d:
        raise ValueError(
            f"{name} has shape {shape} but the gradient has {d} entries: expected a "
            f"({d}, {d}) curvature matrix in ravel_pytree(params) order")
    if is_tracer(M) or is_tracer(damping):
        return
    A = np.asarray(M, np.float64)
    if not np.all(np.isfinite(A)):
        bad = np.argwhere(~np.isfinite(A))[0]
        raise ValueError(f"{name} must be finite, got {A[tuple(bad)]} at index "
                         f"{tuple(int(i) for i in bad)}")
    norm = max(float(np.linalg.norm(A)), np.finfo(np.float64).tiny)
    asym = float(np.linalg.norm(A - A.T)) / norm
    if asym > _SYM_RTOL:
        raise ValueError(f"{name} must be symmetric, got relative asymmetry "
                         f"||M - M^T|| / ||M|| = {asym:.3g} > {_SYM_RTOL:g}")
    evals = np.linalg.eigvalsh((A + A.T) / 2)
    scale = max(float(np.max(np.abs(evals))), np.finfo(np.float64).tiny)
    if psd and evals[0] < -_PSD_RTOL * scale:
        raise ValueError(
            f"{name} must be positive semi-definite, but its smallest eigenvalue "
            f"{evals[0]:.6g} < 0 (largest magnitude {scale:.6g}); use a PSD curvature "
            "(Fisher, GGN) or newton() for an indefinite Hessian")
    shifted = evals + float(damping)
    smallest = float(np.min(shifted)) if psd else float(np.min(np.abs(shifted)))
    big = max(float(np.max(np.abs(shifted))), np.finfo(np.float64).tiny)
    if smallest <= d * _SINGULAR_RTOL * big:
        raise ValueError(
            f"{name} + damping * I is singular: its smallest eigenvalue "
            f"{'' if psd else 'magnitude '}is {smallest:.6g} (largest {big:.6g}) with "
            f"damping = {float(damping)!r}; pass damping > 0 (Tikhonov damping) or a "
            "nonsingular curvature")


def materialise(matvec, d: int):
    """The dense ``(d, d)`` float64 matrix of ``v -> M v``: column ``j`` is ``M e_j``.

    ``d`` products, evaluated in batches of at most 64 (``lax.map``) to bound the memory of
    the product's intermediates.
    """
    eye = jnp.eye(d, dtype=jnp.float64)
    cols = jax.lax.map(lambda e: jnp.asarray(matvec(e), jnp.float64), eye,
                       batch_size=min(d, 64))
    return cols.T


def dense_solve(M, b, damping, *, psd: bool, name: str = "curvature"):
    """``(M + damping I)^{-1} b`` for a dense ``M`` (checked when concrete).

    ``M`` enters through its symmetric part ``(M + M^T) / 2``: an asymmetry the check lets
    through is rounding, and ``M`` and ``M^T`` give the same step.
    """
    d = b.shape[0]
    check_matrix(M, d, psd=psd, damping=damping, name=name)
    M = jnp.asarray(M, jnp.float64)
    A = (M + M.T) / 2 + damping * jnp.eye(d, dtype=jnp.float64)
    if psd:
        cf = jax.scipy.linalg.cho_factor(A, lower=True)
        return jax.scipy.linalg.cho_solve(cf, b)
    return jnp.linalg.solve(A, b)


def conjugate_gradient(matvec, b, damping, *, maxiter: int, tol: float, x0=None):
    """Truncated CG for ``(M + damping I) x = b``; returns ``(x, CGInfo)``."""
    b = jnp.asarray(b, jnp.float64)

    def A(v):
        return jnp.asarray(matvec(v), jnp.float64) + damping * v

    x = jnp.zeros_like(b) if x0 is None else jnp.asarray(x0, jnp.float64)
    r = b - A(x) if x0 is not None else b
    bnorm = jnp.linalg.norm(b)
    thresh = tol * bnorm
    rs = r @ r

    def cond(state):
        x, r, p, rs, k, neg = state
        return (k < maxiter) & (jnp.sqrt(rs) > thresh) & jnp.logical_not(neg)

    def body(state):
        x, r, p, rs, k, _ = state
        Ap = A(p)
        pAp = p @ Ap
        neg = pAp <= 0
        alpha = rs / jnp.where(neg, 1.0, pAp)
        x_new = x + alpha * p
        r_new = r - alpha * Ap
        rs_new = r_new @ r_new
        p_new = r_new + (rs_new / rs) * p
        keep = lambda old, new: jnp.where(neg, old, new)  # noqa: E731
        return (keep(x, x_new), keep(r, r_new), keep(p, p_new), keep(rs, rs_new),
                k + jnp.where(neg, 0, 1), neg)

    state = (x, r, r, rs, jnp.asarray(0), jnp.asarray(False))
    x, r, _, rs, k, neg = jax.lax.while_loop(cond, body, state)
    # report the true residual of the returned iterate
    res = jnp.linalg.norm(b - A(x))
    rel = jnp.where(bnorm > 0, res / jnp.where(bnorm > 0, bnorm, 1.0), 0.0)
    return x, CGInfo(iterations=k, residual_norm=rel, converged=rel <= tol,
                     negative_curvature=neg)
