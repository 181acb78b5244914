r"""Matrix-free curvature products ``v -> M v`` (no ``d x d`` matrix is formed).

Each public function validates the problem once and returns a closure ``matvec(v)`` on flat
``(d,)`` vectors (docs/CONVENTIONS.md, "Parameter order"); every call checks ``v`` and the
finiteness of the product. :func:`product_on` builds the same closure on an already prepared
problem (used by the Hessian-free update). A batch sharded over a device mesh
(:mod:`fisherlab.curvature._sharding`) is multiplied on each device and the ``(d,)`` partial
products summed across devices once.
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

from fisherlab._core.precision import reference
from fisherlab._core.validation import check_key
from fisherlab.curvature import _kernels, _sharding
from fisherlab.curvature._finite import check_result
from fisherlab.curvature._problem import (
    Prepared,
    check_num_samples,
    check_reduction,
    check_vector,
    prepare,
)

__all__ = ["empirical_fisher_vp", "fisher_mc_vp", "fisher_vp", "ggn_vp", "hvp", "product_on"]

_SYMBOL = {"hvp": "H", "ggn_vp": "G", "fisher_vp": "F", "empirical_fisher_vp": "E"}


def _matvec(kernel, p: Prepared, batch, what: str, kind: str, *, mesh=None,
            explain_as: str | None = None, **explain_kw):
    """The checked closure ``v -> kernel(params, batch, v)``.

    ``batch = (x, y, w)`` is placed on ``mesh`` (split along the examples) once, here;
    ``explain_as``/``explain_kw``: the quantity (and its key, sample count) that
    :func:`~fisherlab.curvature._finite.check_result` explains when a product is not finite
    (default ``kind``).
    """
    d = p.num_params
    _sharding.check_divisible(p.num_examples, mesh)
    params = _sharding.place(p.params, mesh, batch=False)
    batch = _sharding.place(batch, mesh, batch=True)

    @reference
    def matvec(v):
        v = check_vector(v, d, "v")
        out = kernel(params, batch, _sharding.place(v, mesh, batch=False))
        return check_result(out, f"the fl.{kind} matvec", p, explain_as or kind, v=v,
                            **explain_kw)

    matvec.__doc__ = (f"``v -> {what} v`` for a flat float vector ``v`` of shape ({d},) in "
                      "ravel_pytree(params) order; returns float64 (d,).")
    matvec.num_params = d
    return matvec


def _weights(p: Prepared, reduction: str):
    return jnp.full((p.num_examples,), p.example_weight(reduction), jnp.float64)


def product_on(p: Prepared, kind: str, *, reduction: str, mesh=None) -> Callable:
    """The checked product ``v -> M v`` on a prepared problem.

    ``kind``: ``"hvp"``, ``"ggn_vp"``, ``"fisher_vp"`` or ``"empirical_fisher_vp"``;
    ``reduction`` already validated; ``mesh``: the ``(mesh, axis)`` the batch is split over.
    """
    if kind == "empirical_fisher_vp":  # per token for tokens="flatten"
        p = p.outer_product_problem()
    w = _weights(p, reduction)
    if kind == "hvp":
        kernel = _kernels.compiled("hvp", p.f, p.likelihood, mesh=mesh)
        y = p.y
    elif kind == "empirical_fisher_vp":
        kernel = _kernels.compiled("empirical_fisher_vp", p.f, p.likelihood, mesh=mesh)
        y = p.y
    else:
        output_kind = kind[:-len("_vp")]
        kernel = _kernels.compiled("output_space_vp", p.f, p.likelihood, output_kind, mesh=mesh)
        y = p.y if output_kind == "ggn" else None
    return _matvec(kernel, p, (p.x, y, w), _SYMBOL[kind], kind, mesh=mesh)


def _prepare(f, params, x, y, likelihood, *, needs_targets=True, tokens="sum"):
    """``(prepared problem, mesh)``: the mesh axis ``x``'s batch is sharded over, if any."""
    mesh = _sharding.batch_mesh(x)
    return prepare(f, params, x, y, likelihood, needs_targets=needs_targets,
                   tokens=tokens), mesh


@reference
def hvp(f: Callable, params, x, y, likelihood, *, reduction: str = "mean",
        tokens: str = "sum") -> Callable:
    r"""Hessian-vector product ``v -> H v``: forward-over-reverse, the ``jvp`` of ``grad L``.

    Args:
      f, params, x, y, likelihood, reduction, tokens: as in :func:`fisherlab.hessian`.

    Returns:
      ``matvec(v)``: a flat ``(d,)`` vector to ``(d,)`` float64; jit-compatible; a ``v`` of
      the wrong shape raises ``ValueError``.

    References:
      B. A. Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation 6(1),
      1994.

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jnp.ones((4, 3)); y = jnp.array([0, 1, 1, 0])
    >>> fl.hvp(model, params, x, y, fl.Categorical())(jnp.ones(8)).shape
    (8,)

    Derivations: ``matrix_free.fisher_vector_product``.
    """
    reduction = check_reduction(reduction)
    p, mesh = _prepare(f, params, x, y, likelihood, tokens=tokens)
    return product_on(p, "hvp", reduction=reduction, mesh=mesh)


