r"""The Fisher as the second-order term of the KL divergence, in chain form.

Johnson 2017, §3, eqs. (10)-(13): with
``KL(eta, eta') = E_{y ~ p_eta}[log p(y | eta) - log p(y | eta')]``, the value and the
gradient in the second argument vanish at ``eta' = eta`` (``eta`` minimises
``eta' -> KL(eta, eta')`` with value 0) and the Hessian there is the output-space Fisher, so by
Taylor's theorem in ``eta'`` (an assumption: the KL is ``C^3`` in its second argument)

.. math:: \mathrm{KL}(p_\eta \,\|\, p_{\eta+\delta}) = \tfrac12\,\delta^\top F_{\mathrm{out}}(\eta)\,\delta
          + O(\|\delta\|^3).

The conclusions are stated over the structural symbols of a likelihood family
(:func:`fisherlab.symbolic.toolkit.family`; ``log p(y | eta)`` and ``log p(y | eta')`` as
``1 x 1`` symbols), and each link is checked on the library's definition
(:mod:`fisherlab.likelihoods.symbolic`) at every size of the family's range (tier B), for the
categorical also at general ``K`` entry-wise (tier A), and for the exponential family with an
abstract log-partition on a generic model at ``d = 1..4`` (tier A-model), where the KL is also
shown to be the Bregman divergence of ``A``. For the Gaussian mean with fixed variance the
expansion is exact: ``KL(mu, mu + delta) = delta^T delta / (2 sigma^2)``.
"""

from __future__ import annotations

import dataclasses

import sympy as sp

from fisherlab.symbolic import Algebra, Chain, Control, Derivation, Link, Model, Sizes
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import At, Expect, Grad, Hess, Scalar

__all__ = ["DERIVATIONS", "kl_divergence"]

REFERENCES = (
    tk.REF_JOHNSON_2017 + " §3, eqs. (10)-(13): the Fisher as the Hessian of the KL divergence",
    tk.REF_JOHNSON_2017 + " App. A: the output-space Fisher of exponential families",
    tk.REF_AMARI_1998,
    tk.REF_MARTENS_2020 + " §9 (the output-space Fisher and the GGN)",
)
_TESTS = "tests/proofs/test_kl_expansion.py::"
_TESTED_BY = {
    "categorical": (_TESTS + "test_categorical_kl_expansion_numerically",
                    _TESTS + "test_categorical_remainder_is_third_order"),
    "gaussian": (_TESTS + "test_fixed_variance_gaussian_kl_is_exactly_quadratic",),
    "gaussian_mean_variance": (_TESTS + "test_gmv_kl_expansion_numerically",),
}
_TAYLOR = (r"the KL divergence is $C^3$ in its second argument, so Taylor's theorem at "
           r"$\eta' = \eta$ turns parts 1-3 into "
           r"$\mathrm{KL}(p_\eta\,\|\,p_{\eta+\delta}) = \tfrac12\,\delta^\top F_{\mathrm{out}}(\eta)"
           r"\,\delta + O(\|\delta\|^3)$")


def kl_divergence(F):
    """``KL(eta, eta') = E_{y ~ p_eta}[log p(y | eta) - log p(y | eta')]`` (``1 x 1``) of a
    :class:`~fisherlab.symbolic.toolkit.Family`."""
    return Expect(F.ell - F.ell2, "y")


def _parts(F):
    kl = kl_divergence(F)
    n = F.eta.shape[0]
    return (sp.Eq(At(kl, F.eta2, F.eta), sp.ZeroMatrix(1, 1), evaluate=False),
            sp.Eq(At(Grad(Scalar(kl), F.eta2), F.eta2, F.eta), sp.ZeroMatrix(n, 1), evaluate=False),
            sp.Eq(At(Hess(Scalar(kl), F.eta2), F.eta2, F.eta), F.closed, evaluate=False))


def _chains(F, by, tag=""):
    kl = kl_divergence(F)
    lp2 = Scalar(F.ell2)
    n = F.eta.shape[0]
    return [
        Chain(At(kl, F.eta2, F.eta), [
            Link(Expect(sp.MatAdd(F.ell, -F.ell), "y"), by, label="value" + tag,
                 why="at η' = η the two log-densities coincide"),
            Link(sp.ZeroMatrix(1, 1), by, why="X − X = 0, and E[0] = 0")]),
        Chain(At(Grad(Scalar(kl), F.eta2), F.eta2, F.eta), [
            Link(At(Expect(Grad(-lp2, F.eta2), "y"), F.eta2, F.eta), by, label="gradient" + tag,
                 why="log p(y | η) does not depend on η'; the expectation over y ~ p_η does not "
                     "depend on η', so the derivative goes inside"),
            Link(-Expect(Grad(F.logp, F.eta), "y"), by, label="score_at_eta" + tag,
                 why="at η' = η: minus the score"),
            Link(sp.ZeroMatrix(n, 1), by, label="zero_mean" + tag,
                 why="the score has zero mean (information_equality)")], part=1),
        Chain(At(Hess(Scalar(kl), F.eta2), F.eta2, F.eta), [
            Link(At(Expect(Hess(-lp2, F.eta2), "y"), F.eta2, F.eta), by, label="hessian" + tag,
                 why="as for the gradient, twice"),
            Link(Expect(Hess(-F.logp, F.eta), "y"), by, label="at_eta" + tag,
                 why="at η' = η: the expected Hessian of the NLL"),
            Link(F.closed, by, label="fisher" + tag,
                 why="the expected NLL Hessian is the output-space Fisher in closed form "
                     "(output_fisher, information_equality)")], part=2),
    ]


