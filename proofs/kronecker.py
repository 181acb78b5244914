r"""Kronecker-product algebra used by K-FAC, proved at general dimension and checked
exhaustively at explicit sizes.

``A \otimes B`` is the block matrix with blocks ``A_{ij} B``: row ``i p + k`` of
``A \otimes B`` (``A`` with ``m`` rows, ``B`` with ``p`` rows) is indexed by the pair
``(i, k)``. The structural node :class:`~fisherlab.symbolic.toolkit.Kron` is inert -- SymPy's
own ``KroneckerProduct`` would rewrite by the very rules proved here -- and its meaning is given
once, by the checker's two evaluators: entry-wise at general dimension (tier A, finite sums with
symbolic bounds, the index bijection ``r = i p + k`` as the one axiom) and explicitly at every
size up to a bound (tier B, every entry a free symbol). The inverse, eigenpair and PSD rules are
proved from the mixed-product and transpose rules by citing them.

Vectorisations: ``vec`` stacks columns (column-major), ``rvec`` stacks rows (row-major, what
``jax.flatten_util.ravel_pytree`` and ``jnp.reshape`` do, hence fisherlab's parameter order).
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import (Algebra, Axiom, Chain, Control, Derivation, Entrywise, Explicit,
                                Given, Lemma, Link, Sizes)
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Kron, RVec, Scalar, Vec

__all__ = ["DERIVATIONS"]

m, n, p, q, k, l = sp.symbols("m n p q k l", integer=True, positive=True)
lam, mu = sp.symbols("lambda mu")

_UP_TO_2 = (1, 2)
_UP_TO_3 = (1, 2, 3)

_TESTS_KFAC = ["tests/kfac/test_kfac_solve.py::test_exact_solve_matches_dense_solve",
               "tests/kfac/test_kfac_factors.py::test_matrix_parameter_order_against_entrywise_construction"]
_TEST_HELPERS = "tests/symbolic/test_toolkit.py::test_kron_vec_rvec_match_numpy"


def _ms(name, rows, cols):
    return sp.MatrixSymbol(name, rows, cols)


# --------------------------------------------------------------------------- mixed product

A, B = _ms("A", m, n), _ms("B", p, q)
C, D = _ms("C", n, k), _ms("D", q, l)
_MP_L, _MP_R = Kron(A, B) * Kron(C, D), Kron(A * C, B * D)
_ID_L, _ID_R = Kron(sp.Identity(n), sp.Identity(m)), sp.Identity(n * m)


def _mixed_product_proof():
    six = Sizes({m: _UP_TO_2, n: _UP_TO_2, k: _UP_TO_2, p: _UP_TO_2, q: _UP_TO_2, l: _UP_TO_2})
    return [
        Chain(_MP_L, [Link(_MP_R, Entrywise(), label="entries",
                           why="entry ((i, k), (j, l)) of the left side is the sum over the middle "
                               "pair (s, t) of A_is B_kt C_sj D_tl, which factors into "
                               "(sum_s A_is C_sj)(sum_t B_kt D_tl)")],
              title="general dimension"),
        Chain(_MP_L, [Link(_MP_R, Explicit(six), why="every entry a free symbol")],
              title="every shape with all six dimensions in {1, 2}"),
        Chain(_ID_L, [Link(_ID_R, Entrywise(), why="δ_ij δ_kl is the Kronecker delta of the pairs")],
              part=1, title="general dimension"),
        Chain(_ID_L, [Link(_ID_R, Explicit(Sizes({n: _UP_TO_3, m: _UP_TO_3})))], part=1,
              title="n, m up to 3"),
    ]


MIXED_PRODUCT = Derivation(
    name="kronecker.mixed_product",
    title="Kronecker mixed-product rule (and the identity)",
    conclusion=(sp.Eq(_MP_L, _MP_R, evaluate=False), sp.Eq(_ID_L, _ID_R, evaluate=False)),
    proof=_mixed_product_proof,
    tier="A+B",
    scope="A: general m, n, k, p, q, l (entry-wise, finite sums); B: every shape with all six "
          "dimensions in {1, 2} (64 shapes), and I_n ⊗ I_m for n, m ≤ 3",
    controls=[
        Control("order_swapped", target="conclusion",
                replace=(Kron(A * C, B * D), Kron(C * A, D * B)),
                specialise={n: m, k: m, q: p, l: p},
                why="the products inside the factors taken in the wrong order: (CA)⊗(DB) (square "
                    "factors, so that it is defined)"),
        Control("factors_crossed", target="conclusion",
                replace=(Kron(A * C, B * D), Kron(A * D, B * C)),
                specialise={n: m, k: m, q: p, l: p},
                why="pairing the factors across the product: (AD)⊗(BC)"),
    ],
    assumptions=[r"$A\in\mathbb R^{m\times n}$, $B\in\mathbb R^{p\times q}$, "
                 r"$C\in\mathbb R^{n\times k}$, $D\in\mathbb R^{q\times l}$"],
    references=[tk.REF_GROSSE_2022 + " (Kronecker product: matrix multiplication)",
                tk.REF_JOHNSON_2017 + " §8", tk.REF_VAN_LOAN_2000],
    numeric=["fisherlab.kfac.solve", "fisherlab.kfac.matrix"],
    tested_by=_TESTS_KFAC + [_TEST_HELPERS],
)


# --------------------------------------------------------------------------- transpose

_T_L, _T_R = Kron(A, B).T, Kron(A.T, B.T)


TRANSPOSE = Derivation(
    name="kronecker.transpose",
    title="Transpose of a Kronecker product",
    conclusion=sp.Eq(_T_L, _T_R, evaluate=False),
    proof=lambda: [
        Chain(_T_L, [Link(_T_R, Entrywise(), label="entries",
                          why="entry ((j, l), (i, k)) of both sides is A_ij B_kl")],
              title="general dimension"),
        Chain(_T_L, [Link(_T_R, Explicit(Sizes({m: _UP_TO_3, n: _UP_TO_3, p: _UP_TO_3, q: _UP_TO_3})))],
              title="every shape with m, n, p, q ≤ 3"),
    ],
    tier="A+B",
    scope="A: general m, n, p, q (entry-wise); B: every shape with m, n, p, q ∈ {1, 2, 3} (81 shapes)",
    controls=[Control("product_rule", target="conclusion", replace=(_T_R, Kron(B.T, A.T)),
                      why="the ordinary-product rule (XY)ᵀ = YᵀXᵀ applied to ⊗: Bᵀ⊗Aᵀ")],
    assumptions=[r"$A\in\mathbb R^{m\times n}$, $B\in\mathbb R^{p\times q}$"],
    references=[tk.REF_GROSSE_2022, tk.REF_VAN_LOAN_2000],
    numeric=["fisherlab.kfac.matrix"],
    tested_by=_TESTS_KFAC,
)


# --------------------------------------------------------------------------- inverse

As, Bs = _ms("A", n, n), _ms("B", m, m)
_INV_L, _INV_R = sp.Inverse(Kron(As, Bs)), Kron(As.I, Bs.I)


def _inverse_proof():
    K = Kron(As, Bs)
    return Chain(_INV_L, [
        Link(sp.MatMul(_INV_L, sp.Identity(n * m)), Algebra(), why="X = X I"),
        Link(sp.MatMul(_INV_L, _ID_L), Lemma(MIXED_PRODUCT, {}, part=1), why="I_{nm} = I_n ⊗ I_m"),
        Link(sp.MatMul(_INV_L, Kron(sp.MatMul(As, As.I), sp.MatMul(Bs, Bs.I))), Algebra(),
             why="I = A A⁻¹ and I = B B⁻¹ inside the factors"),
        Link(sp.MatMul(_INV_L, K, Kron(As.I, Bs.I)),
             Lemma(MIXED_PRODUCT, {m: n, n: n, k: n, p: m, q: m, l: m, A: As, C: As.I, B: Bs, D: Bs.I}),
             label="mixed", why="the mixed-product rule with C = A⁻¹, D = B⁻¹, read right to left"),
        Link(_INV_R, Algebra(), why="(A⊗B)⁻¹(A⊗B) = I"),
    ])


INVERSE = Derivation(
    name="kronecker.inverse",
    title="Inverse of a Kronecker product",
    conclusion=sp.Eq(_INV_L, _INV_R, evaluate=False),
    hypotheses=[sp.Q.invertible(As), sp.Q.invertible(Bs)],
    proof=_inverse_proof,
    tier="A",
    scope="general n, m: matrix algebra and the mixed-product rule (never an inverse rewrite rule)",
    controls=[Control("factors_swapped", target="conclusion", replace=(_INV_R, Kron(Bs.I, As.I)),
                      why="the ordinary-product rule (XY)⁻¹ = Y⁻¹X⁻¹ applied to ⊗: B⁻¹⊗A⁻¹"),
              Control("inverse_of_first_factor_only", target="mixed",
                      replace=(Kron(As.I, Bs.I), Kron(As.I, Bs)),
                      why="inverting one factor only: A⁻¹⊗B")],
    assumptions=[r"$A\in\mathbb R^{n\times n}$, $B\in\mathbb R^{m\times m}$ invertible"],
    references=[tk.REF_GROSSE_2022 + " (Kronecker product: matrix inversion)",
                tk.REF_JOHNSON_2017 + " §8", tk.REF_VAN_LOAN_2000],
    numeric=["fisherlab.kfac.solve"],
    tested_by=_TESTS_KFAC,
)


# --------------------------------------------------------------------------- vec

Xc, Xr = _ms("X", q, n), _ms("X", n, q)
_VC_L, _VC_R = Kron(A, B) * Vec(Xc), Vec(B * Xc * A.T)
_VR_L, _VR_R = Kron(A, B) * RVec(Xr), RVec(A * Xr * B.T)
u, v = _ms("u", m, 1), _ms("v", p, 1)
_OC_L, _OC_R = Vec(u * v.T), Kron(v, u)
_OR_L, _OR_R = RVec(u * v.T), Kron(u, v)


def _vec_proof():
    four = Sizes({m: _UP_TO_3, n: _UP_TO_3, p: _UP_TO_3, q: _UP_TO_3})
    two = Sizes({m: _UP_TO_3, p: _UP_TO_3})
    chains = []
    for part, (lhs, rhs, label, sizes) in enumerate([(_VC_L, _VC_R, "vec", four),
                                                    (_VR_L, _VR_R, "rvec", four),
                                                    (_OC_L, _OC_R, "outer_vec", two),
                                                    (_OR_L, _OR_R, "outer_rvec", two)]):
        chains.append(Chain(lhs, [Link(rhs, Entrywise(), label=label,
                                       why="entry by entry: vec(X)[(j, i)] = X_ij, "
                                           "rvec(X)[(i, j)] = X_ij")],
                            part=part, title="general dimension"))
        chains.append(Chain(lhs, [Link(rhs, Explicit(sizes))], part=part,
                            title="every shape up to 3"))
    return chains


VEC = Derivation(
    name="kronecker.vec",
    title="Kronecker products acting on vectorised matrices (column- and row-major)",
    conclusion=(sp.Eq(_VC_L, _VC_R, evaluate=False), sp.Eq(_VR_L, _VR_R, evaluate=False),
                sp.Eq(_OC_L, _OC_R, evaluate=False), sp.Eq(_OR_L, _OR_R, evaluate=False)),
    proof=_vec_proof,
    tier="A+B",
    scope="A: general m, n, p, q (entry-wise); B: every shape with m, n, p, q ∈ {1, 2, 3} "
          "(81 shapes), both orders, and outer products of lengths up to 3",
    controls=[
        Control("cvec_classic_swap", target="vec", replace=(B * Xc * A.T, A * Xc * B.T),
                specialise={q: n, p: m},
                why="column-major vec with the row-major formula: vec(A X Bᵀ)"),
        Control("rvec_swap", target="rvec", replace=(A * Xr * B.T, B * Xr * A.T),
                specialise={q: n, p: m},
                why="row-major vec with the column-major formula: rvec(B X Aᵀ)"),
        Control("outer_order", target="outer_vec", replace=(Kron(v, u), Kron(u, v)),
                why="vec(u vᵀ) = u⊗v (the row-major rule under column-major vec)"),
    ],
    assumptions=[r"$A\in\mathbb R^{m\times n}$, $B\in\mathbb R^{p\times q}$; "
                 r"$X\in\mathbb R^{q\times n}$ for vec, $X\in\mathbb R^{n\times q}$ for rvec",
                 r"$\operatorname{vec}$ stacks columns, $\operatorname{rvec}$ stacks rows "
                 r"($\operatorname{rvec}(X) = \operatorname{vec}(X^\top)$, the order of `ravel_pytree`)"],
    references=[tk.REF_JOHNSON_2017 + " eq. (38) (written there for the row-major convention)",
                tk.REF_GROSSE_2022 + " ('vec(AXB) = (Bᵀ⊗A) vec(X)', 'vec(u vᵀ) = v⊗u')",
                tk.REF_VAN_LOAN_2000],
    numeric=["fisherlab.kfac.solve"],
    tested_by=_TESTS_KFAC + [_TEST_HELPERS],
    notes="Johnson (2017) eq. (38) states $(A\\otimes B)\\operatorname{vec}(C)="
          "\\operatorname{vec}(ACB^\\top)$: that is the **row-major** identity; with column-stacking "
          "vec it is the classic swap that the control `cvec_classic_swap` rejects. fisherlab "
          "flattens parameters row-major, so a K-FAC block $G\\otimes A$ acts on "
          "$\\operatorname{rvec}(V)$ as $\\operatorname{rvec}(G V A)$ (symmetric factors).",
)


# --------------------------------------------------------------------------- eigenpairs

ue, ve = _ms("u", n, 1), _ms("v", m, 1)
_EIG_A, _EIG_B = sp.Eq(As * ue, lam * ue, evaluate=False), sp.Eq(Bs * ve, mu * ve, evaluate=False)
_EIG_L, _EIG_R = Kron(As, Bs) * Kron(ue, ve), lam * mu * Kron(ue, ve)


def _eigen_matrix(name: str, size: int, vec_: sp.Matrix, value) -> sp.Matrix:
    """The general ``size x size`` matrix with ``M vec_ = value vec_``: its first column solved from
    the hypothesis (``vec_[0] != 0``, a recorded condition); every other entry a free symbol."""
    M = tk.matrix(name, size, size)
    rest = sum((M[:, j] * vec_[j] for j in range(1, size)), sp.zeros(size, 1))
    return sp.Matrix.hstack((value * vec_ - rest) / vec_[0], M[:, 1:])


def _eigen_values(sizes):
    uu, vv = tk.vector("u", sizes[n]), tk.vector("v", sizes[m])
    return {ue: uu, ve: vv, As: _eigen_matrix("A", sizes[n], uu, lam),
            Bs: _eigen_matrix("B", sizes[m], vv, mu)}


_EIG_SIZES = Explicit(Sizes({n: _UP_TO_3, m: _UP_TO_3}), values=_eigen_values,
                      describe="A, B the general matrices with the eigenpairs (λ, u), (μ, v): the "
                               "first column solved from the hypothesis, every other entry and "
                               "u, v free symbols")


def _eigen_proof():
    return [
        Chain(_EIG_L, [
            Link(Kron(As * ue, Bs * ve), Lemma(MIXED_PRODUCT, {m: n, k: 1, p: m, q: m, l: 1, A: As,
                                                               C: ue, B: Bs, D: ve}),
                 why="mixed-product rule with C = u, D = v"),
            Link(Kron(lam * ue, Bs * ve), Given(_EIG_A), why="A u = λ u"),
            Link(Kron(lam * ue, mu * ve), Given(_EIG_B), why="B v = μ v"),
            Link(_EIG_R, Entrywise(), label="scalars_out",
                 why="(λu)⊗(μv) has entries λ u_i μ v_k"),
        ], title="general dimension"),
        Chain(_EIG_L, [Link(_EIG_R, _EIG_SIZES,
                            why="A and B the general matrices with the eigenpairs (first column "
                                "solved from the hypothesis)")], title="n, m up to 3"),
    ]


EIGEN = Derivation(
    name="kronecker.eigenpairs",
    title="Eigenpairs of a Kronecker product",
    conclusion=sp.Eq(_EIG_L, _EIG_R, evaluate=False),
    hypotheses=[_EIG_A, _EIG_B],
    proof=_eigen_proof,
    tier="A+B",
    scope="A: general n, m (mixed-product rule, the hypotheses, entry-wise scalars); B: every "
          "n, m ∈ {1, 2, 3}, A and B the general matrices with the given eigenpair",
    controls=[Control("kronecker_sum_eigenvalue", target="conclusion",
                      replace=(_EIG_R, (lam + mu) * Kron(ue, ve)), at=_EIG_SIZES,
                      why="eigenvalue λ + μ (that of the Kronecker sum A⊗I + I⊗B)")],
    assumptions=[r"$A u = \lambda u$, $B v = \mu v$ ($A\in\mathbb R^{n\times n}$, "
                 r"$B\in\mathbb R^{m\times m}$)"],
    references=[tk.REF_GROSSE_2022 + " (eigenvalues λᵢνⱼ, eigenvectors rᵢ⊗sⱼ)", tk.REF_VAN_LOAN_2000],
    numeric=["fisherlab.kfac.solve", "fisherlab.kfac.ekfac"],
    tested_by=_TESTS_KFAC,
)


# --------------------------------------------------------------------------- trace, det, Frobenius

_TR_L, _TR_R = sp.Trace(Kron(As, Bs)), sp.Trace(As) * sp.Trace(Bs)
_FR_L = sp.Trace(Kron(As, Bs).T * Kron(As, Bs))
_FR_R = sp.Trace(As.T * As) * sp.Trace(Bs.T * Bs)
_DET_L, _DET_R = sp.Determinant(Kron(As, Bs)), sp.Determinant(As) ** m * sp.Determinant(Bs) ** n
Xa, Ya = _ms("X", k, k), _ms("Y", k, k)
_DET_MULT = Axiom("determinant is multiplicative",
                  sp.Eq(sp.Determinant(Xa * Ya), sp.Determinant(Xa) * sp.Determinant(Ya), evaluate=False),
                  {k: n * m, Xa: Kron(As, sp.Identity(m)), Ya: Kron(sp.Identity(n), Bs)})


def _tdf_proof():
    nm3 = Sizes({n: _UP_TO_3, m: _UP_TO_3})
    split = sp.Determinant(Kron(As, sp.Identity(m)) * Kron(sp.Identity(n), Bs))
    return [
        Chain(_TR_L, [Link(_TR_R, Entrywise(), label="trace",
                           why="the diagonal of A⊗B is A_ii B_kk; the double sum factors")],
              title="general dimension"),
        Chain(_TR_L, [Link(_TR_R, Explicit(nm3))], title="n, m up to 3"),
        Chain(_FR_L, [Link(_FR_R, Entrywise(), label="frobenius",
                           why="the sum of (A_ij B_kl)² over all four indices factors")],
              part=1, title="general dimension"),
        Chain(_FR_L, [Link(_FR_R, Explicit(nm3))], part=1, title="n, m up to 3"),
        Chain(_DET_L, [
            Link(split, Lemma(MIXED_PRODUCT, {m: n, k: n, p: m, q: m, l: m, A: As, B: sp.Identity(m),
                                              C: sp.Identity(n), D: Bs}),
                 why="A⊗B = (A⊗I)(I⊗B) by the mixed-product rule"),
            Link(sp.Determinant(Kron(As, sp.Identity(m))) * sp.Determinant(Kron(sp.Identity(n), Bs)),
                 _DET_MULT, why="det(XY) = det X det Y"),
            Link(_DET_R, Explicit(nm3), label="det_factors",
                 why="det(A⊗I_m) = det(A)^m and det(I_n⊗B) = det(B)^n, exact fraction-free "
                     "determinants of the explicit nm×nm matrices"),
        ], part=2, title="n, m up to 3"),
    ]


TRACE_DET_FROBENIUS = Derivation(
    name="kronecker.trace_det_frobenius",
    title="Trace, determinant and Frobenius norm of a Kronecker product",
    conclusion=(sp.Eq(_TR_L, _TR_R, evaluate=False), sp.Eq(_FR_L, _FR_R, evaluate=False),
                sp.Eq(_DET_L, _DET_R, evaluate=False)),
    proof=_tdf_proof,
    tier="B",
    scope="trace and Frobenius norm: A (general n, m) and B (n, m ≤ 3); determinant: B, every "
          "n, m ∈ {1, 2, 3} (through A⊗B = (A⊗I)(I⊗B) and det multiplicative)",
    controls=[
        Control("det_without_powers", target="conclusion:3", replace=(_DET_R, sp.Determinant(As) * sp.Determinant(Bs)),
                why="det(A⊗B) = det A det B (the powers forgotten)"),
        Control("det_exponents_swapped", target="det_factors",
                replace=(_DET_R, sp.Determinant(As) ** n * sp.Determinant(Bs) ** m),
                why="det(A)^n det(B)^m for A n×n, B m×m (exponents swapped)",
                at=Explicit(Sizes.of([{n: 2, m: 3}]))),
        Control("trace_additive", target="trace", replace=(_TR_R, sp.Trace(As) + sp.Trace(Bs)),
                why="tr(A⊗B) = tr A + tr B (the Kronecker-sum trace)"),
    ],
    assumptions=[r"$A\in\mathbb R^{n\times n}$, $B\in\mathbb R^{m\times m}$"],
    references=[tk.REF_GROSSE_2022 + " (eigenvalues of A⊗B are the products λᵢνⱼ)",
                tk.REF_VAN_LOAN_2000,
                tk.REF_MARTENS_GROSSE_2015 + " §6.3 (traces of the factors in the π-damping rule)"],
    numeric=["fisherlab.kfac.solve"],
    tested_by=_TESTS_KFAC,
)


# --------------------------------------------------------------------------- PSD

L, M = _ms("L", n, n), _ms("M", m, m)
x = _ms("x", n * m, 1)
S = _ms("S", n, n)
_PSD_Q = Scalar(x.T * Kron(L * L.T, M * M.T) * x)
_PSD_Y = Kron(L, M).T * x


def _psd_proof():
    gram = Scalar(sp.MatMul(sp.Transpose(_PSD_Y), _PSD_Y))
    nm3 = Explicit(Sizes({n: _UP_TO_3, m: _UP_TO_3}))
    return [
        Chain(_PSD_Q, [
            Link(Scalar(x.T * Kron(L, M) * Kron(L.T, M.T) * x),
                 Lemma(MIXED_PRODUCT, {m: n, k: n, p: m, q: m, l: m, A: L, C: L.T, B: M, D: M.T}),
                 why="mixed-product rule, read right to left"),
            Link(Scalar(x.T * Kron(L, M) * Kron(L, M).T * x),
                 Lemma(TRANSPOSE, {m: n, p: m, q: m, A: L, B: M}), why="Lᵀ⊗Mᵀ = (L⊗M)ᵀ"),
            Link(gram, Algebra(), label="gram_form", why="xᵀ Y Yᵀ x = (Yᵀx)ᵀ(Yᵀx)"),
            Link(sp.Integer(0), Algebra(), rel=">=",
                 why="a sum of squares of the real entries of (L⊗M)ᵀx"),
        ], title="general dimension"),
        Chain(_PSD_Q, [Link(gram, nm3),
                       Link(sp.Integer(0), Algebra(), rel=">=", why="a sum of squares")],
              title="n, m up to 3"),
    ]


PSD = Derivation(
    name="kronecker.psd",
    title="Kronecker products of PSD matrices are PSD",
    conclusion=sp.Ge(_PSD_Q, 0, evaluate=False),
    proof=_psd_proof,
    tier="A+B",
    scope="A: general n, m (mixed-product and transpose rules, a sum of squares); B: every "
          "n, m ∈ {1, 2, 3} with L, M and x fully symbolic",
    controls=[
        Control("symmetric_factor", target="conclusion", replace=(L * L.T, S),
                hypotheses=[sp.Q.symmetric(S)],
                why="PSD claimed when a factor is merely symmetric (S⊗MMᵀ)"),
        Control("gram_of_wrong_vector", target="gram_form", replace=(_PSD_Y, Kron(L, M) * x),
                why="the Gram form taken on the wrong side: ‖(L⊗M)x‖² instead of ‖(L⊗M)ᵀx‖²"),
    ],
    assumptions=[r"$A = LL^\top$, $B = MM^\top$ (every PSD matrix has such a factor), "
                 r"$x\in\mathbb R^{nm}$"],
    references=[tk.REF_GROSSE_2022 + " ('if A and B are positive (semi)definite, then so is A⊗B')",
                tk.REF_VAN_LOAN_2000],
    numeric=["fisherlab.kfac.matrix"],
    tested_by=_TESTS_KFAC,
)


DERIVATIONS = [MIXED_PRODUCT, TRANSPOSE, INVERSE, VEC, EIGEN, TRACE_DET_FROBENIUS, PSD]
