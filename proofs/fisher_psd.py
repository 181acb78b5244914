r"""The score has mean zero and the Fisher, its covariance, is positive semidefinite; for an
exponential family the Hessian of the log-partition is the covariance of the sufficient
statistic, so the negative log-likelihood is convex in the natural parameters.

For a density ``p(y | theta)`` with ``int p dy = 1`` whose derivative may be taken under the
integral sign (the one axiom),

.. math:: \mathbb E[\partial_i \log p] = \int p\,\partial_i\log p\,dy = \int \partial_i p\,dy
          = \partial_i \int p\,dy = \partial_i 1 = 0,

and ``v^T E[s s^T] v = E[(s^T v)^2] >= 0`` for every ``v``: the Fisher ``F = E[s s^T]`` is the
covariance of the score ``s`` and positive semidefinite. For ``p = h(y) exp(<eta, t(y)> -
A(eta))`` the score in ``eta`` is ``t - grad A`` and ``-log p = A(eta) - <eta, t> - log h``
has Hessian ``grad^2 A``, free of ``y``; the moment axiom gives ``E[(t - grad A)(t - grad
A)^T] = grad^2 A``, hence ``grad^2 A = Cov t`` is positive semidefinite and the negative
log-likelihood is convex in ``eta``.

Tiers: the general-density parts are tier A (any density, one component ``theta_i``; any
dimension ``d`` of the score); the exponential-family parts are tier A-model (the log-partition
``A`` an undefined function of ``K = 1, 2, 3`` natural parameters), so the derivation as a
whole reaches A-model.
"""

from __future__ import annotations

import sympy as sp
from sympy.core.function import AppliedUndef

from fisherlab.symbolic import (Algebra, Axiom, Chain, Control, Derivation, Explicit, Lemma, Link,
                                Model, Sizes)
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Expect, Hess, Scalar

__all__ = ["DERIVATIONS"]

# --------------------------------------------------------------------------- general density

y = sp.Symbol("y", real=True)
th = sp.Symbol("theta_i", real=True)
p = sp.Function("p")
P = p(y, th)
_R = (y, -sp.oo, sp.oo)
_SCORE = sp.Derivative(sp.log(P), th)
_MEAN_SCORE = sp.Integral(_SCORE * P, _R)

_NORMALISATION = Axiom("normalisation", sp.Eq(sp.Integral(P, _R), 1, evaluate=False))
_INTERCHANGE = Axiom("differentiation under the integral sign",
                     sp.Eq(sp.Integral(sp.Derivative(P, th), _R),
                           sp.Derivative(sp.Integral(P, _R), th), evaluate=False))

#: a witness density that is not symmetric in its parameter: N(0, e^{2 theta})
_SCALE_GAUSSIAN = {p: sp.Lambda((y, th), sp.exp(-y ** 2 / (2 * sp.exp(2 * th)))
                                / (sp.sqrt(2 * sp.pi) * sp.exp(th)))}

# --------------------------------------------------------------------------- score covariance

d, K = sp.symbols("d K", integer=True, positive=True)
s = sp.MatrixSymbol("s", d, 1)
v = sp.MatrixSymbol("v", d, 1)
w = sp.MatrixSymbol("w", d, 1)
_FISHER = Expect(s * s.T, "y")
_QUAD = Scalar(v.T * _FISHER * v)
_SQUARE = Scalar(Expect(sp.MatMul(sp.Transpose(s.T * v), s.T * v), "y"))

_r = sp.Symbol("r", integer=True, positive=True)
_u = sp.MatrixSymbol("u", _r, 1)
_NONNEG = sp.Ge(Scalar(Expect(sp.MatMul(sp.Transpose(_u), _u), "y")), 0, evaluate=False)


_S_POINTS = sp.symbols("s_1:3", real=True)
_TWO_SCORES = Explicit(Sizes.of([{d: 2}]), values=lambda sizes: {s: sp.Matrix(_S_POINTS)},
                       operators={"y": tk.sample_average({_S_POINTS[0]: [1, -1],
                                                          _S_POINTS[1]: [2, -2]})},
                       describe="a score taking the values ±(1, 2) with probability ½ each (mean zero)")


def _square_axiom(vec, size):
    return Axiom("an expectation of a square is nonnegative", _NONNEG, {_r: size, _u: vec})


