r"""Damping a Kronecker-factored block: factored (pi) damping and exact damping.

K-FAC needs ``(A \otimes G + \lambda I)^{-1} v`` (CONVENTIONS.md § Damping; Martens & Grosse
2015 §6.3). Two ways:

* **factored** Tikhonov damping replaces ``A \otimes G + \lambda I`` by
  ``(A + \pi\sqrt\lambda I) \otimes (G + \sqrt\lambda/\pi\, I)``; the difference is
  ``R(\pi) = \sqrt\lambda(A \otimes I/\pi + \pi I \otimes G)``, which is PSD for PSD factors (so
  its trace norm is its trace, ``\sqrt\lambda(m\,tr A/\pi + \pi n\,tr G)``), and that bound is
  smallest at ``\pi^* = \sqrt{(tr A/n)/(tr G/m)}``;
* **exact** damping through the eigendecompositions ``A = U_A D_A U_A^T``, ``G = U_G D_G U_G^T``:
  ``(A \otimes G + \lambda I)^{-1} = (U_A \otimes U_G)(D_A \otimes D_G + \lambda I)^{-1}
  (U_A \otimes U_G)^T``, a diagonal inverse with entries ``1/(\alpha_i\gamma_j + \lambda)``.

All three are proved at general dimension: entry-wise, and by citing the Kronecker rules of
:mod:`kronecker` (never an inverse rewrite rule). The statements use ``A \otimes G``;
fisherlab's row-major blocks are ``G \otimes A`` and the same identities hold with the roles
of the factors kept (``A`` always receives ``\pi\sqrt\lambda``).
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import (Algebra, Chain, Control, Derivation, Entrywise, Explicit, Given, Lemma,
                                Link, Sizes)
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Kron, Scalar

from . import kronecker as kr

__all__ = ["DERIVATIONS"]

n, m = sp.symbols("n m", integer=True, positive=True)
lam = sp.Symbol("lambda", positive=True)
pi_ = sp.Symbol("pi", positive=True)  # the damping split, not the constant
r = sp.sqrt(lam)
In, Im, Inm = sp.Identity(n), sp.Identity(m), sp.Identity(n * m)
A, G = sp.MatrixSymbol("A", n, n), sp.MatrixSymbol("G", m, m)

REF_TF_KFAC = ("tensorflow/kfac, fisher_blocks.py `_compute_pi_tracenorm`: "
               "pi = sqrt((trace(A)/dim(A)) / (trace(B)/dim(B))), 'see section 6.3'")
NUMERIC = ["fisherlab.kfac.solve"]
_SOLVE_TESTS = "tests/kfac/test_kfac_solve.py::"


def _mixed(a, b, c, d):
    """The mixed-product rule for square n×n (first) and m×m (second) factors."""
    return Lemma(kr.MIXED_PRODUCT, {kr.m: n, kr.n: n, kr.k: n, kr.p: m, kr.q: m, kr.l: m,
                                    kr.A: a, kr.B: b, kr.C: c, kr.D: d})


def _transpose(a, b):
    return Lemma(kr.TRANSPOSE, {kr.m: n, kr.n: n, kr.p: m, kr.q: m, kr.A: a, kr.B: b})


# --------------------------------------------------------------------------- factored residual

_R = r * (Kron(A, Im) / pi_ + pi_ * Kron(In, G))
_FAC_L = Kron(A + pi_ * r * In, G + r / pi_ * Im)
_FAC_R = sp.MatAdd(Kron(A, G), lam * Inm, _R)
_ROW_L = Kron(G + r / pi_ * Im, A + pi_ * r * In)
_ROW_R = sp.MatAdd(Kron(G, A), lam * sp.Identity(m * n), r * (pi_ * Kron(G, In) + Kron(Im, A) / pi_))

RESIDUAL = Derivation(
    name="kfac_damping.factored_residual",
    title="Factored (π) Tikhonov damping: the exact residual",
    conclusion=(sp.Eq(_FAC_L, _FAC_R, evaluate=False), sp.Eq(_ROW_L, _ROW_R, evaluate=False)),
    proof=lambda: [
        Chain(_FAC_L, [Link(_FAC_R, Entrywise(), label="residual",
                            why="entry ((i, k), (j, l)): (A_ij + π√λ δ_ij)(G_kl + √λ/π δ_kl), "
                                "expanded (√λ√λ = λ for λ > 0)")], title="general dimension"),
        Chain(_ROW_L, [Link(_ROW_R, Entrywise(), why="the same in fisherlab's row-major order")],
              part=1, title="general dimension"),
    ],
    tier="A",
    scope="general n, m (entry-wise): A and G any square matrices, λ > 0, π > 0; both factor orders",
    controls=[
        Control("cross_terms_dropped", target="residual", replace=(_R, sp.ZeroMatrix(n * m, n * m)), witness={lam: 4},
                why="factored damping claimed exact: the cross terms √λ(A⊗I/π + π I⊗G) forgotten"),
        Control("pi_on_the_wrong_factor", target="residual", replace=(pi_ * r * In, r / pi_ * In), witness={lam: 4},
                why="π on the wrong factor: (A + √λ/π I)⊗(G + √λ/π I)"),
    ],
    assumptions=[r"$A\in\mathbb R^{n\times n}$, $G\in\mathbb R^{m\times m}$; $\lambda > 0$, $\pi > 0$"],
    references=[tk.REF_MARTENS_GROSSE_2015 + " §6.3 ('factored Tikhonov regularization')",
                tk.REF_GROSSE_2022 + " ('this update rule needs to be modified to approximate the "
                                     "damped update')"],
    numeric=NUMERIC,
    tested_by=[_SOLVE_TESTS + "test_factored_damping_is_exact_damping_plus_the_cross_term",
               _SOLVE_TESTS + "test_factored_solve_matches_its_closed_form",
               "tests/proofs/test_kfac_damping.py::test_pi_star_minimises_the_trace_norm_numerically"],
)

# --------------------------------------------------------------------------- the choice of pi

L, M = sp.MatrixSymbol("L", n, n), sp.MatrixSymbol("M", m, m)
x = sp.MatrixSymbol("x", n * m, 1)
tA, tG = sp.symbols("t_A t_G", positive=True)
pistar = sp.Symbol(r"\pi^{*}", positive=True)
_PSD_Q = Scalar(x.T * _R * x)
_TR_L, _TR_R = sp.Trace(_R), r * (m * sp.Trace(A) / pi_ + pi_ * n * sp.Trace(G))


def _f(p):
    return r * (m * tA / p + p * n * tG)


_GAP = _f(pi_) - _f(pistar)
_GAP_SQ = r / pi_ * (pi_ * sp.sqrt(n * tG) - sp.sqrt(m * tA)) ** 2


def _pi_proof():
    y1, y2 = Kron(L, Im).T * x, Kron(In, M).T * x
    left = r * Kron(L, Im) * Kron(L.T, Im) / pi_
    return [
        Chain(_PSD_Q, [
            Link(Scalar(x.T * (left + pi_ * r * Kron(In, G)) * x), _mixed(L, Im, L.T, Im),
                 why="A⊗I = (L⊗I)(Lᵀ⊗I), the mixed-product rule"),
            Link(Scalar(x.T * (left + pi_ * r * Kron(In, M) * Kron(In, M.T)) * x), _mixed(In, M, In, M.T),
                 why="I⊗G = (I⊗M)(I⊗Mᵀ)"),
            Link(Scalar(x.T * (r * Kron(L, Im) * Kron(L, Im).T / pi_ + pi_ * r * Kron(In, M)
                               * Kron(In, M.T)) * x), _transpose(L, Im), why="Lᵀ⊗I = (L⊗I)ᵀ"),
            Link(Scalar(x.T * (r * Kron(L, Im) * Kron(L, Im).T / pi_ + pi_ * r * Kron(In, M)
                               * Kron(In, M).T) * x), _transpose(In, M), why="I⊗Mᵀ = (I⊗M)ᵀ"),
            Link(r / pi_ * Scalar(sp.MatMul(sp.Transpose(y1), y1))
                 + r * pi_ * Scalar(sp.MatMul(sp.Transpose(y2), y2)), Algebra(), label="gram",
                 why="xᵀYYᵀx = (Yᵀx)ᵀ(Yᵀx)"),
            Link(sp.Integer(0), Algebra(), rel=">=",
                 why="positive multiples of squared norms (λ, π > 0)"),
        ], title="general dimension"),
        Chain(_TR_L, [Link(_TR_R, Entrywise(), label="trace",
                           why="the diagonal of A⊗I_m is A_ii repeated m times, that of I_n⊗G is "
                               "G_kk repeated n times")], part=1, title="general dimension"),
        Chain(_GAP, [
            Link(_GAP_SQ, Algebra(), label="square",
                 why="completing the square with π* = √((t_A/n)/(t_G/m)) (all symbols positive)"),
            Link(sp.Integer(0), Algebra(), rel=">=", why="√λ/π > 0 times a square"),
        ], part=2, title="general dimension"),
    ]


PI_CHOICE = Derivation(
    name="kfac_damping.pi_trace_norm",
    title="The π of factored damping minimises the trace norm of the residual",
    conclusion=(sp.Ge(_PSD_Q, 0, evaluate=False), sp.Eq(_TR_L, _TR_R, evaluate=False),
                sp.Ge(_GAP, 0, evaluate=False)),
    definitions={A: L * L.T, G: M * M.T, pistar: sp.sqrt((tA / n) / (tG / m))},
    proof=_pi_proof,
    tier="A",
    scope="general dimensions n, m: the residual is PSD (a Gram form through the Kronecker rules), "
          "its trace entry-wise, and the minimisation over π with t_A = tr A > 0, t_G = tr G > 0",
    controls=[
        Control("gram_of_wrong_vector", target="gram", replace=(Kron(In, M).T * x, Kron(In, M) * x),
                witness={lam: 4},
                why="the Gram form taken on the wrong side: ‖(I⊗M)x‖² instead of ‖(I⊗M)ᵀx‖²"),
        Control("trace_multiplicity_forgotten", target="trace",
                replace=(_TR_R, r * (sp.Trace(A) / pi_ + pi_ * sp.Trace(G))), witness={lam: 4},
                why="tr(A⊗I_m) = tr A (the multiplicity m of each diagonal entry forgotten)"),
        Control("pi_unnormalised", target="conclusion:3", replace=(pistar, sp.sqrt(tA / tG)),
                at=Explicit(Sizes.of([{n: 2, m: 8}])), witness={lam: 4, tA: 9, tG: 1},
                why="π = √(tr A / tr G), the traces not divided by the dimensions (witness n = 2, m = 8)"),
        Control("pi_inverted", target="conclusion:3", replace=(pistar, 1 / pistar),
                witness={lam: 4, tA: 4, tG: 1},
                why="π inverted: √((t_G/m)/(t_A/n))"),
    ],
    assumptions=[r"$A = LL^\top\succeq 0$, $G = MM^\top\succeq0$ with $t_A = \operatorname{tr}A > 0$, "
                 r"$t_G = \operatorname{tr}G > 0$; $\lambda>0$, $\pi>0$",
                 r"$f(\pi) = \sqrt\lambda\,(m\,t_A/\pi + \pi\,n\,t_G)$ is the trace of the residual "
                 r"(part 2), which is its trace norm because the residual is PSD (part 1)"],
    axioms={"trace norm of a PSD matrix": r"$\|R\|_{\mathrm{tr}} = \sum_i\sigma_i(R) = "
                                          r"\operatorname{tr}R$ for $R\succeq0$ (connects parts 1-3)"},
    references=[tk.REF_MARTENS_GROSSE_2015 + " §6.3",
                tk.REF_GROSSE_2022 + " ('K-FAC: Efficient Computation': the damped update needs "
                                     "modification)", REF_TF_KFAC],
    numeric=NUMERIC,
    tested_by=["tests/proofs/test_kfac_damping.py::test_pi_star_minimises_the_trace_norm_numerically",
               _SOLVE_TESTS + "test_factored_solve_matches_its_closed_form"],
    notes="Martens & Grosse bound the residual's norm by the triangle inequality and minimise "
          "$\\|A\\otimes I\\|/\\pi + \\pi\\|I\\otimes G\\|$; with the trace norm and PSD factors "
          "the residual is itself PSD (part 1), so the bound is its trace norm exactly (part 2). "
          "Dividing each trace by the factor's dimension is what makes $\\pi$ "
          "dimension-consistent (control `pi_unnormalised`).",
)

# --------------------------------------------------------------------------- exact damping

UA, UG = sp.MatrixSymbol("U_A", n, n), sp.MatrixSymbol("U_G", m, m)
DA, DG = sp.MatrixSymbol("D_A", n, n), sp.MatrixSymbol("D_G", m, m)
V, D = Kron(UA, UG), Kron(DA, DG)
E = D + lam * Inm
_EX_L = sp.Inverse(Kron(A, G) + lam * Inm)
_EX_R = V * sp.Inverse(E) * V.T
_ORTH = [sp.Eq(UA * UA.T, In, evaluate=False), sp.Eq(UG * UG.T, Im, evaluate=False),
         sp.Eq(UA.I, UA.T, evaluate=False), sp.Eq(UG.I, UG.T, evaluate=False)]


def _spectral():
    """``(U_A (D_A U_A^T)) ⊗ (U_G (D_G U_G^T))``, nested exactly as the mixed-product rule gives it."""
    inst = kr.MIXED_PRODUCT.parts[0].rhs.xreplace({kr.m: n, kr.k: n, kr.p: m, kr.q: m, kr.l: m})
    return inst.xreplace({sp.MatrixSymbol("A", n, n): UA, sp.MatrixSymbol("C", n, n): DA * UA.T,
                          sp.MatrixSymbol("B", m, m): UG, sp.MatrixSymbol("D", m, m): DG * UG.T})


def _exact_proof():
    oa, og, ia, ig = (Given(h) for h in _ORTH)
    VDV = V * D * V.T
    inv = Lemma(kr.INVERSE, {kr.n: n, kr.m: m, kr.As: UA, kr.Bs: UG})
    Ei = sp.Inverse(E)
    return Chain(_EX_L, [
        Link(sp.Inverse(sp.MatAdd(_spectral(), lam * Inm)), Algebra(),
             why="A = U_A D_A U_Aᵀ, G = U_G D_G U_Gᵀ"),
        Link(sp.Inverse(V * Kron(DA * UA.T, DG * UG.T) + lam * Inm), _mixed(UA, UG, DA * UA.T, DG * UG.T),
             why="mixed-product rule, read right to left"),
        Link(sp.Inverse(V * D * Kron(UA.T, UG.T) + lam * Inm), _mixed(DA, DG, UA.T, UG.T),
             why="mixed-product rule again"),
        Link(sp.Inverse(VDV + lam * Inm), _transpose(UA, UG), why="U_Aᵀ⊗U_Gᵀ = Vᵀ"),
        Link(sp.Inverse(VDV + lam * Kron(In, Im)), Lemma(kr.MIXED_PRODUCT, {kr.n: n, kr.m: m}, part=1),
             why="I_{nm} = I_n⊗I_m"),
        Link(sp.Inverse(VDV + lam * Kron(UA * UA.T, Im)), oa, why="U_A U_Aᵀ = I"),
        Link(sp.Inverse(VDV + lam * Kron(UA * UA.T, UG * UG.T)), og, why="U_G U_Gᵀ = I"),
        Link(sp.Inverse(VDV + lam * V * Kron(UA.T, UG.T)), _mixed(UA, UG, UA.T, UG.T),
             why="mixed-product rule"),
        Link(sp.Inverse(VDV + lam * V * V.T), _transpose(UA, UG), why="U_Aᵀ⊗U_Gᵀ = Vᵀ"),
        Link(sp.Inverse(sp.MatMul(V, E, V.T)), Algebra(), label="spectral",
             why="V D Vᵀ + λVVᵀ = V(D + λI)Vᵀ"),
        Link(sp.MatMul(sp.Inverse(V.T), Ei, sp.Inverse(V)), tk.inverse_of_product(V, E, V.T),
             why="(XYZ)⁻¹ = Z⁻¹Y⁻¹X⁻¹"),
        Link(sp.MatMul(sp.Inverse(V.T), Ei, Kron(UA.I, UG.I)), inv, why="kronecker.inverse"),
        Link(sp.MatMul(sp.Inverse(V.T), Ei, Kron(UA.T, UG.I)), ia, why="U_A⁻¹ = U_Aᵀ"),
        Link(sp.MatMul(sp.Inverse(V.T), Ei, Kron(UA.T, UG.T)), ig, why="U_G⁻¹ = U_Gᵀ"),
        Link(sp.MatMul(sp.Inverse(V.T), Ei, V.T), _transpose(UA, UG), why="U_Aᵀ⊗U_Gᵀ = Vᵀ"),
        Link(sp.MatMul(sp.Transpose(sp.Inverse(V)), Ei, V.T), Algebra(), why="(Vᵀ)⁻¹ = (V⁻¹)ᵀ"),
        Link(sp.MatMul(sp.Transpose(Kron(UA.I, UG.I)), Ei, V.T), inv, why="kronecker.inverse"),
        Link(sp.MatMul(sp.Transpose(Kron(UA.T, UG.I)), Ei, V.T), ia, why="U_A⁻¹ = U_Aᵀ"),
        Link(sp.MatMul(sp.Transpose(Kron(UA.T, UG.T)), Ei, V.T), ig, why="U_G⁻¹ = U_Gᵀ"),
        Link(sp.MatMul(sp.Transpose(V.T), Ei, V.T), _transpose(UA, UG), why="U_Aᵀ⊗U_Gᵀ = Vᵀ"),
        Link(_EX_R, Algebra(), why="(Vᵀ)ᵀ = V"),
    ], title="general dimension")


_SMALL = Explicit(Sizes.of([{n: 2, m: 1}, {n: 2, m: 2}]))

EXACT = Derivation(
    name="kfac_damping.exact_eigendecomposition",
    title="Exact damping of a Kronecker product through the factors' eigendecompositions",
    conclusion=sp.Eq(_EX_L, _EX_R, evaluate=False),
    hypotheses=[sp.Q.orthogonal(UA), sp.Q.orthogonal(UG), sp.Q.diagonal(DA), sp.Q.diagonal(DG)] + _ORTH,
    definitions={A: UA * DA * UA.T, G: UG * DG * UG.T},
    proof=_exact_proof,
    tier="A",
    scope="general n, m: matrix algebra, the mixed-product, transpose and inverse rules of "
          "kronecker, the orthogonality of U_A and U_G (never an inverse rewrite rule)",
    controls=[
        Control("kronecker_sum_eigenvalues", target="conclusion",
                replace=(D, Kron(DA, Im) + Kron(In, DG)), at=_SMALL,
                why="eigenvalues α_i + γ_j (those of the Kronecker sum) instead of α_iγ_j"),
        Control("factored_is_not_exact", target="conclusion",
                replace=(sp.Inverse(E), Kron(sp.Inverse(DA + r * In), sp.Inverse(DG + r * Im))),
                at=_SMALL, witness={lam: 4},
                why="the π = 1 factored inverse diag(1/((α_i + √λ)(γ_j + √λ))) claimed exact"),
    ],
    assumptions=[r"$A = U_AD_AU_A^\top$, $G = U_GD_GU_G^\top$ with $U_A$, $U_G$ orthogonal and "
                 r"$D_A = \operatorname{diag}(\alpha)$, $D_G = \operatorname{diag}(\gamma)$; "
                 r"$\lambda > 0$, $\alpha_i\gamma_j + \lambda \ne 0$",
                 r"$D_A\otimes D_G + \lambda I$ is diagonal with entries $\alpha_i\gamma_j + \lambda$ "
                 r"in the order of the columns $u_i\otimes w_j$ of $U_A\otimes U_G$ "
                 r"(kronecker.eigenpairs), so its inverse is "
                 r"$\operatorname{diag}(1/(\alpha_i\gamma_j+\lambda))$"],
    references=[tk.REF_MARTENS_GROSSE_2015 + " §6.3 (exact inversion via eigendecompositions)",
                tk.REF_GROSSE_2022 + " ('Spectral decomposition … eigenvalues λ_iν_j')",
                tk.REF_EKFAC_2018],
    numeric=NUMERIC,
    tested_by=[_SOLVE_TESTS + "test_exact_solve_matches_dense_solve"],
)

DERIVATIONS = [RESIDUAL, PI_CHOICE, EXACT]
