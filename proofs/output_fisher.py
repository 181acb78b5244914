r"""Closed-form output-space Fisher of every likelihood family, from the definition.

For each family of :mod:`fisherlab.likelihoods._symbolic` the output-space Fisher
``F_out(eta) = E_{y ~ p(.|eta)}[grad_eta log p grad_eta log p^T]`` is computed from its
definition (SymPy score, exact expectation of the family) and shown equal to the closed
form the numeric code uses (``<Family>._output_fisher``):

=======================  ===========================================  =======================
family (outputs)         closed form                                   ``= Hess A``?
=======================  ===========================================  =======================
Categorical (logits)     ``diag(p) - p p^T``, ``p = softmax(eta)``     yes
Gaussian (mean)          ``I / sigma^2``                               yes
Bernoulli (logits)       ``diag(sigma(eta)(1 - sigma(eta)))``          yes
Poisson (log-rate)       ``diag(e^eta)``                               yes
GaussianMeanVariance     ``diag(e^{-s_1..s_D}, 1/2, ..., 1/2)``        no (not natural)
=======================  ===========================================  =======================

For the natural-parameter families (CONVENTIONS.md: ``F_out(eta) = grad^2 A(eta)``) the
Fisher is the Hessian of the log-partition and the output-space Hessian of the NLL does
not depend on the target: every ``d/dy_m`` of every entry is ``0`` and the Hessian equals
the Fisher at every target -- which is why Fisher = GGN for them (seed
003_377ac27c40267f84.txt App. A; Martens 2020 §9.2). For the (mean, log-variance)
Gaussian the output Hessian *does* depend on ``y`` (its ``(mu, s)`` entry is
``(y - mu) e^{-s}``): equal to the Fisher only in expectation. The false claim
"independent of ``y``" is a negative control rejected with a witness.

Categorical entries are checked in the exact coordinates of
:func:`information_equality.softmax_coordinates` (``z_k = e^{eta_k}``, ``s = sum e^{eta}``).
"""

from __future__ import annotations

import sympy as sp

from fisherlab.likelihoods import _symbolic as lik
from fisherlab.symbolic import LegacyDerivation, NegativeControl, Step, Tier
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import (
    BERNOULLI_SIZES,
    CATEGORICAL_SIZES,
    GAUSSIAN_SIZES,
    GENERAL_K_AXIOMS,
    GMV_SIZES,
    POISSON_SIZES,
    coordinate_witness,
    family_axioms,
    gaussian_variance_symbol,
    general_categorical,
    moment_expectation,
    softmax_coordinates,
)

__all__ = ["DERIVATIONS", "closed_form", "gmv_output_hessian"]

REF_AMARI = tk.REF_AMARI_1998
REF_KUNSTNER = tk.REF_KUNSTNER_2019
REF_MARTENS = tk.REF_MARTENS_2020 + " §9 (the output-space Fisher and the GGN)"
REF_SEED_003_A = tk.REF_JOHNSON_2017 + (" App. A: the Fisher and the generalized Gauss-Newton "
                                     "matrices (output-space Fisher of exponential families)")
REF_SEED_003_S7 = tk.REF_JOHNSON_2017 + (" §7, eqs. (19)-(22): zero-mean score and "
                                      "E[score score^T] = -E[Hessian of log p]")


_SOURCE = "fisherlab.likelihoods._symbolic"


def _sigmoid(e):
    return sp.exp(e) / (1 + sp.exp(e))


def closed_form(likelihood: lik.SymbolicLikelihood, variance=None) -> sp.Matrix:
    """The closed-form output Fisher the numeric code implements, in the family's outputs.

    ``variance`` is the fixed Gaussian variance (default: the positive symbol
    :func:`information_equality.gaussian_variance_symbol`, as in the proofs).
    """
    name, out = likelihood.name, likelihood.outputs
    if name == "Categorical":
        z = sp.Matrix([sp.exp(e) for e in out])
        p = z / sp.Add(*z)
        return sp.diag(*p) - p * p.T
    if name == "Gaussian":
        var = gaussian_variance_symbol() if variance is None else sp.sympify(variance)
        return sp.eye(len(out)) / var
    if name == "Bernoulli":
        return sp.diag(*[_sigmoid(e) * (1 - _sigmoid(e)) for e in out])
    if name == "Poisson":
        return sp.diag(*[sp.exp(e) for e in out])
    if name == "GaussianMeanVariance":
        D = len(out) // 2
        return sp.diag(*([sp.exp(-s) for s in out[D:]] + [sp.Rational(1, 2)] * D))
    raise ValueError(f"no closed form for family {name!r}")


