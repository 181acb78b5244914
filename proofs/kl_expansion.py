r"""The Fisher as the second-order term of the KL divergence.

Seed 003_377ac27c40267f84.txt §3, eqs. (10)-(13): expanding
``KL(eta, eta + delta) = KL(p_eta || p_{eta + delta})`` in ``delta``, the value and the
first-order term vanish (``eta`` minimises ``eta' -> KL(eta, eta')`` with value 0) and

.. math:: \mathrm{KL}(p_\eta \,\|\, p_{\eta+\delta}) = \tfrac12\,\delta^\top F_{\mathrm{out}}(\eta)\,\delta
          + O(\|\delta\|^3).

For the concrete families the KL is computed from the single symbolic source
(:mod:`fisherlab.likelihoods._symbolic`) as
``E_{y ~ p_eta}[log p(y | eta) - log p(y | eta + eps v)]`` with the family's exact
expectation, and differentiated in ``eps`` along ``delta = eps v`` (SYMBOLIC.md: ``diff``
in ``eps``, not ``series``): ``k(0) = 0``, ``k'(0) = 0`` and ``k''(0) = v^T F_out v`` with
the closed-form ``F_out`` proved in ``proofs/output_fisher.py``. Taylor's theorem for the
smooth function ``k`` then gives the expansion (stated as an assumption: ``k`` is ``C^3``).

For the abstract exponential family (tier A) the ``eps``-route hits a SymPy 1.14 defect:
``d^2/deps^2 A(eta + eps v)`` for an undefined multivariate ``A`` produces nested ``Subs``
whose leaked dummy ``_epsilon`` survives ``subs(eps, 0)``, so the mixed terms never reduce.
That chain therefore follows the seed's own form (eqs. (11)-(13)): gradient and Hessian in
the *second argument* ``eta'`` at ``eta' = eta``, with ``eta'`` a vector of plain symbols.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.likelihoods import _symbolic as lik
from fisherlab.symbolic import LegacyDerivation, NegativeControl, Step, Tier
from fisherlab.symbolic import toolkit as tk
from fisherlab.symbolic.toolkit import (
    EXPFAM_AXIOMS,
    GENERAL_K_AXIOMS,
    coordinate_witness,
    expfam_moment,
    family_axioms,
    gaussian_variance_symbol,
    general_categorical,
    moment_expectation,
    softmax_coordinates,
)

__all__ = ["DERIVATIONS", "kl_along", "KL_CATEGORICAL_SIZES", "KL_GAUSSIAN_SIZES",
           "KL_GMV_SIZES", "KL_EXPFAM_SIZES"]

REF_AMARI = tk.REF_AMARI_1998
REF_MARTENS = tk.REF_MARTENS_2020 + " §9 (the output-space Fisher and the GGN)"
REF_SEED_003_A = tk.REF_JOHNSON_2017 + (" App. A: the Fisher and the generalized Gauss-Newton "
                                     "matrices (output-space Fisher of exponential families)")
REF_SEED_003_S3 = tk.REF_JOHNSON_2017 + " §3, eqs. (10)-(13): the Fisher as the Hessian of the KL divergence"

KL_CATEGORICAL_SIZES = (2, 3, 4, 5)
KL_GAUSSIAN_SIZES = (1, 2, 3, 4)
KL_GMV_SIZES = (1, 2, 3)
KL_EXPFAM_SIZES = (1, 2, 3, 4)

_eps = sp.Symbol("epsilon", real=True)
_SOURCE = "fisherlab.likelihoods._symbolic"


def _direction(n):
    return sp.Matrix(sp.symbols(f"v_1:{n + 1}", real=True))


def kl_along(likelihood: lik.SymbolicLikelihood, v, E=None):
    """``k(eps) = KL(p_eta || p_{eta + eps v})`` from the family's log-density and expectation."""
    E = moment_expectation(likelihood) if E is None else E
    shift = {e: e + _eps * vi for e, vi in zip(likelihood.outputs, v)}
    logp = likelihood.log_density
    return E(logp - logp.xreplace(shift))