def _controls(F, at, witness=None, wrong_fisher=(), hessian_part=3):
    w = dict(witness or {})
    lp2 = Scalar(F.ell2)
    out = [
        Control("fisher_at_the_wrong_point", target="hessian", at=at, witness=w,
                replace=(At(Expect(Hess(-lp2, F.eta2), "y"), F.eta2, F.eta),
                         Expect(Hess(-lp2, F.eta2), "y")),
                why="the Hessian of the KL evaluated at the displaced point η' instead of at η"),
        Control("half_in_the_hessian", target=f"conclusion:{hessian_part}", at=at, witness=w,
                replace=(F.closed, F.closed / 2),
                why="½F as the Hessian: the Taylor factor ½ of ½δᵀFδ put into the Hessian"),
        Control("nonzero_first_order_term", target="score_at_eta", at=at, witness=w,
                replace=(-Expect(Grad(F.logp, F.eta), "y"), -Grad(F.logp, F.eta)),
                why="the score at one label in place of its mean: the first-order term would not "
                    "vanish"),
    ]
    out += [Control(name, target="fisher", at=at, witness=w, replace=(F.closed, wrong), why=why)
            for name, wrong, why in wrong_fisher]
    return out


def _family(name, title, scope, assumptions, witness=None, wrong_fisher=(), at_size=2, tier="B"):
    F = tk.family(name)
    general = F.general is not None

    def proof():
        chains = _chains(F, F.general, tag="_general") if general else []
        return chains + _chains(F, F.explicit)

    return Derivation(
        name=f"kl_expansion.{name}", title=title, conclusion=_parts(F), proof=proof,
        tier="A+B" if general else tier, scope=scope,
        controls=_controls(F, F.at(at_size), witness, wrong_fisher),
        assumptions=tuple(assumptions) + (_TAYLOR,),
        axioms={**(tk.GENERAL_CATEGORICAL_AXIOMS if general else {}),
                **tk.family_axioms(F.source(F.sizes[0]))},
        references=REFERENCES, numeric=(f"fisherlab.likelihoods.{_CLASS[name]}.output_fisher",),
        tested_by=_TESTED_BY[name])


_CLASS = {"categorical": "Categorical", "gaussian": "Gaussian",
          "gaussian_mean_variance": "GaussianMeanVariance"}

_CAT = tk.family("categorical")
(_p,) = _CAT.abbreviations
CATEGORICAL = _family(
    "categorical", "KL expansion: categorical logits, second-order term diag(p) - p p^T",
    "general K (entry-wise, IndexedBase/Sum), and K = 2..5 with every logit of both arguments "
    "symbolic",
    [r"logits $\eta, \eta' \in\mathbb R^K$; one-hot targets"],
    witness={y: int(i == 0) for i, y in enumerate(_CAT.source(3).targets)},
    wrong_fisher=[("missing_ppT", tk.Diag(_p), "diag(p): the −ppᵀ term dropped")], at_size=3)

_GMV = tk.family("gaussian_mean_variance")
_Pm, _Ps, _prec = list(_GMV.abbreviations)
GAUSSIAN_MEAN_VARIANCE = _family(
    "gaussian_mean_variance",
    "KL expansion: Gaussian (mean, log-variance), second-order term diag(e^-s, 1/2)",
    "D = 1..3 targets (C = 2D outputs), every mean, log-variance and target symbolic",
    [r"outputs $\eta = (\mu_1..\mu_D, s_1..s_D)$, $s = \log\sigma^2$"],
    wrong_fisher=[("fisher_in_variance", _Pm.T * tk.Diag(_prec) * _Pm
                   + _Ps.T * tk.Diag(_prec) * tk.Diag(_prec) * _Ps / 2,
                   "diag(1/σ², 1/(2σ⁴)): the Fisher in (μ, σ²), not in (μ, log σ²)")], at_size=1)


# --------------------------------------------------------------------------- Gaussian mean: exact

