r"""The pullback sampling trick: pseudo-gradients ``J^T Dz`` have covariance ``J^T G_z J``.

Seed 004_bb4f7e8c8840a6b5.txt (Grosse, CSC2541 Lecture 4, "Pullback Sampling Trick"): to
estimate ``G = E_x[J_zw^T G_z J_zw]`` sample a random output-space vector ``Dz`` with
covariance ``G_z`` and pull it back to weight space, ``Dw = J_zw^T Dz``; then
``Cov(Dw) = J^T G_z J``. With ``Dz = nabla_z(-log p(y|z))``, ``y ~ p(.|z)``, this is the
Monte-Carlo Fisher (``fl.fisher_mc``): ``E[Dz] = 0`` and ``E[Dz Dz^T] = F_out`` by the
definition of the output Fisher.

Scope (tier B): every size ``m = 1..3`` outputs and ``d = 1..3`` parameters, with every
entry of ``J`` (``m x d``) symbolic and ``G_z = L L^T`` for a lower-triangular ``L`` with
symbolic entries (any PSD ``G_z`` has this form); ``Dz = L u`` with ``E[u] = 0``,
``E[u u^T] = I`` (axiom). Also: the average of ``S = 2`` independent pseudo-gradient outer
products is unbiased; and for the library families (categorical ``K = 3``, Bernoulli
``C = 2``, Gaussian ``C = 2`` with symbolic variance) the sampled-label score has mean zero
and covariance ``F_out`` under each family's exact expectation operator.
"""

from __future__ import annotations

import sympy as sp

from fisherlab.likelihoods import _symbolic as lik
from fisherlab.symbolic import LegacyDerivation, NegativeControl, Step, Tier

SIZES = [(m, d) for m in (1, 2, 3) for d in (1, 2, 3)]

REFERENCES = [
    "seed 004_bb4f7e8c8840a6b5.txt (Grosse, CSC2541 Lecture 4, 'Pullback Sampling Trick': "
    "Dw = J^T Dz has covariance E[J^T G_z J] = G_w)",
    "seed 003_377ac27c40267f84.txt §7-8 (Fisher as the covariance of the model-sampled score; "
    "K-FAC estimates it from sampled targets)",
    "J. Martens, R. Grosse, Optimizing neural networks with Kronecker-factored approximate "
    "curvature, ICML 2015, §5 (sampled targets)",
]


def _matrix(name, rows, cols):
    return sp.Matrix(rows, cols, lambda i, j: sp.Symbol(f"{name}_{i + 1}{j + 1}", real=True))


def _lower(name, m):
    return sp.Matrix(m, m, lambda i, j: sp.Symbol(f"{name}_{i + 1}{j + 1}", real=True)
                     if j <= i else sp.Integer(0))


def _standard_expectation(us):
    """E over independent u with E[u_i] = 0, E[u_i u_j] = delta_ij (degree <= 2 polynomials)."""

    def E(h):
        h = sp.expand(h)
        if not h.has(*us):
            return h
        total = sp.Integer(0)
        for monom, coeff in sp.Poly(h, *us).terms():
            if sum(monom) > 2:
                raise ValueError("only moments of order <= 2 are given by the axiom")
            total += coeff * (1 if all(k in (0, 2) for k in monom) else 0)
        return total

    return E


def _size_steps(m, d):
    J = _matrix("J", m, d)
    Lz = _lower("l", m)
    u = sp.Matrix(sp.symbols(f"u_1:{m + 1}", real=True))
    E = _standard_expectation(list(u))
    Dz = Lz * u
    Dw = J.T * Dz
    Gz = Lz * Lz.T
    label = f"m = {m}, d = {d}"
    return [
        Step.equal(f"{label}: E[Dz Dz^T] = L L^T = G_z and E[Dz] = 0",
                   [(Dz * Dz.T).applyfunc(E), Dz.applyfunc(E)], [Gz, sp.zeros(m, 1)],
                   justification="axiom 'standardised noise'",
                   display=rf"\mathbb E[(Lu)(Lu)^\top] = L L^\top = G_z\qquad ({label})"),
        Step.equal(f"{label}: Cov(J^T Dz) = E[J^T Dz Dz^T J] = J^T G_z J",
                   [(Dw * Dw.T).applyfunc(E), Dw.applyfunc(E)], [J.T * Gz * J, sp.zeros(d, 1)],
                   justification="linearity of expectation; J does not depend on the noise",
                   display=rf"\operatorname{{Cov}}(J^\top \mathcal D z) = J^\top G_z J"
                           rf"\qquad ({label})"),
    ]


def _two_sample_step():
    m, d = 2, 2
    J, Lz = _matrix("J", m, d), _lower("l", m)
    u1 = sp.Matrix(sp.symbols("u_1:3", real=True))
    u2 = sp.Matrix(sp.symbols("w_1:3", real=True))
    E = _standard_expectation(list(u1) + list(u2))
    Dw1, Dw2 = J.T * Lz * u1, J.T * Lz * u2
    estimate = (Dw1 * Dw1.T + Dw2 * Dw2.T) / 2
    return Step.equal("S = 2 independent samples: E[(1/S) sum_s Dw_s Dw_s^T] = J^T G_z J",
                      estimate.applyfunc(E), J.T * Lz * Lz.T * J,
                      justification="independent standardised draws u, w (axiom); linearity",
                      display=r"\mathbb E\Big[\tfrac1S\sum_{s=1}^S \mathcal D w_s\mathcal D w_s^\top"
                              r"\Big] = J^\top G_z J\qquad (m = d = S = 2)")