def _quad(v, M):
    return sp.expand((v.T * M * v)[0, 0])


def _eps_steps(label, k, F, coords=None, second_display=None):
    """``k(0) = 0``, ``k'(0) = 0``, ``k''(0) = v^T F v`` (optionally in coordinates)."""
    k0 = k.subs(_eps, 0)
    k1 = sp.diff(k, _eps).subs(_eps, 0)
    k2 = sp.diff(k, _eps, 2).subs(_eps, 0)
    if coords is not None:
        k0, k1, k2 = (x.subs(coords) for x in (k0, k1, k2))
    return [
        Step.equal(f"{label}: k(0) = KL(p || p) = 0", k0, 0,
                   justification="substitution eps = 0",
                   display=r"k(0) = \mathrm{KL}(p_\eta\,\|\,p_\eta) = 0" + rf"\qquad ({label})"),
        Step.equal(f"{label}: k'(0) = 0 (no first-order term)", k1, 0,
                   justification="SymPy derivative in eps, then eps = 0",
                   display=r"k'(0) = \nabla_2\mathrm{KL}(\eta,\eta)^\top v = 0"
                           + rf"\qquad ({label})"),
        Step.equal(f"{label}: k''(0) = v^T F_out v", k2, F,
                   justification="second SymPy derivative in eps at 0; F_out the closed form "
                                 "of proofs/output_fisher.py",
                   display=(second_display or r"k''(0) = v^\top F_{\mathrm{out}}(\eta)\,v")
                   + rf"\qquad ({label})"),
    ]


# --------------------------------------------------------------------------- categorical


def _categorical_parts(K):
    L = lik.categorical(K)
    v = _direction(K)
    k = kl_along(L, v)
    _, _, subs, p = softmax_coordinates(K)
    F = sp.diag(*p) - p * p.T
    return L, v, k, subs, p, F


def _double_sum(expr, k, l, K, finish):
    """``sum_{k=1}^K sum_{l=1}^K expr``, term by term, factors free of the index pulled out."""
    def one(e, idx):
        total = sp.Integer(0)
        for term in sp.Add.make_args(sp.expand(e)):
            const, dep = term.as_independent(idx, as_Add=False)
            total += const * sp.Sum(dep, (idx, 1, K)).doit()
        return finish(total)
    return one(one(expr, l), k)


def _categorical_general_steps():
    g = general_categorical()
    K, eta, j, c, k, l, p, Z, E = (g[n] for n in ("K", "eta", "j", "c", "k", "l", "p", "Z", "E"))
    v = sp.IndexedBase("v", real=True)
    shifted = {eta[c]: eta[c] + _eps * v[c], Z: sp.Sum(sp.exp(eta[j] + _eps * v[j]), (j, 1, K))}
    logp = g["logp"]
    kl = E(logp - logp.xreplace(shifted))
    Z_eps = shifted[Z]
    bregman = sp.log(Z_eps) - sp.log(Z) - _eps * sp.Sum(v[j] * sp.exp(eta[j]), (j, 1, K)) / Z

    def at0(expr):
        return g["finish"](expr.subs(_eps, 0))

    quad = _double_sum(v[k] * v[l] * (sp.KroneckerDelta(k, l) * p(k) - p(k) * p(l)), k, l, K,
                       g["finish"])
    return [
        Step.equal("general K: k(eps) = log Z(eta + eps v) - log Z(eta) - eps sum_c p_c v_c",
                   kl, bregman,
                   justification="sum over the class c of p_c (log p(c | eta) - log p(c | eta + eps v)); "
                                 "axioms 'canonical dummy index', 'linearity of the finite sum'",
                   display=r"k(\epsilon) = \sum_{c=1}^K p_c\log\frac{p_c(\eta)}{p_c(\eta+\epsilon v)} = "
                           r"\log\frac{Z(\eta+\epsilon v)}{Z(\eta)} - \epsilon\sum_c p_c v_c"),
        Step.equal("general K: k(0) = 0", at0(kl), 0, justification="substitution eps = 0",
                   display=r"k(0) = 0"),
        Step.equal("general K: k'(0) = 0", at0(sp.diff(kl, _eps)), 0,
                   justification="SymPy derivative of the Sum in eps, then eps = 0; axiom "
                                 "'canonical dummy index'",
                   display=r"k'(0) = \frac{\sum_j v_j e^{\eta_j}}{Z} - \sum_c p_c v_c = 0"),
        Step.equal("general K: k''(0) = v^T (diag(p) - p p^T) v, the double sum over k, l",
                   at0(sp.diff(kl, _eps, 2)), quad,
                   justification="second derivative in eps at 0; the double sum "
                                 "sum_k sum_l v_k v_l (delta_kl p_k - p_k p_l) evaluated term by term "
                                 "(axioms 'index range' for the summation index k, 'linearity of the "
                                 "finite sum', 'canonical dummy index')",
                   display=r"k''(0) = \sum_j p_j v_j^2 - \Big(\sum_j p_j v_j\Big)^2 = "
                           r"\sum_{k,l} v_k v_l(\delta_{kl}p_k - p_kp_l) = "
                           r"v^\top(\mathrm{diag}(p) - pp^\top)v"),
    ]


