r"""Exact whole-network curvature of tiny networks, computed in SymPy (no JAX).

:func:`curvature` is fisherlab's *independent ground truth* for the numeric
references (``fl.hessian``, ``fl.ggn``, ``fl.fisher``, ``fl.empirical_fisher``,
``fl.kfac``): it never calls JAX. It

1. differentiates the network ``f(theta, x)`` of a :class:`fisherlab.nn.Sequential`
   exactly, in one of two ways (``engine=``):

   * *composed* (chains of ``Dense`` layers and elementwise activations): the whole network
     as one SymPy expression per output, with one symbol per parameter and per input
     component, differentiated by ``sympy.diff`` -- the Jacobian ``J = df/dtheta`` and, for
     the Hessian, every second derivative ``d^2 f_c`` (from the composed expression for at
     most one nonlinear activation, else by the exact second-order chain rule layer by layer,
     ``second_derivatives=``);
   * *layerwise* (every ``fl.nn`` layer: ``LayerNorm``, ``RMSNorm``, ``Embedding``,
     ``MultiHeadAttention``, ``Residual``, ``MeanPool``, ``GELU``, ... and per-token outputs):
     each layer is a small SymPy function of its local inputs and parameters, written from
     its published definition; its derivatives come from ``sympy.diff`` and are composed by
     the exact first- and second-order chain rule (:mod:`._jets`);

   activations enter through their ``.symbolic(z)`` method (``ReLU``'s ``Max(z, 0)`` as the
   piecewise ``z if z > 0 else 0``, so that its derivative at the kink is 0);
2. takes the likelihood's log-density from ``likelihood.symbolic(C)`` -- the
   single symbolic source, :mod:`fisherlab.likelihoods._symbolic` -- and
   differentiates it in the outputs: ``r = grad_eta l``, ``Lambda = grad^2_eta l``
   and the output Fisher ``F_out = E_{y ~ p(.|eta)}[score score^T]`` computed with
   the family's **exact expectation operator** (finite sums, Gaussian moments,
   Poisson series);
3. substitutes the float64 parameters, inputs and targets **as exact rationals**
   (``sympy.Rational(float)`` is the exact binary value the float64 code sees) and
   assembles, per example ``n`` (``l_n = -log p(y_n | f(theta, x_n))``; for per-token
   outputs the sum of the ``R`` token losses)::

       hessian           H_n  = J^T Lambda J + sum_c r_c d^2 f_c
       ggn               G_n  = J^T Lambda J
       fisher            F_n  = J^T F_out J
       empirical_fisher  EF_n = (J^T r)(J^T r)^T
       kfac (per layer)  G (x) A,  A = mean_n abar abar^T,  G = mean_n J_s^T F_out J_s

   and averages over ``n`` (``reduction="mean"``) or sums (``"sum"``).

The Hessian is assembled by the exact second-order chain rule
(M. Johnson, "Natural gradients and K-FAC" (note, 2017), App. A eq. (40)). The test suite
checks the two engines against each other, and both against ``sympy.hessian`` of the fully
composed loss on networks small enough for it.

Evaluation. With ``exact=True`` the matrix is returned *exactly*: entries are
SymPy expressions in rationals and ``tanh``/``exp``/``log``/``sqrt`` of rationals (a linear
model with a Gaussian likelihood gives exact rationals). By default
(``exact=False``) the same exact expressions are evaluated with mpmath at
``precision + 10`` significant digits (the float64 inputs are exactly
representable there, so the only rounding is mpmath's, ~1e-40 relative) and the
entries are returned as SymPy ``Float``\ s with ``precision`` digits: fast enough
for ~50-parameter networks, and ~25 digits more accurate than any float64
reference it is compared with.

Conventions (docs/CONVENTIONS.md): mean reduction by default; rows/columns in
``jax.flatten_util.ravel_pytree(params)`` order = PyTorch's ``parameters()`` order
(``W_1`` row-major, ``b_1``, ``W_2``, ``b_2``, ...; each layer's parameters in PyTorch's
layout); K-FAC block ``G (x) A`` in the row-major order of ``[W b]``, returned permuted into
parameter order, with ``A`` averaged over examples and ``G`` carrying the loss reduction.
"""

from fisherlab.testing.references.symbolic._curvature import KINDS, curvature

__all__ = ["KINDS", "curvature"]


def __dir__():
    return list(__all__)
