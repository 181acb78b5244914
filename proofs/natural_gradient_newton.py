"""When the natural gradient and the Newton direction coincide.

For a natural-parameter exponential family, ``l(theta) = A(eta) - t^T eta`` with
``eta = g(theta)`` (the model outputs), the Hessian splits as

    ``H = J^T (nabla^2 A) J + sum_k (dA/deta_k - t_k) nabla^2 g_k = F + R``

(seed 003 App. A eqs. (40)-(47); the general decomposition is proved by helper H4 in
``proofs/fisher_ggn.py``; it is re-checked here for general 2-jets). ``F = J^T nabla^2 A J`` is
the Fisher (= GGN). The *residual* ``R`` vanishes when

* the model is linear in ``theta`` (``nabla^2 g_k = 0``: linear/logistic/softmax regression), or
* the targets equal the predicted mean, ``t = nabla A(eta)``; in particular
  ``E_{t ~ p}[H] = F`` because ``E[t] = nabla A(eta)`` -- Newton on the *expected* loss is
  natural gradient;

and then ``H = F``, so the Newton direction ``-H^{-1} nabla l`` *is* the natural-gradient
direction ``-F^{-1} nabla l`` (checked by substitution). Negative control: a nonlinear model
away from ``t = nabla A``, where ``H != F``.

Tier B: ``K`` outputs and ``d`` parameters with ``(K, d) = (2, 2), (2, 3), (3, 2)``; ``A`` and
every ``g_k`` are *general 2-jets* at the point (value, gradient, Hessian all symbolic), which
is exact for the Hessian at that point (axiom: the Hessian at a point depends only on the
2-jet).
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic.toolkit import symmetric, vector
from fisherlab.symbolic import LegacyDerivation, NegativeControl, Step, Tier

_SIZES = ((2, 2), (2, 3), (3, 2))


def _problem(K, d):
    th = vector("theta", d)
    th0 = vector("theta0", d)
    eta0 = vector("eta0", K)
    J = sp.Matrix(K, d, lambda k, i: sp.Symbol(f"J_{k + 1}{i + 1}", real=True))
    T = [symmetric(f"T{k + 1}", d) for k in range(K)]       # nabla^2 g_k at theta0
    mean = vector("m", K)                                   # nabla A(eta0) (the mean of t)
    S = symmetric("S", K)                                   # nabla^2 A(eta0)
    a0 = sp.Symbol("A_0", real=True)
    t = vector("t", K)
    u = th - th0
    eta = sp.Matrix([eta0[k] + (J[k, :] * u)[0, 0] + (u.T * T[k] * u)[0, 0] / 2
                     for k in range(K)])
    e = eta - eta0
    A_of = a0 + (mean.T * e)[0, 0] + (e.T * S * e)[0, 0] / 2
    loss = A_of - (t.T * eta)[0, 0]
    at0 = dict(zip(th, th0))
    H = sp.hessian(loss, list(th)).subs(at0)
    grad = sp.Matrix([sp.diff(loss, x) for x in th]).subs(at0)
    F = J.T * S * J
    R = sp.zeros(d, d)
    for k in range(K):
        R += (mean[k] - t[k]) * T[k]
    return dict(J=J, T=T, mean=mean, S=S, t=t, H=H, grad=grad, F=F, R=R)


def _steps():
    steps = []
    for K, d in _SIZES:
        p = _problem(K, d)
        steps.append(Step.equal(
            f"K = {K}, d = {d}: H = J^T (nabla^2 A) J + sum_k (dA/deta_k - t_k) nabla^2 g_k "
            "at the point (general 2-jets of A and of every g_k)",
            p["H"], p["F"] + p["R"],
            justification="chain rule twice; the decomposition of proofs/fisher_ggn.py (H4), "
                          "seed 003 App. A eq. (40)",
            display=r"\nabla^2\ell = J^\top\nabla^2\!A\,J + \textstyle\sum_k "
                    r"(\partial_k A - t_k)\nabla^2 g_k = F + R"))
        zero_T = {s: 0 for Tk in p["T"] for s in Tk.free_symbols}
        steps.append(Step.equal(
            f"K = {K}, d = {d}: a model linear in theta (nabla^2 g_k = 0) has R = 0, so H = F "
            "for every target t",
            p["H"].subs(zero_T), p["F"], justification="substitution nabla^2 g_k = 0",
            display=r"\nabla^2 g_k = 0 \Rightarrow H = F"))
        at_mean = dict(zip(p["t"], p["mean"]))
        steps.append(Step.equal(
            f"K = {K}, d = {d}: at t = nabla A(eta) (and hence for E_t[H], E[t] = nabla A) "
            "R = 0 and H = F",
            p["H"].subs(at_mean), p["F"],
            justification="substitution t = nabla A(eta); E[H] is linear in t "
                          "(axiom: E[t] = nabla A)",
            display=r"\mathbb{E}_t[H] = H\big|_{t = \nabla A} = F"))
        delta = vector("delta", d)
        g_newton = -p["H"].subs(zero_T) * delta         # delta = -H^{-1} grad (linear model)
        steps.append(Step.equal(
            f"K = {K}, d = {d}: with R = 0 the Newton direction delta = -H^{{-1}} grad l solves "
            "the natural-gradient system F delta = -grad l: the two directions coincide",
            p["F"] * delta + g_newton, sp.zeros(d, 1),
            justification="substitution (grad l parameterised by the Newton step); unique "
                          "when F is invertible",
            display=r"F\,(-H^{-1}\nabla\ell) = -\nabla\ell \quad (H = F)"))
    return steps


def _control_residual():
    p = _problem(2, 2)
    return Step.equal("H = F for a nonlinear model with t != nabla A", p["H"], p["F"],
                      justification="false: the residual R = sum_k (m_k - t_k) T_k is nonzero")


def _control_directions():
    p = _problem(2, 2)
    delta = vector("delta", 2)
    g_newton = -p["H"] * delta
    return Step.equal("Newton direction solves F delta = -grad l (nonzero residual)",
                      p["F"] * delta + g_newton, sp.zeros(2, 1),
                      justification="false when R != 0")


DERIVATIONS = [
    LegacyDerivation(
        name="natural_gradient_newton.residual",
        title="Natural gradient equals Newton when the Hessian's residual term vanishes",
        statement=r"H = F + \textstyle\sum_k(\partial_k A - t_k)\nabla^2 g_k;\ \ "
                  r"\nabla^2 g_k = 0 \text{ or } t = \nabla A \Rightarrow H = F "
                  r"\Rightarrow -H^{-1}\nabla\ell = -F^{-1}\nabla\ell",
        assumptions=["natural-parameter exponential family: l = A(eta) - t^T eta, "
                     "eta = g(theta)",
                     "F (= H) invertible for the directions to be defined"],
        axioms={"2-jet": "the Hessian and gradient of l at a point depend only on the "
                         "second-order Taylor polynomials of A and of every g_k there",
                "mean of the sufficient statistic": r"$\mathbb{E}_{t\sim p(\cdot|\eta)}[t] = "
                                                    r"\nabla A(\eta)$ (proved for each family "
                                                    r"in proofs/information_equality)"},
        tier=Tier.B, scope="(K, d) = (2, 2), (2, 3), (3, 2); general 2-jets, every entry "
                           "symbolic",
        build=_steps,
        negative_controls=[
            NegativeControl("nonzero_residual", "H = F for a nonlinear model at t != mean",
                            _control_residual),
            NegativeControl("directions_differ", "Newton = natural gradient with R != 0",
                            _control_directions),
        ],
        references=["seed 003_377ac27c40267f84.txt §5 and App. A eqs. (40)-(48)",
                    "seed 004_bb4f7e8c8840a6b5.txt (F = G for exponential-family NLL)",
                    "J. Martens, New insights and perspectives on the natural gradient method, "
                    "JMLR 2020, §9.2",
                    "proofs/fisher_ggn.py (helper H4: the Hessian = GGN + residual "
                    "decomposition)"],
        numeric=["fisherlab.updates.newton", "fisherlab.updates.natural_gradient"],
    ),
]
