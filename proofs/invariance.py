r"""Invariance of second-order updates to reparameterisation.

Under the affine reparameterisation ``theta = A theta' + b`` (``A`` invertible) a function
``l`` of ``theta`` becomes ``l'(theta') = l(A theta' + b)``. Its gradient and Hessian at
``theta'`` are read off its second-order Taylor polynomial: if ``l(theta + z) = l(theta) +
g^T z + z^T H z / 2 + o(|z|^2)`` then ``l'(theta' + u) = l(theta + A u)`` has the Taylor
polynomial ``T(A u)``, whose gradient and Hessian at ``u = 0`` the checker computes entry by
entry at general dimension: ``g' = A^T g`` and ``H' = A^T H A``. Everything else is matrix
algebra from its axioms and the linearity of expectation (tier A throughout).

* ``natural_gradient`` -- the gradient and the score transform as covectors, the Fisher as
  ``F' = A^T F A``; the natural-gradient step maps exactly; gradient descent in ``theta'`` is,
  in ``theta``, the step preconditioned by ``A A^T``; Tikhonov damping ``lambda I`` in
  ``theta'`` is the damping ``lambda (A A^T)^{-1}`` in ``theta``.
* ``damped_orthogonal`` -- for an orthogonal ``Q`` the two dampings agree: damped natural
  gradient is invariant to rotations (and, by the previous item, only to maps with
  ``A A^T = I``).
* ``newton`` -- ``H' = A^T H A``, the Newton step maps; the GGN transforms the same way.
* ``kfac_layer`` -- K-FAC is invariant to invertible maps of a layer's input activations
  ``abar' = Phi abar`` and pre-activations ``s = Psi s'`` (``W = Psi W' Phi``); factor
  damping is not.
* ``smooth_reparameterization`` -- for a diffeomorphism ``theta = phi(theta')`` with Jacobian
  ``J`` at ``theta'``: ``F' = J^T F J``, the natural-gradient *flow* is invariant, the discrete
  step is invariant when ``phi`` is affine -- and not for a nonlinear ``phi`` with a finite step.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import Algebra, Axiom, Chain, Control, Derivation, Entrywise, Explicit, \
    Given, Lemma, Link, Sizes
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import At, Expect, Grad, Hess, Scalar

__all__ = ["DERIVATIONS"]

d, m, n = sp.symbols("d m n", integer=True, positive=True)
alpha = sp.Symbol("alpha", positive=True)
lam = sp.Symbol("lambda", positive=True)


def _ms(name, rows, cols=1):
    return sp.MatrixSymbol(name, rows, cols)


A = _ms("A", d, d)
Q = _ms("Q", d, d)
I = sp.Identity(d)
b = _ms("b", d)
theta, theta_p = _ms(r"\theta", d), _ms(r"\theta'", d)
z, u = _ms("z", d), _ms("u", d)
Z = sp.ZeroMatrix(d, 1)
g, H = _ms("g", d), _ms("H", d, d)          # gradient and Hessian of the loss at theta
s, K = _ms("s", d), _ms("K", d, d)          # score and Hessian of log p(y | .) at theta


def _taylor(grad, hess, var):
    r"""``grad^T var + var^T hess var / 2``, the second-order Taylor polynomial (a ``1 x 1``
    matrix; the constant term does not affect a derivative)."""
    return grad.T * var + sp.MatMul(sp.Rational(1, 2), var.T, hess, var)


def _pulled_back(grad, hess, M, var=u):
    r"""``T(M u)``: the Taylor polynomial of ``l`` at ``theta`` composed with ``z = M u``, that
    of ``l'(theta' + u) = l(theta + M u)`` (as a scalar, to be differentiated in ``u``)."""
    return Scalar(At(_taylor(grad, hess, z), z, M * var))


def _grad0(f, var=u):
    return At(Grad(f, var), var, sp.ZeroMatrix(var.shape[0], 1))


def _hess0(f, var=u):
    return At(Hess(f, var), var, sp.ZeroMatrix(var.shape[0], 1))


T_AXIOMS = {
    "Taylor coefficients": r"for a $C^2$ function $\ell$, $\ell(\theta + z) = \ell(\theta) + "
                           r"g^\top z + \tfrac12 z^\top H z + o(\|z\|^2)$ with $g = \nabla\ell(\theta)$, "
                           r"$H = \nabla^2\ell(\theta)$; the gradient and Hessian at a point are those "
                           r"of the Taylor polynomial there, and $\ell'(\theta' + u) = \ell(\theta + Au)$ "
                           r"has the Taylor polynomial $T(Au)$ (the remainder stays $o(\|u\|^2)$)",
    **{"linearity of expectation": tk.STRUCTURAL_AXIOMS["linearity of expectation"]},
}

#: A distribution of the score on three points (exact numbers): gives ``E_y`` a meaning in the
#: witnesses of the controls, with an invertible second moment (1/3)[[2, 1], [1, 5]].
_S_POINTS = {sp.Symbol("s_1", real=True): (1, 0, 1), sp.Symbol("s_2", real=True): (0, 2, 1)}
_AT_D2 = Explicit(Sizes({d: (2,)}), operators={"y": tk.sample_average(_S_POINTS)})

_REF_JOHNSON_B = tk.REF_JOHNSON_2017 + ", App. B, eqs. (49)-(52)"
_REF_GROSSE_INV = tk.REF_GROSSE_2022 + " ('Invariance': Newton, Gauss-Newton and the natural " \
                                       "gradient are affine invariant, damping is not)"
_TESTS = "tests/updates/test_invariance.py::"
_TESTS_SMOOTH = "tests/updates/test_reparameterization.py::"


# --------------------------------------------------------------------------- natural gradient

g_p, s_p = _ms("g'", d), _ms("s'", d)
F, F_p = _ms("F", d, d), _ms("F'", d, d)
_NG_DEFS = {
    g_p: _grad0(_pulled_back(g, H, A)),
    s_p: _grad0(_pulled_back(s, K, A)),
    F: Expect(s * s.T, "y"),
    F_p: Expect(s_p * s_p.T, "y"),
}
_NG_STEP_P = sp.MatAdd(theta_p, sp.MatMul(-alpha, sp.Inverse(F_p), g_p))
_NG_PARTS = (
    sp.Eq(g_p, A.T * g, evaluate=False),
    sp.Eq(s_p, A.T * s, evaluate=False),
    sp.Eq(F_p, A.T * F * A, evaluate=False),
    sp.Eq(sp.MatAdd(sp.MatMul(A, _NG_STEP_P), b), sp.MatAdd(A * theta_p, b, -alpha * F.I * g),
          evaluate=False),
    sp.Eq(sp.MatAdd(sp.MatMul(A, sp.MatAdd(theta_p, -alpha * g_p)), b),
          sp.MatAdd(A * theta_p, b, sp.MatMul(-alpha, A, A.T, g)), evaluate=False),
    sp.Eq(sp.MatMul(-alpha, A, sp.Inverse(F_p + lam * I), g_p),
          sp.MatMul(-alpha, sp.Inverse(F + lam * sp.Inverse(A * A.T)), g), evaluate=False),
)


def _ng_proof():
    NG = NATURAL_GRADIENT
    ssT = A.T * s * (A.T * s).T
    M = F + lam * sp.Inverse(A * A.T)
    return [
        Chain(g_p, [Link(A.T * g, Entrywise(), label="gradient",
                         why="∂/∂u_k of gᵀAu + ½uᵀAᵀHAu at u = 0 is Σ_i A_ik g_i")]),
        Chain(s_p, [Link(A.T * s, Entrywise(), label="score",
                         why="the same chain rule for log p(y | ·), label by label")], part=1),
        Chain(F_p, [
            Link(Expect(s_p * s_p.T, "y"), Algebra(), why="the Fisher in θ' is the second moment "
                                                         "of the score s'"),
            Link(Expect(ssT, "y"), Lemma(NG, part=1), why="s' = Aᵀs for every label y"),
            Link(A.T * Expect(s * s.T, "y") * A,
                 tk.expectation_linearity(s * s.T, "y", left=A.T, right=A),
                 why="A does not depend on y"),
            Link(A.T * F * A, Algebra(), label="fisher", why="the Fisher in θ"),
        ], part=2),
        Chain(_NG_PARTS[3].lhs, [
            Link(sp.MatAdd(sp.MatMul(A, sp.MatAdd(theta_p, sp.MatMul(-alpha, sp.Inverse(A.T * F * A),
                                                                       g_p))), b),
                 Lemma(NG, part=2), why="F' = AᵀFA"),
            Link(sp.MatAdd(sp.MatMul(A, sp.MatAdd(theta_p, sp.MatMul(-alpha, sp.Inverse(A.T * F * A),
                                                                       A.T, g))), b),
                 Lemma(NG, part=0), why="g' = Aᵀg"),
            Link(_NG_PARTS[3].rhs, Algebra(), label="step",
                 why="A (AᵀFA)⁻¹ Aᵀ = A A⁻¹ F⁻¹ A⁻ᵀ Aᵀ = F⁻¹"),
        ], part=3),
        Chain(_NG_PARTS[4].lhs, [
            Link(sp.MatAdd(sp.MatMul(A, sp.MatAdd(theta_p, -alpha * A.T * g)), b),
                 Lemma(NG, part=0), why="g' = Aᵀg"),
            Link(_NG_PARTS[4].rhs, Algebra(), label="gradient_step", why="distributivity"),
        ], part=4),
        Chain(_NG_PARTS[5].lhs, [
            Link(sp.MatMul(-alpha, A, sp.Inverse(A.T * F * A + lam * I), g_p),
                 Lemma(NG, part=2), why="F' = AᵀFA"),
            Link(sp.MatMul(-alpha, A, sp.Inverse(A.T * F * A + lam * I), A.T, g),
                 Lemma(NG, part=0), why="g' = Aᵀg"),
            Link(sp.MatMul(-alpha, A, sp.Inverse(sp.MatMul(A.T, M, A)), A.T, g), Algebra(),
                 why="AᵀFA + λI = Aᵀ(F + λ(AAᵀ)⁻¹)A: the damping written in θ"),
            Link(sp.MatMul(-alpha, A, A.I, sp.Inverse(M), sp.Inverse(A.T), A.T, g),
                 tk.inverse_of_product(A.T, M, A), why="inverse of a product of square factors"),
            Link(_NG_PARTS[5].rhs, Algebra(), label="damped_step", why="A A⁻¹ = I, A⁻ᵀAᵀ = I"),
        ], part=5),
    ]


NATURAL_GRADIENT = Derivation(
    name="invariance.natural_gradient",
    title="The natural-gradient step is invariant to affine reparameterisation; gradient "
          "descent and Tikhonov damping are not",
    conclusion=_NG_PARTS,
    definitions=_NG_DEFS,
    hypotheses=[sp.Q.invertible(A), sp.Q.symmetric(H), sp.Q.symmetric(K)],
    proof=_ng_proof,
    tier="A",
    scope="general dimension d: the chain rule entry-wise on Taylor polynomials, the Fisher by "
          "linearity of expectation, the steps by matrix algebra",
    controls=[
        Control("score_without_transpose", target="conclusion:2", replace=(A.T * s, A * s),
                why="the score pulled back with the Jacobian A instead of its transpose"),
        Control("fisher_wrong_side", target="conclusion:3", replace=(A.T * F * A, A * F * A.T),
                at=_AT_D2,
                why="F' = AFAᵀ: the metric transformed on the wrong side (witness: y takes three "
                    "values with equal probability)"),
        Control("gradient_descent_invariant", target="conclusion:5", replace=(A * A.T, I),
                why="gradient descent's step claimed invariant: the step in θ' mapped to θ "
                    "claimed to be the plain gradient step −αg"),
        Control("tikhonov_damping_invariant", target="conclusion:6",
                replace=(lam * sp.Inverse(A * A.T), lam * I), at=_AT_D2,
                why="Tikhonov damping claimed invariant: λI in θ' claimed to be λI in θ"),
    ],
    assumptions=[r"$\theta = A\theta' + b$ with $A$ invertible; $\ell'(\theta') = \ell(A\theta' + b)$ "
                 r"and $\log p'(y\mid\theta') = \log p(y\mid A\theta' + b)$ (the same model)",
                 r"$g, H$: gradient and Hessian of the loss at $\theta$; $s, K$: those of "
                 r"$\log p(y\mid\cdot)$ at $\theta$ for the label $y$; $g', s'$ the gradients in "
                 r"$\theta'$ at $\theta' = A^{-1}(\theta - b)$",
                 r"$F$ (hence $F'$) invertible for the undamped step; $\alpha, \lambda > 0$"],
    axioms=T_AXIOMS | {"inverse of a product": tk.STRUCTURAL_AXIOMS["inverse of a product"]},
    references=[_REF_JOHNSON_B, _REF_GROSSE_INV, tk.REF_AMARI_1998, tk.REF_MARTENS_2020 + ", §12"],
    numeric=["fisherlab.updates.natural_gradient", "fisherlab.fisher", "fisherlab.gradient"],
    tested_by=[_TESTS + "test_natural_gradient_and_newton_are_invariant",
               _TESTS + "test_gradient_descent_and_damped_natural_gradient_are_not",
               _TESTS + "test_fisher_transforms_as_congruence"],
)



# --------------------------------------------------------------------------- damped, orthogonal

_Q_DEFS = {
    g_p: _grad0(_pulled_back(g, H, Q)),
    s_p: _grad0(_pulled_back(s, K, Q)),
    F: Expect(s * s.T, "y"),
    F_p: Expect(s_p * s_p.T, "y"),
}
_ORTH = sp.Eq(Q.I, Q.T, evaluate=False)
_DO_L = sp.MatMul(-alpha, Q, sp.Inverse(F_p + lam * I), g_p)
_DO_M = sp.MatMul(-alpha, sp.Inverse(F + lam * sp.Inverse(Q * Q.T)), g)
_DO_R = sp.MatMul(-alpha, sp.Inverse(F + lam * I), g)

DAMPED_ORTHOGONAL = Derivation(
    name="invariance.damped_orthogonal",
    title="Damped natural gradient is invariant to orthogonal reparameterisations",
    conclusion=sp.Eq(_DO_L, _DO_R, evaluate=False),
    definitions=_Q_DEFS,
    hypotheses=[sp.Q.orthogonal(Q), _ORTH, sp.Q.symmetric(H), sp.Q.symmetric(K)],
    proof=lambda: Chain(_DO_L, [
        Link(_DO_M, Lemma(NATURAL_GRADIENT, {A: Q}, part=5),
             why="the damped step in θ' is, in θ, the step damped by λ(QQᵀ)⁻¹ "
                 "(invariance.natural_gradient, part 6, with A = Q)"),
        Link(_DO_R, Given(_ORTH), label="orthogonal", why="Q⁻¹ = Qᵀ, so (QQᵀ)⁻¹ = I"),
    ]),
    tier="A",
    scope="general dimension d: the damped image of invariance.natural_gradient with A = Q, "
          "and QQᵀ = I",
    controls=[
        Control("general_invertible_map", target="orthogonal", replace=(Q, A), at=_AT_D2,
                why="damped natural gradient claimed invariant under every invertible A: "
                    "λ(AAᵀ)⁻¹ = λI only when AAᵀ = I"),
    ],
    assumptions=[r"$\theta = Q\theta' + b$ with $Q$ orthogonal; $g', s', F'$ as in "
                 r"`invariance.natural_gradient` with $A = Q$", r"$\alpha, \lambda > 0$"],
    axioms=T_AXIOMS,
    references=[_REF_GROSSE_INV + "; 'Damping': the Euclidean proximity term depends on the "
                                  "coordinate system", _REF_JOHNSON_B],
    numeric=["fisherlab.updates.natural_gradient"],
    tested_by=[_TESTS + "test_damped_natural_gradient_invariant_under_orthogonal_maps",
               _TESTS + "test_gradient_descent_and_damped_natural_gradient_are_not"],
)


# --------------------------------------------------------------------------- Newton, Gauss-Newton

k = sp.Symbol("k", integer=True, positive=True)
H_p, G, G_p = _ms("H'", d, d), _ms("G", d, d), _ms("G'", d, d)
J, Lam = _ms("J", k, d), _ms(r"\Lambda", k, k)
e = _ms("e", k)


def _output_loss(M):
    r"""``q(J M u)`` for the output-space quadratic ``q(e) = e^T Lambda e / 2``: the loss of the
    model linearised at theta, along ``z = M u`` (``M = I``: in theta)."""
    return Scalar(At(sp.MatMul(sp.Rational(1, 2), e.T, Lam, e), e, J * M * u))


_NEWTON_DEFS = {
    g_p: _grad0(_pulled_back(g, H, A)),
    H_p: _hess0(_pulled_back(g, H, A)),
    G: _hess0(_output_loss(I)),
    G_p: _hess0(_output_loss(A)),
}
_NEWTON_STEP = sp.MatAdd(theta_p, sp.MatMul(-alpha, sp.Inverse(H_p), g_p))
_NEWTON_PARTS = (
    sp.Eq(g_p, A.T * g, evaluate=False),
    sp.Eq(H_p, A.T * H * A, evaluate=False),
    sp.Eq(sp.MatAdd(sp.MatMul(A, _NEWTON_STEP), b), sp.MatAdd(A * theta_p, b, -alpha * H.I * g),
          evaluate=False),
    sp.Eq(G, J.T * Lam * J, evaluate=False),
    sp.Eq(G_p, A.T * G * A, evaluate=False),
)


def _newton_proof():
    N = NEWTON
    return [
        Chain(g_p, [Link(A.T * g, Entrywise(), label="gradient",
                         why="∂/∂u_k of gᵀAu + ½uᵀAᵀHAu at u = 0")]),
        Chain(H_p, [Link(A.T * H * A, Entrywise(), label="hessian",
                         why="∂²/∂u_k∂u_l of ½uᵀAᵀHAu is (AᵀHA)_kl (H symmetric)")], part=1),
        Chain(_NEWTON_PARTS[2].lhs, [
            Link(sp.MatAdd(sp.MatMul(A, sp.MatAdd(theta_p, sp.MatMul(-alpha, sp.Inverse(A.T * H * A),
                                                                       g_p))), b),
                 Lemma(N, part=1), why="H' = AᵀHA"),
            Link(sp.MatAdd(sp.MatMul(A, sp.MatAdd(theta_p, sp.MatMul(-alpha, sp.Inverse(A.T * H * A),
                                                                       A.T, g))), b),
                 Lemma(N, part=0), why="g' = Aᵀg"),
            Link(_NEWTON_PARTS[2].rhs, Algebra(), label="step", why="A (AᵀHA)⁻¹ Aᵀ = H⁻¹"),
        ], part=2),
        Chain(G, [Link(J.T * Lam * J, Entrywise(), label="ggn",
                       why="the Hessian of ½(Jz)ᵀΛ(Jz), Λ symmetric")], part=3),
        Chain(G_p, [
            Link(A.T * J.T * Lam * J * A, Entrywise(), label="ggn_reparameterised",
                 why="the model's Jacobian in θ' is JA (chain rule): the Hessian of ½(JAu)ᵀΛ(JAu)"),
            Link(A.T * G * A, Lemma(N, part=3), why="G = JᵀΛJ"),
        ], part=4),
    ]


NEWTON = Derivation(
    name="invariance.newton",
    title="Newton and Gauss-Newton steps are invariant to affine reparameterisation",
    conclusion=_NEWTON_PARTS,
    definitions=_NEWTON_DEFS,
    hypotheses=[sp.Q.invertible(A), sp.Q.symmetric(H), sp.Q.symmetric(Lam)],
    proof=_newton_proof,
    tier="A",
    scope="general dimensions d (parameters) and k (outputs): gradients and Hessians entry-wise "
          "on Taylor polynomials, the step by matrix algebra",
    controls=[
        Control("hessian_wrong_side", target="conclusion:2", replace=(A.T * H * A, A * H * A.T),
                why="H' = AHAᵀ: the Hessian transformed on the wrong side"),
        Control("gradient_as_a_vector", target="conclusion:1", replace=(A.T * g, A.I * g),
                why="the gradient transformed like a displacement, g' = A⁻¹g, instead of as a "
                    "covector"),
        Control("ggn_jacobian_unchanged", target="ggn_reparameterised",
                replace=(A.T * J.T * Lam * J * A, J.T * Lam * J),
                why="the GGN in θ' computed with the old Jacobian J instead of JA"),
    ],
    assumptions=[r"$\theta = A\theta' + b$ with $A$ invertible; $g, H$ the gradient and Hessian "
                 r"of the loss at $\theta$, $g', H'$ at $\theta' = A^{-1}(\theta - b)$",
                 r"GGN: $J$ the model's Jacobian at $\theta$ ($k$ outputs), $\Lambda$ the "
                 r"output-space Hessian of the loss; the GGN is the Hessian of the loss of the "
                 r"model linearised at $\theta$",
                 r"$H$ (hence $H'$) invertible; the step argument holds for every curvature "
                 r"matrix that transforms as $A^\top H A$, the GGN included (part 5)"],
    axioms=T_AXIOMS,
    references=[_REF_GROSSE_INV, _REF_JOHNSON_B, tk.REF_MARTENS_2020 + ", §12"],
    numeric=["fisherlab.updates.newton", "fisherlab.updates.gauss_newton", "fisherlab.hessian",
             "fisherlab.ggn"],
    tested_by=[_TESTS + "test_natural_gradient_and_newton_are_invariant"],
)


# --------------------------------------------------------------------------- K-FAC layer

Phi, Psi = _ms(r"\Phi", n, n), _ms(r"\Psi", m, m)
a, a_p = _ms(r"\bar a", n), _ms(r"\bar a'", n)
gs, Hs, gs_p = _ms("g", m), _ms("H", m, m), _ms("g'", m)
zs, us = _ms("z", m), _ms("u", m)
Ak, Ak_p, Gk, Gk_p = _ms("A", n, n), _ms("A'", n, n), _ms("G", m, m), _ms("G'", m, m)
Dk, Dk_p = _ms("D", m, n), _ms("D'", m, n)
gam = sp.Symbol("gamma", positive=True)
In, Im = sp.Identity(n), sp.Identity(m)

_KFAC_DEFS = {
    a_p: Phi * a,
    gs_p: _grad0(Scalar(At(_taylor(gs, Hs, zs), zs, Psi * us)), us),
    Ak: Expect(a * a.T, "x"), Ak_p: Expect(a_p * a_p.T, "x"),
    Gk: Expect(gs * gs.T, "x"), Gk_p: Expect(gs_p * gs_p.T, "x"),
    Dk: Expect(gs * a.T, "x"), Dk_p: Expect(gs_p * a_p.T, "x"),
}
_NA = Ak + gam * sp.Inverse(Phi.T * Phi)
_NG = Gk + gam * sp.Inverse(Psi * Psi.T)
_KFAC_PARTS = (
    sp.Eq(gs_p, Psi.T * gs, evaluate=False),
    sp.Eq(Ak_p, Phi * Ak * Phi.T, evaluate=False),
    sp.Eq(Gk_p, Psi.T * Gk * Psi, evaluate=False),
    sp.Eq(Dk_p, Psi.T * Dk * Phi.T, evaluate=False),
    sp.Eq(sp.MatMul(-alpha, Psi, sp.Inverse(Gk_p), Dk_p, sp.Inverse(Ak_p), Phi),
          sp.MatMul(-alpha, Gk.I, Dk, Ak.I), evaluate=False),
    sp.Eq(sp.MatMul(-alpha, Psi, sp.Inverse(Gk_p + gam * Im), Dk_p, sp.Inverse(Ak_p + gam * In), Phi),
          sp.MatMul(-alpha, sp.Inverse(_NG), Dk, sp.Inverse(_NA)), evaluate=False),
)

#: A distribution of (abar, g) on three points: invertible second moments of both.
_KFAC_POINTS = {sp.Symbol(r"\bar a_1", real=True): (1, 0, 1), sp.Symbol(r"\bar a_2", real=True): (0, 2, 1),
                sp.Symbol("g_1", real=True): (0, 1, 1), sp.Symbol("g_2", real=True): (1, 0, 1)}
_KFAC_AT = Explicit(Sizes({n: (2,), m: (2,)}), operators={"x": tk.sample_average(_KFAC_POINTS)})


def _kfac_proof():
    KL = KFAC_LAYER
    gsT = Psi.T * gs
    mid = [Psi.T * Gk * Psi, Psi.T * Dk * Phi.T, Phi * Ak * Phi.T]
    return [
        Chain(gs_p, [Link(Psi.T * gs, Entrywise(), label="backpropagated",
                          why="ℓ'(s' + u) = ℓ(s + Ψu): the chain rule on the Taylor polynomial")]),
        Chain(Ak_p, [
            Link(Expect(Phi * a * a.T * Phi.T, "x"), Algebra(), why="ā' = Φā"),
            Link(Phi * Expect(a * a.T, "x") * Phi.T,
                 tk.expectation_linearity(a * a.T, "x", left=Phi, right=Phi.T),
                 why="Φ does not depend on the example"),
            Link(Phi * Ak * Phi.T, Algebra(), label="activation_factor", why="A = E[āāᵀ]"),
        ], part=1),
        Chain(Gk_p, [
            Link(Expect(gsT * gsT.T, "x"), Lemma(KL, part=0), why="g' = Ψᵀg, example by example"),
            Link(Psi.T * Expect(gs * gs.T, "x") * Psi,
                 tk.expectation_linearity(gs * gs.T, "x", left=Psi.T, right=Psi),
                 why="Ψ does not depend on the example"),
            Link(Psi.T * Gk * Psi, Algebra(), label="gradient_factor", why="G = E[ggᵀ]"),
        ], part=2),
        Chain(Dk_p, [
            Link(Expect(gsT * (Phi * a).T, "x"), Lemma(KL, part=0), why="g' = Ψᵀg and ā' = Φā"),
            Link(Psi.T * Expect(gs * a.T, "x") * Phi.T,
                 tk.expectation_linearity(gs * a.T, "x", left=Psi.T, right=Phi.T),
                 why="linearity of expectation"),
            Link(Psi.T * Dk * Phi.T, Algebra(), why="D = E[g āᵀ], the gradient in W"),
        ], part=3),
        Chain(_KFAC_PARTS[4].lhs, [
            Link(sp.MatMul(-alpha, Psi, sp.Inverse(mid[0]), Dk_p, sp.Inverse(Ak_p), Phi),
                 Lemma(KL, part=2), why="G' = ΨᵀGΨ"),
            Link(sp.MatMul(-alpha, Psi, sp.Inverse(mid[0]), mid[1], sp.Inverse(Ak_p), Phi),
                 Lemma(KL, part=3), why="D' = ΨᵀDΦᵀ"),
            Link(sp.MatMul(-alpha, Psi, sp.Inverse(mid[0]), mid[1], sp.Inverse(mid[2]), Phi),
                 Lemma(KL, part=1), why="A' = ΦAΦᵀ"),
            Link(_KFAC_PARTS[4].rhs, Algebra(), label="kfac_step",
                 why="Ψ(ΨᵀGΨ)⁻¹Ψᵀ = G⁻¹ and Φᵀ(ΦAΦᵀ)⁻¹Φ = A⁻¹"),
        ], part=4),
        Chain(_KFAC_PARTS[5].lhs, [
            Link(sp.MatMul(-alpha, Psi, sp.Inverse(mid[0] + gam * Im), Dk_p, sp.Inverse(Ak_p + gam * In), Phi),
                 Lemma(KL, part=2), why="G' = ΨᵀGΨ"),
            Link(sp.MatMul(-alpha, Psi, sp.Inverse(mid[0] + gam * Im), mid[1], sp.Inverse(Ak_p + gam * In), Phi),
                 Lemma(KL, part=3), why="D' = ΨᵀDΦᵀ"),
            Link(sp.MatMul(-alpha, Psi, sp.Inverse(mid[0] + gam * Im), mid[1], sp.Inverse(mid[2] + gam * In), Phi),
                 Lemma(KL, part=1), why="A' = ΦAΦᵀ"),
            Link(sp.MatMul(-alpha, Psi, sp.Inverse(sp.MatMul(Psi.T, _NG, Psi)), mid[1],
                           sp.Inverse(sp.MatMul(Phi, _NA, Phi.T)), Phi), Algebra(),
                 why="ΨᵀGΨ + γI = Ψᵀ(G + γ(ΨΨᵀ)⁻¹)Ψ and ΦAΦᵀ + γI = Φ(A + γ(ΦᵀΦ)⁻¹)Φᵀ"),
            Link(sp.MatMul(-alpha, Psi, Psi.I, sp.Inverse(_NG), sp.Inverse(Psi.T), mid[1],
                           sp.Inverse(sp.MatMul(Phi, _NA, Phi.T)), Phi),
                 tk.inverse_of_product(Psi.T, _NG, Psi), why="inverse of a product"),
            Link(sp.MatMul(-alpha, Psi, Psi.I, sp.Inverse(_NG), sp.Inverse(Psi.T), mid[1],
                           sp.Inverse(Phi.T), sp.Inverse(_NA), Phi.I, Phi),
                 tk.inverse_of_product(Phi, _NA, Phi.T), why="inverse of a product"),
            Link(_KFAC_PARTS[5].rhs, Algebra(), label="damped_kfac_step", why="the factors cancel"),
        ], part=5),
    ]


KFAC_LAYER = Derivation(
    name="invariance.kfac_layer",
    title="K-FAC is invariant to invertible maps of a layer's activations; factor damping is not",
    conclusion=_KFAC_PARTS,
    definitions=_KFAC_DEFS,
    hypotheses=[sp.Q.invertible(Phi), sp.Q.invertible(Psi), sp.Q.symmetric(Hs)],
    proof=_kfac_proof,
    tier="A",
    scope="general layer sizes (n inputs with the bias entry, m outputs): the backpropagated "
          "gradient entry-wise, the factors by linearity of expectation, the steps by matrix algebra",
    controls=[
        Control("activation_factor_wrong_side", target="conclusion:2",
                replace=(Phi * Ak * Phi.T, Phi.T * Ak * Phi), at=_KFAC_AT,
                why="A' = ΦᵀAΦ: the activation factor transformed on the wrong side"),
        Control("gradient_factor_wrong_side", target="conclusion:3",
                replace=(Psi.T * Gk * Psi, Psi * Gk * Psi.T), at=_KFAC_AT,
                why="G' = ΨGΨᵀ: the backpropagated gradients transformed like the activations"),
        Control("factor_damping_invariant", target="conclusion:6",
                replace=(gam * sp.Inverse(Psi * Psi.T), gam * Im), at=_KFAC_AT,
                why="damping γI of the factor G' claimed to be γI in the old coordinates"),
    ],
    assumptions=[r"a dense layer $s = W\bar a$ ($\bar a$ the input activations with the bias "
                 r"entry); the network reparameterised so that the layer receives "
                 r"$\bar a' = \Phi\bar a$ and its pre-activations satisfy $s = \Psi s'$, i.e. "
                 r"$W = \Psi W'\Phi$ ($\Phi$, $\Psi$ invertible; an affine map $a' = Ma + c$ of "
                 r"the activations is $\Phi = \begin{pmatrix}M & c\\ 0 & 1\end{pmatrix}$)",
                 r"$g = \nabla_s\ell$ per example, $H = \nabla^2_s\ell$; the gradient of a dense "
                 r"layer is $\nabla_W\ell = g\bar a^\top$, so $D = \mathbb E[g\bar a^\top]$ is "
                 r"$\nabla_W L$; $\mathbb E_x$ over the examples (and sampled targets)",
                 r"K-FAC's step $-\alpha G^{-1}\nabla_W L\,A^{-1}$ with $A$, $G$ invertible "
                 r"(undamped); $\alpha, \gamma > 0$"],
    axioms=T_AXIOMS | {"inverse of a product": tk.STRUCTURAL_AXIOMS["inverse of a product"]},
    references=[_REF_JOHNSON_B, tk.REF_MARTENS_GROSSE_2015 + ", §10 (invariance of K-FAC)"],
    numeric=["fisherlab.updates.kfac_update"],
    tested_by=[_TESTS + "test_kfac_invariant_to_affine_input_transform"],
)


# --------------------------------------------------------------------------- smooth reparameterisation

Jphi = _ms(r"J_{\varphi}", d, d)
v = _ms("v", d)
c_ = _ms("c", d)
_SMOOTH_DEFS = {
    g_p: _grad0(_pulled_back(g, H, Jphi)),
    s_p: _grad0(_pulled_back(s, K, Jphi)),
    F: Expect(s * s.T, "y"),
    F_p: Expect(s_p * s_p.T, "y"),
}
_DELTA_P = sp.MatMul(-alpha, sp.Inverse(F_p), g_p)
_MAP = sp.MatAdd(theta, Jphi * v)
_SMOOTH_PARTS = (
    sp.Eq(s_p, Jphi.T * s, evaluate=False),
    sp.Eq(F_p, Jphi.T * F * Jphi, evaluate=False),
    sp.Eq(g_p, Jphi.T * g, evaluate=False),
    sp.Eq(sp.MatMul(Jphi, sp.MatMul(-1, sp.Inverse(F_p), g_p)), sp.MatMul(-1, F.I, g), evaluate=False),
    sp.Eq(At(_MAP, v, _DELTA_P), sp.MatAdd(theta, -alpha * F.I * g), evaluate=False),
)


def _smooth_proof():
    SR = SMOOTH_REPARAMETERIZATION
    JFJ = Jphi.T * F * Jphi
    return [
        Chain(s_p, [Link(Jphi.T * s, Entrywise(), label="score",
                         why="the chain rule: the first-order part of φ(θ' + u) − θ is J_φu")]),
        Chain(F_p, [
            Link(Expect(Jphi.T * s * (Jphi.T * s).T, "y"), Lemma(SR, part=0),
                 why="s' = J_φᵀs for every label"),
            Link(Jphi.T * Expect(s * s.T, "y") * Jphi,
                 tk.expectation_linearity(s * s.T, "y", left=Jphi.T, right=Jphi),
                 why="J_φ does not depend on y"),
            Link(JFJ, Algebra(), label="pullback", why="F = E[ssᵀ]"),
        ], part=1),
        Chain(g_p, [Link(Jphi.T * g, Entrywise(), label="gradient", why="the same chain rule")],
              part=2),
        Chain(_SMOOTH_PARTS[3].lhs, [
            Link(sp.MatMul(Jphi, sp.MatMul(-1, sp.Inverse(JFJ), g_p)), Lemma(SR, part=1),
                 why="F' = J_φᵀFJ_φ"),
            Link(sp.MatMul(Jphi, sp.MatMul(-1, sp.Inverse(JFJ), Jphi.T, g)), Lemma(SR, part=2),
                 why="g' = J_φᵀg"),
            Link(_SMOOTH_PARTS[3].rhs, Algebra(), label="flow",
                 why="J_φ(J_φᵀFJ_φ)⁻¹J_φᵀ = F⁻¹ (J_φ invertible: φ is a diffeomorphism)"),
        ], part=3),
        Chain(_SMOOTH_PARTS[4].lhs, [
            Link(sp.MatAdd(theta, sp.MatMul(Jphi, _DELTA_P)), Algebra(), label="affine_map",
                 why="φ(θ' + v) = θ + J_φv for an affine φ, at v = δ'"),
            Link(sp.MatAdd(theta, sp.MatMul(-alpha, Jphi, sp.Inverse(JFJ), g_p)), Lemma(SR, part=1),
                 why="F' = J_φᵀFJ_φ"),
            Link(sp.MatAdd(theta, sp.MatMul(-alpha, Jphi, sp.Inverse(JFJ), Jphi.T, g)),
                 Lemma(SR, part=2), why="g' = J_φᵀg"),
            Link(_SMOOTH_PARTS[4].rhs, Algebra(), label="step", why="as for the flow"),
        ], part=4),
    ]


SMOOTH_REPARAMETERIZATION = Derivation(
    name="invariance.smooth_reparameterization",
    title="Under a smooth reparameterisation the Fisher is pulled back and the natural-gradient "
          "flow is invariant; the discrete step only for affine maps",
    conclusion=_SMOOTH_PARTS,
    definitions=_SMOOTH_DEFS,
    hypotheses=[sp.Q.invertible(Jphi), sp.Q.symmetric(H), sp.Q.symmetric(K)],
    proof=_smooth_proof,
    tier="A",
    scope="general dimension d: the chain rule entry-wise on Taylor polynomials, the Fisher by "
          "linearity of expectation, the flow and the affine step by matrix algebra",
    controls=[
        Control("jacobian_wrong_side", target="conclusion:2",
                replace=(Jphi.T * F * Jphi, Jphi * F * Jphi.T), at=_AT_D2,
                why="F' = J_φFJ_φᵀ: the Jacobian on the wrong side of the Fisher"),
        Control("score_as_a_vector", target="conclusion:1", replace=(Jphi.T * s, Jphi.I * s),
                why="the score transformed like a velocity, s' = J_φ⁻¹s, instead of as a covector"),
        Control("nonlinear_map_finite_step", target="conclusion:5",
                replace=(_MAP, sp.MatAdd(theta, Jphi * v, c_ * (v.T * v))), at=_AT_D2,
                why="a nonlinear φ, φ(θ' + v) = θ + J_φv + c‖v‖² (the same Jacobian J_φ at θ'), "
                    "and a finite step: φ(θ' + δ') = θ + δ + c‖δ'‖² is not the step in θ"),
    ],
    assumptions=[r"$\theta = \varphi(\theta')$ with $\varphi$ a diffeomorphism, $J_\varphi$ its "
                 r"Jacobian at $\theta'$ (invertible); $\log p'(y\mid\theta') = "
                 r"\log p(y\mid\varphi(\theta'))$, $\ell' = \ell\circ\varphi$",
                 r"$s, K$ and $g, H$: gradients and Hessians at $\theta$ of $\log p(y\mid\cdot)$ "
                 r"and of the loss; $s', g'$ those at $\theta'$",
                 r"part 4: along a curve $\theta(t) = \varphi(\theta'(t))$ the velocities satisfy "
                 r"$\dot\theta = J_\varphi\dot\theta'$ (chain rule), so the flow "
                 r"$\dot\theta' = -F'^{-1}g'$ is carried to $\dot\theta = -F^{-1}g$ at every time",
                 r"part 5: for an affine $\varphi$, $\varphi(\theta' + v) = \theta + J_\varphi v$ "
                 r"exactly; $\delta' = -\alpha F'^{-1}g'$ is the natural-gradient step in $\theta'$"],
    axioms=T_AXIOMS | {"first-order Taylor polynomial of φ":
                       r"$\varphi(\theta' + u) = \theta + J_\varphi u + o(\|u\|)$; the gradient of "
                       r"$\ell\circ\varphi$ at $\theta'$ is that of $T(J_\varphi u)$ at $u = 0$ "
                       r"(the chain rule: the second-order part of $\varphi$ does not reach the "
                       r"gradient)"},
    references=[tk.REF_JOHNSON_2017 + ", App. B (invariance under smooth reparameterisation: the "
                "flow, and the step for affine maps only)", tk.REF_AMARI_1998,
                tk.REF_MARTENS_2020 + ", §12 (invariance of the flow, approximate for finite steps)"],
    numeric=["fisherlab.fisher", "fisherlab.updates.natural_gradient"],
    tested_by=[_TESTS_SMOOTH + "test_fisher_of_a_smooth_reparameterisation_is_pulled_back",
               _TESTS_SMOOTH + "test_natural_gradient_flow_is_invariant",
               _TESTS_SMOOTH + "test_natural_gradient_step_maps_for_affine_maps_only"],
)


DERIVATIONS = [NATURAL_GRADIENT, DAMPED_ORTHOGONAL, NEWTON, KFAC_LAYER, SMOOTH_REPARAMETERIZATION]
