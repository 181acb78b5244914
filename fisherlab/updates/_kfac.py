r"""K-FAC step: the damped Kronecker-factored preconditioner applied layer by layer."""

from __future__ import annotations

import jax

from fisherlab import kfac
from fisherlab._core.precision import reference
from fisherlab._core.validation import check_choice
from fisherlab.updates._problem import check_damping, check_lr, prepare_step

__all__ = ["kfac_update"]


@reference
def kfac_update(model, params, x, y, likelihood, *, lr, damping, method: str = "exact",
                fisher_type: str = "exact", approx: str = "expand", bias: str = "augmented",
                key=None, num_samples: int = 1, factors=None, tokens: str = "sum"):
    r"""K-FAC step, layer by layer.

    .. math::
        \delta_k = -\alpha\,(G_k \otimes A_k + \lambda I)^{-1}\,
                    \mathrm{vec}(\nabla_{[W_k\,b_k]} L)

    with the factors of ``fl.kfac.factors`` and the solve of ``fl.kfac.solve``:
    ``method="exact"`` applies ``(G (x) A + lambda I)^{-1}`` exactly through the factors'
    eigendecompositions; ``method="factored"`` the pi-damped
    ``(G + sqrt(lambda)/pi I)^{-1} X (A + pi sqrt(lambda) I)^{-1}``; a LayerNorm/RMSNorm
    block (an ``ExactBlock``) is damped whole, ``(B + lambda I)^{-1}``. Undamped K-FAC is
    invariant to invertible affine maps of each layer's input activations and pre-activations
    (proof ``invariance.kfac_layer``). The gradient and the factors use the mean reduction
    (docs/CONVENTIONS.md, "K-FAC").

    Args:
      model: a :class:`fisherlab.nn.Sequential`.
      params: ``[(W, b), ...]``.
      x, y, likelihood: the batch and the likelihood.
      lr: ``> 0``.
      damping: ``>= 0``.
      method: ``"exact"`` or ``"factored"``.
      fisher_type, approx, bias, key, num_samples: passed to ``fl.kfac.factors``.
      factors: precomputed factors (e.g. an average from ``fl.kfac.ema``) used instead of
        computing them on this batch.
      tokens: ``"sum"`` (default) or ``"flatten"`` for per-token outputs, for the gradient and
        the factors alike (as in :func:`fisherlab.kfac.factors`).

    Returns:
      ``delta``, a list ``[(dW, db), ...]`` like ``params`` (float64).

    References:
      J. Martens & R. Grosse, "Optimizing neural networks with Kronecker-factored approximate
      curvature", ICML 2015, §6.3; M. Johnson, "Natural gradients and K-FAC" (note, 2017), §8-9
      and App. B.

    >>> import fisherlab as fl, jax, jax.numpy as jnp
    >>> model = fl.nn.Sequential([fl.nn.Dense(3, 2)])
    >>> params = model.init(jax.random.key(0))
    >>> x = jnp.ones((4, 3)); y = jnp.array([0, 1, 1, 0])
    >>> step = fl.updates.kfac_update(model, params, x, y, fl.Categorical(), lr=1.0,
    ...                               damping=1e-3)
    >>> [w.shape for w in step[0]]
    [(2, 3), (2,)]

    Derivations: ``invariance.kfac_layer``.
    """
    lr, damping = check_lr(lr), check_damping(damping)
    check_choice(method, "method", ("exact", "factored"))
    step = prepare_step(model, params, x, y, likelihood, "mean", tokens)
    if factors is None:
        factors = kfac.factors(model, step.problem.params, x, y, likelihood,
                               fisher_type=fisher_type, approx=approx, bias=bias, key=key,
                               num_samples=num_samples, tokens=tokens)
    pre = kfac.solve(factors, step.unravel(step.gradient), damping, method=method, model=model)
    return jax.tree_util.tree_map(lambda p: -lr * p, pre)
