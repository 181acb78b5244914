"""Output-space cotangents ``u_{n,k}`` whose pull-backs give the K-FAC expectation.

For example ``n`` with model output ``f_n`` the pre-activation gradients
``v_{n,k} = J_s^T u_{n,k}`` with weights ``w_k`` give ``sum_k w_k v v^T = E[g_n g_n^T]``:

* ``"exact"``: ``u_{n,k}`` are the columns of a factor ``M`` with ``M M^T = F_out(f_n)`` and
  ``w_k = 1``, so ``sum_k v v^T = J_s^T F_out J_s`` in closed form;
* ``"mc"``: ``u_{n,k} = grad_f l(f_n, y_k)`` at ``S`` labels ``y_k ~ p(.|f_n)``, ``w_k = 1/S``;
* ``"empirical"``: ``u_{n,1} = grad_f l(f_n, y_n)`` at the data label, ``w_1 = 1``.

The factor ``M`` is the likelihood's own ``_output_fisher_sqrt`` (else a symmetric root by
``eigh``). For :class:`~fisherlab.likelihoods.Categorical`, ``F_out = diag(p) - p p^T`` has rank
``C - 1`` and ``M sqrt(p) = 0``; the Householder reflection ``H`` with ``H e_C = -sqrt(p)``
(``u = sqrt(p) + e_C``, ``|u|^2 = 2 + 2 sqrt(p_C) >= 2``) makes the last column of ``M H``
zero, so the first ``C - 1`` columns of ``M H`` are a factor of ``F_out`` as well: one
back-propagated column per example fewer, the same ``G`` up to rounding (tested).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from fisherlab._core.sampling import output_grads, sample_each
from fisherlab.likelihoods import Categorical

__all__ = ["cotangent_weight", "output_cotangents", "output_factor", "uses_reduced_factor"]


def uses_reduced_factor(likelihood, fisher_type: str) -> bool:
    """Whether the exact cotangents use the rank-``(C - 1)`` Categorical factor (for
    :class:`~fisherlab.likelihoods.Categorical` itself, not a subclass that may redefine it)."""
    return fisher_type == "exact" and type(likelihood) is Categorical


def output_factor(likelihood, out, *, reduced: bool = False):
    """``M`` with ``M M^T = F_out(out)`` for one output ``(C,)``: ``(C, R)``.

    ``reduced`` (Categorical only): the ``(C, C - 1)`` factor of the module docstring.
    """
    M = None
    if getattr(type(likelihood), "_output_fisher_sqrt", None) is not None:
        try:
            M = likelihood._output_fisher_sqrt(out)
        except NotImplementedError:
            M = None
    if M is None:
        F = likelihood._output_fisher(out)
        w, V = jnp.linalg.eigh((F + F.T) / 2)
        M = (V * jnp.sqrt(jnp.maximum(w, 0.0))) @ V.T
    if not reduced:
        return M
    s = jnp.sqrt(jax.nn.softmax(out))
    # (M H)[:, :C-1] = M[:, :C-1] - (2/|u|^2) (M u) u[:C-1]^T with M u = M e_C (M s = 0)
    return M[:, :-1] - jnp.outer(M[:, -1], s[:-1]) / (1.0 + s[-1])


def output_cotangents(likelihood, fisher_type, num_samples, out, y, key, *, reduced=False):
    """The cotangents ``u_{n,k}`` of one example, ``(K, Q, C)`` (``out`` is ``(..., C)``).

    ``"exact"``: the columns of ``M_q`` one output position ``q`` at a time (zero at the other
    positions); ``"empirical"``: ``grad_f l(f_q, y_q)``; ``"mc"``: ``grad_f l(f_q, y_{s,q})`` at
    ``S`` labels drawn with this example's ``key``. With one output position the labels are
    ``likelihood._sample(key, f, S)``, exactly the draw of :func:`fisherlab.fisher_mc` for
    this example's key; with ``Q > 1`` positions the key is split once more,
    ``jax.random.split(key, Q)[q]`` for position ``q``.
    """
    C = out.shape[-1]
    flat = out.reshape((-1, C))  # (Q, C)
    Q = flat.shape[0]
    if fisher_type == "exact":
        M = jax.vmap(lambda o: output_factor(likelihood, o, reduced=reduced))(flat)  # (Q, C, R)
        R = M.shape[-1]
        eye = jnp.eye(Q, dtype=M.dtype)
        # cotangent (q, r): position q carries column r of M_q, all other positions zero
        return jnp.einsum("qt,qcr->qrtc", eye, M).reshape((Q * R, Q, C))
    event = jnp.shape(y)[len(out.shape) - 1:]
    if fisher_type == "empirical":
        yq = jnp.reshape(y, (Q,) + event)
        return jax.vmap(likelihood._output_grad)(flat, yq)[None]  # (1, Q, C)
    keys = key[None] if Q == 1 else jax.random.split(key, Q)
    ys = sample_each(likelihood, keys, flat, num_samples)  # (Q, S, ...)
    return jnp.moveaxis(output_grads(likelihood, flat, ys), 1, 0)  # (S, Q, C)


def cotangent_weight(fisher_type: str, num_samples: int) -> float:
    """``w_k``: ``1/S`` for ``"mc"``, else 1."""
    return 1.0 / num_samples if fisher_type == "mc" else 1.0
