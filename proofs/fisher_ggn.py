r"""Fisher = GGN for natural-parameter families, and the Hessian = GGN + residual term.

Seed 003_377ac27c40267f84.txt, App. A, eqs. (39)-(47): for a model whose predictive is an
exponential family in its natural parameter ``eta = g(theta)``,

.. math::
    p(y\mid\theta) = h(y)\exp\{\langle g(\theta), t(y)\rangle - A(g(\theta))\},

the output-space Hessian of the NLL is ``nabla^2 A`` (free of ``y``), so the GGN
``J^T nabla^2 A J`` equals the Fisher ``E_y[nabla log p nabla log p^T]``; and the Hessian of
the NLL is ``J^T nabla^2 A J + sum_k (d_k A - t_k) nabla^2 g_k``, whose expectation under the
model is the GGN again.

Scope (tier A, generic model): ``g = (g_1, ..., g_K)`` are undefined SymPy ``Function``\ s of
``theta = (theta_1, ..., theta_d)`` and ``A`` an undefined ``Function`` of ``K`` arguments;
``d = 2`` parameters and ``K = 3`` natural parameters (nothing in the chain uses a special
value of ``d`` or ``K``; sizes fixed only for cost). The sufficient statistic enters through
symbols ``t_1..t_K``; expectations use the exponential-family moment axiom
(``E[t^alpha] = e^{-A} d^alpha e^{A}``, shared with ``proofs/information_equality.py``, which
also checks it against every library family's exact expectation operator).

Negative controls: the mean--variance Gaussian (``fl.GaussianMeanVariance``, outputs
``(mu, log sigma^2)``: *not* natural parameters) composed with a model map, where the
GGN with the data label differs from the Fisher; the empirical Fisher in place of the
Fisher; the Hessian without (or with a sign-flipped) residual term.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.likelihoods import _symbolic as lik
from fisherlab.symbolic import Derivation, NegativeControl, Step, Tier

from .information_equality import EXPFAM_AXIOMS, expfam_expectation

D, K = 2, 3

REFERENCES = [
    "seed 003_377ac27c40267f84.txt App. A, eqs. (39)-(47) (Hessian = J^T (Hess f) J + "
    "(Hess g) grad f; Fisher = E[J^T (Hess A) J] for exponential families)",
    "seed 004_bb4f7e8c8840a6b5.txt (Grosse, CSC2541 Lecture 4: F = G for exponential-family NLL)",
    "J. Martens, New insights and perspectives on the natural gradient method, JMLR 21(146), "
    "2020, §9.2",
    "N. N. Schraudolph, Fast curvature matrix-vector products for second-order gradient "
    "descent, Neural Computation 14(7), 2002",
]

NUMERIC = ["fisherlab.ggn", "fisherlab.fisher", "fisherlab.hessian", "fisherlab.symbolic.curvature"]


def _symbols(d=D, k=K):
    theta = sp.symbols(f"theta_1:{d + 1}", real=True)
    eta = sp.symbols(f"eta_1:{k + 1}", real=True)
    t = sp.symbols(f"t_1:{k + 1}", real=True)
    return theta, eta, t


def _generic(d=D, k=K):
    theta, eta, t = _symbols(d, k)
    gs = [sp.Function(f"g_{j + 1}")(*theta) for j in range(k)]
    return theta, eta, t, gs, sp.Function("A")


def _concrete(d=D, k=K):
    """Stand-ins for the witnesses: polynomial maps and the softmax log-partition."""
    theta, eta, t = _symbols(d, k)
    a, b = theta[0], theta[1]
    gs = [a + b ** 2, a * b, b - a][:k]
    return theta, eta, t, gs, sp.Lambda(eta, sp.log(sp.Add(*[sp.exp(e) for e in eta])))


def _quantities(theta, eta, t, gs, A):
    at_g = dict(zip(eta, gs))
    logp = sp.Add(*[g * ti for g, ti in zip(gs, t)]) - A(*gs)
    J = sp.Matrix(len(gs), len(theta), lambda k, i: sp.diff(gs[k], theta[i]))
    grad_A = sp.Matrix([sp.diff(A(*eta), e) for e in eta]).subs(at_g)
    hess_A = sp.hessian(A(*eta), eta).subs(at_g)
    # output-space Hessian of the NLL, computed from the log-density in eta, then at g
    nll_eta = -(sp.Add(*[e * ti for e, ti in zip(eta, t)]) - A(*eta))
    Lam_eta = sp.hessian(nll_eta, eta)
    Lam = Lam_eta.subs(at_g)
    score = sp.Matrix([sp.diff(logp, th) for th in theta])
    E = expfam_expectation(A, eta, t, at=at_g)  # over y ~ p(.|g(theta)), by the moment axiom
    return dict(logp=logp, J=J, grad_A=grad_A, hess_A=hess_A, Lam_eta=Lam_eta, Lam=Lam,
                score=score, E=E, t=sp.Matrix(t))


# --------------------------------------------------------------------------- Fisher = GGN


def _fisher_ggn_steps():
    theta, eta, t, gs, A = _generic()
    q = _quantities(theta, eta, t, gs, A)
    J, E, score = q["J"], q["E"], q["score"]
    fisher = sp.Matrix(D, D, lambda i, j: E(score[i] * score[j]))
    return [
        Step.equal(
            "the output-space Hessian of the NLL, Lambda = grad^2_eta(-log p), is Hess A(eta)",
            q["Lam_eta"], sp.hessian(A(*eta), eta),
            justification="-log p = A(eta) - <eta, t(y)> - log h(y) and <eta, t> is linear in eta",
            display=r"\Lambda(\eta) = \nabla^2_\eta\big(A(\eta) - \langle\eta, t(y)\rangle\big) "
                    r"= \nabla^2 A(\eta)"),
        Step.equal(
            "Lambda does not depend on the target: d Lambda / d t_k = 0 for every k",
            sp.Matrix([sp.diff(q["Lam_eta"][i, j], tk) for tk in t for i in range(K)
                       for j in range(K)]), sp.zeros(K * K * K, 1),
            justification="the sufficient statistic enters log p linearly",
            display=r"\partial \Lambda / \partial t_k = 0"),
        Step.equal(
            "the score in theta is J^T (t - grad A(g(theta)))",
            score, J.T * (q["t"] - q["grad_A"]),
            justification="chain rule through the generic model map g (seed 003 eq. (41))",
            display=r"\nabla_\theta \log p = J^\top\big(t(y) - \nabla A(g(\theta))\big),\quad "
                    r"J = \partial g/\partial\theta"),
        Step.equal(
            "Fisher = E_y[score score^T] = J^T Lambda(g(theta)) J = GGN",
            fisher, J.T * q["Lam"] * J,
            justification="axiom 'moments of the sufficient statistic' with |alpha| <= 2: "
                          "E[(t - grad A)(t - grad A)^T] = e^{-A} Hess e^{A} - grad A grad A^T "
                          "= Hess A; linearity of expectation (J does not depend on y)",
            display=r"F = \mathbb E_y\big[J^\top (t - \nabla A)(t - \nabla A)^\top J\big] "
                    r"= J^\top \nabla^2 A\, J = J^\top \Lambda J = G \quad (\text{seed 003 (47)})"),
    ] + _family_instances()


def _family_instances():
    """The hypothesis holds for the library's natural families (their single symbolic source):
    log p = <eta, t(y)> - A(eta) + const(y), so Lambda = Hess A with no y in it."""
    sigma2 = sp.Symbol("sigma2", positive=True)
    steps = []
    for L, label in [(lik.categorical(3), "categorical K = 3"), (lik.bernoulli(2), "Bernoulli C = 2"),
                     (lik.gaussian(2, sigma2), "Gaussian C = 2, variance sigma2"),
                     (lik.poisson(2), "Poisson C = 2")]:
        eta, t = L.outputs, L.sufficient_statistic
        rest = sp.expand(L.log_density - sp.Add(*[e * ti for e, ti in zip(eta, t)])
                         + L.log_partition)
        steps.append(Step.equal(
            f"{label}: log p = <eta, t(y)> - A(eta) + h(y) (natural parameters) and "
            "Lambda = Hess A",
            [sp.Matrix([sp.diff(rest, e) for e in eta]), L.hessian_nll()],
            [sp.zeros(len(eta), 1), sp.hessian(L.log_partition, eta)],
            justification="the family's log_density, sufficient_statistic and log_partition in "
                          "fisherlab.likelihoods._symbolic",
            display=rf"\partial_\eta\big(\log p - \langle\eta, t\rangle + A\big) = 0,\ "
                    rf"\Lambda = \nabla^2 A\qquad(\text{{{label}}})"))
    return steps


def _gmv_control():
    """Mean-variance Gaussian outputs (mu(theta), s(theta)): GGN with the label vs Fisher."""
    L = lik.gaussian_mean_variance(1)
    (mu, s), (y,) = L.outputs, L.targets
    theta = sp.symbols(f"theta_1:{D + 1}", real=True)
    a, b = theta
    gs = [a + b ** 2, a * b]  # concrete model map: the witness
    at_g = {mu: gs[0], s: gs[1]}
    J = sp.Matrix(2, D, lambda k, i: sp.diff(gs[k], theta[i]))
    F_out = L.fisher_definition().subs(at_g)          # exact expectation over y ~ N(mu, e^s)
    Lam = L.hessian_nll().subs(at_g)                  # depends on the label y
    return Step.equal("mean-variance Gaussian: Fisher = GGN (J^T Lambda(y) J)",
                      J.T * F_out * J, J.T * Lam * J,
                      justification="false: (mu, log sigma^2) are not natural parameters, so "
                                    "Lambda depends on y (only its expectation is F_out)")


def _empirical_control():
    theta, eta, t, gs, A = _concrete()
    q = _quantities(theta, eta, t, gs, A)
    J, r = q["J"], q["t"] - q["grad_A"]
    return Step.equal("empirical Fisher J^T r r^T J (label t) = Fisher J^T Hess A J",
                      J.T * r * r.T * J, J.T * q["hess_A"] * J,
                      justification="false: the outer product at the data label is not its "
                                    "expectation under the model")


# --------------------------------------------------------------------------- Hessian


def _residual(q, gs, theta, sign=1):
    return sum((sign * (q["grad_A"][k] - q["t"][k]) * sp.hessian(gs[k], theta)
                for k in range(len(gs))), sp.zeros(len(theta)))


def _hessian_steps():
    theta, eta, t, gs, A = _generic()
    q = _quantities(theta, eta, t, gs, A)
    J, E = q["J"], q["E"]
    H = sp.hessian(-q["logp"], theta)
    ggn = J.T * q["hess_A"] * J
    return [
        Step.equal(
            "Hessian of the NLL = J^T Hess A J + sum_k (d_k A(g) - t_k) Hess g_k",
            H, ggn + _residual(q, gs, theta),
            justification="second-order chain rule (seed 003 eqs. (40), (45)-(46))",
            display=r"\nabla^2_\theta(-\log p) = J^\top \nabla^2 A\, J + \sum_k "
                    r"\big(\partial_k A(g) - t_k(y)\big)\,\nabla^2_\theta g_k"),
        Step.equal(
            "the residual term has zero mean under the model: E_y[d_k A - t_k] = 0",
            q["grad_A"].applyfunc(lambda e: E(e)) - q["t"].applyfunc(E), sp.zeros(K, 1),
            justification="axiom 'moments of the sufficient statistic' with |alpha| = 1: "
                          "E[t] = e^{-A} grad e^{A} = grad A",
            display=r"\mathbb E_y[\nabla A(g) - t(y)] = \nabla A - e^{-A}\nabla e^{A} = 0"),
        Step.equal(
            "E_y[Hessian] = J^T Hess A J = GGN = Fisher",
            H.applyfunc(E), ggn,
            justification="linearity of expectation; J and Hess g_k do not depend on y",
            display=r"\mathbb E_{y\sim p}\big[\nabla^2_\theta(-\log p)\big] = J^\top\nabla^2 A\,J"
                    r" = G = F"),
    ]


def _no_residual_control():
    theta, eta, t, gs, A = _concrete()
    q = _quantities(theta, eta, t, gs, A)
    return Step.equal("Hessian = GGN (residual term dropped)",
                      sp.hessian(-q["logp"], theta), q["J"].T * q["hess_A"] * q["J"],
                      justification="false: the Hessian keeps sum_k (d_k A - t_k) Hess g_k")


def _flipped_residual_control():
    theta, eta, t, gs, A = _concrete()
    q = _quantities(theta, eta, t, gs, A)
    return Step.equal("Hessian = GGN + sum_k (t_k - d_k A) Hess g_k (sign flipped)",
                      sp.hessian(-q["logp"], theta),
                      q["J"].T * q["hess_A"] * q["J"] + _residual(q, gs, theta, sign=-1),
                      justification="false: the residual is d_k A - t_k = d(-log p)/d eta_k")


_CONCRETE = ("g = (theta_1 + theta_2^2, theta_1 theta_2, theta_2 - theta_1), "
             "A = log sum_k exp(eta_k) (softmax)")

_ONE_HOT = dict(zip(_symbols()[2], (1, 0, 0)))

DERIVATIONS = [
    Derivation(
        name="fisher_ggn.natural_parameters",
        title="Fisher = GGN for exponential families in their natural parameters",
        statement=r"p(y\mid\theta) = h(y)e^{\langle g(\theta), t(y)\rangle - A(g(\theta))}"
                  r"\ \Rightarrow\ F(\theta) = \mathbb E_y[\nabla\log p\,\nabla\log p^\top]"
                  r" = J^\top \nabla^2 A(g(\theta))\, J = J^\top \Lambda J = G(\theta)",
        assumptions=[r"$g:\mathbb R^d\to\mathbb R^K$ a generic smooth model map (undefined "
                     r"functions $g_k(\theta)$), $J = \partial g/\partial\theta$",
                     r"$A$ a generic smooth log-partition (undefined function of $K$ arguments), "
                     r"$g(\theta)$ in the interior of the natural parameter space",
                     r"targets drawn from the model, $y \sim p(\cdot\mid\theta)$"],
        tier=Tier.A,
        scope=f"generic model map g (undefined Functions) and abstract log-partition A; "
              f"d = {D} parameters, K = {K} natural parameters; hypothesis instantiated for the "
              f"library families categorical K = 3, Bernoulli C = 2, Gaussian C = 2, Poisson C = 2",
        build=_fisher_ggn_steps,
        negative_controls=[
            NegativeControl(
                "mean_variance_gaussian",
                "GaussianMeanVariance outputs (mu, log sigma^2) = (theta_1 + theta_2^2, "
                "theta_1 theta_2): Fisher = J^T Lambda(y) J claimed; false for a generic label y",
                _gmv_control),
            NegativeControl(
                "empirical_fisher_for_fisher",
                "J^T (t - grad A)(t - grad A)^T J at the data label in place of its expectation; "
                "witness " + _CONCRETE + ", one-hot label t = (1, 0, 0)",
                _empirical_control, witness=_ONE_HOT),
        ],
        axioms=EXPFAM_AXIOMS,
        references=REFERENCES,
        numeric=NUMERIC,
        notes="The moment axiom is checked against the exact expectation operator of every "
              "library family in `information_equality.*`. The library's numeric check of the "
              "same identity on networks: `tests/curvature/test_against_symbolic.py` "
              "(`fl.fisher` = `fl.ggn` = SymPy ground truth).",
    ),
    Derivation(
        name="fisher_ggn.expected_hessian",
        title="Hessian = GGN + residual term; its expectation under the model is the GGN",
        statement=r"\nabla^2_\theta(-\log p) = J^\top\nabla^2 A\,J + \sum_k (\partial_k A - t_k)"
                  r"\nabla^2 g_k,\qquad \mathbb E_{y\sim p}[\nabla^2_\theta(-\log p)] = G = F",
        assumptions=[r"as in fisher_ggn.natural_parameters: generic $g(\theta)$, generic $A$"],
        tier=Tier.A,
        scope=f"generic model map g (undefined Functions) and abstract log-partition A; "
              f"d = {D} parameters, K = {K} natural parameters",
        build=_hessian_steps,
        negative_controls=[
            NegativeControl("residual_dropped",
                            "Hessian = GGN (the term sum_k (d_k A - t_k) Hess g_k dropped); "
                            "witness " + _CONCRETE + ", t = (1, 0, 0)", _no_residual_control,
                            witness=_ONE_HOT),
            NegativeControl("residual_sign_flipped",
                            "residual (t_k - d_k A) instead of (d_k A - t_k); witness " + _CONCRETE
                            + ", t = (1, 0, 0)", _flipped_residual_control, witness=_ONE_HOT),
        ],
        axioms=EXPFAM_AXIOMS,
        references=REFERENCES,
        numeric=NUMERIC,
    ),
]
