r"""Dense curvature matrices and the loss gradient of any JAX model.

Each public function validates its options and the problem once (:func:`~fisherlab.curvature.
_problem.prepare`), then calls the function of the same quantity on the prepared problem
(:func:`gauss_newton_matrix`, :func:`gradient_outer_matrix`, :func:`gradient_vector`,
:func:`hessian_matrix`), which the updates call directly so that a step validates its problem
only once. Conventions: docs/CONVENTIONS.md.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from fisherlab._core.precision import reference
from fisherlab._core.validation import check_key
from fisherlab.curvature import _kernels, _layerwise, _memory, _sharding
from fisherlab.curvature._chunking import balanced_chunk_size
from fisherlab.curvature._finite import check_result
from fisherlab.curvature._problem import (
    Prepared,
    check_chunk_size,
    check_jacobian_mode,
    check_method,
    check_num_samples,
    check_reduction,
    prepare,
)

__all__ = [
    "dense_plan",
    "empirical_fisher",
    "fisher",
    "fisher_mc",
    "gauss_newton_matrix",
    "ggn",
    "gradient",
    "gradient_covariance",
    "gradient_outer_matrix",
    "gradient_vector",
    "hessian",
    "hessian_matrix",
]

_GAUSS_NEWTON = ("ggn", "fisher", "fisher_mc")
#: kinds built from per-example gradient outer products (per token for ``tokens="flatten"``).
_OUTER_PRODUCTS = ("fisher_mc", "empirical_fisher", "gradient_covariance")


def _use_layerwise(p: Prepared, method: str, jacobian: str) -> bool:
    """Whether the layer-wise kernel runs (``method="layerwise"`` on an unsupported model
    raises)."""
    layerwise_ok = _layerwise.supports(p.f, p.params, p.x)
    if method == "layerwise" and not layerwise_ok:
        raise ValueError(
            "method='layerwise' needs f to be a fisherlab.nn.Sequential of Dense layers and "
            "elementwise activations (Tanh, Sigmoid, ReLU, Identity) applied to x of shape "
            f"(N, in_features), got f = {p.f!r} and x of shape {getattr(p.x, 'shape', None)}; "
            "use method='jacobian' (any model)")
    return method == "layerwise" or (method == "auto" and layerwise_ok and jacobian == "auto")


def dense_plan(p: Prepared, kind: str, *, method: str = "auto", jacobian: str = "auto",
               chunk_size=None, num_samples: int = 1, memory_budget=None, mesh=None,
               solve_copies: int = 0, name: str | None = None) -> _memory.Plan:
    """The chunk size and memory estimate of the dense ``kind`` on ``p``; raises
    :class:`~fisherlab.curvature._memory.CurvatureMemoryError` over the budget.

    With a ``mesh`` the estimate is per device (each holds ``N / P`` examples and the result).
    """
    _sharding.check_divisible(p.num_examples, mesh)
    devices = 1 if mesh is None else _sharding._axis_size(*mesh)
    layerwise = kind in _GAUSS_NEWTON and _use_layerwise(p, method, jacobian)
    n, c = p.num_examples, p.num_outputs
    if kind in _OUTER_PRODUCTS and p.tokens == "flatten" and p.num_tokens:
        n, c = n * p.num_tokens, c // p.num_tokens  # the tokens are the examples
    return _memory.plan(kind, f=p.f, num_examples=n // devices,
                        num_outputs=c, num_params=p.num_params,
                        method="layerwise" if layerwise else "jacobian", chunk_size=chunk_size,
                        num_samples=num_samples, solve_copies=solve_copies,
                        memory_budget=memory_budget, name=name or f"fl.{kind}")


def _weights(p: Prepared, reduction: str):
    return jnp.full((p.num_examples,), p.example_weight(reduction), jnp.float64)


def _run(kernel, p: Prepared, extra, reduction: str, mesh, *rest):
    """``kernel(params, (x, extra, w), *rest)``, the batch split over ``mesh`` when given."""
    params = _sharding.place(p.params, mesh, batch=False)
    batch = _sharding.place((p.x, extra, _weights(p, reduction)), mesh, batch=True)
    rest = _sharding.place(rest, mesh, batch=False)
    return kernel(params, batch, *rest)


# ----------------------------------------------------------------------------- prepared problems


def gauss_newton_matrix(p: Prepared, kind: str, *, reduction: str, chunk_size=None,
                        jacobian: str = "auto", method: str = "auto", key=None,
                        num_samples: int = 1, memory_budget=None, mesh=None,
                        solve_copies: int = 0) -> jax.Array:
    """``w sum_n J_n^T Lambda_n J_n`` on a prepared problem, checked finite.

    ``kind`` is ``"ggn"`` (``Lambda_n`` the output Hessian at ``y_n``), ``"fisher"`` (the output
    Fisher) or ``"fisher_mc"`` (the sampled output Fisher; ``key`` and ``num_samples`` already
    validated). The options are validated by the caller; ``mesh`` is ``None`` or the
    ``(mesh, axis)`` the batch is split over; the memory plan is checked first.
    """
    plan = dense_plan(p, kind, method=method, jacobian=jacobian, chunk_size=chunk_size,
                      num_samples=num_samples, memory_budget=memory_budget, mesh=mesh,
                      solve_copies=solve_copies)
    if kind == "fisher_mc":  # sampled gradient outer products: per token for tokens="flatten"
        p = p.outer_product_problem()
        extra = jax.random.split(key, p.num_examples)
    elif kind == "ggn":
        extra = p.y
    else:
        extra = None
    if _use_layerwise(p, method, jacobian):
        run = _kernels.compiled("layerwise", p.f, p.likelihood, kind, num_samples,
                                plan.chunk_size, mesh=mesh)
    else:
        mode = _kernels.resolve_mode(jacobian, p.num_outputs, p.num_params)
        run = _kernels.compiled("gauss_newton", p.f, p.likelihood, kind, mode, num_samples,
                                plan.chunk_size, mesh=mesh)
    return check_result(_run(run, p, extra, reduction, mesh), f"fl.{kind}", p, kind, key=key,
                        num_samples=num_samples)


def gradient_outer_matrix(p: Prepared, *, reduction: str, chunk_size=None,
                          centered: bool = False, memory_budget=None, mesh=None,
                          solve_copies: int = 0) -> jax.Array:
    """``w sum_n (g_n - c)(g_n - c)^T`` on a prepared problem: ``c = 0`` (empirical Fisher) or
    the mean gradient (``centered``, the gradient covariance), checked finite."""
    kind = "gradient_covariance" if centered else "empirical_fisher"
    plan = dense_plan(p, kind, chunk_size=chunk_size, memory_budget=memory_budget, mesh=mesh,
                      solve_copies=solve_copies)
    p = p.outer_product_problem()  # per token for tokens="flatten"
    if centered:
        # Two passes (mean gradient first), so no cancellation between E[g g^T] and gbar gbar^T;
        # a non-finite mean gradient shows in the result, which is checked below.
        shift = _run(_gradient_kernel(p, None, mesh), p, p.y, "mean", mesh)
    else:
        shift = jnp.zeros((p.num_params,), jnp.float64)
    run = _kernels.compiled("gradient_outer", p.f, p.likelihood, plan.chunk_size, mesh=mesh)
    return check_result(_run(run, p, p.y, reduction, mesh, shift), f"fl.{kind}", p, kind)


def _gradient_kernel(p: Prepared, chunk_size, mesh):
    _sharding.check_divisible(p.num_examples, mesh)
    n_local = p.num_examples // (1 if mesh is None else _sharding._axis_size(*mesh))
    b = balanced_chunk_size(n_local, chunk_size or n_local)
    return _kernels.compiled("gradient", p.f, p.likelihood, b, mesh=mesh)


def gradient_vector(p: Prepared, *, reduction: str, chunk_size=None, mesh=None) -> jax.Array:
    """The loss gradient ``w sum_n g_n`` ``(d,)`` on a prepared problem, checked finite."""
    out = _run(_gradient_kernel(p, chunk_size, mesh), p, p.y, reduction, mesh)
    return check_result(out, "fl.gradient", p, "gradient")


def hessian_matrix(p: Prepared, *, reduction: str, chunk_size=None, memory_budget=None,
                   mesh=None, solve_copies: int = 0) -> jax.Array:
    """The loss Hessian ``(d, d)`` on a prepared problem, checked finite."""
    plan = dense_plan(p, "hessian", chunk_size=chunk_size, memory_budget=memory_budget,
                      mesh=mesh, solve_copies=solve_copies)
    run = _kernels.compiled("hessian", p.f, p.likelihood, plan.chunk_size, mesh=mesh)
    return check_result(_run(run, p, p.y, reduction, mesh), "fl.hessian", p, "hessian")


# ----------------------------------------------------------------------------- public


def _prepare(f, params, x, y, likelihood, *, needs_targets=True, tokens="sum"):
    """``(prepared problem, mesh)``: the mesh axis ``x``'s batch is sharded over, if any."""
    mesh = _sharding.batch_mesh(x)
    return prepare(f, params, x, y, likelihood, needs_targets=needs_targets,
                   tokens=tokens), mesh