def _fisher(L, E):
    s = L.score()
    n = len(s)
    return sp.Matrix(n, n, lambda i, j: E(s[i] * s[j]))


def _target_derivatives(H, targets):
    """Every ``d H_ij / d y_m``, stacked (one matrix per target component)."""
    return [H.diff(y) for y in targets]


def _natural_steps(L, E, label, closed_display, coords=None):
    """Definition -> closed form; Hess A; target independence of the NLL Hessian."""
    F = _fisher(L, E)
    closed = closed_form(L)
    hess_A = sp.hessian(L.log_partition, L.outputs)
    H = L.hessian_nll()
    if coords is not None:
        F, closed, hess_A, H_c = (m.subs(coords) for m in (F, closed, hess_A, H))
    else:
        H_c = H
    n = len(L.outputs)
    zero_stack = [sp.zeros(n, n) for _ in L.targets]
    return [
        Step.equal(f"{label}: the Fisher from its definition E[s s^T] is the closed form",
                   F, closed,
                   justification=f"score = SymPy gradient of log_density ({_SOURCE}); exact "
                                 "expectation of the family, entry by entry",
                   display=r"\mathbb E_y[\nabla_\eta\log p\,\nabla_\eta\log p^\top] = "
                           + closed_display + rf"\qquad ({label})"),
        Step.equal(f"{label}: the closed form is the Hessian of the log-partition A",
                   hess_A, closed,
                   justification=f"SymPy Hessian of log_partition ({_SOURCE})",
                   display=r"\nabla^2_\eta A(\eta) = " + closed_display + rf"\qquad ({label})"),
        Step.equal(f"{label}: the output Hessian of the NLL does not depend on the target "
                   "(d/dy_m of every entry is 0)",
                   _target_derivatives(H, L.targets), zero_stack,
                   justification="the log-density is linear in the sufficient statistic "
                                 "(natural parameters)",
                   display=r"\partial_{y_m}\big[\nabla^2_\eta(-\log p(y\mid\eta))\big]_{ij} = 0"
                           r"\quad\forall\, i, j, m" + rf"\qquad ({label})"),
        Step.equal(f"{label}: at every target the output Hessian of the NLL equals the Fisher",
                   H_c, closed,
                   justification="SymPy Hessian of -log_density with symbolic targets",
                   display=r"\nabla^2_\eta(-\log p(y\mid\eta)) = F_{\mathrm{out}}(\eta)"
                           r"\quad\forall y" + rf"\qquad ({label})"),
    ]


# --------------------------------------------------------------------------- categorical


def _categorical_general_steps():
    g = general_categorical()
    K, eta, j, k, l, m, p, Z = g["K"], g["eta"], g["j"], g["k"], g["l"], sp.Symbol(
        "m", integer=True, positive=True), g["p"], g["Z"]
    y = sp.IndexedBase("y", real=True)
    finish = g["finish"]
    # Log-density with a general target vector y (one-hot or soft): sum_j y_j eta_j - log Z.
    logp = sp.Sum(y[j] * eta[j], (j, 1, K)) - sp.log(Z)
    H = -finish(sp.diff(logp, eta[k], eta[l]))
    closed = sp.KroneckerDelta(k, l) * p(k) - p(k) * p(l)
    s_k = finish(sp.diff(g["logp"], eta[k]))
    s_l = finish(sp.diff(g["logp"], eta[l]))
    return [
        Step.equal("general K: E_c[s_k s_l] = delta_kl p_k - p_k p_l", g["E"](s_k * s_l), closed,
                   justification="sum over the class c with the categorical pmf; axioms "
                                 "'index range', 'canonical dummy index', 'linearity of the finite sum'",
                   display=r"F_{kl} = \sum_{c=1}^K p_c(\delta_{ck} - p_k)(\delta_{cl} - p_l) = "
                           r"\delta_{kl}p_k - p_kp_l"),
        Step.equal("general K: the Hessian of A = log sum_j e^eta_j is the same matrix",
                   finish(sp.diff(sp.log(Z), eta[k], eta[l])), closed,
                   justification="SymPy derivatives of the IndexedBase log-sum-exp; axiom 'index range'",
                   display=r"\partial^2_{\eta_k\eta_l}\log\sum_j e^{\eta_j} = \delta_{kl}p_k - p_kp_l"),
        Step.equal("general K: the NLL Hessian with a general target vector y equals it and "
                   "d/dy_m of it is 0",
                   [H, H.diff(y[m])], [closed, 0],
                   justification="the target enters log p linearly, sum_j y_j eta_j",
                   display=r"\nabla^2_\eta\Big(-\sum_j y_j\eta_j + \log\sum_j e^{\eta_j}\Big) = "
                           r"\mathrm{diag}(p) - pp^\top,\quad \partial_{y_m}(\cdot) = 0"),
    ]


