r"""The pullback sampling trick: pseudo-gradients ``J^T Dz`` have covariance ``J^T G_z J``.

R. Grosse, CSC 2541 Lecture 4, 'Pullback sampling trick': to estimate ``G = J^T G_z J`` draw an
output-space vector ``Dz`` with mean zero and covariance ``G_z`` and pull it back to weight
space, ``Dw = J^T Dz``; then ``E[Dw] = 0`` and ``E[Dw Dw^T] = J^T G_z J``, and the average of
``S`` such outer products is unbiased. With ``G_z = L L^T`` (every positive semidefinite ``G_z``
has such a factor) a draw is ``Dz = L u`` with standardised noise ``u`` (the stated axiom
``E[u] = 0``, ``E[u u^T] = I``). With ``Dz = nabla_z(-log p(y|z))``, ``y ~ p(.|z)``, the noise
is the sampled-label score and ``G_z`` the output Fisher: the Monte-Carlo Fisher
(``fl.fisher_mc``).

Tier A: general ``m`` outputs and ``d`` parameters, linearity of expectation and the axiom.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import Algebra, Axiom, Chain, Control, Derivation, Explicit, Lemma, Link, Sizes
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Expect

__all__ = ["DERIVATIONS"]

m, d = sp.symbols("m d", integer=True, positive=True)
J, L = sp.MatrixSymbol("J", m, d), sp.MatrixSymbol("L", m, m)
u, u1, u2 = (sp.MatrixSymbol(name, m, 1) for name in ("u", "u_1", "u_2"))
Zm = sp.ZeroMatrix(m, 1)

_MEAN = Axiom("standardised noise (mean)", sp.Eq(Expect(u, "u"), Zm, evaluate=False))
_SECOND = Axiom("standardised noise (second moment)",
                sp.Eq(Expect(u * u.T, "u"), sp.Identity(m), evaluate=False))

_DZ_OUTER = Expect(L * u * (L * u).T, "u")
_DW_OUTER = Expect(J.T * L * u * (J.T * L * u).T, "u")
_GZ = L * L.T
_PULLED = J.T * L * L.T * J


def _outer(v):
    return J.T * L * v * (J.T * L * v).T


def _proof():
    P = PSEUDO_GRADIENT_COVARIANCE
    return [
        Chain(Expect(L * u, "u"), [
            Link(L * Expect(u, "u"), tk.expectation_linearity(u, "u", left=L),
                 why="L does not depend on the noise"),
            Link(L * Zm, _MEAN, why="E[u] = 0"),
            Link(Zm, Algebra(), why="L0 = 0"),
        ]),
        Chain(_DZ_OUTER, [
            Link(L * Expect(u * u.T, "u") * L.T, tk.expectation_linearity(u * u.T, "u", left=L, right=L.T),
                 why="(Lu)(Lu)ᵀ = L uuᵀ Lᵀ; L does not depend on the noise"),
            Link(sp.MatMul(L, sp.Identity(m), L.T), _SECOND, label="second_moment",
                 why="E[uuᵀ] = I"),
            Link(_GZ, Algebra(), why="G_z = LLᵀ"),
        ], part=1),
        Chain(Expect(J.T * L * u, "u"), [
            Link(J.T * Expect(L * u, "u"), tk.expectation_linearity(L * u, "u", left=J.T),
                 why="J does not depend on the noise"),
            Link(J.T * Zm, Lemma(P, part=0), why="E[𝒟z] = 0 (part 1)"),
            Link(sp.ZeroMatrix(d, 1), Algebra(), why="Jᵀ0 = 0"),
        ], part=2),
        Chain(_DW_OUTER, [
            Link(J.T * _DZ_OUTER * J, tk.expectation_linearity(L * u * (L * u).T, "u", left=J.T, right=J),
                 why="(Jᵀ𝒟z)(Jᵀ𝒟z)ᵀ = Jᵀ𝒟z𝒟zᵀJ; J does not depend on the noise"),
            Link(_PULLED, Lemma(P, part=1), label="pullback", why="E[𝒟z𝒟zᵀ] = G_z (part 2)"),
        ], part=3),
        Chain(Expect(_outer(u1) + _outer(u2), "u"), [
            Link(Expect(_outer(u1), "u") + Expect(_outer(u2), "u"),
                 tk.expectation_linearity((_outer(u1), _outer(u2)), "u"),
                 why="linearity of expectation over the two samples"),
            Link(_PULLED + Expect(_outer(u2), "u"), Lemma(P, {u: u1}, part=3),
                 why="part 4 for the first draw"),
            Link(_PULLED + _PULLED, Lemma(P, {u: u2}, part=3), why="part 4 for the second draw"),
            Link(2 * _PULLED, Algebra(), why="so the average of the S = 2 outer products is "
                                             "JᵀG_zJ: unbiased"),
        ], part=4),
    ]


#: Standardised noise on four points (exact numbers): E[u] = 0, E[u u^T] = I at m = 2.
_POINTS = {sp.Symbol("u_1", real=True): (1, 1, -1, -1), sp.Symbol("u_2", real=True): (1, -1, 1, -1)}
_AT = Explicit(Sizes({m: (2,), d: (2,)}), operators={"u": tk.sample_average(_POINTS)})

PSEUDO_GRADIENT_COVARIANCE = Derivation(
    name="pullback_sampling.pseudo_gradient_covariance",
    title="Pullback sampling trick: Cov(Jᵀ𝒟z) = JᵀG_zJ",
    conclusion=(sp.Eq(Expect(L * u, "u"), Zm, evaluate=False),
                sp.Eq(_DZ_OUTER, _GZ, evaluate=False),
                sp.Eq(Expect(J.T * L * u, "u"), sp.ZeroMatrix(d, 1), evaluate=False),
                sp.Eq(_DW_OUTER, _PULLED, evaluate=False),
                sp.Eq(Expect(_outer(u1) + _outer(u2), "u"), 2 * _PULLED, evaluate=False)),
    proof=_proof,
    tier="A",
    scope="general m outputs and d parameters: linearity of expectation and the standardised-"
          "noise axiom; two independent samples average to the same covariance",
    controls=[
        Control("wrong_side", target="pullback", replace=(_PULLED, J * L * L.T * J.T),
                specialise={m: d}, at=_AT,
                why="JG_zJᵀ in place of JᵀG_zJ: the pullback written like a push-forward"),
        Control("covariance_instead_of_root", target="conclusion:2",
                replace=(_DZ_OUTER, Expect(_GZ * u * (_GZ * u).T, "u")), at=_AT,
                why="the noise scaled by G_z instead of a square root L of it: Cov(G_z u) = G_z²"),
        Control("identity_noise_dropped", target="second_moment",
                replace=(sp.MatMul(L, sp.Identity(m), L.T), L), at=_AT,
                why="the covariance of Lu taken as L (one factor of the square root)"),
    ],
    assumptions=[r"$J$ ($m\times d$) and $L$ fixed: they do not depend on the sampled noise or "
                 r"label; $G_z = LL^\top$", r"$\mathcal Dz = Lu$; the two samples of part 5 are "
                 r"draws $u_1, u_2$ of the same standardised noise"],
    axioms={"standardised noise (mean)": r"$\mathbb E[u] = 0$",
            "standardised noise (second moment)": r"$\mathbb E[uu^\top] = I$ (e.g. $u\sim\mathcal "
                                                  r"N(0, I)$, or the whitened sampled-label score)",
            "linearity of expectation": tk.STRUCTURAL_AXIOMS["linearity of expectation"]},
    references=[tk.REF_GROSSE_2022 + " ('Pullback sampling trick')",
                tk.REF_JOHNSON_2017 + ", §7-8 (the Fisher as the covariance of the model-sampled "
                "score)", tk.REF_MARTENS_GROSSE_2015 + ", §5 (sampled targets)"],
    numeric=["fisherlab.fisher_mc"],
    tested_by=["tests/proofs/test_pullback_sampling.py::"
               "test_fisher_mc_is_the_covariance_of_pulled_back_sampled_scores"],
)

DERIVATIONS = [PSEUDO_GRADIENT_COVARIANCE]
