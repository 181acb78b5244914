r"""Structural vocabulary: the SymPy objects a conclusion and a chain are written in.

These nodes are *inert*: SymPy applies none of its rewrite rules to them (``Kron(A, B).T``
stays ``(A \otimes B)^T``; SymPy's own ``KroneckerProduct`` would rewrite it to
``A^T \otimes B^T``, presupposing a theorem). Their meaning is given once, by the checker's
two evaluators in :mod:`fisherlab.symbolic._instantiate`: the explicit one (matrices of symbols
at stated sizes, tier ``B`` / ``A-model``) and the entry-wise one (finite sums with symbolic
bounds, tier ``A``).

* :class:`Kron` ``A \otimes B``, :class:`Vec` (stack columns), :class:`RVec` (stack rows),
  :class:`Diag` (diagonal matrix of a vector);
* :class:`Scalar` the entry of a ``1 x 1`` matrix as a scalar (``g^T \Delta``);
* :class:`Grad` the gradient of a scalar in a column vector, :class:`Hess` its Hessian,
  :class:`At` a matrix expression with a vector set to a value;
* :class:`Expect` an expectation; its meaning is the operator the instantiation supplies.
"""

from __future__ import annotations

import sympy as sp
from sympy.matrices.expressions.matexpr import MatrixExpr
from sympy.printing.precedence import PRECEDENCE

__all__ = ["Kron", "Vec", "RVec", "Diag", "Scalar", "Grad", "Hess", "At", "Expect", "NODES"]


def _matrix(arg, who):
    arg = sp.sympify(arg)
    if not isinstance(arg, (MatrixExpr, sp.MatrixBase)):
        raise TypeError(f"{who}: expected a matrix expression, got {arg!r} ({type(arg).__name__})")
    return arg


def _wrap(printer, arg):
    text = printer._print(arg)
    if isinstance(arg, (sp.MatAdd, sp.MatMul, Kron)) or (
            isinstance(arg, sp.MatMul) and len(arg.args) > 1):
        return r"\left(" + text + r"\right)"
    return text


class Kron(MatrixExpr):
    r"""``A \otimes B``: the block matrix with blocks ``A_{ij} B`` (rows ``i p + k``)."""

    precedence = PRECEDENCE["Mul"]

    def __new__(cls, A, B):
        return super().__new__(cls, _matrix(A, "Kron"), _matrix(B, "Kron"))

    @property
    def shape(self):
        A, B = self.args
        return (A.shape[0] * B.shape[0], A.shape[1] * B.shape[1])

    def _latex(self, printer):
        return r" \otimes ".join(_wrap(printer, a) for a in self.args)


class Vec(MatrixExpr):
    r"""``\operatorname{vec}(X)``: the columns of ``X`` stacked (column-major)."""

    def __new__(cls, X):
        return super().__new__(cls, _matrix(X, "Vec"))

    @property
    def shape(self):
        X = self.args[0]
        return (X.shape[0] * X.shape[1], sp.Integer(1))

    def _latex(self, printer):
        return r"\operatorname{vec}\left(" + printer._print(self.args[0]) + r"\right)"


class RVec(MatrixExpr):
    r"""``\operatorname{rvec}(X)``: the rows of ``X`` stacked (row-major, ``ravel_pytree``'s order)."""

    def __new__(cls, X):
        return super().__new__(cls, _matrix(X, "RVec"))

    @property
    def shape(self):
        X = self.args[0]
        return (X.shape[0] * X.shape[1], sp.Integer(1))

    def _latex(self, printer):
        return r"\operatorname{rvec}\left(" + printer._print(self.args[0]) + r"\right)"


class Diag(MatrixExpr):
    r"""``\operatorname{diag}(v)`` for a column vector ``v``."""

    def __new__(cls, v):
        v = _matrix(v, "Diag")
        if v.shape[1] != 1:
            raise ValueError(f"Diag: expected a column vector, got shape {v.shape}")
        return super().__new__(cls, v)

    @property
    def shape(self):
        n = self.args[0].shape[0]
        return (n, n)

    def _latex(self, printer):
        return r"\operatorname{diag}\left(" + printer._print(self.args[0]) + r"\right)"


