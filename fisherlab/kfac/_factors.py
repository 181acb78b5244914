"""K-FAC Kronecker factors ``A`` (layer inputs) and ``G`` (pre-activation gradients)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from fisherlab._core.precision import reference
from fisherlab.kfac._checks import bounded_diagonal
from fisherlab.kfac._cotangents import cotangent_weight
from fisherlab.kfac._diagnosis import check_factors_finite
from fisherlab.kfac._inputs import (check_model, check_options, check_values, finite_flags,
                                    prepare)
from fisherlab.kfac._statistics import batched, second_moment
from fisherlab.kfac._types import KFACFactors

__all__ = ["factors", "factors_from_statistics"]


def factors_from_statistics(inputs, vs, weight, approx, bias):
    """``(A, G)`` per layer from the inputs ``(N, P, in')`` and gradients ``(N, K, P, out)``,
    and whether every factor is finite (read from the diagonals, see
    :func:`~fisherlab.kfac._checks.bounded_diagonal`)."""
    out, diagonals = [], []
    for amat, v in zip(inputs, vs):
        N, P = amat.shape[:2]
        if approx == "expand":  # every position is an example for A; G sums over positions
            a, count = amat.reshape((N * P, amat.shape[-1])), N * P
            g = v.reshape((-1, v.shape[-1]))
        else:  # positions averaged (inputs) and summed (gradients) first
            a, count = jnp.mean(amat, axis=1), N
            g = jnp.sum(v, axis=2).reshape((-1, v.shape[-1]))
        A, dA = second_moment(a, count, augment=bias == "augmented")
        G, dG = second_moment(g, N / weight)
        out.append(KFACFactors(A, G))
        diagonals += [dA, dG]
    return out, bounded_diagonal(*diagonals)


@functools.partial(jax.jit, static_argnums=(0, 2, 3, 4, 5, 6, 7))
def _compute(model, params, likelihood, fisher_type, approx, bias, num_samples, reduced, x, y,
             key):
    """The factors and their :func:`~fisherlab.kfac._inputs.finite_flags`, compiled once per
    model, likelihood, options and shapes."""
    inputs, vs, outputs = batched(model, params, likelihood, fisher_type, num_samples, x, y, key,
                                  reduced)
    facs, finite = factors_from_statistics(inputs, vs, cotangent_weight(fisher_type, num_samples),
                                           approx, bias)
    return facs, finite_flags(params, x, outputs, finite)


def compute_checked(problem, approx, bias):
    """The factors of a prepared problem; non-finite inputs, model outputs or factors raise
    the named error (one host sync when everything is finite)."""
    model, params, x, y, likelihood, fisher_type, num_samples, key, reduced = problem
    facs, flags = _compute(model, params, likelihood, fisher_type, approx, bias, num_samples,
                           reduced, x, y, key)
    (factors_ok,) = check_values(flags, problem)
    if not factors_ok:  # raises the reason unless the bound was only a false alarm
        check_factors_finite(facs, problem)
    return facs


@reference
def factors(model, params, x, y, likelihood, *, fisher_type: str = "exact",
            approx: str = "expand", bias: str = "augmented", key=None,
            num_samples: int = 1) -> list[KFACFactors]:
    r"""K-FAC Kronecker factors of every Dense/Conv2d layer of a sequential network.

    For layer ``k`` with inputs ``a``, pre-activations ``s = W a + b`` and per-example loss
    ``l_n = -log p(y_n | f(theta, x_n))`` (mean reduction, ``docs/CONVENTIONS.md`` § K-FAC):

    .. math::

        \bar a = [a; 1], \qquad
        A = \frac1N \sum_n \bar a_n \bar a_n^\top, \qquad
        G = \frac1N \sum_n \mathbb E\big[g_n g_n^\top\big], \quad g_n = \nabla_{s} l_n,

    and the layer's block of the curvature is approximated by ``G (x) A`` in the row-major
    order of ``[W b]``. The block is exact for ``N = 1`` and, with ``"exact"``, for deep linear
    networks with a Gaussian likelihood at any ``N`` (tested against the dense curvature).

    The expectation ``E[g g^T]`` is

    * ``"exact"``: over ``y ~ p(.|f_n)`` in closed form, ``J_s^T F_out(f_n) J_s``, by
      back-propagating the columns of a factor ``M M^T = F_out`` (``C - 1`` columns for
      Categorical, whose ``F_out`` has rank ``C - 1``); for natural-parameter likelihoods this
      is K-FAC of the GGN;
    * ``"mc"``: the average over ``num_samples`` labels ``y ~ p(.|f_n)`` per example, drawn
      with ``key`` exactly as :func:`fisherlab.fisher_mc` draws them (example ``n`` uses
      ``jax.random.split(key, N)[n]``; with ``Q > 1`` output positions that key is split once
      more, one key per position);
    * ``"empirical"``: the data label ``y_n`` (K-FAC of the empirical Fisher).

    A layer applied at ``P`` positions (a ``Dense`` layer on ``(T, in)`` inputs, a ``Conv2d``
    at its ``H_out W_out`` locations) shares its weight; ``approx`` chooses how:

    .. math::

        \text{expand:}\quad A = \frac{1}{NP} \sum_{n,p} \bar a_{n,p} \bar a_{n,p}^\top, \quad
        G = \frac1N \sum_n \sum_p \mathbb E\big[g_{n,p} g_{n,p}^\top\big];
        \qquad
        \text{reduce:}\quad \bar a_n = \frac1P \sum_p \bar a_{n,p}, \quad
        g_n = \sum_p g_{n,p},

    then ``A`` and ``G`` of ``reduce`` as in the plain case. Both equal plain K-FAC for
    ``P = 1``; ``expand`` is exact for deep linear networks when every position has its own
    loss term, ``reduce`` when positions are pooled before the output. Model outputs may carry
    positions too (``(..., C)`` per example): the loss is then summed over them.

    Args:
      model: a :class:`fisherlab.nn.Sequential` with at least one ``Dense`` or ``Conv2d`` layer.
      params: ``[(W, b), ...]`` as returned by ``model.init``.
      x: inputs ``(N, *input_shape)``.
      y: targets ``(N, ...)`` (see the likelihood); required for ``"empirical"``, may be
        ``None`` otherwise.
      likelihood: a :class:`fisherlab.likelihoods.Likelihood`.
      fisher_type: ``"exact"`` | ``"mc"`` | ``"empirical"``.
      approx: ``"expand"`` | ``"reduce"``.
      bias: ``"augmented"`` (``A`` on ``[a; 1]``, weight--bias cross terms kept) or
        ``"separate"`` (``A`` on ``a``, bias block ``G``, no cross terms).
      key: a ``jax.random`` key, required for ``"mc"``.
      num_samples: labels drawn per example for ``"mc"``.

    Returns:
      A list with one :class:`KFACFactors` ``(A, G)`` per Dense/Conv2d layer, float64 and
      symmetric to rounding: ``A`` of shape ``(in'+1, in'+1)`` (``(in', in')`` with a separate
      bias), ``G`` of shape ``(out, out)``.

    Raises:
      ValueError: for non-finite ``params`` or ``x`` (the entry named), and for a non-finite
        factor: the message names the factor, the layer and what overflowed (the layer inputs,
        the likelihood's output-space quantity at a named model output, the back-propagated
        pre-activation gradients, or only their second moments). Under a caller's ``jax.jit``
        values are traced and not checked.

    References:
      J. Martens and R. Grosse, "Optimizing neural networks with Kronecker-factored
      approximate curvature", ICML 2015. R. Grosse and J. Martens, "A Kronecker-factored
      approximate Fisher matrix for convolution layers", ICML 2016. R. Eschenhagen, A. Immer,
      R. E. Turner, F. Schneider and P. Hennig, "Kronecker-factored approximate curvature for
      modern neural network architectures", NeurIPS 2023.

    >>> import jax, fisherlab as fl
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jax.random.normal(jax.random.key(1), (5, 3))
    >>> [f.A.shape for f in fl.kfac.factors(model, params, x, None, fl.Categorical())]
    [(4, 4), (5, 5)]
    """
    check_model(model)
    check_options(fisher_type, approx, bias)
    problem = prepare(model, params, x, y, likelihood, fisher_type, key, num_samples)
    return compute_checked(problem, approx, bias)