@reference
def ggn_vp(f: Callable, params, x, y, likelihood, *, reduction: str = "mean",
           tokens: str = "sum") -> Callable:
    r"""GGN-vector product ``v -> G v``.

    .. math:: G v = w \sum_n J_n^\top \big(\Lambda_n (J_n v)\big)

    One Jacobian-vector product (forward mode), the small output-space products, and one
    vector-Jacobian product (its transpose).

    Args:
      f, params, x, y, likelihood, reduction, tokens: as in :func:`fisherlab.ggn`.

    Returns:
      ``matvec(v)``: a flat ``(d,)`` vector to ``(d,)`` float64; jit-compatible.

    References:
      N. N. Schraudolph, "Fast curvature matrix-vector products for second-order gradient
      descent", Neural Computation 14(7), 2002; M. Johnson, "Natural gradients and K-FAC"
      (note, 2017), App. A eq. (43).

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jnp.ones((4, 3)); y = jnp.array([0, 1, 1, 0])
    >>> fl.ggn_vp(model, params, x, y, fl.Categorical())(jnp.ones(8)).shape
    (8,)

    Derivations: ``matrix_free.fisher_vector_product``.
    """
    reduction = check_reduction(reduction)
    p, mesh = _prepare(f, params, x, y, likelihood, tokens=tokens)
    return product_on(p, "ggn_vp", reduction=reduction, mesh=mesh)


@reference
def fisher_vp(f: Callable, params, x, likelihood, *, reduction: str = "mean",
              tokens: str = "sum") -> Callable:
    r"""Fisher-vector product ``v -> F v`` with the exact Fisher of :func:`fisherlab.fisher`.

    .. math:: F v = w \sum_n J_n^\top \big(F_{\rm out}(f_n) (J_n v)\big)

    Args:
      f, params, x, likelihood, reduction, tokens: as in :func:`fisherlab.fisher`.

    Returns:
      ``matvec(v)``: a flat ``(d,)`` vector to ``(d,)`` float64; jit-compatible.

    References:
      Schraudolph (Neural Computation, 2002); M. Johnson, "Natural gradients and K-FAC" (note,
      2017), App. A eq. (43).

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> fl.fisher_vp(model, params, jnp.ones((4, 3)), fl.Categorical())(jnp.ones(8)).shape
    (8,)

    Derivations: ``matrix_free.fisher_vector_product``.
    """
    reduction = check_reduction(reduction)
    p, mesh = _prepare(f, params, x, None, likelihood, needs_targets=False, tokens=tokens)
    return product_on(p, "fisher_vp", reduction=reduction, mesh=mesh)


@reference
def empirical_fisher_vp(f: Callable, params, x, y, likelihood, *,
                        reduction: str = "mean", tokens: str = "sum") -> Callable:
    r"""Empirical-Fisher-vector product ``v -> E v``.

    .. math:: E v = w \sum_n g_n (g_n^\top v)

    ``g_n^T v`` for all ``n`` is one Jacobian-vector product of the vector of per-example
    losses; the sum ``sum_n g_n u_n`` is its transpose.

    Args:
      f, params, x, y, likelihood, reduction, tokens: as in :func:`fisherlab.empirical_fisher`.

    Returns:
      ``matvec(v)``: a flat ``(d,)`` vector to ``(d,)`` float64; jit-compatible.

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jnp.ones((4, 3)); y = jnp.array([0, 1, 1, 0])
    >>> fl.empirical_fisher_vp(model, params, x, y, fl.Categorical())(jnp.ones(8)).shape
    (8,)
    """
    reduction = check_reduction(reduction)
    p, mesh = _prepare(f, params, x, y, likelihood, tokens=tokens)
    return product_on(p, "empirical_fisher_vp", reduction=reduction, mesh=mesh)


@reference
def fisher_mc_vp(f: Callable, params, x, likelihood, key=None, num_samples: int = 1, *,
                 reduction: str = "mean", tokens: str = "sum") -> Callable:
    r"""Monte-Carlo-Fisher-vector product ``v -> hat F v``, with ``hat F`` of
    :func:`fisherlab.fisher_mc`.

    For the same ``key`` and ``num_samples`` this is exactly ``fisher_mc(...) @ v``: the labels
    are ``Y = likelihood.sample(key, outputs, S)``, drawn once when the product is built, so
    every call multiplies by the same matrix (a fixed operator, as conjugate gradient needs):

    .. math::
        \hat F v = w \sum_n J_n^\top \Big(\frac{1}{S} \sum_{s=1}^S r_{ns}\,
        (r_{ns}^\top J_n v)\Big),\qquad r_{ns} = \nabla_f \log p(Y_{sn} \mid f_n).

    Args:
      f, params, x, likelihood, reduction, tokens: as in :func:`fisherlab.fisher`.
      key: a ``jax.random`` key (required).
      num_samples: ``S >= 1`` sampled labels per example.

    Returns:
      ``matvec(v)``: a flat ``(d,)`` vector to ``(d,)`` float64; jit-compatible. Per call: one
      forward-mode and one reverse-mode pass over the batch plus ``O(N S C)`` output-space
      work.

    References:
      J. Martens & R. Grosse, "Optimizing neural networks with Kronecker-factored approximate
      curvature", ICML 2015, §5; Schraudolph (Neural Computation, 2002).

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> mv = fl.fisher_mc_vp(model, params, jnp.ones((4, 3)), fl.Categorical(),
    ...                      jax.random.key(1), num_samples=2)
    >>> mv(jnp.ones(8)).shape
    (8,)
    """
    reduction = check_reduction(reduction)
    num_samples = check_num_samples(num_samples)
    key = check_key(key)
    p, mesh = _prepare(f, params, x, None, likelihood, needs_targets=False, tokens=tokens)
    p = p.outer_product_problem()  # per token for tokens="flatten"
    labels = jnp.moveaxis(p.likelihood.sample(key, p.outputs, num_samples), 0, 1)  # (N, S, ...)
    return _matvec(_kernels.compiled("output_space_vp", p.f, p.likelihood, "fisher_mc",
                                     mesh=mesh),
                   p, (p.x, labels, _weights(p, reduction)), f"F_mc (S = {num_samples})",
                   "fisher_mc_vp", mesh=mesh, explain_as="fisher_mc", key=key,
                   num_samples=num_samples)
