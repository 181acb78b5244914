"""K-FAC Kronecker factors ``A`` (layer inputs) and ``G`` (pre-activation gradients)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from fisherlab._core.precision import reference
from fisherlab._core.validation import check_choice
from fisherlab.kfac import _sharded
from fisherlab.kfac._checks import bounded_diagonal
from fisherlab.kfac._cotangents import cotangent_weight
from fisherlab.kfac._diagnosis import check_factors_finite
from fisherlab.kfac._inputs import (TOKENS, check_model, check_options, check_values,
                                    finite_flags, prepare)
from fisherlab.kfac._layers import blocks
from fisherlab.kfac._statistics import batched, second_moment
from fisherlab.kfac._types import ExactBlock, KFACFactors

__all__ = ["factors", "factors_from_statistics"]


def factors_from_statistics(inputs, vs, weight, approx, bias, kinds=None, scale=1.0,
                            num_examples=None):
    """``(A, G)`` per Kronecker block from the inputs ``(N, P, in')`` and gradients
    ``(N, K, P, out)`` (an :class:`ExactBlock` from the parameter gradients ``(N, K, p)`` of an
    exact block), and whether every factor is finite (read from the diagonals, see
    :func:`~fisherlab.kfac._checks.bounded_diagonal`). ``kinds``: the blocks' kinds
    (:class:`~fisherlab.kfac._layers.Block`; all ``"dense"`` when ``None``); ``scale``
    multiplies ``G`` and the exact blocks (``1/R`` for ``tokens="flatten"``); ``num_examples``:
    the ``N`` divided by (the whole batch's, for a device's part of it; default: the rows)."""
    out, diagonals = [], []
    kinds = kinds or ("dense",) * len(vs)
    for amat, v, kind in zip(inputs, vs, kinds):
        N = v.shape[0] if num_examples is None else num_examples
        if kind == "exact":
            B, dB = second_moment(v.reshape((-1, v.shape[-1])), N / (weight * scale))
            out.append(ExactBlock(B))
            diagonals.append(dB)
            continue
        P = amat.shape[1]
        if approx == "expand":  # every position is an example for A; G sums over positions
            a, count = amat.reshape((-1, amat.shape[-1])), N * P
            g = v.reshape((-1, v.shape[-1]))
        else:  # positions averaged (inputs) and summed (gradients) first
            a, count = jnp.mean(amat, axis=1), N
            g = jnp.sum(v, axis=2).reshape((-1, v.shape[-1]))
        A, dA = second_moment(a, count, augment=bias == "augmented" and kind == "dense")
        G, dG = second_moment(g, N / (weight * scale))
        out.append(KFACFactors(A, G))
        diagonals += [dA, dG]
    return out, bounded_diagonal(*diagonals)


def token_scale(outputs, tokens) -> float:
    """``1/Q`` for ``tokens="flatten"`` (``Q`` output positions per example), else 1."""
    Q = 1
    for n in outputs.shape[1:-1]:
        Q *= n
    return 1.0 / Q if tokens == "flatten" else 1.0


def _statistics(model, likelihood, fisher_type, approx, bias, num_samples, reduced, tokens,
                params, x, y, key, keys=None, num_examples=None):
    """The factors and their :func:`~fisherlab.kfac._inputs.finite_flags` (``keys`` and
    ``num_examples`` for a device's part of a sharded batch, :mod:`fisherlab.kfac._sharded`)."""
    inputs, vs, outputs = batched(model, params, likelihood, fisher_type, num_samples, x, y, key,
                                  reduced, tokens, keys)
    kinds = tuple(b.kind for b in blocks(model))
    facs, finite = factors_from_statistics(inputs, vs, cotangent_weight(fisher_type, num_samples),
                                           approx, bias, kinds, token_scale(outputs, tokens),
                                           num_examples)
    return facs, finite_flags(params, x, outputs, finite)


def _sharded_statistics(model, likelihood, fisher_type, approx, bias, num_samples, reduced,
                        tokens, params, x, y, keys, num_examples):
    return _statistics(model, likelihood, fisher_type, approx, bias, num_samples, reduced, tokens,
                       params, x, y, None, keys, num_examples)


@functools.partial(jax.jit, static_argnums=(0, 2, 3, 4, 5, 6, 7, 8))
def _compute(model, params, likelihood, fisher_type, approx, bias, num_samples, reduced, tokens,
             x, y, key):
    """:func:`_statistics`, compiled once per model, likelihood, options and shapes."""
    return _statistics(model, likelihood, fisher_type, approx, bias, num_samples, reduced, tokens,
                       params, x, y, key)


def compute_checked(problem, approx, bias, tokens="sum", mesh=None):
    """The factors of a prepared problem (its batch split over ``mesh``, the ``(mesh, axis)``
    of :func:`~fisherlab.kfac._sharded.batch_mesh`, when given); non-finite inputs, model
    outputs or factors raise the named error (one host sync when everything is finite)."""
    model, params, x, y, likelihood, fisher_type, num_samples, key, reduced = problem
    if mesh is None:
        facs, flags = _compute(model, params, likelihood, fisher_type, approx, bias, num_samples,
                               reduced, tokens, x, y, key)
    else:
        static = (model, likelihood, fisher_type, approx, bias, num_samples, reduced, tokens)
        facs, flags, _ = _sharded.run(_sharded_statistics, static, problem, mesh, tokens)
    (factors_ok,) = check_values(flags, problem)
    if not factors_ok:  # raises the reason unless the bound was only a false alarm
        check_factors_finite(facs, problem)
    return facs


@reference
def factors(model, params, x, y, likelihood, *, fisher_type: str = "exact",
            approx: str = "expand", bias: str = "augmented", key=None,
            num_samples: int = 1, tokens: str = "sum") -> list[KFACFactors | ExactBlock]:
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
    positions too (``(R, C)`` per example, targets ``(R, ...)``): with ``tokens="sum"`` the
    example's loss is the sum of its token losses; with ``tokens="flatten"`` the loss is the
    mean over all ``N R`` tokens, so ``G`` and the exact blocks are divided by ``R`` (and
    ``"mc"`` draws token ``r`` of example ``n`` with ``jax.random.split(key, N R)[n R + r]``).

    Token models (``docs/CONVENTIONS.md`` § K-FAC): the blocks are found at any depth of
    ``Sequential`` and ``Residual`` nesting, in parameter order -- one Kronecker block per
    ``Dense``/``Conv2d``; two per ``MultiHeadAttention`` (``[in_proj_weight in_proj_bias]`` on
    the sequence, ``[out_proj_weight out_proj_bias]`` on the heads' outputs, both shared over
    the tokens); one per ``Embedding`` (a dense layer without bias on the one-hot token rows:
    ``A`` is ``(num, num)``, for ``expand`` the diagonal of token frequencies; the block in
    the parameter order of ``E (num, d)`` is ``A (x) G``); and for ``LayerNorm``/``RMSNorm``
    with affine parameters an :class:`ExactBlock`, the layer's exact block
    ``(1/N) sum_n E[g_n g_n^T]`` over the gradients of its ``weight``/``bias`` (the same
    cotangents as ``G``). Any other layer with parameters is refused, named.

    A batch ``x`` sharded over a device mesh is reduced on each device, then summed once across
    the devices (``docs/multi_device.md``).

    Args:
      model: a :class:`fisherlab.nn.Sequential` with at least one layer with parameters.
      params: as returned by ``model.init`` (``[(W, b), ...]`` for an MLP).
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
      tokens: ``"sum"`` | ``"flatten"`` (per-token outputs, see above).

    Returns:
      A list with one entry per K-FAC block, float64 and symmetric to rounding: a
      :class:`KFACFactors` ``(A, G)`` with ``A`` of shape ``(in'+1, in'+1)`` (``(in', in')``
      with a separate bias or for an embedding), ``G`` of shape ``(out, out)``; an
      :class:`ExactBlock` for a norm.

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

    Derivations: ``kfac_conv.kfc_exactness``, ``kfac_exactness.deep_linear``,
    ``kfac_exactness.single_example``, ``kfac_structure.dense_layer``,
    ``kfac_weight_sharing.expand_exactness``, ``kfac_weight_sharing.reduce_exactness``.
    """
    check_model(model)
    check_options(fisher_type, approx, bias)
    check_choice(tokens, "tokens", TOKENS)
    mesh = _sharded.batch_mesh(x)
    problem = prepare(model, params, x, y, likelihood, fisher_type, key, num_samples)
    return compute_checked(problem, approx, bias, tokens, mesh)
