"""Fixed examples for the Monte-Carlo family with labels drawn here (NumPy, fixed seeds) on one
N=5, C=3 categorical problem: a one-sample estimate (its labels recovered), label patterns of
summed estimates (argmax, one draw shared by the batch), and a continuous sum over S samples."""

import numpy as np
import pytest

import fisherlab as fl
import numpy_oracle as no
from planted_bugs import problem_factory
from fisherlab.testing import Problem, diagnose


def _categorical():
    P = problem_factory(fl.Categorical(), 3)()
    m, params, x, y, lik = no.problem_arrays(P)
    return P, no.batch(m, params, x), lik, y


@pytest.mark.parametrize("seed", [0, 2])
def test_one_sample_estimate_recovers_its_labels(seed):
    """``(1/N) sum_n J_n^T g_n(y~_n) g_n(y~_n)^T J_n`` at one label per example drawn from the
    model (not all argmax, not one shared label, not the data labels): a one-sample
    Monte-Carlo estimate whose labels are the drawn ones."""
    P, b, lik, y = _categorical()
    labels = no.sample(lik, b["f"], np.random.default_rng(seed))[0]
    p = no.softmax(b["f"])
    assert not np.array_equal(labels, p.argmax(1)) and len(set(labels)) > 1
    assert not np.array_equal(labels, y)
    f = diagnose(no.empirical_fisher(b, lik, labels), P.reference("fisher"), problem=P,
                 quantity="fisher")
    assert f[0].kind == "monte_carlo_estimate", [str(x) for x in f]
    np.testing.assert_array_equal(f[0].data["labels"], labels)
    assert f[0].data["num_samples"] == 1 and f[0].convention == "S=1"
    assert f"labels {labels.tolist()}, one per example" in f[0].message
    assert "a Monte-Carlo estimate with S = 1 sample per example" in f[0].message


@pytest.mark.parametrize("S", [3, 4])
def test_argmax_labels_summed_over_samples_are_a_pattern(S):
    """S copies of the argmax label per example, summed (not averaged): every M_n is rank one
    but S times the one-sample term, so the label counts are read -- all at the mode: named
    label_sampling with the argmax pattern, never Monte-Carlo."""
    P, b, lik, y = _categorical()
    am = no.softmax(b["f"]).argmax(1)
    f = diagnose(S * no.empirical_fisher(b, lik, am), P.reference("fisher"), problem=P,
                 quantity="fisher")
    assert f[0].kind == "label_sampling", [str(x) for x in f]
    assert f[0].data["pattern"] == "argmax" and f[0].data["num_samples"] == S
    expected = np.zeros((5, 3), int)
    expected[np.arange(5), am] = S
    np.testing.assert_array_equal(f[0].data["counts"], expected)
    assert f"all S = {S} labels of every example are its mode (argmax)" in f[0].message


def test_one_draw_shared_by_the_batch_is_a_pattern():
    """Labels 0 and 2 for every example (two samples each, summed): identical counts for all
    examples, named as one draw shared by the batch."""
    P, b, lik, y = _categorical()
    est = sum(no.empirical_fisher(b, lik, np.full(5, c)) for c in (0, 2))
    f = diagnose(est, P.reference("fisher"), problem=P, quantity="fisher")
    assert f[0].kind == "label_sampling", [str(x) for x in f]
    assert f[0].data["pattern"] == "shared"
    assert "every example has the same label counts [1, 0, 1]" in f[0].message


def test_continuous_sum_over_samples_names_S():
    """Gaussian, C = 4: a sum of S = 2 sampled rank-one terms per example (rank 2 < 4); the
    factor S is identified from the rank, and as an average it is not."""
    rng = np.random.default_rng(14)
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 4)])
    params = [(rng.normal(size=(4, 3)), rng.normal(size=4)),
              (rng.normal(size=(4, 4)), rng.normal(size=4))]
    P = Problem(model, params, rng.normal(size=(6, 3)), rng.normal(size=(6, 4)), fl.Gaussian())
    m, prm, x, y, lik = no.problem_arrays(P)
    b = no.batch(m, prm, x)
    ys = no.sample(lik, b["f"], np.random.default_rng(3), 3)
    est = sum(no.empirical_fisher(b, lik, yy) for yy in ys)  # summed over S = 3
    f = diagnose(est, P.reference("fisher"), problem=P, quantity="fisher")
    assert f[0].kind == "monte_carlo_estimate", [str(v) for v in f]
    assert f[0].factor == 3.0 and f[0].convention == "sum over S = 3 samples"
    assert f[0].message.endswith("summed over S = 3 samples instead of averaged")
