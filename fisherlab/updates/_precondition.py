r"""The damped preconditioned gradient ``(M + lambda I)^{-1} g``, checked."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from fisherlab._core.precision import reference
from fisherlab._core.validation import check_int, check_scalar, is_tracer
from fisherlab.updates._linalg import (
    MATERIALISE_MAX_DIM,
    check_matrix,
    conjugate_gradient,
    dense_solve,
    materialise,
)
from fisherlab.updates._problem import check_damping, flat_vector

__all__ = ["precondition"]


@reference
def precondition(matrix_or_matvec, grads, *, damping, psd: bool = True,
                 maxiter: int | None = None, tol: float = 1e-10):
    r"""The damped preconditioned gradient, solved exactly and checked.

    .. math:: p = (M + \lambda I)^{-1} g

    ``M`` is either a dense ``(d, d)`` matrix -- solved by Cholesky (``psd=True``) or LU
    (``psd=False``) after the checks below -- or a callable ``v -> M v`` on flat ``(d,)``
    vectors (e.g. ``fl.fisher_vp(...)``), solved by conjugate gradient to relative residual
    ``tol`` (an error if not reached within ``maxiter``, default ``10 d``: this function
    promises the exact solve; :func:`hessian_free` is the truncated one).

    With a callable ``M`` and ``damping > 0`` the system is positive definite (eigenvalues
    ``>= lambda``) and is solved matrix-free. With ``damping = 0`` it may be singular, which
    conjugate gradient cannot detect: the gradient of the mean negative log-likelihood lies in
    the range of the Fisher, so CG never sees the null space and converges to the
    pseudo-inverse solution ``M^+ g``, one of infinitely many. So with a concrete
    ``damping = 0`` the callable is materialised (``d`` products, only for ``d <= 4096``;
    larger ``d`` is an error) and checked like a dense matrix before the solve.

    Args:
      matrix_or_matvec: ``(d, d)`` array, or a callable ``v -> M v``.
      grads: the gradient: a pytree (e.g. like ``params``) or a flat ``(d,)`` vector; its
        ``ravel_pytree`` order must match the order of ``M``.
      damping: ``lambda >= 0``.
      psd: whether ``M`` must be positive semi-definite (Fisher, GGN, empirical Fisher,
        K-FAC); ``False`` for a possibly indefinite Hessian (dense ``M`` only).
      maxiter, tol: conjugate-gradient controls for a callable ``M``.

    Returns:
      ``p`` with the structure of ``grads``, float64.

    Raises:
      ValueError: negative damping; ``M`` not square, or not ``(d, d)`` for a ``d``-entry
        gradient; not symmetric; not PSD when ``psd`` (the message gives the smallest
        eigenvalue); ``M + lambda I`` singular (the message names ``damping`` and the smallest
        eigenvalue); ``damping = 0`` with a callable ``M`` of dimension ``d > 4096``; conjugate
        gradient not converged.

    References:
      R. Grosse, CSC 2541 "Neural Net Training Dynamics", Lecture 4: Second-Order Optimization
      (University of Toronto, 2022), "Damping"; docs/CONVENTIONS.md, "Damping and updates".

    >>> import jax.numpy as jnp, fisherlab as fl
    >>> fl.updates.precondition(jnp.array([[2.0, 0.0], [0.0, 4.0]]), jnp.array([2.0, 2.0]),
    ...                         damping=0.0)
    Array([1. , 0.5], dtype=float64)

    Derivations: ``damping_limits.interpolation``, ``damping_preconditioning.damped_spectrum``,
    ``damping_preconditioning.newton_quadratic``, ``damping_preconditioning.reparameterization``,
    ``riemannian_gradient.coordinates``.
    """
    damping = check_damping(damping)
    g, unravel = flat_vector(grads)
    d = g.shape[0]
    if callable(matrix_or_matvec):
        if not psd:
            raise ValueError(
                "psd=False needs a dense matrix: conjugate gradient (used for a callable "
                "matrix_or_matvec) requires M + damping * I positive definite")
        maxiter = 10 * d if maxiter is None else check_int(maxiter, "maxiter", minimum=1)
        tol = check_scalar(tol, "tol", positive=True)
        probe = matrix_or_matvec(jnp.zeros((d,), jnp.float64))
        if tuple(np.shape(probe)) != (d,):
            raise ValueError(f"matrix_or_matvec must map a ({d},) vector to a ({d},) vector "
                             f"(the gradient has {d} entries), got output shape "
                             f"{tuple(np.shape(probe))}")
        if not is_tracer(damping) and damping == 0.0 and not is_tracer(g):
            _check_matrix_free_nonsingular(matrix_or_matvec, d)
        x, info = conjugate_gradient(matrix_or_matvec, g, damping, maxiter=maxiter, tol=tol)
        if not is_tracer(info.residual_norm):
            if bool(info.negative_curvature) and psd:
                raise ValueError(
                    "matrix_or_matvec + damping * I is not positive definite: conjugate "
                    "gradient met a direction p with p^T (M + damping I) p <= 0")
            if not bool(info.converged):
                raise ValueError(
                    f"conjugate gradient did not reach relative residual tol={tol:g} in "
                    f"maxiter={maxiter} iterations (residual {float(info.residual_norm):.3g});"
                    " increase maxiter or damping")
        return unravel(x)
    return unravel(dense_solve(matrix_or_matvec, g, damping, psd=psd,
                               name="matrix_or_matvec"))


def _check_matrix_free_nonsingular(matvec, d: int):
    """``damping = 0`` with a callable ``M``: materialise it and run the dense checks."""
    if d > MATERIALISE_MAX_DIM:
        raise ValueError(
            f"damping = 0 with a matrix-free matrix_or_matvec: M may be singular (e.g. a "
            f"rank-deficient Fisher), which conjugate gradient cannot detect, and checking "
            f"it needs the dense ({d}, {d}) matrix, too large (d > {MATERIALISE_MAX_DIM}); "
            "pass damping > 0 (M + damping * I is then positive definite), a dense matrix, "
            "or use hessian_free for an unchecked truncated solve")
    M = materialise(matvec, d)
    if not is_tracer(M):  # a matvec closing over traced values: unchecked, as under jit
        check_matrix(M, d, psd=True, damping=0.0, name="matrix_or_matvec")
