r"""The metric a divergence induces through a map: the general pullback (Johnson, App. C).

For ``g: R^d -> R^m`` and a divergence ``f: R^m x R^m -> R`` with ``f >= 0`` and ``f(a, a) = 0``,
let ``h(x, y) = f(g(x), g(y))``. Then at ``y = x``

.. math:: \partial_2 h(x, x) = 0,\qquad
          \partial^2_{22} h(x, x) = J^\top\,\partial^2_{22} f(g(x), g(x))\,J \succeq 0,
          \qquad J = \partial g(x)

(Johnson, eqs. 53--54): the second-order term of ``h(x, x + Delta)`` is the pullback of the
divergence's curvature. With ``f`` the KL divergence between exponential-family members with
natural parameters ``a`` and ``b``, ``f(a, b) = A(b) - A(a) - grad A(a)^T (b - a)``, the
curvature is ``grad^2 A`` and the pullback is the Fisher ``J^T grad^2 A J``; with the squared
Euclidean distance ``(1/2)||a - b||^2`` it is the Gauss--Newton matrix ``J^T J``.

Tier A-model. The divergence is generic: ``b -> f(a, b)`` has a minimum ``0`` at ``b = a``,
so its gradient vanishes there (the first-order condition) and, by Hadamard's lemma applied
twice, ``f(a, b) = (b - a)^T Q(a, b) (b - a)`` with ``Q`` symmetric and smooth: the links are
checked with the entries of ``Q`` and of ``g`` undefined functions at stated sizes. The sign
``partial^2_22 f(a, a) >= 0`` is the second-order condition at the minimum (an axiom).
"""

from __future__ import annotations

import itertools

import sympy as sp

from fisherlab.symbolic import Algebra, Axiom, Chain, Control, Derivation, Lemma, Link, Model, Sizes
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Diag, Scalar

__all__ = ["DERIVATIONS"]

d, m = sp.symbols("d m", integer=True, positive=True)
J = sp.MatrixSymbol("J", m, d)
D2h = sp.MatrixSymbol(r"\partial_2 h", d, 1)
H22h = sp.MatrixSymbol(r"\partial^2_{22} h", d, d)
H22f = sp.MatrixSymbol(r"\partial^2_{22} f", m, m)
H12f = sp.MatrixSymbol(r"\partial^2_{12} f", m, m)
D2hKL = sp.MatrixSymbol(r"\partial_2 h_{\mathrm{KL}}", d, 1)
H22hKL = sp.MatrixSymbol(r"\partial^2_{22} h_{\mathrm{KL}}", d, d)
H22hE = sp.MatrixSymbol(r"\partial^2_{22} h_{\mathrm{E}}", d, d)
hessA = sp.MatrixSymbol(r"\nabla^{2} A", m, m)
gradA = sp.MatrixSymbol(r"\nabla A", m, 1)
v = sp.MatrixSymbol("v", d, 1)
u = sp.MatrixSymbol("u", m, 1)

_SIZES = Sizes.of([{d: 1, m: 1}, {d: 2, m: 1}, {d: 1, m: 2}, {d: 2, m: 2}, {d: 3, m: 2}])
_A = sp.Function("A")


