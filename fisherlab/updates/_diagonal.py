r"""Diagonal preconditioner from an exponential moving average of squared pseudo-gradients."""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from fisherlab._core.precision import float64, reference
from fisherlab._core.validation import check_choice, is_tracer
from fisherlab.updates._problem import (
    as_float64_tree,
    check_damping,
    check_lr,
    curvature_matrix,
    prepare_step,
)

__all__ = ["DiagonalState", "diagonal_update"]

_ESTIMATORS = {"exact": "fisher", "mc": "fisher_mc", "empirical": "empirical_fisher"}


class DiagonalState(NamedTuple):
    """State of :func:`diagonal_update`.

    Attributes:
      second_moment: ``s_t``, the average of squared pseudo-gradients, flat ``(d,)`` float64
        (``s_0 = 0``).
      count: ``t``, the number of updates so far (``0`` initially).
    """

    second_moment: Any
    count: Any

    @classmethod
    def init(cls, params) -> "DiagonalState":
        """The initial state ``s_0 = 0``, ``t = 0`` for ``params``."""
        with float64():  # the caller may run with x64 off: ravel in float64 too
            flat, _ = ravel_pytree(as_float64_tree(params))
            return cls(jnp.zeros_like(flat), jnp.asarray(0, jnp.int64))


@reference
def diagonal_update(f: Callable, params, x, y, likelihood, *, lr, damping, state=None,
                    decay: float = 0.95, estimator: str = "exact", bias_correction: bool = True,
                    key=None, num_samples: int = 1, reduction: str = "mean",
                    tokens: str = "sum"):
    r"""Diagonal preconditioner from an average of squared pseudo-gradients.

    Pseudo-gradients ``D_w = J^T D_z`` with ``Cov(D_z) = F_out`` have covariance ``F`` (the
    pullback sampling trick), so the per-step diagonal estimate is

    * ``estimator="exact"``: ``d_t = diag(F)``, the exact expectation of ``D_w**2``;
    * ``estimator="mc"``: ``d_t = diag(fl.fisher_mc(..., key, num_samples))``, squared
      gradients at labels sampled from the model;
    * ``estimator="empirical"``: ``d_t = diag(E) = w sum_n g_n**2`` (data labels).

    The state update and the step are (element-wise, ``s_0 = 0``, ``t`` counting updates):

    .. math::
        s_t = \beta\, s_{t-1} + (1 - \beta)\, d_t,\qquad
        \hat s_t = s_t / (1 - \beta^t)\ \text{(if bias\_correction, else } \hat s_t = s_t),\qquad
        \delta = -\alpha\, \nabla L \oslash (\hat s_t + \lambda)

    with ``beta = decay`` (default 0.95). The bias correction (as in Adam) makes the first step
    use ``d_1`` exactly.

    Args:
      f, params, x, y, likelihood: the problem, as in :func:`natural_gradient`.
      lr: ``> 0``.
      damping: ``>= 0``.
      state: a :class:`DiagonalState` (``None``: :meth:`DiagonalState.init`).
      decay: ``beta`` in ``[0, 1)``.
      estimator: ``"exact"``, ``"mc"`` or ``"empirical"``.
      bias_correction: divide by ``1 - beta^t``.
      key, num_samples: for ``"mc"``.
      reduction: ``"mean"`` or ``"sum"``.
      tokens: ``"sum"`` (default) or ``"flatten"`` for per-token outputs, as in
        :func:`fisherlab.ggn`.

    Returns:
      ``(delta, new_state)``: ``delta`` a pytree like ``params``.

    Raises:
      ValueError: bad ``lr``, ``damping`` or ``decay``; a zero entry of ``s_hat + damping``
        (zero damping and a parameter the curvature does not see).

    References:
      R. Grosse, CSC 2541 "Neural Net Training Dynamics", Lecture 4: Second-Order Optimization
      (University of Toronto, 2022), "Pullback sampling trick"; D. P. Kingma & J. Ba, "Adam: a
      method for stochastic optimization", ICLR 2015 (bias correction).

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jnp.ones((4, 3)); y = jnp.array([0, 1, 1, 0])
    >>> step, state = fl.updates.diagonal_update(model, params, x, y, fl.Categorical(), lr=0.1,
    ...                                          damping=1e-3)
    >>> int(state.count)
    1
    """
    lr, damping = check_lr(lr), check_damping(damping)
    check_choice(estimator, "estimator", tuple(_ESTIMATORS))
    if not is_tracer(decay):
        if isinstance(decay, bool) or not isinstance(decay, numbers.Real):
            raise TypeError(f"decay must be a real number in [0, 1), got {decay!r}")
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
    step = prepare_step(f, params, x, y, likelihood, reduction, tokens)
    g = step.gradient
    if state is None:
        state = DiagonalState.init(step.problem.params)
    if not isinstance(state, DiagonalState):
        raise TypeError(f"state must be a DiagonalState (or None), got {type(state).__name__}")
    if tuple(np.shape(state.second_moment)) != g.shape:
        raise ValueError(f"state.second_moment must have shape {g.shape} like the flattened "
                         f"params, got {tuple(np.shape(state.second_moment))}")
    M = curvature_matrix(step, _ESTIMATORS[estimator], key=key, num_samples=num_samples)
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
    delta = step.unravel(-lr * g / denom)
    return delta, DiagonalState(s, t)
