r"""The information equality, family by family.

For a likelihood ``p(y | eta)`` in its output parameters ``eta`` and targets drawn
from the model, ``y ~ p(. | eta)`` (seed 003_377ac27c40267f84.txt §7, eqs. (19)-(22)):

.. math::
    \mathbb E_y[\nabla_\eta \log p(y\mid\eta)] = 0, \qquad
    F(\eta) := \mathbb E_y[\nabla_\eta \log p\, \nabla_\eta \log p^\top]
             = -\mathbb E_y[\nabla^2_\eta \log p(y\mid\eta)].

Every tier-B chain starts from the single symbolic source of the family,
:mod:`fisherlab.likelihoods._symbolic` (``categorical(K)``, ``gaussian(C, variance)``,
``bernoulli(C)``, ``poisson(C)``, ``gaussian_mean_variance(D)``): the score and the
Hessian are SymPy derivatives of its ``log_density`` and the expectations use its exact
``expectation`` operator, applied monomial by monomial in the targets (linearity of
expectation; :func:`moment_expectation`). The tier-A chains are the two stated
exceptions: the categorical in general ``K`` (``IndexedBase``/``Sum``) and the general
exponential family with an abstract log-partition ``A`` (an undefined ``Function``);
every fact they take by hand is listed in their ``axioms``.

Categorical identities are checked in the exact coordinates
``z_k = e^{eta_k}`` (``k < K``) and ``s = sum_j e^{eta_j}`` (:func:`softmax_coordinates`):
the map ``eta -> (z_1..z_{K-1}, s)`` is a bijection of ``R^K`` onto the open set
``{z > 0, s > z_1 + ... + z_{K-1}}``, every entry becomes a polynomial over a power of
``s`` and ``expand`` decides it (the same identities written in ``e^{eta_k}`` need
``cancel`` on expanded ``(sum e^{eta})^3`` denominators: 10x slower at ``K = 5``).

The helpers (:func:`~fisherlab.symbolic.toolkit.moment_expectation`,
:func:`~fisherlab.symbolic.toolkit.softmax_coordinates`, ...) live in the proof toolkit.
"""

from __future__ import annotations


import sympy as sp

from fisherlab.likelihoods import _symbolic as lik
from fisherlab.symbolic import LegacyDerivation, NegativeControl, Step, Tier
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import (
    BERNOULLI_SIZES,
    CATEGORICAL_SIZES,
    EXPFAM_AXIOMS,
    EXPFAM_SIZES,
    GAUSSIAN_SIZES,
    GENERAL_K_AXIOMS,
    GMV_SIZES,
    POISSON_SIZES,
    coordinate_witness,
    expfam_expectation,
    family_axioms,
    gaussian_variance_symbol,
    general_categorical,
    moment_expectation,
    softmax_coordinates,
)

__all__ = ["DERIVATIONS"]


REF_SEED_003_S7 = tk.REF_JOHNSON_2017 + (" §7, eqs. (19)-(22): zero-mean score and "
                                      "E[score score^T] = -E[Hessian of log p]")
REF_SEED_003_A = tk.REF_JOHNSON_2017 + (" App. A: the Fisher and the generalized Gauss-Newton "
                                     "matrices (output-space Fisher of exponential families)")
REF_AMARI = tk.REF_AMARI_1998
REF_KUNSTNER = tk.REF_KUNSTNER_2019
REF_MARTENS = tk.REF_MARTENS_2020 + " §9 (the output-space Fisher and the GGN)"

_SYMBOLIC_SOURCE = "fisherlab.likelihoods._symbolic"


# --------------------------------------------------------------------------- shared helpers


def _fisher(likelihood, E, score=None):
    s = likelihood.score() if score is None else score
    n = len(s)
    return sp.Matrix(n, n, lambda i, j: E(s[i] * s[j]))


# --------------------------------------------------------------------------- categorical, general K




