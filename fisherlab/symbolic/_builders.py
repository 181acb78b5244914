"""Explicit matrices of symbols at a stated size, and the explicit meaning of the structural
Kronecker and vectorisation nodes. Pure SymPy; re-exported by :mod:`fisherlab.symbolic.toolkit`.

One name and one argument order per builder: ``builder(name, size...)``.
SymPy cannot put assumptions on matrix entries, so structure is built in: a symmetric matrix
shares its symbols, an SPD matrix is ``L L^T`` with a positive diagonal in ``L``, an orthogonal
one is a Cayley transform (rational entries, exactly orthogonal).
"""

from __future__ import annotations

import sympy as sp

__all__ = ["vector", "matrix", "symmetric", "diagonal", "lower_triangular", "lower_cholesky",
           "spd", "lower_inverse", "cayley_parts", "cayley_orthogonal", "kron", "vec", "rvec",
           "sum_of_squares"]


def _idx(*ks: int) -> str:
    return "".join(str(k + 1) for k in ks) if all(k < 9 for k in ks) else ",".join(str(k + 1) for k in ks)


def vector(name: str, n: int, **assumptions) -> sp.Matrix:
    """Column vector ``(name_1, ..., name_n)`` of real symbols (extra SymPy assumptions allowed)."""
    assumptions.setdefault("real", True)
    return sp.Matrix(n, 1, lambda i, _: sp.Symbol(f"{name}_{_idx(i)}", **assumptions))


def matrix(name: str, rows: int, cols: int, **assumptions) -> sp.Matrix:
    """``rows x cols`` matrix of independent real symbols ``name_ij`` (1-based)."""
    assumptions.setdefault("real", True)
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{_idx(i, j)}", **assumptions))


def symmetric(name: str, n: int) -> sp.Matrix:
    """Symmetric ``n x n`` matrix of real symbols ``name_ij`` (``i <= j``)."""
    return sp.Matrix(n, n, lambda i, j: sp.Symbol(f"{name}_{_idx(min(i, j), max(i, j))}", real=True))


def diagonal(name: str, n: int, **assumptions) -> sp.Matrix:
    """Diagonal ``n x n`` matrix with real symbols ``name_i`` on the diagonal."""
    return sp.diag(*vector(name, n, **assumptions))


def lower_triangular(name: str, n: int) -> sp.Matrix:
    """Lower-triangular ``n x n`` matrix of independent real symbols."""
    return sp.Matrix(n, n, lambda i, j: sp.Symbol(f"{name}_{_idx(i, j)}", real=True) if j <= i
                     else sp.Integer(0))


def lower_cholesky(name: str, n: int) -> sp.Matrix:
    """Lower-triangular ``L`` with *positive* diagonal symbols: ``L L^T`` is SPD, and every SPD
    matrix is of this form (Cholesky)."""
    def entry(i, j):
        if j > i:
            return sp.Integer(0)
        return sp.Symbol(f"{name}_{_idx(i, j)}", positive=True) if i == j else \
            sp.Symbol(f"{name}_{_idx(i, j)}", real=True)

    return sp.Matrix(n, n, entry)


def spd(name: str, n: int) -> sp.Matrix:
    """The general SPD ``n x n`` matrix ``L L^T`` (``L = lower_cholesky(name, n)``)."""
    L = lower_cholesky(name, n)
    return L * L.T


def lower_inverse(L: sp.Matrix) -> sp.Matrix:
    """Exact inverse of a lower-triangular matrix by forward substitution."""
    n = L.shape[0]
    inv = sp.zeros(n, n)
    for col in range(n):
        for i in range(n):
            rhs = sp.Integer(1 if i == col else 0) - sum(
                (L[i, k] * inv[k, col] for k in range(i)), sp.Integer(0))
            inv[i, col] = sp.cancel(rhs / L[i, i])
    return inv


def cayley_parts(name: str, n: int) -> tuple[sp.Matrix, sp.Expr, tuple[sp.Symbol, ...]]:
    r"""Numerator and denominator of the Cayley transform ``Q = N / d``.

    ``S`` is skew-symmetric with free entries ``name_1, ...`` above the diagonal,
    ``N = (I - S) adj(I + S)`` (polynomial entries) and ``d = det(I + S)`` (a sum of squares
    plus 1, positive for ``n <= 3``). ``Q^T Q = I`` is the polynomial identity ``N^T N = d^2 I``.
    Returns ``(N, d, parameters)``.
    """
    params = []
    S = sp.zeros(n, n)
    for i in range(n):
        for j in range(i + 1, n):
            t = sp.Symbol(f"{name}_{len(params) + 1}", real=True)
            params.append(t)
            S[i, j], S[j, i] = t, -t
    eye = sp.eye(n)
    N = ((eye - S) * (eye + S).adjugate()).applyfunc(sp.expand)
    return N, sp.expand((eye + S).det()), tuple(params)


def cayley_orthogonal(name: str, n: int) -> tuple[sp.Matrix, tuple[sp.Symbol, ...]]:
    """An orthogonal ``n x n`` matrix with rational entries, ``Q = (I - S)(I + S)^{-1}``; it
    parametrises every orthogonal matrix without eigenvalue -1. Returns ``(Q, parameters)``."""
    N, d, params = cayley_parts(name, n)
    return N / d, params


def kron(A: sp.Matrix, B: sp.Matrix) -> sp.Matrix:
    r"""``A (x) B`` entry by entry: ``(A (x) B)[i p + k, j q + l] = A[i, j] B[k, l]``."""
    p, q = B.shape
    return sp.Matrix(A.rows * p, A.cols * q, lambda r, c: A[r // p, c // q] * B[r % p, c % q])


def vec(X: sp.Matrix) -> sp.Matrix:
    """Column-major vectorisation (stack the columns): ``vec(X)[j rows + i] = X[i, j]``."""
    return sp.Matrix(X.rows * X.cols, 1, lambda r, _: X[r % X.rows, r // X.rows])


def rvec(X: sp.Matrix) -> sp.Matrix:
    """Row-major vectorisation (stack the rows): ``rvec(X)[i cols + j] = X[i, j]``."""
    return sp.Matrix(X.rows * X.cols, 1, lambda r, _: X[r // X.cols, r % X.cols])


def sum_of_squares(v: sp.Matrix) -> sp.Expr:
    """``sum_i v_i^2`` kept as an unexpanded sum of even powers (a nonnegativity certificate)."""
    return sp.Add(*[sp.Pow(e, 2) for e in v])
