"""A finding, the stable kinds, and the collector that tests candidate explanations.

Every hypothesis of every family ends here: a candidate explanation ``Z`` of ``actual`` is
tested by :meth:`Collector.test` (``||actual - Z|| <= tol ||Z||``, possibly after fitting one
scalar ``c`` with ``actual ~ c Z``), and only a reproduction becomes a :class:`Finding`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping

import numpy as np

from fisherlab.testing._compare import TINY, relative_error
from fisherlab.testing._diagnose import _scalar

__all__ = ["Collector", "Finding", "KINDS", "fit"]

KINDS = (
    "scalar_factor",
    "empirical_fisher_for_fisher",
    "fisher_for_empirical_fisher",
    "ggn_for_hessian",
    "hessian_for_ggn",
    "fisher_for_ggn",
    "ggn_for_fisher",
    "hessian_for_fisher",
    "empirical_fisher_for_hessian",
    "hessian_for_empirical_fisher",
    "gradient_covariance_for_empirical_fisher",
    "empirical_fisher_for_gradient_covariance",
    "kfac_approximation",
    "kronecker_order_swapped",
    "bias_cross_terms_missing",
    "block_diagonal_only",
    "transposed_weight_layout",
    "parameter_order",
    "kfac_factor_formula",
    "activation_derivative",
    "output_matrix_formula",
    "target_mismatch",
    "example_weighting",
    "label_sampling",
    "monte_carlo_estimate",
    "float32_rounding",
    "no_known_pattern",
)

#: rank tiers: exact named reproduction, reproduction up to a named factor, Monte-Carlo,
#: reproduction up to an unexplained factor, rounding-level evidence
EXACT, NAMED_FACTOR, MONTE_CARLO, UNNAMED_FACTOR, ROUNDING = range(5)


@dataclasses.dataclass(frozen=True)
class Finding:
    """One explanation of a mismatch.

    Attributes:
      kind: a stable identifier from :data:`KINDS`.
      message: human-readable, with the evidence (residuals, fitted factor, sample count).
      factor: the scalar ``c`` with ``actual = c * (explanation)`` when one was fitted, else None.
      convention: the named convention(s) the factor matches, when any.
      residual: ``||actual - explanation|| / ||explanation||`` of this hypothesis (for
        ``monte_carlo_estimate``: the residual of the subspace fit).
      data: what to act on, by kind: ``permutation`` (``desired[np.ix_(p, p)]`` reproduces
        ``actual``) and ``layout`` for the parameter-order kinds; ``formula`` (the wrong
        factor, derivative or output matrix, by name); ``weights`` and ``examples`` for
        ``example_weighting``; ``labels`` for ``label_sampling`` and Monte-Carlo claims;
        ``targets`` for ``target_mismatch``; ``ties`` (the other kinds that reproduce
        ``actual`` equally well on this problem).
    """

    kind: str
    message: str
    factor: float | None = None
    convention: str | None = None
    residual: float = float("nan")
    data: Mapping = dataclasses.field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        return f"[{self.kind}] {self.message}"


def fit(X, Z):
    """Best scalar ``c`` for ``X ~ c Z`` and the relative residual ``||X - c Z|| / ||c Z||``."""
    zz = float(np.vdot(Z, Z))
    if zz <= TINY:
        return None, math.inf
    c = float(np.vdot(X, Z)) / zz
    if c == 0.0:
        return 0.0, math.inf
    return c, float(np.linalg.norm(X - c * Z) / max(abs(c) * math.sqrt(zz), TINY))


class Collector:
    """Tests candidate explanations ``Z`` of ``X`` and keeps those that reproduce it."""

    def __init__(self, X, Y, problem, tol, quantity=None):
        self.X, self.Y, self.problem, self.tol, self.quantity = X, Y, problem, tol, quantity
        self.findings: list[tuple[tuple, Finding]] = []

    def _multiple_of_desired(self, Z):
        """The factor ``c`` when ``Z = c * desired`` within tolerance, else None."""
        c, res = fit(Z, self.Y)
        return c if c is not None and res <= self.tol else None

    def test(self, kind, Z, what, order, *, allow_factor=True, is_desired=False, data=None,
             factor_quantity=None):
        """Keep ``Z`` (described by ``what``, e.g. "the empirical Fisher") if it reproduces X.

        ``factor_quantity``: the quantity ``Z`` is (for naming a fitted factor; default the
        quantity of desired). Returns True when a finding was recorded.
        """
        fq = self.quantity if factor_quantity is None else factor_quantity
        if Z is None or Z.shape != self.X.shape or not np.all(np.isfinite(Z)):
            return False
        data = dict(data or {})
        if not is_desired and relative_error(Z, self.Y) <= self.tol:
            return False  # Z is desired itself on this problem (the GGN of a natural likelihood
            # for the Fisher): not an alternative explanation
        # Z may be a multiple of desired on this problem (one example with one output: the
        # empirical Fisher and the GGN are both rank one along J^T). Z is then still a
        # hypothesis, tied with the scalar_factor reading; the message says so.
        multiple = None if is_desired else self._multiple_of_desired(Z)
        tie = ("" if multiple is None else
               f"; on this problem it is {multiple:.6g} × desired, so a scalar factor explains "
               f"it equally well (a larger batch or more outputs would tell the two apart)")
        rel = relative_error(self.X, Z)
        if rel <= self.tol:
            msg = (f"actual equals {what} (relative error {rel:.2e}; it differs from desired by "
                   f"{relative_error(Z, self.Y):.2e})") + tie
            # an exact named quantity outranks an unexplained factor; a tie with a named
            # convention (scalar_factor, order 0) goes to the convention
            named = multiple is not None and _scalar.match_factor(
                multiple, self.problem, self.tol, fq)
            return self.add((NAMED_FACTOR if named else EXACT, order),
                            Finding(kind, msg, residual=rel, data=data))
        if not allow_factor:
            return False
        c, res = fit(self.X, Z)
        if c is None or res > self.tol or abs(c - 1.0) <= 10 * self.tol:
            return False  # no fit, or a "factor" indistinguishable from 1 (a near-miss)
        conv = _scalar.match_factor(c, self.problem, self.tol, fq)
        if multiple is not None and not conv:
            return False  # an unexplained factor times a multiple of desired: scalar_factor
        factor_txt = _scalar.factor_text(c)
        data.setdefault("factor", c)
        if conv:
            msg = (f"actual = {factor_txt} × {what} (residual {res:.2e}); the factor matches: "
                   + "; or ".join(conv[:3]) + tie)
            return self.add((NAMED_FACTOR, order),
                            Finding(kind, msg, factor=c, convention=conv[0], residual=res,
                                    data=data))
        msg = (f"actual = {factor_txt} × {what} (residual {res:.2e}); the factor matches no "
               f"known convention" + _scalar.integer_hint(c))
        return self.add((UNNAMED_FACTOR, order), Finding(kind, msg, factor=c, residual=res,
                                                         data=data))

    def add(self, rank, finding) -> bool:
        """Record ``finding`` at ``rank`` unless a finding of the same kind is already there."""
        if any(f.kind == finding.kind for _, f in self.findings):
            return False
        self.findings.append((rank, finding))
        return True

    def has_reproduction(self) -> bool:
        """Whether some finding reproduces ``actual`` (exactly or up to a named factor)."""
        return any(rank[0] in (EXACT, NAMED_FACTOR) for rank, _ in self.findings)

    def sorted(self):
        return [f for _, f in sorted(self.findings, key=lambda t: t[0])]

    def ranked(self):
        return sorted(self.findings, key=lambda t: t[0])


@dataclasses.dataclass
class Context:
    """What every family sees: the pair, the problem, the quantity and the collector."""

    X: np.ndarray
    Y: np.ndarray
    problem: object
    quantity: str | None
    tol: float
    col: Collector
    notes: list = dataclasses.field(default_factory=list)

    @property
    def square(self) -> bool:
        return self.X.ndim == 2 and self.X.shape[0] == self.X.shape[1]

    @property
    def full(self) -> bool:
        """A ``(d, d)`` pair on a problem with ``d`` parameters."""
        return (self.problem is not None and self.square
                and self.X.shape[0] == self.problem.num_params)

    def ref(self, quantity, **options):
        """``problem.reference(quantity, **options)``, or None where it is not defined."""
        try:
            return self.problem.reference(quantity, **options)
        except (TypeError, ValueError, IndexError, NotImplementedError):
            return None  # e.g. K-FAC of a plain function: the hypothesis is not testable
