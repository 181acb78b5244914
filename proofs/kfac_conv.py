r"""KFC: K-FAC for convolution layers (Grosse & Martens 2016) and the assumptions that make it exact.

A convolution is a dense layer ``\bar W`` (``m x n``, ``n`` the augmented patch length) applied
at ``T`` spatial positions: with the patches ``\bar a_t`` as the columns of ``X`` (``n x T``) and
the pre-activation gradients ``g_t`` as the columns of ``\mathcal G`` (``m x T``), the weight
gradient is ``\sum_t g_t\bar a_t^\top = \mathcal G X^\top`` (kfac_structure.dense_layer at each
position), and the Fisher block is ``F = E[rvec(\mathcal G X^\top) rvec(\mathcal G X^\top)^\top]``.
KFC's factors are ``G = \sum_t E[g_tg_t^\top] = E[\mathcal G\mathcal G^\top]`` and
``A = \frac1T\sum_t E[\bar a_t\bar a_t^\top] = E[XX^\top]/T`` (fisherlab's row-major block
``G \otimes A``). Under

* IAD -- activations independent of the derivatives,
* SH -- spatial homogeneity: ``E[g_tg_{t'}^\top] = \Gamma(t' - t)``, ``E[\bar a_t\bar a_{t'}^\top]
  = \Omega(t' - t)`` depend only on the offset,

``F = G \otimes A + \sum_{t\ne t'}\Gamma(t'-t)\otimes\Omega(t'-t)`` (part 1), and with

* SUD -- spatially uncorrelated derivatives, ``\Gamma(\delta) = 0`` for ``\delta \ne 0``,

the cross-position terms vanish: ``F = G \otimes A`` exactly (part 2). The control drops the
cross-position terms when the derivatives are correlated.

Tier B: the assumptions are second-moment statements; the checker applies them as a moment
operator (an axiom named on the page) to the fully symbolic gradients at every
``m, n \le 2`` and ``T \le 3`` positions (1-D offsets).
"""

from __future__ import annotations

import itertools

import sympy as sp

from fisherlab.symbolic import Chain, Control, Derivation, Explicit, Link, Sizes
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Expect, Kron, RVec

__all__ = ["DERIVATIONS"]

m, n, T = sp.symbols("m n T", integer=True, positive=True)
Gam = sp.MatrixSymbol(r"\mathcal{G}", m, T)       # columns: the pre-activation gradients g_t
X = sp.MatrixSymbol("X", n, T)               # columns: the augmented patches a_t
Cross = sp.MatrixSymbol(r"C_{\times}", m * n, m * n)

_GRAD = RVec(Gam * X.T)
_F = Expect(_GRAD * _GRAD.T, "x")
_KFC = Kron(Expect(Gam * Gam.T, "x"), Expect(X * X.T, "x") / T)


def _offset_symbol(prefix, delta, i, j):
    """The (i, j) entry of the second moment at offset ``delta``: Gamma(-d) = Gamma(d)^T."""
    if delta < 0:
        delta, i, j = -delta, j, i
    if delta == 0:
        i, j = min(i, j), max(i, j)
    return sp.Symbol(f"{prefix}{delta}_{i + 1}{j + 1}", real=True)


def kfc_moments(correlated_derivatives: bool):
    """The expectation of a polynomial in the entries ``g_{i t}`` of the gradient matrix and ``x_{k t}`` of X
    under IAD and SH (and SUD unless ``correlated_derivatives``): each monomial of degree two in
    the g's and two in the x's has expectation ``E[g_{it} g_{jt'}] E[x_{kt} x_{lt'}]`` with the
    offset moments ``gamma^(t'-t)_{ij}`` and ``omega^(t'-t)_{kl}``."""
    def E(h):
        h = sp.expand(sp.sympify(h))
        gs = sorted((s for s in h.free_symbols if s.name.startswith("g_")), key=str)
        xs = sorted((s for s in h.free_symbols if s.name.startswith("x_")), key=str)
        if not gs and not xs:
            return h
        total = sp.Integer(0)
        for monom, coeff in sp.Poly(h, *gs, *xs).terms():
            g_part = [s for s, e in zip(gs, monom[:len(gs)]) for _ in range(e)]
            x_part = [s for s, e in zip(xs, monom[len(gs):]) for _ in range(e)]
            factor = sp.Integer(1)
            for part, prefix in ((g_part, "gamma"), (x_part, "omega")):
                if not part:
                    continue
                if len(part) != 2:
                    raise ValueError("kfc_moments: only second moments are specified")
                (i, t), (j, u) = (_index(s) for s in part)
                if prefix == "gamma" and not correlated_derivatives and t != u:
                    factor = sp.Integer(0)
                else:
                    factor *= _offset_symbol(prefix, u - t, i, j)
            total += coeff * factor
        return total
    return E


def _index(s):
    """(row, column) of the entry symbol ``g_{it}`` / ``x_{kt}`` (1-based digits in its name)."""
    digits = s.name.split("_", 1)[1]
    return int(digits[0]) - 1, int(digits[1]) - 1


def _cross(sizes):
    m_, n_, T_ = sizes[m], sizes[n], sizes[T]
    out = sp.zeros(m_ * n_, m_ * n_)
    for t, u in itertools.product(range(T_), repeat=2):
        if t != u:
            Gd = sp.Matrix(m_, m_, lambda i, j: _offset_symbol("gamma", u - t, i, j))
            Od = sp.Matrix(n_, n_, lambda k, l: _offset_symbol("omega", u - t, k, l))
            out += tk.kron(Gd, Od)
    return out


def _values(sizes):
    return {Gam: tk.matrix("g", sizes[m], sizes[T]), X: tk.matrix("x", sizes[n], sizes[T]),
            Cross: _cross(sizes)}


