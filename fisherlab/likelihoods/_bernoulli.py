"""Independent Bernoulli likelihoods in their logits (natural parameters).

For logits ``eta`` (``C``) and targets ``y in {0, 1}^C``, with ``sigma`` the logistic function:

.. math::

    -\\log p(y \\mid \\eta) = \\sum_c \\operatorname{softplus}(\\eta_c) - y_c \\eta_c ,
    \\qquad \\operatorname{softplus}(x) = \\log(1 + e^x) .

Log-partition ``A(eta) = sum_c softplus(eta_c)``, so

* output gradient ``sigma(eta) - y``,
* output Hessian = output Fisher ``= diag(sigma(eta) (1 - sigma(eta)))`` (independent of ``y``),
* factor ``M = diag(sqrt(sigma (1 - sigma)))``.

``softplus`` is evaluated as ``logaddexp(0, eta)`` and ``sigma(1 - sigma)`` as
``sigma(eta) sigma(-eta)``, so logits of ``+-1000`` give finite, correct values
(``softplus(1000) = 1000``, ``sigma(1000) sigma(-1000) = e^{-1000}`` rounds to 0).

Saturated logits and autodiff (every quantity keeps full *relative* accuracy):

* the NLL is evaluated as ``(1 - y) softplus(eta) + y softplus(-eta)`` (equal to
  ``softplus(eta) - y eta`` because ``softplus(eta) - softplus(-eta) = eta``), so a confident
  correct prediction (``eta = 40``, ``y = 1``) gives ``e^{-40}``, not ``40 - 40 = 0``;
* the gradient ``sigma(eta) - y`` is evaluated as ``(1 - y) sigma(eta) - y sigma(-eta)`` (the
  same number for every ``y``; a single positive term for ``y in {0, 1}``): plain
  ``sigma(eta) - 1`` cancels to 0 at ``eta >~ 37`` in float64 (relative error 1), which is
  what JAX autodiff of ``softplus(eta) - y eta`` produces;
* the NLL kernel is a :func:`jax.custom_jvp` whose tangent is that accurate gradient, and the
  gradient is itself a ``custom_jvp`` whose tangent is the accurate ``sigma(eta) sigma(-eta)``
  (autodiff of ``jax.nn.sigmoid`` forms ``sigma (1 - sigma)``, which is 0 at ``eta = 40``
  where the truth is ``4.25e-18``). So ``jax.grad``, ``jax.hessian``, ``jax.jacfwd(jax.grad)``,
  ``jvp``/``vjp`` of the NLL -- what the curvature module and K-FAC differentiate -- are
  accurate at every logit, under ``jit``/``vmap``. Derivatives in the target are provided too
  (``d nll / d y = -eta``).

References:
  M. Johnson, "Natural gradients and K-FAC" (note, 2017) (the exponential-family Fisher ``grad^2 A``); J. Martens,
  "New insights and perspectives on the natural gradient method", JMLR 21, 2020, §9.2.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab._core.validation import is_tracer
from fisherlab.likelihoods._base import (
    Likelihood,
    _as_float_targets,
    _as_outputs,
    _first_bad,
    symbolic_definitions,
)

__all__ = ["Bernoulli"]


def _has_tangent(t) -> bool:
    """False for the ``float0`` tangent JAX passes for integer/boolean primal inputs."""
    return getattr(t, "dtype", None) != jax.dtypes.float0


def _curvature(out):
    """``sigma(out) sigma(-out) = d^2 softplus / d out^2``, accurate at saturated logits."""
    return jax.nn.sigmoid(out) * jax.nn.sigmoid(-out)


@jax.custom_jvp
def _grad(out, target):
    """``sigma(out) - target`` as ``(1 - target) sigma(out) - target sigma(-out)`` (no cancellation
    for 0/1 targets). Its ``custom_jvp`` tangent is ``sigma sigma(-.) d out - d target``."""
    return (1.0 - target) * jax.nn.sigmoid(out) - target * jax.nn.sigmoid(-out)


@_grad.defjvp
def _grad_jvp(primals, tangents):
    out, target = primals
    d_out, d_target = tangents
    tangent = _curvature(out) * d_out
    if _has_tangent(d_target):
        tangent = tangent - d_target
    return _grad(out, target), tangent


@jax.custom_jvp
def _nll(out, target):
    """``sum softplus(out) - target out`` as ``sum (1 - target) softplus(out) + target softplus(-out)``.

    ``custom_jvp``: tangent ``<_grad(out, target), d out> - <out, d target>``.
    """
    return jnp.sum((1.0 - target) * jnp.logaddexp(0.0, out)
                   + target * jnp.logaddexp(0.0, -out))


@_nll.defjvp
def _nll_jvp(primals, tangents):
    out, target = primals
    d_out, d_target = tangents
    tangent = jnp.sum(_grad(out, target) * d_out)
    if _has_tangent(d_target):
        tangent = tangent - jnp.sum(out * d_target)
    return _nll(out, target), tangent


class Bernoulli(Likelihood):
    """Independent Bernoullis ``P(y_c = 1) = sigma(eta_c)``, parameterised by logits.

    Shapes: ``outputs`` ``(N, C)`` logits; ``targets`` ``(N, C)`` with entries exactly 0 or 1
    (float, int or bool; returned as float64); ``sample`` returns ``(num_samples, N, C)``
    float64 zeros and ones.

    >>> import jax.numpy as jnp, fisherlab as fl
    >>> fl.Bernoulli().nll(jnp.array([[0.0]]), jnp.array([[1.0]]))  # log 2
    Array([0.69314718], dtype=float64)
    """

    natural = True

    def symbolic(self, num_outputs: int):
        """``fisherlab.likelihoods.symbolic.bernoulli(num_outputs)``."""
        return symbolic_definitions().bernoulli(num_outputs)

    # ------------------------------------------------------------------ kernels
    def _nll(self, out, target):
        """``sum softplus(out) - target * out`` (accurate value and derivatives, see module doc)."""
        return _nll(out, target)

    def _output_grad(self, out, target):
        """``sigma(out) - target``, as ``(1 - target) sigma(out) - target sigma(-out)``."""
        return _grad(out, target)

    def _output_hessian(self, out, target):
        """``diag(sigma (1 - sigma))`` (independent of ``target``)."""
        return self._output_fisher(out)

    def _output_fisher(self, out):
        """``diag(sigma(out) sigma(-out))``."""
        return jnp.diag(_curvature(out))

    def _output_fisher_sqrt(self, out):
        """``diag(sqrt(sigma(out) sigma(-out)))``."""
        return jnp.diag(jnp.sqrt(jax.nn.sigmoid(out) * jax.nn.sigmoid(-out)))

    def _sample(self, key, out, num_samples):
        """``1[u < sigma(out)]`` with ``u ~ U(0, 1)``: float zeros/ones, ``(num_samples, C)``."""
        u = jax.random.uniform(key, (num_samples,) + out.shape, dtype=out.dtype)
        return (u < jax.nn.sigmoid(out)).astype(out.dtype)

    # ------------------------------------------------------------------ validation
    def check_outputs(self, outputs, name: str = "outputs"):
        """Finite logits of shape ``(N, C)``."""
        return _as_outputs(outputs, name, family="Bernoulli")

    def check_targets(self, targets, outputs, name: str = "targets"):
        """Targets of shape ``(N, C)`` with every entry exactly 0 or 1."""
        if not is_tracer(targets) and np.asarray(targets).dtype == bool:
            targets = np.asarray(targets, np.float64)
        arr = _as_float_targets(targets, outputs, name, D=outputs.shape[1], family="Bernoulli")
        if is_tracer(arr):
            return arr
        bad = (arr != 0.0) & (arr != 1.0)
        if bad.any():
            i = _first_bad(bad)
            raise ValueError(
                f"{name} for Bernoulli must be 0 or 1 in every entry, got {arr[i].item()!r} "
                f"at index {i}")
        return arr
