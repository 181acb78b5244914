r"""The Kronecker structure of a dense layer's gradient and curvature block (K-FAC's starting point).

A dense layer ``s = W a + b = \bar W \bar a`` (``\bar W = [W\ b]`` of size ``m x n``,
``\bar a = [a; 1]`` of length ``n``) is linear in its parameters ``w = rvec(\bar W)`` (row-major,
fisherlab's order): ``s = (I_m \otimes \bar a^\top) w``. Whatever follows it -- the rest of the
network, the likelihood, the target -- is a function ``\ell = L(s)``, so by the chain rule the
gradient is ``(I_m \otimes \bar a^\top)^\top g = g \otimes \bar a`` with ``g = \nabla_s\ell``,
its outer product is ``(g g^\top) \otimes (\bar a \bar a^\top)``, and when ``\bar a`` and ``g``
are independent the expectation factorises into ``G \otimes A`` (K-FAC).

Tier A: the linear map and the Kronecker algebra are proved at general ``m, n`` (entry-wise and
by citing :mod:`kronecker`); the chain rule and independence are named axioms. The chain rule is
also checked by SymPy's own differentiation of a generic downstream loss (an undefined function
of the pre-activations) at every ``m, n <= 3``, and independence on product distributions with
symbolic support points and probabilities.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import (Algebra, Axiom, Chain, Control, Derivation, Entrywise, Explicit,
                                Lemma, Link, Model, Sizes)
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Expect, Grad, Kron, RVec

from . import kronecker as kr

__all__ = ["DERIVATIONS", "LAYER_JACOBIAN", "DENSE_LAYER", "m", "n", "Wbar", "abar", "g"]

m, n = sp.symbols("m n", integer=True, positive=True)   # outputs of the layer; length of abar
Wbar = sp.MatrixSymbol(r"\bar W", m, n)
abar = sp.MatrixSymbol(r"\bar a", n, 1)
g = sp.MatrixSymbol("g", m, 1)
w = sp.MatrixSymbol("w", m * n, 1)
ell = sp.Symbol(r"\ell")
I_m = sp.Identity(m)

#: ``\partial s / \partial w`` for ``s = \bar W \bar a``, ``w = rvec(\bar W)``.
LAYER_JACOBIAN = Kron(I_m, abar.T)

_S = Wbar * abar
_GRAD, _GRAD_R = Grad(ell, w), Kron(g, abar)
_OUTER_L, _OUTER_R = Kron(g, abar) * Kron(g, abar).T, Kron(g * g.T, abar * abar.T)
_IND_L = Expect(Kron(g * g.T, abar * abar.T), "x")
_IND_R = Kron(Expect(g * g.T, "x"), Expect(abar * abar.T, "x"))

_CHAIN_RULE = Axiom(
    "chain rule",
    sp.Eq(_GRAD, LAYER_JACOBIAN.T * g, evaluate=False))

_X, _Y = sp.MatrixSymbol("X", m, m), sp.MatrixSymbol("Y", n, n)
_INDEPENDENCE = Axiom(
    "independence",
    sp.Eq(Expect(Kron(_X, _Y), "x"), Kron(Expect(_X, "x"), Expect(_Y, "x")), evaluate=False),
    {_X: g * g.T, _Y: abar * abar.T})

_UP_TO_3 = (1, 2, 3)
_L = sp.Function("L")


def _network(sizes):
    """A generic downstream loss ``L(s_1, ..., s_m)`` of the explicit pre-activations."""
    m_, n_ = sizes[m], sizes[n]
    W = tk.matrix("w", m_, n_)
    a = tk.vector("a", n_)
    s = W * a
    u = sp.symbols(f"u_1:{m_ + 1}")
    grad_s = sp.Matrix([sp.Subs(sp.Derivative(_L(*u), ui), u, tuple(s)) for ui in u])
    return {w: tk.rvec(W), abar: a, ell: _L(*s), g: grad_s}


_GENERIC_LOSS = Model(
    Sizes({m: _UP_TO_3, n: _UP_TO_3}), _network,
    describe=r"$\ell = L(\bar W\bar a)$ with $L$ an undefined function of the $m$ "
             r"pre-activations, $\bar W$ and $\bar a$ fully symbolic, $w = "
             r"\operatorname{rvec}(\bar W)$, $g = \nabla_sL$ at $s = \bar W\bar a$")

#: two support points each, with symbolic probabilities: a product (independent) distribution
_P, _Q = sp.symbols("p q", positive=True)


def _independent_values(sizes):
    return {abar: tk.vector("a", sizes[n]), g: tk.vector("g", sizes[m])}


def _product_expectation(h):
    """E over ``abar in {a', a''}`` w.p. ``(p, 1 - p)`` times ``g in {g', g''}`` w.p. ``(q, 1 - q)``."""
    h = sp.sympify(h)
    a_syms = sorted((s for s in h.free_symbols if s.name.startswith("a_")), key=str)
    g_syms = sorted((s for s in h.free_symbols if s.name.startswith("g_")), key=str)
    total = sp.Integer(0)
    for ka, pa in ((1, _P), (2, 1 - _P)):
        for kg, pg in ((1, _Q), (2, 1 - _Q)):
            sub = {s: sp.Symbol(f"a{ka}{s.name[1:]}") for s in a_syms}
            sub.update({s: sp.Symbol(f"g{kg}{s.name[1:]}") for s in g_syms})
            total += pa * pg * h.xreplace(sub)
    return total


_PRODUCT = Explicit(
    Sizes({m: _UP_TO_3, n: _UP_TO_3}), _independent_values, operators={"x": _product_expectation},
    describe=r"$\bar a$ takes two symbolic values with probabilities $(p, 1-p)$ and, "
             r"independently, $g$ two symbolic values with probabilities $(q, 1-q)$")

#: a witness for the order control: a concrete loss stand-in at m = n = 2
_U = sp.symbols("u_1:3")
_WITNESS = {_L: sp.Lambda(_U, _U[0] ** 3 + 2 * _U[0] * _U[1] ** 2 + _U[1])}


def _proof():
    vec_rvec = Lemma(kr.VEC, {kr.m: m, kr.n: m, kr.p: 1, kr.q: n, kr.A: I_m, kr.B: abar.T,
                              kr.Xr: Wbar}, part=1)
    transpose = Lemma(kr.TRANSPOSE, {kr.m: m, kr.n: m, kr.p: 1, kr.q: n, kr.A: I_m, kr.B: abar.T})
    return [
        Chain(_S, [
            Link(RVec(_S), Entrywise(), why="an m×1 matrix is its own row-major vectorisation"),
            Link(LAYER_JACOBIAN * RVec(Wbar), vec_rvec,
                 why="kronecker.vec (row-major): rvec(I W̄ (āᵀ)ᵀ) = (I⊗āᵀ) rvec(W̄)"),
        ], title="general dimension"),
        Chain(_GRAD, [
            Link(LAYER_JACOBIAN.T * g, _CHAIN_RULE, label="chain_rule",
                 why="chain rule through s = (I⊗āᵀ)w (part 1): ∇_w ℓ = (∂s/∂w)ᵀ ∇_s ℓ"),
            Link(Kron(I_m, abar) * g, transpose, why="(I⊗āᵀ)ᵀ = I⊗ā (kronecker.transpose)"),
            Link(_GRAD_R, Entrywise(), label="gradient",
                 why="entry (i, k) of (I⊗ā)g is Σ_j δ_ij ā_k g_j = g_i ā_k"),
        ], part=1, title="general dimension (chain rule as an axiom)"),
        Chain(_GRAD, [Link(_GRAD_R, _GENERIC_LOSS,
                           why="SymPy differentiates L(W̄ā) entry by entry of w")],
              part=1, title="the chain rule itself, every m, n ≤ 3"),
        Chain(_OUTER_L, [
            Link(Kron(g, abar) * Kron(g.T, abar.T),
                 Lemma(kr.TRANSPOSE, {kr.m: m, kr.n: 1, kr.p: n, kr.q: 1, kr.A: g, kr.B: abar}),
                 why="(g⊗ā)ᵀ = gᵀ⊗āᵀ (kronecker.transpose)"),
            Link(_OUTER_R, Lemma(kr.MIXED_PRODUCT, {kr.m: m, kr.n: 1, kr.k: m, kr.p: n, kr.q: 1,
                                                    kr.l: n, kr.A: g, kr.B: abar, kr.C: g.T,
                                                    kr.D: abar.T}),
                 label="outer", why="mixed-product rule"),
        ], part=2, title="general dimension"),
        Chain(_IND_L, [Link(_IND_R, _INDEPENDENCE, label="independence",
                            why="the entries of g gᵀ and of ā āᵀ are independent, so the expectation "
                                "of each product g_i g_j ā_k ā_l factorises")],
              part=3, title="general dimension (independence as an axiom)"),
        Chain(_IND_L, [Link(_IND_R, _PRODUCT, why="the product distribution, expanded")],
              part=3, title="independent two-point distributions, every m, n ≤ 3"),
    ]


DENSE_LAYER = Derivation(
    name="kfac_structure.dense_layer",
    title="Kronecker structure of a dense layer's gradient and curvature block",
    conclusion=(sp.Eq(_S, LAYER_JACOBIAN * RVec(Wbar), evaluate=False),
                sp.Eq(_GRAD, _GRAD_R, evaluate=False),
                sp.Eq(_OUTER_L, _OUTER_R, evaluate=False),
                sp.Eq(_IND_L, _IND_R, evaluate=False)),
    proof=_proof,
    hypotheses=[sp.Lt(_P, 1), sp.Lt(_Q, 1)],
    tier="A",
    scope="general m, n (entry-wise and kronecker lemmas; the chain rule and independence as "
          "axioms); the chain rule also checked with a generic downstream loss at every m, n ≤ 3, "
          "independence on two-point product distributions at every m, n ≤ 3",
    controls=[
        Control("kronecker_order_swapped", target="outer",
                replace=(_OUTER_R, Kron(abar * abar.T, g * g.T)),
                why="the column-major order A⊗G used with row-major parameters: (ā āᵀ)⊗(g gᵀ)"),
        Control("gradient_order_swapped", target="gradient", replace=(_GRAD_R, Kron(abar, g)),
                at=_GENERIC_LOSS, witness=_WITNESS,
                why="rvec(∇) = ā⊗g, the column-major formula in row-major coordinates; witness at "
                    "m = n = 2 with L(u) = u₁³ + 2u₁u₂² + u₂"),
        Control("second_moment_as_mean_outer_product", target="independence",
                replace=(Expect(abar * abar.T, "x"), Expect(abar, "x") * Expect(abar.T, "x")),
                at=_PRODUCT,
                why="A taken as E[ā]E[ā]ᵀ (centred statistics) instead of the second moment E[ā āᵀ]"),
    ],
    assumptions=[r"dense layer $s = Wa + b = \bar W\bar a$, $\bar W = [W\ b]\in\mathbb R^{m\times n}$, "
                 r"$\bar a = [a; 1]$, parameters $w = \operatorname{rvec}(\bar W)$ (row-major)",
                 r"$\ell = L(s)$ for any differentiable $L$ (the rest of the network, the likelihood "
                 r"and the target), $g = \nabla_s\ell$",
                 r"for the expectation: $\bar a$ independent of $g$ (K-FAC's assumption)"],
    axioms={"chain rule": r"$\nabla_w L(s(w)) = (\partial s/\partial w)^\top\nabla_sL$, here with "
                          r"$\partial s/\partial w = I_m\otimes\bar a^\top$ (part 1)",
            "independence": r"$\mathbb E[X\otimes Y] = \mathbb E[X]\otimes\mathbb E[Y]$ for $X$ a "
                            r"function of $g$ and $Y$ of $\bar a$, $g$ and $\bar a$ independent"},
    references=[tk.REF_JOHNSON_2017 + " §8, eqs. (28), (34)-(37)",
                tk.REF_GROSSE_2022 + " ('K-FAC: Modeling the Pseudo-Gradients')",
                tk.REF_MARTENS_GROSSE_2015 + " §3"],
    numeric=["fisherlab.kfac.factors", "fisherlab.kfac.matrix"],
    tested_by=["tests/proofs/test_kfac_structure.py::test_gradient_is_g_abar_transpose_numerically",
               "tests/kfac/test_kfac_factors.py::test_matrix_parameter_order_against_entrywise_construction"],
    notes="Johnson (2017) eq. (28) writes the gradient as $\\bar a g^\\top$ (the transpose of "
          "$\\nabla_{\\bar W}\\ell$ for $s = \\bar W\\bar a$) and eq. (29) "
          "$\\operatorname{vec}(\\nabla) = \\bar a\\otimes g$, right for column-major vec. fisherlab "
          "flattens row-major, hence $g\\otimes\\bar a$ and blocks $G\\otimes A$ (CONVENTIONS.md § "
          "K-FAC); the controls `gradient_order_swapped` and `kronecker_order_swapped` are the "
          "column-major formulas used in row-major coordinates. The permutation from $[W\\ b]$ "
          "order to fisherlab's parameter order (W row-major, then b) is checked numerically by "
          "the tests named below.",
)

DERIVATIONS = [DENSE_LAYER]
