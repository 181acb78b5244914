r"""Derivations in chain form: a conclusion, a calculational chain per conclusion, controls.

A :class:`Derivation` states its **conclusion** as SymPy relations over structural objects
(``MatrixSymbol``\ s, undefined functions, the nodes of :mod:`._nodes`). Its ``proof``
builds one or more :class:`Chain`\ s ``e_0 = e_1 = ... = e_n`` (``>=`` links allowed for an
inequality); :func:`verify` checks that each chain starts at the conclusion's left side and
ends at its right side, and checks every :class:`Link` by the check it names:

* :class:`Algebra` (tier ``A``): the matrix-algebra normal form of :mod:`._algebra`, the
  finite-sum canonical form of :mod:`._sums`, or the scalar zero ladder of :mod:`._check`;
* :class:`Entrywise` (tier ``A``): every entry at general dimension, by :class:`._instantiate.Entries`;
* :class:`Explicit` (tier ``B``): both sides instantiated by the checker at every size of a
  :class:`Sizes` range, fully symbolic entries, compared exactly;
* :class:`Model` (tier ``A-model``): instantiated with undefined functions (a generic model)
  at stated sizes;
* :class:`Lemma`: another verified derivation's conclusion, instantiated by an explicit
  substitution and applied to a sub-expression; its hypotheses must be among this one's.

A :class:`Control` mutates one named sub-expression of one link (or of the conclusion) and
must be refuted by a :class:`~._witness.Witness`.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sympy as sp
from sympy.assumptions.assume import AppliedPredicate
from sympy.core.function import AppliedUndef
from sympy.matrices.expressions.matexpr import MatrixExpr

from ._algebra import Normaliser
from ._checks import (TIERS, Algebra, Axiom, Entrywise, Explicit, Given, Model, Sizes,
                      check_tier_text, tier_rank, validate_relation)
from ._check import (LADDER_NAMES, CheckError, captured, denominators, difference, is_zero, manifestly_nonnegative,
                     same_shape, undefined_functions, validate)
from ._instantiate import (Entries, Explicit as _ExplicitEval, check_expectation, check_value, lazy,
                           matrix_properties, sizes_text, unfold)
from ._report import ControlResult, LinkResult, Report
from ._sums import from_sympy, is_zero_sums
from ._witness import ASSUMPTIONS, find_witness, latex_point, render_value, respects, unmet_assumptions

__all__ = ["Lemma", "Link", "Chain", "Control", "Derivation", "verify"]

@dataclasses.dataclass(frozen=True)
class Lemma:
    """Cite ``derivation``'s conclusion (part ``part``) instantiated by ``subs``: the link
    replaces an occurrence of one side of the instance by the other."""

    derivation: "Derivation"
    subs: Mapping = dataclasses.field(default_factory=dict)
    part: int = 0

    def __post_init__(self):
        if not isinstance(self.derivation, Derivation):
            raise TypeError("Lemma: cite a Derivation (its checked conclusion), got "
                            f"{type(self.derivation).__name__}")


_CHECKS = (Algebra, Entrywise, Explicit, Model, Lemma, Given, Axiom)


@dataclasses.dataclass(frozen=True)
class Link:
    """One link ``previous rel expr`` of a chain: ``by`` is how it is checked, ``why`` the
    justification in words (shown apart from the checked math), ``label`` a name a control
    can target."""

    expr: Any
    by: Any
    why: str = ""
    rel: str = "="
    label: str = ""

    def __post_init__(self):
        if not isinstance(self.by, _CHECKS):
            raise TypeError(f"Link: `by` must be one of {[c.__name__ for c in _CHECKS]}, "
                            f"got {self.by!r}")
        if self.rel not in ("=", ">="):
            raise ValueError(f"Link: rel must be '=' or '>=', got {self.rel!r}")


@dataclasses.dataclass(frozen=True)
class Chain:
    """``start rel_1 links[0].expr rel_2 ... links[-1].expr``, proving conclusion ``part``."""

    start: Any
    links: Sequence[Link]
    part: int = 0
    title: str = ""

    def __post_init__(self):
        object.__setattr__(self, "links", tuple(self.links))
        if not self.links:
            raise ValueError("Chain: a chain needs at least one link")
        for k, ln in enumerate(self.links):
            if not isinstance(ln, Link):
                raise TypeError(f"Chain: link {k + 1} is {ln!r}, not a Link")

    @property
    def exprs(self) -> list:
        return [self.start] + [ln.expr for ln in self.links]


@dataclasses.dataclass(frozen=True)
class Control:
    """A negative control: ``target`` (a link label, ``"conclusion"`` or ``"conclusion:k"``)
    with the one sub-expression ``replace[0]`` replaced by ``replace[1]`` -- the mistake
    people make (``Lambda -> diag(p)``, a dropped term, a swapped factor order). Verification
    must refute the mutated claim with a witness.

    Args:
      witness: values chosen for the witness: stand-ins for abstract functions
        (``{g: Lambda(u, u**2)}``) and values for some symbols (assumptions are checked).
      at: where to look for the witness (an :class:`Explicit` or :class:`Model`); by default
        the target link's own instantiation, or every size symbol at 2.
      specialise: sizes set equal before the mutation, e.g. ``{k: m}`` so that a swapped product
        ``C A`` is defined (stated on the page).
      hypotheses: matrix hypotheses of symbols the mutation introduces (``Q.symmetric(S)`` for
        "a merely symmetric factor"); they shape the witness instance only.
    """

    name: str
    target: str
    replace: Any
    why: str
    witness: Mapping = dataclasses.field(default_factory=dict)
    at: Any = None
    specialise: Mapping = dataclasses.field(default_factory=dict)
    hypotheses: Sequence = ()

    def __post_init__(self):
        if not self.name or not self.why:
            raise ValueError("Control: give it a name and say which mistake it is (why=...)")
        if not isinstance(self.target, str) or not self.target:
            raise ValueError(f"Control {self.name!r}: name the link (its label) or 'conclusion' it "
                             "mutates; free-standing controls are not accepted")
        if not callable(self.replace):
            old, new = self.pair()
            if old == new:
                raise ValueError(f"Control {self.name!r}: replacing {old} by itself mutates nothing")
        if self.at is not None and not isinstance(self.at, (Explicit, Model)):
            raise TypeError(f"Control {self.name!r}: `at` must be Explicit or Model")
        if any(not isinstance(h, AppliedPredicate) for h in self.hypotheses):
            raise TypeError(f"Control {self.name!r}: hypotheses are sympy.Q.<property>(X)")
        object.__setattr__(self, "hypotheses", tuple(self.hypotheses))

    def pair(self):
        rep = self.replace() if callable(self.replace) else self.replace
        if not (isinstance(rep, tuple) and len(rep) == 2):
            raise ValueError(f"Control {self.name!r}: replace must be one pair (old, new), got {rep!r}")
        return sp.sympify(rep[0]), sp.sympify(rep[1])


# ============================================================================ derivation


def _parts(conclusion) -> tuple:
    return tuple(conclusion) if isinstance(conclusion, (tuple, list)) else (conclusion,)


@dataclasses.dataclass(frozen=True, eq=False)
class Derivation:
    """A theorem in chain form.

    Attributes:
      name: ``family.theorem``; title: the page title.
      conclusion: a relation (``sympy.Eq`` / ``sympy.Ge``, unevaluated) or a tuple of them.
      proof: zero-argument callable returning the :class:`Chain`\\ s (built lazily).
      tier: the tier the chains must reach, e.g. ``"A"``, ``"A-model"``, ``"B"``, ``"A+B"``.
      scope: the general setting or the size bound, in words.
      controls: at least one :class:`Control`.
      hypotheses: ``sympy.Q.<property>(X)`` matrix hypotheses and relations (``x > 0``,
        ``Eq(s, expr)``): they shape the instances, restrict the witnesses and must be
        discharged where the derivation is cited.
      definitions: ``{symbol: structural expression}`` abbreviations, unfolded by the checker.
      assumptions: further hypotheses in words; axioms: facts supplied by hand (name -> LaTeX).
      references; numeric: dotted names of the numeric counterparts; tested_by: pytest node
      ids of the tests that check those counterparts; notes: Markdown.
    """

    name: str
    title: str
    conclusion: Any
    proof: Callable[[], Any]
    tier: str
    scope: str
    controls: Sequence[Control]
    hypotheses: Sequence = ()
    definitions: Mapping = dataclasses.field(default_factory=dict)
    assumptions: Sequence[str] = ()
    axioms: Mapping[str, str] = dataclasses.field(default_factory=dict)
    references: Sequence[str] = ()
    numeric: Sequence[str] = ()
    tested_by: Sequence[str] = ()
    notes: str = ""

    def __post_init__(self):
        who = f"derivation {self.name!r}"
        if self.conclusion is None or (isinstance(self.conclusion, (tuple, list)) and not self.conclusion):
            raise ValueError(f"{who} has no conclusion: state what it proves as a SymPy relation")
        for k, rel in enumerate(_parts(self.conclusion)):
            validate_relation(rel, f"{who}, conclusion part {k + 1}")
        if not callable(self.proof):
            raise TypeError(f"{who}: proof must be a callable returning the chains")
        object.__setattr__(self, "tier", check_tier_text(self.tier, who))
        if not self.controls:
            raise ValueError(f"{who} has no negative control; every theorem needs a real mistake "
                             "that the checker refutes")
        for c in self.controls:
            if not isinstance(c, Control):
                raise TypeError(f"{who}: controls hold {c!r}, not a Control")
        names = [c.name for c in self.controls]
        if len(set(names)) != len(names):
            raise ValueError(f"{who}: duplicate control names {names}")
        for h in self.hypotheses:
            if not isinstance(h, (AppliedPredicate, sp.core.relational.Relational)):
                raise TypeError(f"{who}: hypothesis {h!r} is neither sympy.Q.<property>(X) nor a relation")
            if isinstance(h, sp.logic.boolalg.BooleanAtom):
                raise ValueError(f"{who}: hypothesis evaluated to {h}")
        props = matrix_properties(self.hypotheses)
        defined = [X for X in props if X in dict(self.definitions)]
        if defined:
            # the instances shape only free symbols: a property of an abbreviation would be
            # assumed by the algebra but ignored by every instance and witness
            raise ValueError(f"{who}: hypotheses about {defined}, which the definitions define; "
                             "state the property of the symbols of the definition instead")
        for s, v in dict(self.definitions).items():
            if not isinstance(s, (sp.Symbol, sp.MatrixSymbol)):
                raise TypeError(f"{who}: definitions define symbols, got {s!r}")
            validate(v, f"{who}, definition of {s}")
            if not same_shape(s, v):
                raise ValueError(f"{who}: definition of {s} has shape {getattr(v, 'shape', 'scalar')}, "
                                 f"the symbol {getattr(s, 'shape', 'scalar')}")
        object.__setattr__(self, "controls", tuple(self.controls))
        object.__setattr__(self, "hypotheses", tuple(self.hypotheses))
        object.__setattr__(self, "definitions", dict(self.definitions))
        object.__setattr__(self, "assumptions", tuple(self.assumptions))
        object.__setattr__(self, "axioms", dict(self.axioms))
        object.__setattr__(self, "references", tuple(self.references))
        object.__setattr__(self, "numeric", tuple(self.numeric))
        object.__setattr__(self, "tested_by", tuple(self.tested_by))

    @property
    def parts(self) -> tuple:
        return _parts(self.conclusion)

    def chains(self) -> list:
        """The proof's chains, built on first use and kept: the page renders the very chains
        that were checked (a proof callable that returned other chains on a later call would
        otherwise show unchecked links beside the marks of the checked ones)."""
        built = self.__dict__.get("_chains")
        if built is None:
            chains = self.proof()
            built = (chains,) if isinstance(chains, Chain) else tuple(chains)
            object.__setattr__(self, "_chains", built)
        return list(built)

    def verify(self) -> Report:
        return verify(self)


# ============================================================================ verification

_VERIFIED: "weakref.WeakKeyDictionary[Derivation, Report]" = weakref.WeakKeyDictionary()


def verify(derivation: Derivation) -> Report:
    """Check every chain, link and control of ``derivation`` (and, first, every lemma it cites)."""
    return _verify(derivation, ())


def _verify(d: Derivation, stack: tuple) -> Report:
    t0 = time.perf_counter()
    if d in stack:
        cycle = " -> ".join(x.name for x in stack + (d,))
        return Report(d.name, d.tier, "", (), (), error=f"cycle among derivations: {cycle}")
    ctx = _Context(d, stack)
    try:
        chains = d.chains()
        if not chains:
            raise CheckError("the proof has no chain")
        for k, ch in enumerate(chains, 1):
            if not isinstance(ch, Chain):
                raise CheckError(f"proof item {k} is {ch!r}, not a Chain")
            if not 0 <= ch.part < len(d.parts):
                raise CheckError(f"chain {k} proves part {ch.part + 1}, but the conclusion has "
                                 f"{len(d.parts)} part(s)")
        missing = [p + 1 for p in range(len(d.parts)) if not any(c.part == p for c in chains)]
        if missing:
            raise CheckError(f"no chain proves conclusion part(s) {missing}")
    except Exception as exc:  # noqa: BLE001 - a build failure is a failed proof, reported
        return Report(d.name, d.tier, "", (), (), seconds=time.perf_counter() - t0,
                      error=f"building the proof: {type(exc).__name__}: {exc}")
    results: list[LinkResult] = []
    chain_tiers = []
    errors = []
    ctx.chains = chains
    ctx.results = results
    for ci, ch in enumerate(chains, 1):
        rel = d.parts[ch.part]
        ctx.current = (ci, ch.part)
        tiers = []
        try:
            _check_ends(d, ci, ch, rel)
        except CheckError as exc:
            errors.append(str(exc))
        exprs = ch.exprs
        for li, ln in enumerate(ch.links, 1):
            res = ctx.check_link(ci, li, exprs[li - 1], ln, rel)
            results.append(res)
            tiers.append(res.tier)
        chain_tiers.append((ch.part, max(tiers, key=tier_rank) if tiers else "B"))
    ctx.chains = chains
    controls = tuple(ctx.check_control(c) for c in d.controls)
    achieved = _achieved(d, chain_tiers)
    conditions = []
    for r in results:
        for c in r.conditions:
            if c not in conditions:
                conditions.append(c)
    rep = Report(d.name, d.tier, achieved, tuple(results), controls, tuple(chain_tiers),
                 tuple(conditions), time.perf_counter() - t0, "; ".join(errors))
    _VERIFIED[d] = rep
    return rep


def _achieved(d, chain_tiers) -> str:
    per_part = [{t for p, t in chain_tiers if p == k} for k in range(len(d.parts))]
    common = [t for t in TIERS if all(t in s for s in per_part)]
    if common:
        return "+".join(common)
    best = [min(s, key=tier_rank) for s in per_part]
    return max(best, key=tier_rank)


def _check_ends(d, ci, ch, rel):
    if ch.start != rel.lhs:
        raise CheckError(f"chain {ci} starts at {ch.start}, not at the conclusion's left side {rel.lhs}")
    if ch.links[-1].expr != rel.rhs:
        raise CheckError(f"chain {ci} ends at {ch.links[-1].expr}, not at the conclusion's right "
                         f"side {rel.rhs}")
    if isinstance(rel, sp.Equality) and any(ln.rel != "=" for ln in ch.links):
        raise CheckError(f"chain {ci} has a '>=' link but the conclusion is an equality")


def _free_matrix_symbols(exprs) -> set:
    out = set()
    for e in exprs:
        if isinstance(e, sp.Basic):
            out |= e.atoms(sp.MatrixSymbol)
    return out


def _size_symbols(exprs) -> set:
    out = set()
    for X in _free_matrix_symbols(exprs):
        for s in X.shape:
            out |= sp.sympify(s).free_symbols
    return out


class _Context:
    def __init__(self, d: Derivation, stack: tuple):
        self.d = d
        self.stack = stack
        self.props = matrix_properties(d.hypotheses)
        rels = [h for h in d.hypotheses if isinstance(h, sp.core.relational.Relational)]
        self.matrix_relations = [h for h in rels if isinstance(h.lhs, MatrixExpr)
                                 or isinstance(h.rhs, MatrixExpr)]
        self.relations = [h for h in rels if h not in self.matrix_relations]
        self.symmetric = frozenset(X for X, p in self.props.items()
                                   if p & {"symmetric", "positive_definite", "diagonal"})
        # symbols a relation among the hypotheses constrains (A u = lambda u): their values are
        # checked against it, and need not be general matrices
        self.pinned = set()
        for h in rels:
            self.pinned |= h.atoms(sp.MatrixSymbol) | h.free_symbols
        self.chains = []
        self._values: dict = {}   # (values function, sizes) -> the values it returned (shared)
        self._checked: dict = {}  # values whose hypotheses were checked

    # ------------------------------------------------------------------ links
    def check_link(self, ci, li, prev, ln: Link, rel) -> LinkResult:
        t0 = time.perf_counter()
        by = ln.by
        if isinstance(by, Lemma) and by.derivation is self.d:
            tier = self._part_tier(by.part)
        else:
            tier = by.tier if not isinstance(by, Lemma) else _best(by.derivation.tier)
        where = f"{self.d.name}, chain {ci} link {li}"
        base = dict(chain=ci, index=li, label=ln.label, rel=ln.rel, tier=tier)
        try:
            for e in (prev, ln.expr):
                validate(e, where)
                if isinstance(e, sp.Basic) and (isinstance(e, sp.MatrixBase) or e.atoms(sp.MatrixBase)):
                    raise CheckError(f"{where}: explicit matrices in a chain; write the link "
                                     "structurally and check it with Explicit(...) (tier B)")
            if not same_shape(prev, ln.expr):
                raise CheckError(f"{where}: shapes differ: {getattr(prev, 'shape', 'scalar')} vs "
                                 f"{getattr(ln.expr, 'shape', 'scalar')}")
            if ln.rel == ">=" and isinstance(rel, sp.Equality):
                raise CheckError(f"{where}: a '>=' link in the proof of an equality")
            passed, method, extra = self._dispatch(where, prev, ln, by)
            err = "" if passed else extra.get("why", "not shown")
            return LinkResult(**base, passed=passed, method=method, sizes=extra.get("sizes", ""),
                              conditions=tuple(extra.get("conditions", ())),
                              axioms=tuple(sorted(extra.get("axioms", ()))),
                              seconds=time.perf_counter() - t0, error=err)
        except Exception as exc:  # noqa: BLE001 - recorded as a failure, never a pass
            return LinkResult(**base, passed=False, method="", seconds=time.perf_counter() - t0,
                              error=f"{type(exc).__name__}: {exc}")

    def _dispatch(self, where, prev, ln, by):
        if isinstance(by, Algebra):
            return self._algebra(where, prev, ln)
        if isinstance(by, Entrywise):
            return self._entrywise(where, prev, ln)
        if isinstance(by, (Explicit, Model)):
            return self._explicit(where, prev, ln, by)
        if isinstance(by, Lemma):
            return self._lemma(where, prev, ln, by)
        if isinstance(by, Given):
            if by.relation not in self.d.hypotheses:
                raise CheckError(f"{where}: {by.relation} is not among the hypotheses of {self.d.name}")
            h = by.relation
            inst = _Instance(">=" if isinstance(h, sp.GreaterThan) else
                             "=" if isinstance(h, sp.Equality) else "?", h.lhs, h.rhs)
            return self._apply(where, prev, ln, inst, "hypothesis", [])
        if isinstance(by, Axiom):
            inst = _instance(by.relation, by.subs, where, f"axiom {by.name!r}")
            return self._apply(where, prev, ln, inst, f"axiom {by.name}", [])
        raise CheckError(f"{where}: unknown check {by!r}")

    def _struct_conditions(self, *exprs):
        out = []
        for e in exprs:
            e = unfold(sp.sympify(e), self.d.definitions)
            out += [b for b in denominators(e) if b not in out]
        return out

    def _zero(self, e) -> bool:
        return is_zero(e)[0]

    def _algebra(self, where, prev, ln):
        norm = Normaliser(self.d.definitions, self.symmetric)
        lhs, rhs = prev, ln.expr
        conds = self._struct_conditions(lhs, rhs)
        if ln.rel == ">=":
            if isinstance(unfold(sp.sympify(lhs), self.d.definitions), MatrixExpr):
                raise CheckError(f"{where}: '>=' between matrices; compare scalars")
            q = unfold(sp.sympify(lhs), self.d.definitions)
            r = unfold(sp.sympify(rhs), self.d.definitions)
            q = q if r == 0 else q - r
            ok = manifestly_nonnegative(q, extra=norm.gram)
            return ok, "a sum of nonnegative terms (as written)", {
                "conditions": conds, "why": "the difference is not, as written, a sum of products "
                "of real nonnegative factors"}
        ul, ur = unfold(sp.sympify(lhs), self.d.definitions), unfold(sp.sympify(rhs), self.d.definitions)
        if not isinstance(ul, MatrixExpr) and (ul.has(sp.Sum) or ur.has(sp.Sum)):
            ranges: dict = {}
            poly = from_sympy(ul, ranges) - from_sympy(ur, ranges)
            avoid = {s.name for s in (ul.free_symbols | ur.free_symbols)}
            ok, key = is_zero_sums(poly, ranges, self._zero, avoid=avoid)
            return ok, "finite sums", {"conditions": conds,
                                       "why": f"the finite sums differ (in the term of {key})"}
        ok, why = norm.equal(lhs, rhs, self._zero)
        conds += [c for c in norm.conditions if c not in conds]
        method = "matrix algebra" if isinstance(ul, MatrixExpr) else "scalar algebra"
        return ok, method, {"conditions": conds, "axioms": norm.used, "why": why}

    def _entrywise(self, where, prev, ln):
        by = ln.by
        ent = Entries(self.d.definitions, self.props, values=by.values, operators=by.operators)
        lhs = unfold(sp.sympify(prev), self.d.definitions)
        rhs = unfold(sp.sympify(ln.expr), self.d.definitions)
        conds = self._struct_conditions(lhs, rhs)
        avoid = {s.name for s in (lhs.free_symbols | rhs.free_symbols)}
        if isinstance(lhs, MatrixExpr):
            (rl, cl), (rr, cr) = ent.dims(lhs), ent.dims(rhs)
            r = ent.fresh(ent.finest(rl, rr), "i")
            c = ent.fresh(ent.finest(cl, cr), "j")
            pl, pr = ent.entry(lhs, r, c), ent.entry(rhs, r, c)
        else:
            pl, pr = ent.scalar(lhs), ent.scalar(rhs)
        if ln.rel == ">=":
            if isinstance(lhs, MatrixExpr) and tuple(lhs.shape) != (1, 1):
                raise CheckError(f"{where}: '>=' between matrices (entry-wise or positive "
                                 "semidefinite?); compare scalars")
            q = (pl - pr) if pr.terms else pl
            expr = q.to_sympy(ent.ranges)
            ok = manifestly_nonnegative(expr)
            return ok, "entry-wise, manifestly nonnegative", {
                "conditions": conds, "why": "the entry is not, as written, a sum of squares"}
        self._generic_entrywise(where, ent, (lhs, rhs), by)
        ok, key = is_zero_sums(pl - pr, ent.ranges, self._zero, avoid=avoid,
                               symmetric=ent.symmetric_bases)
        return ok, "entry-wise", {"conditions": conds, "axioms": {"index bijection"},
                                  "why": f"the entries differ (in the term of {key})"}

    def _per_size(self, fn, sizes, convert):
        """``convert(fn(sizes))``, computed once per function and sizes (shared by every link)."""
        key = (id(fn), tuple(sorted((str(k), v) for k, v in sizes.items())))
        if key not in self._values:
            self._values[key] = convert(fn(sizes))
        return self._values[key]

    def evaluator(self, by, sizes, extra_props=None, cover=True) -> _ExplicitEval:
        """The explicit evaluator of ``by`` at ``sizes``; ``cover``: for a link's check (values
        may cover their hypotheses' class, see :func:`._instantiate.check_value`), not for a
        witness search (each value must lie in the class)."""
        values = self._per_size(by.values, sizes, dict) if by.values is not None else {}
        ops = by.operators
        if callable(ops):
            ops = self._per_size(ops, sizes, dict)
        change, domain = {}, ()
        if getattr(by, "coordinates", None) is not None:
            change, domain = self._per_size(by.coordinates, sizes, _change_of_variables)
        props = self.props if not extra_props else {**self.props, **extra_props}
        ev = _ExplicitEval(sizes, values, self.d.definitions, props, ops, change=change,
                           domain=domain, on_value=lambda X, v: self._check_value(X, v, props, cover))
        for X, v in values.items():
            if not lazy(v):   # a lazy one is checked when it is computed (on_value)
                self._check_value(X, v, props, cover)
        for name, op in ops.items():
            check_expectation(name, op)
        given = set(values) | set(sizes)
        for h in self.relations:
            if h.free_symbols & set(values):
                _satisfied(h, ev, f"{self.d.name}: the values given do not satisfy the hypothesis {h}",
                           every=h.free_symbols <= given)
        for h in self.matrix_relations:
            if not is_zero(difference(ev(h.lhs), ev(h.rhs), f"hypothesis {h}"))[0]:
                raise CheckError(f"{self.d.name}: the instance at "
                                 f"{', '.join(f'{k} = {v}' for k, v in sizes.items())} does not "
                                 f"satisfy the hypothesis {h}; give values that do")
        return ev

    def _check_value(self, X, v, props, cover):
        """A value given for ``X`` is valid SymPy and meets ``X``'s matrix hypotheses (checked
        once per value: a values function's results are shared by every link)."""
        key = (X, id(v), frozenset(props.get(X, ())), cover)
        if key in self._checked:
            return
        validate(v, f"{self.d.name}: the value given for {X}")
        _keeps_assumptions(X, v, f"{self.d.name}: the value given for {X}")
        check_value(X, v, props.get(X, set()), f"{self.d.name}: the value given for {X}", cover)
        self._checked[key] = v   # kept alive: its id stays its own

    def _generic(self, ev, exprs, by):
        """The values of the symbols a link uses, at one size: ``(special, defined)``.

        A value stays generic when it carries a free symbol or an undefined function of its own
        (one the link's expressions do not use), uses no entry of a checker-made generic instance
        and equals no other symbol's value; ``special`` lists ``(symbol, value, reason)`` for the
        others (``A -> 0``, ``A -> I``, ``A -> a I`` with ``a`` a symbol of the link, ``B -> A``'s
        value: the check would be about that instance only). Symbols listed in ``by.defines``
        are quantities the instantiation defines, not free variables: ``defined`` lists them
        with their values, for the page."""
        used, mine = _link_symbols(unfold(sp.sympify(e), self.d.definitions) for e in exprs)
        mine |= set(ev.sizes)
        generic = set()
        for g in ev.generated.values():
            generic |= g.free_symbols
        seen, special, defined = {}, [], []
        for X, v in ev.values.items():
            if X not in used or lazy(v):
                continue   # not in this link, or never computed
            val = sp.ImmutableMatrix(v) if isinstance(v, sp.MatrixBase) else sp.sympify(v)
            if X in _defines(by):
                defined.append((X, val))
                continue
            own = (val.free_symbols - mine) | {f.func for f in val.atoms(AppliedUndef)}
            taken = val.free_symbols & generic
            same = [Y for Y, w in seen.items() if w == val]
            short = _rank_short(X, val, mine, self.props.get(X, set())) \
                if own and isinstance(X, sp.MatrixSymbol) and X not in self.pinned else None
            if not own:
                special.append((X, val, f"{X} is set to a special value ({val}) with no free "
                                        "symbol of its own"))
            elif short:
                special.append((X, val, _Short(short)))
            elif taken:
                special.append((X, val, f"the value of {X} uses {', '.join(sorted(map(str, taken)))}, "
                                        "entries of the generic instance of another symbol"))
            elif same:
                special.append((X, val, f"{X} is set to the value of {same[0]}"))
            seen[X] = val
        return special, defined

    def _generic_entrywise(self, where, ent, exprs, by):
        """The entry-wise values of the symbols a link uses stay generic (as in :meth:`_generic`):
        each carries a symbol, an entry of a matrix the link does not use, or an undefined
        function of its own, and no two are equal -- unless ``by.defines`` lists the symbol."""
        used, mine = _link_symbols(exprs)
        labels = {M.name for M in used if isinstance(M, sp.MatrixSymbol)}
        i, j = sp.Dummy("i", integer=True), sp.Dummy("j", integer=True)
        values = {**ent.scalar_values,
                  **{X: sp.sympify(f(i, j)) for X, f in ent.matrix_values.items()}}
        seen = {}
        for X, v in values.items():
            if X not in used:
                continue
            if isinstance(X, sp.Symbol):
                _keeps_assumptions(X, v, f"{self.d.name}: the entry-wise value given for {X}")
            if X in _defines(by):
                continue
            syms = {s for s in v.free_symbols if isinstance(s, sp.Symbol)} - mine - {i, j}
            own = {s for s in syms if s.name not in labels} | \
                {f.func for f in v.atoms(AppliedUndef)}
            same = [Y for Y, w in seen.items() if w == v]
            if not own:
                raise CheckError(f"{where}: {X} is set to a special value ({v}) with no free "
                                 "symbol of its own, so the check is about that instance only; "
                                 "give a generic value, or, if it is a quantity the instantiation "
                                 "defines (not a free variable), list it in defines=...")
            if same:
                raise CheckError(f"{where}: {X} is set to the value of {same[0]}, so the check is "
                                 f"about {X} = {same[0]} only")
            seen[X] = v

    def _explicit(self, where, prev, ln, by):
        conds = self._struct_conditions(prev, ln.expr)
        worst = "literal"
        order = ("literal",) + LADDER_NAMES
        special_at: dict = {}   # symbol -> [(sizes, value, reason)] where its value is special
        idle: dict = {}         # operator name -> the sizes where it changed no entry
        defined_at: dict = {}   # symbol -> (sizes, value) where the page shows it
        for sizes in by.sizes.assignments:
            ev = self.evaluator(by, sizes)
            lhs, rhs = ev(prev), ev(ln.expr)
            _no_clash(ev, (prev, ln.expr), self.d.definitions, where)
            special, defined = self._generic(ev, (prev, ln.expr), by)
            for X, val, why in special:
                special_at.setdefault(X, []).append((sizes, val, why))
            for X, val in defined:
                defined_at.setdefault(X, (sizes, val))
            if ev.operators and not by.describe:
                raise CheckError(f"{where}: say which distribution the operators over "
                                 f"{sorted(ev.operators)} are (describe=...); the page shows it")
            for name in sorted(ev.applied):
                if _deterministic(ev.operators[name], ev, ev.applied[name]):
                    idle.setdefault(name, []).append(sizes)
            if isinstance(by, Model):
                vals = [v for v in ev.values.values() if not lazy(v)]
                if not undefined_functions(vals):
                    raise CheckError(f"{where}: a Model instantiation without undefined functions "
                                     "is a fixed instance, not a generic model; use Explicit")
            at = ", ".join(f"{k} = {v}" for k, v in sizes.items())
            if ln.rel == ">=":
                q = difference(lhs, rhs, where)
                if len(q) != 1:
                    raise CheckError(f"{where}: '>=' needs scalars")
                q0 = lhs if (not isinstance(lhs, sp.MatrixBase)) else lhs[0, 0]
                r0 = rhs if (not isinstance(rhs, sp.MatrixBase)) else rhs[0, 0]
                q0 = q0 if r0 == 0 else q0 - r0
                if not manifestly_nonnegative(q0):
                    return False, "explicit", {"why": f"at {at} the difference is not, as written, a "
                                               "sum of products of real nonnegative factors"}
            else:
                diff = difference(lhs, rhs, f"{where} at {at}")
                ok, m = is_zero(diff)
                if not ok:
                    return False, "explicit", {"why": f"at {at} the difference does not reduce to 0"}
                worst = max(worst, m, key=order.index)
            for c in ev.conditions:
                if c not in conds:
                    conds.append(c)
            for X, v in ev.values.items():
                if lazy(v):
                    continue   # never computed: not used by this link
                validate(v, f"{self.d.name}: the value given for {X}")
                for b in denominators(v):
                    if b not in conds:
                        conds.append(b)
        for name, found in idle.items():
            if len(found) == len(by.sizes.assignments):
                raise CheckError(f"{where}: the operator over {name!r} leaves every entry it is "
                                 "applied to unchanged (every symbol of the instance and every "
                                 "product of two, at every size checked): nothing is random, and "
                                 "an expectation that does nothing makes E[u u^T] = E[u] E[u]^T hold")
        many = len(by.sizes.assignments) > 1
        notes = []
        for X, found in special_at.items():
            if len(found) == len(by.sizes.assignments):
                raise CheckError(f"{where}: {found[0][2]} at every size checked, so the check is "
                                 "about that special instance only; give a generic value, or, if "
                                 f"{X} is a quantity the instantiation defines (not a free "
                                 "variable), list it in defines=... (the page shows its value)")
            # special at some sizes only (a 1 x 1 matrix with the eigenvalue lambda is lambda):
            # generic at the others, and the page says where it is special -- where it is a
            # special value, not only a structured one (a Hessian is symmetric at d >= 2)
            found = [f for f in found if not isinstance(f[2], _Short)]
            if not found:
                continue
            (sz, val, _), more = found[0], "; ".join(sizes_text(f[0]) for f in found[1:])
            notes.append(f"; special value {_shown(X, val)} at {sizes_text(sz)}"
                         + (f" (special also at {more})" if more else ""))
        if defined_at:
            notes.append("; defined by the instantiation: " + ", ".join(
                _shown(X, val) + (f" at {sizes_text(sz)}" if many else "")
                for X, (sz, val) in defined_at.items()))
        method = ("generic model" if isinstance(by, Model) else "explicit") + f" ({worst})"
        return True, method, {"conditions": conds, "sizes": by.sizes.text() + "".join(notes)}

    def _lemma(self, where, prev, ln, by):
        L = by.derivation
        if L is self.d:
            return self._own_part(where, prev, ln, by)
        rep = _VERIFIED.get(L) if L not in self.stack else None
        if rep is None:
            rep = _verify(L, self.stack + (self.d,))
        if not rep.ok:
            why = "; ".join(line.strip() for line in rep.failures()[:2])
            raise CheckError(f"{where}: cites {L.name}, which is not verified ({why})")
        if not 0 <= by.part < len(L.parts):
            raise CheckError(f"{where}: {L.name} has no conclusion part {by.part + 1}")
        rel = L.parts[by.part]
        subs = {sp.sympify(k): sp.sympify(v) for k, v in by.subs.items()}
        inst = _instance(rel, subs, where, L.name, L.definitions)
        self._discharge(where, L, subs)
        lemma_conds = [_substituted(c, subs) for c in rep.conditions]
        ok, what, extra = self._apply(where, prev, ln, inst, f"lemma {L.name}", lemma_conds)
        if _best(L.tier) != "A":
            # a lemma checked at stated sizes (tier B or A-model) holds at those sizes only: the
            # citing link carries them (in the lemma's own symbols), so the citation cannot
            # present a fact checked at d = 1 as one at general n
            extra["sizes"] = _cited_sizes(rep, by.part)
        return ok, what, extra

    def _own_chains(self, part):
        """The chains proving conclusion ``part`` and their link results, if every one of them
        precedes the chain being checked (so that citations among parts cannot form a cycle)."""
        ci_now, part_now = self.current
        mine = [ci for ci, ch in enumerate(self.chains, 1) if ch.part == part]
        if part == part_now or not mine or any(ci >= ci_now for ci in mine):
            return None
        return mine, [r for r in self.results if r.chain in mine]

    def _part_tier(self, part) -> str:
        found = self._own_chains(part) if 0 <= part < len(self.d.parts) else None
        if not found or not found[1]:
            return TIERS[-1]
        return max((r.tier for r in found[1]), key=tier_rank)

    def _own_part(self, where, prev, ln, by):
        """Cite part ``by.part`` of this derivation's own conclusion: allowed only when every
        chain proving it comes before the citing chain and passed (no part cites itself or a
        later part, so there is no cycle)."""
        if not 0 <= by.part < len(self.d.parts):
            raise CheckError(f"{where}: {self.d.name} has no conclusion part {by.part + 1}")
        found = self._own_chains(by.part)
        if found is None:
            raise CheckError(f"{where}: cites conclusion part {by.part + 1} of its own derivation, "
                             "which is not proved by chains that all come before this one (a part "
                             "may cite only parts proved earlier)")
        _, res = found
        if not res or not all(r.passed for r in res):
            raise CheckError(f"{where}: cites conclusion part {by.part + 1}, whose proof did not pass")
        subs = {sp.sympify(k): sp.sympify(v) for k, v in by.subs.items()}
        inst = _instance(self.d.parts[by.part], subs, where, f"part {by.part + 1} of {self.d.name}",
                         self.d.definitions)
        self._discharge(where, self.d, subs)
        conds = _unique([_substituted(c, subs) for r in res for c in r.conditions])
        return self._apply(where, prev, ln, inst, f"conclusion part {by.part + 1}", conds)

    def _apply(self, where, prev, ln, inst, what, extra_conds):
        norm = Normaliser(self.d.definitions, self.symmetric)
        if ln.rel == ">=":
            if inst.rel != ">=":
                raise CheckError(f"{where}: a '>=' link needs an inequality ({what} is not one)")
            ok = norm.equal(prev, inst.lhs, self._zero)[0] and norm.equal(ln.expr, inst.rhs, self._zero)[0]
        else:
            if inst.rel != "=":
                raise CheckError(f"{where}: {what} is not an equality; use it in a '>=' link")
            cands = norm.rewrite(prev, inst.lhs, inst.rhs) + norm.rewrite(prev, inst.rhs, inst.lhs)
            # read backwards too: the new expression rewritten by the same equality gives back
            # the previous one (substitution of equals in either expression is sound)
            backs = norm.rewrite(ln.expr, inst.lhs, inst.rhs) + norm.rewrite(ln.expr, inst.rhs, inst.lhs)
            if not cands and not backs:
                raise CheckError(f"{where}: neither side of {what} ({inst.lhs} = {inst.rhs}) "
                                 f"occurs in {prev} or in {ln.expr}")
            ok = any(norm.equal(c, ln.expr, self._zero)[0] for c in cands) or \
                any(norm.equal(prev, b, self._zero)[0] for b in backs)
        conds = self._struct_conditions(prev, ln.expr) + list(norm.conditions) + list(extra_conds)
        return ok, what, {"conditions": _unique(conds), "axioms": norm.used,
                          "why": f"applying {what} does not give this expression"}

    def _discharge(self, where, L, subs):
        mine = set(self.d.hypotheses)
        for h in L.hypotheses:
            hh = _substituted(h, subs)
            if hh in mine or hh is sp.true:
                continue
            if isinstance(hh, AppliedPredicate):
                (X,) = hh.arguments
                if isinstance(X, (sp.Identity,)):
                    continue
                name = str(getattr(hh.function, "name", hh.function)).replace("Q.", "")
                if name == "invertible" and any(
                        p & {"positive_definite", "orthogonal"} for Y, p in self.props.items() if Y == X):
                    continue
                if name == "symmetric" and X in self.symmetric:
                    continue
            raise CheckError(f"{where}: the hypothesis {hh} of {L.name} is not among the "
                             f"hypotheses of {self.d.name}")

    # ------------------------------------------------------------------ controls
    def _target(self, c: Control):
        t = c.target
        if t.startswith("conclusion"):
            k = int(t.split(":")[1]) - 1 if ":" in t else 0
            if not 0 <= k < len(self.d.parts):
                raise CheckError(f"control {c.name!r}: the conclusion has no part {k + 1}")
            rel = self.d.parts[k]
            return rel.lhs, rel.rhs, (">=" if isinstance(rel, sp.GreaterThan) else "="), None, "conclusion"
        found = []
        for ci, ch in enumerate(self.chains, 1):
            exprs = ch.exprs
            for li, ln in enumerate(ch.links, 1):
                if ln.label == t:
                    found.append((exprs[li - 1], ln.expr, ln.rel, ln.by, f"chain {ci} link {li}"))
        if not found:
            labels = [ln.label for ch in self.chains for ln in ch.links if ln.label]
            raise CheckError(f"control {c.name!r}: no link labelled {t!r} (labels: {labels}); a "
                             "control mutates a link of the proof or the conclusion")
        if len(found) > 1:
            raise CheckError(f"control {c.name!r}: the label {t!r} names {len(found)} links")
        return found[0]

    def check_control(self, c: Control) -> ControlResult:
        t0 = time.perf_counter()
        try:
            lhs, rhs, rel, by, where = self._target(c)
            old, new = c.pair()
            validate([old, new], f"control {c.name!r}")
            if c.specialise:
                spec = {sp.sympify(k): sp.sympify(v) for k, v in c.specialise.items()}
                lhs, rhs = (sp.sympify(x).xreplace(spec) for x in (lhs, rhs))
                old, new = old.xreplace(spec), new.xreplace(spec)
            ml, mr = (sp.sympify(x).xreplace({old: new}) for x in (lhs, rhs))
            if ml == lhs and mr == rhs:   # a contiguous run of factors inside a longer product
                ml, mr = _mutate(lhs, old, new), _mutate(rhs, old, new)
            if ml == lhs and mr == rhs:
                raise CheckError(f"control {c.name!r}: {old} does not occur in {where} "
                                 f"({lhs} {rel} {rhs}): the control mutates nothing")
            if not same_shape(ml, mr):
                raise CheckError(f"control {c.name!r}: the mutation changes a shape")
            at = c.at if c.at is not None else (by if isinstance(by, (Explicit, Model)) else None)
            w = self._refute(ml, mr, rel, at, c)
            target = f"{where} [{c.target}]" if where != "conclusion" else c.target
            if w is None:
                return ControlResult(c.name, target, False, seconds=time.perf_counter() - t0,
                                     error="no witness found: the mutated claim was not shown false "
                                           "(it may be true under the hypotheses)")
            point, value = w
            return ControlResult(c.name, target, True, point, value, time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001
            return ControlResult(c.name, c.target, False, seconds=time.perf_counter() - t0,
                                 error=f"{type(exc).__name__}: {exc}")

    def _refute(self, ml, mr, rel, at, c):
        if at is None:
            syms = _size_symbols([ml, mr] + [unfold(sp.sympify(x), self.d.definitions) for x in (ml, mr)])
            scalar_sizes = {s for s in (sp.sympify(ml).free_symbols | sp.sympify(mr).free_symbols)
                            if s.is_integer and s.is_positive}
            every = sorted(syms | scalar_sizes, key=lambda s: s.name)
            at = Explicit(Sizes({s: (2,) for s in every})) if every else None
        if at is None:
            evs = [None]
        else:
            evs = at.sizes.assignments
        for sizes in evs:
            extra = matrix_properties(c.hypotheses)
            if sizes is None:
                ev = _ExplicitEval({}, {}, self.d.definitions, {**self.props, **extra}, {})
                if self.matrix_relations:
                    raise CheckError(f"control {c.name!r}: matrix hypotheses need an instantiation "
                                     "that satisfies them: give `at=Explicit(...)`")
            else:
                ev = self.evaluator(at, sizes, extra, cover=False)
            L, R = ev(ml), ev(mr)
            if rel == ">=":
                q = (L[0, 0] if isinstance(L, sp.MatrixBase) else L) - \
                    (R[0, 0] if isinstance(R, sp.MatrixBase) else R)
                diff = [q]
            else:
                diff = difference(L, R, f"control {c.name!r}")
            conds = list(ev.conditions) + self._struct_conditions(ml, mr)
            econds = [ev(x) for x in conds]
            w = find_witness(diff, c.witness,
                             hypotheses=[ev(h) for h in self.relations] + list(ev.domain),
                             conditions=econds, negative=(rel == ">="))
            if w is not None:
                # the free inputs: generic instances and supplied matrices of plain symbols
                mats = {**ev.generated, **{k: v for k, v in ev.values.items()
                                           if isinstance(v, sp.MatrixBase)
                                           and all(e.is_Symbol or e.is_Number for e in v)}}
                at_text = ", ".join(f"{k} = {v}" for k, v in (sizes or {}).items())
                point = latex_point(w.point, mats)
                if at_text:
                    point = rf"\text{{sizes }} {sp.latex(sp.Tuple(*sizes.keys()))} = " \
                            rf"{sp.latex(sp.Tuple(*sizes.values()))}:\ " + point
                where = ""
                if isinstance(L, sp.MatrixBase) and L.shape != (1, 1):
                    r, cc = divmod(w.entry, L.shape[1])
                    where = rf"\text{{entry }}({r + 1}, {cc + 1}):\ "
                return point, where + render_value(w.value)
        return None


@dataclasses.dataclass(frozen=True)
class _Instance:
    """An instantiated relation kept as its two sides (never re-evaluated by SymPy)."""

    rel: str
    lhs: Any
    rhs: Any

    def __str__(self):
        return f"{self.lhs} {self.rel} {self.rhs}"


def _substituted(e, subs):
    """``e`` with the sizes of ``subs`` substituted first, then its other symbols."""
    subs = {sp.sympify(k): sp.sympify(v) for k, v in dict(subs).items()}
    size_subs = {k: v for k, v in subs.items() if not isinstance(k, sp.MatrixSymbol)}
    mats = {(k.xreplace(size_subs) if size_subs else k): v for k, v in subs.items()
            if isinstance(k, sp.MatrixSymbol)}
    e = sp.sympify(e)
    e = e.xreplace(size_subs) if size_subs else e
    return e.xreplace(mats) if mats else e


def _instance(rel, subs, where, what, definitions=None):
    """``rel`` with sizes substituted first, then the matrices (shapes checked).

    The cited derivation's ``definitions`` are unfolded first: a defined symbol is an
    abbreviation, not a free variable, so it cannot be instantiated (``{P: X}`` for a ``P``
    defined as ``A + B`` would turn ``P = B + A`` into the false ``X = B + A``), and the
    symbols its definition uses are substituted inside it."""
    subs = {sp.sympify(k): sp.sympify(v) for k, v in dict(subs).items()}
    op = ">=" if isinstance(rel, sp.GreaterThan) else "="
    lhs, rhs = rel.lhs, rel.rhs
    if definitions:
        for k in subs:
            if k in definitions:
                raise CheckError(f"{where}: the substitution names {k}, which {what} defines "
                                 "(an abbreviation, not a free variable); substitute the symbols "
                                 "of its definition")
        lhs, rhs = unfold(lhs, definitions), unfold(rhs, definitions)
    allowed = set()
    for side in (lhs, rhs):
        side = sp.sympify(side)
        allowed |= side.free_symbols | {f.func for f in side.atoms(AppliedUndef)}
    allowed |= _size_symbols([lhs, rhs])
    for k in subs:
        if k not in allowed:
            raise CheckError(f"{where}: the substitution names {k}, which is not free in {what}")
    size_subs = {k: v for k, v in subs.items() if not isinstance(k, sp.MatrixSymbol)}
    for k, v in size_subs.items():
        if isinstance(k, sp.Symbol) and not respects(k, v):
            wanted = ", ".join(a for a in ASSUMPTIONS if getattr(k, f"is_{a}"))
            raise CheckError(f"{where}: {what} is stated for {k} ({wanted}); the replacement {v} is "
                             "not known to be")
    for k, v in subs.items():
        grabbed = set()
        for side in (lhs, rhs):
            grabbed |= captured(sp.sympify(side), k, set(getattr(v, "free_symbols", ())))
        if grabbed:
            raise CheckError(f"{where}: the replacement {v} of {k} names "
                             f"{', '.join(sorted(map(str, grabbed)))}, which {what} binds (a sum's "
                             "or a function's own variable): the substitution would capture it")
    mats = {}
    for k, v in subs.items():
        if isinstance(k, sp.MatrixSymbol):
            k2 = k.xreplace(size_subs) if size_subs else k
            got = getattr(v, "shape", None)
            if got is None or not all(sp.expand(a - b) == 0 for a, b in zip(k2.shape, got)):
                raise CheckError(f"{where}: {k} (shape {k2.shape}) is replaced by {v} of shape {got}")
            mats[k2] = v
    # sides substituted separately: rebuilding the relation would let SymPy evaluate it
    sides = []
    for side in (lhs, rhs):
        side = sp.sympify(side)
        side = side.xreplace(size_subs) if size_subs else side
        sides.append(side.xreplace(mats) if mats else side)
    return _Instance(op, sides[0], sides[1])


def _mutate(e, old, new):
    """``e`` with every contiguous run of factors equal to the product ``old`` replaced."""
    e = sp.sympify(e)
    out = e
    if isinstance(old, sp.MatMul) and isinstance(e, sp.Basic):
        def repl(x):
            if isinstance(x, sp.MatMul):
                a, o = list(x.args), list(old.args)
                for i in range(len(a) - len(o) + 1):
                    if a[i:i + len(o)] == o:
                        return sp.MatMul(*(a[:i] + [new] + a[i + len(o):]))
            return x
        out = e.replace(lambda x: isinstance(x, sp.MatMul), repl)
    return out


def _no_clash(ev, exprs, definitions, where):
    """The generic instances' entries (``x_1``, ``A_12``) must not be symbols the expressions
    use themselves: ``x^T x = x_1^2 + x_2^2`` for a vector ``x`` and independent scalars
    ``x_1, x_2`` would otherwise check at ``n = 2``."""
    own = set()
    for e in exprs:
        e = unfold(sp.sympify(e), definitions)
        own |= {s for s in e.free_symbols if isinstance(s, sp.Symbol)}
    gen = set()
    for v in ev.generated.values():
        gen |= v.free_symbols
    clash = own & gen
    if clash:
        raise CheckError(f"{where}: the symbol(s) {sorted(map(str, clash))} of the expression are "
                         "also entries of a generic instance; rename them")


def _change_of_variables(cd) -> tuple:
    """``(change, domain)`` of :attr:`Explicit.coordinates`, checked to be a change of variables:
    as many new variables as old ones and a Jacobian determinant that is not identically zero
    (so the old variables' values at the new ones fill an open set, where an identity that holds
    holds everywhere). ``x -> 0``, ``x -> z**2 - z**2`` or two old variables sent to one new
    one would make any identity in them true."""
    change, domain = dict(cd[0]), tuple(cd[1])
    old = [sp.sympify(k) for k in change]
    if any(not isinstance(k, sp.Symbol) for k in old):
        raise CheckError(f"coordinates: a change of variables maps symbols, got {old}")
    new = sorted(set().union(*[sp.sympify(v).free_symbols for v in change.values()]) if change else set(),
                 key=str)
    if len(new) != len(old):
        raise CheckError(f"coordinates: {len(old)} variable(s) {old} expressed in {len(new)} new "
                         f"one(s) {new}: not a change of variables")
    jac = sp.Matrix([[sp.diff(sp.sympify(change[k]), z) for z in new] for k in old])
    if is_zero(jac.det(method="berkowitz"))[0]:
        raise CheckError(f"coordinates: the Jacobian of {change} vanishes identically: not a "
                         "change of variables")
    return change, domain


def _cited_sizes(rep, part) -> str:
    chains = {ci for ci, (p, _) in enumerate(rep.chain_tiers, 1) if p == part}
    texts = _unique([r.sizes for r in rep.links if r.chain in chains and r.sizes and r.tier != "A"])
    return f"{rep.name}'s sizes: " + "; ".join(texts) if texts else ""


def _link_symbols(exprs) -> tuple[set, set]:
    """``(used, scalars)``: the matrix and scalar symbols of a link's expressions, and the
    scalars alone (a value made of these is not a value of its own)."""
    used, scalars = set(), set()
    for e in exprs:
        mine = {x for x in e.free_symbols if isinstance(x, sp.Symbol)}
        used |= e.atoms(sp.MatrixSymbol) | mine
        scalars |= mine
    return used, scalars


class _Short(str):
    """The reason a value is a structured (rank-deficient) member of its class."""


def _class_dimension(props, r, c) -> int:
    """The number of free parameters of a general ``r x c`` matrix with these properties."""
    if "diagonal" in props:
        return r
    if "orthogonal" in props:
        return r * (r - 1) // 2
    if props & {"symmetric", "positive_definite", "lower_triangular"}:
        return r * (r + 1) // 2
    return r * c


def _rank_short(X, val, mine, props) -> str:
    """Why the value of ``X`` is not a general member of its class, or ``""``: the rank of its
    entries' Jacobian in its own parameters (its symbols the link does not use, and each
    undefined function or derivative of one, as a parameter) is below the number of free
    parameters of the class -- ``g(t) I``, a diagonal value for a general matrix. The rank is
    computed exactly at rational points (a lower bound of the generic rank: reaching the
    class's dimension proves it); a value whose Jacobian is not rational there is not judged."""
    M = sp.Matrix(val)
    r, c = M.shape
    target = _class_dimension(props, r, c)
    atoms = {a: sp.Dummy("f") for a in M.atoms(sp.Derivative)}
    M = M.xreplace(atoms)
    M = M.xreplace({a: sp.Dummy("f") for a in M.atoms(AppliedUndef)})
    params = sorted(M.free_symbols - mine, key=str)
    if len(params) < target:
        best = len(params)
    else:
        jac = sp.Matrix([[sp.diff(e, q) for q in params] for e in M])
        rng = random.Random(0)
        best = 0
        for _ in range(3):
            point = {s: sp.Rational(rng.randint(1, 97), rng.randint(1, 13)) for s in jac.free_symbols}
            J = jac.xreplace(point)
            if not all(e.is_Rational for e in J):
                return ""
            best = max(best, J.rank())
            if best >= target:
                return ""
    return (f"the value of {X} has {best} free direction(s) of its own, fewer than the {target} "
            f"of a general {r} x {c} matrix{' (' + ', '.join(sorted(props)) + ')' if props else ''}")


def _deterministic(op, ev, entries) -> bool:
    """Whether ``op`` leaves unchanged every entry it was applied to, every symbol of the
    instance ``ev`` (its values, generic instances) and every product of two: then it is the
    expectation of nothing random (a point mass at the symbolic point), and identities like
    ``E[u u^T] = E[u] E[u]^T`` would hold. (An operator that cannot take a probe is not the
    identity.)"""
    syms = set()
    for v in list(ev.generated.values()) + [v for v in ev.values.values() if not lazy(v)]:
        syms |= {s for s in sp.sympify(v).free_symbols if isinstance(s, sp.Symbol)}
    syms = sorted(syms, key=str)
    probes = itertools.chain(entries, syms, (a * b for a, b in
                                             itertools.combinations_with_replacement(syms, 2)))
    for h in probes:
        try:
            got = sp.sympify(op(h))
        except Exception:  # noqa: BLE001 - it refused the probe: it does something
            return False
        if got != h and sp.expand(got - h) != 0:
            return False
    return True


def _satisfied(h, ev, who, every=True):
    """A scalar hypothesis holds at the given values: an equation exactly, an inequality by the
    symbols' assumptions (``exp(r) > 0``); a value outside it makes the check one about other
    numbers than the statement's (``|x| = -x`` holds at ``x = -r^2``). When some of its symbols
    have no value (``every`` false) it still constrains them, and only a hypothesis the values
    make false outright is refused."""
    q = sp.sympify(ev(h.lhs) - ev(h.rhs))
    if not every:
        if h.func(sp.sympify(ev(h.lhs)), sp.sympify(ev(h.rhs))) is sp.false:
            raise CheckError(who)
        return
    if isinstance(h, sp.Equality):
        ok = is_zero(q)[0]
    elif isinstance(h, sp.Unequality):
        ok = q.is_nonzero is True
    else:
        q = q if isinstance(h, (sp.StrictGreaterThan, sp.GreaterThan)) else -q
        ok = (q.is_positive if isinstance(h, (sp.StrictGreaterThan, sp.StrictLessThan))
              else q.is_nonnegative) is True
    if not ok:
        raise CheckError(f"{who} (at the values it reads {sp.sympify(ev(h.lhs))} vs "
                         f"{sp.sympify(ev(h.rhs))})")


def _keeps_assumptions(X, v, who):
    """A scalar value has every assumption its symbol is declared with (a value -r^2 for a
    positive p would make the check one about other numbers than the statement's)."""
    if not isinstance(X, sp.Symbol) or isinstance(v, sp.MatrixBase) or lazy(v):
        return
    v = sp.sympify(v)
    # a value of undefined functions (a model's Phi''(0)) has no assumptions: only a value
    # known to break one is refused; any other value must be known to keep every one
    known = not (v.atoms(AppliedUndef) or v.has(sp.Derivative))
    broken = [a for a in unmet_assumptions(X, v) if known or getattr(v, f"is_{a}") is False]
    if broken:
        raise CheckError(f"{who}, {v}, is not known to be {', '.join(broken)} ({X} is declared "
                         "so)")


def _defines(by) -> frozenset:
    """The symbols an Explicit or Model instantiation defines (``defines=``)."""
    return getattr(by, "defines", frozenset())


def _shown(X, val) -> str:
    """``X = value`` for the page, the value itself when it is short."""
    text = sp.latex(val)
    return f"${sp.latex(X)} = {text}$" if len(text) <= 160 else f"${sp.latex(X)}$ (as described)"


def _unique(xs):
    out = []
    for x in xs:
        if x not in out:
            out.append(x)
    return out


def _best(tier: str) -> str:
    return min(tier.split("+"), key=tier_rank)