# --------------------------------------------------------------------------- exponential family

eta = sp.MatrixSymbol("eta", K, 1)
t = sp.MatrixSymbol("t", K, 1)
gradA = sp.MatrixSymbol(r"\nabla A", K, 1)
hessA = sp.MatrixSymbol(r"\nabla^{2} A", K, K)
nll = sp.Symbol(r"-\log p")
vK = sp.MatrixSymbol("v", K, 1)
_CENT = t - gradA
_COV = Expect(_CENT * sp.Transpose(_CENT), "y")
_HESS = Hess(nll, eta)
_EXPFAM_SIZES = Sizes.of([{K: 1}, {K: 2}, {K: 3}])
_A = sp.Function("A")


def _expfam(sizes):
    k = sizes[K]
    es = sp.symbols(f"eta_1:{k + 1}", real=True)
    ts = sp.symbols(f"t_1:{k + 1}", real=True)
    A = _A(*es)
    return {eta: sp.Matrix(es), t: sp.Matrix(ts),
            gradA: sp.Matrix([sp.diff(A, e) for e in es]),
            hessA: sp.hessian(A, es),
            nll: A - sp.Add(*[e * tt for e, tt in zip(es, ts)])}


def _expectation(h):
    """E_y[h] under exp(<eta, t> - A(eta)) by the moment axiom, at the size h is written in."""
    apps = [a for a in sp.sympify(h).atoms(AppliedUndef) if a.func == _A]
    if not apps:
        return h
    es = apps[0].args
    ts = sp.symbols(f"t_1:{len(es) + 1}", real=True)
    return tk.expfam_expectation(_A, es, ts)(h)


_MODEL = Model(_EXPFAM_SIZES, _expfam, operators={"y": _expectation},
               describe=r"$A(\eta)$ an undefined function of $K$ natural parameters; "
                        r"$-\log p = A(\eta) - \langle\eta, t\rangle$ (the base measure $h(y)$ "
                        r"does not depend on $\eta$); $\mathbb E_y$ by the moment axiom")

_WITNESS_A = {_A: sp.Lambda(sp.symbols("u_1:4"),
                            sp.log(1 + sp.exp(sp.Symbol("u_1")) + sp.exp(sp.Symbol("u_2"))
                                   + sp.exp(sp.Symbol("u_3"))))}


def _proof():
    me = SCORE_COVARIANCE
    return [
        Chain(_MEAN_SCORE, [
            Link(sp.Integral(sp.Derivative(P, th), _R), Algebra(), label="log_derivative",
                 why="p ∂ᵢ log p = ∂ᵢ p"),
            Link(sp.Derivative(sp.Integral(P, _R), th), _INTERCHANGE,
                 why="the derivative taken outside the integral (the axiom)"),
            Link(sp.Derivative(sp.Integer(1), th, evaluate=False), _NORMALISATION,
                 why="p is a density"),
            Link(sp.Integer(0), Algebra(), why="the derivative of a constant"),
        ]),
        Chain(_QUAD, [
            Link(Scalar(Expect(v.T * s * s.T * v, "y")),
                 tk.expectation_linearity(s * s.T, "y", left=v.T, right=v),
                 why="v does not depend on y"),
            Link(_SQUARE, Algebra(), label="gram", why="vᵀs sᵀv = (sᵀv)ᵀ(sᵀv)"),
            Link(sp.Integer(0), _square_axiom(s.T * v, 1), rel=">=",
                 why="the expectation of a square"),
        ], part=1),
        Chain(_COV, [Link(hessA, _MODEL, label="moment",
                          why="moment axiom with |α| ≤ 2: E[ttᵀ] − ∇A∇Aᵀ = e^{-A}∇²e^{A} − ∇A∇Aᵀ "
                              "= ∇²A")], part=2),
        Chain(_HESS, [Link(hessA, _MODEL, label="nll_hessian",
                           why="−log p = A(η) − ⟨η, t⟩ − log h(y): the linear term has no curvature")],
              part=3),
        Chain(Scalar(vK.T * _HESS * vK), [
            Link(Scalar(vK.T * hessA * vK), Lemma(me, part=3), why="part 4"),
            Link(Scalar(vK.T * _COV * vK), Lemma(me, part=2), why="part 3, read from right to left"),
            Link(Scalar(Expect(vK.T * _CENT * sp.Transpose(_CENT) * vK, "y")),
                 tk.expectation_linearity(_CENT * sp.Transpose(_CENT), "y", left=vK.T, right=vK),
                 why="v does not depend on y"),
            Link(Scalar(Expect(sp.MatMul(sp.Transpose(sp.Transpose(_CENT) * vK),
                                         sp.Transpose(_CENT) * vK), "y")), Algebra(),
                 why="vᵀ(t − ∇A)(t − ∇A)ᵀv = ((t − ∇A)ᵀv)²"),
            Link(sp.Integer(0), _square_axiom(sp.Transpose(_CENT) * vK, 1), rel=">=",
                 why="the expectation of a square"),
        ], part=4),
    ]


