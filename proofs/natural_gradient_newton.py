r"""When the Newton direction is the natural-gradient direction.

For a natural-parameter exponential family, ``-log p = A(g(theta)) - <g(theta), t>``, the Hessian
is ``J^T (nabla^2 A) J + R`` with the residual ``R = sum_k (dA/deta_k - t_k) nabla^2 g_k``
(``fisher_ggn.expected_hessian``). ``R`` vanishes

* at the predicted mean ``t = nabla A`` -- hence in expectation over the model's labels, so
  Newton's direction on the *expected* loss is the natural-gradient direction
  ``-F^{-1} nabla l`` with ``F = E[s s^T]`` (``fisher_ggn.natural_parameters``);
* for a model linear in ``theta`` (``nabla^2 g_k = 0``: linear, logistic and softmax
  regression), for every label.

Tier A-model: the generic model of ``proofs/fisher_ggn.py`` (``g_k`` and ``A`` undefined
functions, d = 2, K = 3) and, for the linear case, ``g(theta) = W theta`` with ``W`` symbolic.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import Algebra, Chain, Control, Derivation, Lemma, Link, Model
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import At, Diag, Expect, Hess

from .fisher_ggn import (_MODEL, _SIZES, _WITNESS, EXPECTED_HESSIAN, NATURAL, J, K, Lam, R, d,
                         gradA, hessA, logp, s, t, theta)

__all__ = ["DERIVATIONS"]

grad = sp.MatrixSymbol(r"\nabla\ell", d, 1)
logp_lin = sp.Symbol(r"\log p_{\rm lin}")


def _linear(sizes):
    """``g(theta) = W theta`` (``W`` symbolic) with an undefined log-partition ``A``."""
    th = sp.symbols(f"theta_1:{sizes[d] + 1}", real=True)
    eta = sp.symbols(f"eta_1:{sizes[K] + 1}", real=True)
    ts = sp.symbols(f"t_1:{sizes[K] + 1}", real=True)
    W = sp.Matrix(sizes[K], sizes[d], lambda k, i: sp.Symbol(f"W_{k + 1}{i + 1}", real=True))
    g = list(W * sp.Matrix(th))
    A = sp.Function("A")
    at_g = dict(zip(eta, g))
    return {
        theta: sp.Matrix(th), t: sp.Matrix(ts),
        logp_lin: sp.Add(*[gk * tk_ for gk, tk_ in zip(g, ts)]) - A(*g),
        J: W,
        hessA: sp.hessian(A(*eta), eta).subs(at_g),
        R: sum(((sp.diff(A(*eta), eta[k]).subs(at_g) - ts[k]) * sp.hessian(g[k], th)
                for k in range(sizes[K])), sp.zeros(sizes[d])),
    }


_LINEAR = Model(_SIZES, _linear,
                describe=r"$g(\theta) = W\theta$ with $W$ symbolic, $A(\eta)$ an undefined "
                         r"function, $d = 2$, $K = 3$",
                defines=(R, hessA))

_GGN_A = J.T * hessA * J
_H = Hess(-logp, theta)
_H_LIN = Hess(-logp_lin, theta)
_AT_MEAN = At(_H, t, gradA)
_NEWTON_E = sp.MatMul(-1, sp.Inverse(Expect(_H, "y")), grad)
_NATURAL = sp.MatMul(-1, sp.Inverse(Expect(s * s.T, "y")), grad)
_NEWTON_LIN = sp.MatMul(-1, sp.Inverse(_H_LIN), grad)
_GN_LIN = sp.MatMul(-1, sp.Inverse(_GGN_A), grad)


def _proof():
    N = NGN
    return [
        Chain(_AT_MEAN, [
            Link(At(_GGN_A + R, t, gradA), Lemma(EXPECTED_HESSIAN, part=0),
                 why="H = Jᵀ∇²AJ + R"),
            Link(_GGN_A, _MODEL, label="residual_at_mean",
                 why="R = Σ_k (∂_kA − t_k)∇²g_k vanishes at t = ∇A; J and ∇²A do not depend on t"),
        ]),
        Chain(_H_LIN, [
            Link(_GGN_A + R, Lemma(EXPECTED_HESSIAN, {logp: logp_lin}, part=0),
                 why="H = Jᵀ∇²AJ + R for every model"),
            Link(_GGN_A, _LINEAR, label="linear_model", why="∇²g_k = 0 for g(θ) = Wθ, so R = 0"),
        ], part=1),
        Chain(Expect(_H, "y"), [
            Link(_GGN_A, Lemma(EXPECTED_HESSIAN, part=1), why="E_y[H] = Jᵀ∇²AJ (E[t] = ∇A)"),
            Link(J.T * Lam * J, _MODEL, label="lambda",
                 why="Λ = ∇²A: the output Hessian of an exponential family is free of t"),
            Link(Expect(s * s.T, "y"), Lemma(NATURAL), label="fisher",
                 why="JᵀΛJ = E[ssᵀ] (Fisher = GGN), read right to left"),
        ], part=2),
        Chain(_NEWTON_E, [Link(_NATURAL, Lemma(N, part=2), why="E_y[H] = F (part 3)")], part=3),
        Chain(_NEWTON_LIN, [Link(_GN_LIN, Lemma(N, part=1), why="H = Jᵀ∇²AJ for a linear model "
                                                                  "(part 2)")], part=4),
    ]


NGN = Derivation(
    name="natural_gradient_newton.residual",
    title="Newton's direction is the natural-gradient direction when the Hessian's residual "
          "term vanishes",
    conclusion=(sp.Eq(_AT_MEAN, _GGN_A, evaluate=False),
                sp.Eq(_H_LIN, _GGN_A, evaluate=False),
                sp.Eq(Expect(_H, "y"), Expect(s * s.T, "y"), evaluate=False),
                sp.Eq(_NEWTON_E, _NATURAL, evaluate=False),
                sp.Eq(_NEWTON_LIN, _GN_LIN, evaluate=False)),
    definitions={s: tk.Grad(logp, theta)},
    proof=_proof,
    tier="A-model",
    scope="generic model (g_k, A undefined) and a linear model g = Wθ (A undefined), d = 2 "
          "parameters, K = 3 natural parameters",
    controls=[
        Control("residual_dropped_at_a_data_label", target="residual_at_mean",
                replace=(At(_GGN_A + R, t, gradA), _GGN_A + R), at=_MODEL, witness=_WITNESS,
                why="H = Jᵀ∇²AJ claimed at a data label for a nonlinear model: Newton's "
                    "direction on the per-label loss taken for the natural gradient"),
        Control("lambda_as_diag_p", target="lambda", replace=(Lam, Diag(gradA)), at=_MODEL,
                witness=_WITNESS,
                why="Λ → diag(p): the softmax output Hessian without its −ppᵀ term (p = ∇A) in "
                    "the Gauss-Newton system"),
    ],
    assumptions=[r"$-\log p = A(g(\theta)) - \langle g(\theta), t\rangle$ (natural parameters "
                 r"$\eta = g(\theta)$); $J$, $\nabla A$, $\nabla^2 A$ at $\eta = g(\theta)$; "
                 r"$\nabla\ell$ any vector (the gradient of the loss)",
                 r"the curvature matrices invertible where their inverses appear; part 1: the "
                 r"label set to the predicted mean; parts 3, 4: labels drawn from the model; "
                 r"part 5: Newton's direction for a linear model is the Gauss-Newton direction, "
                 r"which is the natural gradient's (Fisher = GGN)"],
    axioms=tk.EXPFAM_AXIOMS,
    references=[tk.REF_JOHNSON_2017 + ", §5 and App. A, eqs. (40)-(48)",
                tk.REF_GROSSE_2022 + " (F = G for exponential-family negative log-likelihoods)",
                tk.REF_MARTENS_2020 + ", §9.2"],
    numeric=["fisherlab.updates.newton", "fisherlab.updates.natural_gradient"],
    tested_by=["tests/updates/test_dense_updates.py::"
               "test_linear_model_newton_gauss_newton_equal_natural_gradient",
               "tests/updates/test_behaviour.py::"
               "test_natural_gradient_needs_far_fewer_steps_than_gradient_descent"],
)

DERIVATIONS = [NGN]
