r"""K-FAC with weight sharing: K-FAC-expand and K-FAC-reduce and the settings where each is exact.

A dense layer applied at ``R`` positions of each of ``N`` examples (a sequence, the patches of
an image): the inputs are the columns of ``\bar X`` (``n x NR``, example-major), the
pre-activations ``S = \bar W \bar X``. Downstream, a deep linear network ``W_2`` and a Gaussian
likelihood (``\Lambda`` the output Hessian, the same everywhere). Eschenhagen et al. (2023)
distinguish two settings:

* **expand** -- an output and a loss term per position (``f_{n,r} = W_2 s_{n,r}``): the outputs
  ``W_2 \bar W \bar X`` have Jacobian ``W_2 \otimes \bar X^\top`` in ``rvec(\bar W)``
  (kronecker.vec) and the loss Hessian is ``\Lambda \otimes I_{NR}``; K-FAC-expand treats the
  ``NR`` positions as examples for ``A = \bar X\bar X^\top/(NR)`` and sums the per-position
  ``G_{n,r} = W_2^\top\Lambda W_2`` over positions: ``G = R\,W_2^\top\Lambda W_2``;
* **reduce** -- the positions are averaged before the output (``f_n = W_2 \bar s_n``, mean
  pooling): the outputs ``W_2\bar W M`` with ``M = \bar X (I_N \otimes 1_R/R)`` the mean inputs;
  K-FAC-reduce forms ``A = M M^\top/N`` from the mean inputs and ``G`` from the sum over
  positions of the pre-activation gradients, ``\sum_r g_{n,r} = W_2^\top\nabla_{f_n}\ell``, so
  ``G = W_2^\top\Lambda W_2``.

In its own setting each is the exact GGN block (mean over the examples), at general dimension;
each control is the other variant's factors in the wrong setting.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import Chain, Control, Derivation, Entrywise, Lemma, Link
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Kron, RVec

from . import kronecker as kr

__all__ = ["DERIVATIONS", "EXPAND", "REDUCE"]

C, m, n, N, R = sp.symbols("C m n N R", integer=True, positive=True)
W2 = sp.MatrixSymbol("W_2", C, m)
Wbar = sp.MatrixSymbol(r"\bar W", m, n)
Lam = sp.MatrixSymbol("Lambda", C, C)
X = sp.MatrixSymbol(r"\bar X", n, N * R)
Mean = sp.MatrixSymbol("M", n, N)
G_exp, A_exp = sp.MatrixSymbol(r"G_{\mathrm{exp}}", m, m), sp.MatrixSymbol(r"A_{\mathrm{exp}}", n, n)
G_red, A_red = sp.MatrixSymbol(r"G_{\mathrm{red}}", m, m), sp.MatrixSymbol(r"A_{\mathrm{red}}", n, n)
G0 = W2.T * Lam * W2
_POOL = Kron(sp.Identity(N), sp.OneMatrix(R, 1)) / R     # NR x N: the mean over each example's positions

_DEFS = {Mean: X * _POOL, G_exp: R * G0, A_exp: X * X.T / (N * R), G_red: G0, A_red: Mean * Mean.T / N}

NUMERIC = ["fisherlab.kfac.factors", "fisherlab.kfac.matrix"]
_TESTS = "tests/kfac/test_kfac_factors.py::"


def _ggn(Y, count):
    """``(1/N) J^T (\\Lambda \\otimes I) J`` with ``J = W_2 \\otimes Y^T`` (``Y`` has ``count`` columns)."""
    J = Kron(W2, Y.T)
    return sp.MatMul(1 / N, J.T, Kron(Lam, sp.Identity(count)), J)


def _chain(Y, count, rhs, label):
    """(1/N) JᵀHJ -> (1/N) G0 ⊗ Y Yᵀ by the transpose and mixed-product rules, then the factors."""
    J = Kron(W2, Y.T)
    s = {kr.m: C, kr.n: m, kr.p: count, kr.q: n}
    t1 = sp.MatMul(1 / N, Kron(W2.T, Y), Kron(Lam, sp.Identity(count)), J)
    t2 = sp.MatMul(1 / N, Kron(W2.T * Lam, Y * sp.Identity(count)), J)
    t3 = sp.MatMul(1 / N, Kron(W2.T * Lam * W2, Y * Y.T))
    mixed1 = Lemma(kr.MIXED_PRODUCT, {kr.m: m, kr.n: C, kr.k: C, kr.p: n, kr.q: count, kr.l: count,
                                      kr.A: W2.T, kr.B: Y, kr.C: Lam, kr.D: sp.Identity(count)})
    mixed2 = Lemma(kr.MIXED_PRODUCT, {kr.m: m, kr.n: C, kr.k: m, kr.p: n, kr.q: count, kr.l: n,
                                      kr.A: W2.T * Lam, kr.B: Y, kr.C: W2, kr.D: Y.T})
    return [
        Chain(RVec(W2 * Wbar * Y), [
            Link(J * RVec(Wbar), Lemma(kr.VEC, {**s, kr.A: W2, kr.B: Y.T, kr.Xr: Wbar}, part=1),
                 why="kronecker.vec (row-major): the stacked outputs are linear in rvec(W̄) with "
                     "Jacobian W₂⊗Yᵀ")], title="general dimension"),
        Chain(_ggn(Y, count), [
            Link(t1, Lemma(kr.TRANSPOSE, {**s, kr.A: W2, kr.B: Y.T}), why="(W₂⊗Yᵀ)ᵀ = W₂ᵀ⊗Y"),
            Link(t2, mixed1, why="mixed-product rule"),
            Link(t3, mixed2, why="mixed-product rule"),
            Link(rhs, Entrywise(), label=label,
                 why="the scalars moved between the factors: entries (1/N)(W₂ᵀΛW₂)_ij (YYᵀ)_kl"),
        ], part=1, title="general dimension"),
    ]


_EXP_RHS, _RED_RHS = Kron(G_exp, A_exp), Kron(G_red, A_red)

EXPAND = Derivation(
    name="kfac_weight_sharing.expand_exactness",
    title="K-FAC-expand is exact for deep linear networks in the expand setting",
    conclusion=(sp.Eq(RVec(W2 * Wbar * X), Kron(W2, X.T) * RVec(Wbar), evaluate=False),
                sp.Eq(_ggn(X, N * R), _EXP_RHS, evaluate=False)),
    definitions=_DEFS,
    proof=lambda: _chain(X, N * R, _EXP_RHS, "expand_factors"),
    tier="A",
    scope="general C, m, n, N examples and R positions: the kronecker vec, transpose and "
          "mixed-product rules and an entry-wise rescaling",
    controls=[Control("reduce_in_expand_setting", target="expand_factors",
                      replace=(_EXP_RHS, Kron(R * G0, A_red)),
                      why="K-FAC-reduce's factors in the expand setting: A from the mean inputs, "
                          "G = Σ_r E[g_r g_rᵀ] = R W₂ᵀΛW₂ (independent per-position labels)")],
    assumptions=[r"$\bar X\in\mathbb R^{n\times NR}$: the augmented inputs of the $R$ positions of "
                 r"each of the $N$ examples (example-major); outputs $f_{n,r} = W_2\bar W\bar x_{n,r}$ "
                 r"(linear later layers), stacked output-major as $\operatorname{rvec}(W_2\bar W\bar X)$",
                 r"a loss term per position, Gaussian: the loss Hessian in that order is "
                 r"$\Lambda\otimes I_{NR}$; mean reduction over the $N$ examples",
                 r"K-FAC-expand: $A = \bar X\bar X^\top/(NR)$, $G = \frac1N\sum_n\sum_r "
                 r"\mathbb E[g_{n,r}g_{n,r}^\top] = R\,W_2^\top\Lambda W_2$ (CONVENTIONS.md § K-FAC)"],
    references=[tk.REF_EIT_2023 + " (K-FAC-expand, Prop. on exactness in the expand setting)",
                tk.REF_MARTENS_GROSSE_2015, tk.REF_GROSSE_2022 + " (K-FAC: Kronecker-factored "
                                                                 "blocks)"],
    numeric=NUMERIC,
    tested_by=[_TESTS + "test_expand_is_exact_for_deep_linear_nets_in_the_expand_setting",
               _TESTS + "test_weight_sharing_factor_scalings_from_the_definition",
               "tests/proofs/test_kfac_weight_sharing.py::test_stacked_jacobian_and_both_settings_numerically"],
)

REDUCE = Derivation(
    name="kfac_weight_sharing.reduce_exactness",
    title="K-FAC-reduce is exact for deep linear networks in the reduce setting",
    conclusion=(sp.Eq(RVec(W2 * Wbar * Mean), Kron(W2, Mean.T) * RVec(Wbar), evaluate=False),
                sp.Eq(_ggn(Mean, N), _RED_RHS, evaluate=False)),
    definitions=_DEFS,
    proof=lambda: _chain(Mean, N, _RED_RHS, "reduce_factors"),
    tier="A",
    scope="general C, m, n, N examples and R positions: the kronecker vec, transpose and "
          "mixed-product rules and an entry-wise check with the mean-pooling matrix",
    controls=[Control("expand_in_reduce_setting", target="reduce_factors",
                      replace=(_RED_RHS, Kron(G0 / R, A_exp)),
                      why="K-FAC-expand's factors in the reduce setting: A over all positions, "
                          "G = Σ_r E[g_r g_rᵀ] = W₂ᵀΛW₂/R (each g_r = W₂ᵀ∇_fℓ/R)")],
    assumptions=[r"$\bar X\in\mathbb R^{n\times NR}$ as in the expand setting; the positions are "
                 r"averaged before the output: $f_n = W_2\bar W m_n$ with the mean inputs "
                 r"$M = [m_1 \cdots m_N] = \bar X(I_N\otimes 1_R)/R$",
                 r"Gaussian likelihood, loss Hessian $\Lambda\otimes I_N$; mean reduction",
                 r"K-FAC-reduce: $A = MM^\top/N$, $G = \frac1N\sum_n\mathbb E[(\sum_rg_{n,r})"
                 r"(\sum_rg_{n,r})^\top] = W_2^\top\Lambda W_2$ since $\sum_r g_{n,r} = "
                 r"W_2^\top\nabla_{f_n}\ell$"],
    references=[tk.REF_EIT_2023 + " (K-FAC-reduce, exactness in the reduce setting)",
                tk.REF_MARTENS_GROSSE_2015, tk.REF_GROSSE_2022],
    numeric=NUMERIC,
    tested_by=[_TESTS + "test_reduce_is_exact_for_deep_linear_nets_in_the_reduce_setting",
               _TESTS + "test_expand_equals_reduce_without_weight_sharing",
               "tests/proofs/test_kfac_weight_sharing.py::test_stacked_jacobian_and_both_settings_numerically"],
    notes="Without weight sharing ($R = 1$) the two settings and the two approximations coincide "
          "(`test_expand_equals_reduce_without_weight_sharing`).",
)

DERIVATIONS = [EXPAND, REDUCE]