def _categorical_general_steps():
    g = general_categorical()
    k, l, c, p, E = g["k"], g["l"], g["c"], g["p"], g["E"]
    eta, logp, finish = g["eta"], g["logp"], g["finish"]
    delta = sp.KroneckerDelta
    score_k = finish(sp.diff(logp, eta[k]))
    score_l = finish(sp.diff(logp, eta[l]))
    hess = finish(sp.diff(logp, eta[k], eta[l]))
    closed = delta(k, l) * p(k) - p(k) * p(l)
    return [
        Step.equal(
            "general K: the score of class c is delta_ck - p_k",
            score_k, delta(c, k) - p(k),
            justification="SymPy differentiation of the log-pmf in the IndexedBase logits; "
                          "axiom 'index range'",
            display=r"\partial_{\eta_k}\log p(c\mid\eta) = \delta_{ck} - p_k,\quad "
                    r"p_k = e^{\eta_k}\big/\textstyle\sum_{j=1}^K e^{\eta_j}"),
        Step.equal(
            "general K: the score has zero mean, E_c[delta_ck - p_k] = 0",
            E(score_k), 0,
            justification="sum over c with the categorical pmf; axioms 'index range', "
                          "'canonical dummy index' (sum_c p_c = 1), 'linearity of the finite sum'",
            display=r"\mathbb E_c[\partial_{\eta_k}\log p] = \sum_{c=1}^K p_c(\delta_{ck} - p_k) "
                    r"= p_k - p_k\sum_c p_c = 0"),
        Step.equal(
            "general K: the Fisher by definition is E_c[s_k s_l] = delta_kl p_k - p_k p_l",
            E(score_k * score_l), closed,
            justification="expanding the product and summing over c; same axioms",
            display=r"\mathbb E_c[(\delta_{ck} - p_k)(\delta_{cl} - p_l)] = \delta_{kl}p_k - p_k p_l"),
        Step.equal(
            "general K: the Hessian of log p(c) is -(delta_kl p_k - p_k p_l), the same for every class c",
            hess, -closed,
            justification="second SymPy derivative in the IndexedBase logits; axiom 'index range'",
            display=r"\partial^2_{\eta_k\eta_l}\log p(c\mid\eta) = -(\delta_{kl}p_k - p_k p_l)"),
        Step.equal(
            "general K: the negative expected Hessian equals the Fisher",
            E(-hess), E(score_k * score_l),
            justification="sum over c of the class-independent Hessian (sum_c p_c = 1)",
            display=r"-\mathbb E_c[\nabla^2\log p] = \mathbb E_c[\nabla\log p\,\nabla\log p^\top] "
                    r"= \mathrm{diag}(p) - pp^\top"),
    ]


# --------------------------------------------------------------------------- tier-B chains


def _family_steps(likelihood, E, label, coords=None):
    """Zero-mean score and information equality for one family at one size."""
    score = likelihood.score()
    mean = score.applyfunc(E)
    fisher = _fisher(likelihood, E, score)
    neg_exp_hess = likelihood.hessian_nll().applyfunc(E)
    if coords is not None:
        mean, fisher, neg_exp_hess = (m.subs(coords) for m in (mean, fisher, neg_exp_hess))
    n = len(score)
    return [
        Step.equal(
            f"{label}: the score has zero mean", mean, sp.zeros(n, 1),
            justification=f"score = SymPy gradient of log_density from {_SYMBOLIC_SOURCE}; "
                          "exact expectation of the family (linearity over target monomials)",
            display=r"\mathbb E_{y\sim p(\cdot\mid\eta)}[\nabla_\eta\log p(y\mid\eta)] = 0"
                    + rf"\qquad ({label})"),
        Step.equal(
            f"{label}: E[score score^T] = -E[Hessian of log p] (= E[Hessian of the NLL])",
            fisher, neg_exp_hess,
            justification="entry-wise exact expectations of both sides",
            display=r"\mathbb E_y[\nabla_\eta\log p\,\nabla_\eta\log p^\top] = "
                    r"-\mathbb E_y[\nabla^2_\eta\log p]" + rf"\qquad ({label})"),
    ]


def _categorical_b_steps():
    steps = []
    for K in CATEGORICAL_SIZES:
        L = lik.categorical(K)
        _, _, subs, _ = softmax_coordinates(K)
        steps += _family_steps(L, moment_expectation(L), f"K = {K}", coords=subs)
    return steps


def _categorical_steps():
    return _categorical_general_steps() + _categorical_b_steps()


def _gaussian_steps():
    steps = []
    for C in GAUSSIAN_SIZES:
        L = lik.gaussian(C, gaussian_variance_symbol())
        steps += _family_steps(L, moment_expectation(L), f"C = {C}")
    return steps


