r"""Optax gradient transformations for the reference updates (``fl.optax``; optax optional).

Each factory returns an ``optax.GradientTransformationExtraArgs`` whose ``update`` needs the
problem the curvature is taken on: the transformation is *built* with the model and the
likelihood, and *called* with the batch as optax extra arguments::

    tx = fl.optax.natural_gradient(model, fl.Categorical(), lr=0.1, damping=1e-3)
    state = tx.init(params)
    grads = jax.grad(loss)(params, x, y)                 # gradient of the mean NLL
    updates, state = tx.update(grads, state, params, x=x, y=y)
    params = optax.apply_updates(params, updates)        # theta + delta

``update(grads, state, params, *, x, y)`` preconditions the incoming ``grads`` with the damped
curvature at ``params`` on the batch ``(x, y)`` and scales by ``-lr``:

.. math:: \delta = -\alpha\,(M + \lambda I)^{-1}\,\text{grads}

When ``grads`` is the gradient of the mean negative log-likelihood
``L`` (docs/CONVENTIONS.md), ``delta`` is
exactly the step of the matching ``fl.updates`` function (tested step for step). The
transformations compose with ``optax.chain`` (other transformations receive and ignore the
extra arguments) and work under ``jax.jit``.

The matrices are dense (``d x d``): these are *reference* optimizers for small models.

References: see :mod:`fisherlab.updates`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from fisherlab import curvature
from fisherlab._core.precision import reference
from fisherlab._core.validation import check_choice
from fisherlab.kfac import ema as kfac_ema
from fisherlab.kfac import factors as kfac_factors
from fisherlab.kfac import solve as kfac_solve
from fisherlab.updates._linalg import dense_solve
from fisherlab.updates._problem import as_float64_tree, check_damping, check_lr, flat_vector

__all__ = ["natural_gradient", "empirical_fisher", "kfac", "KFACState"]


def _optax():
    try:
        import optax
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "fl.optax needs the optional dependency optax: pip install optax "
            "(or pip install 'fisherlab[optax]')") from exc
    return optax


def _require(params, x, y):
    if params is None:
        raise ValueError("update() needs params (the point the curvature is taken at): call "
                         "tx.update(grads, state, params, x=x, y=y)")
    if x is None or y is None:
        raise ValueError("update() needs the batch as keyword arguments x=... and y=... "
                         "(optax extra args), got "
                         f"x={'None' if x is None else 'given'}, "
                         f"y={'None' if y is None else 'given'}")


def _dense_transform(kind, f, likelihood, lr, damping, reduction, tokens="sum"):
    optax = _optax()
    lr = check_lr(lr)
    damping = check_damping(damping)

    def init(params):
        del params
        return optax.EmptyState()

    @reference
    def update(grads, state, params=None, *, x=None, y=None, **extra):
        del extra
        _require(params, x, y)
        params64 = as_float64_tree(params)
        if kind == "fisher":
            M = curvature.fisher(f, params64, x, likelihood, reduction=reduction, tokens=tokens)
            name = "the Fisher"
        else:
            M = curvature.empirical_fisher(f, params64, x, y, likelihood, reduction=reduction,
                                           tokens=tokens)
            name = "the empirical Fisher"
        g, unravel = flat_vector(grads)
        p = dense_solve(M, g, damping, psd=True, name=name)
        return unravel(-lr * p), state

    return optax.GradientTransformationExtraArgs(init, update)


def natural_gradient(f, likelihood, *, lr, damping, reduction: str = "mean",
                     tokens: str = "sum"):
    r"""Natural-gradient descent as an optax transformation.

    ``update(grads, state, params, *, x, y)`` returns ``-lr (F + damping I)^{-1} grads`` with
    ``F = fl.fisher(f, params, x, likelihood)`` (exact Fisher, mean reduction by default);
    equal to ``fl.updates.natural_gradient`` when ``grads`` is the gradient of the mean NLL.

    Args:
      f: single-example model ``f(params, x_n) -> (C,)``.
      likelihood: a fisherlab likelihood.
      lr: ``> 0``.
      damping: ``>= 0``.
      reduction: ``"mean"`` or ``"sum"`` (of the Fisher).
      tokens: ``"sum"`` (default) or ``"flatten"`` for per-token outputs, as in
        :func:`fisherlab.ggn` (``"flatten"``: the Fisher of the mean over all tokens).

    Returns:
      ``optax.GradientTransformationExtraArgs`` (state: ``optax.EmptyState``).

    References:
      S. Amari, "Natural gradient works efficiently in learning", Neural Computation 10(2),
      1998; M. Johnson, "Natural gradients and K-FAC" (note, 2017), §4 eq. (17).

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jnp.ones((4, 3)); y = jnp.array([0, 1, 1, 0])
    >>> tx = fl.optax.natural_gradient(model, fl.Categorical(), lr=1.0, damping=1e-3)
    >>> grads = [(jnp.ones((2, 3)), jnp.ones(2))]
    >>> updates, state = tx.update(grads, tx.init(params), params, x=x, y=y)
    >>> [u.shape for u in updates[0]]
    [(2, 3), (2,)]
    """
    check_choice(reduction, "reduction", ("mean", "sum"))
    check_choice(tokens, "tokens", ("sum", "flatten"))
    return _dense_transform("fisher", f, likelihood, lr, damping, reduction, tokens)


def empirical_fisher(f, likelihood, *, lr, damping, reduction: str = "mean",
                     tokens: str = "sum"):
    r"""Empirical-Fisher preconditioned descent as an optax transformation.

    ``update(grads, state, params, *, x, y)`` returns ``-lr (E + damping I)^{-1} grads`` with
    ``E = fl.empirical_fisher(f, params, x, y, likelihood)``; equal to
    ``fl.updates.empirical_fisher_update`` when ``grads`` is the gradient of the mean NLL.

    Args:
      f, likelihood, lr, damping, reduction, tokens: as in :func:`natural_gradient`.

    Returns:
      ``optax.GradientTransformationExtraArgs`` (state: ``optax.EmptyState``).

    References:
      T. George, "What is the empirical Fisher?" (blog post, 2018); F. Kunstner, L. Balles &
      P. Hennig, "Limitations of the empirical Fisher approximation for natural gradient
      descent", NeurIPS 2019.

    Derivations: ``empirical_fisher_update.constrained_problem``,
    ``empirical_fisher_update.constraint_expansion``, ``empirical_fisher_update.damped_step``,
    ``empirical_fisher_update.invariance``.
    """
    check_choice(reduction, "reduction", ("mean", "sum"))
    check_choice(tokens, "tokens", ("sum", "flatten"))
    return _dense_transform("empirical_fisher", f, likelihood, lr, damping, reduction, tokens)


class KFACState(NamedTuple):
    """State of :func:`kfac`: ``count`` steps taken and the running ``factors`` (or ``None``)."""

    count: Any
    factors: Any


def kfac(model, likelihood, *, lr, damping, method: str = "exact", fisher_type: str = "exact",
         approx: str = "expand", bias: str = "augmented", decay: float | None = None,
         num_samples: int = 1, tokens: str = "sum"):
    r"""K-FAC as an optax transformation.

    ``update(grads, state, params, *, x, y, key=None)`` computes ``fl.kfac.factors`` on the
    batch, optionally averages them into the state
    (``factors_t = decay * factors_{t-1} + (1 - decay) * new``, ``fl.kfac.ema``; the first
    step uses ``new``), and returns ``-lr (K + damping I)^{-1} grads`` through
    ``fl.kfac.solve(..., method)``. With ``decay=None`` (default) no average is kept and the
    step equals ``fl.updates.kfac_update`` exactly.

    Args:
      model: a :class:`fisherlab.nn.Sequential`.
      likelihood: a fisherlab likelihood.
      lr: ``> 0``.
      damping: ``>= 0``.
      method: ``"exact"`` or ``"factored"``.
      fisher_type, approx, bias, num_samples, tokens: passed to ``fl.kfac.factors`` (``"mc"`` needs
        ``key=`` in ``update``).
      decay: ``None`` or a number in ``[0, 1]`` for the factor EMA.

    Returns:
      ``optax.GradientTransformationExtraArgs`` with state :class:`KFACState`.

    References:
      J. Martens & R. Grosse, "Optimizing neural networks with Kronecker-factored approximate
      curvature", ICML 2015, §5 (running averages) and §6.3 (factored damping).
    """
    optax = _optax()
    lr = check_lr(lr)
    damping = check_damping(damping)
    check_choice(method, "method", ("exact", "factored"))
    check_choice(tokens, "tokens", ("sum", "flatten"))
    if decay is not None and not (isinstance(decay, (int, float)) and 0.0 <= decay <= 1.0):
        raise ValueError(f"decay must be None or a number in [0, 1], got {decay!r}")

    def init(params):
        # The factors' running average starts empty (its shapes depend on the batch layout);
        # the first update stores the batch factors, so the state's structure changes once.
        del params
        return KFACState(jnp.zeros([], jnp.int32), None)

    @reference
    def update(grads, state, params=None, *, x=None, y=None, key=None, **extra):
        del extra
        _require(params, x, y)
        params64 = as_float64_tree(params)
        new = kfac_factors(model, params64, x, y, likelihood, fisher_type=fisher_type,
                            approx=approx, bias=bias, key=key, num_samples=num_samples,
                            tokens=tokens)
        if decay is not None and state.factors is not None:
            facs = kfac_ema(state.factors, new, decay)
        else:
            facs = new
        g, unravel = flat_vector(grads)
        _, unravel_params = ravel_pytree(params64)
        pre = kfac_solve(facs, unravel_params(g), damping, method=method, model=model)
        flat_pre, _ = ravel_pytree(pre)
        new_state = KFACState(state.count + 1, facs if decay is not None else None)
        return unravel(-lr * flat_pre), new_state

    return optax.GradientTransformationExtraArgs(init, update)


def __dir__():
    return list(__all__)