def _categorical_steps():
    steps = _categorical_general_steps()
    for K in KL_CATEGORICAL_SIZES:
        L, v, k, subs, p, F = _categorical_parts(K)
        A = L.log_partition
        shift = {e: e + _eps * vi for e, vi in zip(L.outputs, v)}
        bregman = (A.xreplace(shift) - A
                   - _eps * sp.Add(*[vi * sp.diff(A, e) for e, vi in zip(L.outputs, v)]))
        label = f"K = {K}"
        steps.append(Step.equal(
            f"{label}: the KL from the family's pmf is the Bregman divergence of A = log sum e^eta",
            k, bregman,
            justification=f"exact expectation over the K classes of log_density ({_SOURCE}); "
                          "E[y] = p = grad A",
            display=r"k(\epsilon) = \mathbb E_{y\sim p_\eta}[\log p(y\mid\eta) - "
                    r"\log p(y\mid\eta+\epsilon v)] = A(\eta+\epsilon v) - A(\eta) - "
                    r"\epsilon\, v^\top\nabla A(\eta)" + rf"\qquad ({label})"))
        steps += _eps_steps(label, k, _quad(v, F), coords=subs,
                            second_display=r"k''(0) = v^\top(\mathrm{diag}(p) - pp^\top)\,v")
    return steps


def _categorical_controls():
    K = 3
    L, v, k, subs, p, F = _categorical_parts(K)
    w = {**coordinate_witness(K), v[0]: 1, v[1]: -2, v[2]: 3}

    def half_missing():
        return Step.equal("k''(0) = 2 v^T F v", sp.diff(k, _eps, 2).subs(_eps, 0).subs(subs),
                          2 * _quad(v, F), justification="false")

    def wrong_point():
        # F_out evaluated at the far end eta + v of the step instead of at eta.
        z_far = sp.Matrix([sp.exp(e + vi) for e, vi in zip(L.outputs, v)])
        p_far = z_far / sp.Add(*z_far)
        F_far = (sp.diag(*p_far) - p_far * p_far.T).subs(subs)
        return Step.equal("k''(0) = v^T F(eta + v) v", sp.diff(k, _eps, 2).subs(_eps, 0).subs(subs),
                          _quad(v, F_far), justification="false")

    def general_half_missing():
        # The general-K chain with the factor 1/2 dropped, evaluated by the checker at K = 3.
        steps = _categorical_general_steps()
        k2, quad = steps[3].lhs, steps[3].rhs
        g = general_categorical()
        eta, vv = g["eta"], sp.IndexedBase("v", real=True)
        plain = {**{eta[i]: sp.Symbol(f"eta_{i}", real=True) for i in (1, 2, 3)},
                 **{vv[i]: sp.Symbol(f"v_{i}", real=True) for i in (1, 2, 3)}}
        at3 = {g["K"]: 3}
        return Step.equal("general K: k''(0) = 2 v^T F v", k2.subs(at3).doit().subs(plain),
                          (2 * quad).subs(at3).doit().subs(plain), justification="false")

    return [
        NegativeControl("factor 1/2 missing, general K",
                        "general-K chain: k''(0) = 2 v^T (diag(p) - pp^T) v (the checker evaluates "
                        "it at K = 3)", general_half_missing),
        NegativeControl("factor 1/2 missing",
                        "K = 3: KL(p_eta || p_{eta+delta}) = delta^T F delta + O(|delta|^3), "
                        "i.e. k''(0) = 2 v^T F v", half_missing, witness=w),
        NegativeControl("Fisher at the wrong point",
                        "K = 3: the quadratic term uses F_out at the end point eta + v of the "
                        "step instead of at eta", wrong_point, witness=w),
    ]