def _bernoulli_steps():
    steps = []
    for C in BERNOULLI_SIZES:
        L = lik.bernoulli(C)
        steps += _family_steps(L, moment_expectation(L, sp.factor), f"C = {C}")
    return steps


def _poisson_steps():
    steps = []
    for C in POISSON_SIZES:
        L = lik.poisson(C)
        steps += _family_steps(L, moment_expectation(L), f"C = {C}")
    return steps


def _gmv_steps():
    steps = []
    for D in GMV_SIZES:
        L = lik.gaussian_mean_variance(D)
        steps += _family_steps(L, moment_expectation(L), f"D = {D}")
    return steps


# --------------------------------------------------------------------------- exponential family, tier A


def _expfam(d):
    eta = sp.symbols(f"eta_1:{d + 1}", real=True)
    t = sp.symbols(f"t_1:{d + 1}", real=True)
    A = sp.Function("A")
    logp = sp.Add(*[e * ti for e, ti in zip(eta, t)]) - A(*eta)
    return eta, t, A, logp




def _expfam_steps():
    steps = []
    for d in EXPFAM_SIZES:
        eta, t, A, logp = _expfam(d)
        E = expfam_expectation(A, eta, t)
        score = sp.Matrix([sp.diff(logp, e) for e in eta])
        fisher = sp.Matrix(d, d, lambda i, j: E(score[i] * score[j]))
        neg_hess = -sp.hessian(logp, eta)
        label = f"d = {d}"
        steps += [
            Step.equal(f"{label}: the score t - grad A has zero mean", score.applyfunc(E),
                       sp.zeros(d, 1),
                       justification="axiom 'moments of the sufficient statistic' with |alpha| = 1",
                       display=r"\mathbb E[t - \nabla A] = e^{-A}\nabla e^{A} - \nabla A = 0"
                               + rf"\qquad ({label})"),
            Step.equal(f"{label}: E[score score^T] = Hess A = -E[Hessian of log p]",
                       fisher, neg_hess.applyfunc(E),
                       justification="axiom with |alpha| <= 2; the Hessian -Hess A of log p does "
                                     "not depend on y",
                       display=r"\mathbb E[(t - \nabla A)(t - \nabla A)^\top] = "
                               r"e^{-A}\nabla^2 e^{A} - \nabla A\nabla A^\top = \nabla^2 A = "
                               r"-\mathbb E[\nabla^2_\eta \log p]" + rf"\qquad ({label})"),
        ]
    return steps


# --------------------------------------------------------------------------- negative controls


def _control_sign(likelihood, E, coords=None):
    """Fisher = +E[Hessian of log p] (the minus sign dropped)."""
    def build():
        fisher = _fisher(likelihood, E)
        wrong = (-likelihood.hessian_nll()).applyfunc(E)
        if coords is not None:
            fisher, wrong = fisher.subs(coords), wrong.subs(coords)
        return Step.equal("Fisher = +E[Hessian of log p]", fisher, wrong, justification="false")
    return build


def _control_empirical(likelihood, E, target, coords=None):
    """The outer product of the score at one fixed target in place of its expectation."""
    def build():
        s = likelihood.score().subs(target)
        wrong = s * s.T
        neg_exp_hess = likelihood.hessian_nll().applyfunc(E)
        if coords is not None:
            wrong, neg_exp_hess = wrong.subs(coords), neg_exp_hess.subs(coords)
        return Step.equal("score score^T at a fixed target = -E[Hessian of log p]",
                          wrong, neg_exp_hess, justification="false")
    return build


