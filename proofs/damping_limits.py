r"""Tikhonov damping interpolates between the natural gradient and gradient descent.

For a symmetric positive definite curvature ``F`` (the Fisher) and damping ``beta > 0``, the
damped step ``(F + beta I)^{-1} g`` acts on each eigendirection ``u`` of ``F`` (``u^T F = nu
u^T``, ``nu > 0``) by the factor ``1/(nu + beta)``:

.. math:: u^\top(F + \beta I)^{-1}g = \frac{u^\top g}{\nu + \beta}
          = \frac{\nu}{\nu + \beta}\,u^\top F^{-1}g = \frac{\beta}{\nu + \beta}\,\frac{u^\top g}{\beta},

so where ``nu >> beta`` the damped step is the undamped (natural-gradient) step, where
``nu << beta`` it is gradient descent with learning rate ``1/beta``; in the limits
``u^T (F + beta I)^{-1} g -> u^T F^{-1} g`` (``beta -> 0``) and ``beta u^T (F + beta I)^{-1} g
-> u^T g`` (``beta -> oo``). Since the eigenvectors of a symmetric ``F`` form an orthonormal
basis (the spectral theorem), the whole vectors converge.

Tier A (general dimension ``d``): matrix algebra, the eigen-relation as a hypothesis, and
limits of explicit scalar functions of ``beta`` (SymPy's ``limit``, taken only once the matrix
expressions have been reduced to scalars free of ``beta``).
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import Algebra, Chain, Control, Derivation, Explicit, Given, Lemma, Link, Sizes
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Scalar

__all__ = ["DERIVATIONS"]

d = sp.Symbol("d", integer=True, positive=True)
F = sp.MatrixSymbol("F", d, d)
g = sp.MatrixSymbol("g", d, 1)
u = sp.MatrixSymbol("u", d, 1)
I = sp.Identity(d)
nu = sp.Symbol("nu", positive=True)
beta = sp.Symbol("beta", positive=True)

M = F + beta * I
_EIG = sp.Eq(u.T * F, nu * u.T, evaluate=False)

_LEFT = sp.MatMul(u.T, M)                       # u^T (F + beta I), kept as written
_COMP = Scalar(u.T * M.I * g)                   # the damped step along u
_UNDAMPED = Scalar(u.T * F.I * g)               # the undamped step along u
_GRAD = Scalar(u.T * g)                         # the gradient along u
_COEF = _GRAD / (nu + beta)

_LIM0 = sp.Limit(_COMP, beta, 0)
_LIMOO = sp.Limit(beta * _COMP, beta, sp.oo)


def _instance(sizes):
    """F = nu P + nu_2 (I - P), P the projector on a vector u of symbols: symmetric, positive
    definite, u^T F = nu u^T."""
    n = sizes[d]
    ux = tk.vector("u", n)
    P = ux * ux.T / (ux.T * ux)[0, 0]
    nu2 = sp.Symbol("nu_2", positive=True)
    return {u: ux, F: nu * P + nu2 * (sp.eye(n) - P)}


_AT = Explicit(Sizes.of([{d: 2}]), values=_instance,
               describe=r"$F = \nu P + \nu_2(I - P)$, $P = uu^\top/u^\top u$, $u$ and $g$ vectors of "
                        r"symbols, $\nu, \nu_2 > 0$")


def _proof():
    me = INTERPOLATION
    return [
        Chain(_LEFT, [
            Link(u.T * F + beta * u.T, Algebra(), why="distributivity"),
            Link(nu * u.T + beta * u.T, Given(_EIG), why="u is an eigenvector: uᵀF = νuᵀ"),
            Link((nu + beta) * u.T, Algebra(), label="shifted_eigenvalue",
                 why="the eigenvalue of F + βI along u is ν + β"),
        ]),
        Chain(_COMP, [
            Link(Scalar(sp.MatMul(sp.MatMul(nu + beta, u.T), M.I, g)) / (nu + beta), Algebra(),
                 why="multiply and divide by ν + β > 0"),
            Link(Scalar(sp.MatMul(_LEFT, M.I, g)) / (nu + beta), Lemma(me, part=0),
                 why="part 1, read from right to left"),
            Link(_COEF, Algebra(), label="damped_component", why="(F + βI)(F + βI)⁻¹ = I"),
        ], part=1),
        Chain(_UNDAMPED, [
            Link(Scalar(sp.MatMul(sp.MatMul(nu, u.T), F.I, g)) / nu, Algebra(),
                 why="multiply and divide by ν > 0"),
            Link(Scalar(sp.MatMul(u.T, F, F.I, g)) / nu, Given(_EIG), why="νuᵀ = uᵀF"),
            Link(_GRAD / nu, Algebra(), why="F F⁻¹ = I"),
        ], part=2),
        Chain(_COMP, [
            Link(_COEF, Lemma(me, part=1), why="part 2"),
            Link(sp.Mul(nu / (nu + beta), _GRAD / nu, evaluate=False), Algebra(),
                 why="1/(ν + β) = (ν/(ν + β))(1/ν)"),
            Link(nu / (nu + beta) * _UNDAMPED, Lemma(me, part=2), label="undamped_fraction",
                 why="part 3: uᵀg/ν is the undamped step along u"),
        ], part=3),
        Chain(beta * _COMP, [
            Link(beta * _COEF, Lemma(me, part=1), why="part 2"),
            Link(beta / (nu + beta) * _GRAD, Algebra(), label="gradient_fraction",
                 why="β/(ν + β) of the gradient: gradient descent with learning rate 1/β"),
        ], part=4),
        Chain(_LIM0, [
            Link(sp.Limit(_COEF, beta, 0), Lemma(me, part=1), why="part 2, inside the limit"),
            Link(_GRAD / nu, Algebra(), label="limit_zero",
                 why="a rational function of β, continuous at β = 0 since ν > 0"),
            Link(_UNDAMPED, Lemma(me, part=2), why="part 3"),
        ], part=5),
        Chain(_LIMOO, [
            Link(sp.Limit(beta * _COEF, beta, sp.oo), Lemma(me, part=1), why="part 2, inside the limit"),
            Link(_GRAD, Algebra(), label="limit_infinity", why="β/(ν + β) → 1 as β → ∞"),
        ], part=6),
    ]


INTERPOLATION = Derivation(
    name="damping_limits.interpolation",
    title="Damping interpolates between the natural gradient (β → 0) and gradient descent (β → ∞)",
    conclusion=(sp.Eq(_LEFT, (nu + beta) * u.T, evaluate=False),
                sp.Eq(_COMP, _COEF, evaluate=False),
                sp.Eq(_UNDAMPED, _GRAD / nu, evaluate=False),
                sp.Eq(_COMP, nu / (nu + beta) * _UNDAMPED, evaluate=False),
                sp.Eq(beta * _COMP, beta / (nu + beta) * _GRAD, evaluate=False),
                sp.Eq(_LIM0, _UNDAMPED, evaluate=False),
                sp.Eq(_LIMOO, _GRAD, evaluate=False)),
    hypotheses=[sp.Q.symmetric(F), _EIG],
    proof=_proof,
    tier="A",
    scope="general dimension d: matrix algebra, one eigenpair (ν, u) of F as a hypothesis, limits "
          "of explicit rational functions of β",
    controls=[
        Control("undamped_eigenvalue", target="damped_component", replace=(_COEF, _GRAD / nu),
                at=_AT, why="the damped step taken along u as if damping did not shift the "
                            "eigenvalue: uᵀg/ν"),
        Control("limits_swapped", target="conclusion:7", replace=(sp.oo, sp.Integer(0)), at=_AT,
                why="βuᵀ(F + βI)⁻¹g → uᵀg claimed as β → 0 (it tends to 0 there)"),
    ],
    assumptions=[r"$F$ symmetric positive definite (the Fisher, nonsingular), $\beta > 0$; "
                 r"$(\nu, u)$ an eigenpair, $\nu > 0$",
                 "the spectral theorem: the eigenvectors of a symmetric F form an orthonormal "
                 "basis, so the limits along every eigenvector give the limits of the vectors"],
    references=[tk.REF_JOHNSON_2017 + ", §4 (damping as interpolation between the natural "
                "gradient and gradient descent)",
                tk.REF_GROSSE_2022 + " (damping: the step along eigendirections with ν ≫ β and "
                "ν ≪ β)",
                tk.REF_MARTENS_GROSSE_2015 + ", §6 (Tikhonov damping)"],
    numeric=["fisherlab.updates.natural_gradient", "fisherlab.updates.precondition"],
    tested_by=["tests/proofs/test_damping_limits.py::test_damped_step_interpolates_in_the_eigenbasis",
               "tests/proofs/test_damping_limits.py::test_natural_gradient_tends_to_the_undamped_and_gradient_steps"],
)

DERIVATIONS = [INTERPOLATION]
