r"""The information equality, family by family, in chain form.

For a likelihood ``p(y | eta)`` in its output parameters ``eta`` and targets drawn from the
model, ``y ~ p(. | eta)`` (Johnson 2017, §7, eqs. (19)-(22)):

.. math::
    \mathbb E_y[\nabla_\eta \log p(y\mid\eta)] = 0, \qquad
    \mathbb E_y[\nabla_\eta \log p\, \nabla_\eta \log p^\top]
             = \mathbb E_y[\nabla^2_\eta (-\log p(y\mid\eta))].

The conclusions are stated over the structural symbols of a likelihood family
(:func:`fisherlab.symbolic.toolkit.family`): the outputs ``eta``, the target ``y``, the
log-density ``log p`` and the log-partition ``A``. For an exponential family in its natural
parameters, ``log p = <eta, t(y)> - A(eta) + log h(y)``, so the score is ``t - grad A``: the
chains go through the mean and covariance of the sufficient statistic. Each link is checked

* exhaustively at the family's sizes (tier B) on the library's own definition,
  :mod:`fisherlab.likelihoods.symbolic`, with its exact expectation operator;
* for the categorical also at general ``K`` (tier A), entry-wise, with the log-pmf written in
  ``IndexedBase`` entries and the expectation over a one-hot target as a finite sum;
* for the exponential family with an abstract log-partition at ``d = 1..4`` natural
  parameters (tier A-model), with the moment axiom ``E[t^alpha] = e^{-A} d^alpha e^A``.

The mean/log-variance Gaussian is not in natural parameters: its chain goes through the
target-dependent Hessian of the NLL, whose expectation is the Fisher.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.likelihoods import symbolic as lik
from fisherlab.symbolic import Algebra, Chain, Control, Derivation, Link
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import Diag, Expect, Grad, Hess

__all__ = ["DERIVATIONS"]

REFERENCES = (
    tk.REF_JOHNSON_2017 + " §7, eqs. (19)-(22): zero-mean score and E[score score^T] = "
                          "-E[Hessian of log p]",
    tk.REF_JOHNSON_2017 + " App. A: the output-space Fisher of exponential families",
    tk.REF_AMARI_1998,
    tk.REF_MARTENS_2020 + " §9 (the output-space Fisher and the GGN)",
)
_MODEL_TARGETS = (r"targets are drawn from the model, $y \sim p(\cdot\mid\eta)$ (not from the "
                  r"data: that would be the empirical Fisher)")


def _numeric(cls):
    return (f"fisherlab.likelihoods.{cls}.output_fisher",
            f"fisherlab.likelihoods.{cls}.output_hessian")


_TESTS = "tests/proofs/test_output_fisher.py::"


def _tested_by(name):
    """The tests that compare the proved Fisher (and, for natural families, the target-free
    Hessian) with the numeric ``output_fisher`` / ``output_hessian``."""
    if name == "gaussian":
        return (_TESTS + "test_proved_gaussian_closed_form_equals_numeric_output_fisher",)
    out = (_TESTS + "test_proved_closed_form_equals_numeric_output_fisher",)
    if name == "categorical":
        out += (_TESTS + "test_natural_output_hessian_is_the_same_for_every_target",)
    if name == "gaussian_mean_variance":
        out += (_TESTS + "test_gmv_output_hessian_is_the_proved_target_dependent_form",)
    return out


def _statistic(F):
    """The sufficient statistic ``t(y)``, structural: ``y / sigma^2`` for the Gaussian mean."""
    if F.name == "gaussian":
        return F.y / tk.gaussian_variance_symbol()
    return F.y


def _conclusion(F):
    s = Grad(F.logp, F.eta)
    return (sp.Eq(Expect(s, "y"), sp.ZeroMatrix(*F.eta.shape), evaluate=False),
            sp.Eq(Expect(s * s.T, "y"), Expect(Hess(-F.logp, F.eta), "y"), evaluate=False))


def _natural_chains(F, by, tag=""):
    """Both parts through the sufficient statistic, every link checked by ``by``."""
    s, t, gA = Grad(F.logp, F.eta), _statistic(F), Grad(F.A, F.eta)
    r = t - gA
    zero = sp.ZeroMatrix(*F.eta.shape)
    return [
        Chain(Expect(s, "y"), [
            Link(Expect(r, "y"), by, label="score" + tag,
                 why="the score of an exponential family: log p = <η, t(y)> − A(η) + log h(y), "
                     "so ∇_η log p = t(y) − ∇A(η)"),
            Link(Expect(t, "y") - gA, by, label="linearity" + tag,
                 why="linearity of expectation; ∇A(η) does not depend on y"),
            Link(sp.MatAdd(gA, -gA), by, label="mean" + tag,
                 why="the mean of the sufficient statistic is the gradient of the log-partition"),
            Link(zero, Algebra(), why="X − X = 0")]),
        Chain(Expect(s * s.T, "y"), [
            Link(Expect(r * r.T, "y"), by, label="outer" + tag, why="the score is t − ∇A"),
            Link(Hess(F.A, F.eta), by, label="covariance" + tag,
                 why="the covariance of the sufficient statistic is the Hessian of the "
                     "log-partition"),
            Link(Expect(Hess(-F.logp, F.eta), "y"), by, label="hessian" + tag,
                 why="−log p = A(η) − <η, t(y)> − log h(y) is A plus a term linear in η: its "
                     "Hessian ∇²A does not depend on y, so it is its own expectation")], part=1),
    ]


def _natural_controls(F, at, witness=None, tag=""):
    w = dict(witness or {})
    t = _statistic(F)
    gA = Grad(F.A, F.eta)
    r = t - gA
    return [
        Control("log_partition_forgotten", target="score" + tag, replace=(r, t), at=at, witness=w,
                why="the score of the unnormalised density exp<η, t>: the −∇A(η) term dropped"),
        Control("second_moment_for_covariance", target="covariance" + tag,
                replace=(Expect(r * r.T, "y"), Expect(t * t.T, "y")), at=at, witness=w,
                why="the second moment E[t tᵀ] of the sufficient statistic in place of its "
                    "covariance (the ∇A∇Aᵀ term forgotten)"),
        Control("dropped_minus_sign", target="conclusion:2",
                replace=(Hess(-F.logp, F.eta), Hess(F.logp, F.eta)), at=at, witness=w,
                why="E[s sᵀ] = +E[∇² log p]: the minus sign of the NLL dropped"),
    ]


# --------------------------------------------------------------------------- the families

def _empirical_control(F, at, witness):
    r = _statistic(F) - Grad(F.A, F.eta)
    return Control("empirical_fisher_at_a_label", target="outer", at=at, witness=witness,
                   replace=(Expect(r * r.T, "y"), r * r.T),
                   why="the outer product of the score at one data label in place of its "
                       "expectation under the model (the empirical Fisher, Kunstner et al. 2019)")


def _natural(name, title, scope, cls, assumptions, witness=None, notes=""):
    F = tk.family(name)
    general = F.general is not None

    def proof():
        chains = _natural_chains(F, F.general, tag="_general") if general else []
        return chains + _natural_chains(F, F.explicit)

    at = F.at(3 if name == "categorical" else 2)
    controls = _natural_controls(F, at, witness) + [_empirical_control(F, at, witness)]
    return Derivation(
        name=f"information_equality.{name}", title=title, conclusion=_conclusion(F), proof=proof,
        tier="A+B" if general else "B", scope=scope, controls=controls,
        assumptions=tuple(assumptions) + (_MODEL_TARGETS,),
        axioms={**(tk.GENERAL_CATEGORICAL_AXIOMS if general else {}),
                **tk.family_axioms(F.source(F.sizes[0]))},
        references=REFERENCES, numeric=_numeric(cls), tested_by=_tested_by(name),
        notes=notes)


_K3 = lik.categorical(3)
CATEGORICAL = _natural(
    "categorical", "Information equality: categorical (softmax logits)",
    "general K (entry-wise, IndexedBase/Sum), and K = 2..5 with every logit symbolic",
    "Categorical",
    [r"logits $\eta \in \mathbb R^K$; one-hot targets $y = e_c$",
     r"$\nabla A = p = \operatorname{softmax}(\eta)$, $\nabla^2 A = \operatorname{diag}(p) - pp^\top$"],
    witness={_K3.targets[0]: 1, _K3.targets[1]: 0, _K3.targets[2]: 0},
    notes="The general-K chains check every entry with the log-pmf written for symbolic K; the "
          "tier-B chains evaluate `fisherlab.likelihoods.symbolic.categorical(K)` for each "
          "K = 2..5. The witnesses of the controls use the one-hot label y = e₁.")

GAUSSIAN = _natural(
    "gaussian", "Information equality: Gaussian mean, fixed variance",
    "C = 1..4 outputs, every mean and target symbolic, symbolic variance sigma^2 > 0", "Gaussian",
    [r"$y \sim \mathcal N(\mu, \sigma^2 I_C)$, mean $\mu$ the output, $\sigma^2 > 0$ fixed; "
     r"$t(y) = y/\sigma^2$, $A(\mu) = \|\mu\|^2/(2\sigma^2)$"])

_B2 = lik.bernoulli(2)
BERNOULLI = _natural(
    "bernoulli", "Information equality: Bernoulli (logits)",
    "C = 1..4 independent outputs, every logit symbolic", "Bernoulli",
    [r"independent $y_c \in \{0, 1\}$, $P(y_c = 1) = \sigma(\eta_c)$; $t(y) = y$, "
     r"$A(\eta) = \sum_c \log(1 + e^{\eta_c})$"],
    witness={_B2.targets[0]: 1, _B2.targets[1]: 0})

_P2 = lik.poisson(2)
POISSON = _natural(
    "poisson", "Information equality: Poisson (log-rate)",
    "C = 1..4 independent outputs, every log-rate symbolic", "Poisson",
    [r"independent $y_c \in \mathbb N$, $y_c \sim \mathrm{Poisson}(e^{\eta_c})$; $t(y) = y$, "
     r"$A(\eta) = \sum_c e^{\eta_c}$"],
    witness={_P2.targets[0]: 2, _P2.targets[1]: 0})


# --------------------------------------------------------------------------- abstract log-partition

def _abstract():
    F = tk.abstract_family()
    x1, x2 = sp.symbols("x_1 x_2")
    witness = {sp.Function("A"): sp.Lambda((x1, x2), x1 ** 2 * x2 + x2 ** 3 + x1)}
    at = F.at(2)
    return Derivation(
        name="information_equality.exponential_family",
        title="Information equality: general exponential family (abstract log-partition)",
        conclusion=_conclusion(F), proof=lambda: _natural_chains(F, F.explicit), tier="A-model",
        scope="A an arbitrary smooth (undefined) function of d = 1..4 natural parameters",
        controls=_natural_controls(F, at, witness),
        assumptions=(r"$p(y\mid\eta) = h(y)\,e^{\langle\eta, t(y)\rangle - A(\eta)}$, $\eta$ in the "
                     r"interior of the natural parameter space, $A$ smooth",
                     r"the base measure $h(y)$ does not depend on $\eta$", _MODEL_TARGETS),
        axioms=tk.EXPFAM_AXIOMS, references=REFERENCES,
        numeric=tuple(_numeric(c)[0] for c in ("Categorical", "Gaussian", "Bernoulli", "Poisson")),
        tested_by=_tested_by("categorical")[:1] + _tested_by("gaussian"),
        notes="Witness of the controls: A(x₁, x₂) = x₁²x₂ + x₂³ + x₁ at d = 2 (any smooth A "
              "serves; the moment axiom is then applied to it).")


EXPONENTIAL_FAMILY = _abstract()


# --------------------------------------------------------------------------- mean, log-variance

def _gmv():
    F = tk.family("gaussian_mean_variance")
    s = Grad(F.logp, F.eta)
    by = F.explicit
    (Pm, Ps, prec) = list(F.abbreviations)
    W = Diag(prec)

    def proof():
        return [
            Chain(Expect(s, "y"), [
                Link(sp.ZeroMatrix(*F.eta.shape), by, label="zero_mean",
                     why="∂_μ log p = e^{-s}(y − μ) and ∂_s log p = (e^{-s}(y − μ)² − 1)/2; "
                         "E[y − μ] = 0 and E[(y − μ)²] = e^{s}")]),
            Chain(Expect(s * s.T, "y"), [
                Link(F.closed, by, label="moments",
                     why="Gaussian moments up to the fourth: E[(y − μ)²] = σ², E[(y − μ)³] = 0, "
                         "E[(y − μ)⁴] = 3σ⁴"),
                Link(Expect(F.hessian, "y"), by, label="expected_hessian",
                     why="E[y − μ] = 0 removes the mixed terms and E[(y − μ)²] = e^{s} turns "
                         "e^{-s}(y − μ)²/2 into 1/2"),
                Link(Expect(Hess(-F.logp, F.eta), "y"), by, label="hessian",
                     why="the Hessian of the NLL in (μ, s), target by target")], part=1),
        ]

    at = F.at(1)
    y1 = F.source(1).targets[0]
    return Derivation(
        name="information_equality.gaussian_mean_variance",
        title="Information equality: Gaussian (mean, log-variance)",
        conclusion=_conclusion(F), proof=proof, tier="B",
        scope="D = 1..3 targets (C = 2D outputs), every mean, log-variance and target symbolic",
        controls=[
            Control("dropped_minus_sign", target="conclusion:2", at=at,
                    replace=(Hess(-F.logp, F.eta), Hess(F.logp, F.eta)),
                    why="E[s sᵀ] = +E[∇² log p]: the minus sign of the NLL dropped"),
            Control("hessian_at_the_target", target="hessian", at=at,
                    replace=(Expect(F.hessian, "y"), F.hessian),
                    why="the output Hessian of the NLL at the observed target in place of its "
                        "expectation (for these outputs it depends on y)"),
            Control("variance_for_log_variance", target="moments", at=at,
                    replace=(Ps.T * Ps / 2, Ps.T * W * W * Ps / 2),
                    why="the Fisher of (μ, σ²), diag(1/σ², 1/(2σ⁴)), in place of that of "
                        "(μ, s = log σ²)"),
        ],
        assumptions=(r"independent $y_d \sim \mathcal N(\mu_d, e^{s_d})$, outputs "
                     r"$\eta = (\mu_1..\mu_D, s_1..s_D)$ (not natural parameters)", _MODEL_TARGETS),
        axioms=tk.family_axioms(lik.gaussian_mean_variance(1)), references=REFERENCES,
        numeric=_numeric("GaussianMeanVariance"), tested_by=_tested_by("gaussian_mean_variance"),
        notes="The identity holds in expectation only: the Hessian of the NLL depends on the target "
              "here (`output_fisher.gaussian_mean_variance`), so the pointwise Hessian is not the "
              f"Fisher (the control `hessian_at_the_target`, at a target ${sp.latex(y1)}$ away "
              "from the mean).")


GAUSSIAN_MEAN_VARIANCE = _gmv()

DERIVATIONS = [CATEGORICAL, GAUSSIAN, BERNOULLI, POISSON, GAUSSIAN_MEAN_VARIANCE,
               EXPONENTIAL_FAMILY]
