"""Gaussian likelihood with fixed variance, parameterised by its mean.

For outputs ``f`` (``C`` means), a fixed variance ``sigma^2`` and targets ``y`` (``C``):

.. math::

    -\\log p(y \\mid f) = \\frac{\\lVert y - f \\rVert^2}{2\\sigma^2}
                         + \\frac{C}{2} \\log(2 \\pi \\sigma^2) .

The constant ``(C/2) log(2 pi sigma^2)`` is **kept**: ``nll`` is the true ``-log p``, not
the squared error alone. It does not depend on ``f``, so no curvature depends on it
(docs/CONVENTIONS.md, "Model, loss, reduction").

The mean is the natural parameter up to the fixed scale ``1/sigma^2``; the log-partition
in ``f`` is ``A(f) = ||f||^2 / (2 sigma^2)`` and

* output gradient ``(f - y) / sigma^2``,
* output Hessian = output Fisher ``= I / sigma^2`` (independent of ``f`` and ``y``),
* factor ``M = I / sigma`` with ``M M^T = F_out``.

References:
  M. Johnson, "Natural gradients and K-FAC" (note, 2017) (the squared-error case); R. Grosse, CSC 2541 "Neural Net
  Training Dynamics", Lecture 4: Second-Order Optimization (University of Toronto, 2022)
  (Gauss-Newton for squared error); J. Martens, "New insights and perspectives on the natural
  gradient method", JMLR 21, 2020, §9.2.
"""

from __future__ import annotations

import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab._core.validation import is_tracer
from fisherlab.likelihoods._base import (
    Likelihood,
    _as_float_targets,
    _as_outputs,
    symbolic_definitions,
)

__all__ = ["Gaussian"]


class Gaussian(Likelihood):
    """Independent Gaussians ``N(f_c, variance)`` with a fixed ``variance > 0``.

    Args:
      variance: the fixed variance ``sigma^2`` (a finite real number > 0; default 1.0).

    Shapes: ``outputs`` ``(N, C)`` means, ``targets`` ``(N, C)`` float;
    ``sample`` returns ``(num_samples, N, C)`` float64.

    >>> import jax.numpy as jnp, fisherlab as fl
    >>> fl.Gaussian(variance=0.5).output_fisher(jnp.zeros((1, 2)))[0]
    Array([[2., 0.],
           [0., 2.]], dtype=float64)
    """

    natural = True

    def __init__(self, variance=1.0):
        if isinstance(variance, (bool, np.bool_)):
            raise TypeError(f"variance must be a real number > 0, got {variance!r}")
        if not isinstance(variance, numbers.Real):
            if hasattr(variance, "shape") and np.ndim(variance) == 0 and not is_tracer(variance):
                variance = np.asarray(variance).item()
            else:
                raise TypeError(
                    f"variance must be a real number > 0, got {type(variance).__name__} "
                    f"{getattr(variance, 'shape', '')}".rstrip())
        v = float(variance)
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"variance must be a finite number > 0, got {variance!r}")
        self.variance = v

    def _params(self):
        return (self.variance,)

    def __repr__(self) -> str:
        return f"Gaussian(variance={self.variance!r})"

    def symbolic(self, num_outputs: int):
        """``fisherlab.likelihoods.symbolic.gaussian(num_outputs, variance)``.

        The variance enters as the rational number with the shortest decimal form
        (``0.1 -> 1/10``, ``1.0 -> 1``), ``sp.nsimplify(variance, rational=True)``.
        """
        import sympy  # only the symbolic face needs SymPy

        return symbolic_definitions().gaussian(
            num_outputs, sympy.nsimplify(self.variance, rational=True))

    # ------------------------------------------------------------------ kernels
    def _nll(self, out, target):
        """``||target - out||^2 / (2 var) + (C/2) log(2 pi var)`` (the true ``-log p``)."""
        r = target - out
        C = out.shape[-1]
        const = 0.5 * C * math.log(2 * math.pi * self.variance)
        return 0.5 * jnp.sum(r * r) / self.variance + const

    def _output_grad(self, out, target):
        """``(out - target) / var``."""
        return (out - target) / self.variance

    def _output_hessian(self, out, target):
        """``I / var``."""
        return self._output_fisher(out)

    def _output_fisher(self, out):
        """``I / var``, ``(C, C)``."""
        return jnp.eye(out.shape[-1], dtype=out.dtype) / self.variance

    def _output_fisher_sqrt(self, out):
        """``I / sqrt(var)``, ``(C, C)``."""
        return jnp.eye(out.shape[-1], dtype=out.dtype) / math.sqrt(self.variance)

    def _sample(self, key, out, num_samples):
        """``out + sqrt(var) u``, ``u ~ N(0, I)``, shape ``(num_samples, C)``."""
        u = jax.random.normal(key, (num_samples,) + out.shape, dtype=out.dtype)
        return out + math.sqrt(self.variance) * u

    # ------------------------------------------------------------------ validation
    def check_outputs(self, outputs, name: str = "outputs"):
        """Finite means of shape ``(N, C)``."""
        return _as_outputs(outputs, name, family="Gaussian")

    def check_targets(self, targets, outputs, name: str = "targets"):
        """Finite float targets of shape ``(N, C)``."""
        return _as_float_targets(targets, outputs, name, D=outputs.shape[1], family="Gaussian")