def _generic(sizes):
    """g_k(x) undefined; f(a, b) = (b - a)^T Q(a, b) (b - a), q_kl = q_lk undefined; h = f(g(x), g(y))."""
    n, k = sizes[d], sizes[m]
    xs = sp.symbols(f"x_1:{n + 1}", real=True)
    ys = sp.symbols(f"y_1:{n + 1}", real=True)
    a_s = sp.symbols(f"a_1:{k + 1}", real=True)
    b_s = sp.symbols(f"b_1:{k + 1}", real=True)
    g = [sp.Function(f"g_{i + 1}") for i in range(k)]
    q = {}
    for i, j in itertools.product(range(k), repeat=2):
        q[(i, j)] = q[(j, i)] if (j, i) in q else sp.Function(f"q_{i + 1}{j + 1}")
    diff = [b - a for a, b in zip(a_s, b_s)]

    def f(a, b):
        sub = dict(zip(a_s, a)) | dict(zip(b_s, b))
        return sp.Add(*[diff[i] * q[(i, j)](*a_s, *b_s) * diff[j]
                        for i, j in itertools.product(range(k), repeat=2)]).xreplace(sub)

    gx = [gi(*xs) for gi in g]
    gy = [gi(*ys) for gi in g]
    at = dict(zip(ys, xs))
    h = f(gx, gy)
    fa = f(a_s, b_s)
    on_diag = dict(zip(a_s, gx)) | dict(zip(b_s, gx))
    # the KL divergence between exponential-family members, natural parameters a and b
    kl = lambda a, b: (_A(*b) - _A(*a)  # noqa: E731
                       - sp.Add(*[sp.diff(_A(*a_s), s_).subs(dict(zip(a_s, a))) * (bi - ai)
                                  for s_, ai, bi in zip(a_s, a, b)]))
    hkl = kl(gx, gy)
    he = sp.Add(*[(gi - hi) ** 2 for gi, hi in zip(gx, gy)]) / 2
    return {
        J: sp.Matrix(k, n, lambda i, j: sp.diff(gx[i], xs[j])),
        D2h: sp.Matrix([sp.diff(h, yy) for yy in ys]).xreplace(at).doit(),
        H22h: sp.hessian(h, ys).xreplace(at).doit(),
        H22f: sp.hessian(fa, b_s).xreplace(on_diag).doit(),
        H12f: sp.Matrix(k, k, lambda i, j: sp.diff(fa, a_s[i], b_s[j])).xreplace(on_diag).doit(),
        D2hKL: sp.Matrix([sp.diff(hkl, yy) for yy in ys]).xreplace(at).doit(),
        H22hKL: sp.hessian(hkl, ys).xreplace(at).doit(),
        H22hE: sp.hessian(he, ys).xreplace(at).doit(),
        hessA: sp.hessian(_A(*a_s), a_s).subs(dict(zip(a_s, gx))),
        gradA: sp.Matrix([sp.diff(_A(*a_s), ai) for ai in a_s]).subs(dict(zip(a_s, gx))),
    }


_MODEL = Model(_SIZES, _generic,
               describe=r"$g_k(x)$ undefined functions; a generic divergence $f(a, b) = (b - a)^\top "
                        r"Q(a, b)(b - a)$ with $q_{kl} = q_{lk}$ undefined; $h(x, y) = f(g(x), g(y))$, "
                        r"derivatives in $y$ at $y = x$; $\partial^2 f$ at $a = b = g(x)$; "
                        r"$h_{\mathrm{KL}}$, $h_{\mathrm E}$ with $f = A(b) - A(a) - \nabla A(a)^\top(b - a)$ "
                        r"($A$ undefined) and $f = \tfrac12\|a - b\|^2$",
               defines=(D2h, D2hKL))

_SECOND_ORDER = Axiom("second-order condition at a minimum",
                      sp.Ge(Scalar(u.T * H22f * u), 0, evaluate=False))

_PULLBACK = J.T * H22f * J

_U = sp.symbols("u_1:3")
_WITNESS = {sp.Function("g_1"): sp.Lambda(sp.symbols("x_1:3"), sp.Symbol("x_1") ** 2 + sp.Symbol("x_2")),
            sp.Function("g_2"): sp.Lambda(sp.symbols("x_1:3"), sp.Symbol("x_1") * sp.Symbol("x_2")),
            _A: sp.Lambda(_U, sp.log(1 + sp.exp(_U[0]) + sp.exp(_U[1])))}


