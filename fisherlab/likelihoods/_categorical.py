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

Everything is computed from max-shifted exponentials, so logits of ``+-1000`` give finite,
correct values.

Saturated logits and autodiff (every quantity keeps full *relative* accuracy):

* the NLL is ``(M - eta_y) + log1p((n_M - 1) + sum_{eta_j < M} e^{eta_j - M})`` with ``M = max
  eta`` attained ``n_M`` times, so a confident correct prediction (logit gap 40) gives
  ``e^{-40}``, not ``log(1 + e^{-40}) = 0``;
* the gradient ``p - e_y`` has its ``y``-th entry computed as ``-sum_{j != y} p_j`` (a sum of
  positive terms); ``p_y - 1`` cancels to 0 at a logit gap >~ 37 in float64 (relative
  error 1), which is what JAX autodiff of ``logsumexp(eta) - eta_y`` produces;
* ``1 - p_k`` is formed as ``sum_{j != k} p_j`` for the dominant class (``p_k > 3/4``, at most
  one) and as ``1 - p_k`` (no cancellation: ``>= 1/4``) for the others -- without ``argmax``,
  which fails under a caller's ``jax.jit`` with x64 off;
* the NLL kernel is a :func:`jax.custom_jvp` whose tangent is that accurate gradient, and the
  gradient is itself a ``custom_jvp`` whose tangent is the output-Fisher-vector product
  ``(diag(p) - p p^T) v = p * ((1 - p) v - sum_{j != k} p_j v_j)`` with the accurate
  complements (``O(C)``; with ``v = e_i`` it reproduces the entries of :meth:`Categorical.
  _output_fisher` exactly). So ``jax.grad``, ``jax.hessian``, ``jax.jacfwd(jax.grad)``,
  ``jvp``/``vjp`` of the NLL -- what the curvature module and K-FAC differentiate -- are
  accurate at every logit, under ``jit``/``vmap``. The integer target has no tangent.

References:
  M. Johnson, "Natural gradients and K-FAC" (note, 2017) (the exponential-family Fisher ``grad^2 A``); R. Grosse, CSC 2541
  "Neural Net Training Dynamics", Lecture 4: Second-Order Optimization (University of Toronto,
  2022); J. Martens, "New insights and perspectives on the natural gradient method", JMLR 21,
  2020, §9.2.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab._core.validation import as_array, is_tracer
from fisherlab.likelihoods._base import Likelihood, _as_outputs, _first_bad, symbolic_definitions

__all__ = ["Categorical"]


#: a class with ``p_k`` above this dominates: at most one can (the probabilities sum to 1, with
#: a margin for rounding); every other class has ``1 - p_k >= 1/4``, computed without cancellation.
_DOMINANT = 0.75


def _probs_and_complements(out):
    """``p = softmax(out)``, ``q = 1 - p`` (full relative accuracy) and the dominant-class mask.

    ``1 - p_k`` cancels only for a probability near 1; for the (at most one) class with
    ``p_k > 3/4``, ``q_k = sum_{j != k} p_j`` (a sum of positive terms), for the others
    ``q_k = 1 - p_k >= 1/4`` (no cancellation). No ``argmax`` (see the module docstring).
    """
    p = jax.nn.softmax(out)
    dominant = p > _DOMINANT
    others = jnp.sum(jnp.where(dominant, 0.0, p))
    return p, jnp.where(dominant, others, 1.0 - p), dominant


def _fisher_vp(out, v):
    """``(diag(p) - p p^T) v`` in ``O(C)``, entry ``k`` as ``p_k ((1 - p_k) v_k - sum_{j != k} p_j v_j)``.

    ``sum_{j != k} p_j v_j`` is ``p.v - p_k v_k`` except for the dominant class, where it is
    summed directly (``p.v - p_k v_k`` would cancel there). For ``v = e_i`` every entry is
    the exact product of :meth:`Categorical._output_fisher` (``p_k q_k`` or ``-p_k p_i``).
    """
    p, q, dominant = _probs_and_complements(out)
    pv = p * v
    rest = jnp.where(dominant, jnp.sum(jnp.where(dominant, 0.0, pv)), jnp.sum(pv) - pv)
    return p * (q * v - rest)


def _is_target(out, target):
    """Boolean ``(C,)`` mask ``k == target`` (one-hot without dtype promotion)."""
    target = jnp.asarray(target)
    return jnp.arange(out.shape[-1], dtype=target.dtype) == target


