"""Exponential moving average of K-FAC factor lists."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab._core.precision import reference
from fisherlab.kfac._checks import is_concrete

__all__ = ["ema"]


@reference
def ema(old, new, decay):
    r"""``decay * old + (1 - decay) * new``, factor by factor.

    The convention of Martens & Grosse (2015, §5) and kfac-jax: ``decay`` is the weight of the
    *old* running estimate (e.g. 0.95), so ``decay = 0`` returns ``new`` and ``decay = 1``
    returns ``old``. Both ``A`` and ``G`` of every layer are averaged separately (the running
    Kronecker product is *not* the average of the products).

    Args:
      old, new: lists of :class:`~fisherlab.kfac.KFACFactors` with the same structure and
        shapes (any pytree of arrays works).
      decay: a number in ``[0, 1]``.

    Returns:
      A list like ``old``, float64.

    References:
      Martens & Grosse, ICML 2015, §5 ("exponentially decaying averages").
    
    >>> import jax.numpy as jnp, fisherlab as fl
    >>> old = [fl.kfac.KFACFactors(jnp.ones((2, 2)), jnp.ones((1, 1)))]
    >>> new = [fl.kfac.KFACFactors(jnp.zeros((2, 2)), 3 * jnp.ones((1, 1)))]
    >>> float(fl.kfac.ema(old, new, 0.75)[0].G[0, 0])
    1.5

    Derivations: ``ema.factor_estimates``.
    """
    if is_concrete(decay):
        try:
            d = float(decay)
        except Exception as exc:  # noqa: BLE001
            raise TypeError(f"decay must be a real number in [0, 1], got {decay!r}") from exc
        if not np.isfinite(d) or not 0.0 <= d <= 1.0:
            raise ValueError(f"decay must be a number in [0, 1], got {decay!r}")
    s_old = jax.tree_util.tree_structure(old)
    s_new = jax.tree_util.tree_structure(new)
    if s_old != s_new:
        raise ValueError(f"old and new must have the same structure, got {s_old} and {s_new}")
    for i, (a, b) in enumerate(zip(jax.tree_util.tree_leaves(old),
                                   jax.tree_util.tree_leaves(new))):
        if np.shape(a) != np.shape(b):
            raise ValueError(
                f"old and new differ in shape at leaf {i}: {np.shape(a)} vs {np.shape(b)}")
    decay = jnp.asarray(decay, jnp.float64)
    return jax.tree_util.tree_map(
        lambda a, b: decay * jnp.asarray(a, jnp.float64) + (1 - decay) * jnp.asarray(b, jnp.float64),
        old, new)
