r"""Matrix-free curvature products: ``F v = J^T (M (J v))`` and Pearlmutter's ``H v``.

The Fisher (GGN) of a model ``g(theta)`` with output loss ``f`` acts on a vector as
``F v = J^T (M (J v))`` with ``M = nabla^2 f(g(theta))``: a Jacobian-vector product of ``g``
(forward mode), a small Hessian-vector product of ``f`` and a vector-Jacobian product of ``g``
(reverse mode) -- how ``fl.ggn_vp``/``fl.fisher_vp`` compute it. ``fl.hvp`` differentiates the
gradient along ``v`` (Pearlmutter 1994) and differs from the GGN product by the residual term
``sum_k (d_k f) nabla^2 g_k v``.

Tier A-model: ``g = (g_1, g_2)`` undefined functions of ``theta = (theta_1, theta_2,
theta_3)`` and ``f`` an undefined function of the two outputs; ``v``, ``u``, ``w`` symbolic;
each AD product is computed literally, ``d/d eps (.)(theta + eps v)`` at ``eps = 0``, as forward
mode defines it, and reverse mode as the gradient of a pairing with a constant cotangent.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import Algebra, Chain, Control, Derivation, Link, Model, Sizes
from fisherlab.symbolic import toolkit as tk

__all__ = ["DERIVATIONS"]

d, m = sp.symbols("d m", integer=True, positive=True)
J, M, Hm, Rm = (sp.MatrixSymbol(n_, r, c) for n_, r, c in
                (("J", m, d), ("M", m, m), ("H", d, d), ("R", d, d)))
v, u, w = sp.MatrixSymbol("v", d, 1), sp.MatrixSymbol("u", m, 1), sp.MatrixSymbol("w", m, 1)
JVP = sp.MatrixSymbol(r"\mathrm{jvp}_g(v)", m, 1)
HVP = sp.MatrixSymbol(r"\mathrm{hvp}_f(u)", m, 1)
VJP = sp.MatrixSymbol(r"\mathrm{vjp}_g(w)", d, 1)
PIPE = sp.MatrixSymbol(r"\mathrm{vjp}_g(\mathrm{hvp}_f(\mathrm{jvp}_g(v)))", d, 1)
PEARL = sp.MatrixSymbol(r"\mathrm{hvp}_L(v)", d, 1)
Mf = sp.MatrixSymbol(r"\nabla^{2} f", m, m)


def _directional(expr, point, base, direction, eps):
    """``d/d eps expr(base + eps direction)`` at ``eps = 0`` (forward-mode AD's definition).

    ``expr`` is written in the fresh symbols ``point``; substituting ``base + eps direction``
    for them keeps every ``Derivative`` taken with respect to a plain symbol.
    """
    shifted = expr.subs({p: b + eps * di for p, b, di in zip(point, base, direction)},
                        simultaneous=True)
    return sp.diff(shifted, eps).subs(eps, 0).doit()


def _fresh(name, n):
    return sp.symbols(f"{name}_1:{n + 1}", real=True)


def _jvp(gs, theta, v, eps):
    xi = _fresh("xi", len(theta))
    at_xi = dict(zip(theta, xi))
    return sp.Matrix([_directional(g.subs(at_xi, simultaneous=True), xi, theta, v, eps)
                      for g in gs])


def _vjp(gs, theta, w):
    """``nabla_theta <c, g(theta)>`` with a constant cotangent ``c``, then ``c = w``."""
    c = sp.symbols(f"c_1:{len(gs) + 1}", real=True)
    pairing = sp.Add(*[ci * g for ci, g in zip(c, gs)])
    grad = sp.Matrix([sp.diff(pairing, t) for t in theta])
    return grad.subs(dict(zip(c, w)), simultaneous=True)


def _output_hvp(f, eta, u, at=None, u_value=None):
    """``nabla_eta (d/d eps f(eta + eps u) at eps = 0)``: reverse-over-forward HVP.

    Written in plain symbols ``eta``, ``u``, then evaluated at ``eta = at``, ``u = u_value``.
    """
    zeta = _fresh("zeta", len(eta))
    directional = _directional(f(*zeta), zeta, eta, u, _EPS)
    h = sp.Matrix([sp.diff(directional, e) for e in eta])
    sub = {}
    if at is not None:
        sub.update(zip(eta, at))
    if u_value is not None:
        sub.update(zip(u, u_value))
    return h.subs(sub, simultaneous=True) if sub else h


_EPS = sp.Symbol("epsilon", real=True)


def _values(sizes):
    dd, mm = sizes[d], sizes[m]
    theta = sp.symbols(f"theta_1:{dd + 1}", real=True)
    eta = sp.symbols(f"eta_1:{mm + 1}", real=True)
    vv = sp.Matrix(sp.symbols(f"v_1:{dd + 1}", real=True))
    uu = sp.Matrix(sp.symbols(f"u_1:{mm + 1}", real=True))
    ww = sp.Matrix(sp.symbols(f"w_1:{mm + 1}", real=True))
    gs = [sp.Function(f"g_{k + 1}")(*theta) for k in range(mm)]
    f = sp.Function("f")
    at_g = dict(zip(eta, gs))
    Jx = sp.Matrix(mm, dd, lambda k, i: sp.diff(gs[k], theta[i]))
    L = f(*gs)
    xi = _fresh("xi", dd)
    L_xi = L.subs(dict(zip(theta, xi)), simultaneous=True)
    return {
        v: vv, u: uu, w: ww, J: Jx,
        M: sp.hessian(f(*eta), eta).subs(at_g),
        Mf: sp.hessian(f(*eta), eta),
        Hm: sp.hessian(L, theta),
        Rm: sum((sp.diff(f(*eta), eta[k]).subs(at_g) * sp.hessian(gs[k], theta)
                 for k in range(mm)), sp.zeros(dd)),
        JVP: lambda: _jvp(gs, theta, vv, _EPS),
        HVP: lambda: _output_hvp(f, eta, uu),
        VJP: lambda: _vjp(gs, theta, ww),
        PIPE: lambda: _vjp(gs, theta, _output_hvp(f, eta, uu, at=gs,
                                                  u_value=_jvp(gs, theta, vv, _EPS))),
        PEARL: lambda: sp.Matrix([sp.diff(_directional(L_xi, xi, theta, vv, _EPS), t)
                                  for t in theta]),
    }


_MODEL = Model(Sizes.of([{d: 3, m: 2}]), _values,
               describe=r"$g_1, g_2$ undefined functions of $\theta\in\mathbb R^3$, $f$ an "
                        r"undefined function of $\eta\in\mathbb R^2$; $J = \partial g/\partial\theta$, "
                        r"$M = \nabla^2 f$ at $\eta = g(\theta)$, $H = \nabla^2(f\circ g)$, "
                        r"$R = \sum_k \partial_k f\,\nabla^2 g_k$; each AD product computed by "
                        r"its definition",
               defines=(M, Mf, Hm, Rm))
_SQUARE = Model(Sizes.of([{d: 2, m: 2}]), _values,
                describe=r"the same generic model at $d = m = 2$ (a square $J$)",
                defines=(M, Mf, Hm, Rm))
_T = sp.symbols("t_1:4")
_E = sp.symbols("e_1:3")
_WITNESS = {sp.Function("g_1"): sp.Lambda(_T[:3], _T[0] + _T[1] ** 2),
            sp.Function("g_2"): sp.Lambda(_T[:3], _T[0] * _T[1] - _T[2]),
            sp.Function("f"): sp.Lambda(_E, sp.log(sp.exp(_E[0]) + sp.exp(_E[1])))}
_WITNESS_SQ = {sp.Function("g_1"): sp.Lambda(_T[:2], _T[0] + _T[1] ** 2),
               sp.Function("g_2"): sp.Lambda(_T[:2], _T[0] * _T[1]),
               sp.Function("f"): sp.Lambda(_E, sp.log(sp.exp(_E[0]) + sp.exp(_E[1])))}
_CONCRETE = "witness: g = (θ₁ + θ₂², θ₁θ₂ − θ₃), f = log(e^η₁ + e^η₂) (softmax cross-entropy)"

_GGN_V = sp.MatMul(J.T, M, J, v)


def _proof():
    return [
        Chain(JVP, [Link(J * v, _MODEL, label="forward", why="chain rule for each g_k")]),
        Chain(HVP, [Link(Mf * u, _MODEL, why="chain rule; mixed partials commute (f is C²)")],
              part=1),
        Chain(VJP, [Link(J.T * w, _MODEL, why="linearity of the gradient: ∇_θ⟨w, g⟩ = Jᵀw")],
              part=2),
        Chain(PIPE, [
            Link(J.T * (M * (J * v)), _MODEL, label="pipeline",
                 why="parts 1-3 composed: u = Jv, the output HVP at η = g(θ), the VJP with w = MJv"),
            Link(_GGN_V, Algebra(), why="associativity: F v = (JᵀMJ)v"),
        ], part=3),
        Chain(PEARL, [Link(Hm * v, _MODEL, why="chain rule; mixed partials commute")], part=4),
        Chain(Hm * v, [
            Link((J.T * M * J + Rm) * v, _MODEL, label="residual",
                 why="second-order chain rule: H = JᵀMJ + Σ_k ∂_kf ∇²g_k"),
            Link(_GGN_V + Rm * v, Algebra(), why="distributivity"),
        ], part=5),
    ]


FISHER_VECTOR_PRODUCT = Derivation(
    name="matrix_free.fisher_vector_product",
    title="Matrix-free Fisher/GGN-vector product Jᵀ(M(Jv)) and Pearlmutter's Hv",
    conclusion=(sp.Eq(JVP, J * v, evaluate=False),
                sp.Eq(HVP, Mf * u, evaluate=False),
                sp.Eq(VJP, J.T * w, evaluate=False),
                sp.Eq(PIPE, _GGN_V, evaluate=False),
                sp.Eq(PEARL, Hm * v, evaluate=False),
                sp.Eq(Hm * v, _GGN_V + Rm * v, evaluate=False)),
    proof=_proof,
    tier="A-model",
    scope="generic model map g and output loss f (undefined functions), d = 3 parameters, "
          "m = 2 outputs; the transposes control at d = m = 2",
    controls=[
        Control("transposes_swapped", target="pipeline",
                replace=(J.T * (M * (J * v)), J * (M * (J.T * v))), specialise={d: m},
                at=_SQUARE, witness=_WITNESS_SQ,
                why="J(M(Jᵀv)) in place of Jᵀ(M(Jv)): the transposes in the wrong places (well "
                    "typed for a square J); witness g = (θ₁ + θ₂², θ₁θ₂), f = log-sum-exp"),
        Control("output_hessian_dropped", target="pipeline",
                replace=(J.T * (M * (J * v)), J.T * (J * v)), witness=_WITNESS,
                why="Jᵀ(Jv): the output Hessian taken as the identity (right only for squared "
                    "error); " + _CONCRETE),
        Control("hvp_for_ggn_vp", target="residual",
                replace=((J.T * M * J + Rm) * v, _GGN_V), witness=_WITNESS,
                why="Pearlmutter's Hv claimed equal to the GGN product: the residual term "
                    "dropped; " + _CONCRETE),
    ],
    assumptions=[r"a smooth model map $g:\mathbb R^d\to\mathbb R^m$ and output loss "
                 r"$f:\mathbb R^m\to\mathbb R$, $L = f\circ g$",
                 r"for the Fisher of a natural-parameter family $M = \nabla^2 A = \Lambda$ "
                 r"(`fisher_ggn.natural_parameters`)"],
    axioms={"symmetry of second derivatives":
            r"$f$ and $g$ are $C^2$, so mixed partials commute (Schwarz): the forward-over-reverse "
            r"product used by JAX equals the reverse-over-forward form checked here"},
    references=[tk.REF_JOHNSON_2017 + ", App. A, eq. (43) (F v = Jᵀ(M(Jv)))",
                tk.REF_GROSSE_2022 + " (Gauss-Newton-vector products, Hessian-free optimization)",
                tk.REF_SCHRAUDOLPH_2002,
                "B. A. Pearlmutter, 'Fast exact multiplication by the Hessian', Neural "
                "Computation 6(1), 1994",
                "J. Martens, 'Deep learning via Hessian-free optimization', ICML 2010"],
    numeric=["fisherlab.fisher_vp", "fisherlab.ggn_vp", "fisherlab.hvp"],
    tested_by=["tests/proofs/test_matrix_free.py::test_products_equal_symbolic_matrices_times_v"],
)

DERIVATIONS = [FISHER_VECTOR_PRODUCT]