@jax.custom_jvp
def _grad(out, target):
    """``softmax(out) - e_target`` with the ``target`` entry as ``-sum_{j != target} p_j``.

    ``custom_jvp`` tangent: :func:`_fisher_vp` (the integer target has none).
    """
    p = jax.nn.softmax(out)
    is_y = _is_target(out, target)
    return jnp.where(is_y, -jnp.sum(jnp.where(is_y, 0.0, p)), p)


@_grad.defjvp
def _grad_jvp(primals, tangents):
    out, target = primals
    return _grad(out, target), _fisher_vp(out, tangents[0])


@jax.custom_jvp
def _nll(out, target):
    """``logsumexp(out) - out[target]`` as ``(M - out[target]) + log1p((n_M - 1) + rest)``.

    ``M = max(out)`` attained ``n_M`` times, ``rest = sum_{out_j < M} e^{out_j - M}``: no
    ``log(1 + tiny)`` rounding. ``custom_jvp`` tangent ``<_grad(out, target), d out>``.
    """
    top = jnp.max(out)
    at_top = out == top
    count = jnp.sum(at_top.astype(out.dtype))
    rest = jnp.sum(jnp.where(at_top, 0.0, jnp.exp(out - top)))
    return (top - out[target]) + jnp.log1p((count - 1.0) + rest)


@_nll.defjvp
def _nll_jvp(primals, tangents):
    out, target = primals
    return _nll(out, target), jnp.sum(_grad(out, target) * tangents[0])


class Categorical(Likelihood):
    """Categorical distribution over ``C >= 2`` classes, parameterised by logits.

    Shapes: ``outputs`` ``(N, C)`` logits; ``targets`` ``(N,)`` integer class indices
    in ``[0, C)`` (an integer dtype; float or one-hot targets are rejected).
    ``sample`` returns integer class indices of shape ``(num_samples, N)``.

    Natural parameters, so the output Hessian equals the output Fisher and
    Fisher = GGN (docs/CONVENTIONS.md).

    >>> import jax.numpy as jnp, fisherlab as fl
    >>> lik = fl.Categorical()
    >>> lik.nll(jnp.array([[0.0, 0.0]]), jnp.array([1]))  # log 2
    Array([0.69314718], dtype=float64)
    """

    natural = True

    def symbolic(self, num_outputs: int):
        """``fisherlab.likelihoods.symbolic.categorical(num_outputs)`` (one-hot targets)."""
        return symbolic_definitions().categorical(num_outputs)

    # ------------------------------------------------------------------ kernels
    def _nll(self, out, target):
        """``logsumexp(out) - out[target]`` for one example (``target`` an int index).

        Accurate value and derivatives at saturated logits (see the module docstring).
        """
        return _nll(out, target)

    def _output_grad(self, out, target):
        """``softmax(out) - e_target``, the ``target`` entry as ``-sum_{j != target} p_j``."""
        return _grad(out, target)

    def _output_hessian(self, out, target):
        """``diag(p) - p p^T`` (independent of ``target``)."""
        return self._output_fisher(out)

    def _output_fisher(self, out):
        """``diag(p) - p p^T`` with ``p = softmax(out)``.

        The diagonal is formed as ``p_k (1 - p_k)`` with ``1 - p_k`` from
        :func:`_probs_and_complements`, so it keeps full relative accuracy when the softmax
        saturates (``1 - p_k`` tiny), where ``p_k - p_k^2`` would cancel to 0.
        """
        p, q, _ = _probs_and_complements(out)
        return jnp.diag(p * q) - jnp.outer(p, p) * (1.0 - jnp.eye(p.shape[-1], dtype=p.dtype))

    def _output_fisher_sqrt(self, out):
        """``M = diag(sqrt p) - p sqrt(p)^T``, ``(C, C)``, with ``M M^T = diag(p) - p p^T``.

        Diagonal ``sqrt(p_k) (1 - p_k)`` (accurate complement, as in :meth:`_output_fisher`).
        """
        p, q, _ = _probs_and_complements(out)
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
        arr = as_array(targets, name)
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
        if is_tracer(arr):
            return arr
        bad = (arr < 0) | (arr >= C)
        if bad.any():
            i = _first_bad(bad)
            raise ValueError(
                f"{name} for Categorical must be class indices in [0, {C}) (C = {C} outputs), "
                f"got {arr[i]} at index {i}")
        return np.asarray(arr, np.int64)