# --------------------------------------------------------------------------- gaussian (fixed variance)


def _gaussian_steps():
    var = gaussian_variance_symbol()
    steps = []
    for C in KL_GAUSSIAN_SIZES:
        L = lik.gaussian(C, var)
        E = moment_expectation(L)
        delta = sp.Matrix(sp.symbols(f"delta_1:{C + 1}", real=True))
        shift = {m: m + d for m, d in zip(L.outputs, delta)}
        exact = E(L.log_density - L.log_density.xreplace(shift))
        v = _direction(C)
        k = kl_along(L, v, E)
        label = f"C = {C}"
        steps.append(Step.equal(
            f"{label}: KL(N(mu, sigma^2 I) || N(mu + delta, sigma^2 I)) = |delta|^2 / (2 sigma^2) "
            "exactly", exact, _quad(delta, sp.eye(C)) / (2 * var),
            justification=f"exact Gaussian moments of the family ({_SOURCE})",
            display=r"\mathrm{KL}(p_\mu\,\|\,p_{\mu+\delta}) = \tfrac12\,\delta^\top (I/\sigma^2)\,"
                    r"\delta\quad\text{(no remainder)}" + rf"\qquad ({label})"))
        steps += _eps_steps(label, k, _quad(v, sp.eye(C)) / var,
                            second_display=r"k''(0) = v^\top (I/\sigma^2)\, v")
        steps.append(Step.equal(f"{label}: k''' = 0 for every eps (k is exactly quadratic)",
                                sp.diff(k, _eps, 3), 0,
                                justification="third SymPy derivative in eps",
                                display=r"k'''(\epsilon) = 0" + rf"\qquad ({label})"))
    return steps


def _gaussian_controls():
    var = gaussian_variance_symbol()
    L = lik.gaussian(2, var)
    v = _direction(2)
    k = kl_along(L, v)

    def half():
        return Step.equal("KL = eps^2 |v|^2 / sigma^2", k, _eps ** 2 * _quad(v, sp.eye(2)) / var,
                          justification="false")

    def variance():
        return Step.equal("KL = eps^2 sigma^2 |v|^2 / 2", k, _eps ** 2 * var * _quad(v, sp.eye(2)) / 2,
                          justification="false")

    return [
        NegativeControl("factor 1/2 missing", "C = 2: KL = delta^T (I/sigma^2) delta", half,
                        witness={var: 2}),
        NegativeControl("variance for precision", "C = 2: KL = sigma^2 |delta|^2 / 2", variance,
                        witness={var: 2}),
    ]


# --------------------------------------------------------------------------- gaussian (mean, log-variance)


def _gmv_parts(D):
    L = lik.gaussian_mean_variance(D)
    v = _direction(2 * D)
    k = kl_along(L, v)
    s = L.outputs[D:]
    F = sp.diag(*([sp.exp(-x) for x in s] + [sp.Rational(1, 2)] * D))
    return L, v, k, F


