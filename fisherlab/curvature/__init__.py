r"""Exact curvature of any JAX model: Hessian, GGN, Fisher, empirical Fisher, and their products.

A *model* is a single-example function ``f(params, x_n) -> outputs`` of shape ``(C,)``, with
``params`` any pytree of floating-point arrays; ``x`` is a batch with leading axis ``N`` and
``y`` the batch of targets in the likelihood's format. With ``l_n = -log p(y_n | f(theta, x_n))``,
``J_n`` the ``C x d`` Jacobian of the outputs and ``g_n = grad l_n``:

.. math::

    L = w \sum_n l_n, \quad
    H = \nabla^2 L, \quad
    G = w \sum_n J_n^\top \Lambda_n J_n, \quad
    F = w \sum_n J_n^\top F_{\rm out}(f_n) J_n, \quad
    E = w \sum_n g_n g_n^\top,

with ``w = 1/N`` (``reduction="mean"``, the default) or ``1`` (``"sum"``). Matrices are
``(d, d)`` and vectors ``(d,)`` in ``ravel_pytree(params)`` order, float64 whatever the caller's
``jax_enable_x64`` flag (docs/CONVENTIONS.md states these conventions once).

Bad input raises ``ValueError``/``TypeError`` naming the argument, and a non-finite *result*
(finite inputs can still overflow float64, e.g. a Poisson log-rate of 710) raises a
``ValueError`` naming the quantity that overflowed. Every function works under ``jax.jit``, but
under ``jax.jit`` no value check can run (the values are traced): test a jitted result with
``jnp.isfinite`` yourself.

A dense request whose estimated peak memory is over the memory budget (the ``memory_budget``
argument, the ``FISHERLAB_MEMORY_BUDGET`` environment variable, or by default 90% of the free
memory of the device or host) raises :class:`CurvatureMemoryError` -- a ``MemoryError`` and a
``ValueError`` -- before anything is allocated, naming the matrix-free alternatives. A batch
sharded over a device mesh is reduced on each device and summed across devices once
(docs/multi_device.md).

Dense Gauss-Newton-type matrices have two exact methods: per-example Jacobians in chunks of
examples (any model, about ``2 N C d^2`` flops), and, for a ``fl.nn.Sequential`` of Dense layers
and elementwise activations, the exact Kronecker structure of dense-layer Jacobians (about
``2 N d^2`` flops, a factor ``C`` fewer). The matrix-free products cost one forward-mode and one
reverse-mode pass over the batch per call.

References:
  M. Johnson, "Natural gradients and K-FAC" (note, 2017); R. Grosse, CSC 2541 "Neural Net
  Training Dynamics", Lecture 4: Second-Order Optimization (University of Toronto, 2022);
  N. N. Schraudolph, "Fast curvature matrix-vector products for second-order gradient
  descent", Neural Computation 14(7), 2002; J. Martens, "New insights and perspectives on the
  natural gradient method", JMLR 21, 2020; F. Kunstner, L. Balles & P. Hennig, "Limitations of
  the empirical Fisher approximation for natural gradient descent", NeurIPS 2019.
"""

from fisherlab.curvature._memory import CurvatureMemoryError
from fisherlab.curvature._dense import (
    empirical_fisher,
    fisher,
    fisher_mc,
    ggn,
    gradient,
    gradient_covariance,
    hessian,
)
from fisherlab.curvature._products import (
    empirical_fisher_vp,
    fisher_mc_vp,
    fisher_vp,
    ggn_vp,
    hvp,
)

__all__ = [
    "CurvatureMemoryError",
    "empirical_fisher",
    "empirical_fisher_vp",
    "fisher",
    "fisher_mc",
    "fisher_mc_vp",
    "fisher_vp",
    "ggn",
    "ggn_vp",
    "gradient",
    "gradient_covariance",
    "hessian",
    "hvp",
]


def __dir__():
    return list(__all__)
