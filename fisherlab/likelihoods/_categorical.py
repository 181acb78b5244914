"""Softmax categorical likelihood in its logits (natural parameters).

For logits ``eta`` (``C`` classes) and a class index ``y``:

.. math::

    p(y = k \\mid \\eta) = \\mathrm{softmax}(\\eta)_k = e^{\\eta_k} / \\sum_j e^{\\eta_j}, \\qquad
    -\\log p(y \\mid \\eta) = \\operatorname{logsumexp}(\\eta) - \\eta_y .

The log-partition is ``A(eta) = logsumexp(eta)``, so with ``p = softmax(eta)``

* score ``grad_eta log p = e_y - p``,
* output Hessian of the NLL ``diag(p) - p p^T`` -- independent of ``y`` (natural parameters),
* output Fisher ``F_out = E_y[(e_y - p)(e_y - p)^T] = diag(p) - p p^T = grad^2 A``,
* a factor ``M = diag(sqrt p) - p sqrt(p)^T`` with ``M M^T = F_out`` (because
  ``diag(sqrt p) sqrt p = p`` and ``sqrt(p)^T sqrt(p) = 1``).

Everything is computed from ``log_softmax``/``softmax`` (max-shifted), so logits of
``+-1000`` give finite, correct values.

References:
  seed 003_377ac27c40267f84.txt (Johnson, natural gradients and K-FAC notes: the
  exponential-family Fisher ``grad^2 A``); seed 004_*.txt (Grosse, CSC2541 Lecture 4);
  J. Martens, "New insights and perspectives on the natural gradient method", JMLR 2020, §9.2.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab.likelihoods import _symbolic
from fisherlab.likelihoods._base import Likelihood, _as_outputs, _first_bad, _is_traced

__all__ = ["Categorical"]


def _probs_and_complements(out):
    """``p = softmax(out)`` and ``q = 1 - p``, both with full relative accuracy.

    ``1 - p_k`` cancels only for the largest probability when it is > 1/2; for that class
    ``q_k = sum_{j != k} p_j`` (a sum of positive terms), for the others ``1 - p_k >= 1/2``.
    """
    p = jax.nn.softmax(out)
    is_max = jnp.arange(p.shape[-1]) == jnp.argmax(p)
    others = jnp.sum(jnp.where(is_max, 0.0, p))
    return p, jnp.where(is_max, others, 1.0 - p)


class Categorical(Likelihood):
    """Categorical distribution over ``C >= 2`` classes, parameterised by logits.

    Shapes: ``outputs`` ``(N, C)`` logits; ``targets`` ``(N,)`` integer class indices
    in ``[0, C)`` (an integer dtype; float or one-hot targets are rejected).
    ``sample`` returns integer class indices of shape ``(num_samples, N)``.

    Natural parameters, so the output Hessian equals the output Fisher and
    Fisher = GGN (CONVENTIONS.md).

    >>> import jax.numpy as jnp, fisherlab as fl
    >>> lik = fl.Categorical()
    >>> lik.nll(jnp.array([[0.0, 0.0]]), jnp.array([1]))  # log 2
    Array([0.69314718], dtype=float64)
    """

    natural = True

    def symbolic(self, num_outputs: int):
        """``fisherlab.likelihoods._symbolic.categorical(num_outputs)`` (one-hot targets)."""
        return _symbolic.categorical(num_outputs)

    # ------------------------------------------------------------------ kernels
    def _nll(self, out, target):
        """``logsumexp(out) - out[target]`` for one example (``target`` an int index)."""
        return -jax.nn.log_softmax(out)[target]

    def _output_grad(self, out, target):
        """``softmax(out) - e_target``."""
        return jax.nn.softmax(out) - jax.nn.one_hot(target, out.shape[-1], dtype=out.dtype)

    def _output_hessian(self, out, target):
        """``diag(p) - p p^T`` (independent of ``target``)."""
        return self._output_fisher(out)

    def _output_fisher(self, out):
        """``diag(p) - p p^T`` with ``p = softmax(out)``.

        The diagonal is formed as ``p_k (1 - p_k)`` with ``1 - p_k`` from
        :func:`_probs_and_complements`, so it keeps full relative accuracy when the softmax
        saturates (``1 - p_k`` tiny), where ``p_k - p_k^2`` would cancel to 0.
        """
        p, q = _probs_and_complements(out)
        return jnp.diag(p * q) - jnp.outer(p, p) * (1.0 - jnp.eye(p.shape[-1], dtype=p.dtype))

    def _output_fisher_sqrt(self, out):
        """``M = diag(sqrt p) - p sqrt(p)^T``, ``(C, C)``, with ``M M^T = diag(p) - p p^T``.

        Diagonal ``sqrt(p_k) (1 - p_k)`` (accurate complement, as in :meth:`_output_fisher`).
        """
        p, q = _probs_and_complements(out)
        s = jnp.sqrt(p)
        return jnp.diag(s * q) - jnp.outer(p, s) * (1.0 - jnp.eye(p.shape[-1], dtype=p.dtype))

    def _sample(self, key, out, num_samples):
        """``num_samples`` class indices drawn from ``softmax(out)`` (Gumbel-max)."""
        return jax.random.categorical(key, out, shape=(num_samples,))

    # ------------------------------------------------------------------ validation
    def check_outputs(self, outputs, name: str = "outputs"):
        """Finite logits of shape ``(N, C)`` with ``C >= 2``."""
        return _as_outputs(outputs, name, family="Categorical", min_C=2)

    def check_targets(self, targets, outputs, name: str = "targets"):
        """Integer class indices of shape ``(N,)`` in ``[0, C)``."""
        N, C = outputs.shape
        if _is_traced(targets):
            arr = targets
        else:
            try:
                arr = np.asarray(targets)
            except Exception as exc:  # noqa: BLE001
                raise TypeError(f"{name} must be array-like, got {type(targets).__name__}") from exc
        if arr.ndim == 2 and arr.shape == (N, C):
            raise ValueError(
                f"{name} for Categorical must be integer class indices of shape (N,) = ({N},), "
                f"got shape {tuple(arr.shape)} (one-hot targets? use targets.argmax(-1))")
        if arr.shape != (N,):
            raise ValueError(
                f"{name} for Categorical must be integer class indices of shape (N,) = ({N},) "
                f"to match outputs of shape {tuple(outputs.shape)}, got shape {tuple(arr.shape)}")
        if arr.dtype == bool or not jnp.issubdtype(arr.dtype, jnp.integer):
            raise TypeError(
                f"{name} for Categorical must have an integer dtype (class indices in [0, {C})), "
                f"got dtype {arr.dtype}")
        if _is_traced(arr):
            return arr
        bad = (arr < 0) | (arr >= C)
        if bad.any():
            i = _first_bad(bad)
            raise ValueError(
                f"{name} for Categorical must be class indices in [0, {C}) (C = {C} outputs), "
                f"got {arr[i]} at index {i}")
        return np.asarray(arr, np.int64)