SCORE_COVARIANCE = Derivation(
    name="fisher_psd.score_covariance",
    title="The score has mean zero, the Fisher is its covariance and is PSD; ∇²A = Cov t ⪰ 0",
    conclusion=(sp.Eq(_MEAN_SCORE, 0, evaluate=False),
                sp.Ge(_QUAD, 0, evaluate=False),
                sp.Eq(_COV, hessA, evaluate=False),
                sp.Eq(_HESS, hessA, evaluate=False),
                sp.Ge(Scalar(vK.T * _HESS * vK), 0, evaluate=False)),
    proof=_proof,
    tier="A-model",
    scope="general density with one parameter component θᵢ and a score of any dimension d (tier "
          "A); exponential family with the log-partition A an undefined function of K = 1, 2, 3 "
          "natural parameters (tier A-model)",
    controls=[
        Control("density_for_log_density", target="conclusion:1", replace=(_SCORE, sp.Derivative(P, th)),
                witness=_SCALE_GAUSSIAN,
                why="E[∂ᵢ p] in place of E[∂ᵢ log p]: the derivative of the density has no zero "
                    "mean (witness: the scale family N(0, e^{2θ}))"),
        Control("bilinear_for_quadratic", target="conclusion:2", replace=(v.T * _FISHER * v, v.T * _FISHER * w),
                at=_TWO_SCORES,
                why="vᵀFw ≥ 0: positive semidefinite read as entry-wise nonnegative (F_ij ≥ 0); "
                    "the score takes two values with equal probability"),
        Control("second_moment_for_covariance", target="moment",
                replace=(_COV, Expect(t * t.T, "y")), witness=_WITNESS_A,
                why="the uncentred second moment E[ttᵀ] for the covariance (witness: the "
                    "categorical log-partition log(1 + Σ e^{η_k}))"),
    ],
    assumptions=[r"$p(y\mid\theta) > 0$ a density in $y$, differentiable in $\theta$, with "
                 r"$\int \partial_i p\,dy = \partial_i\int p\,dy$ (dominated convergence)",
                 r"exponential family $p = h(y)\exp\{\langle\eta, t(y)\rangle - A(\eta)\}$, "
                 r"$\eta$ in the interior of the natural parameter space"],
    axioms={"normalisation": r"$\int p(y\mid\theta)\,dy = 1$",
            "differentiation under the integral sign":
                r"$\int \partial_i p\,dy = \partial_i \int p\,dy$",
            "an expectation of a square is nonnegative":
                r"$\mathbb E[u^\top u] \ge 0$ for a real random vector $u$ (monotonicity of expectation)",
            **tk.EXPFAM_AXIOMS,
            "linearity of expectation": tk.STRUCTURAL_AXIOMS["linearity of expectation"]},
    references=[tk.REF_JOHNSON_2017 + ", §3 (the score has mean zero; the Fisher is its "
                "covariance), §7 and eq. (48) (∇²A = Cov t)",
                tk.REF_AMARI_1998, tk.REF_MARTENS_2020 + ", §5"],
    numeric=["fisherlab.fisher", "fisherlab.likelihoods.Categorical.output_fisher"],
    tested_by=["tests/proofs/test_fisher_psd.py::test_fisher_is_the_score_covariance_and_psd",
               "tests/proofs/test_fisher_psd.py::test_output_fisher_is_the_covariance_of_the_sufficient_statistic"],
)

DERIVATIONS = [SCORE_COVARIANCE]
