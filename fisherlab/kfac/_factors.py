"""K-FAC Kronecker factors ``A`` (inputs) and ``G`` (pre-activation gradients) per layer."""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fisherlab._precision import reference
from fisherlab.kfac import _core
from fisherlab.kfac._checks import check_factors_finite

__all__ = ["KFACFactors", "factors"]


class KFACFactors(NamedTuple):
    """The two Kronecker factors of one layer's K-FAC block.

    Attributes:
      A: input factor. ``bias="augmented"``: ``(in'+1, in'+1)`` from ``abar = [a; 1]``;
        ``bias="separate"``: ``(in', in')`` from ``a`` alone. ``in' = in_features`` for
        ``Dense``, ``C_in k_h k_w`` for ``Conv2d``.
      G: pre-activation gradient factor ``(out, out)``.

    The layer block is ``G (x) A`` in the row-major order of ``[W b]`` (augmented), or, with
    ``bias="separate"``, ``G (x) A`` for the weight and ``G`` for the bias with no
    weight--bias cross terms (the bias block of K-FAC is exactly ``G``: its input is the
    constant 1). :func:`fisherlab.kfac.matrix` returns it in parameter order.
    """

    A: jax.Array
    G: jax.Array


@functools.partial(jax.jit, static_argnums=(0, 2, 3, 4, 5, 6))
def _factors_jit(model, params, likelihood, fisher_type, approx, bias, num_samples, x, y, key):
    inputs, vs = _core.batched(model, params, likelihood, fisher_type, num_samples, x, y, key)
    w = _core.cotangent_weight(fisher_type, num_samples)
    out = []
    for amat, v in zip(inputs, vs):
        # amat: (N, P, in'), v: (N, K, P, out)
        N, P = amat.shape[0], amat.shape[1]
        if bias == "augmented":
            amat = jnp.concatenate([amat, jnp.ones(amat.shape[:-1] + (1,), amat.dtype)], -1)
        if approx == "expand":
            A = jnp.einsum("npi,npj->ij", amat, amat) / (N * P)
            G = w * jnp.einsum("nkpi,nkpj->ij", v, v) / N
        else:
            abar = jnp.mean(amat, axis=1)  # (N, in')
            vsum = jnp.sum(v, axis=2)  # (N, K, out)
            A = jnp.einsum("ni,nj->ij", abar, abar) / N
            G = w * jnp.einsum("nki,nkj->ij", vsum, vsum) / N
        out.append(KFACFactors((A + A.T) / 2, (G + G.T) / 2))
    return out


