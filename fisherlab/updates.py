r"""Reference second-order update steps (``fl.updates``).

Every update is the step ``delta`` of one iteration on a problem
``(f, params, x, y, likelihood)``, returned as a pytree with the structure of ``params``
(float64), so that ``theta_new = theta + delta`` (CONVENTIONS.md § Damping and updates).
Another optimizer's step can be checked against it directly.

With ``g = grad L`` the gradient of the mean loss ``L = (1/N) sum_n -log p(y_n | f(theta, x_n))``
(``reduction="sum"`` drops the ``1/N`` in ``L`` *and* in the curvature), learning rate
``alpha = lr > 0`` and Tikhonov damping ``lambda = damping >= 0``:

.. math::

    \delta = -\alpha\, (M + \lambda I)^{-1} g,\qquad
    M \in \{F \text{ (natural gradient)},\ E \text{ (empirical Fisher)},\
            H \text{ (Newton)},\ G \text{ (Gauss--Newton)},\ K \text{ (K-FAC)}\},

``M + lambda I`` is solved exactly (Cholesky, with the checks of :func:`precondition`),
except :func:`hessian_free` (truncated conjugate gradient on the matrix-free product,
Martens 2010), :func:`kfac_update` (``fl.kfac.solve``: exact Kronecker eigenbasis or
pi-damping) and :func:`diagonal_update` (an EMA diagonal preconditioner, seed 004).
:func:`adaptive_damping` is the Levenberg--Marquardt rule of Martens & Grosse (2015, §6.5).

Errors: non-positive ``lr``, negative ``damping``, a curvature whose shape does not
match the gradient, a non-PSD matrix where PSD is required (the message names the smallest
eigenvalue) and a singular ``M + lambda I`` (e.g. zero damping on a rank-deficient Fisher)
raise ``ValueError``/``TypeError`` naming the argument. A matrix-free ``M`` with zero damping is
materialised to be checked (:func:`precondition`); :func:`hessian_free` (a truncated solver)
does not check and returns the pseudo-inverse solution on a singular ``M``. The checks need
concrete values; under ``jax.jit`` they are skipped.

Precision: every function here computes in float64 whatever the caller's ``jax_enable_x64``
(``fisherlab._precision.reference``; ``adaptive_damping`` works on Python floats). Inputs
converted *before* the call (e.g. ``jnp`` arrays created, or ``jax.jit`` arguments traced,
with x64 off) are already float32 and cannot be recovered: pass NumPy float64 arrays.

Parameter order: flat vectors are in ``jax.flatten_util.ravel_pytree(params)`` order.

References:
  seed 003_377ac27c40267f84.txt §4-6 and App. B (natural gradient, Newton, invariance);
  seed 004_bb4f7e8c8840a6b5.txt (R. Grosse, CSC2541 Lecture 4: damping, preconditioning,
  Hessian-free, the pullback sampling trick and EMA diagonal preconditioners);
  seed 002_7cc303c8b37b8e83.txt (the empirical-Fisher update); seed 000_0f033ede0c3e061f.txt
  (the Riemannian gradient ``G^{-1} nabla f``);
  J. Martens, "Deep learning via Hessian-free optimization", ICML 2010;
  J. Martens & R. Grosse, "Optimizing neural networks with Kronecker-factored approximate
  curvature", ICML 2015.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from fisherlab._precision import float64, reference
from fisherlab._updates_linalg import (
    MATERIALISE_MAX_DIM,
    CGInfo,
    check_matrix,
    conjugate_gradient,
    dense_solve,
    is_tracer,
    materialise,
)
from fisherlab._validation import check_choice, check_int

__all__ = [
    "CGInfo",
    "DiagonalState",
    "adaptive_damping",
    "diagonal_update",
    "empirical_fisher_update",
    "gauss_newton",
    "hessian_free",
    "kfac_update",
    "natural_gradient",
    "newton",
    "precondition",
    "predicted_change",
]


# ----------------------------------------------------------------------------- validation


def _check_scalar(value, name: str, *, positive: bool):
    """``lr`` (> 0) or ``damping`` (>= 0): a finite real scalar; tracers pass unchecked."""
    if is_tracer(value):
        return value
    if isinstance(value, bool) or not (isinstance(value, numbers.Real)
                                       or (hasattr(value, "shape") and np.ndim(value) == 0)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (v <= 0 if positive else v < 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, "
                         f"got {value!r}")
    return v


def _lr(lr):
    return _check_scalar(lr, "lr", positive=True)


def _damping(damping):
    return _check_scalar(damping, "damping", positive=False)


def _as_f64_tree(tree):
    return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


def _flat(grads, name: str = "grads"):
    """``(flat float64 vector, unravel)`` of a pytree or a flat array."""
    leaves = jax.tree_util.tree_leaves(grads)
    if not leaves:
        raise ValueError(f"{name} must contain at least one array, got {grads!r}")
    for leaf in leaves:
        if not is_tracer(leaf):
            arr = np.asarray(leaf)
            if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
                raise TypeError(f"{name} must hold real arrays, got dtype {arr.dtype}")
            if arr.size and not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} must be finite, got a non-finite entry")
    flat, unravel = ravel_pytree(_as_f64_tree(grads))
    return flat, unravel


def _problem_gradient(f, params, x, y, likelihood, reduction):
    from fisherlab import curvature

    params64 = _as_f64_tree(params)
    g = curvature.gradient(f, params64, x, y, likelihood, reduction=reduction)
    _, unravel = ravel_pytree(params64)
    return g, unravel


# ----------------------------------------------------------------------------- low level


@reference
def precondition(matrix_or_matvec, grads, *, damping, psd: bool = True,
                 maxiter: int | None = None, tol: float = 1e-10):
    r"""``(M + damping I)^{-1} g``: the damped preconditioned gradient.

    .. math:: p = (M + \lambda I)^{-1} g

    ``M`` is either a dense ``(d, d)`` matrix -- solved by Cholesky (``psd=True``) or LU
    (``psd=False``) after the checks below -- or a callable ``v -> M v`` on flat ``(d,)``
    vectors (e.g. ``fl.fisher_vp(...)``), solved by conjugate gradient to relative residual
    ``tol`` (an error if not reached within ``maxiter``, default ``10 d``: this function
    promises the exact solve; use :func:`hessian_free` for a truncated one).

    Singularity with a callable ``M``: for ``damping > 0`` and a PSD ``M`` the system
    ``M + lambda I`` is positive definite (eigenvalues ``>= lambda``) and is solved
    matrix-free. For ``damping = 0`` it may be singular, and conjugate gradient cannot tell:
    the gradient of the mean NLL lies in the range of the Fisher (the score ``J^T (T(y) -
    E[T])`` is in the range of ``J^T Cov(T) J``), so CG's Krylov space (and its Ritz values)
    never sees the null space and CG converges to the pseudo-inverse solution ``M^+ g`` --
    one of infinitely many solutions (review reproducer: a rank-deficient categorical
    Fisher). So with ``damping = 0`` (a
    concrete zero) the callable is *materialised* (``d`` products, a ``(d, d)`` matrix, only
    for ``d <= 4096``; larger ``d`` is an error) and checked exactly like a dense matrix
    (symmetric, PSD, ``smallest eigenvalue > d * 1e-13 * largest``) before the CG solve.
    :func:`hessian_free` does not check (it is a truncated solver; on a singular consistent
    system it returns ``M^+ g``).

    Args:
      matrix_or_matvec: ``(d, d)`` array, or a callable ``v -> M v``.
      grads: the gradient: a pytree (e.g. like ``params``) or a flat ``(d,)`` vector; its
        flattening (``ravel_pytree``) must match the order of ``M``.
      damping: ``lambda >= 0``.
      psd: whether ``M`` must be positive semi-definite (Fisher, GGN, empirical Fisher,
        K-FAC); ``False`` for a possibly indefinite Hessian (dense ``M`` only).
      maxiter, tol: conjugate-gradient controls for a callable ``M``.

    Returns:
      ``p`` with the structure of ``grads``, float64.

    Raises:
      ValueError: negative damping; ``M`` not square, or not ``(d, d)`` for a ``d``-entry
        gradient; not symmetric; not PSD when ``psd`` (the message gives the smallest
        eigenvalue, e.g. ``smallest eigenvalue -0.3 < 0``); ``M + lambda I`` singular
        (e.g. ``damping = 0`` with a rank-deficient ``M``, dense or callable; the message
        names ``damping`` and the smallest eigenvalue); ``damping = 0`` with a callable
        ``M`` of dimension ``d > 4096`` (too large to check: pass ``damping > 0`` or a
        dense matrix); CG not converged.

    References:
      seed 004_bb4f7e8c8840a6b5.txt ("Damping": ``(H + eta I)^{-1}`` has eigenvalues
      ``(nu_j + eta)^{-1}``); CONVENTIONS.md § Damping and updates.

    >>> import jax.numpy as jnp, fisherlab as fl
    >>> fl.updates.precondition(jnp.array([[2.0, 0.0], [0.0, 4.0]]), jnp.array([2.0, 2.0]),
    ...                         damping=0.0)
    Array([1. , 0.5], dtype=float64)
    """
    damping = _damping(damping)
    g, unravel = _flat(grads)
    d = g.shape[0]
    if callable(matrix_or_matvec):
        if not psd:
            raise ValueError(
                "psd=False needs a dense matrix: conjugate gradient (used for a callable "
                "matrix_or_matvec) requires M + damping * I positive definite")
        maxiter = 10 * d if maxiter is None else check_int(maxiter, "maxiter", minimum=1)
        tol = _check_scalar(tol, "tol", positive=True)
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


@reference
def predicted_change(grads, matrix_or_matvec, delta, *, damping=0.0):
    r"""Change of the quadratic model, ``M(delta) - M(0)``.

    .. math:: M(\delta) - M(0) = g^\top\delta + \tfrac12\,\delta^\top (C + \lambda I)\,\delta

    The denominator of the reduction ratio ``rho`` of :func:`adaptive_damping`
    (Martens & Grosse, 2015, §6.5, there with the exact Fisher as ``C``).

    Args:
      grads: gradient (pytree or flat), ``delta``: the step (same structure),
      matrix_or_matvec: ``(d, d)`` curvature or ``v -> C v``; damping: ``lambda >= 0``.

    Returns:
      A float64 scalar, computed in float64 even when the caller runs with x64 off.
    """
    damping = _damping(damping)
    g, _ = _flat(grads)
    v, _ = _flat(delta, "delta")
    if g.shape != v.shape:
        raise ValueError(f"delta has {v.shape[0]} entries but grads has {g.shape[0]}")
    if callable(matrix_or_matvec):
        Cv = jnp.asarray(matrix_or_matvec(v), jnp.float64)
        if Cv.shape != v.shape:
            raise ValueError(f"matrix_or_matvec must map a {v.shape} vector to a {v.shape} "
                             f"vector, got output shape {tuple(Cv.shape)}")
    else:
        M = jnp.asarray(matrix_or_matvec, jnp.float64)
        if M.shape != (g.shape[0],) * 2:
            raise ValueError(f"matrix_or_matvec must have shape {(g.shape[0],) * 2}, got "
                             f"{tuple(M.shape)}")
        Cv = M @ v
    return g @ v + 0.5 * v @ (Cv + damping * v)


# ----------------------------------------------------------------------------- dense updates


def _dense_update(kind, f, params, x, y, likelihood, lr, damping, reduction, psd, **kw):
    from fisherlab import curvature

    lr, damping = _lr(lr), _damping(damping)
    g, unravel = _problem_gradient(f, params, x, y, likelihood, reduction)
    params64 = _as_f64_tree(params)
    if kind == "fisher":
        if kw.get("fisher_type", "exact") == "mc":
            M = curvature.fisher_mc(f, params64, x, likelihood, kw.get("key"),
                                    kw.get("num_samples", 1), reduction=reduction)
        else:
            M = curvature.fisher(f, params64, x, likelihood, reduction=reduction)
    elif kind == "empirical_fisher":
        M = curvature.empirical_fisher(f, params64, x, y, likelihood, reduction=reduction)
    elif kind == "hessian":
        M = curvature.hessian(f, params64, x, y, likelihood, reduction=reduction)
    else:
        M = curvature.ggn(f, params64, x, y, likelihood, reduction=reduction)
    names = {"fisher": "Fisher", "empirical_fisher": "empirical Fisher", "hessian": "Hessian",
             "ggn": "GGN"}
    p = dense_solve(M, g, damping, psd=psd, name=f"the {names[kind]}")
    return unravel(-lr * p)


@reference
def natural_gradient(f: Callable, params, x, y, likelihood, *, lr, damping,
                     reduction: str = "mean", fisher_type: str = "exact", key=None,
                     num_samples: int = 1):
    r"""Natural-gradient step ``delta = -lr (F + damping I)^{-1} grad L``.

    .. math:: \delta = -\alpha\,(F + \lambda I)^{-1}\nabla L,\qquad
              F = \tfrac1N\sum_n J_n^\top F_{\rm out}(f_n) J_n

    ``F`` is the exact Fisher (``fl.fisher``, closed-form expectation over the model's
    predictive distribution; ``fisher_type="mc"``: ``fl.fisher_mc`` with ``key`` and
    ``num_samples``). It is steepest descent in the Fisher metric (proofs
    ``steepest_descent.fisher_kkt``, ``riemannian_gradient.coordinates``) and, undamped,
    invariant to affine reparameterisations ``theta = A theta' + b``
    (``invariance.natural_gradient``).

    Args:
      f: single-example model ``f(params, x_n) -> (C,)``; params: pytree;
      x, y: batch (leading axis ``N``); likelihood: a fisherlab likelihood.
      lr: ``alpha > 0``. damping: ``lambda >= 0`` (``0`` requires a nonsingular ``F``).
      reduction: ``"mean"`` (default) or ``"sum"``, applied to both ``L`` and ``F``.
      fisher_type: ``"exact"`` (default) or ``"mc"``.
      key, num_samples: for ``fisher_type="mc"``.

    Returns:
      ``delta``, a pytree like ``params`` (float64): ``theta_new = theta + delta``.

    References:
      seed 003_377ac27c40267f84.txt §4 eq. (17); seed 000_0f033ede0c3e061f.txt;
      S. Amari, "Natural gradient works efficiently in learning", 1998.
    """
    check_choice(fisher_type, "fisher_type", ("exact", "mc"))
    return _dense_update("fisher", f, params, x, y, likelihood, lr, damping, reduction, True,
                         fisher_type=fisher_type, key=key, num_samples=num_samples)


@reference
def empirical_fisher_update(f: Callable, params, x, y, likelihood, *, lr, damping,
                            reduction: str = "mean"):
    r"""Empirical-Fisher step ``delta = -lr (E + damping I)^{-1} grad L``.

    .. math:: \delta = -\alpha\,(E + \lambda I)^{-1}\nabla L,\qquad
              E = \tfrac1N\sum_n g_n g_n^\top \ \text{(uncentered, data labels)}

    To second order it solves ``min L(theta + delta)`` s.t. ``E[(Delta l)^2] = c``
    (seed 002; proof ``empirical_fisher_update.constrained_problem``). ``E`` is *not* the
    Fisher (Kunstner et al., 2019).

    Args/Returns: as :func:`natural_gradient` (no ``fisher_type``).

    References:
      seed 002_7cc303c8b37b8e83.txt; F. Kunstner, L. Balles, P. Hennig, NeurIPS 2019.
    """
    return _dense_update("empirical_fisher", f, params, x, y, likelihood, lr, damping,
                         reduction, True)


@reference
def newton(f: Callable, params, x, y, likelihood, *, lr, damping, reduction: str = "mean"):
    r"""(Damped) Newton step ``delta = -lr (H + damping I)^{-1} grad L``.

    .. math:: \delta = -\alpha\,(H + \lambda I)^{-1}\nabla L,\qquad H = \nabla^2 L

    ``H + lambda I`` may be indefinite (solved by LU; only singularity is an error): the
    Newton direction is then not a descent direction (seed 003 §5). With ``lr = 1`` and
    ``damping = 0`` it minimises the quadratic model in one step (seed 004; proof
    ``damping_preconditioning.newton_quadratic``).

    Args/Returns: as :func:`natural_gradient` (no ``fisher_type``).

    References:
      seed 004_bb4f7e8c8840a6b5.txt ("Minimizing quadratic approximations");
      seed 003_377ac27c40267f84.txt §5 eq. (18).
    """
    return _dense_update("hessian", f, params, x, y, likelihood, lr, damping, reduction, False)


@reference
def gauss_newton(f: Callable, params, x, y, likelihood, *, lr, damping,
                 reduction: str = "mean"):
    r"""Generalized Gauss-Newton step ``delta = -lr (G + damping I)^{-1} grad L``.

    .. math:: \delta = -\alpha\,(G + \lambda I)^{-1}\nabla L,\qquad
              G = \tfrac1N\sum_n J_n^\top \Lambda_n J_n

    For natural-parameter likelihoods ``G = F`` and this equals :func:`natural_gradient`.

    Args/Returns: as :func:`natural_gradient` (no ``fisher_type``).

    References:
      N. Schraudolph, Neural Computation 14(7), 2002; seed 003 App. A eq. (48).
    """
    return _dense_update("ggn", f, params, x, y, likelihood, lr, damping, reduction, True)


# ----------------------------------------------------------------------------- K-FAC


@reference
def kfac_update(model, params, x, y, likelihood, *, lr, damping, method: str = "exact",
                fisher_type: str = "exact", approx: str = "expand", bias: str = "augmented",
                key=None, num_samples: int = 1, factors=None):
    r"""K-FAC step ``delta = -lr (K + damping I)^{-1} grad L`` (layer by layer).

    .. math::
        \delta_k = -\alpha\,(G_k \otimes A_k + \lambda I)^{-1}\,
                    \mathrm{vec}(\nabla_{[W_k\,b_k]} L)

    with the factors of ``fl.kfac.factors`` (CONVENTIONS.md § K-FAC) and the solve of
    ``fl.kfac.solve``: ``method="exact"`` applies ``(G (x) A + lambda I)^{-1}`` exactly
    through the factors' eigendecompositions; ``method="factored"`` the pi-damped
    ``(G + sqrt(lambda)/pi I)^{-1} X (A + pi sqrt(lambda) I)^{-1}`` (Martens & Grosse, 2015,
    §6.3). Undamped K-FAC is invariant to invertible affine maps of each layer's input
    activations and pre-activations (seed 003 App. B; proof ``invariance.kfac_layer``).

    The gradient and the factors use the mean reduction (CONVENTIONS.md § K-FAC).

    Args:
      model: a :class:`fisherlab.nn.Sequential`; params: ``[(W, b), ...]``; x, y, likelihood.
      lr: ``> 0``; damping: ``>= 0``; method: ``"exact"`` | ``"factored"``.
      fisher_type, approx, bias, key, num_samples: passed to ``fl.kfac.factors``.
      factors: precomputed factors (e.g. an EMA, ``fl.kfac.ema``) used instead of computing
        them on this batch.

    Returns:
      ``delta``, a list ``[(dW, db), ...]`` like ``params`` (float64).

    References:
      Martens & Grosse, ICML 2015; seed 003_377ac27c40267f84.txt §8-9 and App. B.
    """
    from fisherlab import kfac

    lr, damping = _lr(lr), _damping(damping)
    check_choice(method, "method", ("exact", "factored"))
    params64 = _as_f64_tree(params)
    g, unravel = _problem_gradient(model, params64, x, y, likelihood, "mean")
    if factors is None:
        factors = kfac.factors(model, params64, x, y, likelihood, fisher_type=fisher_type,
                               approx=approx, bias=bias, key=key, num_samples=num_samples)
    pre = kfac.solve(factors, unravel(g), damping, method=method)
    return jax.tree_util.tree_map(lambda p: -lr * p, pre)


# ----------------------------------------------------------------------------- Hessian-free


_CURVATURES = ("ggn", "fisher", "hessian")


@reference
def hessian_free(f: Callable, params, x, y, likelihood, *, lr, damping,
                 curvature: str = "ggn", maxiter: int = 50, tol: float = 1e-10,
                 reduction: str = "mean", x0=None, return_info: bool = False):
    r"""Hessian-free step: truncated conjugate gradient on the matrix-free curvature product.

    Approximately solves ``(M + lambda I) p = grad L`` by at most ``maxiter`` iterations of
    linear CG started at ``x0`` (default 0) and returns ``delta = -lr p``:

    .. math:: \delta = -\alpha\, p,\qquad p \approx (M + \lambda I)^{-1}\nabla L,\qquad
              M \in \{G \text{ (default)}, F, H\}

    CG minimises the quadratic model ``q(p) = -g^T p + (1/2) p^T (M + lambda I) p`` over
    growing Krylov subspaces (Martens, 2010); it stops when the relative residual
    ``||g - (M + lambda I) p|| / ||g|| <= tol``, after ``maxiter`` steps, or at a direction of
    non-positive curvature (possible with ``curvature="hessian"``; the iterate before it is
    kept). With ``maxiter >= d`` and exact arithmetic it equals the direct damped solve.

    No singularity check (unlike :func:`precondition`, which materialises a matrix-free
    ``M`` when ``damping = 0``): with ``damping = 0`` and a rank-deficient Fisher (e.g. a
    categorical one, or any ``d > N C``; the GGN of a natural-parameter likelihood is the
    same matrix) the gradient lies in the range of ``M``, CG never leaves it and converges
    (``info.converged``) to the minimum-norm solution ``M^+ grad L`` -- one of infinitely
    many solutions of ``M p = grad L``. Pass ``damping > 0`` for a unique step.

    Args:
      f, params, x, y, likelihood: the problem. lr: ``> 0``; damping: ``>= 0``.
      curvature: ``"ggn"`` (default, PSD -- Martens 2010), ``"fisher"`` or ``"hessian"``.
      maxiter: ``>= 1`` CG iterations; tol: relative residual tolerance ``> 0``.
      reduction: ``"mean"`` | ``"sum"``. x0: warm start (pytree like ``params`` or flat).
      return_info: also return a :class:`CGInfo` (iterations, relative residual,
        converged, negative_curvature).

    Returns:
      ``delta`` (pytree like ``params``), or ``(delta, info)`` with ``return_info=True``.

    References:
      J. Martens, "Deep learning via Hessian-free optimization", ICML 2010;
      seed 004_bb4f7e8c8840a6b5.txt ("Hessian-free optimization"); Hestenes & Stiefel, 1952.
    """
    from fisherlab import curvature as curv

    lr, damping = _lr(lr), _damping(damping)
    check_choice(curvature, "curvature", _CURVATURES)
    maxiter = check_int(maxiter, "maxiter", minimum=1)
    tol = _check_scalar(tol, "tol", positive=True)
    params64 = _as_f64_tree(params)
    g, unravel = _problem_gradient(f, params64, x, y, likelihood, reduction)
    if curvature == "ggn":
        mv = curv.ggn_vp(f, params64, x, y, likelihood, reduction=reduction)
    elif curvature == "fisher":
        mv = curv.fisher_vp(f, params64, x, likelihood, reduction=reduction)
    else:
        mv = curv.hvp(f, params64, x, y, likelihood, reduction=reduction)
    if x0 is not None:
        x0, _ = _flat(x0, "x0")
        if x0.shape != g.shape:
            raise ValueError(f"x0 must have {g.shape[0]} entries like params, got {x0.shape[0]}")
    p, info = conjugate_gradient(mv, g, damping, maxiter=maxiter, tol=tol, x0=x0)
    delta = unravel(-lr * p)
    return (delta, info) if return_info else delta


# ----------------------------------------------------------------------------- diagonal


class DiagonalState(NamedTuple):
    """State of :func:`diagonal_update`.

    Attributes:
      second_moment: ``s_t``, the EMA of squared pseudo-gradients, flat ``(d,)`` float64
        in ``ravel_pytree(params)`` order (``s_0 = 0``).
      count: ``t``, the number of EMA updates so far (``0`` initially).
    """

    second_moment: Any
    count: Any

    @classmethod
    def init(cls, params) -> "DiagonalState":
        """The initial state ``s_0 = 0``, ``t = 0`` for ``params``."""
        with float64():  # the caller may run with x64 off: ravel in float64 too
            flat, _ = ravel_pytree(_as_f64_tree(params))
            return cls(jnp.zeros_like(flat), jnp.asarray(0, jnp.int64))


_ESTIMATORS = ("exact", "mc", "empirical")


@reference
def diagonal_update(f: Callable, params, x, y, likelihood, *, lr, damping, state=None,
                    decay: float = 0.95, estimator: str = "exact", bias_correction: bool = True,
                    key=None, num_samples: int = 1, reduction: str = "mean"):
    r"""Diagonal preconditioner from an EMA of squared pseudo-gradients (seed 004).

    With ``D_w`` pseudo-gradients whose covariance is the Fisher (the pullback sampling trick,
    seed 004: ``D_w = J^T D_z``, ``Cov(D_z) = F_out``), the per-step diagonal estimate is

    * ``estimator="exact"``: ``d_t = diag(F)`` -- the exact expectation of ``D_w**2``;
    * ``estimator="mc"``: ``d_t = diag(fl.fisher_mc(..., key, num_samples))`` -- squared
      gradients at labels sampled from the model (``S = num_samples`` per example);
    * ``estimator="empirical"``: ``d_t = diag(E) = (1/N) sum_n g_n**2`` (data labels).

    The state update and step are (all element-wise, ``s_0 = 0``, ``t`` counting updates):

    .. math::
        s_t = \beta\, s_{t-1} + (1 - \beta)\, d_t,\qquad
        \hat s_t = s_t / (1 - \beta^t)\ \text{(if bias\_correction, else } \hat s_t = s_t),\qquad
        \delta = -\alpha\, \nabla L \oslash (\hat s_t + \lambda)

    with ``beta = decay`` (seed 004's ``eta``, default 0.95: ``G_ii <- eta G_ii + (1 - eta)
    D_w_i^2``). The bias correction (as in Adam) makes the first step use ``d_1`` exactly.

    Args:
      f, params, x, y, likelihood: the problem. lr: ``> 0``; damping: ``>= 0``.
      state: a :class:`DiagonalState` (``None``: :meth:`DiagonalState.init`).
      decay: ``beta`` in ``[0, 1)``. estimator: ``"exact"`` | ``"mc"`` | ``"empirical"``.
      bias_correction: divide by ``1 - beta^t``. key, num_samples: for ``"mc"``.
      reduction: ``"mean"`` | ``"sum"``.

    Returns:
      ``(delta, new_state)``: ``delta`` a pytree like ``params``.

    Raises:
      ValueError: bad ``lr``/``damping``/``decay``; a zero entry of ``s_hat + damping``
        (zero damping and a parameter the curvature does not see).

    References:
      seed 004_bb4f7e8c8840a6b5.txt ("Pullback sampling trick", diagonal EMA);
      D. Kingma & J. Ba, "Adam", ICLR 2015 (bias correction).
    """
    from fisherlab import curvature

    lr, damping = _lr(lr), _damping(damping)
    check_choice(estimator, "estimator", _ESTIMATORS)
    if not is_tracer(decay):
        if isinstance(decay, bool) or not isinstance(decay, numbers.Real):
            raise TypeError(f"decay must be a real number in [0, 1), got {decay!r}")
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
    params64 = _as_f64_tree(params)
    g, unravel = _problem_gradient(f, params64, x, y, likelihood, reduction)
    if state is None:
        state = DiagonalState.init(params64)
    if not isinstance(state, DiagonalState):
        raise TypeError(f"state must be a DiagonalState (or None), got {type(state).__name__}")
    if tuple(np.shape(state.second_moment)) != g.shape:
        raise ValueError(f"state.second_moment must have shape {g.shape} like the flattened "
                         f"params, got {tuple(np.shape(state.second_moment))}")
    if estimator == "exact":
        M = curvature.fisher(f, params64, x, likelihood, reduction=reduction)
    elif estimator == "mc":
        M = curvature.fisher_mc(f, params64, x, likelihood, key, num_samples,
                                reduction=reduction)
    else:
        M = curvature.empirical_fisher(f, params64, x, y, likelihood, reduction=reduction)
    d_t = jnp.diag(M)
    s = decay * jnp.asarray(state.second_moment, jnp.float64) + (1.0 - decay) * d_t
    t = jnp.asarray(state.count) + 1
    correction = 1.0 - jnp.power(jnp.asarray(decay, jnp.float64), jnp.asarray(t, jnp.float64))
    s_hat = s / correction if bias_correction else s
    denom = s_hat + damping
    if not is_tracer(denom):
        dn = np.asarray(denom)
        scale = max(float(np.max(np.abs(dn))), np.finfo(np.float64).tiny)
        if float(np.min(dn)) <= 1e-13 * scale:
            i = int(np.argmin(dn))
            raise ValueError(
                f"the diagonal preconditioner s_hat + damping is singular: entry {i} is "
                f"{float(dn[i]):.3g} with damping = {damping!r}; pass damping > 0")
    delta = unravel(-lr * g / denom)
    return delta, DiagonalState(s, t)


# ----------------------------------------------------------------------------- damping


def adaptive_damping(damping, actual, predicted, *, decay: float = 19 / 20, interval: int = 5,
                     min_damping: float = 0.0, max_damping: float = math.inf,
                     return_ratio: bool = False):
    r"""Levenberg--Marquardt adjustment of the damping from the reduction ratio.

    Martens & Grosse (2015, §6.5; the same rule as Martens, 2010, §4.1, with other constants):

    .. math::
        \rho = \frac{L(\theta + \delta) - L(\theta)}{M(\delta) - M(0)},\qquad
        \lambda \leftarrow \begin{cases}
            \omega\,\lambda & \rho > 3/4 \\
            \lambda / \omega & \rho < 1/4 \\
            \lambda & \text{otherwise}
        \end{cases},\qquad \omega = (19/20)^{T_1},

    where ``M`` is the quadratic model (:func:`predicted_change`) and the rule is applied
    every ``T_1 = interval`` iterations (default 5, so ``omega = 0.95^5 ~ 0.774``). The result
    is clipped to ``[min_damping, max_damping]``. (The constants are those of the K-FAC paper
    as implemented in tensorflow/kfac: ``damping_adaptation_decay = 0.95``,
    ``damping_adaptation_interval = 5``.)

    Args:
      damping: current ``lambda > 0`` (a zero damping cannot be scaled).
      actual: ``L(theta + delta) - L(theta)`` (finite).
      predicted: ``M(delta) - M(0)``, must be ``< 0`` (a model decrease) -- for a step that
        minimises a damped PSD model it always is, unless ``grad L = 0``.
      decay, interval: ``omega = decay ** interval``, ``decay`` in ``(0, 1)``, ``interval >= 1``.
      min_damping, max_damping: clipping bounds.
      return_ratio: also return ``rho``.

    Returns:
      The new damping (a float), or ``(new_damping, rho)``.

    References:
      J. Martens & R. Grosse, ICML 2015, §6.5; J. Martens, ICML 2010, §4.1; J. Moré, "The
      Levenberg-Marquardt algorithm: implementation and theory", 1978.
    """
    lam = _check_scalar(damping, "damping", positive=True)
    for name, v in (("actual", actual), ("predicted", predicted)):
        if isinstance(v, bool) or not (isinstance(v, numbers.Real)
                                       or (hasattr(v, "shape") and np.ndim(v) == 0)):
            raise TypeError(f"{name} must be a real number, got {v!r}")
        if not math.isfinite(float(v)):
            raise ValueError(f"{name} must be finite, got {v!r}")
    if float(predicted) >= 0:
        raise ValueError(
            f"predicted must be < 0 (the quadratic model's change for a descent step), got "
            f"{float(predicted)!r}; the reduction ratio is undefined")
    if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0 < decay < 1:
        raise ValueError(f"decay must be a number in (0, 1), got {decay!r}")
    interval = check_int(interval, "interval", minimum=1)
    lo = _check_scalar(min_damping, "min_damping", positive=False)
    if not (isinstance(max_damping, numbers.Real) and max_damping >= lo):
        raise ValueError(f"max_damping must be a number >= min_damping, got {max_damping!r}")
    omega = float(decay) ** interval
    rho = float(actual) / float(predicted)
    if rho > 0.75:
        lam = lam * omega
    elif rho < 0.25:
        lam = lam / omega
    lam = min(max(lam, lo), float(max_damping))
    return (lam, rho) if return_ratio else lam
