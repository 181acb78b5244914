r"""The empirical Fisher is not the Fisher: linear least squares (Kunstner et al., 2019).

For linear regression ``f(theta, x) = theta^T x`` with Gaussian noise of variance
``sigma^2`` and mean reduction (CONVENTIONS.md),

.. math::
    H = F = \frac{1}{N\sigma^2}\sum_n x_n x_n^\top, \qquad
    \mathrm{EF} = \frac{1}{N\sigma^4}\sum_n r_n^2\, x_n x_n^\top,\quad r_n = y_n - \theta^\top x_n.

The Fisher (and the Hessian) do not depend on the labels; the empirical Fisher is weighted by
the squared residuals, so it vanishes as the model interpolates the data (all ``r_n -> 0``)
while ``F = H`` stays fixed -- the empirical Fisher is *not* a curvature estimate near a
minimum. It equals the Fisher only in expectation over labels drawn from the model,
``E_{y ~ p}[EF] = F``.

Scope (tier B): every ``N = 1..3`` examples and input dimension ``D = 1..2``, with every
entry of ``x_n``, ``y_n``, ``theta`` symbolic and ``sigma^2`` a positive symbol. The Fisher's
expectation uses the Gaussian family's exact expectation operator
(:func:`fisherlab.likelihoods._symbolic.gaussian`, ``y = mu + sigma u``).
"""

from __future__ import annotations

import sympy as sp

from fisherlab.likelihoods import _symbolic as lik
from fisherlab.symbolic import LegacyDerivation, NegativeControl, Step, Tier

SIZES = [(N, D) for N in (1, 2, 3) for D in (1, 2)]
SIGMA2 = sp.Symbol("sigma2", positive=True)

REFERENCES = [
    "F. Kunstner, L. Balles, P. Hennig, Limitations of the empirical Fisher approximation for "
    "natural gradient descent, NeurIPS 2019, §3 and Fig. 1 (linear regression)",
    "seed 002_7cc303c8b37b8e83.txt (the empirical-Fisher update as a constrained problem)",
    "seed 003_377ac27c40267f84.txt §7 (Fisher: expectation under the model's predictive)",
    "J. Martens, New insights and perspectives on the natural gradient method, JMLR 2020, §11",
]


def _problem(N, D):
    theta = sp.Matrix(sp.symbols(f"theta_1:{D + 1}", real=True))
    X = [sp.Matrix(D, 1, lambda i, j, n=n: sp.Symbol(f"x_{n + 1}{i + 1}", real=True))
         for n in range(N)]
    Y = sp.symbols(f"y_1:{N + 1}", real=True)
    fam = lik.gaussian(1, SIGMA2)
    (mu,), (ysym,) = fam.outputs, fam.targets
    losses = [(-fam.log_density).subs({mu: (theta.T * x)[0, 0], ysym: y}) for x, y in zip(X, Y)]
    grads = [sp.Matrix([sp.diff(l, t) for t in theta]) for l in losses]
    residuals = [y - (theta.T * x)[0, 0] for x, y in zip(X, Y)]
    return theta, X, Y, fam, losses, grads, residuals


def _fisher(theta, X, fam):
    """(1/N) sum_n E_{y_n ~ N(theta^T x_n, sigma^2)}[g_n g_n^T] with the family's operator."""
    (mu,), (ysym,) = fam.outputs, fam.targets
    N, D = len(X), len(theta)
    F = sp.zeros(D)
    for x in X:
        l = -fam.log_density
        g = sp.Matrix([sp.diff(l.subs(mu, (theta.T * x)[0, 0]), t) for t in theta])
        outer = (g * g.T).applyfunc(lambda h: fam.expectation(h).subs(mu, (theta.T * x)[0, 0]))
        F += outer / N
    return F


