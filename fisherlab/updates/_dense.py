r"""Dense second-order steps: natural gradient, empirical Fisher, Newton, Gauss--Newton.

Each step validates its problem once (:func:`~fisherlab.updates._problem.prepare_step`),
computes the gradient and the dense curvature on it, and solves the damped system exactly
(:func:`~fisherlab.updates._linalg.dense_solve`).
"""

from __future__ import annotations

from collections.abc import Callable

from fisherlab._core.precision import reference
from fisherlab._core.validation import check_choice
from fisherlab.curvature._memory import check_memory_budget
from fisherlab.curvature._problem import check_num_samples
from fisherlab.updates._linalg import dense_solve
from fisherlab.updates._problem import check_damping, check_lr, curvature_matrix, prepare_step

__all__ = ["empirical_fisher_update", "gauss_newton", "natural_gradient", "newton"]

_NAMES = {"fisher": "Fisher", "fisher_mc": "Fisher", "empirical_fisher": "empirical Fisher",
          "hessian": "Hessian", "ggn": "GGN"}


def _dense_step(kind, f, params, x, y, likelihood, lr, damping, reduction, psd, tokens,
                memory_budget, name, *, key=None, num_samples=1):
    lr, damping = check_lr(lr), check_damping(damping)
    memory_budget = check_memory_budget(memory_budget)
    if kind == "fisher_mc":
        num_samples = check_num_samples(num_samples)
    step = prepare_step(f, params, x, y, likelihood, reduction, tokens, dense=kind,
                        num_samples=num_samples, memory_budget=memory_budget, name=name)
    M = curvature_matrix(step, kind, key=key, num_samples=num_samples)
    p = dense_solve(M, step.gradient, damping, psd=psd, name=f"the {_NAMES[kind]}")
    return step.unravel(-lr * p)


@reference
def natural_gradient(f: Callable, params, x, y, likelihood, *, lr, damping,
                     reduction: str = "mean", fisher_type: str = "exact", key=None,
                     num_samples: int = 1, tokens: str = "sum", memory_budget=None):
    r"""Natural-gradient step.

    .. math:: \delta = -\alpha\,(F + \lambda I)^{-1}\nabla L,\qquad
              F = w\sum_n J_n^\top F_{\rm out}(f_n) J_n

    ``F`` is the exact Fisher (``fl.fisher``; ``fisher_type="mc"``: ``fl.fisher_mc`` with
    ``key`` and ``num_samples``). The step is steepest descent in the Fisher metric (proofs
    ``steepest_descent.fisher_kkt``, ``riemannian_gradient.coordinates``) and, undamped,
    invariant to affine reparameterisations ``theta = A theta' + b``
    (``invariance.natural_gradient``). Step convention: docs/CONVENTIONS.md, "Damping and
    updates".

    Args:
      f: single-example model ``f(params, x_n) -> (C,)``.
      params: pytree of floating-point arrays.
      x, y: the batch (leading axis ``N``).
      likelihood: a fisherlab likelihood.
      lr: ``alpha > 0``.
      damping: ``lambda >= 0`` (``0`` requires a nonsingular ``F``).
      reduction: ``"mean"`` (default) or ``"sum"``, applied to both ``L`` and ``F``.
      tokens: for per-token outputs ``(R, C)``: ``"sum"`` (default) or ``"flatten"``, as in
        :func:`fisherlab.ggn` (docs/CONVENTIONS.md, "Per-token outputs").
      fisher_type: ``"exact"`` (default) or ``"mc"``.
      key, num_samples: for ``fisher_type="mc"``.
      memory_budget: bytes the dense matrix and its solve may use (as in ``fl.ggn``; default:
        ``FISHERLAB_MEMORY_BUDGET``, else 90% of the free memory). Over it, a
        ``CurvatureMemoryError`` is raised before any work, naming the matrix-free
        alternatives (:func:`hessian_free`, :func:`kfac_update`).

    Returns:
      ``delta``, a pytree like ``params`` (float64): ``theta_new = theta + delta``.

    References:
      S. Amari, "Natural gradient works efficiently in learning", Neural Computation 10(2),
      1998; M. Johnson, "Natural gradients and K-FAC" (note, 2017), §4 eq. (17); J. Martens,
      "New insights and perspectives on the natural gradient method", JMLR 21, 2020.

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jnp.ones((4, 3)); y = jnp.array([0, 1, 1, 0])
    >>> step = fl.updates.natural_gradient(model, params, x, y, fl.Categorical(), lr=1.0,
    ...                                    damping=1e-3)
    >>> [w.shape for w in step[0]]
    [(2, 3), (2,)]

    Derivations: ``damping_limits.interpolation``, ``damping_preconditioning.descent_direction``,
    ``invariance.damped_orthogonal``, ``invariance.natural_gradient``,
    ``invariance.smooth_reparameterization``, ``natural_gradient_newton.residual``,
    ``proximal.damped_natural_gradient``, ``riemannian_gradient.coordinates``,
    ``steepest_descent.fisher_kkt``.
    """
    check_choice(fisher_type, "fisher_type", ("exact", "mc"))
    kind = "fisher_mc" if fisher_type == "mc" else "fisher"
    return _dense_step(kind, f, params, x, y, likelihood, lr, damping, reduction, True, tokens,
                       memory_budget, "fl.updates.natural_gradient", key=key,
                       num_samples=num_samples)


