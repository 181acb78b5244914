r"""Hessian-free step: truncated conjugate gradient on a matrix-free curvature product."""

from __future__ import annotations

from collections.abc import Callable

from fisherlab._core.precision import reference
from fisherlab._core.validation import check_choice, check_int, check_scalar
from fisherlab.curvature._products import product_on
from fisherlab.updates._linalg import conjugate_gradient
from fisherlab.updates._problem import check_damping, check_lr, flat_vector, prepare_step

__all__ = ["hessian_free"]

_CURVATURES = ("ggn", "fisher", "hessian")
_PRODUCTS = {"ggn": "ggn_vp", "fisher": "fisher_vp", "hessian": "hvp"}


@reference
def hessian_free(f: Callable, params, x, y, likelihood, *, lr, damping,
                 curvature: str = "ggn", maxiter: int = 50, tol: float = 1e-10,
                 reduction: str = "mean", x0=None, return_info: bool = False,
                 tokens: str = "sum"):
    r"""Hessian-free step: truncated conjugate gradient on the matrix-free curvature product.

    Approximately solves ``(M + lambda I) p = grad L`` by at most ``maxiter`` iterations of
    linear conjugate gradient started at ``x0`` (default 0) and returns ``delta = -lr p``:

    .. math:: \delta = -\alpha\, p,\qquad p \approx (M + \lambda I)^{-1}\nabla L,\qquad
              M \in \{G \text{ (default)}, F, H\}

    CG minimises the quadratic model ``q(p) = -g^T p + (1/2) p^T (M + lambda I) p`` over
    growing Krylov subspaces; it stops when the relative residual
    ``||g - (M + lambda I) p|| / ||g|| <= tol``, after ``maxiter`` steps, or at a direction of
    non-positive curvature (possible with ``curvature="hessian"``; the iterate before it is
    kept). With ``maxiter >= d`` and exact arithmetic it equals the direct damped solve.

    There is no singularity check (unlike :func:`precondition`): with ``damping = 0`` and a
    rank-deficient ``M`` the gradient lies in the range of ``M``, CG never leaves it and
    converges to the minimum-norm solution ``M^+ grad L``. Pass ``damping > 0`` for a unique
    step.

    Args:
      f, params, x, y, likelihood: the problem, as in :func:`natural_gradient`.
      lr: ``> 0``.
      damping: ``>= 0``.
      curvature: ``"ggn"`` (default, positive semi-definite), ``"fisher"`` or ``"hessian"``.
      maxiter: ``>= 1`` CG iterations.
      tol: relative residual tolerance ``> 0``.
      reduction: ``"mean"`` or ``"sum"``.
      tokens: ``"sum"`` (default) or ``"flatten"`` for per-token outputs, as in
        :func:`fisherlab.ggn`.
      x0: warm start (a pytree like ``params`` or flat ``(d,)``).
      return_info: also return a :class:`CGInfo`.

    Returns:
      ``delta`` (a pytree like ``params``), or ``(delta, info)`` with ``return_info=True``.

    References:
      J. Martens, "Deep learning via Hessian-free optimization", ICML 2010; M. R. Hestenes &
      E. Stiefel, "Methods of conjugate gradients for solving linear systems", 1952;
      R. Grosse, CSC 2541 Lecture 4: Second-Order Optimization (University of Toronto, 2022).

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jnp.ones((4, 3)); y = jnp.array([0, 1, 1, 0])
    >>> step, info = fl.updates.hessian_free(model, params, x, y, fl.Categorical(), lr=1.0,
    ...                                      damping=1e-3, return_info=True)
    >>> bool(info.converged)
    True

    Derivations: ``conjugate_gradient.krylov_optimality``.
    """
    lr, damping = check_lr(lr), check_damping(damping)
    check_choice(curvature, "curvature", _CURVATURES)
    maxiter = check_int(maxiter, "maxiter", minimum=1)
    tol = check_scalar(tol, "tol", positive=True)
    step = prepare_step(f, params, x, y, likelihood, reduction, tokens)
    mv = product_on(step.problem, _PRODUCTS[curvature], reduction=step.reduction,
                    mesh=step.mesh)
    g = step.gradient
    if x0 is not None:
        x0, _ = flat_vector(x0, "x0")
        if x0.shape != g.shape:
            raise ValueError(f"x0 must have {g.shape[0]} entries like params, got {x0.shape[0]}")
    p, info = conjugate_gradient(mv, g, damping, maxiter=maxiter, tol=tol, x0=x0)
    delta = step.unravel(-lr * p)
    return (delta, info) if return_info else delta
