r"""Natural gradient = steepest descent in the Fisher metric (KKT).

The minimiser of the linearised loss ``l(theta) + g^T v`` subject to ``v^T F v <= 1``
(``g = nabla l``, ``F = L L^T`` positive definite) is ``v* = -F^{-1} g / s`` with
``s = sqrt(g^T F^{-1} g)``, the Fisher norm of the natural gradient:

* the Lagrangian ``g^T v + mu (v^T F v - 1)`` has gradient ``g + 2 mu F v`` (entry-wise), which
  vanishes at ``v*`` with the multiplier ``mu = s / 2 > 0``; the constraint is active there;
* for every ``v``: ``g^T v + s - (s/2)(1 - v^T F v) = (s/2) ||L^T v + L^{-1} g / s||^2 >= 0``,
  so on the feasible set ``g^T v >= -s = g^T v*``: ``v*`` is the global minimiser.

``s`` is a positive symbol with the side equation ``s = sqrt(g^T F^{-1} g)`` (the positive
root), used by ``Given`` links. Tier A: general dimension.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import Algebra, Chain, Control, Derivation, Entrywise, Given, Link
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Grad, Scalar

__all__ = ["DERIVATIONS"]

d = sp.Symbol("d", integer=True, positive=True)
s = sp.Symbol("s", positive=True)
mu = sp.Symbol("mu", positive=True)
L, F = sp.MatrixSymbol("L", d, d), sp.MatrixSymbol("F", d, d)
g, v = sp.MatrixSymbol("g", d, 1), sp.MatrixSymbol("v", d, 1)
vstar = sp.MatrixSymbol("v_*", d, 1)
Lag = sp.Symbol(r"\mathcal{L}")
q = Scalar(g.T * F.I * g)
_S = sp.Eq(s, sp.sqrt(q), evaluate=False)
_HALF = sp.Rational(1, 2)

_STAT = sp.MatAdd(g, sp.MatMul(s, F, vstar))
_FV = Scalar(v.T * F * v)
_GAP = Scalar(g.T * v) + s - s / 2 * (1 - _FV)
_Y_S = L.T * v + L.I * g / s
_Y_Q = L.T * v + L.I * g / sp.sqrt(q)


def _gram(y, c):
    return c / 2 * Scalar(sp.MatMul(sp.Transpose(y), y))


def _proof():
    return [
        Chain(Grad(Lag, v), [Link(g + 2 * mu * F * v, Entrywise(), label="gradient",
                                  why="∂/∂v_k of gᵀv + μ(vᵀFv − 1), F symmetric")]),
        Chain(_STAT, [
            Link(sp.MatAdd(g, sp.MatMul(s, F, sp.MatMul(-1 / s, F.I, g))), Algebra(),
                 why="v* = −F⁻¹g/s; with μ = s/2 the gradient g + 2μFv* is g + sFv*"),
            Link(sp.ZeroMatrix(d, 1), Algebra(), label="stationary", why="FF⁻¹ = I"),
        ], part=1),
        Chain(Scalar(vstar.T * F * vstar), [
            Link(q / s ** 2, Algebra(), label="active", why="g ᵀF⁻ᵀFF⁻¹g/s², F symmetric"),
            Link(sp.Integer(1), Given(_S), why="s² = gᵀF⁻¹g"),
        ], part=2),
        Chain(_GAP, [
            Link(Scalar(g.T * v) + s / 2 + s / 2 * _FV, Algebra(), why="expand"),
            Link(Scalar(g.T * v) + sp.sqrt(q) / 2 + sp.sqrt(q) / 2 * _FV, Given(_S),
                 why="s = √(gᵀF⁻¹g)"),
            Link(_gram(_Y_Q, sp.sqrt(q)), Algebra(), label="completed_square",
                 why="complete the square: the cross term is gᵀv, the constant "
                     "½√q · gᵀL⁻ᵀL⁻¹g/q = ½√q"),
            Link(_gram(_Y_S, s), Given(_S), why="√(gᵀF⁻¹g) = s"),
            Link(sp.Integer(0), Algebra(), rel=">=", why="s > 0 times a sum of squares"),
        ], part=3),
        Chain(Scalar(g.T * vstar), [
            Link(-q / s, Algebra(), why="gᵀ(−F⁻¹g/s)"),
            Link(-sp.sqrt(q), Given(_S), why="q/√q = √q"),
            Link(-s, Given(_S), label="attained", why="√q = s"),
        ], part=4),
    ]


FISHER_KKT = Derivation(
    name="steepest_descent.fisher_kkt",
    title="Steepest descent in the Fisher metric is the natural-gradient direction",
    conclusion=(sp.Eq(Grad(Lag, v), g + 2 * mu * F * v, evaluate=False),
                sp.Eq(_STAT, sp.ZeroMatrix(d, 1), evaluate=False),
                sp.Eq(Scalar(vstar.T * F * vstar), 1, evaluate=False),
                sp.Ge(_GAP, 0, evaluate=False),
                sp.Eq(Scalar(g.T * vstar), -s, evaluate=False)),
    definitions={F: L * L.T, vstar: -F.I * g / s, Lag: Scalar(g.T * v) + mu * (_FV - 1)},
    hypotheses=[sp.Q.invertible(L), _S],
    proof=_proof,
    tier="A",
    scope="general dimension d: the Lagrangian's gradient entry-wise, stationarity, the active "
          "constraint and the optimality certificate by matrix algebra",
    controls=[
        Control("metric_instead_of_inverse", target="stationary",
                replace=(sp.MatMul(-1 / s, F.I, g), sp.MatMul(-1 / s, F, g)),
                why="−Fg/s taken for the steepest-descent direction: the metric instead of its "
                    "inverse"),
        Control("ascent_direction", target="stationary",
                replace=(sp.MatMul(-1 / s, F.I, g), sp.MatMul(1 / s, F.I, g)),
                why="+F⁻¹g/s: the steepest ascent direction, stationary only with the negative "
                    "multiplier μ = −s/2"),
        Control("step_not_normalised", target="active", replace=(q / s ** 2, q),
                why="the natural gradient −F⁻¹g itself taken to lie on the unit Fisher sphere "
                    "(the normalisation by its Fisher norm forgotten)"),
    ],
    assumptions=[r"the problem $\min_v g^\top v$ s.t. $v^\top Fv \le 1$ (the linearised loss in "
                 r"a Fisher trust region), $g = \nabla\ell(\theta) \ne 0$, $F = LL^\top$ with "
                 r"$L$ invertible", r"$s = \sqrt{g^\top F^{-1}g} > 0$, $\mu = s/2 > 0$; "
                 r"$v_* = -F^{-1}g/s$",
                 r"part 4 on the feasible set ($v^\top Fv \le 1$): $g^\top v \ge -s = "
                 r"g^\top v_*$ (part 5), so $v_*$ is the global minimiser"],
    references=[tk.REF_JOHNSON_2017 + ", §4, eqs. (14)-(17)",
                tk.REF_AMARI_1998, tk.REF_MARTENS_2020 + ", §6"],
    numeric=["fisherlab.updates.natural_gradient"],
    tested_by=["tests/updates/test_dense_updates.py::"
               "test_natural_gradient_is_steepest_descent_in_the_fisher_metric"],
)

DERIVATIONS = [FISHER_KKT]