def _cat_controls():
    K = 3
    L = lik.categorical(K)
    E = moment_expectation(L)
    _, _, subs, p = softmax_coordinates(K)
    w = coordinate_witness(K)

    def missing_ppT():
        return Step.equal("Fisher = diag(p)", _fisher(L, E).subs(subs), sp.diag(*p),
                          justification="false")

    def general_missing():
        # The missing p p^T term in general K, evaluated by the checker at K = 3.
        g = general_categorical()
        k, l, p_, eta = g["k"], g["l"], g["p"], g["eta"]
        F = g["E"](g["finish"](sp.diff(g["logp"], eta[k])) * g["finish"](sp.diff(g["logp"], eta[l])))
        wrong = sp.KroneckerDelta(k, l) * p_(k)
        point = {g["K"]: 3, k: 1, l: 2}
        plain = {eta[i]: sp.Symbol(f"eta_{i}", real=True) for i in (1, 2, 3)}
        return Step.equal("general K: E[s_k s_l] = delta_kl p_k",
                          F.subs(point).doit().subs(plain), wrong.subs(point).doit().subs(plain),
                          justification="false")

    return [
        NegativeControl("dropped minus sign", "K = 3: Fisher = +E[Hessian of log p]",
                        _control_sign(L, E, subs), witness=w),
        NegativeControl("empirical Fisher at a fixed label",
                        "K = 3: the score outer product at the fixed target y = e_1 "
                        "(the empirical-Fisher term, Kunstner et al. 2019) in place of its expectation",
                        _control_empirical(L, E, {L.targets[0]: 1, L.targets[1]: 0, L.targets[2]: 0},
                                           subs), witness=w),
        NegativeControl("missing p p^T term", "K = 3: Fisher = diag(p)", missing_ppT, witness=w),
        NegativeControl("missing p p^T term, general K",
                        "general-K chain: E_c[s_k s_l] = delta_kl p_k (the checker evaluates it "
                        "at K = 3, k = 1, l = 2)", general_missing),
    ]


def _gaussian_controls():
    C = 2
    L = lik.gaussian(C, gaussian_variance_symbol())
    E = moment_expectation(L)
    y = L.targets

    def unit_variance():
        return Step.equal("Fisher = -E[Hessian of the unit-variance log-density]",
                          _fisher(L, E), sp.eye(C), justification="false")

    return [
        NegativeControl("dropped minus sign", "C = 2: Fisher = +E[Hessian of log p]",
                        _control_sign(L, E)),
        NegativeControl("empirical Fisher at a fixed target",
                        "C = 2: (y - mu)(y - mu)^T / sigma^4 at a fixed target y in place of its "
                        "expectation", _control_empirical(L, E, {y[0]: y[0], y[1]: y[1]})),
        NegativeControl("variance forgotten", "C = 2: Fisher = I (sigma^2 = 1 assumed)",
                        unit_variance, witness={gaussian_variance_symbol(): 2}),
    ]


def _bernoulli_controls():
    L = lik.bernoulli(2)
    E = moment_expectation(L)
    return [
        NegativeControl("dropped minus sign", "C = 2: Fisher = +E[Hessian of log p]",
                        _control_sign(L, E)),
        NegativeControl("empirical Fisher at a fixed label",
                        "C = 2: score outer product at y = (1, 0) in place of its expectation",
                        _control_empirical(L, E, {L.targets[0]: 1, L.targets[1]: 0})),
    ]


def _poisson_controls():
    L = lik.poisson(1)
    E = moment_expectation(L)
    eta, y = L.outputs[0], L.targets[0]

    def unnormalised():
        # The score of the unnormalised density y*eta (log-partition forgotten) "has zero mean".
        return Step.equal("E[d/deta (y eta)] = 0", E(sp.diff(y * eta, eta)), 0,
                          justification="false")

    return [
        NegativeControl("dropped minus sign", "C = 1: Fisher = +E[Hessian of log p]",
                        _control_sign(L, E)),
        NegativeControl("log-partition forgotten",
                        "C = 1: the score of the unnormalised density y*eta has zero mean",
                        unnormalised),
        NegativeControl("empirical Fisher at a fixed count",
                        "C = 1: (y - e^eta)^2 at the fixed count y = 2 in place of its expectation",
                        _control_empirical(L, E, {y: 2})),
    ]


def _gmv_controls():
    L = lik.gaussian_mean_variance(1)
    E = moment_expectation(L)
    y = L.targets[0]

    def hessian_at_target():
        # The Hessian at the observed target (not its expectation) equals the Fisher.
        return Step.equal("Hessian of the NLL at a fixed target = Fisher",
                          L.hessian_nll(), _fisher(L, E), justification="false")

    return [
        NegativeControl("dropped minus sign", "D = 1: Fisher = +E[Hessian of log p]",
                        _control_sign(L, E)),
        NegativeControl("Hessian at the target",
                        "D = 1: the output Hessian of the NLL at a fixed target y equals the Fisher "
                        "(true only in expectation for the (mean, log-variance) outputs)",
                        hessian_at_target),
        NegativeControl("empirical Fisher at a fixed target",
                        "D = 1: score outer product at a fixed y in place of its expectation",
                        _control_empirical(L, E, {y: y})),
    ]