def _gauss_newton(kind, f, params, x, y, likelihood, reduction, chunk_size, jacobian, method,
                  tokens, memory_budget, key=None, num_samples=1):
    reduction = check_reduction(reduction)
    chunk_size = check_chunk_size(chunk_size)
    jacobian = check_jacobian_mode(jacobian)
    method = check_method(method)
    memory_budget = _memory.check_memory_budget(memory_budget)
    if kind == "fisher_mc":
        num_samples = check_num_samples(num_samples)
        key = check_key(key)
    p, mesh = _prepare(f, params, x, y, likelihood, needs_targets=(kind == "ggn"),
                       tokens=tokens)
    return gauss_newton_matrix(p, kind, reduction=reduction, chunk_size=chunk_size,
                               jacobian=jacobian, method=method, key=key,
                               num_samples=num_samples, memory_budget=memory_budget, mesh=mesh)


@reference
def ggn(f: Callable, params, x, y, likelihood, *, reduction: str = "mean",
        chunk_size: int | None = None, jacobian: str = "auto", method: str = "auto",
        tokens: str = "sum", memory_budget: int | float | str | None = None) -> jax.Array:
    r"""Generalized Gauss-Newton matrix of the loss.

    The Hessian with the model's second derivatives dropped: with ``Lambda_n`` the Hessian of
    ``-log p(y_n | f)`` in the outputs at the data target ``y_n``,

    .. math:: G = w \sum_n J_n^\top \Lambda_n J_n,\qquad
              H = G + w \sum_n \sum_c \frac{\partial l_n}{\partial f_c}\,\nabla^2_\theta f_c .

    For a likelihood in natural parameters ``Lambda_n`` does not depend on ``y_n`` and ``G``
    equals :func:`fisher` exactly. Notation, reduction ``w`` and parameter order:
    docs/CONVENTIONS.md.

    Args:
      f: single-example model ``f(params, x_n) -> (C,)``, or per token ``(R, C)`` (one row
        per token; the example's loss sums its ``R`` token losses).
      params: pytree of floating-point arrays (cast to float64).
      x: inputs, leading axis ``N`` (an array or a pytree of arrays).
      y: targets, leading axis ``N``, in ``likelihood``'s format (per token: ``(N, R, ...)``).
      likelihood: a fisherlab likelihood, e.g. ``fl.Categorical()``.
      reduction: ``"mean"`` (default, ``w = 1/N``) or ``"sum"`` (``w = 1``).
      chunk_size: examples per chunk (default: the largest whose intermediates fit in 512 MiB
        and in the memory budget, spread evenly over the examples); the result does not
        depend on it beyond rounding.
      jacobian: ``"auto"`` (reverse mode when ``C < d``, else forward), ``"forward"`` or
        ``"reverse"``; a value other than ``"auto"`` selects ``method="jacobian"``.
      method: ``"jacobian"`` (any model: per-example Jacobians, ``J^T (Lambda J)``, about
        ``2 N C d^2`` flops, memory ``O(chunk_size C d + d^2)``), ``"layerwise"``
        (a ``fl.nn.Sequential`` of Dense layers and elementwise activations: the exact
        Kronecker-structured blocks, about ``2 N d^2`` flops) or ``"auto"`` (layer-wise when
        the model qualifies; never for per-token outputs). Both multiply out only the blocks
        on and above the diagonal (about half of those flops) and mirror them.
      tokens: for per-token outputs: ``"sum"`` (default: an example is a sequence, its loss
        the sum of its token losses) or ``"flatten"`` (the ``N R`` tokens are the examples, as
        PyTorch's ``loss(out.flatten(0, 1), y.flatten(0, 1))``: ``reduction="mean"`` divides
        by ``N R``, and the empirical Fisher, gradient covariance and Monte-Carlo Fisher are
        built from per-token gradients). docs/CONVENTIONS.md, "Per-token outputs".
      memory_budget: bytes the computation may use (a number, or a string such as ``"16GB"``;
        default: the environment variable ``FISHERLAB_MEMORY_BUDGET``, else 90% of the free
        memory of the device or host). When the estimated peak is over it, a
        ``CurvatureMemoryError`` (a ``MemoryError`` and a ``ValueError``) is raised before
        anything is allocated, naming the bytes needed and the matrix-free alternatives.

    A batch ``x`` sharded over a device mesh (a ``jax.sharding.NamedSharding`` splitting its
    leading axis) is reduced on each device and summed across devices once
    (docs/multi_device.md).

    Returns:
      ``(d, d)`` float64 symmetric matrix (exactly symmetric).

    References:
      M. Johnson, "Natural gradients and K-FAC" (note, 2017), App. A eqs. (40)-(42); N. N.
      Schraudolph, "Fast curvature matrix-vector products for second-order gradient descent",
      Neural Computation 14(7), 2002; J. Martens, "New insights and perspectives on
      the natural gradient method", JMLR 21, 2020, §9.

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jnp.ones((4, 3)); y = jnp.array([0, 1, 1, 0])
    >>> fl.ggn(model, params, x, y, fl.Categorical()).shape
    (8, 8)

    Derivations: ``fisher_ggn.expected_hessian``, ``fisher_ggn.natural_parameters``,
    ``invariance.newton``, ``pullback_metric.general``.
    """
    return _gauss_newton("ggn", f, params, x, y, likelihood, reduction, chunk_size, jacobian,
                         method, tokens, memory_budget)