def _proof():
    me = GENERAL
    return [
        Chain(D2h, [Link(sp.ZeroMatrix(d, 1), _MODEL, label="first_order",
                         why="chain rule: ∂₂h = Jᵀ∂₂f(g(x), g(x)) and ∂₂f vanishes on the diagonal")]),
        Chain(H22h, [Link(_PULLBACK, _MODEL, label="second_order",
                          why="second-order chain rule; the term Σ_k ∂_{b_k}f ∇²g_k vanishes with ∂₂f")],
              part=1),
        Chain(Scalar(v.T * H22h * v), [
            Link(Scalar(v.T * _PULLBACK * v), Lemma(me, part=1), why="part 2"),
            Link(Scalar(sp.MatMul(sp.Transpose(J * v), H22f, J * v)), Algebra(), why="u = Jv"),
            Link(sp.Integer(0), Axiom(_SECOND_ORDER.name, _SECOND_ORDER.relation, {u: J * v}),
                 rel=">=", why="b ↦ f(a, b) ≥ 0 has its minimum 0 at b = a"),
        ], part=2),
        Chain(D2hKL, [Link(sp.ZeroMatrix(d, 1), _MODEL,
                           why="∂_b KL = Jᵀ(∇A(b) − ∇A(a)), zero at b = a")], part=3),
        Chain(H22hKL, [Link(J.T * hessA * J, _MODEL, label="kl",
                            why="∂²_bb KL = ∇²A(b): the pullback is the Fisher JᵀF_out J")], part=4),
        Chain(H22hE, [Link(J.T * J, _MODEL, label="euclidean",
                           why="∂²_bb ½‖a − b‖² = I: the pullback is the Gauss–Newton matrix JᵀJ")],
              part=5),
    ]


GENERAL = Derivation(
    name="pullback_metric.general",
    title="The pullback of a divergence's curvature: ∂²₂₂h(x, x) = Jᵀ∂²₂₂f J ⪰ 0; Fisher and Gauss-Newton",
    conclusion=(sp.Eq(D2h, sp.ZeroMatrix(d, 1), evaluate=False),
                sp.Eq(H22h, _PULLBACK, evaluate=False),
                sp.Ge(Scalar(v.T * H22h * v), 0, evaluate=False),
                sp.Eq(D2hKL, sp.ZeroMatrix(d, 1), evaluate=False),
                sp.Eq(H22hKL, J.T * hessA * J, evaluate=False),
                sp.Eq(H22hE, J.T * J, evaluate=False)),
    proof=_proof,
    tier="A-model",
    scope="generic map g (undefined g_k) and generic divergence f (undefined Q) at (d, m) = (1, 1), "
          "(2, 1), (1, 2), (2, 2), (3, 2); the KL case with A undefined",
    controls=[
        Control("cross_derivative_curvature", target="second_order", replace=(H22f, H12f),
                witness={**_WITNESS, sp.Function("q_11"): sp.Lambda(sp.symbols("w_1:5"), 1),
                         sp.Function("q_12"): sp.Lambda(sp.symbols("w_1:5"), 0),
                         sp.Function("q_22"): sp.Lambda(sp.symbols("w_1:5"), 2)},
                why="the mixed derivative ∂²_ab f in place of ∂²_bb f (on the diagonal it is its "
                    "negative)"),
        Control("kl_curvature_as_diag", target="kl", replace=(hessA, Diag(gradA)), witness=_WITNESS,
                why="∇²A → diag(∇A): for the softmax, diag(p) without −ppᵀ"),
        Control("euclidean_half_dropped", target="euclidean", replace=(J.T * J, 2 * J.T * J),
                witness=_WITNESS,
                why="the Gauss–Newton matrix of ‖a − b‖² taken for that of ½‖a − b‖² (a factor 2)"),
    ],
    assumptions=[r"$g$ smooth; $f \ge 0$ smooth with $f(a, a) = 0$, so $b \mapsto f(a, b)$ has a "
                 r"minimum at $b = a$",
                 "Hadamard's lemma: a smooth f with f(a, a) = 0 and ∂₂f(a, a) = 0 (the first-order "
                 "condition at the minimum) is (b − a)ᵀQ(a, b)(b − a), Q smooth and symmetric"],
    axioms={"second-order condition at a minimum":
            r"$u^\top\partial^2_{22} f(a, a)\,u \ge 0$ for every $u$: $b\mapsto f(a, b)$ has a "
            r"minimum at $b = a$"},
    references=[tk.REF_JOHNSON_2017 + ", App. C, eqs. (53)-(54)",
                tk.REF_AMARI_1998 + " (the Fisher metric)",
                tk.REF_MARTENS_2020 + ", §9 (the Fisher and the GGN as pulled-back metrics)"],
    numeric=["fisherlab.fisher", "fisherlab.ggn"],
    tested_by=["tests/proofs/test_pullback_metric.py::test_kl_pullback_is_the_fisher",
               "tests/proofs/test_pullback_metric.py::test_squared_distance_pullback_is_the_gauss_newton_matrix"],
)

DERIVATIONS = [GENERAL]