def _gmv_steps():
    steps = []
    for D in KL_GMV_SIZES:
        L, v, k, F = _gmv_parts(D)
        mu, s = L.outputs[:D], L.outputs[D:]
        a, b = v[:D], v[D:]
        textbook = sp.Add(*[
            ((sd + _eps * bd) - sd + (sp.exp(sd) + (_eps * ad) ** 2) * sp.exp(-(sd + _eps * bd)) - 1) / 2
            for sd, ad, bd in zip(s, a, b)])
        label = f"D = {D}"
        steps.append(Step.equal(
            f"{label}: the KL from the family's density is the textbook Gaussian KL",
            k, textbook,
            justification=f"exact Gaussian moments of the family ({_SOURCE})",
            display=r"k(\epsilon) = \sum_d \tfrac12\Big[s'_d - s_d + \big(e^{s_d} + "
                    r"(\mu'_d - \mu_d)^2\big)e^{-s'_d} - 1\Big],\ (\mu', s') = (\mu, s) + \epsilon v"
                    + rf"\qquad ({label})"))
        steps += _eps_steps(label, k, _quad(v, F),
                            second_display=r"k''(0) = v^\top\mathrm{diag}(e^{-s}, \tfrac12)\,v")
    return steps


def _gmv_controls():
    L, v, k, F = _gmv_parts(1)
    s = L.outputs[1]
    k2 = sp.diff(k, _eps, 2).subs(_eps, 0)

    def variance_param():
        return Step.equal("k''(0) = v^T diag(e^-s, e^-2s/2) v", k2,
                          _quad(v, sp.diag(sp.exp(-s), sp.exp(-2 * s) / 2)), justification="false")

    def half():
        return Step.equal("k''(0) = 2 v^T F v", k2, 2 * _quad(v, F), justification="false")

    return [
        NegativeControl("Fisher in (mu, sigma^2), not (mu, log sigma^2)",
                        "D = 1: the quadratic term uses diag(1/sigma^2, 1/(2 sigma^4))", variance_param),
        NegativeControl("factor 1/2 missing", "D = 1: k''(0) = 2 v^T F v", half),
    ]


# --------------------------------------------------------------------------- exponential family (tier A)


def _expfam_parts(d):
    eta = sp.symbols(f"eta_1:{d + 1}", real=True)
    eta2 = sp.symbols(f"eta'_1:{d + 1}", real=True)
    t = sp.symbols(f"t_1:{d + 1}", real=True)
    A = sp.Function("A")
    logp = sp.Add(*[e * ti for e, ti in zip(eta, t)]) - A(*eta)
    logp2 = sp.Add(*[e * ti for e, ti in zip(eta2, t)]) - A(*eta2)
    # E_{y ~ p_eta}[log p_eta - log p_eta'] is linear in t: use E[t_i] (the moment axiom).
    h = sp.expand(logp - logp2)
    first = {ti: expfam_moment(A, eta, tuple(int(i == j) for j in range(d))) for i, ti in enumerate(t)}
    kl = sp.expand(h.subs(first))
    at = dict(zip(eta2, eta))
    return eta, eta2, A, kl, at


