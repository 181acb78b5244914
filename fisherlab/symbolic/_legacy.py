"""The legacy form of a derivation: a bag of checked steps beside a hand-written statement.

Kept only while the theorem families move to chain form (:mod:`._derivation`); a derivation
in this form is marked *legacy* in the command-line table and on its page, because nothing
ties its steps to its statement. Its steps go through the same checker as chains do
(:mod:`._check`: no branch-cut-unsafe rewrites, no Floats, shapes compared, nothing empty)
and its controls through the same witness search (:mod:`._witness`: assumptions respected).
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sympy as sp

from ._check import CheckError, entries, is_zero, manifestly_nonnegative, same_shape, validate
from ._witness import find_witness

__all__ = ["Tier", "Step", "NegativeControl", "LegacyDerivation", "StepResult",
           "LegacyControlResult", "LegacyReport", "verify_legacy"]


class Tier(str, enum.Enum):
    """How general a derivation's proof is (see SYMBOLIC.md).

    * ``A``: general dimension or a generic model (abstract functions).
    * ``B``: fully symbolic entries, exhaustively at every size up to a stated bound.
    * ``AB``: both a general (tier A) chain and the exhaustive tier-B chain.
    """

    A = "A"
    B = "B"
    AB = "A+B"


_EQ = "equality"
_NONNEG = "nonnegative"


@dataclasses.dataclass(frozen=True)
class Step:
    """One checked claim of a derivation.

    Use the constructors :meth:`equal` and :meth:`nonnegative`.

    Attributes:
      claim: what the step asserts, in words.
      lhs, rhs: SymPy expressions or matrices; for an equality step the check is
        ``lhs - rhs == 0`` exactly; for a nonnegativity step ``lhs`` is the
        quantity and ``rhs`` a sum-of-squares certificate equal to it.
      justification: why the step holds (the rule used, an axiom's name, a seed).
      display: LaTeX shown in the rendered page instead of the (often huge)
        expanded expressions; it should show the *structure* of the claim.
      kind: ``"equality"`` or ``"nonnegative"``.
    """

    claim: str
    lhs: Any
    rhs: Any
    justification: str
    display: str | None = None
    kind: str = _EQ

    @classmethod
    def equal(cls, claim: str, lhs: Any, rhs: Any, *, justification: str,
              display: str | None = None) -> "Step":
        return cls(claim, lhs, rhs, justification, display, _EQ)

    @classmethod
    def nonnegative(cls, claim: str, expr: Any, certificate: Any, *,
                    justification: str, display: str | None = None) -> "Step":
        return cls(claim, expr, certificate, justification, display, _NONNEG)


@dataclasses.dataclass(frozen=True)
class NegativeControl:
    """A plausible false variant that verification must reject.

    ``build`` returns a :class:`Step` asserting the false claim. It is rejected
    when a witness substitution makes ``lhs - rhs`` a nonzero number. Abstract
    functions (``sympy.Function``) in the difference need concrete stand-ins:
    give them in ``witness`` (e.g. ``{A: sympy.Lambda(x, x**3)}``); plain symbols
    not given there are drawn as small random rationals (seeded).
    """

    name: str
    description: str
    build: Callable[[], Step]
    witness: Mapping[Any, Any] | Callable[[], Mapping[Any, Any]] | None = None


@dataclasses.dataclass(frozen=True)
class LegacyDerivation:
    """A theorem in the legacy form: a hand-written statement and a bag of checked steps.

    Attributes:
      name: stable identifier (``family.theorem``), used by ``fisherlab prove NAME``.
      title: human title of the page.
      statement: the theorem, in LaTeX (rendered as display math).
      assumptions: hypotheses, in words/LaTeX.
      tier: :class:`Tier` reached, with ``scope`` saying the general setting or the size bound.
      scope: e.g. ``"general K (IndexedBase/Sum)"`` or ``"K = 2..5, every entry symbolic"``.
      build: zero-argument callable returning the ordered list of steps.
      negative_controls: at least one :class:`NegativeControl`.
      axioms: facts supplied by hand (name -> statement); shown on the page.
      references: seed files and papers.
      numeric: dotted names of the numeric functions this derivation backs.
      notes: free Markdown shown after the proof.
    """

    name: str
    title: str
    statement: str
    tier: Tier
    scope: str
    build: Callable[[], Sequence[Step]]
    negative_controls: Sequence[NegativeControl]
    assumptions: Sequence[str] = ()
    axioms: Mapping[str, str] = dataclasses.field(default_factory=dict)
    references: Sequence[str] = ()
    numeric: Sequence[str] = ()
    notes: str = ""

    def __post_init__(self):
        if not self.negative_controls:
            raise ValueError(
                f"derivation {self.name!r} has no negative control; every theorem "
                "needs a plausible false variant that the checker rejects")
        if not isinstance(self.tier, Tier):
            raise TypeError(f"derivation {self.name!r}: tier must be a Tier, got {self.tier!r}")
        object.__setattr__(self, "negative_controls", tuple(self.negative_controls))
        object.__setattr__(self, "assumptions", tuple(self.assumptions))
        object.__setattr__(self, "references", tuple(self.references))
        object.__setattr__(self, "numeric", tuple(self.numeric))
        object.__setattr__(self, "axioms", dict(self.axioms))

    legacy = True

    def verify(self) -> "LegacyReport":
        return verify_legacy(self)


# --------------------------------------------------------------------------- checking


def _sides(x) -> list:
    """A step side as a flat list of values (scalars and matrices, each keeping its shape)."""
    if isinstance(x, (list, tuple)):
        out = []
        for e in x:
            out += _sides(e)
        return out
    return [x]


def _difference(lhs, rhs, where) -> list:
    ls, rs = _sides(lhs), _sides(rhs)
    if len(ls) != len(rs):
        raise CheckError(f"{where}: {len(ls)} values on the left, {len(rs)} on the right")
    if not ls:
        raise CheckError(f"{where}: empty sides compare nothing")
    out = []
    for a, b in zip(ls, rs):
        validate([a, b], where)
        if not same_shape(a, b):
            raise CheckError(f"{where}: shape mismatch: {getattr(a, 'shape', 'scalar')} vs "
                             f"{getattr(b, 'shape', 'scalar')}")
        ea, eb = entries(a), entries(b)
        if not ea:
            raise CheckError(f"{where}: empty matrices compare nothing")
        out += [x - y for x, y in zip(ea, eb)]
    return out


# --------------------------------------------------------------------------- reports


@dataclasses.dataclass(frozen=True)
class StepResult:
    index: int
    claim: str
    passed: bool
    method: str
    seconds: float
    error: str = ""


@dataclasses.dataclass(frozen=True)
class LegacyControlResult:
    name: str
    description: str
    rejected: bool
    witness: str
    seconds: float
    error: str = ""


@dataclasses.dataclass(frozen=True)
class LegacyReport:
    """The verification report of a legacy derivation: one result per step and per control."""

    name: str
    tier: Tier
    steps: tuple[StepResult, ...]
    controls: tuple[LegacyControlResult, ...]
    build_seconds: float
    seconds: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return (not self.error and bool(self.steps) and all(s.passed for s in self.steps)
                and bool(self.controls) and all(c.rejected for c in self.controls))

    legacy = True

    @property
    def controls_rejected(self) -> int:
        return sum(c.rejected for c in self.controls)

    @property
    def passed_count(self) -> int:
        return sum(s.passed for s in self.steps)

    @property
    def total_count(self) -> int:
        return len(self.steps)

    @property
    def achieved(self) -> str:
        return self.tier.value

    def failures(self) -> list[str]:
        lines = []
        if self.error:
            lines.append(f"  build error: {self.error}")
        for s in self.steps:
            if not s.passed:
                lines.append(f"  step {s.index} NOT verified: {s.claim} {s.error}")
        for c in self.controls:
            if not c.rejected:
                lines.append(f"  negative control NOT rejected: {c.name} {c.error}")
        return lines

    def summary(self) -> str:
        status = "VERIFIED" if self.ok else "FAILED"
        return (f"{self.name}: {status} (legacy form, tier {self.tier.value}, "
                f"{sum(s.passed for s in self.steps)}/{len(self.steps)} steps, "
                f"{self.controls_rejected}/{len(self.controls)} controls rejected, "
                f"{self.seconds:.2f}s)")

    def raise_if_failed(self) -> None:
        if not self.ok:
            lines = [self.summary()]
            if self.error:
                lines.append(f"  build error: {self.error}")
            for s in self.steps:
                if not s.passed:
                    lines.append(f"  step {s.index} NOT verified: {s.claim} {s.error}")
            for c in self.controls:
                if not c.rejected:
                    lines.append(f"  negative control NOT rejected: {c.name} {c.error}")
            raise AssertionError("\n".join(lines))


def _check_step(step: Step, where: str) -> tuple[bool, str]:
    diff = _difference(step.lhs, step.rhs, where)
    ok, method = is_zero(diff)
    if not ok:
        return False, ""
    if step.kind == _NONNEG:
        for cert in _sides(step.rhs):
            for e in entries(cert):
                if not manifestly_nonnegative(e):
                    return False, ""
        return True, method + "+sos"
    return True, method


def verify_legacy(derivation: LegacyDerivation) -> LegacyReport:
    """Build and check every step and every negative control of ``derivation``."""
    t0 = time.perf_counter()
    try:
        steps = list(derivation.build())
    except Exception as exc:  # noqa: BLE001 - a build failure is a failed proof, reported
        return LegacyReport(derivation.name, derivation.tier, (), (), 0.0,
                            time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")
    build_seconds = time.perf_counter() - t0
    step_results = []
    for i, step in enumerate(steps, 1):
        ts = time.perf_counter()
        try:
            passed, method = _check_step(step, f"{derivation.name} step {i}")
            err = "" if passed else "did not reduce to exactly zero"
        except Exception as exc:  # noqa: BLE001
            passed, method, err = False, "", f"{type(exc).__name__}: {exc}"
        step_results.append(StepResult(i, step.claim, passed, method,
                                       time.perf_counter() - ts, err))
    control_results = [_check_control(c, derivation.name) for c in derivation.negative_controls]
    return LegacyReport(derivation.name, derivation.tier, tuple(step_results),
                        tuple(control_results), build_seconds, time.perf_counter() - t0)


def _check_control(control: NegativeControl, name: str) -> LegacyControlResult:
    ts = time.perf_counter()
    try:
        step = control.build()
        where = f"{name} control {control.name}"
        diff = _difference(step.lhs, step.rhs, where)
        w = control.witness() if callable(control.witness) else control.witness
        if step.kind == _NONNEG:
            # A false nonnegativity claim is rejected by a point where it is real and negative.
            quantity = []
            for s in _sides(step.lhs):
                quantity += entries(s)
            found = find_witness(quantity, w, negative=True, tries=64, seed=1)
            if found is None:
                return LegacyControlResult(control.name, control.description, False, "",
                                           time.perf_counter() - ts, "no negative witness found")
            return LegacyControlResult(control.name, control.description, True,
                                       _format_witness(found.point, found.value),
                                       time.perf_counter() - ts)
        found = find_witness(diff, w)
        if found is None:
            accepted, _ = is_zero(diff)
            why = ("the false claim reduced to zero: the checker accepted it" if accepted
                   else "no witness found: not shown false")
            return LegacyControlResult(control.name, control.description, False, "",
                                       time.perf_counter() - ts, why)
        return LegacyControlResult(control.name, control.description, True,
                                   _format_witness(found.point, found.value), time.perf_counter() - ts)
    except Exception as exc:  # noqa: BLE001
        return LegacyControlResult(control.name, control.description, False, "",
                                   time.perf_counter() - ts, f"{type(exc).__name__}: {exc}")


def _format_witness(subs, value) -> str:
    items = ", ".join(f"{k} = {v}" for k, v in list(subs.items())[:8])
    more = "" if len(subs) <= 8 else f", … ({len(subs)} values)"
    shown = value if getattr(value, "is_Rational", False) else sp.N(value, 6)
    return f"at {items}{more}: difference = {shown}"
