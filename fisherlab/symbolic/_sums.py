r"""Finite sums with symbolic bounds, and a sound decision procedure for their identities.

A :class:`SumPoly` is a finite sum of terms ``\sum_{d_1 \in R_1} \cdots \sum_{d_k \in R_k}
b(d)`` whose ranges ``R_i = [lo, hi]`` do not depend on the other summation indices. It is
what the entry-wise evaluator produces for an entry of a matrix expression at general
dimension, and what a SymPy ``Sum`` is converted to.

:func:`canonical` rewrites only by laws of finite sums, each valid for every value of the
symbols:

* linearity: a sum of a sum of monomials is the sum of the per-monomial sums, constants
  move out, a summation index the summand does not use contributes the factor ``hi - lo + 1``;
* ``\sum_{d \in R} \delta_{d e} f(d) = f(e)`` when ``e`` is an index known to range over the
  same ``R`` (a free index the checker generated, or another summation index);
* Fubini for finite rectangular sums and renaming of summation indices (alpha-equivalence):
  each term's indices are renamed to canonical names chosen *not to occur* anywhere in the
  expressions compared, so a renaming can never capture a free index;
* ``X_{ab} = X_{ba}`` for bases declared symmetric.

Two expressions are equal when the per-term coefficients of their difference cancel.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable

import sympy as sp

__all__ = ["Term", "SumPoly", "from_sympy", "canonical", "is_zero_sums", "IndexRanges"]

#: index symbol -> (lo, hi), inclusive; free indices and summation indices alike.
IndexRanges = dict


@dataclasses.dataclass(frozen=True)
class Term:
    """``sum over dummies of body``; ``dummies`` is a tuple of index symbols."""

    dummies: tuple
    body: sp.Expr


@dataclasses.dataclass(frozen=True)
class SumPoly:
    terms: tuple

    @staticmethod
    def const(e) -> "SumPoly":
        return SumPoly((Term((), sp.sympify(e)),))

    @staticmethod
    def zero() -> "SumPoly":
        return SumPoly(())

    def __add__(self, other: "SumPoly") -> "SumPoly":
        return SumPoly(self.terms + other.terms)

    def __neg__(self) -> "SumPoly":
        return SumPoly(tuple(Term(t.dummies, -t.body) for t in self.terms))

    def __sub__(self, other: "SumPoly") -> "SumPoly":
        return self + (-other)

    def __mul__(self, other: "SumPoly") -> "SumPoly":
        out = []
        for a in self.terms:
            for b in other.terms:
                if set(a.dummies) & set(b.dummies):
                    raise ValueError("internal: summation indices of two factors collide")
                out.append(Term(a.dummies + b.dummies, a.body * b.body))
        return SumPoly(tuple(out))

    def scale(self, c) -> "SumPoly":
        return SumPoly(tuple(Term(t.dummies, c * t.body) for t in self.terms))

    def summed(self, dummy: sp.Symbol) -> "SumPoly":
        """Sum every term over ``dummy`` as well (its range is recorded by the caller)."""
        return SumPoly(tuple(Term(t.dummies + (dummy,), t.body) for t in self.terms))

    def map_bodies(self, fn) -> "SumPoly":
        return SumPoly(tuple(Term(t.dummies, fn(t.body)) for t in self.terms))

    def to_sympy(self, ranges: IndexRanges) -> sp.Expr:
        out = sp.Integer(0)
        for t in self.terms:
            e = t.body
            for d in t.dummies:
                lo, hi = ranges[d]
                e = sp.Sum(e, (d, lo, hi))
            out += e
        return out


def from_sympy(expr: sp.Expr, ranges: IndexRanges) -> SumPoly:
    """Convert an expression with (nested, multiplied, added) SymPy ``Sum``\\ s into a
    :class:`SumPoly`; each summation index is replaced by a fresh one whose range is added
    to ``ranges``. Sums inside non-polynomial contexts (``log(sum ...)``) stay opaque atoms,
    their indices renamed canonically (alpha-equivalence) by :func:`canonical`."""
    expr = sp.sympify(expr)
    if not expr.has(sp.Sum):
        return SumPoly.const(expr)
    if isinstance(expr, sp.Add):
        out = SumPoly.zero()
        for a in expr.args:
            out = out + from_sympy(a, ranges)
        return out
    if isinstance(expr, sp.Mul):
        out = SumPoly.const(1)
        for a in expr.args:
            out = out * from_sympy(a, ranges)
        return out
    if isinstance(expr, sp.Pow) and expr.exp.is_Integer and expr.exp > 0:
        out = SumPoly.const(1)
        for _ in range(int(expr.exp)):
            out = out * from_sympy(expr.base, ranges)
        return out
    if isinstance(expr, sp.Sum):
        body = expr.function
        fresh = []
        for lim in expr.limits:
            if len(lim) != 3:
                raise ValueError(f"a sum needs explicit bounds: {expr}")
            d, lo, hi = lim
            nd = sp.Dummy(str(d), integer=True)
            body = body.xreplace({d: nd})
            # bounds of inner limits may mention outer indices: only rectangular sums here
            ranges[nd] = (lo.xreplace(dict(zip([x[0] for x in expr.limits], fresh))),
                          hi.xreplace(dict(zip([x[0] for x in expr.limits], fresh))))
            fresh.append(nd)
        for nd in fresh:
            lo, hi = ranges[nd]
            if (lo.free_symbols | hi.free_symbols) & set(fresh):
                raise ValueError(f"only rectangular sums are supported (bounds of {expr} depend "
                                 "on a summation index)")
        inner = from_sympy(body, ranges)
        for nd in fresh:
            inner = inner.summed(nd)
        return inner
    # Opaque context (a function of a sum): kept whole, compared up to renaming.
    return SumPoly.const(expr)


def _alpha_canonical(e: sp.Expr, avoid: set, depth: int = 0) -> sp.Expr:
    """Rename the indices of SymPy sums inside opaque atoms to canonical names not in ``avoid``."""
    if not isinstance(e, sp.Basic) or not e.has(sp.Sum):
        return e
    if isinstance(e, sp.Sum):
        f = e.function
        limits = []
        for k, lim in enumerate(e.limits):
            d = lim[0]
            name = _fresh_name(f"s{depth}_{k}_", avoid)
            c = sp.Symbol(name, integer=True)
            f = f.xreplace({d: c})
            limits.append((c,) + tuple(lim[1:]))
        return sp.Sum(_alpha_canonical(f, avoid, depth + 1), *limits)
    return e.func(*[_alpha_canonical(a, avoid, depth) for a in e.args])


def _fresh_name(prefix: str, avoid: set) -> str:
    name = prefix
    while name in avoid:
        name = "_" + name
    return name


def _monomials(body: sp.Expr) -> list[sp.Expr]:
    return list(sp.Add.make_args(sp.expand(body)))


def _eliminate_deltas(dummies: list, body: sp.Expr, ranges: IndexRanges):
    changed = True
    while changed:
        changed = False
        for f in sp.Mul.make_args(body):
            if not isinstance(f, sp.KroneckerDelta):
                continue
            a, b = f.args
            for d, e in ((a, b), (b, a)):
                if d in dummies and (e.is_Symbol and e in ranges and ranges[e] == ranges[d]):
                    dummies.remove(d)
                    body = sp.Mul(*[g for g in sp.Mul.make_args(body) if g is not f]).xreplace({d: e})
                    changed = True
                    break
            if changed:
                break
    return dummies, body


def _split(body: sp.Expr, dummies: set):
    """``coefficient, key``: the factors free of summation indices and of indexed objects
    form the coefficient; the rest is the key compared across terms."""
    coeff, key = [], []
    for f in sp.Mul.make_args(body):
        if f.free_symbols & dummies or f.has(sp.Indexed, sp.KroneckerDelta):
            key.append(f)
        else:
            coeff.append(f)
    return sp.Mul(*coeff), sp.Mul(*key)


def _symmetrise(e: sp.Expr, symmetric: frozenset) -> sp.Expr:
    if not symmetric:
        return e

    def fix(x):
        if isinstance(x, sp.Indexed) and x.base in symmetric and len(x.indices) == 2:
            i, j = x.indices
            if sp.default_sort_key(j) < sp.default_sort_key(i):
                return x.base[j, i]
        return x

    return e.replace(lambda x: isinstance(x, sp.Indexed), fix)


def canonical(poly: SumPoly, ranges: IndexRanges, *, avoid: Iterable[str] = (),
              symmetric: frozenset = frozenset()) -> dict:
    """The canonical form of ``poly``: ``{(canonical ranges, key): coefficient}``.

    ``avoid``: names in use (free symbols of everything compared); canonical summation
    indices never take one of them. ``symmetric``: IndexedBases known to be symmetric.
    """
    avoid = set(avoid)
    for t in poly.terms:
        avoid |= {s.name for s in t.body.free_symbols}
    # an index ranging over a single value is that value
    single = {d: lo for d, (lo, hi) in ranges.items() if sp.expand(hi - lo) == 0}
    out: dict = {}
    for t in poly.terms:
        if single:
            t = Term(tuple(d for d in t.dummies if d not in single), t.body.xreplace(single))
        for mono in _monomials(t.body):
            mono = _alpha_canonical(mono, avoid)
            dummies = [d for d in t.dummies]
            dummies, mono = _eliminate_deltas(dummies, mono, ranges)
            used = mono.free_symbols
            factor = sp.Integer(1)
            for d in list(dummies):
                if d not in used:
                    lo, hi = ranges[d]
                    factor *= (hi - lo + 1)
                    dummies.remove(d)
            coeff, key = _split(mono, set(dummies))
            coeff = coeff * factor
            ckey = _canonical_key(dummies, key, ranges, avoid, symmetric)
            out[ckey] = out.get(ckey, sp.Integer(0)) + coeff
    return out


def _canonical_key(dummies, key, ranges, avoid, symmetric):
    if not dummies:
        return ((), sp.srepr(_symmetrise(key, symmetric)), key)
    # canonical slots: one name per position; a dummy may take a slot only with its own range
    best = None
    slots = [sp.Symbol(_fresh_name(f"k{n}_", avoid), integer=True) for n in range(len(dummies))]
    for perm in itertools.permutations(range(len(dummies))):
        rename = {d: slots[p] for d, p in zip(dummies, perm)}
        slot_ranges = tuple(ranges[d] for d, _ in sorted(zip(dummies, perm), key=lambda x: x[1]))
        k = _symmetrise(key.xreplace(rename), symmetric)
        cand = (tuple(sp.srepr(r) for r in slot_ranges), sp.srepr(k))
        if best is None or cand < best[0]:
            best = (cand, k)
    return best[0][0], best[0][1], best[1]


def is_zero_sums(poly: SumPoly, ranges: IndexRanges, zero, *, avoid=(), symmetric=frozenset()):
    """Whether ``poly`` is identically zero: every canonical coefficient must pass ``zero``
    (the scalar checker). Returns ``(ok, offending key or None)``."""
    form = canonical(poly, ranges, avoid=avoid, symmetric=symmetric)
    for (rng, _, key), coeff in form.items():
        if not zero(coeff):
            return False, key
    return True, None