class Scalar(sp.Expr):
    r"""The entry of a ``1 x 1`` matrix expression, as a scalar (``g^\top \Delta``)."""

    is_commutative = True

    def __new__(cls, M):
        M = _matrix(M, "Scalar")
        if tuple(M.shape) != (1, 1):
            raise ValueError(f"Scalar: expected a 1 x 1 matrix expression, got shape {M.shape}")
        return super().__new__(cls, M)

    @property
    def matrix(self):
        return self.args[0]

    def _latex(self, printer):
        return printer._print(self.args[0])

    def _eval_is_extended_real(self):
        return None


class Grad(MatrixExpr):
    r"""``\nabla_x f``: the gradient of the scalar ``f`` in the column vector ``x`` (shape of ``x``)."""

    def __new__(cls, f, x):
        f, x = sp.sympify(f), _matrix(x, "Grad")
        if not isinstance(x, sp.MatrixSymbol) or x.shape[1] != 1:
            raise TypeError(f"Grad: differentiate in a column-vector MatrixSymbol, got {x!r}")
        if isinstance(f, MatrixExpr):
            raise TypeError("Grad: f must be a scalar (wrap a 1 x 1 expression in Scalar)")
        return super().__new__(cls, f, x)

    @property
    def shape(self):
        return self.args[1].shape

    def _latex(self, printer):
        return (r"\nabla_{" + printer._print(self.args[1]) + r"}\left(" + printer._print(self.args[0])
                + r"\right)")


class Hess(MatrixExpr):
    r"""``\nabla^2_x f``: the Hessian of the scalar ``f`` in the column vector ``x``."""

    def __new__(cls, f, x):
        f, x = sp.sympify(f), _matrix(x, "Hess")
        if not isinstance(x, sp.MatrixSymbol) or x.shape[1] != 1:
            raise TypeError(f"Hess: differentiate in a column-vector MatrixSymbol, got {x!r}")
        return super().__new__(cls, f, x)

    @property
    def shape(self):
        n = self.args[1].shape[0]
        return (n, n)

    def _latex(self, printer):
        return (r"\nabla^2_{" + printer._print(self.args[1]) + r"}\left(" + printer._print(self.args[0])
                + r"\right)")


class At(MatrixExpr):
    r"""``M|_{x = v}``: the matrix expression ``M`` with the vector ``x`` set to ``v``
    (after any derivative in ``M`` is taken)."""

    def __new__(cls, M, x, v):
        M, x, v = _matrix(M, "At"), _matrix(x, "At"), _matrix(v, "At")
        if not isinstance(x, sp.MatrixSymbol):
            raise TypeError(f"At: the variable must be a MatrixSymbol, got {x!r}")
        if tuple(x.shape) != tuple(v.shape):
            raise ValueError(f"At: {x} has shape {x.shape} but its value {v} has shape {v.shape}")
        return super().__new__(cls, M, x, v)

    @property
    def shape(self):
        return self.args[0].shape

    def _latex(self, printer):
        M, x, v = self.args
        return (r"\left." + printer._print(M) + r"\right|_{" + printer._print(x) + "="
                + printer._print(v) + "}")


class Expect(MatrixExpr):
    r"""``\mathbb E_{y}[M]``: the expectation of ``M`` over ``y`` (``over`` names it); what it
    means is the expectation operator the instantiation supplies (a named axiom)."""

    def __new__(cls, M, over="y"):
        return super().__new__(cls, _matrix(M, "Expect"), sp.Symbol(str(over)))

    @property
    def shape(self):
        return self.args[0].shape

    def _latex(self, printer):
        return (r"\mathbb{E}_{" + printer._print(self.args[1]) + r"}\left[" + printer._print(self.args[0])
                + r"\right]")


#: Every structural node class, for the checker's allow-list.
NODES = (Kron, Vec, RVec, Diag, Scalar, Grad, Hess, At, Expect)
