"""Rebuild ``desired`` from its ingredients, so a family can swap one ingredient.

Every quantity the formula families test is a function of per-example Jacobians and
output-space quantities:

* ``fisher``, ``ggn``, ``empirical_fisher``: ``(1/N) sum_n J_n^T M_n J_n`` with ``M_n`` the output
  Fisher ``F_out``, the output Hessian ``Lambda`` or ``g_n g_n^T`` (``g_n`` the output gradient
  at the target);
* ``gradient_covariance``: ``(1/N) sum_n G_n G_n^T - Gbar Gbar^T`` with ``G_n = J_n^T g_n``;
* the K-FAC quantities: factors from per-layer Jacobians (:mod:`._kfac`).

:func:`calibrate` rebuilds ``desired`` from fisherlab's own per-example quantities and fits the
one scalar ``c0`` (the reduction, a PyTorch loss's scaling) with which the rebuild reproduces
``desired`` within tolerance; a family's hypothesis is then the rebuild with one ingredient
replaced, times ``c0``. Where the rebuild does not reproduce ``desired`` the families are
skipped (no hypothesis is tested against a baseline that is itself off).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fisherlab.testing._diagnose import _kfac, _network
from fisherlab.testing._diagnose._finding import fit

__all__ = ["Rebuild", "calibrate"]

_DENSE = {"fisher": "fisher", "ggn": "hessian", "empirical_fisher": "empirical",
          "gradient_covariance": "empirical"}


def dense(q, J, M=None, g=None, weights=None):
    """The unscaled quantity ``q`` from ``J (N, K, d)`` and ``M (N, K, K)`` or ``g (N, K)``."""
    N = J.shape[0]
    w = np.full(N, 1.0 / N) if weights is None else np.asarray(weights, float)
    if q == "gradient_covariance":
        G = np.einsum("nki,nk->ni", J, g)
        mean = w @ G
        return np.einsum("n,ni,nj->ij", w, G, G) - np.outer(mean, mean)
    if M is None:
        M = np.einsum("ni,nj->nij", g, g)
    return _network.sandwich(J, M, w)


@dataclasses.dataclass
class Rebuild:
    """How ``desired`` is rebuilt: dense (``J``, ``M``/``g``) or K-FAC (a :class:`_kfac.Setting`)."""

    ctx: object
    c0: float
    kfac: object = None  # a _kfac.Setting, for the K-FAC quantities

    @property
    def output_kind(self):
        """``"fisher"``, ``"hessian"`` or ``"empirical"``: the output-space quantity of desired."""
        if self.kfac is not None:
            return self.kfac.output_kind
        return _DENSE[self.ctx.quantity]

    def with_output(self, M=None, g=None, J=None, Js=None, weights=None):
        """``desired`` rebuilt with ``M``/``g`` (and optionally ``J`` or the layer ``Js``)."""
        ctx = self.ctx
        if self.kfac is not None:
            st = self.kfac
            if st.what == "A":
                return None  # A has no output-space ingredient
            L = _network.layers(ctx.problem)
            if M is None:
                M = np.einsum("ni,nj->nij", g, g)
            Js = L["Js"] if Js is None else Js
            if weights is not None:
                M = M * (len(weights) * np.asarray(weights))[:, None, None]
            return _kfac.assemble(ctx, st, Gs=_kfac.g_list(st, Js, M))
        J = _network.jacobians(ctx.problem) if J is None else J
        return self.c0 * dense(ctx.quantity, J, M, g, weights)

    def true_output(self, y=None):
        """``(M, g)`` of desired's output kind at targets ``y`` (default: the data)."""
        kind = self.output_kind
        p = self.ctx.problem
        if kind == "empirical":
            g = _network.gradients(p, y)
            return None, g.reshape(g.shape[0], -1)
        return _network.output_matrices(p, kind, y), None


def calibrate(ctx):
    """The :class:`Rebuild` of ``desired`` (cached on the context), or None."""
    if not hasattr(ctx, "_rebuild"):
        ctx._rebuild = _calibrate(ctx)
    return ctx._rebuild


def _calibrate(ctx):
    q, problem = ctx.quantity, ctx.problem
    if problem is None:
        return None
    if q in ("kfac", "kfac_factor_A", "kfac_factor_G"):
        st = _kfac.setting(ctx)
        return None if st is None else Rebuild(ctx, st.c0, st)
    if q not in _DENSE or not ctx.full:
        return None
    rb = Rebuild(ctx, 1.0)
    try:
        M, g = rb.true_output()
    except (TypeError, ValueError):
        return None
    Z = dense(q, _network.jacobians(problem), M, g)
    c0, res = fit(ctx.Y, Z)
    if c0 is None or c0 <= 0 or res > ctx.tol:
        return None
    rb.c0 = c0
    return rb
