r"""Fisher = GGN for natural-parameter families, and the Hessian = GGN + residual term.

For a model whose predictive is an exponential family in its natural parameter
``eta = g(theta)``,

.. math::
    p(y\mid\theta) = h(y)\exp\{\langle g(\theta), t(y)\rangle - A(g(\theta))\},

the output-space Hessian of the negative log-likelihood is ``\nabla^2 A`` (free of ``y``), so the
GGN ``J^T \Lambda J`` equals the Fisher ``E_y[s s^T]`` (``s`` the score); the Hessian of the NLL is
``J^T \nabla^2 A J`` plus a residual term whose expectation under the model vanishes.

Tier A-model: the chains are stated structurally (``J``, ``\Lambda``, ``s`` are symbols of the
right shapes) and each link is checked on a *generic model*: ``g_1..g_K`` undefined functions of
``theta_1..theta_d`` and ``A`` an undefined function of ``K`` arguments, at ``d = 2``, ``K = 3``
(nothing uses a special value; the sizes are fixed for cost). Expectations over ``y`` use the
exponential-family moment axiom ``E[t^alpha] = e^{-A} d^alpha e^{A}``
(:data:`~fisherlab.symbolic.toolkit.EXPFAM_AXIOMS`).
"""

from __future__ import annotations

import sympy as sp

from fisherlab.symbolic import Chain, Control, Derivation, Link, Model, Sizes
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Diag, Expect, Grad, Hess

__all__ = ["DERIVATIONS"]

d, K = sp.symbols("d K", integer=True, positive=True)
theta = sp.MatrixSymbol("theta", d, 1)
t = sp.MatrixSymbol("t", K, 1)
J = sp.MatrixSymbol("J", K, d)
gradA = sp.MatrixSymbol(r"\nabla A", K, 1)
hessA = sp.MatrixSymbol(r"\nabla^{2} A", K, K)
Lam = sp.MatrixSymbol("Lambda", K, K)
R = sp.MatrixSymbol("R", d, d)
logp = sp.Symbol(r"\log p")
s = sp.MatrixSymbol("s", d, 1)

_SIZES = Sizes.of([{d: 2, K: 3}])
_D, _K = 2, 3


def _generic(sizes):
    """The generic model at ``d = 2, K = 3``: ``g_k(theta)`` and ``A(eta)`` undefined."""
    th = sp.symbols(f"theta_1:{sizes[d] + 1}", real=True)
    eta = sp.symbols(f"eta_1:{sizes[K] + 1}", real=True)
    ts = sp.symbols(f"t_1:{sizes[K] + 1}", real=True)
    g = [sp.Function(f"g_{k + 1}")(*th) for k in range(sizes[K])]
    A = sp.Function("A")
    at_g = dict(zip(eta, g))
    lp = sp.Add(*[gk * tk_ for gk, tk_ in zip(g, ts)]) - A(*g)
    nll_eta = A(*eta) - sp.Add(*[e * tk_ for e, tk_ in zip(eta, ts)])
    return {
        theta: sp.Matrix(th), t: sp.Matrix(ts), logp: lp,
        J: sp.Matrix(len(g), len(th), lambda k, i: sp.diff(g[k], th[i])),
        gradA: sp.Matrix([sp.diff(A(*eta), e) for e in eta]).subs(at_g),
        hessA: sp.hessian(A(*eta), eta).subs(at_g),
        Lam: sp.hessian(nll_eta, eta).subs(at_g),
        R: sum(((sp.diff(A(*eta), eta[k]).subs(at_g) - ts[k]) * sp.hessian(g[k], th)
                for k in range(len(g))), sp.zeros(len(th))),
    }, (A, eta, ts, at_g)


def _values(sizes):
    return _generic(sizes)[0]


def _expectation(sizes):
    _, (A, eta, ts, at_g) = _generic(sizes)
    return tk.expfam_expectation(A, eta, ts, at=at_g)