@reference
def fisher(f: Callable, params, x, likelihood, *, reduction: str = "mean",
           chunk_size: int | None = None, jacobian: str = "auto", method: str = "auto",
           tokens: str = "sum", memory_budget: int | float | str | None = None) -> jax.Array:
    r"""Fisher information (the exact, "true" Fisher) of the model's predictive distribution.

    The expectation over ``y ~ p(. | f_n)`` is taken in closed form through the likelihood's
    output-space Fisher ``F_out`` (``grad^2 A(eta)`` for an exponential family in natural
    parameters), so no labels are needed:

    .. math:: F = w \sum_n \mathbb{E}_{y \sim p(\cdot\mid f_n)}\big[\nabla_\theta \log p\,
              \nabla_\theta \log p^\top\big] = w \sum_n J_n^\top F_{\rm out}(f_n) J_n .

    Args:
      f, params, x, likelihood, reduction, chunk_size: as in :func:`ggn`.
      jacobian, method, tokens, memory_budget: as in :func:`ggn`.

    Returns:
      ``(d, d)`` float64 symmetric positive semi-definite matrix.

    References:
      M. Johnson, "Natural gradients and K-FAC" (note, 2017), §3, §7 eq. (19) and App. A;
      J. Martens, "New insights and perspectives on the natural gradient method", JMLR 21,
      2020, §9.2; F. Kunstner, L. Balles & P. Hennig, "Limitations of the empirical Fisher
      approximation for natural gradient descent", NeurIPS 2019.

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> F = fl.fisher(model, params, jnp.ones((4, 3)), fl.Categorical())
    >>> F.shape, F.dtype
    ((8, 8), dtype('float64'))

    Derivations: ``empirical_fisher_failure.linear_regression``, ``fisher_ggn.expected_hessian``,
    ``fisher_ggn.natural_parameters``, ``fisher_psd.score_covariance``,
    ``invariance.natural_gradient``, ``invariance.smooth_reparameterization``,
    ``pullback_metric.general``.
    """
    return _gauss_newton("fisher", f, params, x, None, likelihood, reduction, chunk_size,
                         jacobian, method, tokens, memory_budget)