_SIZES = Sizes({m: (1, 2), n: (1, 2), T: (1, 2, 3)})
_DESCRIBE = (r"$\mathcal G$ and $X$ fully symbolic ($g_{it}$, $x_{kt}$); $C_\times = \sum_{t\ne t'}"
             r"\Gamma(t'-t)\otimes\Omega(t'-t)$ with symbolic offset moments $\gamma^{(\delta)}$, "
             r"$\omega^{(\delta)}$ ($\Gamma(-\delta) = \Gamma(\delta)^\top$)")
_IAD_SH = Explicit(_SIZES, _values, operators={"x": kfc_moments(True)}, describe=_DESCRIBE)
_IAD_SH_SUD = Explicit(_SIZES, _values, operators={"x": kfc_moments(False)},
                       describe=_DESCRIBE + r"; spatially uncorrelated derivatives: "
                                            r"$\gamma^{(\delta)} = 0$ for $\delta\ne0$")
#: a realisable stationary witness: Gamma(0) = Omega(0) = 2, Gamma(1) = Omega(1) = 1 (T = 2)
_WITNESS_AT = Explicit(Sizes.of([{m: 1, n: 1, T: 2}]), _values, operators={"x": kfc_moments(True)},
                       describe=_DESCRIBE)
_WITNESS = {sp.Symbol("gamma0_11", real=True): 2, sp.Symbol("gamma1_11", real=True): 1,
            sp.Symbol("omega0_11", real=True): 2, sp.Symbol("omega1_11", real=True): 1}

KFC = Derivation(
    name="kfac_conv.kfc_exactness",
    title="KFC: the convolution K-FAC block is exact under IAD, SH and SUD",
    conclusion=(sp.Eq(_F, sp.MatAdd(_KFC, Cross), evaluate=False), sp.Eq(_F, _KFC, evaluate=False)),
    proof=lambda: [
        Chain(_F, [Link(sp.MatAdd(_KFC, Cross), _IAD_SH, label="iad_sh",
                        why="IAD factorises E[g_ig_j a_k a_l]; SH makes every same-position term "
                            "Γ(0)⊗Ω(0) and every cross-position term Γ(t′−t)⊗Ω(t′−t)")],
              title="IAD and SH: every m, n ≤ 2, T ≤ 3"),
        Chain(_F, [Link(_KFC, _IAD_SH_SUD, label="kfc",
                        why="with SUD only the T same-position terms Γ(0)⊗Ω(0) remain: "
                            "T Γ(0) ⊗ Ω(0) = E[𝒢𝒢ᵀ] ⊗ E[XXᵀ]/T")],
              part=1, title="IAD, SH and SUD: every m, n ≤ 2, T ≤ 3"),
    ],
    tier="B",
    scope="every m, n ∈ {1, 2} and T ∈ {1, 2, 3} positions (1-D offsets) with fully symbolic "
          "gradients and patches; the assumptions as a second-moment operator",
    controls=[
        Control("correlated_derivatives", target="iad_sh", replace=(Cross, sp.ZeroMatrix(m * n, m * n)),
                at=_WITNESS_AT, witness=_WITNESS,
                why="the cross-position terms dropped although the derivatives are correlated; "
                    "witness: T = 2 positions with Γ(0) = Ω(0) = 2, Γ(1) = Ω(1) = 1 (a stationary "
                    "sequence with correlation 1/2)"),
        Control("g_averaged_over_positions", target="kfc",
                replace=(_KFC, Kron(Expect(Gam * Gam.T, "x") / T, Expect(X * X.T, "x") / T)),
                why="G averaged over the positions instead of summed (the factor T lost)"),
    ],
    assumptions=[r"a convolution as a dense layer $\bar W\in\mathbb R^{m\times n}$ shared over $T$ "
                 r"positions: patches $\bar a_t$ (columns of $X$), pre-activation gradients $g_t$ "
                 r"(columns of $\mathcal G$), weight gradient $\sum_tg_t\bar a_t^\top = \mathcal G X^\top$",
                 r"IAD: $\{\bar a_t\}$ independent of $\{g_t\}$; SH: second moments depend only on "
                 r"the offset; SUD (part 2): $\mathbb E[g_tg_{t'}^\top] = 0$ for $t\ne t'$"],
    axioms={"KFC second moments":
            r"$\mathbb E[g_{it}g_{jt'}x_{kt}x_{lt'}] = \mathbb E[g_{it}g_{jt'}]\,\mathbb E[x_{kt}x_{lt'}]"
            r" = \Gamma(t'-t)_{ij}\,\Omega(t'-t)_{kl}$ (IAD and SH), with $\Gamma(\delta) = 0$ for "
            r"$\delta\ne0$ under SUD"},
    references=[tk.REF_GROSSE_MARTENS_2016 + " (KFC; assumptions IAD, SH, SUD)",
                tk.REF_MARTENS_GROSSE_2015, tk.REF_EIT_2023 + " (convolutions as K-FAC-expand)"],
    numeric=["fisherlab.kfac.factors", "fisherlab.kfac.matrix"],
    tested_by=["tests/kfac/test_kfac_conv.py::test_conv_factors_from_the_kfc_definition",
               "tests/kfac/test_kfac_conv.py::test_conv_kfac_exact_when_the_kernel_covers_the_input",
               "tests/proofs/test_kfac_conv_derivation.py::test_kfc_exact_under_sud_and_not_with_correlated_derivatives"],
    notes="KFC's factors are K-FAC-expand's with the spatial positions as the shared positions "
          "(kfac_weight_sharing.expand_exactness): $A$ averages the patch outer products over "
          "positions, $G$ sums the gradient outer products over positions.",
)

DERIVATIONS = [KFC]