_MODEL = Model(
    _SIZES, _values, operators={"y": _expectation({d: _D, K: _K})},
    describe=r"$g_k(\theta)$ and $A(\eta)$ undefined functions; $\log p = \langle g(\theta), t\rangle "
             r"- A(g(\theta))$, $J = \partial g/\partial\theta$, $\nabla A$ and $\nabla^2 A$ at "
             r"$\eta = g(\theta)$, $\Lambda = \nabla^2_\eta(A(\eta) - \langle\eta, t\rangle)$ at "
             r"$g(\theta)$, $R = \sum_k (\partial_k A - t_k)\nabla^2_\theta g_k$; "
             r"$\mathbb E_y$ by the moment axiom",
    defines=(Lam, hessA, R))

#: Concrete stand-ins for the witnesses: polynomial maps, the softmax log-partition, a one-hot label.
_TH = sp.symbols("theta_1:3", real=True)
_ETA = sp.symbols("eta_1:4", real=True)
_U = sp.symbols("u_1:4")
_WITNESS = {
    sp.Function("g_1"): sp.Lambda(_TH, _TH[0] + _TH[1] ** 2),
    sp.Function("g_2"): sp.Lambda(_TH, _TH[0] * _TH[1]),
    sp.Function("g_3"): sp.Lambda(_TH, _TH[1] - _TH[0]),
    sp.Function("A"): sp.Lambda(_U, sp.log(sp.exp(_U[0]) + sp.exp(_U[1]) + sp.exp(_U[2]))),
    sp.Symbol("t_1", real=True): 1, sp.Symbol("t_2", real=True): 0, sp.Symbol("t_3", real=True): 0,
}

_DEFS = {s: Grad(logp, theta)}
_RESID = t - gradA
_FISHER = Expect(s * s.T, "y")
_GGN = J.T * Lam * J

REFERENCES = [
    tk.REF_JOHNSON_2017 + ", App. A, eqs. (39)-(47) (Hessian = Jᵀ(Hess f)J + (Hess g)∇f; "
    "Fisher = E[Jᵀ(Hess A)J] for exponential families)",
    tk.REF_GROSSE_2022 + " (F = G for exponential-family negative log-likelihoods)",
    tk.REF_MARTENS_2020 + ", §9.2",
    tk.REF_SCHRAUDOLPH_2002,
]
NUMERIC = ["fisherlab.ggn", "fisherlab.fisher", "fisherlab.hessian", "fisherlab.symbolic.curvature"]
TESTED_BY = [
    "tests/proofs/test_fisher_ggn.py::test_expected_hessian_over_model_labels_is_the_ggn_and_the_fisher",
    "tests/proofs/test_fisher_ggn.py::test_bernoulli_expected_hessian_against_symbolic_ground_truth",
    "tests/proofs/test_fisher_ggn.py::test_mean_variance_gaussian_fisher_differs_from_ggn_numerically",
    "tests/curvature/test_against_symbolic.py::test_dense_curvature_equals_symbolic_ground_truth",
]
_ASSUMPTIONS = [r"$g:\mathbb R^d\to\mathbb R^K$ a smooth model map, $A$ a smooth log-partition, "
                r"$g(\theta)$ in the interior of the natural parameter space",
                r"targets drawn from the model, $y \sim p(\cdot\mid\theta)$"]


def _fisher_proof():
    return Chain(_FISHER, [
        Link(Expect(J.T * _RESID * sp.Transpose(_RESID) * J, "y"), _MODEL, label="score",
             why="chain rule: s = ∇_θ log p = Jᵀ(t − ∇A(g(θ)))"),
        Link(J.T * Expect(_RESID * sp.Transpose(_RESID), "y") * J, _MODEL, label="linearity",
             why="linearity of expectation; J does not depend on y"),
        Link(J.T * hessA * J, _MODEL, label="moment",
             why="moment axiom with |α| ≤ 2: E[(t − ∇A)(t − ∇A)ᵀ] = e^{-A}∇²e^{A} − ∇A∇Aᵀ = ∇²A"),
        Link(_GGN, _MODEL, label="lambda",
             why="−log p = A(η) − ⟨η, t⟩ + const is linear in t, so Λ = ∇²A, free of y"),
    ])