def _expfam_controls():
    d = 2
    eta, t, A, logp = _expfam(d)
    E = expfam_expectation(A, eta, t)
    x1, x2 = sp.symbols("x_1 x_2")
    witness = {A: sp.Lambda((x1, x2), x1 ** 2 * x2 + x2 ** 3 + x1)}
    score = sp.Matrix([sp.diff(logp, e) for e in eta])

    def sign():
        return Step.equal("E[s s^T] = +E[Hessian of log p]",
                          sp.Matrix(d, d, lambda i, j: E(score[i] * score[j])),
                          sp.hessian(logp, eta), justification="false")

    def uncentred():
        return Step.equal("E[t t^T] = Hess A",
                          sp.Matrix(d, d, lambda i, j: E(t[i] * t[j])),
                          sp.hessian(A(*eta), eta), justification="false")

    return [
        NegativeControl("dropped minus sign", "d = 2: Fisher = +E[Hessian of log p] = -Hess A",
                        sign, witness=witness),
        NegativeControl("uncentred second moment",
                        "d = 2: E[t t^T] = Hess A (the grad A grad A^T term forgotten: the second "
                        "moment of the sufficient statistic is not its covariance)",
                        uncentred, witness=witness),
    ]


# --------------------------------------------------------------------------- derivations

_ASSUMPTION_MODEL = (r"targets are drawn from the model, $y \sim p(\cdot\mid\eta)$ (not from the data: "
                     r"that would be the empirical Fisher)")

_STATEMENT = (r"\mathbb E_{y\sim p(\cdot\mid\eta)}\big[\nabla_\eta \log p(y\mid\eta)\big] = 0,\qquad "
              r"\mathbb E_{y}\big[\nabla_\eta \log p\,\nabla_\eta \log p^\top\big] = "
              r"-\mathbb E_{y}\big[\nabla^2_\eta \log p(y\mid\eta)\big]")

_REFS = (REF_SEED_003_S7, REF_SEED_003_A, REF_AMARI, REF_MARTENS)


def _numeric(cls):
    return (f"fisherlab.likelihoods.{cls}.output_fisher",
            f"fisherlab.likelihoods.{cls}.output_hessian")


