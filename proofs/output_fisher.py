r"""Closed-form output-space Fisher of every likelihood family, from the definition.

For each family of :mod:`fisherlab.likelihoods.symbolic` the output-space Fisher
``F_out(eta) = E_{y ~ p(.|eta)}[grad_eta log p grad_eta log p^T]`` is shown equal to the
closed form the numeric code uses (``<Family>.output_fisher``):

=======================  ===========================================  =======================
family (outputs)         closed form                                   ``= Hess A``?
=======================  ===========================================  =======================
Categorical (logits)     ``diag(p) - p p^T``, ``p = softmax(eta)``     yes
Gaussian (mean)          ``I / sigma^2``                               yes
Bernoulli (logits)       ``diag(sigma(eta)) (I - diag(sigma(eta)))``   yes
Poisson (log-rate)       ``diag(e^eta)``                               yes
GaussianMeanVariance     ``P_mu^T diag(e^{-s}) P_mu + P_s^T P_s / 2``  no (not natural)
=======================  ===========================================  =======================

For the natural-parameter families (CONVENTIONS.md: ``F_out(eta) = grad^2 A(eta)``) the chains
prove, in order: the Hessian of the log-partition is the closed form; the Fisher, through the
score ``t - grad A`` and the covariance of the sufficient statistic, is ``grad^2 A``, hence the
closed form (citing the first part); the output Hessian of the NLL is ``grad^2 A`` at *every*
target, hence the closed form -- which is why Fisher = GGN for them (Johnson 2017, App. A;
Martens 2020 §9.2). For the (mean, log-variance) Gaussian the output Hessian of the NLL depends
on ``y`` (its ``(mu, s)`` block is ``(y - mu) e^{-s}``): it equals the Fisher only in
expectation, and the claim that it does not depend on ``y`` is a negative control.

Tier B links are checked at every size of the family's range on the library's definition;
the categorical links also at general ``K`` (entry-wise); see
:func:`fisherlab.symbolic.toolkit.family`.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.likelihoods import symbolic as lik
from fisherlab.symbolic import Chain, Control, Derivation, Lemma, Link
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Diag, Expect, Grad, Hess

__all__ = ["DERIVATIONS"]

REFERENCES = (
    tk.REF_JOHNSON_2017 + " App. A: the Fisher and the generalized Gauss-Newton matrices "
                          "(output-space Fisher of exponential families)",
    tk.REF_JOHNSON_2017 + " §7, eqs. (19)-(22): E[score score^T] = -E[Hessian of log p]",
    tk.REF_MARTENS_2020 + " §9 (the output-space Fisher and the GGN)",
    tk.REF_AMARI_1998,
)
_MODEL_TARGETS = r"targets drawn from the model, $y \sim p(\cdot\mid\eta)$, in the Fisher"


def _numeric(cls):
    return (f"fisherlab.likelihoods.{cls}.output_fisher",
            f"fisherlab.likelihoods.{cls}.output_hessian")


_TESTS = "tests/proofs/test_output_fisher.py::"


def _tested_by(name):
    """The tests that compare the proved forms with the numeric ``output_fisher`` /
    ``output_hessian``."""
    if name == "gaussian":
        return (_TESTS + "test_proved_gaussian_closed_form_equals_numeric_output_fisher",)
    out = (_TESTS + "test_proved_closed_form_equals_numeric_output_fisher",)
    if name == "categorical":
        out += (_TESTS + "test_natural_output_hessian_is_the_same_for_every_target",)
    if name == "gaussian_mean_variance":
        out += (_TESTS + "test_gmv_output_hessian_is_the_proved_target_dependent_form",
                _TESTS + "test_gmv_output_hessian_differs_from_the_fisher_off_the_mean")
    return out


def _statistic(F):
    """The sufficient statistic ``t(y)``, structural: ``y / sigma^2`` for the Gaussian mean."""
    return F.y / tk.gaussian_variance_symbol() if F.name == "gaussian" else F.y


def _natural_conclusion(F):
    s = Grad(F.logp, F.eta)
    return (sp.Eq(Hess(F.A, F.eta), F.closed, evaluate=False),
            sp.Eq(Expect(s * s.T, "y"), F.closed, evaluate=False),
            sp.Eq(Hess(-F.logp, F.eta), F.closed, evaluate=False))


def _natural_chains(D, F, by, tag=""):
    """The three parts; at general dimension the last links are checked entry-wise again (a
    citation of part 1 would count at the weakest tier that proves it)."""
    s, t, gA = Grad(F.logp, F.eta), _statistic(F), Grad(F.A, F.eta)
    r = t - gA
    part1 = by if tag else Lemma(D, part=0)
    return [
        Chain(Hess(F.A, F.eta), [
            Link(F.closed, by, label="closed" + tag,
                 why="differentiating the log-partition twice")]),
        Chain(Expect(s * s.T, "y"), [
            Link(Expect(r * r.T, "y"), by, label="outer" + tag,
                 why="log p = <η, t(y)> − A(η) + log h(y), so the score is t(y) − ∇A(η)"),
            Link(Hess(F.A, F.eta), by, label="covariance" + tag,
                 why="the covariance of the sufficient statistic is the Hessian of the "
                     "log-partition"),
            Link(F.closed, part1, why="part 1")], part=1),
        Chain(Hess(-F.logp, F.eta), [
            Link(Hess(F.A, F.eta), by, label="hessian" + tag,
                 why="−log p = A(η) − <η, t(y)> − log h(y): the second term is linear in η, so "
                     "the Hessian is ∇²A at every target y"),
            Link(F.closed, part1, why="part 1")], part=2),
    ]


def _natural(name, title, scope, cls, assumptions, mistakes, witness=None):
    """``mistakes``: ``(name, wrong closed form, why)``, each a control of the ``closed`` link."""
    F = tk.family(name)
    general = F.general is not None
    at = F.at(3 if name == "categorical" else 2)
    r = _statistic(F) - Grad(F.A, F.eta)
    holder = {}

    def proof():
        D = holder["d"]
        sets = [_natural_chains(D, F, F.general, tag="_general")] if general else []
        sets.append(_natural_chains(D, F, F.explicit))
        # every chain of part 1 before the chains that cite it
        return [chain for part in range(3) for chains in sets for chain in chains[part:part + 1]]

    controls = [Control(m, target="closed", replace=(F.closed, wrong), at=at, witness=witness or {},
                        why=why) for m, wrong, why in mistakes]
    controls += [
        Control("second_moment_for_covariance", target="covariance", at=at, witness=witness or {},
                replace=(Expect(r * r.T, "y"), Expect(_statistic(F) * _statistic(F).T, "y")),
                why="the second moment of the sufficient statistic in place of its covariance"),
        Control("empirical_fisher_for_fisher", target="outer", at=at, witness=witness or {},
                replace=(Expect(r * r.T, "y"), r * r.T),
                why="the outer product of the score at one data label (the empirical Fisher, "
                    "Kunstner et al. 2019) in place of its expectation"),
    ]
    holder["d"] = Derivation(
        name=f"output_fisher.{name}", title=title, conclusion=_natural_conclusion(F), proof=proof,
        tier="A+B" if general else "B", scope=scope, controls=controls,
        assumptions=tuple(assumptions) + (_MODEL_TARGETS,),
        axioms={**(tk.GENERAL_CATEGORICAL_AXIOMS if general else {}),
                **tk.family_axioms(F.source(F.sizes[0]))},
        references=REFERENCES, numeric=_numeric(cls), tested_by=_tested_by(name))
    return holder["d"]


_CAT = tk.family("categorical")
(_p,) = _CAT.abbreviations
_K3 = lik.categorical(3)
CATEGORICAL = _natural(
    "categorical", "Output-space Fisher: categorical logits, diag(p) - p p^T",
    "general K (entry-wise, IndexedBase/Sum), and K = 2..5 with every logit and target symbolic",
    "Categorical",
    [r"logits $\eta\in\mathbb R^K$; one-hot targets; $t(y) = y$, "
     r"$A(\eta) = \log\sum_k e^{\eta_k}$"],
    [("missing_ppT", Diag(_p), "diag(p): the −ppᵀ term of the softmax Hessian dropped"),
     ("bernoulli_formula_on_softmax", Diag(_p) * (sp.Identity(_CAT.size) - Diag(_p)),
      "diag(p(1 − p)): the independent-sigmoid formula applied to softmax outputs")],
    witness={_K3.targets[0]: 1, _K3.targets[1]: 0, _K3.targets[2]: 0})

_GAU = tk.family("gaussian")
_var = tk.gaussian_variance_symbol()
GAUSSIAN = _natural(
    "gaussian", "Output-space Fisher: Gaussian mean, I / sigma^2",
    "C = 1..4 outputs, every mean and target symbolic, symbolic variance sigma^2 > 0", "Gaussian",
    [r"$y\sim\mathcal N(\mu, \sigma^2 I_C)$, $\sigma^2 > 0$ fixed; $t(y) = y/\sigma^2$, "
     r"$A(\mu) = \|\mu\|^2/(2\sigma^2)$"],
    [("variance_for_precision", _var * sp.Identity(_GAU.size), "σ² I: the variance in place of the "
      "precision"),
     ("variance_forgotten", sp.Identity(_GAU.size), "I: σ² = 1 assumed")])

_BER = tk.family("bernoulli")
(_q,) = _BER.abbreviations
_B2 = lik.bernoulli(2)
BERNOULLI = _natural(
    "bernoulli", "Output-space Fisher: Bernoulli logits, diag(sigma (1 - sigma))",
    "C = 1..4 independent outputs, every logit and target symbolic", "Bernoulli",
    [r"independent $y_c\in\{0,1\}$, $P(y_c = 1) = \sigma(\eta_c)$; $t(y) = y$, "
     r"$A(\eta) = \sum_c\log(1 + e^{\eta_c})$"],
    [("softmax_formula_on_sigmoid", Diag(_q) - _q * _q.T,
      "diag(σ) − σσᵀ: the softmax formula applied to independent sigmoid outputs"),
     ("missing_one_minus_sigma", Diag(_q), "diag(σ): the factor (1 − σ) dropped")],
    witness={_B2.targets[0]: 1, _B2.targets[1]: 0})

_POI = tk.family("poisson")
(_lam,) = _POI.abbreviations
_P2 = lik.poisson(2)
POISSON = _natural(
    "poisson", "Output-space Fisher: Poisson log-rate, diag(e^eta)",
    "C = 1..4 independent outputs, every log-rate and target symbolic", "Poisson",
    [r"independent $y_c\sim\mathrm{Poisson}(e^{\eta_c})$; $t(y) = y$, "
     r"$A(\eta) = \sum_c e^{\eta_c}$"],
    [("fisher_of_the_rate", Diag(_lam).I,
      "diag(1/λ): the Fisher of the rate λ, not of the log-rate η = log λ")],
    witness={_P2.targets[0]: 2, _P2.targets[1]: 0})


# --------------------------------------------------------------------------- mean, log-variance

def _gmv():
    F = tk.family("gaussian_mean_variance")
    s = Grad(F.logp, F.eta)
    by = F.explicit
    Pm, Ps, prec = list(F.abbreviations)
    W, R = Diag(prec), Diag(F.y - Pm * F.eta)
    holder = {}

    def proof():
        D = holder["d"]
        return [
            Chain(Hess(-F.logp, F.eta), [
                Link(F.hessian, by, label="hessian",
                     why="−log p = Σ_d ((y_d − μ_d)² e^{−s_d} + s_d)/2 + const, differentiated "
                         "twice in (μ, s): the (μ, s) block is (y − μ) e^{−s}, the (s, s) block "
                         "(y − μ)² e^{−s}/2")]),
            Chain(Expect(s * s.T, "y"), [
                Link(F.closed, by, label="moments",
                     why="Gaussian moments up to the fourth: E[(y − μ)²] = σ², E[(y − μ)³] = 0, "
                         "E[(y − μ)⁴] = 3σ⁴")], part=1),
            Chain(Expect(Hess(-F.logp, F.eta), "y"), [
                Link(Expect(F.hessian, "y"), Lemma(D, part=0), why="part 1, inside the expectation"),
                Link(F.closed, by, label="expected_hessian",
                     why="E[y − μ] = 0 removes the mixed blocks and E[(y − μ)²] = e^{s} turns "
                         "(y − μ)² e^{−s}/2 into 1/2")], part=2),
        ]

    at = F.at(1)
    holder["d"] = Derivation(
        name="output_fisher.gaussian_mean_variance",
        title="Output-space Fisher: Gaussian (mean, log-variance); its NLL Hessian depends on the "
              "target",
        conclusion=(sp.Eq(Hess(-F.logp, F.eta), F.hessian, evaluate=False),
                    sp.Eq(Expect(s * s.T, "y"), F.closed, evaluate=False),
                    sp.Eq(Expect(Hess(-F.logp, F.eta), "y"), F.closed, evaluate=False)),
        proof=proof, tier="B",
        scope="D = 1..3 targets (C = 2D outputs), every mean, log-variance and target symbolic",
        controls=[
            Control("target_independence", target="conclusion:1", at=at,
                    replace=(F.hessian, F.closed),
                    why="the output Hessian of the NLL equals the Fisher at every target (true "
                        "only for natural parameters)"),
            Control("cross_terms_dropped", target="hessian", at=at,
                    replace=(Pm.T * W * R * Ps, sp.ZeroMatrix(*F.closed.shape)),
                    why="the (μ, s) block of the Hessian, (y − μ) e^{−s}, forgotten"),
            Control("fisher_in_variance", target="moments", at=at,
                    replace=(Ps.T * Ps / 2, Ps.T * W * W * Ps / 2),
                    why="diag(1/σ², 1/(2σ⁴)): the Fisher in (μ, σ²), not in (μ, s = log σ²)"),
        ],
        assumptions=(r"independent $y_d\sim\mathcal N(\mu_d, e^{s_d})$; outputs ordered "
                     r"$\eta = (\mu_1..\mu_D, s_1..s_D)$; $s = \log\sigma^2$ is not a natural "
                     r"parameter", _MODEL_TARGETS),
        axioms=tk.family_axioms(lik.gaussian_mean_variance(1)), references=REFERENCES
        + (tk.REF_KUNSTNER_2019,),
        numeric=_numeric("GaussianMeanVariance"), tested_by=_tested_by("gaussian_mean_variance"),
        notes="This family is the library's counterexample to Fisher = GGN: the GGN uses the "
              "target-dependent Hessian (part 1), the Fisher its expectation (part 3).")
    return holder["d"]


GAUSSIAN_MEAN_VARIANCE = _gmv()

DERIVATIONS = [CATEGORICAL, GAUSSIAN, BERNOULLI, POISSON, GAUSSIAN_MEAN_VARIANCE]