@reference
def factors(model, params, x, y, likelihood, *, fisher_type: str = "exact",
            approx: str = "expand", bias: str = "augmented", key=None,
            num_samples: int = 1) -> list[KFACFactors]:
    r"""K-FAC Kronecker factors of every Dense/Conv2d layer of a sequential network.

    For layer ``k`` with inputs ``a`` and pre-activations ``s = W a + b``, per-example loss
    ``l_n = -log p(y_n | f(theta, x_n))`` and mean reduction (CONVENTIONS.md § K-FAC):

    .. math::

        \bar a = [a; 1], \qquad
        A = \frac1N \sum_n \bar a_n \bar a_n^\top, \qquad
        G = \frac1N \sum_n \mathbb E\big[g_n g_n^\top\big], \quad g_n = \nabla_{s} l_n
        \ (\text{not scaled by } 1/N),

    and the layer's block of the curvature is approximated by ``G (x) A`` in the row-major
    order of ``[W b]``. With this scaling the block is *exact* for ``N = 1`` (any activation)
    and, for the exact type, for deep linear networks with a Gaussian likelihood at any ``N``.

    The expectation ``E[g g^T]``:

    * ``"exact"`` -- over ``y ~ p(.|f_n)`` in closed form: ``E[g g^T] = J_s^T F_out(f_n) J_s``,
      computed by back-propagating the columns of a factor ``M M^T = F_out`` (the likelihood's
      ``_output_fisher_sqrt``, else a symmetric square root by ``eigh``). For
      natural-parameter likelihoods ``F_out`` is the output Hessian, so this is K-FAC of the GGN.
    * ``"mc"`` -- the average over ``num_samples`` labels ``y ~ p(.|f_n)`` drawn per example
      with ``key`` (required): an unbiased estimate of the exact ``G``. The labels are those of
      :func:`fisherlab.fisher_mc` with the same ``key`` and ``num_samples``: example ``n`` draws
      ``likelihood._sample(jax.random.split(key, N)[n], f_n, S)``, i.e. exactly
      ``likelihood.sample(key, outputs, S)`` -- so for ``N = 1`` the K-FAC block ``G (x) A`` equals
      the ``fisher_mc`` block (tested). With ``Q > 1`` output positions per example (which
      ``fisher_mc`` does not take) the example's key is split once more, one key per position
      (``likelihood.sample(split(key, N)[n], f_n.reshape(Q, C), S)``).
    * ``"empirical"`` -- the data label ``y_n`` (K-FAC of the empirical Fisher).

    Weight sharing (Eschenhagen et al., 2023). A layer applied at ``P`` positions -- a ``Dense``
    layer on an input ``(T, in)`` (``P = T``), a ``Conv2d`` at its ``H_out W_out`` output
    locations (each position sees one patch, KFC of Grosse & Martens, 2016) -- has per-example
    inputs ``abar_{n,p}`` and pre-activation gradients ``g_{n,p} = grad_{s_{n,p}} l_n``, and the
    exact per-example weight gradient is ``sum_p g_{n,p} abar_{n,p}^T``.

    * ``approx="expand"`` (the default; KFC for convolutions): the ``N P`` positions are examples
      for ``A`` and the gradients are summed over positions in ``G``::

          A = 1/(N P) sum_n sum_p abar_{n,p} abar_{n,p}^T
          G = 1/N     sum_n sum_p E[g_{n,p} g_{n,p}^T]

      (Eschenhagen et al. 2023, eq. for K-FAC-expand, with the loss's ``1/N`` on ``G``; the
      ``1/P`` on ``A`` and the sum over ``p`` in ``G`` make ``G (x) A`` exact for deep linear
      networks in the *expand setting*, where each position has its own output and loss term.)
    * ``approx="reduce"``: inputs are averaged and gradients summed over positions first::

          abar_n = 1/P sum_p abar_{n,p},   g_n = sum_p g_{n,p}
          A = 1/N sum_n abar_n abar_n^T,   G = 1/N sum_n E[g_n g_n^T]

      (= ``1/(N P^2) sum_n (sum_p abar)(sum_p abar)^T``; exact for deep linear networks in the
      *reduce setting*, where the positions are pooled before the output.)

    Both equal the plain K-FAC factors when ``P = 1``. Model outputs may carry positions too
    (``(..., C)`` per example): the per-example loss is then the sum over output positions,
    ``l_n = sum_q l(f_{n,q}, y_{n,q})``, and ``y`` has shape ``(N, ..., *target_shape)``.

    Args:
      model: a :class:`fisherlab.nn.Sequential` with at least one ``Dense`` or ``Conv2d`` layer.
      params: ``[(W, b), ...]`` as returned by ``model.init``.
      x: inputs ``(N, *input_shape)``.
      y: targets (see the likelihood); required for ``"empirical"``, may be ``None`` otherwise.
      likelihood: a :class:`fisherlab.likelihoods.Likelihood`.
      fisher_type: ``"exact"`` | ``"mc"`` | ``"empirical"``.
      approx: ``"expand"`` | ``"reduce"`` (weight-sharing flavour; identical when ``P = 1``).
      bias: ``"augmented"`` (``A`` on ``[a; 1]``, cross terms between ``W`` and ``b`` kept)
        or ``"separate"`` (``A`` on ``a`` only; bias block ``G``; no weight--bias cross terms --
        the BackPACK / ASDL / curvlinops default).
      key: a ``jax.random`` key, required for ``"mc"``.
      num_samples: labels drawn per example for ``"mc"``.

    Returns:
      A list with one :class:`KFACFactors` ``(A, G)`` per Dense/Conv2d layer, float64.

    Raises:
      ValueError: on concrete values, for non-finite ``params`` or ``x`` (named entry), and
        for a non-finite factor: the message names the factor and the layer and what
        overflowed -- the layer inputs, the likelihood's output-space quantity at a named model
        output (e.g. the Poisson output Fisher ``exp(eta)`` at ``eta = 710``), the
        back-propagated pre-activation gradients, or only their second moments. No inf/NaN is
        returned silently (under a caller's ``jax.jit`` the values are traced and not checked).

    References:
      J. Martens, R. Grosse, "Optimizing neural networks with Kronecker-factored approximate
      curvature", ICML 2015; R. Grosse, J. Martens, "A Kronecker-factored approximate Fisher
      matrix for convolution layers", ICML 2016; R. Eschenhagen, A. Immer, R. E. Turner,
      F. Schneider, P. Hennig, "Kronecker-factored approximate curvature for modern neural
      network architectures", NeurIPS 2023; seed 003_377ac27c40267f84.txt §8 (Johnson, K-FAC
      as block-diagonal Kronecker approximation); seed 004_bb4f7e8c8840a6b5.txt (Grosse,
      CSC2541 Lecture 4).

    >>> import jax, fisherlab as fl
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jax.random.normal(jax.random.key(1), (5, 3))
    >>> [f.A.shape for f in fl.kfac.factors(model, params, x, None, fl.Categorical())]
    [(4, 4), (5, 5)]
    """
    _core.check_model(model)
    _core.check_options(fisher_type, approx, bias)
    x, y, key, num_samples, _ = _core.prepare(model, params, x, y, likelihood, fisher_type,
                                              key, num_samples)
    params = jax.tree_util.tree_map(lambda p: jnp.asarray(p, jnp.float64), params)
    params = [tuple(p) for p in params]
    result = _factors_jit(model, params, likelihood, fisher_type, approx, bias, num_samples,
                          x, y, key)
    check_factors_finite(result, model, params, x, y, likelihood, fisher_type, num_samples, key)
    return result
