r"""Exact curvature of any JAX model: Hessian, GGN, Fisher, empirical Fisher, and their products.

A *model* is a single-example function ``f(params, x_n) -> outputs`` of shape ``(C,)``
with ``params`` any pytree of floating-point arrays; ``x`` is a batch with leading axis
``N`` (an array or a pytree of arrays; the library ``vmap``\ s ``f`` over it) and ``y`` the
batch of targets in the likelihood's format. With ``l_n(theta) = -log p(y_n | f(theta, x_n))``,
``J_n = d f(theta, x_n) / d theta`` (``C x d``) and ``g_n = grad l_n`` (CONVENTIONS.md):

.. math::

    L = \tfrac1N \sum_n l_n, \qquad
    H = \nabla^2 L, \qquad
    G = \tfrac1N \sum_n J_n^\top \Lambda_n J_n,\ \Lambda_n = \nabla^2_f l_n, \qquad
    F = \tfrac1N \sum_n J_n^\top F_{\rm out}(f_n) J_n, \qquad
    E = \tfrac1N \sum_n g_n g_n^\top .

Conventions followed by every function here:

* **mean** reduction by default (the curvature of ``L``, with its ``1/N``);
  ``reduction="sum"`` drops the ``1/N`` (exactly ``N`` times the mean result);
* matrices are ``(d, d)`` and vectors ``(d,)``, indexed in the order of
  ``jax.flatten_util.ravel_pytree(params)``;
* results are **float64** whatever the caller's global ``jax_enable_x64`` flag, which
  is left as it was (:func:`fisherlab._precision.reference`); ``params`` leaves and
  floating inputs are cast to float64 before ``f`` is called;
* bad input raises ``ValueError``/``TypeError`` naming the argument; a NaN/inf in ``x``,
  ``params`` or ``y`` is an error, never a silent NaN result (checked when the values are
  concrete, i.e. outside ``jax.jit``);
* a non-finite **result** is an error too: finite inputs can still overflow float64 (a
  Poisson log-rate of 710 has output Fisher ``exp(710) = inf``; ``fl.Gaussian(variance=1e-310)``
  has ``F_out = I / variance = inf``; ``g_n g_n^T`` overflows for ``|g_n| > 1e154``). Every
  dense function, :func:`gradient` and every call of a matrix-free closure tests
  the result's finiteness (one reduction over it) and raises a ``ValueError`` naming
  the function and what overflowed -- the model outputs, the likelihood's output-space
  Fisher/Hessian/gradient at a named ``outputs[n]``, the model Jacobian, or the final
  accumulation (:mod:`fisherlab._curvature_finite`);
* every function works under ``jax.jit`` (close over ``f`` and ``likelihood``). **Under**
  ``jax.jit`` **none of the value checks can run** (the values are traced: nothing concrete
  to test, nothing can be raised), so NaN/inf inputs or an overflowing result are *not*
  detected there: test the jitted result with ``jnp.isfinite`` yourself.

Efficiency: dense Gauss-Newton-type matrices (GGN, Fisher, Monte-Carlo Fisher) have two
exact methods. ``method="jacobian"`` works for any model: ``J^T (Lambda J)`` with
per-example Jacobians from reverse mode when ``C < d`` (forward mode otherwise), in chunks
of ``chunk_size`` examples under one ``lax.scan``: peak memory ``O(chunk_size * C * d + d^2)``,
time dominated by the ``2 N C d^2`` flops of one ``(B C, d)^T (B C, d)`` product per chunk.
``method="layerwise"`` (chosen by ``"auto"`` for a ``fl.nn.Sequential`` of Dense layers and
elementwise activations) uses the exact Kronecker structure of dense-layer Jacobians
(:mod:`fisherlab._curvature_layerwise`): about ``2 N d^2`` flops, a factor ``C`` fewer.
The empirical Fisher uses per-example gradients (``2 N d^2`` flops). Nothing here
differentiates the flattened loss twice except :func:`hessian`, whose matrix *is* that
second derivative (computed chunk by chunk).

References:
  seed 003_377ac27c40267f84.txt (M. Johnson, "Natural gradients and K-FAC", 2017),
  §3 and §7 (Fisher as covariance of the score), App. A eqs. (40)-(46) (GGN, Fisher = GGN
  for exponential families, matrix-free product eq. (43));
  seed 004_bb4f7e8c8840a6b5.txt (R. Grosse, CSC2541 Lecture 4, 2022: Newton, Gauss-Newton,
  natural gradient);
  N. N. Schraudolph, "Fast curvature matrix-vector products for second-order gradient
  descent", Neural Computation 14(7), 2002;
  J. Martens, "New insights and perspectives on the natural gradient method", JMLR 21, 2020;
  F. Kunstner, L. Balles, P. Hennig, "Limitations of the empirical Fisher approximation for
  natural gradient descent", NeurIPS 2019.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from fisherlab import _curvature_kernels as _k
from fisherlab import _curvature_layerwise as _layerwise
from fisherlab._curvature_finite import check_result
from fisherlab._curvature_problem import (
    check_chunk_size,
    check_jacobian_mode,
    check_method,
    check_key,
    check_num_samples,
    check_reduction,
    check_vector,
    prepare,
    reduction_weights,
)
from fisherlab._precision import reference

__all__ = [
    "hessian",
    "ggn",
    "fisher",
    "fisher_mc",
    "empirical_fisher",
    "gradient_covariance",
    "gradient",
    "hvp",
    "ggn_vp",
    "fisher_vp",
    "empirical_fisher_vp",
    "fisher_mc_vp",
]


# ----------------------------------------------------------------------------- helpers


def _chunks(p, kind, chunk_size, reduction, extra):
    """``(x, extra, w)`` reshaped to ``(K, B, ...)`` plus the chunk size used."""
    n = p.num_examples
    b = chunk_size or _k.default_chunk_size(kind, n, p.num_outputs, p.num_params)
    b = min(b, n)
    w = _k.chunk_weights(n, b, reduction_weights(n, reduction))
    return _k.chunked(p.x, n, b), (None if extra is None else _k.chunked(extra, n, b)), w


def _gauss_newton(kind, f, params, x, y, likelihood, reduction, chunk_size, jacobian, method,
                  key=None, num_samples=1):
    reduction = check_reduction(reduction)
    chunk_size = check_chunk_size(chunk_size)
    jacobian = check_jacobian_mode(jacobian)
    method = check_method(method)
    if kind == "fisher_mc":
        num_samples = check_num_samples(num_samples)
        key = check_key(key)
    p = prepare(f, params, x, y, likelihood, needs_targets=(kind == "ggn"))
    if kind == "fisher_mc":
        extra = jax.random.split(key, p.num_examples)
    elif kind == "ggn":
        extra = p.y
    else:
        extra = None
    layerwise_ok = _layerwise.supports(f, p.params, p.x)
    if method == "layerwise" and not layerwise_ok:
        raise ValueError(
            "method='layerwise' needs f to be a fisherlab.nn.Sequential of Dense layers and "
            "elementwise activations (Tanh, Sigmoid, ReLU, Identity) applied to x of shape "
            f"(N, in_features), got f = {f!r} and x of shape {getattr(p.x, 'shape', None)}; "
            "use method='jacobian' (any model)")
    use_layerwise = method == "layerwise" or (
        method == "auto" and layerwise_ok and jacobian == "auto")
    if use_layerwise and chunk_size is None:
        chunk_size = _layerwise.default_chunk_size(f, p.num_examples, p.num_outputs)
    xc, ec, wc = _chunks(p, kind, chunk_size, reduction, extra)
    if use_layerwise:
        run = _k.compiled("layerwise", f, likelihood, kind, num_samples)
    else:
        mode = _k.resolve_mode(jacobian, p.num_outputs, p.num_params)
        run = _k.compiled("gauss_newton", f, likelihood, kind, mode, num_samples)
    return check_result(run(p.params, xc, ec, wc), f"fl.{kind}", p, kind, key=key,
                        num_samples=num_samples)


# ----------------------------------------------------------------------------- dense


@reference
def ggn(f: Callable, params, x, y, likelihood, *, reduction: str = "mean",
        chunk_size: int | None = None, jacobian: str = "auto", method: str = "auto") -> jax.Array:
    r"""Generalized Gauss-Newton matrix ``G = (1/N) sum_n J_n^T Lambda_n J_n``.

    ``Lambda_n = grad^2_f (-log p(y_n | f))`` is the output-space Hessian of the
    negative log-likelihood at the data target ``y_n`` (``likelihood._output_hessian``);
    ``J_n`` the ``C x d`` Jacobian of the outputs. ``G`` is the Hessian with the term
    ``sum_c (dl/df_c) grad^2 f_c`` (second derivatives of the model) dropped, seed 003 eq. (40).

    .. math:: G = w \sum_n J_n^\top \Lambda_n J_n,\quad w = 1/N \text{ (mean) or } 1 \text{ (sum)}.

    For natural-parameter likelihoods ``Lambda_n = grad^2 A(f_n)`` does not depend on
    ``y_n`` and ``G`` equals :func:`fisher` exactly (seed 003 eqs. (44)-(46)).

    Args:
      f: single-example model ``f(params, x_n) -> (C,)``.
      params: pytree of floating-point arrays (cast to float64).
      x: inputs, leading axis ``N`` (array or pytree of arrays).
      y: targets, leading axis ``N``, in ``likelihood``'s format.
      likelihood: a fisherlab likelihood, e.g. ``fl.Categorical()``.
      reduction: ``"mean"`` (default, ``1/N``) or ``"sum"``.
      chunk_size: examples per chunk (default: ``B`` with ``B C d <= 2^24``); the result does
        not depend on it beyond rounding.
      jacobian: ``"auto"`` (reverse mode when ``C < d``, else forward), ``"forward"``, ``"reverse"``
        (for ``method="jacobian"``; a non-``"auto"`` value selects that method).
      method: ``"jacobian"`` (any model: per-example Jacobians, ``J^T (Lambda J)``),
        ``"layerwise"`` (``fl.nn.Sequential`` of Dense + elementwise activations only: the
        exact Kronecker-structured blocks of :mod:`fisherlab._curvature_layerwise`, a factor
        ``C`` fewer flops), or ``"auto"`` (layerwise when the model qualifies).

    Returns:
      ``(d, d)`` float64 symmetric matrix in ``ravel_pytree(params)`` order.

    Cost (``method="jacobian"``): ``N`` per-example Jacobians (``min(C, d)`` passes each) and
    ``2 N C d^2`` flops for ``J^T (Lambda J)``; memory ``O(chunk_size C d + d^2)``.
    ``method="layerwise"``: ``C`` backward passes per example to the pre-activations and about
    ``2 N d^2`` flops.

    References:
      seed 003_377ac27c40267f84.txt App. A eqs. (40)-(42); Schraudolph (2002); Martens (2020) §9.

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jnp.ones((4, 3)); y = jnp.array([0, 1, 1, 0])
    >>> fl.ggn(model, params, x, y, fl.Categorical()).shape
    (8, 8)
    """
    return _gauss_newton("ggn", f, params, x, y, likelihood, reduction, chunk_size, jacobian,
                         method)


@reference
def fisher(f: Callable, params, x, likelihood, *, reduction: str = "mean",
           chunk_size: int | None = None, jacobian: str = "auto",
           method: str = "auto") -> jax.Array:
    r"""Exact (true, "type-2") Fisher information ``F = (1/N) sum_n J_n^T F_out(f_n) J_n``.

    The expectation over ``y ~ p(. | f_n)`` is taken in closed form through the
    output-space Fisher ``F_out(eta) = E_y[grad_eta log p grad_eta log p^T]``
    (``likelihood._output_fisher``; ``= grad^2 A(eta)`` for exponential families in natural
    parameters), so by the chain rule ``E_y[g g^T] = J^T F_out J`` (seed 003 §7 eq. (19)
    and App. A eq. (42)). No labels are needed.

    Args:
      f, params, x, likelihood, reduction, chunk_size, jacobian, method: as in :func:`ggn`.

    Returns:
      ``(d, d)`` float64 symmetric positive semi-definite matrix, ``ravel_pytree`` order.

    References:
      seed 003_377ac27c40267f84.txt §3, §7, App. A; Martens (2020) §9.2; Kunstner et al. (2019).
    """
    return _gauss_newton("fisher", f, params, x, None, likelihood, reduction, chunk_size,
                         jacobian, method)


@reference
def fisher_mc(f: Callable, params, x, likelihood, key=None, num_samples: int = 1, *,
              reduction: str = "mean", chunk_size: int | None = None,
              jacobian: str = "auto", method: str = "auto") -> jax.Array:
    r"""Monte-Carlo Fisher: the expectation of :func:`fisher` replaced by ``S`` samples per example.

    .. math::
        \hat F = \frac{w}{S} \sum_n \sum_{s=1}^S \hat g_{ns} \hat g_{ns}^\top,\qquad
        \hat g_{ns} = \nabla_\theta \log p(\hat y_{ns} \mid f(\theta, x_n)),\
        \hat y_{ns} \sim p(\cdot \mid f(\theta, x_n)),

    with ``w = 1/N`` (mean) or ``1`` (sum): each example's ``S`` outer products are
    **averaged** (``1/S``), so ``E[hat F] = F`` and each entry's variance decays as ``1/S``.
    The labels are exactly ``likelihood.sample(key, outputs, num_samples)``: the key is split
    into one key per example (``jax.random.split(key, N)``), so the estimate does not depend
    on ``chunk_size``. Computed as ``J^T hat F_out J`` with the sampled output-space Fisher
    ``hat F_out = (1/S) sum_s r_s r_s^T``, ``r_s = grad_f log p(hat y_s | f)`` (or, when
    ``S < C``, from the ``S`` rows ``J^T r_s`` directly).

    Args:
      f, params, x, likelihood, reduction, chunk_size, jacobian, method: as in :func:`ggn`.
      key: a ``jax.random`` key (required).
      num_samples: ``S >= 1`` sampled labels per example.

    Returns:
      ``(d, d)`` float64 symmetric positive semi-definite matrix, ``ravel_pytree`` order.

    References:
      seed 003_377ac27c40267f84.txt §7 (Fisher as the covariance of sampled-label gradients);
      Martens & Grosse, "Optimizing neural networks with Kronecker-factored approximate
      curvature", ICML 2015 §5; Kunstner et al. (2019).
    """
    return _gauss_newton("fisher_mc", f, params, x, None, likelihood, reduction, chunk_size,
                         jacobian, method, key=key, num_samples=num_samples)


def _gradient_outer(f, params, x, y, likelihood, reduction, chunk_size, centered):
    reduction = check_reduction(reduction)
    chunk_size = check_chunk_size(chunk_size)
    p = prepare(f, params, x, y, likelihood)
    kind = "gradient_covariance" if centered else "empirical_fisher"
    xc, yc, wc = _chunks(p, kind, chunk_size, reduction, p.y)
    d = p.num_params
    if centered:
        # Two passes (mean gradient first), so no cancellation between E[g g^T] and gbar gbar^T.
        gxc, gyc, gwc = _chunks(p, "gradient", None, "mean", p.y)
        shift = _k.compiled("gradient", f, likelihood)(p.params, gxc, gyc, gwc)
    else:
        shift = jnp.zeros((d,), jnp.float64)
    out = _k.compiled("gradient_outer", f, likelihood)(p.params, xc, yc, wc, shift)
    return check_result(out, f"fl.{kind}", p, kind)


@reference
def empirical_fisher(f: Callable, params, x, y, likelihood, *, reduction: str = "mean",
                     chunk_size: int | None = None) -> jax.Array:
    r"""Empirical Fisher ``E = (1/N) sum_n g_n g_n^T`` (uncentered, data labels).

    ``g_n = grad_theta (-log p(y_n | f(theta, x_n)))`` at the **data** target ``y_n`` -- not
    a sample from the model, so ``E`` is *not* the Fisher (Kunstner et al., 2019); it is
    the second moment of the per-example gradients, not their covariance (see
    :func:`gradient_covariance`).

    Args:
      f, params, x, y, likelihood, reduction, chunk_size: as in :func:`ggn`.

    Returns:
      ``(d, d)`` float64 symmetric PSD matrix, ``ravel_pytree`` order.

    Cost: ``N`` backward passes and ``2 N d^2`` flops.

    References:
      seed 002_7cc303c8b37b8e83.txt; seed 003_377ac27c40267f84.txt §7; Kunstner, Balles &
      Hennig (2019); Martens (2020) §11.
    """
    return _gradient_outer(f, params, x, y, likelihood, reduction, chunk_size, False)


@reference
def gradient_covariance(f: Callable, params, x, y, likelihood, *, reduction: str = "mean",
                        chunk_size: int | None = None) -> jax.Array:
    r"""Centered empirical Fisher: the (population) covariance of the per-example gradients.

    .. math::
        \Sigma = \frac1N \sum_n (g_n - \bar g)(g_n - \bar g)^\top
               = E - \bar g \bar g^\top,\qquad \bar g = \nabla L = \frac1N\sum_n g_n .

    The normalisation is ``1/N`` (not ``1/(N-1)``); ``reduction="sum"`` gives
    ``sum_n (g_n - gbar)(g_n - gbar)^T = N Sigma`` (``gbar`` stays the mean gradient).
    Computed in two passes (``gbar`` first), so there is no cancellation between ``E`` and
    ``gbar gbar^T``.

    Args:
      f, params, x, y, likelihood, reduction, chunk_size: as in :func:`ggn`.

    Returns:
      ``(d, d)`` float64 symmetric PSD matrix, ``ravel_pytree`` order.

    References:
      seed 003_377ac27c40267f84.txt §7; Kunstner et al. (2019) §3.
    """
    return _gradient_outer(f, params, x, y, likelihood, reduction, chunk_size, True)


@reference
def gradient(f: Callable, params, x, y, likelihood, *, reduction: str = "mean",
             chunk_size: int | None = None) -> jax.Array:
    r"""Gradient of the loss, ``grad L = (1/N) sum_n g_n`` (``sum`` drops the ``1/N``).

    Args:
      f, params, x, y, likelihood, reduction, chunk_size: as in :func:`ggn`.

    Returns:
      ``(d,)`` float64 vector in ``ravel_pytree(params)`` order.
    """
    reduction = check_reduction(reduction)
    chunk_size = check_chunk_size(chunk_size)
    p = prepare(f, params, x, y, likelihood)
    xc, yc, wc = _chunks(p, "gradient", chunk_size, reduction, p.y)
    out = _k.compiled("gradient", f, likelihood)(p.params, xc, yc, wc)
    return check_result(out, "fl.gradient", p, "gradient")


@reference
def hessian(f: Callable, params, x, y, likelihood, *, reduction: str = "mean",
            chunk_size: int | None = None) -> jax.Array:
    r"""Hessian of the loss, ``H = grad^2 L = (1/N) sum_n grad^2 l_n``.

    Includes the model-curvature term that the GGN drops (seed 003 eq. (40)):
    ``H = G + (1/N) sum_n sum_c (dl_n/df_c) grad^2 f_{n,c}``. Computed by forward-over-reverse
    differentiation (``jax.hessian``) of each chunk's weighted loss, summed over chunks.

    Args:
      f, params, x, y, likelihood, reduction, chunk_size: as in :func:`ggn` (default chunk: a
        heuristic keeping ``64 * B * d`` float64 intermediates under ``2^24``).

    Returns:
      ``(d, d)`` float64 symmetric matrix, ``ravel_pytree`` order.

    References:
      seed 003_377ac27c40267f84.txt App. A eq. (40); seed 004_bb4f7e8c8840a6b5.txt (Newton).
    """
    reduction = check_reduction(reduction)
    chunk_size = check_chunk_size(chunk_size)
    p = prepare(f, params, x, y, likelihood)
    xc, yc, wc = _chunks(p, "hessian", chunk_size, reduction, p.y)
    out = _k.compiled("hessian", f, likelihood)(p.params, xc, yc, wc)
    return check_result(out, "fl.hessian", p, "hessian")


# ----------------------------------------------------------------------------- matrix-free


def _matvec(kernel, p, args, what: str, kind: str, *, explain_as: str | None = None,
            **explain_kw):
    """``explain_as``/``explain_kw``: the quantity (and its key, sample count) that
    :func:`check_result` explains when a product is not finite (default ``kind``)."""
    d = p.num_params

    @reference
    def matvec(v):
        v = check_vector(v, d, "v")
        return check_result(kernel(p.params, *args, v), f"the fl.{kind} matvec", p,
                            explain_as or kind, v=v, **explain_kw)

    matvec.__doc__ = (f"``v -> {what} v`` for a flat float vector ``v`` of shape ({d},) in "
                      "ravel_pytree(params) order; returns float64 (d,).")
    matvec.num_params = d
    return matvec


@reference
def hvp(f: Callable, params, x, y, likelihood, *, reduction: str = "mean") -> Callable:
    r"""Hessian-vector product ``v -> H v`` (forward-over-reverse, ``jvp`` of ``grad L``).

    Args:
      f, params, x, y, likelihood, reduction: as in :func:`hessian`.

    Returns:
      ``matvec(v)``: ``v`` flat of shape ``(d,)`` (``ravel_pytree`` order) -> ``(d,)`` float64.
      ``matvec`` is jit-compatible; a ``v`` of the wrong shape raises ``ValueError``.

    References:
      B. A. Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation 6, 1994.
    """
    reduction = check_reduction(reduction)
    p = prepare(f, params, x, y, likelihood)
    w = jnp.full((p.num_examples,), reduction_weights(p.num_examples, reduction), jnp.float64)
    return _matvec(_k.compiled("hvp", f, likelihood), p, (p.x, p.y, w), "H", "hvp")


def _output_space_vp(kind, f, params, x, y, likelihood, reduction, what):
    reduction = check_reduction(reduction)
    p = prepare(f, params, x, y, likelihood, needs_targets=(kind == "ggn"))
    w = jnp.full((p.num_examples,), reduction_weights(p.num_examples, reduction), jnp.float64)
    return _matvec(_k.compiled("output_space_vp", f, likelihood, kind), p, (p.x, p.y, w), what,
                   f"{kind}_vp")


@reference
def ggn_vp(f: Callable, params, x, y, likelihood, *, reduction: str = "mean") -> Callable:
    r"""GGN-vector product ``v -> G v = (1/N) sum_n J_n^T (Lambda_n (J_n v))``.

    One Jacobian-vector product (forward mode), the small output-space products, and one
    vector-Jacobian product (the transpose): seed 003_377ac27c40267f84.txt App. A eq. (43),
    Schraudolph (2002).

    Args:
      f, params, x, y, likelihood, reduction: as in :func:`ggn`.

    Returns:
      ``matvec(v)``: flat ``(d,)`` -> ``(d,)`` float64, jit-compatible.
    """
    return _output_space_vp("ggn", f, params, x, y, likelihood, reduction, "G")


@reference
def fisher_vp(f: Callable, params, x, likelihood, *, reduction: str = "mean") -> Callable:
    r"""Fisher-vector product ``v -> F v = (1/N) sum_n J_n^T (F_out(f_n) (J_n v))``.

    The exact (closed-form expectation) Fisher of :func:`fisher`, matrix-free by
    seed 003_377ac27c40267f84.txt App. A eq. (43).

    Args:
      f, params, x, likelihood, reduction: as in :func:`fisher`.

    Returns:
      ``matvec(v)``: flat ``(d,)`` -> ``(d,)`` float64, jit-compatible.
    """
    return _output_space_vp("fisher", f, params, x, None, likelihood, reduction, "F")


@reference
def empirical_fisher_vp(f: Callable, params, x, y, likelihood, *,
                        reduction: str = "mean") -> Callable:
    r"""Empirical-Fisher-vector product ``v -> (1/N) sum_n g_n (g_n^T v)``.

    ``g_n^T v`` for all ``n`` is one Jacobian-vector product of the vector of per-example
    losses; the sum ``sum_n g_n u_n`` its transpose.

    Args:
      f, params, x, y, likelihood, reduction: as in :func:`empirical_fisher`.

    Returns:
      ``matvec(v)``: flat ``(d,)`` -> ``(d,)`` float64, jit-compatible.
    """
    reduction = check_reduction(reduction)
    p = prepare(f, params, x, y, likelihood)
    w = jnp.full((p.num_examples,), reduction_weights(p.num_examples, reduction), jnp.float64)
    return _matvec(_k.compiled("empirical_fisher_vp", f, likelihood), p, (p.x, p.y, w), "E",
                   "empirical_fisher_vp")


@reference
def fisher_mc_vp(f: Callable, params, x, likelihood, key=None, num_samples: int = 1, *,
                 reduction: str = "mean") -> Callable:
    r"""Monte-Carlo-Fisher-vector product ``v -> hat F v``, with ``hat F`` of :func:`fisher_mc`.

    For the same ``key`` and ``num_samples`` this is exactly ``fisher_mc(...) @ v``: the labels
    are ``Y = likelihood.sample(key, outputs, S)`` (the ones :func:`fisher_mc` draws), and

    .. math::
        \hat F v = w \sum_n J_n^\top \Big(\frac{1}{S} \sum_{s=1}^S r_{ns}\,
        (r_{ns}^\top J_n v)\Big),\qquad r_{ns} = \nabla_f \log p(Y_{sn} \mid f_n),

    with ``w = 1/N`` (mean) or ``1`` (sum): one Jacobian-vector product, the sampled
    output-space Fisher applied without forming it, and one transposed product (seed 003
    eq. (43) with ``F_out`` replaced by its sampled estimate). The labels are drawn once, when
    the product is built, so every call multiplies by the same matrix (a fixed operator, as CG
    needs).

    Args:
      f, params, x, likelihood, reduction: as in :func:`fisher`.
      key: a ``jax.random`` key (required).
      num_samples: ``S >= 1`` sampled labels per example.

    Returns:
      ``matvec(v)``: flat ``(d,)`` -> ``(d,)`` float64, jit-compatible. Cost per call: one
      forward-mode and one reverse-mode pass over the batch (as :func:`fisher_vp`) plus
      ``O(N S C)`` output-space work; memory ``O(N S C)`` for the labels and their gradients.

    References:
      seed 003_377ac27c40267f84.txt §7 and eq. (43); Martens & Grosse, ICML 2015 §5.
    """
    reduction = check_reduction(reduction)
    num_samples = check_num_samples(num_samples)
    key = check_key(key)
    p = prepare(f, params, x, None, likelihood, needs_targets=False)
    labels = jnp.moveaxis(likelihood.sample(key, p.outputs, num_samples), 0, 1)  # (N, S, ...)
    w = jnp.full((p.num_examples,), reduction_weights(p.num_examples, reduction), jnp.float64)
    return _matvec(_k.compiled("output_space_vp", f, likelihood, "fisher_mc"), p,
                   (p.x, labels, w), f"F_mc (S = {num_samples})", "fisher_mc_vp",
                   explain_as="fisher_mc", key=key, num_samples=num_samples)
