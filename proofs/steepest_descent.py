"""Natural gradient = steepest descent in the Fisher metric (KKT).

Seed 003 (003_377ac27c40267f84.txt) §4, eqs. (14)-(17): the minimiser of the
linearised loss ``l(theta) + nabla l^T v`` subject to ``v^T F v <= 1`` is a
positive multiple of ``-F^{-1} nabla l``: the Lagrangian
``nabla l^T v + mu (v^T F v - 1)`` is stationary at
``v* = -F^{-1} g / s`` with multiplier ``mu = s / 2 > 0``, where ``s > 0`` and
``s^2 = g^T F^{-1} g`` (the Fisher norm of the natural gradient).

SymPy's ``solve`` returns both ``+-`` roots (it cannot know ``g^T F^{-1} g > 0``), so,
as SYMBOLIC.md prescribes, ``s`` is a *positive symbol* with the side equation
``s^2 = q``, ``q = g^T F^{-1} g``; identities that need it are checked in the form
``s * (lhs - rhs) = (s^2 - q) * k`` (a polynomial identity whose right side vanishes
under the side equation). ``q >= 0`` is certified as a sum of squares
(``q = ||L^{-1} g||^2`` with ``F = L L^T``). Global optimality is certified too:
for every ``v``,
``g^T v + s = (s/2)(1 - v^T F v) + (s/2)||L^T v + L^{-1} g / s||^2``, which is
``>= 0`` on the feasible set, so ``g^T v >= -s = g^T v*``.

Tier B: ``d = 2, 3``, every entry of ``L``, ``g`` and ``v`` symbolic.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic.toolkit import lower_cholesky, lower_inverse, sum_of_squares, vector
from fisherlab.symbolic import LegacyDerivation, NegativeControl, Step, Tier

_DIMS = (2, 3)
_s = sp.Symbol("s", positive=True)


def _setup(d):
    L = lower_cholesky("l", d)
    F = L * L.T
    g = vector("g", d)
    Linv = lower_inverse(L)
    Finv = Linv.T * Linv
    q = (g.T * Finv * g)[0, 0]
    return L, F, g, Linv, Finv, q


def _steps():
    s = _s
    steps = []
    for d in _DIMS:
        L, F, g, Linv, Finv, q = _setup(d)
        steps.append(Step.equal(
            f"d = {d}: F^{{-1}} = L^{{-T}} L^{{-1}} inverts F = L L^T",
            Finv * F, sp.eye(d), justification="exact triangular inverse",
            display=r"(L^{-\top}L^{-1})(LL^\top) = I"))
        steps.append(Step.nonnegative(
            f"d = {d}: q = g^T F^{{-1}} g = ||L^{{-1}} g||^2 >= 0 (> 0 for g != 0), so the "
            "positive symbol s with s^2 = q exists",
            q, sum_of_squares(Linv * g),
            justification="sum-of-squares certificate; L^{-1} is invertible",
            display=r"q = g^\top F^{-1} g = \|L^{-1}g\|^2 \ge 0"))
        v_star = -Finv * g / s
        mu = s / 2
        steps.append(Step.equal(
            f"d = {d}: the candidate v* = -F^{{-1}} g / s has unit Fisher norm: "
            "s^2 v*^T F v* = q (so v*^T F v* = 1 under s^2 = q: the constraint is active)",
            s ** 2 * (v_star.T * F * v_star)[0, 0], q,
            justification="substitution of the candidate (no solving)",
            display=r"s^2\, v_*^\top F v_* = g^\top F^{-1} F F^{-1} g = q"))
        steps.append(Step.equal(
            f"d = {d}: stationarity of the Lagrangian (seed 003 eq. 16): "
            "g + 2 mu F v* = 0 with mu = s/2",
            g + 2 * mu * F * v_star, sp.zeros(d, 1),
            justification="substitution of the candidate; mu = s/2 > 0 since s > 0",
            display=r"\nabla\ell + 2\mu F v_* = g - F F^{-1} g = 0,\quad \mu = s/2 > 0"))
        v = vector("v", d)
        E = ((g.T * v)[0, 0] + s - s / 2 * (1 - (v.T * F * v)[0, 0])
             - s / 2 * sum_of_squares(L.T * v + Linv * g / s))
        steps.append(Step.equal(
            f"d = {d}: global optimality certificate, for every v: "
            "g^T v + s - (s/2)(1 - v^T F v) - (s/2)||L^T v + L^{-1} g/s||^2 vanishes under "
            "s^2 = q (checked as s * (...) = (s^2 - q)/2)",
            s * E, (s ** 2 - q) / 2,
            justification="expand; the right side is zero by the side equation, so on the "
                          "feasible set v^T F v <= 1: g^T v + s >= 0",
            display=r"g^\top v + s = \tfrac{s}{2}(1 - v^\top F v)"
                    r" + \tfrac{s}{2}\|L^\top v + L^{-1}g/s\|^2 \ \ (s^2 = q)"))
        steps.append(Step.equal(
            f"d = {d}: the candidate attains the bound: s (g^T v* + s) = s^2 - q = 0",
            s * ((g.T * v_star)[0, 0] + s), s ** 2 - q,
            justification="substitution; zero by the side equation",
            display=r"g^\top v_* = -q/s = -s"))
    return steps


def _control_metric_not_inverse():
    s = _s
    L, F, g, _, _, _ = _setup(2)
    v = -F * g / s
    return Step.equal("g + 2 (s/2) F (-F g / s) = 0", g + s * F * v, sp.zeros(2, 1),
                      justification="false: -F g is not the steepest-descent direction")


def _control_wrong_sign():
    s = _s
    L, F, g, _, Finv, _ = _setup(2)
    v = Finv * g / s
    return Step.equal("g + 2 (s/2) F (+F^{-1} g / s) = 0", g + s * F * v, sp.zeros(2, 1),
                      justification="false: +F^{-1} g is the steepest *ascent* direction "
                                    "(stationary only with a negative multiplier)")


DERIVATIONS = [
    LegacyDerivation(
        name="steepest_descent.fisher_kkt",
        title="Steepest descent in the Fisher metric is the natural gradient direction",
        statement=r"\arg\min_{v^\top F v \le 1} \nabla\ell^\top v = "
                  r"-\frac{F^{-1}\nabla\ell}{\sqrt{\nabla\ell^\top F^{-1}\nabla\ell}}",
        assumptions=[r"$F = L L^\top$, $L$ lower triangular with $\ell_{ii} > 0$ (SPD)",
                     r"$g = \nabla\ell(\theta_t) \neq 0$",
                     r"$s > 0$ is a positive symbol with the side equation "
                     r"$s^2 = q = g^\top F^{-1} g$"],
        axioms={"side equation": r"$s^2 = g^\top F^{-1} g$ with $s > 0$ (the positive root; "
                                 r"identities using it are checked as polynomial multiples "
                                 r"of $s^2 - q$)"},
        tier=Tier.B,
        scope="d = 2, 3, every entry of L, g, v symbolic",
        build=_steps,
        negative_controls=[
            NegativeControl("metric_instead_of_inverse",
                            "-F g as the steepest-descent direction (d = 2)",
                            _control_metric_not_inverse),
            NegativeControl("wrong_sign", "+F^{-1} g with a positive multiplier",
                            _control_wrong_sign),
        ],
        references=["seed 003_377ac27c40267f84.txt §4, eqs. (14)-(17)",
                    "seed 004_bb4f7e8c8840a6b5.txt (descent directions from PD preconditioners)",
                    "S. Amari, Natural gradient works efficiently in learning, 1998",
                    "J. Martens, New insights and perspectives on the natural gradient method, "
                    "JMLR 21, 2020, §6"],
        numeric=["fisherlab.updates.natural_gradient"],
    ),
]
