"""Sampled labels and their output gradients, shared by every Monte-Carlo quantity.

``fl.fisher_mc`` (both methods), ``fl.fisher_mc_vp``, K-FAC's ``"mc"`` factors,
``likelihood.sample`` and the explanation of a non-finite result all draw labels and take the
negative log-likelihood's output gradients at them through these two functions, so for one key
they see the same labels. Pure JAX on the per-example likelihood kernels (``_sample``,
``_output_grad``): no validation, safe to trace, and no import of the likelihood package.
"""

from __future__ import annotations

import jax

__all__ = ["output_grads", "sample_each"]


def sample_each(likelihood, keys, outs, num_samples: int):
    """``num_samples`` labels per row of ``outs`` ``(B, C)``, row ``b`` drawn with ``keys[b]``.

    Returns:
      Labels of shape ``(B, S, ...)`` (``S = num_samples``).
    """
    return jax.vmap(lambda k, o: likelihood._sample(k, o, num_samples))(keys, outs)


def output_grads(likelihood, outs, labels):
    """``grad_f (-log p(labels[b, s] | outs[b]))`` for labels ``(B, S, ...)``.

    Returns:
      Output gradients of shape ``(B, S, C)``.
    """
    return jax.vmap(jax.vmap(likelihood._output_grad, in_axes=(None, 0)))(outs, labels)
