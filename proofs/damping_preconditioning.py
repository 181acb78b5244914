"""Damping and preconditioning (seed 004: R. Grosse, CSC2541 Lecture 4).

* ``damped_spectrum`` -- with ``H = Q diag(nu) Q^T`` (``Q`` orthogonal), ``(H + eta I)^{-1}``
  has the same eigenvectors and eigenvalues ``(nu_j + eta)^{-1}``: positive for ``nu_j >= 0``,
  ``eta > 0`` (so the damped step is a descent direction) and bounded by ``1/eta``.
* ``descent_direction`` -- for a positive definite preconditioner ``P = L L^T``,
  ``grad J^T (-P grad J) = -||L^T grad J||^2 <= 0``, zero only at ``grad J = 0``.
* ``reparameterization`` -- preconditioning by ``C^{-1}`` is gradient descent after the
  reparameterisation ``w = R w~ + b`` with ``R R^T = C^{-1}`` (``R = L^{-T}`` for
  ``C = L L^T``); the Hessian in the new coordinates is ``R^T H R``, the identity for
  ``C = H`` (Newton).
* ``newton_quadratic`` -- the Newton step ``-H^{-1} g`` minimises the quadratic model in one
  step (global minimiser for ``H`` PD); the damped step ``-(H + eta I)^{-1} g`` minimises the
  model plus the proximity term ``(eta/2)||w - w_0||^2``.

Tier B: ``d = 2, 3`` with every entry symbolic (``Q`` by the Cayley transform, PD matrices as
``L L^T``); the gradient chain rule for a generic (undefined) objective ``J``.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic.toolkit import (
    cayley_parts,
    lower_cholesky,
    lower_inverse,
    matrix,
    sum_of_squares,
    symmetric,
    vector,
)
from fisherlab.symbolic import LegacyDerivation, NegativeControl, Step, Tier


_DIMS = (2, 3)
_eta = sp.Symbol("eta", positive=True)
_alpha = sp.Symbol("alpha", positive=True)



def _spectrum_steps():
    steps = []
    for d in _DIMS:
        N, den = cayley_parts("k", d)[:2]        # Q = N / den orthogonal
        nu = sp.symbols(f"nu_1:{d + 1}", nonnegative=True)
        D = sp.diag(*nu)
        steps.append(Step.equal(
            f"d = {d}: Q = N / det(I + K) (Cayley) is orthogonal: N^T N = det(I + K)^2 I",
            N.T * N, den ** 2 * sp.eye(d), justification="exact polynomial identity",
            display=r"Q^\top Q = I"))
        # H = Q D Q^T = N D N^T / den^2; (H + eta I) q_j = (nu_j + eta) q_j, q_j = N e_j
        lhs = (N * D * N.T + _eta * den ** 2 * sp.eye(d)) * N
        rhs = N * sp.diag(*[(n + _eta) * den ** 2 for n in nu])
        steps.append(Step.equal(
            f"d = {d}: every column q_j of Q is an eigenvector of H + eta I with eigenvalue "
            "nu_j + eta (checked times det(I + K)^2), hence of (H + eta I)^{-1} with eigenvalue "
            "(nu_j + eta)^{-1}",
            lhs, rhs, justification="Q^T Q = I; H and (H + eta I)^{-1} are codiagonalisable",
            display=r"(H + \eta I)\,q_j = (\nu_j + \eta)\,q_j \ \Rightarrow\ "
                    r"(H + \eta I)^{-1} q_j = (\nu_j + \eta)^{-1} q_j"))
    nu = sp.Symbol("nu", nonnegative=True)
    steps.append(Step.nonnegative(
        "each eigenvalue (nu + eta)^{-1} of the damped inverse is positive and at most 1/eta: "
        "1/eta - 1/(nu + eta) = nu / (eta (nu + eta)) >= 0",
        1 / _eta - 1 / (nu + _eta), nu / (_eta * (nu + _eta)),
        justification="nu >= 0 (PSD H), eta > 0",
        display=r"0 < (\nu_j + \eta)^{-1} \le \eta^{-1}"))
    return steps


def _control_spectrum():
    d = 2
    N, den = cayley_parts("k", d)[:2]
    nu = sp.symbols(f"nu_1:{d + 1}", nonnegative=True)
    lhs = (N * sp.diag(*nu) * N.T + _eta * den ** 2 * sp.eye(d)) * N
    # claims (H + eta I)^{-1} has eigenvalues 1/nu_j + 1/eta, i.e. H + eta I has
    # eigenvalues 1 / (1/nu_j + 1/eta)
    rhs = N * sp.diag(*[den ** 2 / (1 / n + 1 / _eta) for n in nu])
    return Step.equal("eigenvalues of (H + eta I)^{-1} are 1/nu_j + 1/eta", lhs, rhs,
                      justification="false: the inverse of a sum is not the sum of inverses")


def _descent_steps():
    steps = []
    for d in _DIMS:
        L = lower_cholesky("l", d)
        g = vector("g", d)
        P = L * L.T
        steps.append(Step.nonnegative(
            f"d = {d}: g^T P g = ||L^T g||^2 >= 0 for P = L L^T, so "
            "grad J^T (-P grad J) <= 0: -P grad J is a descent direction",
            (g.T * P * g)[0, 0], sum_of_squares(L.T * g),
            justification="sum-of-squares certificate",
            display=r"\nabla J^\top\Delta w = -\nabla J^\top P\nabla J = -\|L^\top\nabla J\|^2"
                    r" \le 0"))
        steps.append(Step.equal(
            f"d = {d}: det L^T = prod_i l_ii > 0, so L^T g = 0 only for g = 0: the inequality "
            "is strict away from stationary points",
            L.T.det(), sp.Mul(*[L[i, i] for i in range(d)]),
            justification="triangular determinant; positive diagonal",
            display=r"\det L^\top = \textstyle\prod_i \ell_{ii} > 0"))
    return steps


def _control_indefinite():
    P = symmetric("P", 2)
    g = vector("g", 2)
    e = (g.T * P * g)[0, 0]
    return Step.nonnegative("g^T P g >= 0 for a symmetric (possibly indefinite) P", e, e,
                            justification="false: e.g. an indefinite Hessian in Newton's method")


def _reparam_steps():
    steps = []
    for d in _DIMS:
        R = matrix("R", d, d)
        c = vector("c", d)
        u = vector("u", d)
        J = sp.Function("J")
        psi = J(*(R * u + c))
        lhs = sp.Matrix([sp.diff(psi, ui).subs({v: 0 for v in u}).doit() for ui in u])
        grad = sp.Matrix([sp.diff(J(*c), ci) for ci in c])
        steps.append(Step.equal(
            f"d = {d}: chain rule, w = R w~ + b: grad_w~ J(R w~ + b) = R^T grad J(w) "
            "(generic J, at w = c)",
            lhs, R.T * grad, justification="chain rule for an undefined J",
            display=r"\nabla\tilde J(\tilde w) = R^\top\nabla J(w)"))
        wt = vector("wt", d)
        b = vector("b", d)
        steps.append(Step.equal(
            f"d = {d}: one gradient step in w~ mapped back to w is the preconditioned step "
            "w - alpha R R^T grad J",
            R * (wt - _alpha * R.T * grad) + b, (R * wt + b) - _alpha * R * R.T * grad,
            justification="linearity (seed 004 'Preconditioning')",
            display=r"\mathcal T(\tilde w - \alpha\nabla\tilde J) = w - \alpha RR^\top\nabla J"))
        L = lower_cholesky("l", d)
        C = L * L.T
        Rc = lower_inverse(L).T          # R = L^{-T}
        steps.append(Step.equal(
            f"d = {d}: R = L^{{-T}} satisfies R R^T = C^{{-1}} for C = L L^T (Cholesky), so "
            "preconditioning by C^{-1} is gradient descent in w~ = R^{-1}(w - b)",
            (Rc * Rc.T) * C, sp.eye(d), justification="exact triangular inverse",
            display=r"R R^\top C = L^{-\top}L^{-1}LL^\top = I"))
        steps.append(Step.equal(
            f"d = {d}: with C = H (Newton) the Hessian in the new coordinates, "
            "H~ = R^T H R, is the identity",
            Rc.T * C * Rc, sp.eye(d), justification="exact",
            display=r"\tilde H = R^\top H R = I"))
    return steps


def _control_reparam():
    L = lower_cholesky("l", 2)
    R = lower_inverse(L)                # wrong: L^{-1} instead of L^{-T}
    return Step.equal("R = L^{-1} gives R R^T = C^{-1}", (R * R.T) * (L * L.T), sp.eye(2),
                      justification="false: R R^T = L^{-1} L^{-T} is not (L L^T)^{-1}")


def _newton_steps():
    steps = []
    for d in _DIMS:
        L = lower_cholesky("l", d)
        H = L * L.T
        Hinv = lower_inverse(L).T * lower_inverse(L)
        g = vector("g", d)
        w0 = vector("w0", d)
        J0 = sp.Symbol("J_0", real=True)
        w = vector("w", d)

        def Jq(z):
            return J0 + (g.T * (z - w0))[0, 0] + ((z - w0).T * H * (z - w0))[0, 0] / 2

        w_star = w0 - Hinv * g
        grad_at = sp.Matrix([sp.diff(Jq(w), wi) for wi in w]).subs(dict(zip(w, w_star)))
        steps.append(Step.equal(
            f"d = {d}: the Newton iterate w* = w0 - H^{{-1}} g is a stationary point of the "
            "quadratic model J_quad",
            grad_at, sp.zeros(d, 1), justification="substitution (H^{-1} = L^{-T} L^{-1})",
            display=r"\nabla J_{\rm quad}(w_0 - H^{-1}g) = g - H H^{-1} g = 0"))
        u = vector("u", d)
        steps.append(Step.equal(
            f"d = {d}: J_quad(w* + u) - J_quad(w*) = (1/2) ||L^T u||^2 for every u",
            Jq(w_star + u) - Jq(w_star), sum_of_squares(L.T * u) / 2,
            justification="expand; the linear term vanishes at w*",
            display=r"J_{\rm quad}(w_* + u) - J_{\rm quad}(w_*) = \tfrac12 u^\top H u"))
        steps.append(Step.nonnegative(
            f"d = {d}: ... which is >= 0 (> 0 for u != 0): w* is the unique global minimiser, "
            "reached in one Newton step",
            sum_of_squares(L.T * u) / 2, sum_of_squares(L.T * u) / 2,
            justification="sum of squares; L invertible",
            display=r"\tfrac12\|L^\top u\|^2 \ge 0"))
        # damped: J_quad + eta/2 ||w - w0||^2 minimised at w0 - (H + eta I)^{-1} g
        dl = vector("delta", d)
        g_of = -(H + _eta * sp.eye(d)) * dl   # g parameterised by delta = -(H + eta I)^{-1} g
        Jd = (J0 + (g_of.T * (w - w0))[0, 0] + ((w - w0).T * H * (w - w0))[0, 0] / 2
              + _eta / 2 * ((w - w0).T * (w - w0))[0, 0])
        grad_d = sp.Matrix([sp.diff(Jd, wi) for wi in w]).subs(dict(zip(w, w0 + dl)))
        steps.append(Step.equal(
            f"d = {d}: the damped step delta = -(H + eta I)^{{-1}} g is the stationary point "
            "(the minimiser, H + eta I being PD) of J_quad + (eta/2)||w - w0||^2",
            grad_d, sp.zeros(d, 1),
            justification="substitution (seed 004 'Damping': Euclidean proximity term)",
            display=r"\nabla\big(J_{\rm quad} + \tfrac\eta2\|w - w_0\|^2\big)"
                    r"(w_0 - (H+\eta I)^{-1}g) = 0"))
    return steps


def _control_newton():
    d = 2
    L = lower_cholesky("l", d)
    H = L * L.T
    g, w0, w = vector("g", d), vector("w0", d), vector("w", d)
    Jq = (g.T * (w - w0))[0, 0] + ((w - w0).T * H * (w - w0))[0, 0] / 2
    w_bad = w0 - H * g
    return Step.equal("w0 - H g is stationary for J_quad",
                      sp.Matrix([sp.diff(Jq, wi) for wi in w]).subs(dict(zip(w, w_bad))),
                      sp.zeros(d, 1), justification="false: H, not H^{-1}")


_REFS = ["seed 004_bb4f7e8c8840a6b5.txt (R. Grosse, CSC2541 Lecture 4, 2022: 'Minimizing "
         "quadratic approximations', 'Damping', 'Preconditioning')"]

DERIVATIONS = [
    LegacyDerivation(
        name="damping_preconditioning.damped_spectrum",
        title="The damped inverse (H + eta I)^{-1} has eigenvalues (nu_j + eta)^{-1}",
        statement=r"H = Q\,\mathrm{diag}(\nu)\,Q^\top \Rightarrow (H + \eta I)^{-1} = "
                  r"Q\,\mathrm{diag}\big((\nu_j + \eta)^{-1}\big)Q^\top,\ "
                  r"0 < (\nu_j + \eta)^{-1} \le \eta^{-1}",
        assumptions=[r"$Q$ orthogonal (Cayley transform of a skew matrix)",
                     r"$\nu_j \ge 0$ (PSD), $\eta > 0$"],
        tier=Tier.B, scope="d = 2, 3, every entry symbolic",
        build=_spectrum_steps,
        negative_controls=[NegativeControl("sum_of_inverses",
                                           "eigenvalues 1/nu_j + 1/eta", _control_spectrum)],
        references=_REFS, numeric=["fisherlab.updates.precondition"],
    ),
    LegacyDerivation(
        name="damping_preconditioning.descent_direction",
        title="A positive definite preconditioner gives a descent direction",
        statement=r"P = LL^\top \succ 0 \Rightarrow \nabla J^\top(-P\nabla J) = "
                  r"-\|L^\top\nabla J\|^2 < 0 \ \ (\nabla J \ne 0)",
        assumptions=[r"$P = LL^\top$, $L$ lower triangular with $\ell_{ii} > 0$"],
        tier=Tier.B, scope="d = 2, 3, every entry symbolic",
        build=_descent_steps,
        negative_controls=[NegativeControl(
            "indefinite_preconditioner", "g^T P g >= 0 for an indefinite symmetric P "
            "(the Newton direction with an indefinite Hessian, seed 003 §5)",
            _control_indefinite)],
        references=_REFS + ["seed 003_377ac27c40267f84.txt §5"],
        numeric=["fisherlab.updates.natural_gradient", "fisherlab.updates.gauss_newton"],
    ),
    LegacyDerivation(
        name="damping_preconditioning.reparameterization",
        title="Preconditioning by C^{-1} is gradient descent after reparameterising with "
              "R R^T = C^{-1}",
        statement=r"w = R\tilde w + b,\ RR^\top = C^{-1}:\ \ "
                  r"\mathcal T\big(\tilde w - \alpha\nabla\tilde J(\tilde w)\big) = "
                  r"w - \alpha C^{-1}\nabla J(w);\ \ C = H \Rightarrow R^\top H R = I",
        assumptions=[r"$C = LL^\top$ (Cholesky), $R = L^{-\top}$; $R$ invertible"],
        tier=Tier.B, scope="d = 2, 3; generic J for the chain rule, every entry symbolic",
        build=_reparam_steps,
        negative_controls=[NegativeControl("transposed_factor", "R = L^{-1} instead of L^{-T}",
                                           _control_reparam)],
        references=_REFS, numeric=["fisherlab.updates.precondition"],
    ),
    LegacyDerivation(
        name="damping_preconditioning.newton_quadratic",
        title="Newton's method minimises the quadratic model in one step; damping adds a "
              "proximity term",
        statement=r"\arg\min_w J_{\rm quad}(w) = w_0 - H^{-1}\nabla J(w_0),\ \ "
                  r"\arg\min_w J_{\rm quad}(w) + \tfrac\eta2\|w - w_0\|^2 = "
                  r"w_0 - (H + \eta I)^{-1}\nabla J(w_0)",
        assumptions=[r"$H = LL^\top \succ 0$ (strictly convex model); $\eta > 0$"],
        tier=Tier.B, scope="d = 2, 3, every entry symbolic",
        build=_newton_steps,
        negative_controls=[NegativeControl("metric_instead_of_inverse", "w0 - H g",
                                           _control_newton)],
        references=_REFS, numeric=["fisherlab.updates.newton"],
    ),
]
