"""The checker's scalar core: what an expression may contain, when a difference is exactly
zero, when a quantity is manifestly nonnegative, and which denominators it divides by.

Every rung of the zero ladder is valid for every value of the symbols that their SymPy
assumptions allow: ``expand``, ``cancel``, the numerator of ``together``, the
assumption-respecting ``expand_log``/``powsimp`` (no ``force=True``: ``log(x y) = log x +
log y`` is false for negative reals and is applied only when SymPy knows ``x, y > 0``) and
finally ``simplify``. Rational-function identities hold where their denominators do not
vanish; :func:`denominators` lists those, and the derivation records them on the page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef
from sympy.matrices.expressions.matexpr import MatrixExpr

__all__ = ["CheckError", "validate", "entries", "shape_of", "same_shape", "difference", "is_zero",
           "zero_method", "manifestly_nonnegative", "denominators", "undefined_functions", "doit",
           "FORBIDDEN", "LADDER_NAMES"]


class CheckError(ValueError):
    """An expression the checker refuses to look at (Float, forbidden rewrite node, shape)."""


#: SymPy classes whose construction or methods rewrite by the identities this library proves
#: (``KroneckerProduct(A, B).inverse()`` returns ``A^{-1} (x) B^{-1}``; ``.T`` distributes).
FORBIDDEN: dict[type, str] = {
    sp.KroneckerProduct: "SymPy's KroneckerProduct rewrites by the Kronecker rules themselves "
                         "(transpose, inverse, mixed product); use toolkit.Kron",
}


def validate(expr: Any, where: str) -> None:
    """Refuse Float constants and rewrite-presupposing nodes anywhere in ``expr``."""
    for e in _leaves(expr):
        e = sp.sympify(e)
        if not isinstance(e, sp.Basic):
            raise CheckError(f"{where}: {e!r} is not a SymPy expression")
        for node in sp.preorder_traversal(e):
            if isinstance(node, sp.Float):
                raise CheckError(f"{where}: Float constant {node} in a checked expression; "
                                 "write exact numbers (sympy.Rational)")
            for cls, why in FORBIDDEN.items():
                if isinstance(node, cls):
                    raise CheckError(f"{where}: {type(node).__name__} is not allowed: {why}")
        if e in (sp.true, sp.false) or isinstance(e, sp.logic.boolalg.BooleanAtom):
            raise CheckError(f"{where}: a truth value ({e}) is not an expression")


def _leaves(expr):
    if isinstance(expr, (list, tuple)):
        for e in expr:
            yield from _leaves(e)
    else:
        yield expr


def shape_of(expr: Any) -> tuple | None:
    """``(rows, cols)`` of a matrix (explicit or expression), ``None`` for a scalar."""
    if isinstance(expr, (sp.MatrixBase, MatrixExpr)):
        return tuple(expr.shape)
    return None


def same_shape(a: Any, b: Any) -> bool:
    """Exactly equal shapes; a ``1 x 1`` matrix and a scalar count as the same (its entry)."""
    sa, sb = shape_of(a), shape_of(b)
    if sa is None or sb is None:
        other = sb if sa is None else sa
        return other is None or tuple(other) == (1, 1)
    return all(sp.expand(x - y) == 0 for x, y in zip(sa, sb))


def entries(expr: Any) -> list:
    """The entries of an explicit matrix (row-major) or ``[expr]`` for a scalar."""
    if isinstance(expr, sp.MatrixBase):
        return list(expr)
    if isinstance(expr, MatrixExpr):
        raise CheckError(f"matrix expression {expr} has no explicit entries here")
    return [sp.sympify(expr)]


def difference(lhs: Any, rhs: Any, where: str) -> list:
    """Entry-wise ``lhs - rhs`` of two explicit values of the same shape."""
    if not same_shape(lhs, rhs):
        raise CheckError(f"{where}: shapes differ: {shape_of(lhs) or 'scalar'} vs "
                         f"{shape_of(rhs) or 'scalar'}")
    le, re_ = entries(lhs), entries(rhs)
    if not le:
        raise CheckError(f"{where}: empty matrices compare nothing")
    return [a - b for a, b in zip(le, re_)]


def doit(e: sp.Expr) -> sp.Expr:
    """Evaluate derivatives, substitutions and concrete sums/products (exact evaluation)."""
    if isinstance(e, sp.Basic) and e.has(sp.Derivative, sp.Subs, sp.Sum, sp.Product, sp.Integral):
        return e.doit()
    return e


def _numerator_of_together(e):
    return sp.expand(sp.numer(sp.together(e)))


def _log_pow(e):
    # Assumption-respecting only: without force, SymPy expands log(x*y) and combines
    # x**a*x**b / sqrt(x)*sqrt(y) only where the assumptions make it valid.
    return sp.expand(sp.expand_log(sp.powsimp(sp.expand(e))))


_LADDER: tuple[tuple[str, Callable[[sp.Expr], sp.Expr]], ...] = (
    ("expand", lambda e: sp.expand(e)),
    ("cancel", lambda e: sp.cancel(sp.expand(e))),
    ("together", _numerator_of_together),
    ("expand_log", _log_pow),
    ("simplify", lambda e: sp.simplify(e)),
)
LADDER_NAMES = tuple(n for n, _ in _LADDER)


def _matrix_atoms(e) -> dict:
    """Scalars made of matrix expressions (``tr X``, ``det X``, the entry of ``u^T v``) -> a
    Dummy each, so that the scalar rewrites treat them as opaque variables (an identity in
    free variables holds for every value of them)."""
    found: dict = {}

    def walk(x):
        if not isinstance(x, sp.Basic) or isinstance(x, MatrixExpr):
            return
        if isinstance(x, sp.Expr) and any(isinstance(a, MatrixExpr) for a in x.args):
            if x not in found:
                found[x] = sp.Dummy("m")
            return
        for a in x.args:
            walk(a)

    walk(e)
    return found


def zero_method(e: sp.Expr) -> str:
    """The first canonicalisation reducing the scalar ``e`` to a literal 0, or ``""``."""
    e = doit(sp.sympify(e))
    atoms = _matrix_atoms(e)
    if atoms:
        e = e.xreplace(atoms)
    if e == 0:
        return "literal"
    for name, fn in _LADDER:
        if fn(e) == 0:
            return name
    return ""


def is_zero(diff: Any) -> tuple[bool, str]:
    """Whether every entry of ``diff`` (scalar, explicit matrix, list) reduces to exactly 0.

    Returns ``(True, method)`` with the strongest rung any entry needed, else ``(False, "")``.
    An empty ``diff`` is not zero: it compares nothing.
    """
    items = []
    for d in _leaves(diff):
        items += entries(d)
    if not items:
        return False, ""
    order = ("literal",) + LADDER_NAMES
    worst = "literal"
    for e in items:
        m = zero_method(e)
        if not m:
            return False, ""
        worst = max(worst, m, key=order.index)
    return True, worst


def _real(f: sp.Expr) -> bool:
    return f.is_extended_real is True


def manifestly_nonnegative(expr: sp.Expr, extra: Callable[[sp.Expr], bool] | None = None) -> bool:
    """``expr`` is, as written, a sum of terms each a product of real nonnegative factors.

    A factor counts when SymPy's assumptions make it real and nonnegative (a positive symbol,
    ``Abs``), when it is an even power of a *real* base (``z**2`` with ``z`` complex does not
    count: ``i**2 = -1``), or when it is a finite ``Sum`` of such terms. Nothing is expanded or
    rewritten first: the form itself is the certificate. ``extra`` may accept further factors
    (the matrix checker accepts ``u^T u`` for a real matrix expression ``u``).
    """
    expr = sp.sympify(expr)
    if isinstance(expr, MatrixExpr) or isinstance(expr, sp.MatrixBase):
        return False
    for term in sp.Add.make_args(expr):
        for f in sp.Mul.make_args(term):
            if f.is_Number:
                if f < 0:
                    return False
                continue
            if f.is_nonnegative is True and _real(f):
                continue
            if extra is not None and extra(f):
                continue
            if f.is_Pow and f.exp.is_Integer and f.exp.is_even and _real(f.base):
                continue
            if isinstance(f, sp.Sum) and all(len(lim) == 3 for lim in f.limits) and \
                    manifestly_nonnegative(f.function, extra):
                continue
            return False
    return True


def denominators(expr: Any) -> list[sp.Expr]:
    """The bases an expression divides by (negative powers), less those SymPy knows are
    nonzero from the assumptions; each must not vanish for the identity to hold there."""
    out: list[sp.Expr] = []
    for e in _leaves(expr):
        e = sp.sympify(e)
        if isinstance(e, sp.MatrixBase):
            items = list(e)
        else:
            items = [e]
        for it in items:
            for node in sp.preorder_traversal(it):
                if isinstance(node, sp.Pow) and node.exp.is_negative and not node.base.is_Number:
                    b = node.base
                    if b.is_nonzero is True or b.is_positive is True:
                        continue
                    if b not in out:
                        out.append(b)
    return out


def undefined_functions(expr: Any) -> set:
    out = set()
    for e in _leaves(expr):
        e = sp.sympify(e)
        items = list(e) if isinstance(e, sp.MatrixBase) else [e]
        for it in items:
            out |= {f.func for f in it.atoms(AppliedUndef)}
    return out