@reference
def empirical_fisher_update(f: Callable, params, x, y, likelihood, *, lr, damping,
                            reduction: str = "mean", tokens: str = "sum",
                            memory_budget=None):
    r"""Empirical-Fisher step.

    .. math:: \delta = -\alpha\,(E + \lambda I)^{-1}\nabla L,\qquad
              E = w\sum_n g_n g_n^\top \ \text{(uncentered, data labels)}

    To second order it solves ``min L(theta + delta)`` subject to ``E[(Delta l)^2] = c``
    (proof ``empirical_fisher_update.constrained_problem``). ``E`` is *not* the Fisher.
    Undamped it is invariant to affine reparameterisation, damped only to orthogonal maps
    (proof ``empirical_fisher_update.invariance``).

    Args:
      f, params, x, y, likelihood, lr, damping, reduction, tokens, memory_budget: as in
        :func:`natural_gradient`.

    Returns:
      ``delta``, a pytree like ``params`` (float64).

    References:
      T. George, "What is the empirical Fisher?" (blog post, 2018); F. Kunstner, L. Balles &
      P. Hennig, "Limitations of the empirical Fisher approximation for natural gradient
      descent", NeurIPS 2019.

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jnp.ones((4, 3)); y = jnp.array([0, 1, 1, 0])
    >>> step = fl.updates.empirical_fisher_update(model, params, x, y, fl.Categorical(),
    ...                                           lr=1.0, damping=1e-3)
    >>> [w.shape for w in step[0]]
    [(2, 3), (2,)]

    Derivations: ``empirical_fisher_update.constrained_problem``,
    ``empirical_fisher_update.constraint_expansion``, ``empirical_fisher_update.damped_step``,
    ``empirical_fisher_update.invariance``.
    """
    return _dense_step("empirical_fisher", f, params, x, y, likelihood, lr, damping, reduction,
                       True, tokens, memory_budget, "fl.updates.empirical_fisher_update")


@reference
def newton(f: Callable, params, x, y, likelihood, *, lr, damping, reduction: str = "mean",
           tokens: str = "sum", memory_budget=None):
    r"""Damped Newton step.

    .. math:: \delta = -\alpha\,(H + \lambda I)^{-1}\nabla L,\qquad H = \nabla^2 L

    ``H + lambda I`` may be indefinite (solved by LU; only singularity is an error): the Newton
    direction is then not a descent direction. With ``lr = 1`` and ``damping = 0`` it minimises
    the quadratic model in one step (proof ``damping_preconditioning.newton_quadratic``).

    Args:
      f, params, x, y, likelihood, lr, damping, reduction, tokens, memory_budget: as in
        :func:`natural_gradient`.

    Returns:
      ``delta``, a pytree like ``params`` (float64).

    References:
      R. Grosse, CSC 2541 "Neural Net Training Dynamics", Lecture 4: Second-Order Optimization
      (University of Toronto, 2022); M. Johnson, "Natural gradients and K-FAC" (note, 2017), §5
      eq. (18).

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jnp.ones((4, 3)); y = jnp.array([0, 1, 1, 0])
    >>> step = fl.updates.newton(model, params, x, y, fl.Categorical(), lr=1.0, damping=1e-3)
    >>> [w.shape for w in step[0]]
    [(2, 3), (2,)]

    Derivations: ``damping_preconditioning.newton_quadratic``, ``invariance.newton``,
    ``natural_gradient_newton.residual``.
    """
    return _dense_step("hessian", f, params, x, y, likelihood, lr, damping, reduction, False,
                       tokens, memory_budget, "fl.updates.newton")


@reference
def gauss_newton(f: Callable, params, x, y, likelihood, *, lr, damping,
                 reduction: str = "mean", tokens: str = "sum", memory_budget=None):
    r"""Generalized Gauss--Newton step.

    .. math:: \delta = -\alpha\,(G + \lambda I)^{-1}\nabla L,\qquad
              G = w\sum_n J_n^\top \Lambda_n J_n

    For a likelihood in natural parameters ``G = F`` and this equals :func:`natural_gradient`.

    Args:
      f, params, x, y, likelihood, lr, damping, reduction, tokens, memory_budget: as in
        :func:`natural_gradient`.

    Returns:
      ``delta``, a pytree like ``params`` (float64).

    References:
      N. N. Schraudolph, "Fast curvature matrix-vector products for second-order gradient
      descent", Neural Computation 14(7), 2002; M. Johnson, "Natural gradients and K-FAC"
      (note, 2017), App. A eq. (48).

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jnp.ones((4, 3)); y = jnp.array([0, 1, 1, 0])
    >>> step = fl.updates.gauss_newton(model, params, x, y, fl.Categorical(), lr=1.0,
    ...                                damping=1e-3)
    >>> [w.shape for w in step[0]]
    [(2, 3), (2,)]

    Derivations: ``damping_preconditioning.descent_direction``, ``invariance.newton``,
    ``proximal.damped_gauss_newton``.
    """
    return _dense_step("ggn", f, params, x, y, likelihood, lr, damping, reduction, True,
                       tokens, memory_budget, "fl.updates.gauss_newton")