def _steps():
    steps = []
    for N, D in SIZES:
        theta, X, Y, fam, losses, grads, res = _problem(N, D)
        label = f"N = {N}, D = {D}"
        gram = sum((x * x.T for x in X), sp.zeros(D)) / (N * SIGMA2)
        H = sp.hessian(sp.Add(*losses) / N, list(theta))
        F = _fisher(theta, X, fam)
        EF = sum((g * g.T for g in grads), sp.zeros(D)) / N
        EF_closed = sum((r ** 2 * x * x.T for r, x in zip(res, X)), sp.zeros(D)) / (N * SIGMA2 ** 2)
        interp = {y: (theta.T * x)[0, 0] for x, y in zip(X, Y)}
        # E over labels drawn from the model, y_n = theta^T x_n + sigma u_n, independently
        us = sp.symbols(f"u_1:{N + 1}", real=True)
        draw = {y: (theta.T * x)[0, 0] + sp.sqrt(SIGMA2) * u for x, y, u in zip(X, Y, us)}

        def E_model(h, us=us, draw=draw):
            h = sp.expand(h.subs(draw))
            total = sp.Integer(0)
            for monom, coeff in sp.Poly(h, *us).terms():
                w = coeff
                for k in monom:
                    w *= lik.normal_moment(k)
                total += w
            return total

        steps += [
            Step.equal(f"{label}: Hessian of the mean loss = (1/(N sigma^2)) sum_n x_n x_n^T",
                       H, gram, justification="the loss is quadratic in theta",
                       display=rf"H = \tfrac{{1}}{{N\sigma^2}}\textstyle\sum_n x_n x_n^\top"
                               rf"\qquad ({label})"),
            Step.equal(f"{label}: Fisher = (1/(N sigma^2)) sum_n x_n x_n^T (labels drawn from "
                       "the model), independent of the data labels",
                       [F, sp.Matrix([sp.diff(e, y) for e in F for y in Y])],
                       [gram, sp.zeros(D * D * N, 1)],
                       justification="Gaussian expectation operator: E[(y - mu)^2] = sigma^2",
                       display=rf"F = \tfrac1N\textstyle\sum_n \mathbb E_{{y_n}}"
                               rf"\big[\tfrac{{(y_n-\mu_n)^2}}{{\sigma^4}}\big]x_nx_n^\top = H"
                               rf"\qquad ({label})"),
            Step.equal(f"{label}: empirical Fisher = (1/(N sigma^4)) sum_n r_n^2 x_n x_n^T",
                       EF, EF_closed, justification="g_n = -(r_n / sigma^2) x_n",
                       display=rf"\mathrm{{EF}} = \tfrac1N\textstyle\sum_n g_ng_n^\top = "
                               rf"\tfrac{{1}}{{N\sigma^4}}\sum_n r_n^2 x_nx_n^\top\qquad ({label})"),
            Step.equal(f"{label}: at interpolation (every r_n = 0) EF = 0 while F = H is unchanged",
                       [EF.subs(interp), F.subs(interp)], [sp.zeros(D), gram],
                       justification="substitute y_n = theta^T x_n",
                       display=rf"r = 0:\ \mathrm{{EF}} = 0 \ne F = H\qquad ({label})"),
            Step.equal(f"{label}: only in expectation over model-drawn labels is EF = F",
                       EF.applyfunc(E_model), F,
                       justification="E[r_n^2] = sigma^2 for y_n ~ N(theta^T x_n, sigma^2), "
                                     "independently (standard normal moments)",
                       display=rf"\mathbb E_{{y\sim p_\theta}}[\mathrm{{EF}}] = F\qquad ({label})"),
        ]
    return steps


def _control_ef_is_fisher():
    theta, X, Y, fam, losses, grads, res = _problem(2, 2)
    EF = sum((g * g.T for g in grads), sp.zeros(2)) / 2
    return Step.equal("empirical Fisher = Fisher (N = 2, D = 2)", EF, _fisher(theta, X, fam),
                      justification="false: EF is weighted by squared residuals")


def _control_variance_power():
    theta, X, Y, fam, losses, grads, res = _problem(2, 2)
    EF = sum((g * g.T for g in grads), sp.zeros(2)) / 2
    wrong = sum((r ** 2 * x * x.T for r, x in zip(res, X)), sp.zeros(2)) / (2 * SIGMA2)
    return Step.equal("EF = (1/(N sigma^2)) sum r_n^2 x_n x_n^T", EF, wrong,
                      justification="false: each gradient carries 1/sigma^2, the outer product "
                                    "1/sigma^4")


def _control_ef_vanishes_fisher_too():
    theta, X, Y, fam, losses, grads, res = _problem(2, 2)
    interp = {y: (theta.T * x)[0, 0] for x, y in zip(X, Y)}
    return Step.equal("at interpolation the Fisher vanishes too", _fisher(theta, X, fam).subs(interp),
                      sp.zeros(2), justification="false: F = H does not depend on the residuals")


DERIVATIONS = [
    LegacyDerivation(
        name="empirical_fisher_failure.linear_regression",
        title="The empirical Fisher vanishes at interpolation while F = H does not "
              "(linear least squares)",
        statement=r"f = \theta^\top x,\ y\sim\mathcal N(f,\sigma^2):\ "
                  r"H = F = \tfrac{1}{N\sigma^2}\sum_n x_nx_n^\top,\ "
                  r"\mathrm{EF} = \tfrac{1}{N\sigma^4}\sum_n r_n^2x_nx_n^\top"
                  r"\xrightarrow{r\to0}0,\ \ \mathbb E_{y\sim p_\theta}[\mathrm{EF}] = F",
        assumptions=[r"linear model $f(\theta, x) = \theta^\top x$, Gaussian likelihood with "
                     r"fixed variance $\sigma^2 > 0$, mean reduction",
                     r"for $F$ and $\mathbb E[\mathrm{EF}]$: labels drawn independently from the "
                     r"model, $y_n\sim\mathcal N(\theta^\top x_n, \sigma^2)$"],
        tier=Tier.B,
        scope="N = 1..3 examples x D = 1..2 input dimensions, every entry of x_n, y_n and theta "
              "symbolic, sigma^2 a positive symbol",
        build=_steps,
        negative_controls=[
            NegativeControl("empirical_fisher_is_fisher", "EF = F (N = D = 2)",
                            _control_ef_is_fisher),
            NegativeControl("wrong_variance_power", "EF with 1/sigma^2 instead of 1/sigma^4",
                            _control_variance_power),
            NegativeControl("fisher_vanishes_at_interpolation",
                            "F = 0 when every residual vanishes", _control_ef_vanishes_fisher_too),
        ],
        axioms={"standard normal moments":
                r"$y = \mu + \sigma u$, $u\sim\mathcal N(0,1)$: $\mathbb E[u] = 0$, "
                r"$\mathbb E[u^2] = 1$, independent across examples"},
        references=REFERENCES,
        numeric=["fisherlab.empirical_fisher", "fisherlab.fisher", "fisherlab.hessian"],
        notes="The numeric counterpart is checked in `tests/proofs/test_empirical_fisher_failure.py`: "
              "`fl.empirical_fisher`, `fl.fisher` and `fl.hessian` on random linear-regression "
              "problems equal these closed forms, and `fl.empirical_fisher` is 0 at interpolation.",
    ),
]
