"""Derivations: immutable, machine-checked chains of symbolic steps.

A :class:`Derivation` is data: a name, a statement, its assumptions, the proof
tier it reaches, the axioms supplied by hand, references and the numeric
function it backs, plus a ``build`` callable that constructs the SymPy objects
of its :class:`Step`\\ s lazily (so importing the proofs is cheap).

:func:`verify` builds the steps and checks every one of them:

* an *equality* step ``lhs == rhs`` passes only when ``lhs - rhs`` reduces to
  exactly zero under a ladder of canonicalisations (``expand``, ``cancel``,
  ``together``/``expand`` of the numerator, and only then ``simplify``);
* a *nonnegativity* step ``expr >= 0`` passes only when ``expr - certificate``
  reduces to zero and the certificate is a sum of products of even powers and
  symbols SymPy itself knows to be nonnegative (a sum-of-squares certificate).

Every derivation also carries at least one :class:`NegativeControl`: a plausible
but false variant of a step. A control is *rejected* only when the checker
finds a **witness**: a substitution of exact (rational) values under which the
difference evaluates to a nonzero number. A control that merely "does not
simplify" is *not* counted as rejected -- failing to prove something is not a
disproof. A derivation whose control is not rejected fails verification, since
a check that cannot fail is a defect.

Nothing here ever passes a step it could not check: exceptions raised while
building or checking are recorded as failures, never swallowed into a pass.
"""

from __future__ import annotations

import dataclasses
import enum
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sympy as sp