def _categorical_steps():
    steps = _categorical_general_steps()
    for K in CATEGORICAL_SIZES:
        L = lik.categorical(K)
        _, _, subs, _ = softmax_coordinates(K)
        steps += _natural_steps(L, moment_expectation(L), f"K = {K}",
                                r"\mathrm{diag}(p) - pp^\top", coords=subs)
    return steps


def _categorical_controls():
    K = 3
    L = lik.categorical(K)
    E = moment_expectation(L)
    _, _, subs, p = softmax_coordinates(K)
    w = coordinate_witness(K)

    def missing():
        return Step.equal("F = diag(p)", _fisher(L, E).subs(subs), sp.diag(*p), justification="false")

    def bernoulli_formula():
        return Step.equal("F = diag(p (1 - p))", _fisher(L, E).subs(subs),
                          sp.diag(*[q * (1 - q) for q in p]), justification="false")

    def empirical():
        y = {L.targets[0]: 0, L.targets[1]: 1, L.targets[2]: 0}
        g = (-L.score()).subs(y)
        return Step.equal("NLL Hessian = g g^T at the label y = e_2",
                          L.hessian_nll().subs(subs), (g * g.T).subs(subs), justification="false")

    return [
        NegativeControl("missing p p^T term", "K = 3: F_out = diag(p)", missing, witness=w),
        NegativeControl("Bernoulli formula on softmax outputs",
                        "K = 3: F_out = diag(p(1 - p)) (independent-sigmoid Fisher applied to a "
                        "softmax: drops the off-diagonal -p_k p_l)", bernoulli_formula, witness=w),
        NegativeControl("empirical Fisher for the Hessian",
                        "K = 3: the NLL Hessian equals the gradient outer product g g^T at the "
                        "label y = e_2 (Kunstner et al. 2019: EF != GGN)", empirical, witness=w),
    ]


# --------------------------------------------------------------------------- gaussian, bernoulli, poisson


def _gaussian_steps():
    steps = []
    for C in GAUSSIAN_SIZES:
        L = lik.gaussian(C, gaussian_variance_symbol())
        steps += _natural_steps(L, moment_expectation(L), f"C = {C}", r"I/\sigma^2")
    return steps


def _gaussian_controls():
    L = lik.gaussian(2, gaussian_variance_symbol())
    E = moment_expectation(L)
    var = gaussian_variance_symbol()

    def variance():
        return Step.equal("F = sigma^2 I", _fisher(L, E), var * sp.eye(2), justification="false")

    def unit():
        return Step.equal("F = I", _fisher(L, E), sp.eye(2), justification="false")

    return [
        NegativeControl("variance for precision", "C = 2: F_out = sigma^2 I", variance,
                        witness={var: 2}),
        NegativeControl("variance forgotten", "C = 2: F_out = I (sigma^2 = 1 assumed)", unit,
                        witness={var: 2}),
    ]


def _bernoulli_steps():
    steps = []
    for C in BERNOULLI_SIZES:
        L = lik.bernoulli(C)
        steps += _natural_steps(L, moment_expectation(L, sp.factor), f"C = {C}",
                                r"\mathrm{diag}\big(\sigma(\eta)(1 - \sigma(\eta))\big)")
    return steps