@reference
def fisher_mc(f: Callable, params, x, likelihood, key=None, num_samples: int = 1, *,
              reduction: str = "mean", chunk_size: int | None = None,
              jacobian: str = "auto", method: str = "auto",
              tokens: str = "sum", memory_budget: int | float | str | None = None) -> jax.Array:
    r"""Monte-Carlo Fisher: the expectation of :func:`fisher` replaced by ``S`` samples.

    .. math::
        \hat F = \frac{w}{S} \sum_n \sum_{s=1}^S \hat g_{ns} \hat g_{ns}^\top,\qquad
        \hat g_{ns} = \nabla_\theta \log p(\hat y_{ns} \mid f(\theta, x_n)),\
        \hat y_{ns} \sim p(\cdot \mid f(\theta, x_n)).

    ``E[hat F] = F`` and each entry's variance decays as ``1/S``. The labels are exactly
    ``likelihood.sample(key, outputs, num_samples)`` (one key per example,
    ``jax.random.split(key, N)``), so the estimate does not depend on ``chunk_size``. Per-token
    outputs draw each token's labels independently (keys in docs/CONVENTIONS.md, "Per-token
    outputs").

    Args:
      f, params, x, likelihood, reduction, chunk_size: as in :func:`ggn`.
      jacobian, method, tokens, memory_budget: as in :func:`ggn`.
      key: a ``jax.random`` key (required).
      num_samples: ``S >= 1`` sampled labels per example.

    Returns:
      ``(d, d)`` float64 symmetric positive semi-definite matrix.

    References:
      J. Martens & R. Grosse, "Optimizing neural networks with Kronecker-factored approximate
      curvature", ICML 2015, §5; M. Johnson, "Natural gradients and K-FAC" (note, 2017), §7;
      Kunstner, Balles & Hennig (NeurIPS 2019).

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> fl.fisher_mc(model, params, jnp.ones((4, 3)), fl.Categorical(), jax.random.key(1),
    ...              num_samples=8).shape
    (8, 8)

    Derivations: ``pullback_sampling.pseudo_gradient_covariance``.
    """
    return _gauss_newton("fisher_mc", f, params, x, None, likelihood, reduction, chunk_size,
                         jacobian, method, tokens, memory_budget, key=key,
                         num_samples=num_samples)


