r"""EKFAC: the Frobenius-optimal diagonal in the Kronecker-factored eigenbasis.

George et al. (2018) keep K-FAC's eigenbasis ``Q = Q_A \otimes Q_G`` (orthogonal) and re-fit
the eigenvalues: among all ``Q D Q^T`` with ``D`` diagonal, the closest to the exact block ``F``
in Frobenius norm has ``D^* = diag(M)``, ``M = Q^T F Q``, and ``M = E[(Q^T\nabla)(Q^T\nabla)^T]``
when ``F = E[\nabla\nabla^T]`` (its diagonal is the second moment of the rotated gradient).

The proof works in the rotated frame: the Frobenius norm is invariant under ``Q`` (part 1,
general dimension, from ``Q Q^T = Q^T Q = I`` and the cyclicity of the trace), so the objective
is ``\|M - D\|_F^2``, whose minimiser over diagonal ``D`` is ``diag(M)`` (part 2, at every size
``d <= 6``: ``\|M - D\|^2 - \|M - D^*\|^2 = \|D - D^*\|^2``). Consequences: ``tr(Q D^* Q^T) =
tr F`` (part 4) and, K-FAC being ``Q D_K Q^T`` with a diagonal ``D_K`` (kronecker.eigenpairs),
``\|F - KFAC\|_F \ge \|F - EKFAC\|_F`` (part 5).
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import (Algebra, Axiom, Chain, Control, Derivation, Explicit, Given, Lemma,
                                Link, Sizes)
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Expect

__all__ = ["DERIVATIONS"]

d = sp.Symbol("d", integer=True, positive=True)
Q = sp.MatrixSymbol("Q", d, d)
F = sp.MatrixSymbol("F", d, d)
M = sp.MatrixSymbol("M", d, d)
D = sp.MatrixSymbol("D", d, d)
Dstar = sp.MatrixSymbol("D^{*}", d, d)
DK = sp.MatrixSymbol("D_K", d, d)
Dorig = sp.MatrixSymbol(r"D_{\mathrm{orig}}", d, d)
Mr = sp.MatrixSymbol(r"\tilde M", d, d)
Dr = sp.MatrixSymbol(r"\tilde D^{*}", d, d)
nab = sp.MatrixSymbol(r"\nabla", d, 1)
I = sp.Identity(d)

_QQT, _QTQ = sp.Eq(Q * Q.T, I, evaluate=False), sp.Eq(Q.T * Q, I, evaluate=False)
_ROT = sp.Eq(M, Q.T * F * Q, evaluate=False)


def _fro2(X):
    return sp.Trace(sp.MatMul(sp.Transpose(X), X))


_Y, _Z = sp.MatrixSymbol("Y", d, d), sp.MatrixSymbol("Z", d, d)
_CYCLIC_REL = sp.Eq(sp.Trace(_Y * _Z), sp.Trace(_Z * _Y), evaluate=False)


def _cyclic(y, z):
    """The cyclicity axiom at ``Y = y``, ``Z = z``, and its two sides as the checker builds them."""
    sides = [s.xreplace({_Y: y, _Z: z}) for s in (_CYCLIC_REL.lhs, _CYCLIC_REL.rhs)]
    return Axiom("cyclicity of the trace", _CYCLIC_REL, {_Y: y, _Z: z}), sides[0], sides[1]


def _residual(X, Dg):
    return sp.MatAdd(X, sp.MatMul(-1, Q, Dg, Q.T))


_P1_L, _P1_R = _fro2(_residual(F, D)), _fro2(sp.MatAdd(M, -D))
_P2_L = _fro2(sp.MatAdd(Mr, -D)) - _fro2(sp.MatAdd(Mr, -Dr))
_P2_R = _fro2(sp.MatAdd(D, -Dr))
_P3_L, _P3_R = Q.T * Expect(nab * nab.T) * Q, Expect((Q.T * nab) * (Q.T * nab).T)
_P4_R = sp.Trace(F)
_P5_L = _fro2(_residual(F, DK)) - _fro2(_residual(F, Dstar))
_P6_L, _P6_R = sp.Trace(Dr), sp.Trace(Mr)
_P4_L = _cyclic(Q, Dstar * Q.T)[1]      # tr(Q D* Qᵀ), grouped as the cyclicity axiom cites it


def _rotated(sizes):
    """``\\tilde M`` symmetric, ``\\tilde D^*`` its diagonal part, ``D`` a diagonal of symbols."""
    k = sizes[d]
    Mv, Fv = tk.symmetric("m", k), tk.symmetric("f", k)
    # Q, F, M do not occur in these links; they are given the simplest values that satisfy the
    # hypotheses (Q = I, M = F)
    return {Mr: Mv, Dr: sp.diag(*[Mv[i, i] for i in range(k)]), D: tk.diagonal("delta", k),
            Q: sp.eye(k), F: Fv, M: Fv}


_DIAGONAL = Explicit(Sizes({d: (1, 2, 3, 4, 5, 6)}), _rotated,
                     describe=r"$\tilde M$ a symmetric matrix of symbols, $\tilde D^*$ its diagonal "
                              r"part, $D$ a diagonal matrix of symbols ($Q$, $F$, $M$, which these "
                              r"links do not involve, set to $I$, $F$, $F$ so that the hypotheses hold)")


def _frame(sizes):
    """A witness frame: Q Cayley-orthogonal, F symmetric, M = QᵀFQ, D* = diag(M), D_orig = diag(F)."""
    k = sizes[d]
    Qv, _ = tk.cayley_orthogonal("s", k)
    Fv = tk.symmetric("f", k)
    Mv = (Qv.T * Fv * Qv).applyfunc(sp.cancel)
    return {Q: Qv, F: Fv, M: Mv, Dstar: sp.diag(*[Mv[i, i] for i in range(k)]),
            Dorig: sp.diag(*[Fv[i, i] for i in range(k)]), DK: tk.diagonal("kappa", k),
            D: tk.diagonal("delta", k)}


_FRAME = Explicit(Sizes.of([{d: 2}]), _frame,
                  describe=r"$Q$ a Cayley-parametrised orthogonal matrix, $F$ symmetric, "
                           r"$M = Q^\top FQ$, $D^* = \operatorname{diag}(M_{ii})$, "
                           r"$D_{\mathrm{orig}} = \operatorname{diag}(F_{ii})$")


def _proof(self):
    qqt, qtq, rot = Given(_QQT), Given(_QTQ), Given(_ROT)
    R = sp.MatAdd(M, -D)
    cyc1, c1l, c1r = _cyclic(Q, sp.MatMul(sp.Transpose(R), R, Q.T))
    cyc2, c2l, c2r = _cyclic(Q, Dstar * Q.T)
    cyc3, c3l, c3r = _cyclic(Q.T, F * Q)
    QFQ = sp.MatMul(Q, Q.T, F, Q, Q.T)
    return [
        Chain(_P1_L, [
            Link(_fro2(_residual(sp.MatMul(I, F, I), D)), Algebra(), why="F = I F I"),
            Link(_fro2(_residual(QFQ, D)), qqt, why="I = Q Qᵀ"),
            Link(_fro2(sp.MatMul(Q, R, Q.T)), rot, why="Qᵀ F Q = M, and Q M Qᵀ − Q D Qᵀ = Q(M − D)Qᵀ"),
            Link(c1l, qtq, why="(Q R Qᵀ)ᵀ(Q R Qᵀ) = Q Rᵀ (QᵀQ) R Qᵀ = Q RᵀR Qᵀ"),
            Link(c1r, cyc1, why="tr(Q X) = tr(X Q)"),
            Link(_P1_R, qtq, why="QᵀQ = I"),
        ], title="general dimension"),
        Chain(_P2_L, [Link(_P2_R, _DIAGONAL, label="separable",
                           why="‖M̃ − D‖² = Σ_{i≠j} M̃_ij² + Σ_i (M̃_ii − δ_i)²; the off-diagonal "
                               "part does not depend on D"),
                      Link(sp.Integer(0), _DIAGONAL, rel=">=", why="Σ_i (δ_i − M̃_ii)², a sum of squares")],
              part=1, title="every d ≤ 6"),
        Chain(_P3_L, [Link(_P3_R, tk.expectation_linearity(nab * nab.T, left=Q.T, right=Q),
                           why="Q does not depend on the example: Qᵀ E[∇∇ᵀ] Q = E[Qᵀ∇∇ᵀQ]")],
              part=2, title="general dimension"),
        Chain(_P6_L, [Link(_P6_R, _DIAGONAL, label="diag_trace",
                           why="the diagonal part has the same diagonal")], part=5,
              title="every d ≤ 6"),
        Chain(_P4_L, [
            Link(c2r, cyc2, why="tr(Q X) = tr(X Q)"),
            Link(sp.Trace(Dstar), qtq, why="QᵀQ = I"),
            Link(sp.Trace(M), Lemma(self, {Mr: M, Dr: Dstar}, part=5),
                 why="part 6 with M̃ = M: D* has the diagonal of M"),
            Link(c3l, rot, why="M = QᵀFQ"),
            Link(c3r, cyc3, why="tr(Qᵀ X) = tr(X Qᵀ)"),
            Link(_P4_R, qqt, why="Q Qᵀ = I"),
        ], part=3, title="general dimension, citing part 6"),
        Chain(_P5_L, [
            Link(_fro2(sp.MatAdd(M, -DK)) - _fro2(_residual(F, Dstar)),
                 Lemma(self, {D: DK}, part=0), why="part 1 with D = D_K"),
            Link(_fro2(sp.MatAdd(M, -DK)) - _fro2(sp.MatAdd(M, -Dstar)),
                 Lemma(self, {D: Dstar}, part=0), why="part 1 with D = D*"),
            Link(sp.Integer(0), Lemma(self, {Mr: M, Dr: Dstar, D: DK}, part=1), rel=">=",
                 why="part 2 with M̃ = M, D = D_K"),
        ], part=4, title="general dimension, citing parts 1 and 2"),
    ]


_HYPOTHESES = [sp.Q.orthogonal(Q), sp.Q.symmetric(F), sp.Q.symmetric(M), sp.Q.symmetric(Mr),
               sp.Q.diagonal(D), sp.Q.diagonal(Dstar), sp.Q.diagonal(DK), sp.Q.diagonal(Dr),
               _QQT, _QTQ, _ROT]


def _build():
    return _proof(OPTIMAL_DIAGONAL)


OPTIMAL_DIAGONAL = Derivation(
    name="ekfac.optimal_diagonal",
    title="EKFAC: the Frobenius-optimal diagonal in the Kronecker-factored eigenbasis",
    conclusion=(sp.Eq(_P1_L, _P1_R, evaluate=False), sp.Ge(_P2_L, 0, evaluate=False),
                sp.Eq(_P3_L, _P3_R, evaluate=False), sp.Eq(_P4_L, _P4_R, evaluate=False),
                sp.Ge(_P5_L, 0, evaluate=False), sp.Eq(_P6_L, _P6_R, evaluate=False)),
    hypotheses=_HYPOTHESES,
    proof=_build,
    tier="B",
    scope="parts 1 and 3 (Frobenius invariance, the rotated second moment): general d, matrix "
          "algebra with QQᵀ = QᵀQ = I and the cyclicity of the trace; parts 2 and 6 (the "
          "minimiser over diagonals is the diagonal part): every d ∈ {1, …, 6} with symbolic "
          "entries; parts 4 and 5 (trace preserved, closer than K-FAC): general d citing them",
    controls=[
        Control("rotation_forgotten", target="conclusion:1", replace=(M, F), at=_FRAME,
                why="the objective compared with F instead of the rotated M = QᵀFQ"),
        Control("diag_in_original_basis", target="conclusion:5", replace=(Dstar, Dorig), at=_FRAME,
                why="the diagonal of F in the original basis, diag(F_ii), claimed optimal"),
        Control("kfac_trace_preserved", target="conclusion:4", replace=(Dstar, DK), at=_FRAME,
                why="the trace claimed preserved by K-FAC's eigenvalues D_K as well"),
    ],
    assumptions=[r"$F$ symmetric (e.g. $F=\mathbb E[\nabla\nabla^\top]$, the exact layer block)",
                 r"$Q = Q_A\otimes Q_G$ orthogonal (the factors' eigenvectors; a Kronecker product "
                 r"of orthogonal matrices is orthogonal by kronecker.mixed_product), $M = Q^\top FQ$",
                 r"$D^* = \operatorname{diag}(M_{11},\dots,M_{dd})$ (in part 2: $\tilde D^*$ of "
                 r"$\tilde M$); K-FAC $= QD_KQ^\top$ with $D_K = D_A\otimes D_G$ diagonal "
                 r"(kronecker.eigenpairs)"],
    axioms={"cyclicity of the trace": r"$\operatorname{tr}(YZ) = \operatorname{tr}(ZY)$"},
    references=[tk.REF_EKFAC_2018 + ", §3", tk.REF_MARTENS_GROSSE_2015,
                tk.REF_GROSSE_2022 + " ('If Q₁ and Q₂ are orthogonal, then so is Q₁⊗Q₂'; "
                                     "spectral decomposition of A⊗B)"],
    numeric=["fisherlab.kfac.ekfac"],
    tested_by=["tests/proofs/test_ekfac.py::test_optimal_diagonal_numerically",
               "tests/kfac/test_kfac_ekfac.py::test_ekfac_closer_than_kfac_with_the_same_trace",
               "tests/kfac/test_kfac_ekfac.py::test_ekfac_diagonal_in_its_basis_is_the_exact_blocks_diagonal"],
    notes="The proof never inverts or eigendecomposes a symbolic matrix: orthogonality is a "
          "hypothesis used by rewriting ($QQ^\\top = Q^\\top Q = I$), and the objective is moved "
          "to the rotated frame by the invariance of the Frobenius norm.",
)

DERIVATIONS = [OPTIMAL_DIAGONAL]