def _bernoulli_controls():
    L = lik.bernoulli(2)
    E = moment_expectation(L, sp.factor)
    q = sp.Matrix([_sigmoid(e) for e in L.outputs])

    def softmax_formula():
        return Step.equal("F = diag(q) - q q^T", _fisher(L, E), sp.diag(*q) - q * q.T,
                          justification="false")

    def no_square():
        return Step.equal("F = diag(sigma)", _fisher(L, E), sp.diag(*q), justification="false")

    return [
        NegativeControl("softmax formula on sigmoid outputs",
                        "C = 2: F_out = diag(q) - q q^T, q = sigma(eta) (independent outputs "
                        "have no off-diagonal coupling)", softmax_formula),
        NegativeControl("missing (1 - sigma) factor", "C = 2: F_out = diag(sigma(eta))", no_square),
    ]


def _poisson_steps():
    steps = []
    for C in POISSON_SIZES:
        L = lik.poisson(C)
        steps += _natural_steps(L, moment_expectation(L), f"C = {C}",
                                r"\mathrm{diag}(e^{\eta})")
    return steps


def _poisson_controls():
    L = lik.poisson(2)
    E = moment_expectation(L)
    lam = sp.Matrix([sp.exp(e) for e in L.outputs])

    def rate_param():
        return Step.equal("F = diag(1/lambda)", _fisher(L, E),
                          sp.diag(*[1 / x for x in lam]), justification="false")

    def uncentred():
        y = L.targets
        return Step.equal("F = E[y y^T]", _fisher(L, E),
                          sp.Matrix(2, 2, lambda i, j: E(y[i] * y[j])), justification="false")

    return [
        NegativeControl("Fisher of the rate, not the log-rate",
                        "C = 2: F_out = diag(1/lambda), the Fisher in lambda = e^eta (missing the "
                        "Jacobian d lambda/d eta = lambda on both sides)", rate_param),
        NegativeControl("uncentred second moment",
                        "C = 2: F_out = E[y y^T] = diag(lambda) + lambda lambda^T (the second "
                        "moment of the sufficient statistic, not its covariance)", uncentred),
    ]


# --------------------------------------------------------------------------- gaussian mean / log-variance


def gmv_output_hessian(L):
    """The target-dependent NLL Hessian of GaussianMeanVariance: per coordinate
    ``[[e^{-s}, r e^{-s}], [r e^{-s}, r^2 e^{-s}/2]]``, ``r = y - mu`` (outputs ``mu`` then ``s``)."""
    D = len(L.targets)
    mu, s, y = L.outputs[:D], L.outputs[D:], L.targets
    H = sp.zeros(2 * D, 2 * D)
    for d in range(D):
        r, w = y[d] - mu[d], sp.exp(-s[d])
        H[d, d] = w
        H[d, D + d] = H[D + d, d] = r * w
        H[D + d, D + d] = r ** 2 * w / 2
    return H


def _gmv_steps():
    steps = []
    for D in GMV_SIZES:
        L = lik.gaussian_mean_variance(D)
        E = moment_expectation(L)
        label = f"D = {D}"
        closed = closed_form(L)
        H = L.hessian_nll()
        H_closed = gmv_output_hessian(L)
        steps += [
            Step.equal(f"{label}: the Fisher from its definition is diag(e^-s, 1/2)",
                       _fisher(L, E), closed,
                       justification=f"SymPy score of log_density ({_SOURCE}); exact Gaussian "
                                     "moments of the family",
                       display=r"\mathbb E_y[\nabla\log p\,\nabla\log p^\top] = "
                               r"\mathrm{diag}(e^{-s_1},\dots,e^{-s_D},\tfrac12,\dots,\tfrac12)"
                               + rf"\qquad ({label})"),
            Step.equal(f"{label}: the output Hessian of the NLL depends on the target: "
                       "its (mu_d, s_d) entry is (y_d - mu_d) e^{-s_d}",
                       H, H_closed,
                       justification="SymPy Hessian of -log_density with symbolic targets",
                       display=r"\nabla^2_{(\mu,s)}(-\log p) = \begin{pmatrix} e^{-s} & (y-\mu)e^{-s}"
                               r"\\ (y-\mu)e^{-s} & \tfrac12 (y-\mu)^2 e^{-s}\end{pmatrix}"
                               r"\ \text{per coordinate}" + rf"\qquad ({label})"),
            Step.equal(f"{label}: d/dy_1 of the output Hessian is nonzero: "
                       "d/dy_1 H[mu_1, s_1] = e^{-s_1}",
                       H.diff(L.targets[0])[0, D], sp.exp(-L.outputs[D]),
                       justification="differentiation of the previous step's entry",
                       display=r"\partial_{y_1}\big[\nabla^2(-\log p)\big]_{\mu_1 s_1} = e^{-s_1} \ne 0"
                               + rf"\qquad ({label})"),
            Step.equal(f"{label}: in expectation over y ~ p the Hessian is the Fisher",
                       H.applyfunc(E), closed,
                       justification="E[y - mu] = 0, E[(y - mu)^2] = e^s (exact moments)",
                       display=r"\mathbb E_y[\nabla^2(-\log p)] = F_{\mathrm{out}}"
                               + rf"\qquad ({label})"),
        ]
    return steps


