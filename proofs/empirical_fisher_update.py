"""The empirical-Fisher update as a constrained problem (seed 002).

Seed 002 (002_7cc303c8b37b8e83.txt): the update
``theta <- theta - eta (C + eps I)^{-1} g`` with ``C = E[nabla l nabla l^T]``
(uncentered, the data labels) and ``g = E[nabla l]`` solves, to second order,
``min_Delta L(theta + Delta)  s.t.  E[(Delta l)^2] = c``
with ``Delta l(x) = l(x, theta + Delta) - l(x, theta)``.

The derivation, with the expectation an average over ``N`` symbolic examples:

1. first-order Taylor step: ``Delta l_n = eps' g_n^T Delta + O(eps'^2)`` along
   ``theta + eps' Delta`` (generic, undefined per-example losses ``l_n``);
2. ``E[(Delta l)^2] = eps'^2 Delta^T C Delta + O(eps'^3)``: the value and first
   derivative in ``eps'`` vanish and half the second derivative is ``Delta^T C Delta``
   with ``C = (1/N) sum_n g_n g_n^T`` -- *uncentered*;
3. Lagrange: the stationarity condition of ``g^T Delta + mu (Delta^T C Delta - c)``
   (plus the Tikhonov proximity term ``mu eps ||Delta||^2`` that adds the damping)
   holds at ``Delta = -(C + eps I)^{-1} g / (2 mu)``: the damped empirical-Fisher step with
   learning rate ``eta = 1/(2 mu)``; the constraint fixes ``mu``:
   ``4 mu^2 Delta^T C Delta = g^T C^{-1} g`` at ``eps = 0``.

``(C + eps I)^{-1}`` is written ``adj(M) / det(M)`` (exact, no solving).

Tier: steps 1-2 hold for generic (undefined) per-example losses at
``(N, d) = (2, 2), (3, 2), (3, 3)``; step 3 with every gradient entry symbolic at the
same sizes (tier B).
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import Derivation, NegativeControl, Step, Tier

_SIZES = ((2, 2), (3, 2), (3, 3))
_eps = sp.Symbol("epsilon", real=True)       # the Taylor parameter along Delta
_damp = sp.Symbol("lambda", nonnegative=True)  # Tikhonov damping (seed 002's epsilon)
_mu = sp.Symbol("mu", positive=True)


def _losses(N, d):
    th = sp.symbols(f"theta_1:{d + 1}", real=True)
    D = sp.Matrix(sp.symbols(f"Delta_1:{d + 1}", real=True))
    ls = [sp.Function(f"ell_{n + 1}") for n in range(N)]
    pt = [t + _eps * dd for t, dd in zip(th, D)]
    dl = [l(*pt) - l(*th) for l in ls]
    grads = [sp.Matrix([sp.diff(l(*th), t) for t in th]) for l in ls]
    C = sp.zeros(d, d)
    for gn in grads:
        C += gn * gn.T
    return th, D, ls, dl, grads, C / N


def _at0(e):
    return sp.diff(e, _eps, 0).subs(_eps, 0).doit() if not isinstance(e, sp.MatrixBase) \
        else e.subs(_eps, 0).doit()


def _taylor_steps(N, d):
    th, D, ls, dl, grads, C = _losses(N, d)
    steps = []
    steps.append(Step.equal(
        f"N = {N}, d = {d}: first-order Taylor step, d/d eps' Delta l_n at eps' = 0 equals "
        "g_n^T Delta for every example n (and Delta l_n vanishes at eps' = 0)",
        sp.Matrix([sp.diff(x, _eps).subs(_eps, 0).doit() for x in dl]
                  + [x.subs(_eps, 0) for x in dl]),
        sp.Matrix([(gn.T * D)[0, 0] for gn in grads] + [0] * N),
        justification="chain rule for a generic differentiable per-example loss l_n",
        display=r"\Delta\ell_n = \ell_n(\theta+\epsilon'\Delta) - \ell_n(\theta) = "
                r"\epsilon'\, g_n^\top\Delta + O(\epsilon'^2)"))
    Esq = sp.Add(*[x ** 2 for x in dl]) / N
    steps.append(Step.equal(
        f"N = {N}, d = {d}: E[(Delta l)^2] (average over the N examples) and its first "
        "eps'-derivative vanish at eps' = 0 ...",
        sp.Matrix([Esq.subs(_eps, 0), sp.diff(Esq, _eps).subs(_eps, 0).doit()]),
        sp.zeros(2, 1), justification="Delta l_n(0) = 0",
        display=r"\mathbb{E}[(\Delta\ell)^2]\big|_0 = \partial_{\epsilon'}"
                r"\mathbb{E}[(\Delta\ell)^2]\big|_0 = 0"))
    steps.append(Step.equal(
        f"N = {N}, d = {d}: ... and half its second eps'-derivative is Delta^T C Delta with "
        "the *uncentered* C = (1/N) sum_n g_n g_n^T, so E[(Delta l)^2] = eps'^2 Delta^T C "
        "Delta + O(eps'^3)",
        sp.diff(Esq, _eps, 2).subs(_eps, 0).doit() / 2, (D.T * C * D)[0, 0],
        justification="seed 002: cross terms are of higher order; E[(g^T Delta)^2] = "
                      "Delta^T E[g g^T] Delta",
        display=r"\tfrac12\partial^2_{\epsilon'}\,\mathbb{E}[(\Delta\ell)^2]\big|_0 = "
                r"\Delta^\top \underbrace{\tfrac1N\textstyle\sum_n g_n g_n^\top}_{C}\,\Delta"))
    return steps


def _explicit(N, d):
    a = [sp.Matrix(sp.symbols(f"a_{n + 1}_1:{d + 1}", real=True)) for n in range(N)]
    C = sp.zeros(d, d)
    for an in a:
        C += an * an.T
    C = C / N
    g = sp.zeros(d, 1)
    for an in a:
        g += an
    return a, C, g / N


def _lagrange_steps(N, d):
    a, C, g = _explicit(N, d)
    M = C + _damp * sp.eye(d)
    adj, det = M.adjugate(), M.det()
    steps = [Step.equal(
        f"N = {N}, d = {d}: (C + lambda I) adj(C + lambda I) = det(C + lambda I) I, so "
        "(C + lambda I)^{-1} = adj / det wherever det != 0",
        M * adj, det * sp.eye(d), justification="Laplace expansion (exact polynomial identity)",
        display=r"M\,\mathrm{adj}(M) = \det(M)\, I,\quad M = C + \lambda I")]
    # Delta* = -adj(M) g / (2 mu det M); checked multiplied by det M != 0 (no division).
    Dt = -adj * g / (2 * _mu)          # = det(M) * Delta*
    steps.append(Step.equal(
        f"N = {N}, d = {d}: Delta* = -(C + lambda I)^{{-1}} g / (2 mu) makes the Lagrangian "
        "g^T Delta + mu (Delta^T C Delta - c) + mu lambda ||Delta||^2 stationary: "
        "det(M) (g + 2 mu (C + lambda I) Delta*) = 0 (the damped EF step, eta = 1/(2 mu))",
        det * g + 2 * _mu * M * Dt, sp.zeros(d, 1),
        justification="substitution of the candidate (no solving), multiplied by det M != 0; "
                      "g = (1/N) sum_n g_n",
        display=r"\det(M)\,\big(g + 2\mu(C+\lambda I)\Delta^*\big) = 0,\quad "
                r"\Delta^* = -\tfrac{1}{2\mu}(C + \lambda I)^{-1} g"))
    if d == 2:
        adj0, det0 = C.adjugate(), C.det()
        D0t = -adj0 * g / (2 * _mu)      # = det(C) * Delta* at lambda = 0
        steps.append(Step.equal(
            f"N = {N}, d = {d}: at lambda = 0 the constraint fixes mu: "
            "4 mu^2 Delta*^T C Delta* = g^T C^{-1} g (= 4 mu^2 c), checked times det(C)^2",
            4 * _mu ** 2 * (D0t.T * C * D0t)[0, 0], det0 * (g.T * adj0 * g)[0, 0],
            justification="substitution, multiplied by det(C)^2 != 0",
            display=r"4\mu^2\,\Delta^{*\top} C\Delta^* = g^\top C^{-1} g"))
    return steps


def _steps():
    steps = []
    for N, d in _SIZES:
        steps += _taylor_steps(N, d)
    for N, d in _SIZES:
        steps += _lagrange_steps(N, d)
    return steps


def _control_centered():
    th, D, ls, dl, grads, C = _losses(2, 2)
    gbar = (grads[0] + grads[1]) / 2
    Cc = C - gbar * gbar.T
    Esq = sp.Add(*[x ** 2 for x in dl]) / 2
    return Step.equal("second-order term = Delta^T (C - g g^T) Delta",
                      sp.diff(Esq, _eps, 2).subs(_eps, 0).doit() / 2, (D.T * Cc * D)[0, 0],
                      justification="false: E[(Delta l)^2] is a raw second moment, not a "
                                    "variance")


def _control_wrong_sign():
    a, C, g = _explicit(2, 2)
    M = C + _damp * sp.eye(2)
    Dt = M.adjugate() * g / (2 * _mu)
    return Step.equal("det(M) (g + 2 mu (C + lambda I) (+(C + lambda I)^{-1} g/(2 mu))) = 0",
                      M.det() * g + 2 * _mu * M * Dt, sp.zeros(2, 1),
                      justification="false: the + sign is a stationary point of the "
                                    "maximisation")


def _witness_functions():
    t1, t2 = sp.symbols("t1 t2")
    ell_1, ell_2 = sp.Function("ell_1"), sp.Function("ell_2")
    return {ell_1: sp.Lambda((t1, t2), t1 ** 2 + 3 * t2),
            ell_2: sp.Lambda((t1, t2), t1 * t2 - t2 ** 3)}


DERIVATIONS = [
    Derivation(
        name="empirical_fisher_update.constrained_problem",
        title="The empirical-Fisher update solves a loss-change-constrained problem",
        statement=r"\min_\Delta L(\theta+\Delta)\ \text{s.t.}\ \mathbb{E}[(\Delta\ell)^2] = c"
                  r"\ \overset{2\text{nd order}}{\Longrightarrow}\ "
                  r"\Delta^* = -\eta\,(C + \lambda I)^{-1} g,\quad "
                  r"C = \mathbb{E}[\nabla\ell\nabla\ell^\top],\ g = \mathbb{E}[\nabla\ell]",
        assumptions=["the expectation is the average over N examples (N symbolic "
                     "per-example losses)",
                     "the loss is linearised (first-order Taylor) and the constraint kept to "
                     "second order, as in seed 002",
                     r"$C + \lambda I$ invertible ($\det \neq 0$)"],
        tier=Tier.B,
        scope="(N, d) = (2, 2), (3, 2), (3, 3); generic per-example losses for the Taylor "
              "steps, every gradient entry symbolic for the Lagrange steps",
        build=_steps,
        negative_controls=[
            NegativeControl("centered_covariance",
                            "the centered gradient covariance C - g g^T as the second-order "
                            "term (N = d = 2)", _control_centered,
                            witness=_witness_functions),
            NegativeControl("wrong_sign", "Delta = +(C + lambda I)^{-1} g / (2 mu)",
                            _control_wrong_sign),
        ],
        references=["seed 002_7cc303c8b37b8e83.txt (the empirical-Fisher update as a "
                    "constrained problem)",
                    "F. Kunstner, L. Balles, P. Hennig, Limitations of the empirical Fisher "
                    "approximation for natural gradient descent, NeurIPS 2019"],
        numeric=["fisherlab.updates.empirical_fisher_update",
                 "fisherlab.optax.empirical_fisher"],
    ),
]