def _gradient_outer(f, params, x, y, likelihood, reduction, chunk_size, centered, tokens,
                    memory_budget):
    reduction = check_reduction(reduction)
    chunk_size = check_chunk_size(chunk_size)
    memory_budget = _memory.check_memory_budget(memory_budget)
    p, mesh = _prepare(f, params, x, y, likelihood, tokens=tokens)
    return gradient_outer_matrix(p, reduction=reduction, chunk_size=chunk_size,
                                 centered=centered, memory_budget=memory_budget, mesh=mesh)


@reference
def empirical_fisher(f: Callable, params, x, y, likelihood, *, reduction: str = "mean",
                     chunk_size: int | None = None, tokens: str = "sum",
                     memory_budget: int | float | str | None = None) -> jax.Array:
    r"""Empirical Fisher: the uncentered second moment of the per-example gradients.

    .. math:: E = w \sum_n g_n g_n^\top,\qquad g_n = \nabla_\theta\big(-\log p(y_n \mid
              f(\theta, x_n))\big)

    at the **data** targets ``y_n``, not at samples from the model: ``E`` is *not* the Fisher
    (Kunstner et al., 2019), and not the covariance of the gradients
    (:func:`gradient_covariance`). Cost: ``N`` backward passes and ``2 N d^2`` flops.

    Args:
      f, params, x, y, likelihood, reduction, chunk_size, tokens, memory_budget: as in
        :func:`ggn`.

    Returns:
      ``(d, d)`` float64 symmetric positive semi-definite matrix.

    References:
      F. Kunstner, L. Balles & P. Hennig, "Limitations of the empirical Fisher approximation
      for natural gradient descent", NeurIPS 2019; T. George, "What is the empirical Fisher?"
      (blog post, 2018); J. Martens, JMLR 21, 2020, §11.

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jnp.ones((4, 3)); y = jnp.array([0, 1, 1, 0])
    >>> fl.empirical_fisher(model, params, x, y, fl.Categorical()).shape
    (8, 8)

    Derivations: ``empirical_fisher_failure.linear_regression``.
    """
    return _gradient_outer(f, params, x, y, likelihood, reduction, chunk_size, False,
                           tokens, memory_budget)