NATURAL = Derivation(
    name="fisher_ggn.natural_parameters",
    title="Fisher = GGN for exponential families in their natural parameters",
    conclusion=sp.Eq(_FISHER, _GGN, evaluate=False),
    definitions=_DEFS,
    proof=_fisher_proof,
    tier="A-model",
    scope="generic model: g_k(θ) and A(η) undefined functions, d = 2 parameters, K = 3 natural "
          "parameters",
    controls=[
        Control("empirical_fisher_for_fisher", target="conclusion", replace=(_FISHER, s * s.T),
                at=_MODEL, witness=_WITNESS,
                why="the outer product of the score at the data label (the empirical Fisher) in "
                    "place of its expectation under the model; witness: g = (θ₁ + θ₂², θ₁θ₂, "
                    "θ₂ − θ₁), A = log-sum-exp (softmax), one-hot label t = (1, 0, 0)"),
        Control("lambda_as_diag_p", target="moment", replace=(hessA, Diag(gradA)), at=_MODEL,
                witness=_WITNESS,
                why="Λ → diag(p): the softmax output Hessian without its −ppᵀ term (p = ∇A)"),
    ],
    assumptions=_ASSUMPTIONS,
    axioms=tk.EXPFAM_AXIOMS,
    references=REFERENCES,
    numeric=NUMERIC,
    tested_by=TESTED_BY,
    notes="That each library family (categorical, Bernoulli, Gaussian, Poisson) is an exponential "
          "family in the library's output parameters, with output Fisher ∇²A, is proved family by "
          "family in `output_fisher.*`; the mean-variance Gaussian is not (its outputs are not "
          "natural parameters), and there the GGN with the data label differs from the Fisher "
          "(`tests/proofs/test_fisher_ggn.py::test_mean_variance_gaussian_fisher_differs_from_ggn_numerically`).",
)


_HESS = Hess(-logp, theta)
_HESS_R = J.T * hessA * J + R


def _hessian_proof():
    return [
        Chain(_HESS, [Link(_HESS_R, _MODEL, label="hessian",
                           why="second-order chain rule through g")]),
        Chain(Expect(_HESS, "y"), [
            Link(Expect(_HESS_R, "y"), _MODEL, why="the first part, inside the expectation"),
            Link(J.T * hessA * J + Expect(R, "y"), _MODEL, why="linearity; J and ∇²A do not depend on y"),
            Link(J.T * hessA * J, _MODEL, label="residual_mean",
                 why="moment axiom with |α| = 1: E[t] = ∇A, so E[R] = Σ_k E[∂_kA − t_k]∇²g_k = 0"),
        ], part=1),
    ]


EXPECTED_HESSIAN = Derivation(
    name="fisher_ggn.expected_hessian",
    title="Hessian = GGN + residual term; its expectation under the model is the GGN",
    conclusion=(sp.Eq(_HESS, _HESS_R, evaluate=False),
                sp.Eq(Expect(_HESS, "y"), J.T * hessA * J, evaluate=False)),
    proof=_hessian_proof,
    tier="A-model",
    scope="generic model: g_k(θ) and A(η) undefined functions, d = 2 parameters, K = 3 natural "
          "parameters",
    controls=[
        Control("residual_dropped", target="hessian", replace=(_HESS_R, J.T * hessA * J),
                at=_MODEL, witness=_WITNESS,
                why="Hessian = GGN: the residual term Σ_k (∂_kA − t_k)∇²g_k dropped at a data label"),
        Control("residual_sign_flipped", target="hessian", replace=(R, -R), at=_MODEL,
                witness=_WITNESS, why="the residual with the wrong sign, (t_k − ∂_kA)"),
    ],
    assumptions=_ASSUMPTIONS,
    axioms=tk.EXPFAM_AXIOMS,
    references=REFERENCES,
    numeric=NUMERIC,
    tested_by=TESTED_BY[:2],
)

DERIVATIONS = [NATURAL, EXPECTED_HESSIAN]