def _family_steps():
    steps = []
    sigma2 = sp.Symbol("sigma2", positive=True)
    for L, label in [(lik.categorical(3), "categorical K = 3"), (lik.bernoulli(2), "Bernoulli C = 2"),
                     (lik.gaussian(2, sigma2), "Gaussian C = 2, variance sigma2")]:
        C = len(L.outputs)
        Dz = -L.score()                                   # grad_eta(-log p(y|eta)), y ~ p
        J = _matrix("J", C, 1)
        Dw = J.T * Dz
        E = L.expectation
        F_out = sp.hessian(L.log_partition, L.outputs)   # closed form: Hess A
        steps.append(Step.equal(
            f"{label}: the sampled-label pseudo-gradient Dz = grad_eta(-log p(y|eta)), "
            "y ~ p(.|eta), has mean 0 and pulls back to covariance J^T F_out J",
            [Dz.applyfunc(E), (Dw * Dw.T).applyfunc(lambda h: E(sp.expand(h)))],
            [sp.zeros(C, 1), J.T * F_out * J],
            justification="the family's exact expectation operator "
                          "(fisherlab.likelihoods._symbolic); F_out = Hess A (the output Fisher "
                          "of a natural-parameter family, information_equality.*)",
            display=rf"\mathbb E_y[\mathcal D z] = 0,\ \ \mathbb E_y[J^\top\mathcal D z\,"
                    rf"\mathcal D z^\top J] = J^\top F_{{\mathrm{{out}}}} J\qquad (\text{{{label}}})"))
    return steps


def _steps():
    steps = []
    for m, d in SIZES:
        steps += _size_steps(m, d)
    steps.append(_two_sample_step())
    steps += _family_steps()
    return steps


def _square(m=2):
    J, Lz = _matrix("J", m, m), _lower("l", m)
    u = sp.Matrix(sp.symbols(f"u_1:{m + 1}", real=True))
    return J, Lz, u, _standard_expectation(list(u))


def _control_wrong_side():
    J, Lz, u, E = _square()
    Dw = J.T * Lz * u
    return Step.equal("Cov(J^T Dz) = J G_z J^T", (Dw * Dw.T).applyfunc(E), J * Lz * Lz.T * J.T,
                      justification="false: the pullback is J^T . J, not J . J^T")


def _control_missing_transpose():
    J, Lz, u, E = _square()
    Dw = J * Lz * u          # pulled back with J instead of J^T
    return Step.equal("Dw = J Dz has covariance J^T G_z J", (Dw * Dw.T).applyfunc(E),
                      J.T * Lz * Lz.T * J,
                      justification="false: a missing transpose in the pullback")


def _control_covariance_not_root():
    J, Lz, u, E = _square()
    Gz = Lz * Lz.T
    Dw = J.T * Gz * u        # noise scaled by G_z instead of a square root of it
    return Step.equal("Dz = G_z u has covariance G_z", (Dw * Dw.T).applyfunc(E), J.T * Gz * J,
                      justification="false: Cov(G_z u) = G_z^2; the noise needs a square root "
                                    "L with L L^T = G_z")


DERIVATIONS = [
    LegacyDerivation(
        name="pullback_sampling.pseudo_gradient_covariance",
        title="Pullback sampling trick: Cov(J^T Dz) = J^T G_z J",
        statement=r"\mathbb E[\mathcal D z] = 0,\ \operatorname{Cov}(\mathcal D z) = G_z"
                  r"\ \Rightarrow\ \operatorname{Cov}(J^\top\mathcal D z) = J^\top G_z J;\quad "
                  r"\mathcal D z = \nabla_z(-\log p(y\mid z)),\ y\sim p:\ G_z = F_{\mathrm{out}}",
        assumptions=[r"$J$ fixed (does not depend on the sampled noise or label)",
                     r"$G_z = L L^\top$ (every PSD matrix has such a factor); $\mathcal Dz = Lu$"],
        tier=Tier.B,
        scope="m = 1..3 outputs x d = 1..3 parameters, every entry of J and L symbolic; "
              "S = 2 samples at m = d = 2; families categorical K = 3, Bernoulli C = 2, "
              "Gaussian C = 2 (symbolic variance), each with a symbolic C x 1 Jacobian",
        build=_steps,
        negative_controls=[
            NegativeControl("wrong_side", "J G_z J^T in place of J^T G_z J (m = d = 2)",
                            _control_wrong_side),
            NegativeControl("missing_transpose", "Dw = J Dz instead of J^T Dz (m = d = 2)",
                            _control_missing_transpose),
            NegativeControl("covariance_instead_of_root",
                            "noise G_z u instead of L u, L L^T = G_z (m = d = 2)",
                            _control_covariance_not_root),
        ],
        axioms={"standardised noise": r"$\mathbb E[u_i] = 0$, $\mathbb E[u_i u_j] = \delta_{ij}$ "
                                      r"(e.g. $u\sim\mathcal N(0, I)$); independent draws "
                                      r"$u, w$ have $\mathbb E[u_i w_j] = 0$"},
        references=REFERENCES,
        numeric=["fisherlab.fisher_mc"],
    ),
]
