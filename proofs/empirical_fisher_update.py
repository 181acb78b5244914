r"""The empirical-Fisher update as the solution of a loss-change-constrained problem.

T. George, "What is the empirical Fisher?" (2018): the step
``Delta = -eta C^{-1} g`` with the *uncentered* ``C = E[\nabla\ell \nabla\ell^T]`` (data labels)
and ``g = E[\nabla\ell]`` solves, to second order,

.. math:: \min_\Delta L(\theta + \Delta) \quad\text{s.t.}\quad \mathbb E[(\Delta\ell)^2] = c,
          \qquad \Delta\ell(x) = \ell(x, \theta + \Delta) - \ell(x, \theta).

Three derivations:

* ``constraint_expansion`` (tier A-model): along ``theta + eps Delta``, ``E[(Delta l)^2]`` and
  its first ``eps``-derivative vanish at ``eps = 0`` and half its second derivative is
  ``Delta^T C Delta`` -- generic per-example losses (undefined functions) at stated ``(N, d)``;
* ``constrained_problem`` (tier A): the Lagrangian ``g^T Delta + mu (Delta^T C Delta - c)`` of
  the linearised problem has gradient ``g + 2 mu C Delta``, which vanishes at
  ``Delta* = -C^{-1} g / (2 mu)``; the constraint fixes ``mu = (1/2) sqrt(g^T C^{-1} g / c)``,
  so ``Delta* = -sqrt(c / g^T C^{-1} g) C^{-1} g``: the undamped step, learning rate fixed by ``c``;
* ``invariance`` (tier A): under ``theta = A theta' + b`` the per-example gradients become
  ``A^T g_n``, so ``C' = A^T C A`` and ``g' = A^T g``: the undamped step maps exactly,
  ``A Delta' = Delta``; the damped one becomes the step damped by ``lambda (A A^T)^{-1}``, which is
  ``lambda I`` for orthogonal ``A`` (and not otherwise);
* ``damped_step`` (tier A): the damped step ``-(C + lambda I)^{-1} g / (2 mu)`` is the solution
  of a *different* problem, ``min g^T Delta`` s.t. ``E[(Delta l)^2] + lambda ||Delta||^2 = c``
  (a loss-change budget plus a Euclidean trust region); it does not solve the undamped one
  (the control ``damped_step_for_undamped_problem``).
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import (Algebra, Chain, Control, Derivation, Entrywise, Explicit, Given,
                                Lemma, Link, Model, Sizes)
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import At, Expect, Grad, Scalar

__all__ = ["DERIVATIONS"]

d, N = sp.symbols("d N", integer=True, positive=True)
C = sp.MatrixSymbol("C", d, d)
g = sp.MatrixSymbol("g", d, 1)
Delta = sp.MatrixSymbol("Delta", d, 1)
I = sp.Identity(d)
mu = sp.Symbol("mu", positive=True)
c = sp.Symbol("c", positive=True)
lam = sp.Symbol("lambda", nonnegative=True)

REFERENCES = [tk.REF_GEORGE_2018 + " (the empirical-Fisher update as a constrained problem)",
              tk.REF_KUNSTNER_2019]
NUMERIC = ["fisherlab.updates.empirical_fisher_update", "fisherlab.optax.empirical_fisher"]
TESTED_BY = ["tests/updates/test_dense_updates.py::test_empirical_fisher_update_closed_form"]


# --------------------------------------------------------------------------- constraint expansion

G = sp.MatrixSymbol("G", N, d)          # rows: the per-example gradients g_n^T
gbar = sp.MatrixSymbol(r"\bar g", d, 1)
Cemp = sp.MatrixSymbol("C", d, d)
phi0, phi1, phi2 = sp.symbols(r"\Phi(0) \Phi'(0) \tfrac{1}{2}\Phi''(0)", real=True)
_EXPANSION_SIZES = Sizes.of([{N: 2, d: 2}, {N: 3, d: 2}, {N: 3, d: 3}])
_eps = sp.Symbol("epsilon", real=True)


def _losses(sizes):
    n_, d_ = sizes[N], sizes[d]
    th = sp.symbols(f"theta_1:{d_ + 1}", real=True)
    De = sp.Matrix(sp.symbols(f"Delta_1:{d_ + 1}", real=True))
    ls = [sp.Function(f"ell_{k + 1}") for k in range(n_)]
    pt = [a + _eps * b for a, b in zip(th, De)]
    Phi = sp.Add(*[(f(*pt) - f(*th)) ** 2 for f in ls]) / n_
    grads = sp.Matrix(n_, d_, lambda k, i: sp.diff(ls[k](*th), th[i]))
    return {   # the Taylor coefficients are computed when a link needs them
        Delta: De, G: grads,
        phi0: lambda: Phi.subs(_eps, 0),
        phi1: lambda: sp.diff(Phi, _eps).subs(_eps, 0).doit(),
        phi2: lambda: (sp.diff(Phi, _eps, 2).subs(_eps, 0) / 2).doit(),
    }


_LOSS_MODEL = Model(
    _EXPANSION_SIZES, _losses,
    describe=r"per-example losses $\ell_n$ undefined functions of $\theta$; "
             r"$\Phi(\epsilon) = \frac1N\sum_n \big(\ell_n(\theta + \epsilon\Delta) - "
             r"\ell_n(\theta)\big)^2$; $G$ has rows $\nabla\ell_n(\theta)^\top$",
    defines=(phi0, phi1, phi2))

_T1, _T2 = sp.Symbol("t1"), sp.Symbol("t2")
_LOSS_WITNESS = {sp.Function("ell_1"): sp.Lambda((_T1, _T2), _T1 ** 2 + 3 * _T2),
                 sp.Function("ell_2"): sp.Lambda((_T1, _T2), _T1 * _T2 - _T2 ** 3)}

_QUAD = Scalar(Delta.T * Cemp * Delta)

CONSTRAINT_EXPANSION = Derivation(
    name="empirical_fisher_update.constraint_expansion",
    title="The loss-change constraint to second order is the uncentered gradient second moment",
    conclusion=(sp.Eq(phi0, 0, evaluate=False), sp.Eq(phi1, 0, evaluate=False),
                sp.Eq(phi2, _QUAD, evaluate=False)),
    definitions={Cemp: G.T * G / N, gbar: G.T * sp.OneMatrix(N, 1) / N},
    proof=lambda: [
        Chain(phi0, [Link(sp.Integer(0), _LOSS_MODEL, why="Δℓ_n vanishes at ε = 0")]),
        Chain(phi1, [Link(sp.Integer(0), _LOSS_MODEL,
                          why="each term is 2 Δℓ_n ∂_ε Δℓ_n, and Δℓ_n(0) = 0")], part=1),
        Chain(phi2, [Link(_QUAD, _LOSS_MODEL, label="second_order",
                          why="½∂²_ε(Δℓ_n)² at 0 is (∂_ε Δℓ_n)² = (g_nᵀΔ)²; the average over n "
                              "is Δᵀ(GᵀG/N)Δ")], part=2),
    ],
    tier="A-model",
    scope="generic per-example losses (undefined functions) at (N, d) = (2, 2), (3, 2), (3, 3)",
    controls=[Control("centered_covariance", target="second_order",
                      replace=(_QUAD, Scalar(Delta.T * (Cemp - gbar * gbar.T) * Delta)),
                      witness=_LOSS_WITNESS,
                      why="the centered gradient covariance C − ḡḡᵀ as the second-order term: "
                          "E[(Δℓ)²] is a raw second moment, not a variance")],
    assumptions=["the expectation is the average over the N training examples (data labels)"],
    references=REFERENCES,
    numeric=NUMERIC,
    tested_by=TESTED_BY,
)


# --------------------------------------------------------------------------- undamped problem

Lag = sp.Symbol(r"\mathcal{L}")
q = Scalar(g.T * C.I * g)
Dstar = sp.MatrixSymbol(r"\Delta^{*}", d, 1)
_STEP = -C.I * g / (2 * mu)
_MU = sp.Eq(mu, sp.sqrt(q / c) / 2, evaluate=False)
_ETA_STEP = sp.MatMul(-1 / sp.sqrt(q / c), C.I, g)
_GRAD = g + 2 * mu * C * Delta
_STATIONARY = sp.MatAdd(g, sp.MatMul(2, mu, C, Dstar))   # constructors: `*` would simplify eagerly


def _undamped_proof():
    return [
        Chain(Grad(Lag, Delta), [Link(_GRAD, Entrywise(), label="gradient",
                                      why="∂/∂Δ_k of Σ g_iΔ_i + μ(Σ Δ_i C_ij Δ_j − c), C symmetric")]),
        Chain(_STATIONARY, [
            Link(sp.MatAdd(g, sp.MatMul(2, mu, C, _STEP)), Algebra(), why="the definition of Δ*"),
            Link(sp.ZeroMatrix(d, 1), Algebra(), label="stationary", why="C C⁻¹ = I"),
        ], part=1),
        Chain(Scalar(Dstar.T * C * Dstar), [
            Link(q / (4 * mu ** 2), Algebra(), label="quadratic",
                 why="Δ*ᵀCΔ* = gᵀC⁻ᵀ C C⁻¹ g / (4μ²) and C⁻ᵀ = C⁻¹ (C symmetric)"),
            Link(c, Given(_MU), why="the multiplier fixed by the constraint"),
        ], part=2),
        Chain(Dstar, [
            Link(_STEP, Algebra(), why="the definition of Δ*"),
            Link(_ETA_STEP, Given(_MU), why="2μ = √(gᵀC⁻¹g / c)"),
        ], part=3),
    ]


CONSTRAINED = Derivation(
    name="empirical_fisher_update.constrained_problem",
    title="The undamped empirical-Fisher step solves the loss-change-constrained problem",
    conclusion=(sp.Eq(Grad(Lag, Delta), _GRAD, evaluate=False),
                sp.Eq(_STATIONARY, sp.ZeroMatrix(d, 1), evaluate=False),
                sp.Eq(Scalar(Dstar.T * C * Dstar), c, evaluate=False),
                sp.Eq(Dstar, _ETA_STEP, evaluate=False)),
    definitions={Lag: Scalar(g.T * Delta) + mu * (Scalar(Delta.T * C * Delta) - c), Dstar: _STEP},
    hypotheses=[sp.Q.positive_definite(C), _MU],
    proof=_undamped_proof,
    tier="A",
    scope="general dimension d: the Lagrangian's gradient entry-wise, stationarity and the "
          "multiplier by matrix algebra",
    controls=[
        Control("wrong_sign", target="conclusion:2", replace=(Dstar, C.I * g / (2 * mu)),
                why="Δ = +C⁻¹g/(2μ): the stationary point of the maximisation"),
        Control("damped_step_for_undamped_problem", target="conclusion:2",
                replace=(Dstar, -(C + lam * I).I * g / (2 * mu)),
                why="the damped step −(C + λI)⁻¹g/(2μ) claimed to solve the undamped problem"),
        Control("multiplier_unsquared", target="quadratic", replace=(q / (4 * mu ** 2), q / (2 * mu)),
                why="the constraint solved as if Δ* were linear in 1/μ: gᵀC⁻¹g/(2μ)"),
    ],
    assumptions=["the loss is linearised, L(θ + Δ) ≈ L(θ) + gᵀΔ, and the constraint taken to "
                 "second order, E[(Δℓ)²] ≈ ΔᵀCΔ (`empirical_fisher_update.constraint_expansion`)",
                 r"$C = \mathbb E[\nabla\ell\nabla\ell^\top]$ positive definite, $c > 0$; "
                 r"$\mu > 0$ selects the minimum (the other root, $\mu < 0$, the maximum)"],
    references=REFERENCES,
    numeric=NUMERIC,
    tested_by=TESTED_BY,
)


# --------------------------------------------------------------------------- damped problem

LagD = sp.Symbol(r"\mathcal{L}_{\lambda}")
M_ = C + lam * I
qd = Scalar(g.T * M_.I * g)
DstarD = sp.MatrixSymbol(r"\Delta^{*}_{\lambda}", d, 1)
_STEP_D = -M_.I * g / (2 * mu)
_MU_D = sp.Eq(mu, sp.sqrt(qd / c) / 2, evaluate=False)
_GRAD_D = g + 2 * mu * M_ * Delta
_STATIONARY_D = sp.MatAdd(g, sp.MatMul(2, mu, M_, DstarD))


def _damped_proof():
    return [
        Chain(Grad(LagD, Delta), [Link(_GRAD_D, Entrywise(), label="gradient",
                                       why="the ridge term λΔᵀΔ contributes 2λΔ")]),
        Chain(_STATIONARY_D, [
            Link(sp.MatAdd(g, sp.MatMul(2, mu, M_, _STEP_D)), Algebra(), why="the definition of Δ*_λ"),
            Link(sp.ZeroMatrix(d, 1), Algebra(), label="stationary",
                 why="(C + λI)(C + λI)⁻¹ = I"),
        ], part=1),
        Chain(Scalar(DstarD.T * M_ * DstarD), [
            Link(qd / (4 * mu ** 2), Algebra(), why="(C + λI) symmetric"),
            Link(c, Given(_MU_D), why="the multiplier fixed by the damped constraint"),
        ], part=2),
    ]


DAMPED = Derivation(
    name="empirical_fisher_update.damped_step",
    title="The damped empirical-Fisher step solves a trust-region problem (not the undamped one)",
    conclusion=(sp.Eq(Grad(LagD, Delta), _GRAD_D, evaluate=False),
                sp.Eq(_STATIONARY_D, sp.ZeroMatrix(d, 1), evaluate=False),
                sp.Eq(Scalar(DstarD.T * M_ * DstarD), c, evaluate=False)),
    definitions={LagD: Scalar(g.T * Delta)
                 + mu * (Scalar(Delta.T * C * Delta) + lam * Scalar(Delta.T * Delta) - c),
                 DstarD: _STEP_D},
    hypotheses=[sp.Q.positive_definite(C), _MU_D],
    proof=_damped_proof,
    tier="A",
    scope="general dimension d: the Lagrangian's gradient entry-wise, stationarity and the "
          "multiplier by matrix algebra",
    controls=[
        Control("undamped_stationarity", target="stationary",
                replace=(sp.MatMul(2, mu, M_, _STEP_D), sp.MatMul(2, mu, C, _STEP_D)),
                why="the damped step checked against the undamped stationarity condition "
                    "g + 2μCΔ = 0"),
        Control("ridge_gradient_halved", target="gradient", replace=(M_, C + lam / 2 * I),
                why="the gradient of λ‖Δ‖² taken as λΔ instead of 2λΔ"),
    ],
    assumptions=[r"the problem $\min_\Delta g^\top\Delta$ s.t. "
                 r"$\mathbb E[(\Delta\ell)^2] + \lambda\|\Delta\|^2 = c$, the constraint to second "
                 r"order ($\Delta^\top C\Delta + \lambda\Delta^\top\Delta = c$)",
                 r"$C$ positive definite (for $\lambda > 0$ positive semidefinite suffices), "
                 r"$\lambda \ge 0$, $c > 0$, $\mu > 0$"],
    references=REFERENCES,
    numeric=NUMERIC,
    tested_by=TESTED_BY,
    notes="The library's `fl.updates.empirical_fisher_update(..., lr, damping)` computes "
          "$-\\mathrm{lr}\\,(C + \\mathrm{damping}\\,I)^{-1} g$: with damping it is this step "
          "(learning rate $1/(2\\mu)$), without damping the step of "
          "`empirical_fisher_update.constrained_problem`.",
)


# --------------------------------------------------------------------------- invariance

A, Q = sp.MatrixSymbol("A", d, d), sp.MatrixSymbol("Q", d, d)
g_n, Hn = sp.MatrixSymbol("g_n", d, 1), sp.MatrixSymbol("H_n", d, d)
g_np = sp.MatrixSymbol("g_n'", d, 1)
z_, u_ = sp.MatrixSymbol("z", d, 1), sp.MatrixSymbol("u", d, 1)
C_p, g_p = sp.MatrixSymbol("C'", d, d), sp.MatrixSymbol("g'", d, 1)
alpha = sp.Symbol("alpha", positive=True)
lam_p = sp.Symbol("lambda", positive=True)
_ORTH = sp.Eq(Q.I, Q.T, evaluate=False)

#: the per-example gradient of ell_n(A theta' + b) at theta': that of the Taylor polynomial of
#: ell_n at theta composed with z = A u (the remainder does not reach the gradient)
_INV_DEFS = {
    g_np: At(Grad(Scalar(At(g_n.T * z_ + sp.MatMul(sp.Rational(1, 2), z_.T, Hn, z_), z_, A * u_)), u_),
             u_, sp.ZeroMatrix(d, 1)),
    C: Expect(g_n * g_n.T, "n"), C_p: Expect(g_np * g_np.T, "n"),
    g: Expect(g_n, "n"), g_p: Expect(g_np, "n"),
}
_M = C + lam_p * sp.Inverse(A * A.T)
_INV_PARTS = (
    sp.Eq(g_np, A.T * g_n, evaluate=False),
    sp.Eq(C_p, A.T * C * A, evaluate=False),
    sp.Eq(g_p, A.T * g, evaluate=False),
    sp.Eq(sp.MatMul(A, sp.MatMul(-alpha, sp.Inverse(C_p), g_p)), sp.MatMul(-alpha, C.I, g),
          evaluate=False),
    sp.Eq(sp.MatMul(A, sp.MatMul(-alpha, sp.Inverse(C_p + lam_p * I), g_p)),
          sp.MatMul(-alpha, sp.Inverse(_M), g), evaluate=False),
    sp.Eq(sp.MatMul(-alpha, sp.Inverse(C + lam_p * sp.Inverse(Q * Q.T)), g),
          sp.MatMul(-alpha, sp.Inverse(C + lam_p * I), g), evaluate=False),
)
#: per-example gradients on three points (exact numbers): an invertible second moment
_G_POINTS = {sp.Symbol("g_n_1", real=True): (1, 0, 1), sp.Symbol("g_n_2", real=True): (0, 2, 1)}
_INV_AT = Explicit(Sizes({d: (2,)}), operators={"n": tk.sample_average(_G_POINTS)})


def _invariance_proof():
    V = INVARIANCE
    ACA = A.T * C * A
    return [
        Chain(g_np, [Link(A.T * g_n, Entrywise(), label="example_gradient",
                          why="∂/∂u_k of g_nᵀAu + ½uᵀAᵀH_nAu at u = 0")]),
        Chain(C_p, [
            Link(Expect(A.T * g_n * (A.T * g_n).T, "n"), Lemma(V, part=0),
                 why="g_n' = Aᵀg_n for every example"),
            Link(A.T * Expect(g_n * g_n.T, "n") * A,
                 tk.expectation_linearity(g_n * g_n.T, "n", left=A.T, right=A),
                 why="A does not depend on the example"),
            Link(ACA, Algebra(), label="congruence", why="C = E_n[g_n g_nᵀ]"),
        ], part=1),
        Chain(g_p, [
            Link(Expect(A.T * g_n, "n"), Lemma(V, part=0), why="g_n' = Aᵀg_n"),
            Link(A.T * Expect(g_n, "n"), tk.expectation_linearity(g_n, "n", left=A.T),
                 why="linearity of the average"),
            Link(A.T * g, Algebra(), why="g = E_n[g_n]"),
        ], part=2),
        Chain(_INV_PARTS[3].lhs, [
            Link(sp.MatMul(A, sp.MatMul(-alpha, sp.Inverse(ACA), g_p)), Lemma(V, part=1),
                 why="C' = AᵀCA"),
            Link(sp.MatMul(A, sp.MatMul(-alpha, sp.Inverse(ACA), A.T, g)), Lemma(V, part=2),
                 why="g' = Aᵀg"),
            Link(_INV_PARTS[3].rhs, Algebra(), label="undamped",
                 why="A(AᵀCA)⁻¹Aᵀ = C⁻¹"),
        ], part=3),
        Chain(_INV_PARTS[4].lhs, [
            Link(sp.MatMul(A, sp.MatMul(-alpha, sp.Inverse(ACA + lam_p * I), g_p)),
                 Lemma(V, part=1), why="C' = AᵀCA"),
            Link(sp.MatMul(A, sp.MatMul(-alpha, sp.Inverse(ACA + lam_p * I), A.T, g)),
                 Lemma(V, part=2), why="g' = Aᵀg"),
            Link(sp.MatMul(-alpha, A, sp.Inverse(sp.MatMul(A.T, _M, A)), A.T, g), Algebra(),
                 why="AᵀCA + λI = Aᵀ(C + λ(AAᵀ)⁻¹)A"),
            Link(sp.MatMul(-alpha, A, A.I, sp.Inverse(_M), sp.Inverse(A.T), A.T, g),
                 tk.inverse_of_product(A.T, _M, A), why="inverse of a product"),
            Link(_INV_PARTS[4].rhs, Algebra(), label="damped", why="AA⁻¹ = I, A⁻ᵀAᵀ = I"),
        ], part=4),
        Chain(_INV_PARTS[5].lhs, [Link(_INV_PARTS[5].rhs, Given(_ORTH), label="orthogonal",
                                       why="Q⁻¹ = Qᵀ, so (QQᵀ)⁻¹ = I")], part=5),
    ]


INVARIANCE = Derivation(
    name="empirical_fisher_update.invariance",
    title="The undamped empirical-Fisher update is invariant to affine reparameterisation, the "
          "damped one only to orthogonal maps",
    conclusion=_INV_PARTS,
    definitions=_INV_DEFS,
    hypotheses=[sp.Q.invertible(A), sp.Q.symmetric(Hn), sp.Q.orthogonal(Q), _ORTH],
    proof=_invariance_proof,
    tier="A",
    scope="general dimension d: per-example gradients entry-wise, the averages by linearity, "
          "the steps by matrix algebra",
    controls=[
        Control("example_gradient_as_a_vector", target="conclusion:1", replace=(A.T * g_n, A.I * g_n),
                why="the per-example gradient transformed like a displacement, A⁻¹g_n"),
        Control("second_moment_wrong_side", target="congruence", replace=(A.T * C * A, A * C * A.T),
                at=_INV_AT, why="C' = ACAᵀ: the gradient second moment transformed on the wrong "
                                "side (witness: three examples with equal weight)"),
        Control("damping_invariant", target="damped",
                replace=(sp.MatMul(-alpha, sp.Inverse(_M), g), sp.MatMul(-alpha, sp.Inverse(C + lam_p * I), g)),
                at=_INV_AT, why="the damped step claimed invariant under every invertible A"),
        Control("damping_invariant_for_any_map", target="orthogonal", replace=(Q, A), at=_INV_AT,
                why="the orthogonality used for a general invertible map: λ(AAᵀ)⁻¹ ≠ λI"),
    ],
    assumptions=[r"$\theta = A\theta' + b$ with $A$ invertible, $\ell_n'(\theta') = "
                 r"\ell_n(A\theta' + b)$; $g_n, H_n$ the gradient and Hessian of $\ell_n$ at "
                 r"$\theta$, $g_n'$ that of $\ell_n'$ at $\theta'$; $\mathbb E_n$ the average over the "
                 r"N examples",
                 r"$C = \mathbb E_n[g_ng_n^\top]$ (the uncentered empirical Fisher) invertible for "
                 r"the undamped step; $\alpha, \lambda > 0$; $Q$ orthogonal"],
    axioms={"Taylor coefficients": r"the gradient of $\ell_n$ at $\theta$ is that of its Taylor "
                                   r"polynomial $g_n^\top z + \tfrac12 z^\top H_n z$, and "
                                   r"$\ell_n'(\theta' + u) = \ell_n(\theta + Au)$",
            "linearity of expectation": tk.STRUCTURAL_AXIOMS["linearity of expectation"],
            "inverse of a product": tk.STRUCTURAL_AXIOMS["inverse of a product"]},
    references=[tk.REF_GEORGE_2018 + " (the empirical-Fisher update from a constrained problem "
                "stated in the loss, hence coordinate-free)",
                tk.REF_JOHNSON_2017 + ", App. B (affine invariance; damping breaks it)",
                tk.REF_KUNSTNER_2019],
    numeric=NUMERIC,
    tested_by=["tests/updates/test_invariance.py::"
               "test_empirical_fisher_update_undamped_affine_invariant_damped_only_orthogonal"],
)

DERIVATIONS = [CONSTRAINT_EXPANSION, CONSTRAINED, INVARIANCE, DAMPED]
