r"""Matrix-free curvature products: ``F v = J^T (M (J v))`` and Pearlmutter's ``H v``.

Seed 003_377ac27c40267f84.txt App. A eq. (43): the Fisher (GGN) of a model ``g(theta)`` with
output loss ``f`` acts on a vector as ``F v = J^T (M (J v))`` with ``M = nabla^2 f(g(theta))``:
a Jacobian-vector product of ``g`` (forward mode), a small Hessian-vector product of ``f``,
and a vector-Jacobian product of ``g`` (reverse mode). This is exactly how
``fl.ggn_vp``/``fl.fisher_vp`` compute it; ``fl.hvp`` differentiates the gradient along ``v``
(Pearlmutter 1994) and differs from the GGN product by the residual term.

Scope (tier A, generic model): ``g = (g_1, g_2)`` undefined ``Function``\ s of
``theta = (theta_1, theta_2, theta_3)`` and ``f`` an undefined ``Function`` of the two outputs;
``v``, ``u``, ``w`` fully symbolic vectors; the directional derivatives are taken literally,
``d/d eps (.)(theta + eps v)`` at ``eps = 0``, as forward-mode AD defines them.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import LegacyDerivation, NegativeControl, Step, Tier

D, M_OUT = 3, 2

REFERENCES = [
    "seed 003_377ac27c40267f84.txt App. A eq. (43) (F v = J^T (M (J v)): JVP, output HVP, VJP)",
    "seed 004_bb4f7e8c8840a6b5.txt (Grosse, CSC2541 Lecture 4: Gauss-Newton-vector products, "
    "Hessian-free optimization)",
    "N. N. Schraudolph, Fast curvature matrix-vector products for second-order gradient "
    "descent, Neural Computation 14(7), 2002",
    "B. A. Pearlmutter, Fast exact multiplication by the Hessian, Neural Computation 6(1), 1994",
    "J. Martens, Deep learning via Hessian-free optimization, ICML 2010",
]


def _setup(d=D, m=M_OUT, concrete=False):
    theta = sp.symbols(f"theta_1:{d + 1}", real=True)
    eta = sp.symbols(f"eta_1:{m + 1}", real=True)
    v = sp.Matrix(sp.symbols(f"v_1:{d + 1}", real=True))
    eps = sp.Symbol("epsilon", real=True)
    if concrete:  # witnesses: polynomial model map, log-sum-exp output loss
        a, b = theta[0], theta[1]
        gs = [a + b ** 2, a * b, b - a][:m]
        f = sp.Lambda(eta, sp.log(sp.Add(*[sp.exp(e) for e in eta])))
    else:
        gs = [sp.Function(f"g_{k + 1}")(*theta) for k in range(m)]
        f = sp.Function("f")
    J = sp.Matrix(m, d, lambda k, i: sp.diff(gs[k], theta[i]))
    M = sp.hessian(f(*eta), eta).subs(dict(zip(eta, gs)))
    return theta, eta, v, eps, gs, f, J, M


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


def _steps():
    theta, eta, v, eps, gs, f, J, M = _setup()
    u = sp.Matrix(sp.symbols(f"u_1:{M_OUT + 1}", real=True))
    w = sp.Matrix(sp.symbols(f"w_1:{M_OUT + 1}", real=True))
    jv = _jvp(gs, theta, v, eps)
    hvp_out = _output_hvp(f, eta, u)
    pipeline = _vjp(gs, theta, _output_hvp(f, eta, u, at=gs, u_value=jv))
    F = sp.Matrix(D, D, lambda i, j: sp.Add(*[J[k, i] * M[k, l] * J[l, j]
                                             for k in range(M_OUT) for l in range(M_OUT)]))
    L = f(*gs)
    xi = _fresh("xi", D)
    L_xi = L.subs(dict(zip(theta, xi)), simultaneous=True)
    pearlmutter = sp.Matrix([sp.diff(_directional(L_xi, xi, theta, v, eps), t) for t in theta])
    residual = sum((sp.diff(f(*eta), eta[k]).subs(dict(zip(eta, gs))) * sp.hessian(gs[k], theta)
                    for k in range(M_OUT)), sp.zeros(D))
    return [
        Step.equal("forward mode: d/d eps g(theta + eps v) at eps = 0 is J v",
                   jv, J * v, justification="chain rule for each g_k",
                   display=r"\mathrm{jvp}_g(v) = \tfrac{d}{d\epsilon}g(\theta+\epsilon v)"
                           r"\big|_0 = J v"),
        Step.equal("output Hessian-vector product: grad_eta (d/d eps f(eta + eps u) at 0) "
                   "is Hess f u",
                   hvp_out, sp.hessian(f(*eta), eta) * u,
                   justification="chain rule; axiom 'symmetry of second derivatives'",
                   display=r"\nabla_\eta\,\tfrac{d}{d\epsilon}f(\eta+\epsilon u)\big|_0 = "
                           r"\nabla^2 f(\eta)\,u"),
        Step.equal("reverse mode: grad_theta <w, g(theta)> (w constant) is J^T w",
                   _vjp(gs, theta, w), J.T * w, justification="linearity of the gradient",
                   display=r"\mathrm{vjp}_g(w) = \nabla_\theta\langle w, g(\theta)\rangle"
                           r" = J^\top w"),
        Step.equal("the composed pipeline vjp(hvp(jvp(v))) equals F v with F = J^T M J "
                   "built entry by entry (M = Hess f at g(theta))",
                   pipeline, F * v,
                   justification="steps 1-3 composed; F_ij = sum_kl J_ki M_kl J_lj",
                   display=r"J^\top\big(M(Jv)\big) = \Big(\sum_{k,l} J_{ki}M_{kl}J_{lj}\Big)_{ij} v"
                           r" = F v \quad (\text{seed 003 (43)})"),
        Step.equal("Pearlmutter: grad_theta (d/d eps L(theta + eps v) at 0) is Hess L v "
                   "(L = f o g)",
                   pearlmutter, sp.hessian(L, theta) * v,
                   justification="chain rule; axiom 'symmetry of second derivatives'",
                   display=r"\nabla_\theta\,\tfrac{d}{d\epsilon}L(\theta+\epsilon v)\big|_0 = "
                           r"\nabla^2 L\,v"),
        Step.equal("H v = J^T (M (J v)) + sum_k (d_k f) Hess g_k v: hvp and ggn_vp differ by "
                   "the residual term",
                   pearlmutter, pipeline + residual * v,
                   justification="second-order chain rule (seed 003 eq. (40))",
                   display=r"H v = J^\top M J v + \sum_k \partial_k f(g)\,\nabla^2 g_k\, v"),
    ]


_CONCRETE = "g = (theta_1 + theta_2^2, theta_1 theta_2), f = log(e^eta_1 + e^eta_2), d = 2"


def _control_transposed():
    theta, eta, v, eps, gs, f, J, M = _setup(d=2, m=2, concrete=True)
    return Step.equal("J (M (J^T v)) = J^T M J v", J * (M * (J.T * v)), J.T * M * J * v,
                      justification="false: transposes in the wrong places (square J, so "
                                    "the wrong product is well-typed)")


def _control_no_output_hessian():
    theta, eta, v, eps, gs, f, J, M = _setup(d=2, m=2, concrete=True)
    return Step.equal("J^T (J v) = J^T M J v", J.T * (J * v), J.T * M * J * v,
                      justification="false: the output Hessian M is not the identity "
                                    "(that is the squared-error Gauss-Newton only)")


def _control_hvp_is_ggn_vp():
    theta, eta, v, eps, gs, f, J, M = _setup(d=2, m=2, concrete=True)
    L = f(*gs)
    return Step.equal("Pearlmutter H v = J^T M J v", sp.hessian(L, theta) * v, J.T * M * J * v,
                      justification="false: the Hessian keeps the residual term")


DERIVATIONS = [
    LegacyDerivation(
        name="matrix_free.fisher_vector_product",
        title="Matrix-free Fisher/GGN-vector product J^T(M(Jv)) and Pearlmutter's Hv",
        statement=r"F v = J^\top\big(M(J v)\big),\ M = \nabla^2 f(g(\theta));\qquad "
                  r"\nabla_\theta\tfrac{d}{d\epsilon}L(\theta+\epsilon v)\big|_0 = H v = F v + "
                  r"\sum_k \partial_k f\,\nabla^2 g_k\,v",
        assumptions=[r"generic smooth model map $g:\mathbb R^d\to\mathbb R^m$ and output loss "
                     r"$f:\mathbb R^m\to\mathbb R$ (undefined functions)",
                     r"for the Fisher of a natural-parameter family $M = \nabla^2 A = \Lambda$ "
                     r"(see fisher_ggn.natural_parameters)"],
        tier=Tier.A,
        scope=f"generic model map g (undefined Functions) and generic output loss f; "
              f"d = {D} parameters, m = {M_OUT} outputs, v symbolic",
        build=_steps,
        negative_controls=[
            NegativeControl("transposes_swapped", "J (M (J^T v)) in place of J^T (M (J v)); "
                            "witness " + _CONCRETE, _control_transposed),
            NegativeControl("output_hessian_dropped", "J^T (J v) (M = I) in place of "
                            "J^T (M (J v)); witness " + _CONCRETE, _control_no_output_hessian),
            NegativeControl("hvp_for_ggn_vp", "Pearlmutter's H v claimed equal to the GGN "
                            "product; witness " + _CONCRETE, _control_hvp_is_ggn_vp),
        ],
        axioms={"symmetry of second derivatives":
                r"$f$ and $g$ are $C^2$, so mixed partials commute (Schwarz): the "
                r"forward-over-reverse product $\tfrac{d}{d\epsilon}\nabla f(\eta+\epsilon u)|_0$ "
                r"used by JAX equals the reverse-over-forward form checked here, and SymPy "
                r"orders the variables of a mixed Derivative canonically"},
        references=REFERENCES,
        numeric=["fisherlab.fisher_vp", "fisherlab.ggn_vp", "fisherlab.hvp"],
    ),
]