def _gaussian():
    F = tk.family("gaussian")
    var = tk.gaussian_variance_symbol()
    kl = kl_divergence(F)
    d = F.delta
    lhs = At(kl, F.eta2, F.eta + d)
    quad = d.T * F.closed * d / 2
    by = F.explicit

    def proof():
        return [Chain(lhs, [
            Link(Expect(F.ell - At(F.ell2, F.eta2, F.eta + d), "y"), by, label="shift",
                 why="the KL at η' = μ + δ"),
            Link(d.T * d / (2 * var), by, label="moments",
                 why="the log-densities differ by (‖y − μ − δ‖² − ‖y − μ‖²)/(2σ²) = "
                     "(δᵀδ − 2δᵀ(y − μ))/(2σ²), and E[y − μ] = 0"),
            Link(quad, Algebra(), why="F_out = I/σ²")])]

    return Derivation(
        name="kl_expansion.gaussian", title="KL expansion: Gaussian mean, exactly quadratic",
        conclusion=sp.Eq(lhs, quad, evaluate=False), proof=proof, tier="B",
        scope="C = 1..4, every mean, displacement and target symbolic, symbolic sigma^2 > 0",
        controls=[
            Control("half_missing", target="conclusion", at=F.at(2),
                    replace=(quad, d.T * F.closed * d), why="δᵀFδ: the factor ½ dropped"),
            Control("variance_for_precision", target="moments", at=F.at(2),
                    replace=(d.T * d / (2 * var), var * d.T * d / 2),
                    why="σ²‖δ‖²/2: the variance in place of the precision"),
        ],
        assumptions=(r"fixed variance $\sigma^2 > 0$; $\mathrm{KL}(\mu, \mu + \delta) = "
                     r"\mathbb E_{y\sim\mathcal N(\mu,\sigma^2 I)}[\log p(y\mid\mu) - "
                     r"\log p(y\mid\mu+\delta)]$",),
        axioms=tk.family_axioms(F.source(1)), references=REFERENCES,
        numeric=("fisherlab.likelihoods.Gaussian.output_fisher",), tested_by=_TESTED_BY["gaussian"])


GAUSSIAN = _gaussian()


# --------------------------------------------------------------------------- abstract log-partition

def _abstract():
    F = tk.abstract_family()
    A1 = sp.MatrixSymbol(r"A(\eta)", 1, 1)
    gA = Grad(F.A, F.eta)
    kl = kl_divergence(F)
    bregman = At(A1, F.eta, F.eta2) - A1 - (F.eta2 - F.eta).T * gA
    base = F.explicit

    def values(sizes):
        v = base.values(sizes)
        return {**v, A1: sp.Matrix([[v[F.A]]])}

    by = Model(base.sizes, values, operators=base.operators,
               describe=base.describe + r"; $A(\eta)$ also as a $1\times 1$ matrix")

    def proof():
        return [Chain(kl, [
            Link(Expect(F.eta.T * F.y - A1 - F.eta2.T * F.y + At(A1, F.eta, F.eta2), "y"), by,
                 label="log_densities",
                 why="log p(y | η) = <η, t> − A(η) + log h(y); the base measure cancels"),
            Link(bregman, by, label="mean", why="linearity of expectation and E[t] = ∇A(η)")]),
        ] + _chains(F, by)

    x1, x2 = sp.symbols("x_1 x_2")
    witness = {sp.Function("A"): sp.Lambda((x1, x2), x1 ** 2 * x2 + x2 ** 3 + x1)}
    at = _at_size(by, 2)
    parts = (sp.Eq(kl, bregman, evaluate=False),) + _parts(F)
    return Derivation(
        name="kl_expansion.exponential_family",
        title="KL expansion: general exponential family (Bregman divergence of A)",
        conclusion=parts, proof=lambda: _shift_parts(proof()), tier="A-model",
        scope="A an arbitrary smooth (undefined) function of d = 1..4 natural parameters",
        controls=[
            Control("mean_of_t_forgotten", target="mean", at=at, witness=witness,
                    replace=(bregman, At(A1, F.eta, F.eta2) - A1),
                    why="E[t] = 0 assumed: the linear term of the Bregman divergence dropped, so "
                        "the KL would not even be stationary at η' = η"),
        ] + _controls(F, at, witness, hessian_part=4)[:2],
        assumptions=(r"$p(y\mid\eta) = h(y)e^{\langle\eta,t(y)\rangle - A(\eta)}$, $A$ smooth, "
                     r"$\eta, \eta'$ interior points", _TAYLOR),
        axioms=tk.EXPFAM_AXIOMS, references=REFERENCES,
        numeric=tuple(f"fisherlab.likelihoods.{c}.output_fisher"
                      for c in ("Categorical", "Gaussian", "Bernoulli", "Poisson")),
        tested_by=_TESTED_BY["categorical"][:1] + _TESTED_BY["gaussian"],
        notes="Witness of the controls: A(x₁, x₂) = x₁²x₂ + x₂³ + x₁ at d = 2.")


def _at_size(model, size):
    """``model`` at one size of the natural parameter (where the controls look for witnesses)."""
    return dataclasses.replace(model, sizes=Sizes.of([{tk.abstract_family().size: size}]))


def _shift_parts(chains):
    """The chains of :func:`_chains` prove parts 1-3, here parts 2-4 (after the Bregman form)."""
    first, rest = chains[0], chains[1:]
    return [first] + [Chain(c.start, c.links, part=c.part + 1) for c in rest]


EXPONENTIAL_FAMILY = _abstract()

DERIVATIONS = [CATEGORICAL, GAUSSIAN, GAUSSIAN_MEAN_VARIANCE, EXPONENTIAL_FAMILY]