@reference
def gradient_covariance(f: Callable, params, x, y, likelihood, *, reduction: str = "mean",
                        chunk_size: int | None = None, tokens: str = "sum",
                        memory_budget: int | float | str | None = None) -> jax.Array:
    r"""Centered empirical Fisher: the population covariance of the per-example gradients.

    .. math::
        \Sigma = \frac1N \sum_n (g_n - \bar g)(g_n - \bar g)^\top
               = E - \bar g \bar g^\top,\qquad \bar g = \nabla L = \frac1N\sum_n g_n .

    The normalisation is ``1/N`` (not ``1/(N-1)``); ``reduction="sum"`` gives ``N Sigma``
    (``gbar`` stays the mean gradient). Computed in two passes (``gbar`` first), so there is no
    cancellation between ``E`` and ``gbar gbar^T``.

    Args:
      f, params, x, y, likelihood, reduction, chunk_size, tokens, memory_budget: as in
        :func:`ggn`.

    Returns:
      ``(d, d)`` float64 symmetric positive semi-definite matrix.

    References:
      Kunstner, Balles & Hennig (NeurIPS 2019), §3.

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jnp.ones((4, 3)); y = jnp.array([0, 1, 1, 0])
    >>> fl.gradient_covariance(model, params, x, y, fl.Categorical()).shape
    (8, 8)
    """
    return _gradient_outer(f, params, x, y, likelihood, reduction, chunk_size, True,
                           tokens, memory_budget)


@reference
def gradient(f: Callable, params, x, y, likelihood, *, reduction: str = "mean",
             chunk_size: int | None = None, tokens: str = "sum") -> jax.Array:
    r"""Gradient of the loss.

    .. math:: \nabla L = w \sum_n g_n

    Args:
      f, params, x, y, likelihood, reduction, chunk_size, tokens: as in :func:`ggn`.

    Returns:
      ``(d,)`` float64 vector.

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jnp.ones((4, 3)); y = jnp.array([0, 1, 1, 0])
    >>> fl.gradient(model, params, x, y, fl.Categorical()).shape
    (8,)

    Derivations: ``invariance.natural_gradient``.
    """
    reduction = check_reduction(reduction)
    chunk_size = check_chunk_size(chunk_size)
    p, mesh = _prepare(f, params, x, y, likelihood, tokens=tokens)
    return gradient_vector(p, reduction=reduction, chunk_size=chunk_size, mesh=mesh)


@reference
def hessian(f: Callable, params, x, y, likelihood, *, reduction: str = "mean",
            chunk_size: int | None = None,
            tokens: str = "sum", memory_budget: int | float | str | None = None) -> jax.Array:
    r"""Hessian of the loss.

    .. math:: H = \nabla^2 L = G + w \sum_n \sum_c \frac{\partial l_n}{\partial f_c}\,
              \nabla^2_\theta f_{n,c}

    It includes the model-curvature term that :func:`ggn` drops. Computed by
    forward-over-reverse differentiation (``jax.hessian``) of each chunk's weighted loss,
    summed over chunks.

    Args:
      f, params, x, y, likelihood, reduction, chunk_size, tokens, memory_budget: as in
        :func:`ggn`
        (the chunk budget assumes ``64 d`` float64 intermediates per example).

    Returns:
      ``(d, d)`` float64 symmetric matrix.

    References:
      M. Johnson, "Natural gradients and K-FAC" (note, 2017), App. A eq. (40).

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jnp.ones((4, 3)); y = jnp.array([0, 1, 1, 0])
    >>> fl.hessian(model, params, x, y, fl.Categorical()).shape
    (8, 8)

    Derivations: ``empirical_fisher_failure.linear_regression``, ``fisher_ggn.expected_hessian``,
    ``fisher_ggn.natural_parameters``, ``invariance.newton``.
    """
    reduction = check_reduction(reduction)
    chunk_size = check_chunk_size(chunk_size)
    memory_budget = _memory.check_memory_budget(memory_budget)
    p, mesh = _prepare(f, params, x, y, likelihood, tokens=tokens)
    return hessian_matrix(p, reduction=reduction, chunk_size=chunk_size,
                          memory_budget=memory_budget, mesh=mesh)