DERIVATIONS = [
    LegacyDerivation(
        name="information_equality.categorical",
        title="Information equality: categorical (softmax logits)",
        statement=_STATEMENT + r",\qquad \text{both} = \mathrm{diag}(p) - pp^\top,\ "
                               r"p = \mathrm{softmax}(\eta)",
        tier=Tier.AB,
        scope="general K (IndexedBase/Sum) and K = 2..5 with every logit symbolic",
        build=_categorical_steps,
        negative_controls=_cat_controls(),
        assumptions=(r"logits $\eta \in \mathbb R^K$; one-hot targets $y = e_c$", _ASSUMPTION_MODEL,
                     r"tier B identities are checked in the exact coordinates $z_k = e^{\eta_k}$ "
                     r"($k<K$), $s = \sum_j e^{\eta_j}$, a bijection of $\mathbb R^K$ onto "
                     r"$\{z > 0,\ s > \sum_{k<K} z_k\}$"),
        axioms={**GENERAL_K_AXIOMS, **family_axioms(lik.categorical(2))},
        references=_REFS + (REF_KUNSTNER,),
        numeric=_numeric("Categorical"),
        notes="The general-K chain (steps 1-5) re-types the log-pmf with `IndexedBase` logits; "
              "the tier-B steps start from `fisherlab.likelihoods._symbolic.categorical(K)` "
              "for each K = 2..5.",
    ),
    LegacyDerivation(
        name="information_equality.gaussian",
        title="Information equality: Gaussian mean, fixed variance",
        statement=_STATEMENT + r",\qquad \text{both} = I/\sigma^2",
        tier=Tier.B,
        scope="C = 1..4 outputs, every mean and target symbolic, symbolic variance sigma^2 > 0",
        build=_gaussian_steps,
        negative_controls=_gaussian_controls(),
        assumptions=(r"$y \sim \mathcal N(\mu, \sigma^2 I_C)$, mean $\mu$ the output, "
                     r"$\sigma^2 > 0$ fixed", _ASSUMPTION_MODEL),
        axioms=family_axioms(lik.gaussian(1)),
        references=_REFS,
        numeric=_numeric("Gaussian"),
    ),
    LegacyDerivation(
        name="information_equality.bernoulli",
        title="Information equality: Bernoulli (logits)",
        statement=_STATEMENT + r",\qquad \text{both} = \mathrm{diag}(\sigma(\eta)(1-\sigma(\eta)))",
        tier=Tier.B,
        scope="C = 1..4 independent outputs, every logit symbolic",
        build=_bernoulli_steps,
        negative_controls=_bernoulli_controls(),
        assumptions=(r"independent $y_c \in \{0, 1\}$, $P(y_c = 1) = \sigma(\eta_c)$",
                     _ASSUMPTION_MODEL),
        axioms=family_axioms(lik.bernoulli(1)),
        references=_REFS + (REF_KUNSTNER,),
        numeric=_numeric("Bernoulli"),
    ),
    LegacyDerivation(
        name="information_equality.poisson",
        title="Information equality: Poisson (log-rate)",
        statement=_STATEMENT + r",\qquad \text{both} = \mathrm{diag}(e^{\eta})",
        tier=Tier.B,
        scope="C = 1..4 independent outputs, every log-rate symbolic",
        build=_poisson_steps,
        negative_controls=_poisson_controls(),
        assumptions=(r"independent $y_c \in \mathbb N$, $y_c \sim \mathrm{Poisson}(e^{\eta_c})$",
                     _ASSUMPTION_MODEL),
        axioms=family_axioms(lik.poisson(1)),
        references=_REFS,
        numeric=_numeric("Poisson"),
    ),
    LegacyDerivation(
        name="information_equality.gaussian_mean_variance",
        title="Information equality: Gaussian (mean, log-variance)",
        statement=_STATEMENT + r",\qquad \text{both} = \mathrm{diag}(e^{-s}, \tfrac12)",
        tier=Tier.B,
        scope="D = 1..3 targets (C = 2D outputs), every mean, log-variance and target symbolic",
        build=_gmv_steps,
        negative_controls=_gmv_controls(),
        assumptions=(r"independent $y_d \sim \mathcal N(\mu_d, e^{s_d})$, outputs "
                     r"$(\mu_1..\mu_D, s_1..s_D)$ (not natural parameters)", _ASSUMPTION_MODEL),
        axioms=family_axioms(lik.gaussian_mean_variance(1)),
        references=_REFS,
        numeric=_numeric("GaussianMeanVariance"),
        notes="The identity holds in expectation only: the output Hessian of the NLL depends "
              "on the target here (see `output_fisher.gaussian_mean_variance`), so the "
              "pointwise Hessian is not the Fisher -- the second negative control.",
    ),
    LegacyDerivation(
        name="information_equality.exponential_family",
        title="Information equality: general exponential family (abstract log-partition)",
        statement=r"p(y\mid\eta) = h(y)\,e^{\langle\eta, t(y)\rangle - A(\eta)}:\quad "
                  r"\mathbb E[\nabla_\eta\log p] = 0,\quad "
                  r"\mathbb E[\nabla_\eta\log p\,\nabla_\eta\log p^\top] = \nabla^2 A(\eta) = "
                  r"-\mathbb E[\nabla^2_\eta\log p]",
        tier=Tier.A,
        scope="A an arbitrary smooth (undefined) function of d = 1..4 natural parameters",
        build=_expfam_steps,
        negative_controls=_expfam_controls(),
        assumptions=(r"$\eta$ in the interior of the natural parameter space, $A$ smooth",
                     r"the base measure $h(y)$ does not depend on $\eta$ (it drops out of every "
                     r"$\eta$-derivative)", _ASSUMPTION_MODEL),
        axioms=EXPFAM_AXIOMS,
        references=_REFS,
        numeric=tuple(n for cls in ("Categorical", "Gaussian", "Bernoulli", "Poisson")
                      for n in _numeric(cls)[:1]),
    ),
]
