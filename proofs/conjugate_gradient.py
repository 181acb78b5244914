r"""Conjugate gradient minimises the quadratic model over the Krylov subspace.

For a symmetric positive definite ``C`` and ``q(v) = (1/2) v^T C v + g^T v``,
let the columns of ``B`` (``d x k``) span the Krylov subspace ``K_k(C, g) = span{g, Cg, ...,
C^{k-1} g}``. In the coordinates ``v = B y``

1. the gradient of ``q(By)`` is ``B^T C B y + B^T g`` (entry-wise, general ``d``, ``k``);
2. ``y* = -(B^T C B)^{-1} B^T g`` is stationary (the Galerkin condition ``B^T(C v + g) = 0``);
3. ``q(By) - q(By*) = (1/2)(y - y*)^T B^T C B (y - y*)`` exactly, and
4. that gap is ``>= 0``: ``v_k = B y*`` is the minimiser of ``q`` over ``K_k`` (tier A);
5. at ``k = d`` with ``B`` invertible, ``-B (B^T C B)^{-1} B^T g = -C^{-1} g``: the Krylov
   minimiser is the exact solution, so CG terminates in at most ``d`` steps (tier A);
6. the ``k``-th iterate of the CG recursion (Hestenes & Stiefel) on ``C v = -g`` from ``v_0 = 0``
   *is* ``v_k`` -- checked with every entry of ``C`` and ``g`` symbolic for ``d = 2``,
   ``k = 1, 2`` (tier B; the recursion's rational functions grow too fast beyond).

As ``R. Grosse`` (Lecture 4) puts it, CG achieves the minimum quadratic cost achievable with a
given number of matrix-vector products.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import (Algebra, Axiom, Chain, Control, Derivation, Entrywise, Explicit, Given,
                                Lemma, Link, Sizes)
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Grad, Scalar

__all__ = ["DERIVATIONS"]

d, k, r = sp.symbols("d k r", integer=True, positive=True)
C = sp.MatrixSymbol("C", d, d)
g = sp.MatrixSymbol("g", d, 1)
B = sp.MatrixSymbol("B", d, k)
Bd = sp.MatrixSymbol("B_d", d, d)
y = sp.MatrixSymbol("y", k, 1)
ys = sp.MatrixSymbol("y^{*}", k, 1)
vk = sp.MatrixSymbol("v_k", d, 1)
M = B.T * C * B

_YSTAR = sp.Eq(ys, -M.I * B.T * g, evaluate=False)
_w = sp.MatrixSymbol("w", d, 1)
_PD = Axiom("positive definiteness", sp.Ge(Scalar(_w.T * C * _w), 0, evaluate=False))


def _q(x):
    return Scalar(x.T * C * x) / 2 + Scalar(g.T * x)


def _phi(z):
    return _q(B * z)


_E = y - ys
_STAT = sp.MatAdd(sp.MatMul(M, ys), B.T * g)
_GAP = Scalar(sp.MatMul(sp.Transpose(_E), M, _E)) / 2
_GAP_C = Scalar(sp.MatMul(sp.Transpose(B * _E), C, B * _E)) / 2
_KRYLOV = -B * M.I * B.T * g
_FULL = sp.MatMul(-1, Bd, sp.Inverse(sp.MatMul(Bd.T, C, Bd)), Bd.T, g)   # as written


def _cg(Cx, b, steps):
    """The Hestenes-Stiefel recursion for C x = b from x_0 = 0 (exact, rational)."""
    x = sp.zeros(Cx.shape[0], 1)
    res, p = b, b
    rs = (res.T * res)[0]
    for _ in range(steps):
        Ap = Cx * p
        a = rs / (p.T * Ap)[0]
        x = (x + a * p).applyfunc(sp.cancel)
        res = (res - a * Ap).applyfunc(sp.cancel)
        rs_new = sp.cancel((res.T * res)[0])
        p = (res + rs_new / rs * p).applyfunc(sp.cancel)
        rs = rs_new
    return x


def _instance(sizes, L_value=None):
    n, steps = sizes[d], sizes[k]
    Cx = tk.symmetric("C", n) if L_value is None else L_value * L_value.T
    gx = tk.vector("g", n)
    Bx = sp.Matrix.hstack(*[(Cx ** j) * gx for j in range(steps)])
    return {C: Cx, g: gx, B: Bx, ys: lambda: -(Bx.T * Cx * Bx).inv() * Bx.T * gx,
            vk: lambda: _cg(Cx, -gx, steps)}


_TWO = Sizes.of([{d: 2, k: 1}, {d: 2, k: 2}])
_CG_SIZES = Explicit(_TWO, values=_instance,
                     describe=r"$C$ symmetric and $g$ with symbolic entries (an identity of rational "
                              r"functions: it holds on the open set of positive definite $C$ iff it "
                              r"holds for generic symmetric $C$); $B = [g, Cg, \dots, C^{k-1}g]$; "
                              r"$v_k$ the $k$-th iterate of the CG recursion on $Cv = -g$ from $v_0 = 0$")
#: where the controls look for witnesses: a positive definite C = L L^T, L fixed, g symbolic
_L_WITNESS = sp.Matrix([[2, 0], [1, 3]])
_CG_WITNESS = Explicit(_TWO, values=lambda sizes: _instance(sizes, _L_WITNESS),
                       describe=r"$C = LL^\top$ with $L = \begin{pmatrix}2&0\\1&3\end{pmatrix}$ "
                                r"(positive definite), $g$ symbolic, $B$ and $v_k$ as above")


def _proof():
    me = KRYLOV_OPTIMALITY
    return [
        Chain(Grad(_phi(y), y), [Link(M * y + B.T * g, Entrywise(), label="gradient",
                                      why="∂/∂y_j of ½ Σ (By)_a C_ab (By)_b + Σ g_a (By)_a, C symmetric")]),
        Chain(_STAT, [
            Link(sp.MatAdd(sp.MatMul(M, -M.I * B.T * g), B.T * g), Given(_YSTAR), why="the definition of y*"),
            Link(sp.ZeroMatrix(k, 1), Algebra(), label="stationary", why="(BᵀCB)(BᵀCB)⁻¹ = I"),
        ], part=1),
        Chain(_phi(y) - _phi(ys), [
            Link(_GAP + Scalar(sp.MatMul(sp.Transpose(_STAT), _E)), Algebra(), label="completing_the_square",
                 why="expand both sides (C symmetric)"),
            Link(_GAP + Scalar(sp.MatMul(sp.Transpose(sp.ZeroMatrix(k, 1)), _E)), Lemma(me, part=1),
                 why="y* is stationary (part 2)"),
            Link(_GAP, Algebra(), why="0ᵀ(y − y*) = 0"),
        ], part=2),
        Chain(_phi(y) - _phi(ys), [
            Link(_GAP, Lemma(me, part=2), why="part 3"),
            Link(_GAP_C, Algebra(), why="(y − y*)ᵀBᵀCB(y − y*) = (B(y − y*))ᵀC(B(y − y*))"),
            Link(sp.Integer(0), Axiom(_PD.name, _PD.relation, {_w: B * _E / sp.sqrt(2)}), rel=">=",
                 why="C is positive definite (w = B(y − y*)/√2)"),
        ], part=3),
        Chain(_FULL, [Link(-C.I * g, Algebra(), label="termination",
                           why="(BᵀCB)⁻¹ = B⁻¹C⁻¹B⁻ᵀ for square invertible B")], part=4),
        Chain(vk, [Link(B * ys, _CG_SIZES, label="cg_iterate",
                        why="the recursion's iterate, entry by entry, equals the Krylov minimiser"),
                   Link(_KRYLOV, Given(_YSTAR), why="the definition of y*")], part=5),
    ]


KRYLOV_OPTIMALITY = Derivation(
    name="conjugate_gradient.krylov_optimality",
    title="The k-th CG iterate minimises the quadratic model over the Krylov subspace",
    conclusion=(sp.Eq(Grad(_phi(y), y), M * y + B.T * g, evaluate=False),
                sp.Eq(_STAT, sp.ZeroMatrix(k, 1), evaluate=False),
                sp.Eq(_phi(y) - _phi(ys), _GAP, evaluate=False),
                sp.Ge(_phi(y) - _phi(ys), 0, evaluate=False),
                sp.Eq(_FULL, -C.I * g, evaluate=False),
                sp.Eq(vk, _KRYLOV, evaluate=False)),
    hypotheses=[sp.Q.positive_definite(C), _YSTAR, sp.Q.invertible(Bd)],
    proof=_proof,
    tier="B",
    scope="parts 1-5 at general d and k (tier A: the Krylov minimiser, its optimality and the "
          "termination at k = d); part 6, the CG recursion's iterate equal to it, for d = 2, "
          "k = 1, 2 with every entry of C and g symbolic (tier B)",
    controls=[
        Control("euclidean_projection", target="conclusion:6",
                replace=(_KRYLOV, -B * (B.T * B).I * B.T * C.I * g), at=_CG_WITNESS,
                why="the iterate taken as the Euclidean projection of the solution −C⁻¹g onto "
                    "K_k (CG's projection is C-orthogonal)"),
        Control("gap_identity_metric", target="completing_the_square",
                replace=(M, B.T * B), at=_CG_WITNESS,
                why="the gap measured in the Euclidean metric of the coordinates, ½‖y − y*‖², "
                    "instead of the C-metric"),
        Control("steepest_descent_step", target="stationary",
                replace=(sp.MatMul(M, -M.I * B.T * g), sp.MatMul(M, -B.T * g)), at=_CG_WITNESS,
                why="the coordinates −Bᵀg of a gradient step claimed stationary"),
    ],
    axioms={"positive definiteness": r"$w^\top C w \ge 0$ for every $w$ ($C$ positive definite)"},
    assumptions=["C symmetric positive definite; the columns of B a basis of the "
                 "Krylov subspace K_k(C, g) (k ≤ d, no earlier breakdown)",
                 "exact arithmetic"],
    references=["M. R. Hestenes and E. Stiefel, 'Methods of conjugate gradients for solving "
                "linear systems', J. Res. Natl. Bur. Stand. 49(6), 1952",
                tk.REF_GROSSE_2022 + " (CG achieves the minimum quadratic cost achievable with a "
                "given number of matrix-vector products)",
                "J. Martens, 'Deep learning via Hessian-free optimization', ICML 2010"],
    numeric=["fisherlab.updates.hessian_free"],
    tested_by=["tests/proofs/test_conjugate_gradient.py::test_hessian_free_iterates_are_the_krylov_minimisers"],
)

DERIVATIONS = [KRYLOV_OPTIMALITY]
