"""Small exact-linear-algebra builders shared by the update-geometry proofs.

Private helpers for ``proofs/riemannian_gradient.py``, ``proofs/steepest_descent.py``,
``proofs/invariance.py``, ``proofs/damping_preconditioning.py``, ... (SYMBOLIC.md):

* SymPy cannot put assumptions (SPD, orthogonal) on matrix entries, so an SPD
  matrix is built as ``L L^T`` with ``L`` lower triangular and a *positive* symbol
  on the diagonal, and an orthogonal matrix by the Cayley transform of a
  skew-symmetric matrix (rational entries, exactly orthogonal).
* Candidates are checked by substitution, never solved for: the inverse of a
  triangular ``L`` is computed by forward substitution (cheap, exact).
"""

from __future__ import annotations

import sympy as sp

__all__ = ["vector", "matrix", "symmetric", "lower_cholesky", "lower_inverse",
           "cayley_orthogonal", "sum_of_squares"]


def vector(name: str, d: int, **assumptions) -> sp.Matrix:
    """Column vector ``(name_1, ..., name_d)`` of real symbols."""
    assumptions.setdefault("real", True)
    return sp.Matrix(sp.symbols(f"{name}_1:{d + 1}", **assumptions))


def matrix(name: str, rows: int, cols: int, **assumptions) -> sp.Matrix:
    """``rows x cols`` matrix of independent real symbols ``name_ij``."""
    assumptions.setdefault("real", True)
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i + 1}{j + 1}", **assumptions))


def symmetric(name: str, d: int) -> sp.Matrix:
    """Symmetric ``d x d`` matrix of real symbols (``name_ij``, ``i <= j``)."""
    syms = {}
    for i in range(d):
        for j in range(i, d):
            syms[(i, j)] = syms[(j, i)] = sp.Symbol(f"{name}_{i + 1}{j + 1}", real=True)
    return sp.Matrix(d, d, lambda i, j: syms[(i, j)])


def lower_cholesky(name: str, d: int) -> sp.Matrix:
    """Lower-triangular ``L`` with positive diagonal symbols: ``L L^T`` is SPD."""
    def entry(i, j):
        if j > i:
            return sp.Integer(0)
        if i == j:
            return sp.Symbol(f"{name}_{i + 1}{j + 1}", positive=True)
        return sp.Symbol(f"{name}_{i + 1}{j + 1}", real=True)

    return sp.Matrix(d, d, entry)


def lower_inverse(L: sp.Matrix) -> sp.Matrix:
    """Exact inverse of a lower-triangular matrix by forward substitution."""
    d = L.shape[0]
    inv = sp.zeros(d, d)
    for col in range(d):
        for i in range(d):
            rhs = sp.Integer(1 if i == col else 0) - sum(
                (L[i, k] * inv[k, col] for k in range(i)), sp.Integer(0))
            inv[i, col] = sp.cancel(rhs / L[i, i])
    return inv


def cayley_orthogonal(name: str, d: int) -> sp.Matrix:
    """``Q = (I - K)(I + K)^{-1}`` for skew-symmetric ``K``: exactly orthogonal, rational."""
    K = sp.zeros(d, d)
    for i in range(d):
        for j in range(i + 1, d):
            k = sp.Symbol(f"{name}_{i + 1}{j + 1}", real=True)
            K[i, j], K[j, i] = k, -k
    eye = sp.eye(d)
    inv = (eye + K).adjugate() / (eye + K).det()
    return ((eye - K) * inv).applyfunc(sp.cancel)


def sum_of_squares(v: sp.Matrix) -> sp.Expr:
    """``sum_i v_i^2`` kept as an unexpanded sum of even powers (an SOS certificate)."""
    return sp.Add(*[sp.Pow(e, 2, evaluate=True) for e in v])