def _gmv_controls():
    L = lik.gaussian_mean_variance(1)
    E = moment_expectation(L)
    H = L.hessian_nll()
    y = L.targets[0]
    s = L.outputs[1]

    def independent():
        return Step.equal("d/dy of the output Hessian is 0", H.diff(y), sp.zeros(2, 2),
                          justification="false")

    def variance_param():
        return Step.equal("F = diag(e^-s, e^-2s / 2)", _fisher(L, E),
                          sp.diag(sp.exp(-s), sp.exp(-2 * s) / 2), justification="false")

    def pointwise():
        return Step.equal("H(y) = F", H, closed_form(L), justification="false")

    return [
        NegativeControl("target independence (true only for natural parameters)",
                        "D = 1: the output Hessian of the NLL does not depend on y", independent),
        NegativeControl("Fisher in (mu, sigma^2), not (mu, log sigma^2)",
                        "D = 1: F_out = diag(e^{-s}, e^{-2s}/2) = diag(1/sigma^2, 1/(2 sigma^4))",
                        variance_param),
        NegativeControl("pointwise Hessian = Fisher",
                        "D = 1: the NLL Hessian at a target equals the Fisher (Fisher = GGN "
                        "assumed for non-natural outputs)", pointwise),
    ]


# --------------------------------------------------------------------------- derivations

_REFS = (REF_SEED_003_A, REF_SEED_003_S7, REF_MARTENS, REF_AMARI)
_ASSUME = r"targets drawn from the model, $y \sim p(\cdot\mid\eta)$, in the Fisher"


def _numeric(cls):
    return (f"fisherlab.likelihoods.{cls}.output_fisher",
            f"fisherlab.likelihoods.{cls}.output_hessian")