def _expfam_steps():
    steps = []
    for d in KL_EXPFAM_SIZES:
        eta, eta2, A, kl, at = _expfam_parts(d)
        label = f"d = {d}"
        grad_A = sp.Matrix([sp.diff(A(*eta), e) for e in eta])
        bregman = A(*eta2) - A(*eta) - sp.Add(*[(e2 - e) * g for e2, e, g in zip(eta2, eta, grad_A)])
        grad2 = sp.Matrix([sp.diff(kl, e2) for e2 in eta2]).subs(at)
        hess2 = sp.hessian(kl, eta2).subs(at)
        steps += [
            Step.equal(f"{label}: KL(eta, eta') is the Bregman divergence of A", kl, bregman,
                       justification="axiom 'moments of the sufficient statistic' (|alpha| = 1: "
                                     "E[t] = grad A)",
                       display=r"\mathrm{KL}(\eta,\eta') = A(\eta') - A(\eta) - "
                               r"(\eta'-\eta)^\top\nabla A(\eta)" + rf"\qquad ({label})"),
            Step.equal(f"{label}: KL(eta, eta) = 0", kl.subs(at), 0,
                       justification="substitution eta' = eta",
                       display=r"\mathrm{KL}(\eta,\eta) = 0" + rf"\qquad ({label})"),
            Step.equal(f"{label}: grad_2 KL(eta, eta) = 0 (seed 003 eq. (12))", grad2, sp.zeros(d, 1),
                       justification="SymPy gradient in eta', then eta' = eta",
                       display=r"\nabla_{2}\mathrm{KL}(\eta,\eta) = \nabla A(\eta) - \nabla A(\eta) = 0"
                               + rf"\qquad ({label})"),
            Step.equal(f"{label}: grad^2_22 KL(eta, eta) = Hess A(eta) = F(eta) (seed 003 eq. (13))",
                       hess2, sp.hessian(A(*eta), eta),
                       justification="SymPy Hessian in eta', then eta' = eta; Hess A = F by "
                                     "information_equality.exponential_family",
                       display=r"\nabla^2_{22}\mathrm{KL}(\eta,\eta) = \nabla^2 A(\eta) = F(\eta)"
                               + rf"\qquad ({label})"),
        ]
    return steps


def _expfam_controls():
    eta, eta2, A, kl, at = _expfam_parts(2)
    x1, x2 = sp.symbols("x_1 x_2")
    witness = {A: sp.Lambda((x1, x2), x1 ** 2 * x2 + x2 ** 3 + x1)}

    def half():
        return Step.equal("grad^2_22 KL(eta, eta) = 2 Hess A", sp.hessian(kl, eta2).subs(at),
                          2 * sp.hessian(A(*eta), eta), justification="false")

    def no_linear():
        return Step.equal("KL(eta, eta') = A(eta') - A(eta)", kl, A(*eta2) - A(*eta),
                          justification="false")

    return [
        NegativeControl("factor 1/2 missing", "d = 2: the second-order term is delta^T F delta",
                        half, witness=witness),
        NegativeControl("linear term dropped",
                        "d = 2: KL(eta, eta') = A(eta') - A(eta) (E[t] = 0 assumed), which is not "
                        "even stationary at eta' = eta", no_linear, witness=witness),
    ]


# --------------------------------------------------------------------------- derivations

_STATEMENT = (r"\mathrm{KL}(p_\eta\,\|\,p_{\eta+\delta}) = \tfrac12\,\delta^\top F_{\mathrm{out}}(\eta)\,"
              r"\delta + O(\|\delta\|^3)")
_EPS = (r"along $\delta = \epsilon v$: $k(\epsilon) = \mathrm{KL}(p_\eta\|p_{\eta+\epsilon v})$ is "
        r"smooth ($C^3$), so Taylor's theorem turns $k(0) = k'(0) = 0$, $k''(0) = v^\top F v$ "
        r"into the expansion")
_REFS = (REF_SEED_003_S3, REF_SEED_003_A, REF_AMARI, REF_MARTENS)


