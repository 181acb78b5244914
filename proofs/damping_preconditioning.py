r"""Damping and preconditioning (R. Grosse, CSC 2541 Lecture 4: 'Minimizing quadratic
approximations', 'Damping', 'Preconditioning').

* ``damped_spectrum`` -- for ``H = Q D Q^T`` (``Q`` orthogonal, ``D`` diagonal) the damped
  inverse is ``Q (D + eta I)^{-1} Q^T``; an eigenpair ``H q = nu q`` is one of
  ``(H + eta I)^{-1}`` with eigenvalue ``(nu + eta)^{-1}``, which lies in ``(0, 1/eta]`` for
  ``nu >= 0``.
* ``descent_direction`` -- for ``P = L L^T`` the step ``-P g`` changes ``J`` to first order by
  ``g^T(-P g) = -||L^T g||^2 <= 0``, zero only at ``g = 0`` when ``L`` is invertible.
* ``reparameterization`` -- with ``w = R w~ + b`` the gradient is ``R^T g`` and the Hessian
  ``R^T H R``; gradient descent in ``w~`` is the step preconditioned by ``C^{-1} = R R^T``
  (``R = L^{-T}`` for ``C = L L^T``); for ``C = H`` the Hessian in ``w~`` is ``I``.
* ``newton_quadratic`` -- the quadratic model's gradient vanishes at ``w0 - H^{-1} g``, which is
  its global minimiser for ``H = L L^T``; the damped step ``-(H + eta I)^{-1} g`` is the
  stationary point of the model plus the proximity term ``(eta/2)||w - w0||^2``.

All at general dimension (tier A): matrix algebra from its axioms, gradients entry-wise.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import (Algebra, Chain, Control, Derivation, Entrywise, Explicit, Given,
                                Lemma, Link, Sizes)
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import At, Grad, Hess, Scalar

__all__ = ["DERIVATIONS"]

d = sp.Symbol("d", integer=True, positive=True)
eta = sp.Symbol("eta", positive=True)
alpha = sp.Symbol("alpha", positive=True)
nu = sp.Symbol("nu", nonnegative=True)
I = sp.Identity(d)


def _ms(name, rows, cols=1):
    return sp.MatrixSymbol(name, rows, cols)


g, H, L = _ms("g", d), _ms("H", d, d), _ms("L", d, d)
u, z = _ms("u", d), _ms("z", d)
Z = sp.ZeroMatrix(d, 1)

_REF = tk.REF_GROSSE_2022
_TESTS = "tests/updates/test_dense_updates.py::"
_TESTS_DP = "tests/updates/test_damping_preconditioning.py::"


# --------------------------------------------------------------------------- damped spectrum

Q, D, q = _ms("Q", d, d), _ms("D", d, d), _ms("q", d)
_ORTH = sp.Eq(Q.I, Q.T, evaluate=False)
_EIGEN = sp.Eq(H * q, nu * q, evaluate=False)
_SPEC_L = sp.Inverse(Q * D * Q.T + eta * I)
_SPEC_R = sp.MatMul(Q, sp.Inverse(D + eta * I), Q.T)
_SHIFT_L = sp.MatMul(H + eta * I, q)
_SHIFT_R = sp.MatMul(nu + eta, q)
_EIG_L = sp.MatMul(sp.Inverse(H + eta * I), q)
_EIG_R = sp.MatMul(1 / (nu + eta), q)
_HALF = sp.Rational(1, 2)


def _with_eigenvector(sizes):
    """``H`` upper triangular with ``H e_1 = nu e_1``: an exact instance of the eigenpair."""
    n = sizes[d]
    h = sp.Matrix(n, n, lambda i, j: nu if i == j == 0 else
                  (sp.Symbol(f"h_{i + 1}{j + 1}", real=True) if i <= j else 0))
    return {H: h, q: sp.Matrix([1] + [0] * (n - 1))}


_AT_EIGEN = Explicit(Sizes({d: (2,)}), values=_with_eigenvector,
                     describe=r"$H$ upper triangular with $H_{11} = \nu$ and $q = e_1$, so $Hq = \nu q$")

DAMPED_SPECTRUM = Derivation(
    name="damping_preconditioning.damped_spectrum",
    title="The damped inverse (H + ηI)⁻¹ has the eigenvectors of H and eigenvalues (ν + η)⁻¹",
    conclusion=(sp.Eq(_SPEC_L, _SPEC_R, evaluate=False),
                sp.Eq(_SHIFT_L, _SHIFT_R, evaluate=False),
                sp.Eq(_EIG_L, _EIG_R, evaluate=False),
                sp.Ge(1 / eta, 1 / (nu + eta), evaluate=False),
                sp.Ge(1 / (nu + eta), 0, evaluate=False)),
    hypotheses=[sp.Q.orthogonal(Q), _ORTH, sp.Q.diagonal(D), _EIGEN],
    proof=lambda: [
        Chain(_SPEC_L, [
            Link(sp.Inverse(sp.MatAdd(sp.MatMul(Q, D, Q.I), eta * I)), Given(_ORTH),
                 why="Qᵀ = Q⁻¹"),
            Link(sp.Inverse(sp.MatMul(Q, D + eta * I, Q.I)), Algebra(),
                 why="ηI = Q(ηI)Q⁻¹: the damping is diagonal in every orthonormal basis"),
            Link(sp.MatMul(Q, sp.Inverse(D + eta * I), Q.I), tk.inverse_of_product(Q, D + eta * I, Q.I),
                 why="inverse of a product"),
            Link(_SPEC_R, Given(_ORTH), label="spectral", why="Q⁻¹ = Qᵀ"),
        ]),
        Chain(_SHIFT_L, [
            Link(sp.MatAdd(H * q, eta * q), Algebra(), why="distributivity"),
            Link(sp.MatAdd(nu * q, eta * q), Given(_EIGEN), why="Hq = νq"),
            Link(_SHIFT_R, Algebra(), label="shifted", why="the damping shifts the eigenvalue by η"),
        ], part=1),
        Chain(_EIG_L, [
            Link(sp.MatMul(1 / (nu + eta), sp.Inverse(H + eta * I), _SHIFT_R), Algebra(),
                 why="multiply and divide by ν + η"),
            Link(sp.MatMul(1 / (nu + eta), sp.Inverse(H + eta * I), _SHIFT_L),
                 Lemma(DAMPED_SPECTRUM, part=1), why="(H + ηI)q = (ν + η)q, read right to left"),
            Link(_EIG_R, Algebra(), label="eigenvalue", why="(H + ηI)⁻¹(H + ηI) = I"),
        ], part=2),
        Chain(1 / eta, [
            Link(1 / (nu + eta) + nu / (eta * (nu + eta)), Algebra(), why="common denominator"),
            Link(1 / (nu + eta), Algebra(), rel=">=", why="ν ≥ 0, η > 0"),
        ], part=3),
        Chain(1 / (nu + eta), [Link(sp.Integer(0), Algebra(), rel=">=", why="ν + η > 0")], part=4),
    ],
    tier="A",
    scope="general dimension d: the spectral form and the eigenpair by matrix algebra, the bound "
          "on the eigenvalue for every ν ≥ 0, η > 0",
    controls=[
        Control("eigenvectors_as_rows", target="spectral",
                replace=(_SPEC_R, sp.MatMul(Q.T, sp.Inverse(D + eta * I), Q)), at=_AT_EIGEN,
                why="the eigenvectors taken as the rows of Q instead of its columns: "
                    "Qᵀ(D + ηI)⁻¹Q"),
        Control("damping_added_after_inversion", target="eigenvalue",
                replace=(_EIG_R, sp.MatMul(1 / nu + eta, q)), at=_AT_EIGEN,
                why="the damping added to the eigenvalues of the inverse, (H⁻¹ + ηI), instead of "
                    "to those of H"),
    ],
    assumptions=[r"$H = QDQ^\top$ with $Q$ orthogonal and $D = \mathrm{diag}(\nu_1, \dots, "
                 r"\nu_d)$, so $(D + \eta I)^{-1} = \mathrm{diag}\big((\nu_j + \eta)^{-1}\big)$; "
                 r"$Hq = \nu q$ an eigenpair", r"$H$ positive semidefinite ($\nu \ge 0$), "
                 r"$\eta > 0$"],
    axioms={"inverse of a product": tk.STRUCTURAL_AXIOMS["inverse of a product"]},
    references=[_REF + " ('Damping': the damped curvature has eigenvalues ν_j + η)",
                tk.REF_MARTENS_2020 + ", §10"],
    numeric=["fisherlab.updates.precondition"],
    tested_by=[_TESTS + "test_precondition_eigen_structure",
               _TESTS_DP + "test_damped_inverse_has_the_eigenvectors_and_shifted_eigenvalues"],
)


# --------------------------------------------------------------------------- descent direction

Delta = _ms(r"\Delta w", d)
_P = sp.MatMul(L, L.T)
_GRAM = Scalar(sp.MatMul(sp.Transpose(L.T * g), L.T * g))

DESCENT_DIRECTION = Derivation(
    name="damping_preconditioning.descent_direction",
    title="A positive definite preconditioner gives a descent direction",
    conclusion=(sp.Eq(Scalar(g.T * Delta), -Scalar(g.T * _P * g), evaluate=False),
                sp.Ge(Scalar(g.T * _P * g), 0, evaluate=False),
                sp.Eq(g, sp.MatMul(sp.Inverse(L.T), L.T, g), evaluate=False)),
    definitions={Delta: -_P * g},
    hypotheses=[sp.Q.invertible(L)],
    proof=lambda: [
        Chain(Scalar(g.T * Delta), [Link(-Scalar(g.T * _P * g), Algebra(), label="first_order",
                                         why="the preconditioned step Δw = −LLᵀg")]),
        Chain(Scalar(g.T * _P * g), [
            Link(_GRAM, Algebra(), label="gram_form", why="gᵀLLᵀg = (Lᵀg)ᵀ(Lᵀg)"),
            Link(sp.Integer(0), Algebra(), rel=">=", why="a sum of squares of the entries of Lᵀg"),
        ], part=1),
        Chain(g, [Link(sp.MatMul(sp.Inverse(L.T), L.T, g), Algebra(),
                       why="L invertible: Lᵀg = 0 only for g = 0, so the decrease is strict "
                           "away from stationary points")], part=2),
    ],
    tier="A",
    scope="general dimension d: matrix algebra and a sum of squares",
    controls=[
        Control("indefinite_preconditioner", target="conclusion:2", replace=(_P, H),
                hypotheses=[sp.Q.symmetric(H)],
                why="a merely symmetric preconditioner (Newton's method with an indefinite "
                    "Hessian): gᵀHg can be negative and −Hg an ascent direction"),
        Control("gram_of_wrong_vector", target="gram_form",
                replace=(_GRAM, Scalar(sp.MatMul(sp.Transpose(L * g), L * g))),
                why="the Gram form taken on the wrong side: ‖Lg‖² instead of ‖Lᵀg‖²"),
    ],
    assumptions=[r"$g = \nabla J(w)$; the step $\Delta w = -Pg$ with $P = LL^\top$, $L$ "
                 r"invertible (every positive definite $P$ has such a factor, e.g. Cholesky); "
                 r"to first order $J(w + \epsilon\Delta w) = J(w) + \epsilon g^\top\Delta w + "
                 r"o(\epsilon)$"],
    references=[_REF + " ('Preconditioning': a positive definite preconditioner gives a descent "
                "direction)", tk.REF_JOHNSON_2017 + ", §5 (an indefinite Hessian)"],
    numeric=["fisherlab.updates.natural_gradient", "fisherlab.updates.gauss_newton"],
    tested_by=[_TESTS_DP + "test_psd_preconditioned_steps_are_descent_directions"],
)


# --------------------------------------------------------------------------- reparameterisation

R, C, b = _ms("R", d, d), _ms("C", d, d), _ms("b", d)
w, wt = _ms("w", d), _ms(r"\tilde w", d)
gt, Ht = _ms(r"\tilde g", d), _ms(r"\tilde H", d, d)


def _taylor_at(M):
    r"""``T(M u)`` for ``T(z) = g^T z + z^T H z / 2``: the Taylor polynomial of ``J`` at ``w``
    composed with ``z = M u``, that of ``J(R(w~ + u) + b) = J(w + R u)``."""
    return Scalar(At(g.T * z + sp.MatMul(_HALF, z.T, H, z), z, M * u))


_RP_STEP = sp.MatAdd(sp.MatMul(R, sp.MatAdd(wt, sp.MatMul(-alpha, gt))), b)
_LT_I = sp.Inverse(L.T)

REPARAMETERIZATION = Derivation(
    name="damping_preconditioning.reparameterization",
    title="Preconditioning by C⁻¹ is gradient descent after the reparameterisation "
          "w = Rw̃ + b with RRᵀ = C⁻¹",
    conclusion=(sp.Eq(gt, R.T * g, evaluate=False),
                sp.Eq(Ht, R.T * H * R, evaluate=False),
                sp.Eq(_RP_STEP, sp.MatAdd(w, sp.MatMul(-alpha, C.I, g)), evaluate=False),
                sp.Eq(sp.MatMul(_LT_I, _LT_I.T), sp.Inverse(L * L.T), evaluate=False),
                sp.Eq(sp.MatMul(R.T, C, R), I, evaluate=False)),
    definitions={gt: At(Grad(_taylor_at(R), u), u, Z), Ht: At(Hess(_taylor_at(R), u), u, Z),
                 w: R * wt + b, C: sp.Inverse(R * R.T)},
    hypotheses=[sp.Q.invertible(R), sp.Q.invertible(L), sp.Q.symmetric(H)],
    proof=lambda: [
        Chain(gt, [Link(R.T * g, Entrywise(), label="gradient",
                        why="∂/∂u_k of gᵀRu + ½uᵀRᵀHRu at u = 0 is Σ_i R_ik g_i")]),
        Chain(Ht, [Link(R.T * H * R, Entrywise(), label="hessian",
                        why="∂²/∂u_k∂u_l of ½uᵀRᵀHRu (H symmetric)")], part=1),
        Chain(_RP_STEP, [
            Link(sp.MatAdd(sp.MatMul(R, sp.MatAdd(wt, sp.MatMul(-alpha, R.T, g))), b),
                 Lemma(REPARAMETERIZATION, part=0),
                 why="g̃ = Rᵀg"),
            Link(sp.MatAdd(w, sp.MatMul(-alpha, R, R.T, g)), Algebra(), label="preconditioned",
                 why="distributivity; w = Rw̃ + b"),
            Link(sp.MatAdd(w, sp.MatMul(-alpha, C.I, g)), Algebra(), why="C⁻¹ = RRᵀ"),
        ], part=2),
        Chain(sp.MatMul(_LT_I, _LT_I.T), [
            Link(sp.MatMul(_LT_I, L.I), Algebra(), why="(L⁻ᵀ)ᵀ = L⁻¹"),
            Link(sp.Inverse(L * L.T), Algebra(), label="cholesky", why="(LLᵀ)⁻¹ = L⁻ᵀL⁻¹"),
        ], part=3),
        Chain(sp.MatMul(R.T, C, R), [
            Link(sp.MatMul(R.T, sp.Inverse(R * R.T), R), Algebra(), why="C = (RRᵀ)⁻¹"),
            Link(I, Algebra(), label="newton_identity",
                 why="Rᵀ R⁻ᵀ R⁻¹ R = I: with C = H (Newton) the Hessian in w̃, RᵀHR, is I"),
        ], part=4),
    ],
    tier="A",
    scope="general dimension d: gradient and Hessian entry-wise on the Taylor polynomial, the "
          "step and the factorisation by matrix algebra",
    controls=[
        Control("gradient_as_a_vector", target="conclusion:1", replace=(R.T * g, R.I * g),
                why="the gradient transformed like a displacement, R⁻¹g, instead of Rᵀg"),
        Control("preconditioner_factors_swapped", target="preconditioned",
                replace=(sp.MatMul(R, R.T), sp.MatMul(R.T, R)),
                why="the preconditioner taken as RᵀR instead of RRᵀ"),
        Control("transposed_factor", target="conclusion:4", replace=(_LT_I, L.I),
                why="R = L⁻¹ instead of L⁻ᵀ: L⁻¹L⁻ᵀ is not (LLᵀ)⁻¹"),
    ],
    assumptions=[r"$w = R\tilde w + b$ with $R$ invertible and $\tilde J(\tilde w) = J(R\tilde w + b)$; "
                 r"$g, H$ the gradient and Hessian of $J$ at $w$, $\tilde g, \tilde H$ those of "
                 r"$\tilde J$ at $\tilde w$; the preconditioner $C^{-1} = RR^\top$",
                 r"part 4: one such factor for $C = LL^\top$ (Cholesky) is $R = L^{-\top}$"],
    axioms={"Taylor coefficients": r"the gradient and Hessian of $J$ at $w$ are those of its "
                                   r"second-order Taylor polynomial $T(z) = J(w) + g^\top z + "
                                   r"\tfrac12 z^\top Hz$, and $\tilde J(\tilde w + u) = J(w + Ru)$ "
                                   r"has the Taylor polynomial $T(Ru)$"},
    references=[_REF + " ('Preconditioning': preconditioned gradient descent is gradient descent "
                "in transformed coordinates)"],
    numeric=["fisherlab.updates.precondition"],
    tested_by=[_TESTS_DP + "test_precondition_is_gradient_descent_after_reparameterisation"],
)


# --------------------------------------------------------------------------- Newton's quadratic model

w0, wstar = _ms("w_0", d), _ms("w_*", d)
dstar, deta = _ms(r"\delta_*", d), _ms(r"\delta_{\eta}", d)
J0 = sp.Symbol("J_0", real=True)
Jq, Jd = sp.Symbol(r"J_{\rm quad}"), sp.Symbol(r"J_{\eta}")
Hc = sp.MatMul(L, L.T)


def _model(x):
    r"""``J_quad(x) = J_0 + g^T (x - w0) + (x - w0)^T H (x - w0) / 2`` with ``H = L L^T``."""
    e = x - w0
    return J0 + Scalar(g.T * e) + _HALF * Scalar(sp.MatMul(e.T, Hc, e))


_GRAD_Q = g + Hc * (w - w0)
_GRAD_D = g + (Hc + eta * I) * (w - w0)
_STAT_Q = sp.MatAdd(g, sp.MatMul(Hc, dstar))
_STAT_D = sp.MatAdd(g, sp.MatMul(Hc + eta * I, deta))
_GAP = _model(wstar + u) - _model(wstar)
_GAP_GRAM = _HALF * Scalar(sp.MatMul(sp.Transpose(L.T * u), L.T * u))


def _newton_proof():
    return [
        Chain(Grad(Jq, w), [Link(_GRAD_Q, Entrywise(), label="gradient",
                                 why="∂/∂w_k of gᵀ(w − w₀) + ½(w − w₀)ᵀH(w − w₀), H symmetric")]),
        Chain(_STAT_Q, [
            Link(sp.MatAdd(g, sp.MatMul(Hc, sp.MatMul(-1, sp.Inverse(Hc), g))), Algebra(),
                 why="the Newton step δ* = −H⁻¹g, w = w₀ + δ*"),
            Link(Z, Algebra(), label="stationary", why="HH⁻¹ = I"),
        ], part=1),
        Chain(_GAP, [
            Link(_HALF * Scalar(sp.MatMul(u.T, Hc, u)), Algebra(), label="no_linear_term",
                 why="the linear term gᵀu + (w* − w₀)ᵀHu = gᵀu − gᵀH⁻¹Hu vanishes at w*"),
            Link(_GAP_GRAM, Algebra(), label="gram_form", why="uᵀLLᵀu = (Lᵀu)ᵀ(Lᵀu)"),
            Link(sp.Integer(0), Algebra(), rel=">=",
                 why="a sum of squares: w* is a global minimiser (unique, L invertible)"),
        ], part=2),
        Chain(Grad(Jd, w), [Link(_GRAD_D, Entrywise(), label="damped_gradient",
                                 why="the proximity term (η/2)‖w − w₀‖² contributes η(w − w₀)")],
              part=3),
        Chain(_STAT_D, [
            Link(sp.MatAdd(g, sp.MatMul(Hc + eta * I, sp.MatMul(-1, sp.Inverse(Hc + eta * I), g))),
                 Algebra(), why="the damped step δ_η = −(H + ηI)⁻¹g, w = w₀ + δ_η"),
            Link(Z, Algebra(), label="damped_stationary", why="(H + ηI)(H + ηI)⁻¹ = I"),
        ], part=4),
    ]


NEWTON_QUADRATIC = Derivation(
    name="damping_preconditioning.newton_quadratic",
    title="Newton's step minimises the quadratic model; the damped step adds a proximity term",
    conclusion=(sp.Eq(Grad(Jq, w), _GRAD_Q, evaluate=False),
                sp.Eq(_STAT_Q, Z, evaluate=False),
                sp.Ge(_GAP, 0, evaluate=False),
                sp.Eq(Grad(Jd, w), _GRAD_D, evaluate=False),
                sp.Eq(_STAT_D, Z, evaluate=False)),
    definitions={Jq: _model(w), Jd: _model(w) + eta / 2 * Scalar((w - w0).T * (w - w0)),
                 wstar: w0 + dstar, dstar: -sp.Inverse(Hc) * g, deta: -sp.Inverse(Hc + eta * I) * g},
    hypotheses=[sp.Q.invertible(L)],
    proof=_newton_proof,
    tier="A",
    scope="general dimension d: gradients entry-wise, stationarity and the minimum by matrix "
          "algebra and a sum of squares",
    controls=[
        Control("ascent_sign", target="stationary",
                replace=(sp.MatMul(-1, sp.Inverse(Hc), g), sp.MatMul(sp.Inverse(Hc), g)),
                why="the Newton step with the wrong sign, w₀ + H⁻¹g"),
        Control("proximity_gradient_halved", target="damped_gradient",
                replace=(Hc + eta * I, Hc + eta / 2 * I),
                why="the gradient of (η/2)‖w − w₀‖² taken as (η/2)(w − w₀)"),
        Control("gram_of_wrong_vector", target="gram_form",
                replace=(_GAP_GRAM, _HALF * Scalar(sp.MatMul(sp.Transpose(L * u), L * u))),
                why="the Gram form taken on the wrong side: ‖Lu‖² instead of ‖Lᵀu‖²"),
    ],
    assumptions=[r"the quadratic model $J_{\rm quad}(w) = J_0 + g^\top(w - w_0) + "
                 r"\tfrac12(w - w_0)^\top H(w - w_0)$ of $J$ at $w_0$, $g = \nabla J(w_0)$, "
                 r"$H = LL^\top$ positive definite ($L$ invertible)",
                 r"$J_\eta(w) = J_{\rm quad}(w) + \tfrac\eta2\|w - w_0\|^2$, $\eta > 0$; "
                 r"the Newton step $\delta_* = -H^{-1}g$, $w_* = w_0 + \delta_*$; the damped step "
                 r"$\delta_\eta = -(H + \eta I)^{-1}g$; the gradients at $w = w_0 + \delta$ are "
                 r"$g + H\delta$ and $g + (H + \eta I)\delta$ (parts 1, 4); $J_\eta$ is strictly "
                 r"convex, so its stationary point is its minimiser"],
    references=[_REF + " ('Minimizing quadratic approximations', 'Damping': a Euclidean "
                "proximity term)", tk.REF_MARTENS_2020 + ", §10"],
    numeric=["fisherlab.updates.newton", "fisherlab.updates.precondition"],
    tested_by=["tests/updates/test_dense_updates.py::test_newton_solves_least_squares_in_one_step",
               _TESTS_DP + "test_damped_newton_step_minimises_the_model_with_a_proximity_term"],
)


DERIVATIONS = [DAMPED_SPECTRUM, DESCENT_DIRECTION, REPARAMETERIZATION, NEWTON_QUADRATIC]
