r"""When K-FAC is exact: one example (any network), and deep linear networks with a Gaussian
likelihood (any number of examples).

The layer Jacobian of the network outputs with respect to ``w = rvec(\bar W)`` is
``J_\theta = J_s (I_m \otimes \bar a^\top)`` (chain rule through the dense layer,
:mod:`kfac_structure`), with ``J_s = \partial f / \partial s`` whatever follows the layer. Hence

* one example: ``J_\theta^\top \Lambda J_\theta = (J_s^\top\Lambda J_s) \otimes (\bar a\bar a^\top)
  = G \otimes A`` exactly, for any activation and any output Hessian ``\Lambda``;
* a deep linear network with a Gaussian likelihood: ``J_s = W_2`` (the product of the later
  weights) and ``\Lambda = I/\sigma^2`` are the same for every example, so the mean of the
  per-example blocks factorises: ``E_n[(W_2^\top\Lambda W_2) \otimes \bar a\bar a^\top] =
  E_n[W_2^\top\Lambda W_2] \otimes E_n[\bar a\bar a^\top]`` -- K-FAC's ``G \otimes A``.

The controls are the settings where exactness fails: a per-example ``J_s`` (a nonlinear
activation) and a per-example residual outer product in place of ``\Lambda`` (empirical K-FAC).
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import (Algebra, Axiom, Chain, Control, Derivation, Entrywise, Explicit, Lemma,
                                Link, Sizes)
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Expect, Kron

from . import kronecker as kr
from .kfac_structure import LAYER_JACOBIAN, abar, m, n

__all__ = ["DERIVATIONS", "SINGLE", "DEEP_LINEAR"]

C = sp.symbols("C", integer=True, positive=True)
Js = sp.MatrixSymbol("J_s", C, m)
Lam = sp.MatrixSymbol("Lambda", C, C)
Jth = sp.MatrixSymbol(r"J_\theta", C, m * n)
G = sp.MatrixSymbol("G", m, m)
A = sp.MatrixSymbol("A", n, n)
I_m = sp.Identity(m)

REF_BERNACCHIA = ("A. Bernacchia, M. Lengyel and G. Hennequin, 'Exact natural gradient in deep "
                  "linear networks and its application to the nonlinear case', NeurIPS 2018")
NUMERIC = ["fisherlab.kfac.factors", "fisherlab.kfac.matrix"]

# --------------------------------------------------------------------------- one example

_BLOCK_L, _BLOCK_R = Jth.T * Lam * Jth, Kron(G, A)


def _single_proof():
    K = LAYER_JACOBIAN
    return Chain(_BLOCK_L, [
        Link(K.T * Js.T * Lam * Js * K, Algebra(), why="J_θ = J_s(I⊗āᵀ) and (XY)ᵀ = YᵀXᵀ"),
        Link(Kron(I_m, abar) * Js.T * Lam * Js * K,
             Lemma(kr.TRANSPOSE, {kr.m: m, kr.n: m, kr.p: 1, kr.q: n, kr.A: I_m, kr.B: abar.T}),
             why="(I⊗āᵀ)ᵀ = I⊗ā (kronecker.transpose)"),
        Link(_BLOCK_R, Entrywise(), label="block",
             why="entry ((i, k), (j, l)) is Σ_{i′, j′} δ_ii′ ā_k (J_sᵀΛJ_s)_i′j′ δ_j′j ā_l = "
                 "G_ij A_kl"),
    ], title="general dimension")


SINGLE = Derivation(
    name="kfac_exactness.single_example",
    title="K-FAC is exact for a single example (any network after the layer)",
    conclusion=sp.Eq(_BLOCK_L, _BLOCK_R, evaluate=False),
    definitions={Jth: Js * LAYER_JACOBIAN, G: Js.T * Lam * Js, A: abar * abar.T},
    proof=_single_proof,
    tier="A",
    scope="general C, m, n: any downstream Jacobian J_s (any activation, any later layers) and any "
          "output Hessian Λ",
    controls=[
        Control("kronecker_order_swapped", target="conclusion", replace=(_BLOCK_R, Kron(A, G)),
                why="the factors in column-major order, A⊗G, for a row-major block"),
        Control("output_hessian_dropped", target="conclusion", replace=(G, Js.T * Js),
                why="G = J_sᵀJ_s, the output Hessian Λ forgotten (right only for Λ = I)"),
    ],
    assumptions=[r"one example ($N = 1$); $J_\theta = \partial f/\partial\operatorname{rvec}(\bar W) = "
                 r"J_s(I_m\otimes\bar a^\top)$ by the chain rule through $s = \bar W\bar a$ "
                 r"(kfac_structure.dense_layer), $J_s = \partial f/\partial s$",
                 r"$\Lambda = \nabla_f^2\ell$ the output Hessian; for a natural-parameter likelihood "
                 r"$\Lambda = \mathbb E_y[\nabla_f\ell\nabla_f\ell^\top]$ (fisher_ggn."
                 r"natural_parameters), so $G = \mathbb E_y[gg^\top]$ with $g = J_s^\top\nabla_f\ell$"],
    references=[tk.REF_MARTENS_GROSSE_2015 + " §3", tk.REF_JOHNSON_2017 + " §8", tk.REF_GROSSE_2022,
                tk.REF_EIT_2023],
    numeric=NUMERIC,
    tested_by=["tests/kfac/test_kfac_factors.py::test_exact_kfac_equals_ggn_block_for_one_example",
               "tests/kfac/test_kfac_factors.py::test_empirical_kfac_equals_empirical_fisher_block_for_one_example"],
    notes="Only the diagonal (layer) blocks are exact: the block-diagonal K-FAC matrix still "
          "ignores the cross-layer blocks of the GGN, which are not zero even for one example. "
          "For one example the factorisation holds for any choice of $G$'s expectation over the "
          "target (exact, Monte-Carlo, or the data label), since $\\bar a$ does not depend on it.",
)

# --------------------------------------------------------------------------- deep linear

W2 = sp.MatrixSymbol("W_2", C, m)
r = sp.MatrixSymbol("r", C, 1)
Jn = sp.MatrixSymbol("J_n", C, m)
_DATA = "data"
_K = LAYER_JACOBIAN
_DL_L = Expect(_BLOCK_L.xreplace({Jth: W2 * _K}), _DATA)   # the layer block, nested as cited
_DL_MID = Expect(Kron(W2.T * Lam * W2, abar * abar.T), _DATA)
_DL_R = Kron(Expect(W2.T * Lam * W2, _DATA), Expect(abar * abar.T, _DATA))

_X, _M = sp.MatrixSymbol("X", m, m), sp.MatrixSymbol("M", n, n)
_CONSTANT = Axiom(
    "a factor constant over the examples",
    sp.Eq(Expect(Kron(_X, _M), _DATA), Kron(Expect(_X, _DATA), Expect(_M, _DATA)), evaluate=False),
    {_X: W2.T * Lam * W2, _M: abar * abar.T})


def example_average(prefixes, count):
    """``E_data``: the mean over ``count`` examples; each symbol ``p_...`` of the explicit
    instance whose name starts with one of ``prefixes`` (the per-example quantities) becomes
    ``p<k>_...`` in example ``k``; every other symbol is the same for all examples."""
    def E(h):
        h = sp.sympify(h)
        varying = [s for s in h.free_symbols if any(s.name.startswith(p + "_") for p in prefixes)]
        out = sp.Integer(0)
        for k in range(1, count + 1):
            out += h.xreplace({s: sp.Symbol(s.name.replace("_", f"{k}_", 1), **s.assumptions0)
                               for s in varying})
        return out / count
    return E


def _inputs(sizes):
    return {abar: tk.vector("a", sizes[n])}


def _varying(sizes):
    return {abar: tk.vector("a", sizes[n]), r: tk.vector("r", sizes[C]),
            Jn: tk.matrix("J", sizes[C], sizes[m])}


_EXAMPLES = Explicit(
    Sizes({C: (1, 2), m: (1, 2), n: (1, 2, 3)}), _inputs, operators={_DATA: example_average(["a"], 3)},
    describe=r"$N = 3$ examples with symbolic inputs $\bar a^{(1)}, \bar a^{(2)}, \bar a^{(3)}$; "
             r"$W_2$ and $\Lambda$ the same for every example")
_COUNTER = Explicit(
    Sizes.of([{C: 1, m: 1, n: 2}]), _varying, operators={_DATA: example_average(["a", "r", "J"], 2)},
    describe=r"$N = 2$ examples; $\bar a$, the residual $r$ and the Jacobian $J_n$ differ between "
             r"the examples")


def _deep_proof():
    return [
        Chain(_DL_L, [
            Link(_DL_MID, Lemma(SINGLE, {Js: W2}), why="the one-example block with J_s = W₂"),
            Link(_DL_R, _CONSTANT, label="constant_factor",
                 why="W₂ᵀΛW₂ is the same for every example (linear later layers, Gaussian Λ = I/σ²)"),
        ], title="general dimension (constancy over the examples as the axiom of the setting)"),
        Chain(_DL_L, [Link(_DL_R, _EXAMPLES, why="the mean over the examples, expanded")],
              title="three examples, every C, m ≤ 2, n ≤ 3"),
    ]


DEEP_LINEAR = Derivation(
    name="kfac_exactness.deep_linear",
    title="K-FAC is exact for deep linear networks with a Gaussian likelihood (any N)",
    conclusion=sp.Eq(_DL_L, _DL_R, evaluate=False),
    proof=_deep_proof,
    tier="A+B",
    scope="A: general C, m, n and any number of examples (single_example cited; the example-"
          "independence of W₂ᵀΛW₂ as the axiom of the setting); B: three examples with symbolic "
          "inputs, every C, m ∈ {1, 2}, n ∈ {1, 2, 3}",
    controls=[
        Control("empirical_kfac_deep_linear", target="conclusion", replace=(Lam, r * r.T),
                at=_COUNTER,
                why="empirical K-FAC: Λ replaced by the outer product r rᵀ of the per-example "
                    "residual r = ∇_fℓ(y_n), which differs between examples; the mean of the "
                    "Kronecker products no longer factorises (N = 2)"),
        Control("nonlinear_activation", target="conclusion", replace=(W2, Jn), at=_COUNTER,
                why="exactness claimed beyond its scope: with a nonlinear activation the "
                    "downstream Jacobian J_n depends on the example (N = 2)"),
    ],
    assumptions=[r"the layers after this one are linear (identity activations), so $J_s = W_2$ "
                 r"(the product of their weights, biases do not enter) for every example",
                 r"Gaussian likelihood $y\sim\mathcal N(f, \sigma^2 I)$: $\Lambda = I/\sigma^2$, the "
                 r"same for every example",
                 r"$\mathbb E_{\mathrm{data}}$ the mean over the $N$ training examples (mean "
                 r"reduction, factors scaled as in CONVENTIONS.md § K-FAC)"],
    axioms={"a factor constant over the examples":
            r"$\mathbb E_{\mathrm{data}}[X\otimes M_n] = \mathbb E_{\mathrm{data}}[X]\otimes"
            r"\mathbb E_{\mathrm{data}}[M_n]$ when $X$ is the same for every example "
            r"(linearity of the mean; here $X = W_2^\top\Lambda W_2$)"},
    references=[tk.REF_MARTENS_GROSSE_2015 + " §3", REF_BERNACCHIA, tk.REF_EIT_2023,
                tk.REF_JOHNSON_2017],
    numeric=NUMERIC,
    tested_by=["tests/kfac/test_kfac_factors.py::test_exact_kfac_equals_ggn_blocks_for_deep_linear_gaussian",
               "tests/kfac/test_kfac_factors.py::test_empirical_kfac_is_not_the_empirical_fisher_block_for_deep_linear_nets",
               "tests/kfac/test_kfac_factors.py::test_exactness_needs_a_linear_network_or_one_example",
               "tests/proofs/test_kfac_exactness.py::test_empirical_kfac_differs_from_ef_block_for_deep_linear_numerically"],
    notes="The exactness rests on $G_n = J_{s,n}^\\top\\Lambda_nJ_{s,n}$ being the same for "
          "every example. For empirical K-FAC, $G_n = J_s^\\top r_nr_n^\\top J_s$ depends on the "
          "residual of example $n$, and with a nonlinear activation $J_{s,n}$ depends on the "
          "input; in both cases the mean of the Kronecker products does not factorise (the two "
          "controls exhibit exact counterexamples with two examples).",
)

DERIVATIONS = [SINGLE, DEEP_LINEAR]
