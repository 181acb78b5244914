r"""Matrix algebra at general dimension: a normal form built from the sound axioms only.

A structural matrix expression is brought to a sum of ``coefficient * (product of atoms)``
using exactly these axioms, each recorded when it fires (the page lists them):

* ``associativity`` and ``distributivity`` of the matrix product, scalars commute with
  matrices (``scalar multiplication``);
* ``identity``: ``I X = X I = X``; ``zero``: ``0 X = 0``;
* ``inverse``: ``X X^{-1} = X^{-1} X = I`` for invertible ``X`` (the condition
  ``det X != 0`` is recorded), ``(X Y)^{-1} = Y^{-1} X^{-1}`` for square invertible factors,
  ``(X^{-1})^{-1} = X``, ``(c X)^{-1} = c^{-1} X^{-1}`` (``c != 0`` recorded);
* ``transpose``: ``(X Y)^T = Y^T X^T``, ``(X + Y)^T = X^T + Y^T``, ``(X^T)^T = X``,
  ``(X^{-1})^T = (X^T)^{-1}``, ``I^T = I``; ``S^T = S`` for a hypothesis ``Q.symmetric(S)``;
  a ``1 x 1`` matrix equals its transpose (``Scalar(u^T v) = Scalar(v^T u)``).

Nothing else: a Kronecker product, a vectorisation, an expectation, a gradient are opaque
atoms here (their arguments normalised), so ``(A \otimes B)^T = A^T \otimes B^T`` is *not*
provable by this normal form -- it is a theorem, proved entry-wise and then cited as a lemma.
"""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr

from ._check import CheckError
from ._instantiate import unfold
from ._nodes import At, Diag, Expect, Grad, Hess, Kron, RVec, Scalar, Vec

__all__ = ["Normaliser", "AXIOMS"]

#: The axioms of matrix algebra the normal form may use (name -> statement, LaTeX).
AXIOMS = {
    "associativity": r"$(XY)Z = X(YZ)$",
    "distributivity": r"$X(Y + Z) = XY + XZ$, $(X + Y)Z = XZ + YZ$",
    "scalar multiplication": r"$(cX)Y = X(cY) = c\,XY$ for scalars $c$",
    "identity": r"$IX = XI = X$",
    "zero": r"$0X = X0 = 0$",
    "inverse": r"$XX^{-1} = X^{-1}X = I$ for invertible $X$",
    "inverse of a product": r"$(XY)^{-1} = Y^{-1}X^{-1}$ for square invertible $X, Y$; "
                            r"$(X^{-1})^{-1} = X$; $(cX)^{-1} = c^{-1}X^{-1}$ ($c \ne 0$)",
    "transpose": r"$(XY)^\top = Y^\top X^\top$, $(X+Y)^\top = X^\top + Y^\top$, "
                 r"$(X^\top)^\top = X$, $(X^{-1})^\top = (X^\top)^{-1}$, $I^\top = I$",
    "symmetric": r"$S^\top = S$ for a symmetric hypothesis $S$",
    "1x1 transpose": r"a $1\times1$ matrix equals its transpose: $u^\top v = v^\top u$",
}


def _square(a) -> bool:
    r, c = a.shape
    return sp.expand(r - c) == 0


