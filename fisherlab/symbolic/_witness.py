r"""Witnesses: exact points at which a claimed identity is false.

A witness is a substitution of exact values that respects everything the claim is stated
under -- each symbol's SymPy assumptions (a positive symbol gets a positive value, an integer
symbol an integer), the side equations ``Eq(s, expr)`` (``s`` is computed, not drawn), the
derivation's other hypotheses (``x > 1``, ``Ne(d, 0)``: a point violating one is no witness)
and the genericity conditions (a point where a denominator vanishes is no witness) -- and at
which one entry of the difference evaluates to a nonzero number (for an inequality ``e >= 0``:
a real negative number). Abstract functions need concrete stand-ins (``{g: Lambda(u, u**3)}``).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping, Sequence
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef

from ._check import doit

__all__ = ["Witness", "find_witness", "point_allowed", "render_value", "latex_point",
           "respects", "unmet_assumptions", "ASSUMPTIONS"]

ASSUMPTIONS = _CHECKED = ("integer", "rational", "real", "positive", "nonnegative", "negative", "nonpositive",
            "nonzero", "even", "odd", "zero")


@dataclasses.dataclass(frozen=True)
class Witness:
    """``point`` (symbol or function -> exact value / Lambda), the nonzero ``value`` found and
    which ``entry`` (row-major index) of the difference it is."""

    point: Mapping
    value: Any
    entry: int = 0

    def __iter__(self):
        return iter((self.point, self.value))

    def latex(self, matrices: Mapping | None = None, limit: int = 12) -> str:
        return latex_point(self.point, matrices, limit)


def respects(sym: sp.Symbol, value) -> bool:
    """Whether ``value`` is known to have every assumption ``sym`` has (positive, integer, ...)."""
    return _respects(sym, value)


def unmet_assumptions(sym: sp.Symbol, value) -> list[str]:
    """The assumptions ``sym`` has that ``value`` is not known to have."""
    value = sp.sympify(value)
    return [k for k in _CHECKED
            if getattr(sym, f"is_{k}") is True and getattr(value, f"is_{k}") is not True]


def _respects(sym: sp.Symbol, value) -> bool:
    return not unmet_assumptions(sym, value)


def _draw(sym: sp.Symbol, rng: random.Random, signed: bool):
    if sym.is_integer:
        if sym.is_positive:
            v = rng.randint(1, 4)
        elif sym.is_nonnegative:
            v = rng.randint(0, 4)
        elif sym.is_negative:
            v = -rng.randint(1, 4)
        elif sym.is_nonpositive:
            v = -rng.randint(0, 4)
        else:
            v = rng.randint(-4, 4) if signed else rng.randint(1, 4)
        if sym.is_even and v % 2:
            v += 1
        if sym.is_odd and not v % 2:
            v += 1
        return sp.Integer(v)
    v = sp.Rational(rng.randint(1, 9), rng.randint(1, 7))
    if sym.is_nonnegative and not sym.is_positive and rng.random() < 0.2:
        v = sp.Integer(0)
    if sym.is_negative or (sym.is_nonpositive and not sym.is_nonnegative):
        v = -v
    elif signed and not sym.is_nonnegative and rng.random() < 0.5:
        v = -v
    return v


def _stand_in(expr, functions: Mapping):
    if not functions:
        return expr
    # ``subs`` (not ``replace``) also rewrites derivatives taken *with respect to* an abstract
    # function's value (``d A(g(x)) / d g(x)``) correctly; SymPy's ``subs`` of a function
    # class fails inside an ``Integral``, which is rewritten by ``replace`` first
    if expr.has(sp.Integral):
        rest = {}
        for f, lam in functions.items():
            if isinstance(f, sp.core.function.UndefinedFunction):
                expr = expr.replace(f, lam)
            else:
                rest[f] = lam
        functions = rest
    return doit(expr.subs(functions) if functions else expr)


def _number(val):
    """An exact or 50-digit value, or ``None`` when it is not a finite number."""
    val = doit(val)
    if isinstance(val, sp.MatrixBase) or not getattr(val, "is_number", False):
        return None
    if val.has(sp.zoo, sp.oo, -sp.oo, sp.nan):
        return None
    if val.is_Rational:
        return val
    try:
        num = sp.N(val, 50)
    except Exception:  # noqa: BLE001 - an unevaluable point is just not a witness
        return None
    if not num.is_number or num.has(sp.zoo, sp.nan) or num.is_finite is False:
        return None
    return num


def point_allowed(point: Mapping, hypotheses: Sequence, conditions: Sequence,
                  functions: Mapping | None = None) -> bool:
    """Whether ``point`` satisfies every hypothesis relation and no condition vanishes."""
    for h in hypotheses:
        if not isinstance(h, sp.core.relational.Relational):
            continue
        try:
            v = _stand_in(h, functions or {}).xreplace(point)
            v = doit(v)
            if isinstance(v, sp.core.relational.Relational):
                lhs, rhs = _number(v.lhs - v.rhs), sp.Integer(0)
                if lhs is None:
                    return False
                v = type(v)(lhs, rhs)
            if v is not sp.true:
                return False
        except (TypeError, ValueError):
            return False
    for c in conditions:
        v = _number(_stand_in(sp.sympify(c), functions or {}).xreplace(point))
        if v is None or v == 0:
            return False
    return True


def _sides(hypotheses):
    eqs, others = {}, []
    for h in hypotheses:
        # a symbol defined by one side equation is computed from it; a second equation for the
        # same symbol (or one whose right side uses a computed symbol) is checked, not dropped
        if isinstance(h, sp.Eq) and isinstance(h.lhs, sp.Symbol) and not h.rhs.has(h.lhs) \
                and h.lhs not in eqs:
            eqs[h.lhs] = h.rhs
        else:
            others.append(h)
    return eqs, others


def find_witness(diff: Any, given: Mapping | None = None, *, hypotheses: Sequence = (),
                 conditions: Sequence = (), negative: bool = False, tries: int = 24,
                 seed: int = 0) -> Witness | None:
    """Search for an exact point at which some entry of ``diff`` is nonzero (``negative``:
    real and negative), respecting assumptions, side equations, hypotheses and conditions.

    Args:
      diff: scalar, explicit matrix or list of them (the difference ``lhs - rhs``, or for an
        inequality the quantity claimed nonnegative).
      given: values chosen by the author: stand-ins for abstract functions
        (``{f: Lambda(u, u**3)}``) and values for some symbols (checked against their assumptions).
      hypotheses: relations; ``Eq(s, expr)`` defines ``s`` at the point, others must hold.
      conditions: expressions that must not vanish at the point (denominators).
    Returns the :class:`Witness` (iterable as ``point, value``), or ``None`` (then the claim was *not* shown false).
    """
    given = dict(given or {})
    functions = {k: v for k, v in given.items() if isinstance(k, sp.FunctionClass)}
    fixed = {sp.sympify(k): sp.sympify(v) for k, v in given.items()
             if not isinstance(k, sp.FunctionClass)}
    for s, v in fixed.items():
        if isinstance(s, sp.Symbol) and not _respects(s, v):
            raise ValueError(f"witness value {s} = {v} violates the assumptions on {s} "
                             f"({', '.join(k for k in _CHECKED if getattr(s, 'is_' + k))})")
    items = []
    for d in diff if isinstance(diff, (list, tuple)) else [diff]:
        items += list(d) if isinstance(d, sp.MatrixBase) else [sp.sympify(d)]
    if any(h is sp.false for h in hypotheses):
        return None  # a hypothesis that is false everywhere admits no point at all
    eqs, others = _sides(hypotheses)
    prepared = []
    for k, e in enumerate(items):
        if e == 0:
            continue
        e2 = _stand_in(e, functions)
        if e2.atoms(AppliedUndef):
            continue  # an abstract function without a stand-in cannot be evaluated
        prepared.append((k, e2))
    if not prepared:
        return None
    free = set()
    for _, e in prepared:
        free |= e.free_symbols
    for s, rhs in eqs.items():
        free |= _stand_in(rhs, functions).free_symbols
    for h in others:
        if isinstance(h, sp.Basic):
            free |= _stand_in(h, functions).free_symbols
    for c in conditions:
        free |= _stand_in(sp.sympify(c), functions).free_symbols
    drawn = sorted((s for s in free if s not in fixed and s not in eqs), key=lambda s: s.name)
    rng = random.Random(seed)
    for attempt in range(tries):
        signed = attempt >= tries // 3
        point = dict(fixed)
        if attempt == 0:
            for i, s in enumerate(drawn):
                v = sp.Rational(i + 2, i + 3) if not s.is_integer else sp.Integer(i % 3 + 1)
                point[s] = v if _respects(s, v) else _draw(s, rng, False)
        else:
            for s in drawn:
                point[s] = _draw(s, rng, signed)
        if not all(_respects(s, v) for s, v in point.items() if isinstance(s, sp.Symbol)):
            continue
        ok = True
        for s, rhs in eqs.items():
            v = _number(_stand_in(rhs, functions).xreplace(point))
            if v is None or not _respects(s, v):
                ok = False
                break
            point[s] = v
        if not ok or not point_allowed(point, others, conditions, functions):
            continue
        for k, e in prepared:
            val = _number(e.xreplace(point))
            if val is None:
                continue
            if negative:
                # an exact negative number, or a 50-digit value clearly below zero: a value that
                # is exactly 0 evaluates to a rounding residue such as -1e-159, which is no witness
                if val.is_real and val < 0 and (val.is_Rational or abs(val) > 1e-30):
                    return Witness({**point, **functions}, val, k)
            elif val != 0 and abs(complex(val)) > 1e-30:
                return Witness({**point, **functions}, val, k)
    return None


def render_value(v) -> str:
    v = sp.sympify(v)
    if v.is_Rational or v.is_Integer:
        return sp.latex(v)
    return sp.latex(sp.N(v, 6))


def latex_point(point: Mapping, matrices: Mapping | None = None, limit: int = 12) -> str:
    """A witness point as LaTeX: abstract functions as formulas, matrices (when their explicit
    symbol matrices are given) as numeric matrices, then the remaining symbols."""
    parts = []
    shown = set()
    functions = {k: v for k, v in point.items() if isinstance(k, sp.FunctionClass)}
    for M, explicit in (matrices or {}).items():
        if not isinstance(explicit, sp.MatrixBase):
            continue
        try:
            explicit = sp.Matrix(explicit).applyfunc(lambda e: _stand_in(e, functions))
            syms = explicit.free_symbols
            if not (syms and syms <= set(point)):
                continue
            value = explicit.xreplace(point).applyfunc(lambda e: sp.nsimplify(doit(e))
                                                       if e.is_Rational else doit(e))
        except Exception:  # noqa: BLE001 - a value that cannot be shown is left out
            continue
        if len(sp.latex(value)) > 600:
            continue
        parts.append(f"{sp.latex(M)} = {sp.latex(value)}")
        shown |= syms
    for k, v in point.items():
        if isinstance(k, sp.FunctionClass) or isinstance(v, sp.Lambda):
            lam = v
            args = lam.variables
            parts.append(f"{sp.latex(k(*args))} = {sp.latex(lam.expr)}")
    rest = [(k, v) for k, v in point.items() if isinstance(k, sp.Symbol) and k not in shown]
    rest.sort(key=lambda kv: kv[0].name)
    for k, v in rest[:limit]:
        parts.append(f"{sp.latex(k)} = {render_value(v)}")
    if len(rest) > limit:
        parts.append(r"\dots\ (%d\ \text{more values})" % (len(rest) - limit))
    return ",\\ ".join(parts)
