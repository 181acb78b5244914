r"""Adaptive (Levenberg--Marquardt) damping and the quadratic model it compares with."""

from __future__ import annotations

import math
import numbers

import jax.numpy as jnp
import numpy as np

from fisherlab._core.precision import reference
from fisherlab._core.validation import check_int, check_scalar
from fisherlab.updates._problem import check_damping, flat_vector

__all__ = ["adaptive_damping", "predicted_change"]


@reference
def predicted_change(grads, matrix_or_matvec, delta, *, damping=0.0):
    r"""Change of the quadratic model of the loss along a step.

    .. math:: M(\delta) - M(0) = g^\top\delta + \tfrac12\,\delta^\top (C + \lambda I)\,\delta

    The denominator of the reduction ratio ``rho`` of :func:`adaptive_damping`.

    Args:
      grads: the gradient ``g`` (pytree or flat ``(d,)``).
      matrix_or_matvec: ``(d, d)`` curvature ``C``, or a callable ``v -> C v``.
      delta: the step (same structure as ``grads``).
      damping: ``lambda >= 0``.

    Returns:
      A float64 scalar, computed in float64 even when the caller runs with x64 off.

    References:
      J. Martens & R. Grosse, "Optimizing neural networks with Kronecker-factored approximate
      curvature", ICML 2015, §6.5 (there with the exact Fisher as ``C``).

    >>> import jax.numpy as jnp, fisherlab as fl
    >>> fl.updates.predicted_change(jnp.array([1.0, 0.0]), jnp.eye(2), jnp.array([-1.0, 0.0]))
    Array(-0.5, dtype=float64)
    """
    damping = check_damping(damping)
    g, _ = flat_vector(grads)
    v, _ = flat_vector(delta, "delta")
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


def adaptive_damping(damping, actual, predicted, *, decay: float = 19 / 20, interval: int = 5,
                     min_damping: float = 0.0, max_damping: float = math.inf,
                     return_ratio: bool = False):
    r"""Levenberg--Marquardt adjustment of the damping from the reduction ratio.

    .. math::
        \rho = \frac{L(\theta + \delta) - L(\theta)}{M(\delta) - M(0)},\qquad
        \lambda \leftarrow \begin{cases}
            \omega\,\lambda & \rho > 3/4 \\
            \lambda / \omega & \rho < 1/4 \\
            \lambda & \text{otherwise}
        \end{cases},\qquad \omega = (19/20)^{T_1},

    where ``M`` is the quadratic model (:func:`predicted_change`) and the rule is applied every
    ``T_1 = interval`` iterations (default 5, so ``omega = 0.95^5 ~ 0.774``). The result is
    clipped to ``[min_damping, max_damping]``. The constants are those of Martens & Grosse
    (2015), as in their TensorFlow implementation (``damping_adaptation_decay = 0.95``,
    ``damping_adaptation_interval = 5``); Martens (2010, §4.1) uses the same rule.

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
      J. Martens & R. Grosse, "Optimizing neural networks with Kronecker-factored approximate
      curvature", ICML 2015, §6.5; J. Martens, "Deep learning via Hessian-free optimization",
      ICML 2010, §4.1; J. J. Moré, "The Levenberg-Marquardt algorithm: implementation and
      theory", 1978.

    >>> import fisherlab as fl
    >>> fl.updates.adaptive_damping(1.0, actual=-1.0, predicted=-1.0, interval=1)
    0.95
    """
    lam = check_scalar(damping, "damping", positive=True)
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
    lo = check_scalar(min_damping, "min_damping", positive=False)
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