class Normaliser:
    """Normal forms of structural expressions under :data:`AXIOMS`.

    Args:
      definitions: symbol -> structural definition (unfolded first).
      symmetric: the ``MatrixSymbol``\\ s known symmetric (hypotheses).
    """

    def __init__(self, definitions=None, symmetric=frozenset()):
        self.definitions = dict(definitions or {})
        self.symmetric = frozenset(symmetric)
        self.used: set = set()
        self.conditions: list = []

    # ------------------------------------------------------------ normal form: {atoms: coeff}
    def nf(self, e) -> dict:
        e = unfold(sp.sympify(e), self.definitions)
        if not isinstance(e, MatrixExpr):
            raise CheckError(f"{e} is not a matrix expression")
        return self._nf(self.prep(e))

    # ------------------------------------------------------------ pre-pass
    def prep(self, e):
        """Transposes pushed to the atoms, products flattened, and adjacent ``M M^{-1}``
        cancelled for compound ``M`` (``(C + lambda I)(C + lambda I)^{-1} = I``) before the
        normal form distributes ``M`` away."""
        if not isinstance(e, MatrixExpr) or isinstance(e, (sp.MatrixSymbol, sp.Identity, sp.ZeroMatrix)):
            return e
        if isinstance(e, sp.Transpose):
            return self._push_t(self.prep(e.args[0]))
        if isinstance(e, sp.MatAdd):
            return sp.MatAdd(*[self.prep(a) for a in e.args])
        if isinstance(e, sp.MatMul):
            scal, mats = [], []
            for a in e.args:
                a = self.prep(a)
                if isinstance(a, sp.MatMul):
                    for b in a.args:
                        (mats if isinstance(b, MatrixExpr) else scal).append(b)
                elif isinstance(a, MatrixExpr):
                    mats.append(a)
                else:
                    scal.append(a)
            if len(mats) > 2 or any(isinstance(a, sp.MatMul) for a in e.args):
                self.used.add("associativity")
            mats = self._cancel(mats)
            kept = [m for m in mats if not isinstance(m, sp.Identity)]
            if len(kept) < len(mats):
                self.used.add("identity")
            mats = kept or [sp.Identity(e.shape[0])]
            return sp.MatMul(*(scal + mats)) if (len(mats) > 1 or scal) else mats[0]
        if isinstance(e, sp.Inverse):
            return sp.Inverse(self.prep(e.args[0]))
        if isinstance(e, sp.MatPow):
            return sp.MatPow(self.prep(e.args[0]), e.args[1])
        if isinstance(e, (Kron, Vec, RVec, Diag)):
            return type(e)(*[self.prep(a) for a in e.args])
        if isinstance(e, Expect):
            return Expect(self.prep(e.args[0]), e.args[1].name)
        if isinstance(e, At):
            return At(self.prep(e.args[0]), e.args[1], self.prep(e.args[2]))
        return e

    def _push_t(self, a):
        self.used.add("transpose")
        if isinstance(a, sp.MatrixSymbol):
            if a in self.symmetric:
                self.used.add("symmetric")
                return a
            return sp.Transpose(a)
        if isinstance(a, sp.Identity):
            return a
        if isinstance(a, sp.ZeroMatrix):
            return sp.ZeroMatrix(a.shape[1], a.shape[0])
        if isinstance(a, sp.Transpose):
            return a.args[0]
        if isinstance(a, sp.MatMul):
            scal = [x for x in a.args if not isinstance(x, MatrixExpr)]
            mats = [self._push_t(x) for x in reversed([x for x in a.args if isinstance(x, MatrixExpr)])]
            return sp.MatMul(*(scal + mats))
        if isinstance(a, sp.MatAdd):
            return sp.MatAdd(*[self._push_t(x) for x in a.args])
        if isinstance(a, sp.Inverse):
            return sp.Inverse(self._push_t(a.args[0]))
        return sp.Transpose(a)

    def _canon(self, m):
        return self.expr(self._nf(m), m.shape)

    def _cancel(self, mats: list) -> list:
        out: list = []
        for m in mats:
            if out:
                prev = out[-1]
                pair = None
                if isinstance(m, sp.Inverse) and not isinstance(prev, sp.Inverse):
                    pair = (prev, m.args[0])
                elif isinstance(prev, sp.Inverse) and not isinstance(m, sp.Inverse):
                    pair = (m, prev.args[0])
                if pair is not None and self._canon(pair[0]) == self._canon(pair[1]):
                    out.pop()
                    self.used.add("inverse")
                    self._record(sp.Determinant(pair[1]))
                    continue
            out.append(m)
        return out

    def _add(self, out, atoms, coeff):
        out[atoms] = out.get(atoms, sp.Integer(0)) + coeff

    def _nf(self, e) -> dict:
        if isinstance(e, sp.ZeroMatrix):
            self.used.add("zero")
            return {}
        if isinstance(e, sp.Identity):
            return {(): sp.Integer(1)}
        if isinstance(e, sp.MatAdd):
            out: dict = {}
            for a in e.args:
                for k, v in self._nf(a).items():
                    self._add(out, k, v)
            return out
        if isinstance(e, sp.MatMul):
            coeff = sp.Integer(1)
            forms = [{(): sp.Integer(1)}]
            mats = 0
            for a in e.args:
                if isinstance(a, sp.Identity):
                    self.used.add("identity")
                if isinstance(a, MatrixExpr):
                    forms.append(self._nf(a))
                    mats += 1
                else:
                    coeff = coeff * self.scalar(a)
            if mats > 1:
                self.used.add("associativity")
            if coeff != 1:
                self.used.add("scalar multiplication")
            out = {(): coeff}
            for f in forms[1:]:
                if len(f) > 1:
                    self.used.add("distributivity")
                new: dict = {}
                for k1, v1 in out.items():
                    for k2, v2 in f.items():
                        self._add(new, self._reduce(k1 + k2), v1 * v2)
                out = new
            return out
        if isinstance(e, sp.Transpose):
            self.used.add("transpose")
            out = {}
            for k, v in self._nf(e.args[0]).items():
                self._add(out, tuple(self._t(a) for a in reversed(k)), v)
            return out
        if isinstance(e, sp.Inverse):
            return self._inv(e.args[0])
        if isinstance(e, sp.MatPow):
            base, k = e.args
            if not k.is_Integer:
                raise CheckError(f"{e}: only integer matrix powers")
            k = int(k)
            if k == 0:
                return {(): sp.Integer(1)}
            prod = sp.MatMul(*([base] * abs(k)))
            return self._nf(prod) if k > 0 else self._inv(prod)
        return {(self._atom(e),): sp.Integer(1)}

    def _reduce(self, atoms: tuple) -> tuple:
        """Cancel adjacent ``X X^{-1}`` pairs (``inverse``)."""
        out: list = []
        for a in atoms:
            if out and (self._is_inverse_pair(out[-1], a)):
                if isinstance(a, sp.Transpose):
                    self.used.add("transpose")
                out.pop()
                self.used.add("inverse")
                continue
            out.append(a)
        if len(atoms) > len(out) and not out:
            self.used.add("identity")
        return tuple(out)

    @staticmethod
    def _is_inverse_pair(a, b) -> bool:
        if isinstance(a, sp.Transpose) and isinstance(b, sp.Transpose):
            # (X^{-1})^T X^T = (X X^{-1})^T = I and X^T (X^{-1})^T = I
            return Normaliser._is_inverse_pair(b.args[0], a.args[0])
        return (isinstance(b, sp.Inverse) and b.args[0] == a) or \
               (isinstance(a, sp.Inverse) and a.args[0] == b)

    def _atom(self, e):
        """Opaque atoms, their matrix arguments normalised."""
        if isinstance(e, sp.MatrixSymbol):
            return e
        if isinstance(e, (Kron, Vec, RVec, Diag)):
            return type(e)(*[self.expr(self._nf(a), a.shape) for a in e.args])
        if isinstance(e, Expect):
            M, over = e.args
            return Expect(self.expr(self._nf(M), M.shape), over.name)
        if isinstance(e, (Grad, Hess)):
            f, x = e.args
            return type(e)(self.scalar(f), x)
        if isinstance(e, At):
            M, x, v = e.args
            if not M.has(Grad, Hess):
                self.used.add("substitution")
                return self.expr(self._nf(M.xreplace({x: v})), M.shape)
            return At(self.expr(self._nf(M), M.shape), x, self.expr(self._nf(v), v.shape))
        if isinstance(e, MatrixExpr):
            return e
        raise CheckError(f"{e} is not a matrix atom")

    def _t(self, a):
        """Transpose of one atom."""
        if isinstance(a, sp.MatrixSymbol):
            if a in self.symmetric:
                self.used.add("symmetric")
                return a
            return sp.Transpose(a)
        if isinstance(a, sp.Transpose):
            return a.args[0]
        if isinstance(a, sp.Inverse):
            inner = self._t(a.args[0]) if _is_atom(a.args[0]) else self.expr(
                self._nf(sp.Transpose(a.args[0])), a.shape)
            return self._inv_atom(inner)
        return sp.Transpose(a)

    def _inv_atom(self, a):
        if isinstance(a, sp.Inverse):
            return a.args[0]
        if isinstance(a, sp.Transpose) and isinstance(a.args[0], sp.MatrixSymbol):
            return sp.Transpose(sp.Inverse(a.args[0]))
        if isinstance(a, sp.Transpose) and isinstance(a.args[0], sp.Inverse):
            return sp.Transpose(a.args[0].args[0])
        return sp.Inverse(a)

    def _inv(self, M) -> dict:
        self._record(sp.Determinant(M))
        form = self._nf(M)
        if len(form) == 1:
            (atoms, c), = form.items()
            if all(_square(a) for a in atoms):
                if c != 1:
                    self._record(c)
                    self.used.add("inverse of a product")
                if len(atoms) > 1 or any(isinstance(a, (sp.Inverse, sp.Transpose)) for a in atoms):
                    self.used.add("inverse of a product")
                for a in atoms:
                    self._record(sp.Determinant(a))
                return {tuple(self._inv_atom(a) for a in reversed(atoms)): 1 / c}
        return {(sp.Inverse(self.expr(form, M.shape)),): sp.Integer(1)}

    def _record(self, c):
        if isinstance(c, sp.Determinant) and isinstance(c.args[0], sp.Identity):
            return
        if getattr(c, "is_nonzero", None) is True:
            return
        if c not in self.conditions:
            self.conditions.append(c)

    # ------------------------------------------------------------ scalars
    def scalar(self, s):
        s = unfold(sp.sympify(s), self.definitions)
        if isinstance(s, (Scalar, sp.Trace)):
            # linear: the coefficients come out, each product is an opaque scalar atom
            M = s.args[0]
            out = sp.Integer(0)
            for atoms, c in self._nf(self.prep(M)).items():
                prod = self.expr({atoms: sp.Integer(1)}, M.shape)
                if isinstance(s, Scalar):
                    flipped = self.expr(self._nf(self.prep(sp.Transpose(prod))), M.shape)
                    if sp.default_sort_key(flipped) < sp.default_sort_key(prod):
                        self.used.add("1x1 transpose")
                        prod = flipped
                out += c * type(s)(prod)
            return out
        if isinstance(s, sp.Determinant):
            M = s.args[0]
            return sp.Determinant(self.expr(self._nf(self.prep(M)), M.shape))
        if not s.args or not s.has(Scalar, sp.Trace, sp.Determinant, sp.MatrixSymbol):
            return s
        return s.func(*[self.scalar(a) for a in s.args])

    # ------------------------------------------------------------ back to an expression
    @staticmethod
    def expr(form: dict, shape) -> sp.Basic:
        terms = []
        for atoms, c in sorted(form.items(), key=lambda kv: sp.default_sort_key(
                sp.Tuple(*kv[0]) if kv[0] else sp.Tuple())):
            if c == 0:
                continue
            if not atoms:
                prod = sp.Identity(shape[0])
            elif len(atoms) == 1:
                prod = atoms[0]
            else:
                prod = sp.MatMul(*atoms)
            terms.append(prod if c == 1 else sp.MatMul(c, prod))
        if not terms:
            return sp.ZeroMatrix(*shape)
        return terms[0] if len(terms) == 1 else sp.MatAdd(*terms)

    # ------------------------------------------------------------ equality
    def equal(self, lhs, rhs, zero) -> tuple[bool, str]:
        """``(ok, why)``: whether the normal forms of ``lhs`` and ``rhs`` agree, the
        coefficients compared by the scalar checker ``zero``."""
        lhs = unfold(sp.sympify(lhs), self.definitions)
        rhs = unfold(sp.sympify(rhs), self.definitions)
        lm, rm = isinstance(lhs, MatrixExpr), isinstance(rhs, MatrixExpr)
        if lm != rm:
            return False, "a matrix compared with a scalar"
        if not lm:
            d = self.scalar(lhs) - self.scalar(rhs)
            return (True, "") if zero(d) else (False, "the scalar difference does not vanish")
        if not all(sp.expand(a - b) == 0 for a, b in zip(lhs.shape, rhs.shape)):
            return False, f"shapes differ: {lhs.shape} vs {rhs.shape}"
        lf, rf = self._nf(self.prep(lhs)), self._nf(self.prep(rhs))
        keys = set(lf) | set(rf)
        for k in keys:
            if not zero(lf.get(k, 0) - rf.get(k, 0)):
                shown = sp.MatMul(*k) if len(k) > 1 else (k[0] if k else "I")
                return False, f"the coefficient of {shown} differs"
        return True, ""

    # ------------------------------------------------------------ lemma application
    def rewrite(self, e, L, R) -> list:
        """Candidates: ``e`` with the lemma instance ``L`` replaced by ``R`` -- as a subtree, and
        as a contiguous run of factors in the normal form of each matrix sub-expression (also
        inside a determinant, trace or ``Scalar``)."""
        e = unfold(sp.sympify(e), self.definitions)
        # the sides unfolded too: an abbreviation of the instance may occur, unfolded, inside an
        # opaque atom of ``e`` (an expectation, a gradient), where only a subtree match finds it
        L, R = unfold(sp.sympify(L), self.definitions), unfold(sp.sympify(R), self.definitions)
        out = []
        if e.has(L):
            out.append(e.xreplace({L: R}))
        if not isinstance(L, MatrixExpr):
            return out
        lf = self.nf(L)
        if len(lf) != 1:
            return out
        (latoms, lc), = lf.items()
        if not latoms:
            return out
        rep = self.prep(R) if lc == 1 else sp.MatMul(1 / lc, self.prep(R))
        for M in _maximal_matrices(e):
            cand = self._run_replace(M, latoms, rep)
            if cand is not None:
                out.append(e.xreplace({M: cand}))
        return out

    def _run_replace(self, M, latoms, rep):
        form = self.nf(M)
        terms, hit = [], False
        for atoms, c in form.items():
            factors, i = [], 0
            while i < len(atoms):
                if atoms[i:i + len(latoms)] == latoms:
                    factors.append(rep)
                    i += len(latoms)
                    hit = True
                else:
                    factors.append(atoms[i])
                    i += 1
            prod = sp.MatMul(*factors) if len(factors) > 1 else (
                factors[0] if factors else sp.Identity(M.shape[0]))
            terms.append(sp.MatMul(c, prod) if c != 1 else prod)
        if not hit:
            return None
        return sp.MatAdd(*terms) if len(terms) > 1 else terms[0]

    def gram(self, f) -> bool:
        """``f`` is ``Scalar(u^T u)`` for a real matrix expression ``u`` (a sum of squares)."""
        if not isinstance(f, Scalar):
            return False
        form = self.nf(f.args[0])
        if len(form) != 1:
            return False
        (atoms, c), = form.items()
        k = len(atoms)
        if not (c.is_positive and k and k % 2 == 0):
            return False
        left, right = atoms[:k // 2], atoms[k // 2:]
        return left == tuple(self._t(a) for a in reversed(right))


def _maximal_matrices(e):
    if isinstance(e, MatrixExpr):
        yield e
        return
    for a in getattr(e, "args", ()):
        if isinstance(a, sp.Basic):
            yield from _maximal_matrices(a)


def _is_atom(a) -> bool:
    return isinstance(a, (sp.MatrixSymbol, sp.Transpose, sp.Inverse))