DERIVATIONS = [
    LegacyDerivation(
        name="kl_expansion.categorical",
        title="KL expansion: categorical logits, second-order term diag(p) - p p^T",
        statement=_STATEMENT + r",\qquad F_{\mathrm{out}} = \mathrm{diag}(p) - pp^\top",
        tier=Tier.AB,
        scope="general K (IndexedBase/Sum) and K = 2..5 with every logit and direction entry symbolic",
        build=_categorical_steps,
        negative_controls=_categorical_controls(),
        assumptions=(r"logits $\eta\in\mathbb R^K$, direction $v\in\mathbb R^K$", _EPS,
                     r"$k(0), k'(0), k''(0)$ checked in the exact coordinates $z_k = e^{\eta_k}$ "
                     r"($k<K$), $s = \sum_j e^{\eta_j}$"),
        axioms={**GENERAL_K_AXIOMS, **family_axioms(lik.categorical(2))},
        references=_REFS,
        numeric=("fisherlab.likelihoods.Categorical.output_fisher",),
        notes="Steps 1-4 are the general-K chain (`IndexedBase` logits and direction, the "
              "log-pmf re-typed for symbolic K); the tier-B steps start from "
              "`fisherlab.likelihoods._symbolic.categorical(K)` for each K = 2..5.",
    ),
    LegacyDerivation(
        name="kl_expansion.gaussian",
        title="KL expansion: Gaussian mean, exactly quadratic",
        statement=r"\mathrm{KL}(\mathcal N(\mu,\sigma^2 I)\,\|\,\mathcal N(\mu+\delta,\sigma^2 I)) = "
                  r"\tfrac12\,\delta^\top (I/\sigma^2)\,\delta\quad\text{exactly}",
        tier=Tier.B,
        scope="C = 1..4, every mean, displacement and direction entry symbolic, symbolic sigma^2 > 0",
        build=_gaussian_steps,
        negative_controls=_gaussian_controls(),
        assumptions=(r"fixed variance $\sigma^2 > 0$", _EPS),
        axioms=family_axioms(lik.gaussian(1)),
        references=_REFS,
        numeric=("fisherlab.likelihoods.Gaussian.output_fisher",),
    ),
    LegacyDerivation(
        name="kl_expansion.gaussian_mean_variance",
        title="KL expansion: Gaussian (mean, log-variance), second-order term diag(e^-s, 1/2)",
        statement=_STATEMENT + r",\qquad F_{\mathrm{out}} = \mathrm{diag}(e^{-s}, \tfrac12)",
        tier=Tier.B,
        scope="D = 1..3 targets (C = 2D outputs), every mean, log-variance and direction entry symbolic",
        build=_gmv_steps,
        negative_controls=_gmv_controls(),
        assumptions=(r"outputs $(\mu_1..\mu_D, s_1..s_D)$, $s = \log\sigma^2$", _EPS),
        axioms=family_axioms(lik.gaussian_mean_variance(1)),
        references=_REFS,
        numeric=("fisherlab.likelihoods.GaussianMeanVariance.output_fisher",),
    ),
    LegacyDerivation(
        name="kl_expansion.exponential_family",
        title="KL expansion: general exponential family (Bregman divergence of A)",
        statement=r"\mathrm{KL}(\eta,\eta') = A(\eta') - A(\eta) - (\eta'-\eta)^\top\nabla A(\eta),"
                  r"\quad \nabla_2\mathrm{KL}(\eta,\eta) = 0,\quad "
                  r"\nabla^2_{22}\mathrm{KL}(\eta,\eta) = \nabla^2 A(\eta) = F(\eta)",
        tier=Tier.A,
        scope="A an arbitrary smooth (undefined) function of d = 1..4 natural parameters",
        build=_expfam_steps,
        negative_controls=_expfam_controls(),
        assumptions=(r"$p(y\mid\eta) = h(y)e^{\langle\eta,t(y)\rangle - A(\eta)}$, $A$ smooth "
                     r"($C^3$), $\eta, \eta'$ interior points",
                     r"Taylor's theorem in $\eta'$ at $\eta' = \eta$ turns the steps "
                     r"$\mathrm{KL}(\eta,\eta) = 0$, $\nabla_2\mathrm{KL}(\eta,\eta) = 0$, "
                     r"$\nabla^2_{22}\mathrm{KL}(\eta,\eta) = F(\eta)$ into "
                     r"$\mathrm{KL}(\eta,\eta+\delta) = \tfrac12\delta^\top F\delta + O(\|\delta\|^3)$"),
        axioms={k: v for k, v in EXPFAM_AXIOMS.items() if k.startswith("moments")},
        references=_REFS,
        numeric=tuple(f"fisherlab.likelihoods.{c}.output_fisher"
                      for c in ("Categorical", "Gaussian", "Bernoulli", "Poisson")),
        notes="Differentiating in the second argument (seed 003 eqs. (11)-(13)) instead of in "
              "eps along a line avoids a SymPy 1.14 defect with nested `Subs` of undefined "
              "multivariate functions (see the module docstring).",
    ),
]