DERIVATIONS = [
    LegacyDerivation(
        name="output_fisher.categorical",
        title="Output-space Fisher: categorical logits, diag(p) - p p^T",
        statement=r"F_{\mathrm{out}}(\eta) = \mathbb E_y[\nabla_\eta\log p\,\nabla_\eta\log p^\top] "
                  r"= \mathrm{diag}(p) - pp^\top = \nabla^2_\eta\log\textstyle\sum_k e^{\eta_k} = "
                  r"\nabla^2_\eta(-\log p(y\mid\eta))\ \ \forall y,\quad p = \mathrm{softmax}(\eta)",
        tier=Tier.AB,
        scope="general K (IndexedBase/Sum) and K = 2..5 with every logit and target symbolic",
        build=_categorical_steps,
        negative_controls=_categorical_controls(),
        assumptions=(r"logits $\eta\in\mathbb R^K$; targets one-hot (or any vector $y$ in the "
                     r"Hessian steps: the log-density is linear in $y$)", _ASSUME,
                     r"tier B identities in the exact coordinates $z_k = e^{\eta_k}$ ($k<K$), "
                     r"$s = \sum_j e^{\eta_j}$"),
        axioms={**GENERAL_K_AXIOMS, **family_axioms(lik.categorical(2))},
        references=_REFS + (REF_KUNSTNER,),
        numeric=_numeric("Categorical"),
    ),
    LegacyDerivation(
        name="output_fisher.gaussian",
        title="Output-space Fisher: Gaussian mean, I / sigma^2",
        statement=r"F_{\mathrm{out}}(\mu) = I/\sigma^2 = \nabla^2_\mu\frac{\|\mu\|^2}{2\sigma^2} = "
                  r"\nabla^2_\mu(-\log p(y\mid\mu))\ \ \forall y",
        tier=Tier.B,
        scope="C = 1..4 outputs, every mean and target symbolic, symbolic variance sigma^2 > 0",
        build=_gaussian_steps,
        negative_controls=_gaussian_controls(),
        assumptions=(r"$y\sim\mathcal N(\mu, \sigma^2 I_C)$, $\sigma^2 > 0$ fixed", _ASSUME),
        axioms=family_axioms(lik.gaussian(1)),
        references=_REFS,
        numeric=_numeric("Gaussian"),
    ),
    LegacyDerivation(
        name="output_fisher.bernoulli",
        title="Output-space Fisher: Bernoulli logits, diag(sigma (1 - sigma))",
        statement=r"F_{\mathrm{out}}(\eta) = \mathrm{diag}\big(\sigma(\eta)(1-\sigma(\eta))\big) = "
                  r"\nabla^2_\eta\textstyle\sum_c\log(1 + e^{\eta_c}) = "
                  r"\nabla^2_\eta(-\log p(y\mid\eta))\ \ \forall y",
        tier=Tier.B,
        scope="C = 1..4 independent outputs, every logit and target symbolic",
        build=_bernoulli_steps,
        negative_controls=_bernoulli_controls(),
        assumptions=(r"independent $y_c\in\{0,1\}$, $P(y_c = 1) = \sigma(\eta_c)$", _ASSUME),
        axioms=family_axioms(lik.bernoulli(1)),
        references=_REFS,
        numeric=_numeric("Bernoulli"),
    ),
    LegacyDerivation(
        name="output_fisher.poisson",
        title="Output-space Fisher: Poisson log-rate, diag(e^eta)",
        statement=r"F_{\mathrm{out}}(\eta) = \mathrm{diag}(e^{\eta}) = "
                  r"\nabla^2_\eta\textstyle\sum_c e^{\eta_c} = "
                  r"\nabla^2_\eta(-\log p(y\mid\eta))\ \ \forall y",
        tier=Tier.B,
        scope="C = 1..4 independent outputs, every log-rate and target symbolic",
        build=_poisson_steps,
        negative_controls=_poisson_controls(),
        assumptions=(r"independent $y_c\sim\mathrm{Poisson}(e^{\eta_c})$", _ASSUME),
        axioms=family_axioms(lik.poisson(1)),
        references=_REFS,
        numeric=_numeric("Poisson"),
    ),
    LegacyDerivation(
        name="output_fisher.gaussian_mean_variance",
        title="Output-space Fisher: Gaussian (mean, log-variance), diag(e^-s, 1/2); "
              "its NLL Hessian depends on the target",
        statement=r"F_{\mathrm{out}}(\mu, s) = \mathrm{diag}(e^{-s}, \tfrac12) = "
                  r"\mathbb E_y[\nabla^2(-\log p)],\quad \text{but}\quad "
                  r"\partial_y\nabla^2(-\log p(y\mid\mu,s)) \ne 0",
        tier=Tier.B,
        scope="D = 1..3 targets (C = 2D outputs), every mean, log-variance and target symbolic",
        build=_gmv_steps,
        negative_controls=_gmv_controls(),
        assumptions=(r"independent $y_d\sim\mathcal N(\mu_d, e^{s_d})$; outputs ordered "
                     r"$(\mu_1..\mu_D, s_1..s_D)$; $s = \log\sigma^2$ is not a natural parameter",
                     _ASSUME),
        axioms=family_axioms(lik.gaussian_mean_variance(1)),
        references=_REFS + (REF_KUNSTNER,),
        numeric=_numeric("GaussianMeanVariance"),
        notes="This family is the library's counterexample to Fisher = GGN: the GGN uses the "
              "target-dependent Hessian (the steps 'the output Hessian of the NLL depends on the "
              "target'), the Fisher its expectation (the steps 'in expectation over y ~ p the "
              "Hessian is the Fisher').",
    ),
]
