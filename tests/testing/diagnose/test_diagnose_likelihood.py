"""Wrong output-space matrices J^T M' J, each M' written here from its formula."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fisherlab as fl
import numpy_oracle as no
from diagnose_cases import named_first, oracle, problems
from fisherlab.testing import Problem, diagnose

D = lambda v: np.einsum("nc,cd->ncd", v, np.eye(v.shape[1]))  # noqa: E731


def _softmax_targets(q):
    return D(q) - np.einsum("nc,nd->ncd", q, q)


WRONG = {
    "categorical": {
        "softmax_diag_p": lambda f, y: D(no.softmax(f)),
        "softmax_one_hot_targets": lambda f, y: _softmax_targets(np.eye(f.shape[1])[y]),
        "softmax_smoothed_targets": lambda f, y: _softmax_targets(
            0.9 * np.eye(f.shape[1])[y] + 0.1 / f.shape[1]),
        "softmax_unweighted_class_average": lambda f, y: sum(
            np.einsum("nc,nd->ncd", no.softmax(f) - e, no.softmax(f) - e)
            for e in np.eye(f.shape[1])) / f.shape[1],
    },
    "bernoulli": {
        "bernoulli_p_for_p_one_minus_p": lambda f, y: D(no.sigmoid(f)),
        "bernoulli_smoothed_targets": lambda f, y: D((0.9 * y + 0.05) * (0.95 - 0.9 * y)),
        "bce_ggn_split_after_sigmoid": lambda f, y: D((y - no.sigmoid(f)) ** 2),
    },
    "poisson": {
        "poisson_rate_fisher": lambda f, y: D(np.exp(-f)),
        "poisson_rate_squared": lambda f, y: D(np.exp(2 * f)),
        "poisson_counts_for_rate": lambda f, y: D(y),
    },
}
CASES = [(fam, name) for fam in WRONG for name in WRONG[fam]]


@pytest.mark.parametrize("fam,name", CASES)
@given(data=st.data(), quantity=st.sampled_from(["fisher", "kfac"]))
def test_output_matrix_formula(fam, name, data, quantity):
    problem = data.draw(problems(families=(fam,)))
    b = oracle(problem)
    y = np.asarray(problem.y)
    M = WRONG[fam][name](b["f"], y.astype(int) if fam == "categorical" else y)
    if quantity == "fisher":
        cand = no.sandwich(b["J"], M)
    else:
        cand = no.kfac_matrix(no.kfac_factors(b, M))
    f = named_first(cand, problem.reference(quantity), problem, quantity,
                    "output_matrix_formula")
    if f.kind == "output_matrix_formula":
        assert f.data["formula"] == name or name in f.data.get("ties", ()), str(f)
        if "smoothed" in name and f.data["formula"] == name:
            assert f.data["smoothing"] == pytest.approx(0.1, abs=1e-6)


def test_log_std_block_for_log_variance():
    rng = np.random.default_rng(0)
    model = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh(), fl.nn.Dense(3, 4)])
    params = [(rng.normal(size=(3, 2)), rng.normal(size=3)), (rng.normal(size=(4, 3)),
                                                              rng.normal(size=4))]
    P = Problem(model, params, rng.normal(size=(5, 2)), rng.normal(size=(5, 2)),
                fl.GaussianMeanVariance())
    b = oracle(P)
    f = b["f"]
    M = D(np.concatenate([np.exp(-f[:, 2:]), np.full((5, 2), 2.0)], 1))  # log-std block 2
    out = diagnose(no.sandwich(b["J"], M), P.reference("fisher"), problem=P, quantity="fisher")
    assert out[0].kind == "output_matrix_formula" and out[0].data["formula"] == "log_std_block"
