r"""Reference second-order update steps (``fl.updates``).

Every update is the step ``delta`` of one iteration on a problem ``(f, params, x, y,
likelihood)``, returned as a float64 pytree with the structure of ``params``, so that
``theta_new = theta + delta`` and another optimizer's step can be checked against it directly.
With ``g = grad L``, learning rate ``alpha = lr > 0`` and Tikhonov damping
``lambda = damping >= 0``:

.. math::

    \delta = -\alpha\, (M + \lambda I)^{-1} g,\qquad
    M \in \{F \text{ (natural gradient)},\ E \text{ (empirical Fisher)},\
            H \text{ (Newton)},\ G \text{ (Gauss--Newton)},\ K \text{ (K-FAC)}\}.

The dense steps solve ``M + lambda I`` exactly (Cholesky or LU, after checking symmetry,
definiteness and singularity; the error names the smallest eigenvalue);
:func:`hessian_free` runs truncated conjugate gradient on the matrix-free product;
:func:`kfac_update` uses ``fl.kfac.solve``; :func:`diagonal_update` an averaged diagonal
preconditioner; :func:`adaptive_damping` is the Levenberg--Marquardt rule. The checks need
concrete values and are skipped under ``jax.jit``. Every function computes in float64 whatever
the caller's ``jax_enable_x64``; inputs converted before the call (arrays created, or ``jax.jit``
arguments traced, with x64 off) are already float32: pass NumPy float64 arrays. Conventions:
docs/CONVENTIONS.md, "Damping and updates".

References:
  S. Amari, "Natural gradient works efficiently in learning", Neural Computation 10(2), 1998;
  M. Johnson, "Natural gradients and K-FAC" (note, 2017); R. Grosse, CSC 2541 "Neural Net
  Training Dynamics", Lecture 4: Second-Order Optimization (University of Toronto, 2022);
  J. Martens, "Deep learning via Hessian-free optimization", ICML 2010; J. Martens & R. Grosse,
  "Optimizing neural networks with Kronecker-factored approximate curvature", ICML 2015.
"""

from fisherlab.updates._damping import adaptive_damping, predicted_change
from fisherlab.updates._dense import empirical_fisher_update, gauss_newton, natural_gradient, newton
from fisherlab.updates._diagonal import DiagonalState, diagonal_update
from fisherlab.updates._hessian_free import hessian_free
from fisherlab.updates._kfac import kfac_update
from fisherlab.updates._linalg import CGInfo
from fisherlab.updates._precondition import precondition

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


def __dir__():
    return list(__all__)
