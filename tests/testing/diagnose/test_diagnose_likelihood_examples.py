"""Fixed examples for the output-space formulas: on one problem per likelihood (N=5, C=3, so
no scalar convention coincides), every named wrong ``M'`` is planted through ``J`` and must be
named with its formula, its fitted smoothing and its description; plus the numerics the
property tests never reach (logits far from 0, the smoothing fit's own least squares)."""

import numpy as np
import pytest

import fisherlab as fl
import numpy_oracle as no
from planted_bugs import problem_factory
from fisherlab.testing import Problem, diagnose
from fisherlab.testing._diagnose import _likelihood

D = lambda v: np.einsum("nc,cd->ncd", v, np.eye(v.shape[1]))  # noqa: E731


def _soft(q):
    return D(q) - np.einsum("nc,nd->ncd", q, q)


E = 0.2  # a smoothing that is neither 1/C nor 1/2
# name -> (likelihood, wrong M'(f, y), words of the description)
PLANTED = {
    "softmax_diag_p": (fl.Categorical, lambda f, y: D(no.softmax(f)), "diag(p)"),
    "softmax_one_hot_targets": (fl.Categorical, lambda f, y: _soft(np.eye(3)[y]),
                                "one-hot"),
    "softmax_smoothed_targets": (fl.Categorical,
                                 lambda f, y: _soft((1 - E) * np.eye(3)[y] + E / 3),
                                 "label-smoothed targets"),
    "softmax_unweighted_class_average": (fl.Categorical, lambda f, y: sum(
        np.einsum("nc,nd->ncd", no.softmax(f) - e, no.softmax(f) - e) for e in np.eye(3)) / 3,
        "unweighted class average"),
    "bernoulli_p_for_p_one_minus_p": (fl.Bernoulli, lambda f, y: D(no.sigmoid(f)),
                                      "diag(p) instead of diag(p (1 - p))"),
    "bernoulli_smoothed_targets": (fl.Bernoulli, lambda f, y: D(
        ((1 - E) * y + E / 2) * (1 - ((1 - E) * y + E / 2))), "smoothed targets"),
    "bce_ggn_split_after_sigmoid": (fl.Bernoulli, lambda f, y: D((y - no.sigmoid(f)) ** 2),
                                    "GGN split after the sigmoid"),
    "poisson_rate_fisher": (fl.Poisson, lambda f, y: D(np.exp(-f)), "diag(1/lambda)"),
    "poisson_rate_squared": (fl.Poisson, lambda f, y: D(np.exp(2 * f)), "diag(lambda^2)"),
    "poisson_counts_for_rate": (fl.Poisson, lambda f, y: D(y), "the counts y"),
}


def _problem(lik):
    return problem_factory(lik(), 3, seed=1 if lik is fl.Poisson else 0)()


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_each_output_matrix_formula_is_named(name):
    lik, wrong, words = PLANTED[name]
    P = _problem(lik)
    m, params, x, y, likelihood = no.problem_arrays(P)
    b = no.batch(m, params, x)
    M = wrong(b["f"], y.astype(int) if lik is fl.Categorical else y)
    f = diagnose(no.sandwich(b["J"], M), P.reference("fisher"), problem=P, quantity="fisher")
    assert f[0].kind == "output_matrix_formula", [str(v) for v in f]
    assert f[0].data["formula"] == name
    assert f[0].message.startswith("actual equals desired with the output-space matrix "
                                    "replaced by")
    assert words in f[0].message
    assert f[0].residual <= 1e-8
    if "smoothed" in name:
        assert f[0].data["smoothing"] == pytest.approx(E, abs=1e-8)
        assert "with e = 0.2 = 1/5" in f[0].message
    else:
        assert "smoothing" not in f[0].data


def _mean_variance_problem():
    rng = np.random.default_rng(2)
    model = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh(), fl.nn.Dense(3, 4)])
    params = [(rng.normal(size=(3, 2)), rng.normal(size=3)),
              (rng.normal(size=(4, 3)), rng.normal(size=4))]
    return Problem(model, params, rng.normal(size=(5, 2)), rng.normal(size=(5, 2)),
                   fl.GaussianMeanVariance())


@pytest.mark.parametrize("name,block,words", [
    ("log_std_block", lambda prec: np.full_like(prec, 2.0), "log-standard-deviation"),
    ("variance_block", lambda prec: prec ** 2 / 2, "1/(2 sigma^4)")])
def test_mean_variance_blocks_are_named(name, block, words):
    """Mean block ``1/sigma^2 = exp(-f_v)``; the log-variance block replaced."""
    P = _mean_variance_problem()
    b = no.batch(*no.problem_arrays(P)[:3])
    prec = np.exp(-b["f"][:, 2:])
    M = D(np.concatenate([prec, block(prec)], 1))
    f = diagnose(no.sandwich(b["J"], M), P.reference("fisher"), problem=P, quantity="fisher")
    assert f[0].kind == "output_matrix_formula" and f[0].data["formula"] == name, str(f[0])
    assert words in f[0].message


def test_softmax_diag_p_far_from_zero_logits():
    """Logits shifted by 800 (softmax is shift invariant) and one example whose logits spread
    over more than 709 (exp overflows unless the maximum is subtracted): the planted diag(p)
    is still named."""
    rng = np.random.default_rng(3)
    model = fl.nn.Sequential([fl.nn.Dense(2, 3)])
    W = np.array([[1.0, -0.5], [-0.7, 0.3], [0.2, 0.9]])
    params = [(W, 800.0 + rng.normal(size=3))]
    x = rng.normal(size=(5, 2))
    x[0] = [600.0, -200.0]  # logits 600+100+800, -420-60+800, 120-180+800: spread ~ 1000
    P = Problem(model, params, x, rng.integers(0, 3, 5), fl.Categorical())
    b = no.batch(*no.problem_arrays(P)[:3])
    assert np.ptp(b["f"][0]) > 750 and b["f"].min() > 100
    f = diagnose(no.sandwich(b["J"], D(no.softmax(b["f"]))), P.reference("fisher"),
                 problem=P, quantity="fisher")
    assert f[0].kind == "output_matrix_formula", [str(v) for v in f]
    assert f[0].data["formula"] == "softmax_diag_p"


@pytest.mark.parametrize("a", [0.5, 0.25])
def test_smoothing_fit_is_the_least_squares_minimiser(a):
    """``Z(e) = e A + e^2 B`` with ``A``, ``B`` on disjoint entries (``<A, B> = 0`` exactly) and
    ``X = a A + B`` with ``|A|^2 = 2``, ``|B|^2 = 1``: ``||X - Z(e)||^2 = 2 (a - e)^2 +
    (1 - e^2)^2``, whose derivative ``4 e^3 - 4a`` vanishes at ``e = a^(1/3)`` (the cubic has
    no quadratic or linear term). The fit returns that minimiser, also found by a grid search."""
    A = np.diag([1.0, 1.0, 0.0])
    B = np.zeros((3, 3))
    B[2, 2] = 1.0
    X = a * A + B
    build = lambda e: e * A + e * e * B  # noqa: E731
    grid = np.linspace(1e-4, 1.0, 100001)
    e_grid = grid[int(np.argmin([np.linalg.norm(X - build(e)) for e in grid]))]
    assert e_grid == pytest.approx(a ** (1 / 3), abs=1e-4)
    assert _likelihood._fit_smoothing(X, build) == pytest.approx(a ** (1 / 3), rel=1e-9)