__all__ = [
    "Tier",
    "Step",
    "NegativeControl",
    "Derivation",
    "StepResult",
    "ControlResult",
    "Report",
    "verify",
    "is_zero",
    "find_witness",
]


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
class Derivation:
    """A theorem together with its machine-checkable proof.

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

    def verify(self) -> "Report":
        return verify(self)

    def to_markdown(self, report: "Report | None" = None) -> str:
        from fisherlab.symbolic._render import to_markdown

        return to_markdown(self, report if report is not None else self.verify())


# --------------------------------------------------------------------------- checking


def _entries(expr: Any) -> list:
    if isinstance(expr, sp.MatrixBase):
        return list(expr)
    if isinstance(expr, sp.MatrixExpr):
        return list(expr.as_explicit())
    if isinstance(expr, (list, tuple)):
        out = []
        for e in expr:
            out.extend(_entries(e))
        return out
    return [sp.sympify(expr)]


def _difference(lhs: Any, rhs: Any) -> list:
    le, re_ = _entries(lhs), _entries(rhs)
    if len(le) != len(re_):
        raise ValueError(f"shape mismatch: lhs has {len(le)} entries, rhs has {len(re_)}")
    return [a - b for a, b in zip(le, re_)]


def _doit(e):
    return e.doit() if e.has(sp.Derivative, sp.Sum, sp.Integral, sp.Subs, sp.Product) else e


# The ladder of canonicalisations: cheap and exact first, simplify last.
_CANONICAL: tuple[tuple[str, Callable[[sp.Expr], sp.Expr]], ...] = (
    ("expand", lambda e: sp.expand(_doit(e))),
    ("cancel", lambda e: sp.cancel(sp.expand(_doit(e)))),
    ("together", lambda e: sp.expand(sp.numer(sp.together(sp.expand(_doit(e)))))),
    ("expand_log_exp", lambda e: sp.expand(sp.expand_log(sp.powsimp(sp.expand(_doit(e)), force=True), force=True))),
    ("simplify", lambda e: sp.simplify(_doit(e))),
)


def is_zero(expr: Any) -> tuple[bool, str]:
    """Whether ``expr`` (scalar, matrix, list) reduces to exactly zero.

    Returns ``(True, method)`` with the first canonicalisation that reached 0 for
    every entry, or ``(False, "")``. Only a literal ``0`` counts.
    """
    entries = _entries(expr)
    methods_used = []
    for e in entries:
        if e == 0:
            continue
        for name, fn in _CANONICAL:
            if fn(e) == 0:
                methods_used.append(name)
                break
        else:
            return False, ""
    if not methods_used:
        return True, "literal"
    order = [n for n, _ in _CANONICAL]
    return True, max(methods_used, key=order.index)


def _undefined_functions(expr: sp.Basic) -> set:
    return {f.func for f in expr.atoms(sp.core.function.AppliedUndef)}


def find_witness(diff: Any, witness: Mapping[Any, Any] | None = None, *,
                 tries: int = 8, seed: int = 0) -> tuple[dict, sp.Expr] | None:
    """Search for an exact substitution making some entry of ``diff`` nonzero.

    ``witness`` fixes some symbols/functions; other free symbols are drawn as
    small positive rationals (positive so logs, square roots and assumptions
    such as ``positive=True`` stay valid). Returns ``(substitution, value)`` or
    ``None`` when no witness was found (then the difference was *not* shown
    nonzero).
    """
    rng = random.Random(seed)
    witness = dict(witness or {})
    fn_subs = {k: v for k, v in witness.items() if isinstance(k, sp.FunctionClass)}
    sym_subs = {k: v for k, v in witness.items() if not isinstance(k, sp.FunctionClass)}
    entries = [e for e in _entries(diff)]
    for attempt in range(tries):
        for e in entries:
            if e == 0:
                continue
            e2 = _doit(e.subs(sym_subs)) if sym_subs else _doit(e)
            if fn_subs:
                e2 = e2.replace(lambda x: isinstance(x, sp.core.function.AppliedUndef)
                                and x.func in fn_subs,
                                lambda x: fn_subs[x.func](*x.args))
                e2 = _doit(e2)
            if _undefined_functions(e2):
                continue  # cannot evaluate an abstract function; need a witness for it
            free = sorted(e2.free_symbols, key=lambda s: s.name)
            subs = {s: sp.Rational(rng.randint(1, 9), rng.randint(2, 7)) for s in free}
            if attempt == 0 and free:
                subs = {s: sp.Rational(i + 2, i + 3) for i, s in enumerate(free)}
            try:
                val = _doit(e2.subs(subs))
                if isinstance(val, sp.MatrixBase):
                    continue
                num = sp.N(val, 50)
            except Exception:  # noqa: BLE001 - an unevaluable point is just not a witness
                continue
            if num.is_number and num.is_finite is not False and abs(complex(num)) > 1e-30:
                full = {**sym_subs, **{k: v for k, v in subs.items()}}
                for f, lam in fn_subs.items():
                    full[f] = lam
                return full, sp.nsimplify(val) if val.is_Rational else num
    return None


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
class ControlResult:
    name: str
    description: str
    rejected: bool
    witness: str
    seconds: float
    error: str = ""


@dataclasses.dataclass(frozen=True)
class Report:
    name: str
    tier: Tier
    steps: tuple[StepResult, ...]
    controls: tuple[ControlResult, ...]
    build_seconds: float
    seconds: float
    error: str = ""

    @property
    def ok(self) -> bool:
        return (not self.error and bool(self.steps) and all(s.passed for s in self.steps)
                and bool(self.controls) and all(c.rejected for c in self.controls))

    @property
    def controls_rejected(self) -> int:
        return sum(c.rejected for c in self.controls)

    def summary(self) -> str:
        status = "VERIFIED" if self.ok else "FAILED"
        return (f"{self.name}: {status} (tier {self.tier.value}, "
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


def _check_step(step: Step) -> tuple[bool, str]:
    diff = _difference(step.lhs, step.rhs)
    ok, method = is_zero(diff)
    if not ok:
        return False, ""
    if step.kind == _NONNEG:
        for cert in _entries(step.rhs):
            if not _is_sos(cert):
                return False, ""
        return True, method + "+sos"
    return True, method


def _is_sos(expr: sp.Expr) -> bool:
    """Manifest nonnegativity: a sum of terms each nonnegative by construction."""
    expr = sp.sympify(expr)
    terms = sp.Add.make_args(expr)
    for t in terms:
        if t.is_nonnegative:
            continue
        factors = sp.Mul.make_args(t)
        # An even power is nonnegative only for a real base (z**2 < 0 for z = i).
        if all(f.is_nonnegative or (f.is_Pow and f.exp.is_even and f.base.is_extended_real)
               for f in factors):
            continue
        return False
    return True


def verify(derivation: Derivation) -> Report:
    """Build and check every step and every negative control of ``derivation``."""
    t0 = time.perf_counter()
    try:
        steps = list(derivation.build())
    except Exception as exc:  # noqa: BLE001 - a build failure is a failed proof, reported
        return Report(derivation.name, derivation.tier, (), (), 0.0,
                      time.perf_counter() - t0, f"{type(exc).__name__}: {exc}")
    build_seconds = time.perf_counter() - t0
    step_results = []
    for i, step in enumerate(steps, 1):
        ts = time.perf_counter()
        try:
            passed, method = _check_step(step)
            err = "" if passed else "did not reduce to exactly zero"
        except Exception as exc:  # noqa: BLE001
            passed, method, err = False, "", f"{type(exc).__name__}: {exc}"
        step_results.append(StepResult(i, step.claim, passed, method,
                                       time.perf_counter() - ts, err))
    control_results = [_check_control(c) for c in derivation.negative_controls]
    return Report(derivation.name, derivation.tier, tuple(step_results),
                  tuple(control_results), build_seconds, time.perf_counter() - t0)


def _check_control(control: NegativeControl) -> ControlResult:
    ts = time.perf_counter()
    try:
        step = control.build()
        diff = _difference(step.lhs, step.rhs)
        if step.kind == _NONNEG:
            # A false nonnegativity claim is rejected by a point where it is negative.
            found = _find_negative(_entries(step.lhs), control)
            if found is None:
                return ControlResult(control.name, control.description, False, "",
                                     time.perf_counter() - ts, "no negative witness found")
            return ControlResult(control.name, control.description, True, found,
                                 time.perf_counter() - ts)
        w = control.witness() if callable(control.witness) else control.witness
        found = find_witness(diff, w)
        if found is None:
            accepted, _ = is_zero(diff)
            why = ("the false claim reduced to zero: the checker accepted it" if accepted
                   else "no witness found: not shown false")
            return ControlResult(control.name, control.description, False, "",
                                 time.perf_counter() - ts, why)
        subs, value = found
        return ControlResult(control.name, control.description, True,
                             _format_witness(subs, value), time.perf_counter() - ts)
    except Exception as exc:  # noqa: BLE001
        return ControlResult(control.name, control.description, False, "",
                             time.perf_counter() - ts, f"{type(exc).__name__}: {exc}")


def _find_negative(entries, control: NegativeControl) -> str | None:
    w = control.witness() if callable(control.witness) else control.witness
    rng = random.Random(1)
    for _ in range(64):
        for e in entries:
            e2 = e.subs(w) if w else e
            free = sorted(e2.free_symbols, key=lambda s: s.name)
            subs = {s: sp.Rational(rng.randint(-9, 9), rng.randint(1, 5)) for s in free}
            try:
                val = sp.N(_doit(e2.subs(subs)), 50)
            except Exception:  # noqa: BLE001
                continue
            if val.is_real and val < 0:
                return _format_witness({**(dict(w) if w else {}), **subs}, val)
    return None


def _format_witness(subs: Mapping, value) -> str:
    items = ", ".join(f"{k} = {v}" for k, v in list(subs.items())[:8])
    more = "" if len(subs) <= 8 else f", … ({len(subs)} values)"
    return f"at {items}{more}: difference = {sp.N(value, 6) if not getattr(value, 'is_Rational', False) else value}"
