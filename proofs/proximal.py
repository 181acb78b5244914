r"""The damped natural-gradient and Gauss--Newton steps as proximal steps.

R. Grosse (CSC 2541, Lecture 4, "Interpretation 4") reads a damped second-order step as the
minimiser of the linearised loss plus a function-space distance ``D`` (weight ``lambda_FSD``)
plus a weight-space distance (weight ``lambda_WSD``), with ``D`` taken to second order:

.. math:: \Phi(\Delta) = g^\top\Delta + \lambda_{\rm FSD}\,\tfrac12\Delta^\top C\Delta
          + \tfrac{\lambda_{\rm WSD}}{2}\|\Delta\|^2,

where ``C`` is the Fisher ``F`` when ``D`` is the KL divergence between the predictive
distributions at ``theta`` and ``theta + Delta`` (its second-order term is ``(1/2) Delta^T F
Delta``: ``kl_expansion.*``), and the Gauss--Newton matrix ``G = J^T J`` when ``D`` is
``(1/2)||f(theta + Delta) - f(theta)||^2`` (whose second-order term is ``(1/2) Delta^T J^T J
Delta``). Each derivation (tier A, general dimension ``d``) proves

1. the gradient ``grad Phi = g + M Delta`` with ``M = lambda_FSD C + lambda_WSD I``;
2. ``Delta* = -M^{-1} g`` is stationary;
3. ``Phi(Delta) - Phi(Delta*) = (1/2)(Delta - Delta*)^T M (Delta - Delta*)`` (exactly);
4. that difference is ``>= 0`` when ``C`` is a Gram matrix ``S S^T`` (``F``: the Fisher is a
   covariance, ``fisher_psd.score_covariance``; ``G = J^T J``), so ``Delta*`` is the global
   minimiser.

The control replaces the distance by its *first-order* approximation, which vanishes (the
distance and its gradient are zero at ``Delta = 0``): the curvature term is lost and the
gradient of the objective is no longer ``g + M Delta``.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import (Algebra, Chain, Control, Derivation, Entrywise, Explicit, Given,
                                Lemma, Link, Sizes)
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Grad, Scalar

__all__ = ["DERIVATIONS"]

d, r = sp.symbols("d r", integer=True, positive=True)
g = sp.MatrixSymbol("g", d, 1)
Delta = sp.MatrixSymbol("Delta", d, 1)
I = sp.Identity(d)
lamF = sp.Symbol(r"\lambda_{\mathrm{FSD}}", positive=True)
lamW = sp.Symbol(r"\lambda_{\mathrm{WSD}}", positive=True)

REFERENCES = [tk.REF_GROSSE_2022 + " ('Interpretation 4': damped second-order steps as "
              "proximal steps with function-space and weight-space distances)",
              tk.REF_MARTENS_2020 + ", §9 (the Fisher and the GGN as second-order terms of a "
              "function-space distance)",
              tk.REF_AMARI_1998]
_TEST = "tests/proofs/test_proximal.py::"


def _family(short, C, S, Dstar, distance, numeric, tested_by, extra_refs, title, gram_why):
    """A proximal-step derivation for the curvature ``C = S S^T`` and the minimiser ``Dstar``."""
    M = lamF * C + lamW * I
    dist = lamF * Scalar(Delta.T * C * Delta) / 2
    ridge = lamW * Scalar(Delta.T * Delta) / 2

    def phi(x):
        return Scalar(g.T * x) + lamF * Scalar(x.T * C * x) / 2 + lamW * Scalar(x.T * x) / 2

    obj = phi(Delta)
    E = Delta - Dstar
    step = -M.I * g
    is_min = sp.Eq(Dstar, step, evaluate=False)
    gram = sp.Eq(C, S * S.T, evaluate=False)
    grad = g + M * Delta
    stationary = sp.MatAdd(g, sp.MatMul(M, Dstar))
    gap = Scalar(sp.MatMul(sp.Transpose(E), M, E)) / 2
    gap_gram = (lamF * Scalar(sp.MatMul(sp.Transpose(S.T * E), S.T * E)) / 2
                + lamW * Scalar(sp.MatMul(sp.Transpose(E), E)) / 2)

    def instance(sizes):
        n = sizes[d]
        Sx = tk.matrix("S", n, sizes[r])
        gx = tk.vector("g", n)
        Cx = Sx * Sx.T
        base = {S.args[0]: Sx.T} if isinstance(S, sp.Transpose) else {S: Sx}
        return {**base, C: Cx, g: gx,
                Dstar: -(lamF * Cx + lamW * sp.eye(n)).inv() * gx}

    at = Explicit(Sizes.of([{d: 2, r: 2}]), values=instance,
                  describe=f"${sp.latex(C)} = S S^\\top$ with $S$ a $2\\times2$ matrix of symbols, "
                           f"${sp.latex(Dstar)}$ the solve of $M {sp.latex(Dstar)} = -g$")

    def proof():
        return [
            Chain(Grad(obj, Delta), [Link(grad, Entrywise(), label="gradient",
                                          why=f"∂/∂Δ_k of Σ g_iΔ_i + ½λ Σ Δ_i C_ij Δ_j + ½λ' Σ Δ_i², "
                                              f"C = {C} symmetric")]),
            Chain(stationary, [
                Link(sp.MatAdd(g, sp.MatMul(M, step)), Given(is_min), why="the definition of Δ*"),
                Link(sp.ZeroMatrix(d, 1), Algebra(), label="stationary", why="M M⁻¹ = I"),
            ], part=1),
            Chain(obj - phi(Dstar), [
                Link(gap + Scalar(sp.MatMul(sp.Transpose(stationary), E)), Algebra(),
                     label="completing_the_square",
                     why="expand both sides: Φ is quadratic with Hessian M (M symmetric)"),
                Link(gap + Scalar(sp.MatMul(sp.Transpose(sp.ZeroMatrix(d, 1)), E)),
                     Lemma(SELF[short], part=1), why="Δ* is stationary (part 2)"),
                Link(gap, Algebra(), why="0ᵀ(Δ − Δ*) = 0"),
            ], part=2),
            Chain(obj - phi(Dstar), [
                Link(gap, Lemma(SELF[short], part=2), why="part 3"),
                Link(gap_gram, Given(gram), label="gram", why=gram_why),
                Link(sp.Integer(0), Algebra(), rel=">=",
                     why="a sum of squares with positive weights λ_FSD, λ_WSD"),
            ], part=3),
        ]

    D = Derivation(
        name=f"proximal.{short}",
        title=title,
        conclusion=(sp.Eq(Grad(obj, Delta), grad, evaluate=False),
                    sp.Eq(stationary, sp.ZeroMatrix(d, 1), evaluate=False),
                    sp.Eq(obj - phi(Dstar), gap, evaluate=False),
                    sp.Ge(obj - phi(Dstar), 0, evaluate=False)),
        hypotheses=[sp.Q.symmetric(C), is_min, gram],
        proof=proof,
        tier="A",
        scope="general dimension d: the gradient entry-wise, stationarity, the exact quadratic "
              "gap and its sign by matrix algebra",
        controls=[
            Control("first_order_distance", target="conclusion", replace=(dist, sp.Integer(0)),
                    at=at,
                    why=f"the distance {distance} replaced by its first-order approximation, which "
                        "is 0 (the distance and its gradient vanish at Δ = 0): the curvature term "
                        "is lost"),
            Control("distance_weight_dropped", target="stationary",
                    replace=(sp.MatMul(M, step), sp.MatMul(C + lamW * I, step)), at=at,
                    why="the step −(λ_FSD C + λ_WSD I)⁻¹g checked against stationarity without "
                        "the weight λ_FSD on the distance"),
            Control("gap_without_ridge", target="completing_the_square",
                    replace=(M, lamF * C), at=at,
                    why="the quadratic gap with Hessian λ_FSD C only (the weight-space term "
                        "forgotten)"),
        ],
        assumptions=[f"the loss linearised at θ, L(θ + Δ) ≈ L(θ) + gᵀΔ, g = ∇L(θ); the distance "
                     f"{distance} taken to second order, ½ΔᵀCΔ",
                     "λ_FSD > 0, λ_WSD > 0; C = SSᵀ a Gram matrix (hence symmetric, positive "
                     "semidefinite)"],
        references=REFERENCES + extra_refs,
        numeric=numeric,
        tested_by=tested_by,
        notes=f"With `lr` $= 1/\\lambda_{{\\rm FSD}}$ and `damping` $= \\lambda_{{\\rm WSD}}/"
              f"\\lambda_{{\\rm FSD}}$ the library's `{numeric[0]}` step "
              f"$-\\mathrm{{lr}}\\,(C + \\mathrm{{damping}}\\,I)^{{-1}}g$ is $\\Delta^*$.",
    )
    return D


SELF: dict = {}

F = sp.MatrixSymbol("F", d, d)
SF = sp.MatrixSymbol("S", d, r)
SELF["damped_natural_gradient"] = _family(
    "damped_natural_gradient", F, SF, sp.MatrixSymbol(r"\Delta^{*}", d, 1),
    "KL(p(·|θ) ‖ p(·|θ + Δ)) between the predictive distributions",
    ["fisherlab.updates.natural_gradient"],
    [_TEST + "test_natural_gradient_minimises_the_proximal_objective"],
    [tk.REF_JOHNSON_2017 + ", §4 (the Fisher as the second-order term of the KL divergence)"],
    "The damped natural-gradient step minimises the proximal objective with the KL distance",
    "F = SSᵀ: the Fisher is a covariance of scores, (SᵀE)ᵀ(SᵀE) = EᵀFE")

G = sp.MatrixSymbol("G", d, d)
J = sp.MatrixSymbol("J", r, d)
SELF["damped_gauss_newton"] = _family(
    "damped_gauss_newton", G, sp.Transpose(J), sp.MatrixSymbol(r"\Delta^{*}_{G}", d, 1),
    "½‖f(θ + Δ) − f(θ)‖² between the outputs",
    ["fisherlab.updates.gauss_newton"],
    [_TEST + "test_gauss_newton_minimises_the_proximal_objective"],
    [tk.REF_SCHRAUDOLPH_2002],
    "The damped Gauss-Newton step minimises the proximal objective with the output distance",
    "G = JᵀJ (the output Jacobian stacked over the examples, scaled by 1/√N)")

DERIVATIONS = [SELF["damped_natural_gradient"], SELF["damped_gauss_newton"]]
