"""One-sample labels: multi-output Bernoulli/Poisson and K-FAC G factors are recognised as
sampled; argmax labels, one shared draw and labels from another distribution never are."""

import jax
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fisherlab as fl
import numpy_oracle as no
from diagnose_cases import named_first, oracle, problems
from fisherlab.testing import Problem, diagnose, relative_error
from fisherlab.testing._diagnose._mc_lattice import identify


def _genuine(f):
    """A genuine one-sample estimate: named Monte-Carlo, or -- when the draw happens to show a
    deterministic pattern (all argmax, one shared label, the data labels of other examples) --
    named by that pattern with its probability under the model stated (it is then not
    certified as sampled). Returns True for the Monte-Carlo reading."""
    if f.kind in ("label_sampling", "target_mismatch"):
        assert f.data["probability"] >= 1e-3, str(f)
        return False
    assert f.kind == "monte_carlo_estimate", str(f)
    return True


def _labelled(problem, labels):
    b = oracle(problem)
    return no.sandwich(b["J"], no.outer(no.output_gradient(problem.likelihood, b["f"], labels)))


def _identified(problem, actual):
    """Labels can only be recovered where the per-example matrices are identified (a draw with
    repeated inputs, say, has exchangeable examples): else no claim is made (tested in
    test_diagnose_monte_carlo)."""
    assume(identify(problem, actual, 1e-8) is not None)
    return actual


def _modes(problem):
    f = oracle(problem)["f"]
    name = type(problem.likelihood).__name__
    if name == "Categorical":
        s = np.sort(f, 1)
        assume(np.all(s[:, -1] - s[:, -2] > 1e-6))  # a unique mode per example
        return np.argmax(f, 1)
    if name == "Bernoulli":
        assume(np.all(np.abs(f) > 1e-6))
        return (f > 0) * 1.0
    rate = np.exp(f)
    assume(np.all(np.abs(rate - np.round(rate)) > 1e-6))
    return np.floor(rate)


@settings(derandomize=True)
@given(problems(families=("categorical", "bernoulli", "poisson")))
def test_argmax_labels_are_label_sampling(problem):
    modes = _modes(problem)
    assume(not np.array_equal(modes, np.asarray(problem.y)))  # else the empirical Fisher
    f = named_first(_identified(problem, _labelled(problem, modes)),
                    problem.reference("fisher"), problem, "fisher", "label_sampling")
    if f.kind == "label_sampling":
        assert f.data["pattern"] == "argmax" and 0 < f.data["probability"] <= 1


@settings(derandomize=True)
@given(problems(families=("categorical", "bernoulli", "poisson")), st.integers(0, 2**32 - 1))
def test_one_shared_label_is_label_sampling(problem, seed):
    f = oracle(problem)["f"]
    one = no.sample(problem.likelihood, f[:1], np.random.default_rng(seed))[0, 0]
    labels = np.stack([one] * problem.num_examples)
    assume(not np.array_equal(labels, np.asarray(problem.y)))
    modes_equal = False
    try:
        modes_equal = np.array_equal(labels, _modes(problem))
    except Exception:  # noqa: BLE001 - the assume() inside rejects tied modes; not needed here
        pass
    assume(not modes_equal)  # then the argmax reading applies as well
    out = named_first(_identified(problem, _labelled(problem, labels)),
                      problem.reference("fisher"), problem, "fisher", "label_sampling")
    if out.kind == "label_sampling":
        assert out.data["pattern"] == "shared"


def _confident_problem(likelihood, C=3, N=6, seed=0):
    rng = np.random.default_rng(seed)
    model = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh(), fl.nn.Dense(3, C)])
    params = [(rng.normal(size=(3, 2)) * 2, rng.normal(size=3)),
              (rng.normal(size=(C, 3)) * 3, rng.normal(size=C))]
    y = {"Categorical": lambda: rng.integers(0, C, N),
         "Bernoulli": lambda: (rng.random((N, C)) < 0.5) * 1.0,
         "Poisson": lambda: rng.poisson(1.0, (N, C)) * 1.0}[type(likelihood).__name__]()
    return Problem(model, params, rng.normal(size=(N, 2)), y, likelihood)


@pytest.mark.parametrize("sampler", ["logits_as_probabilities", "negated_logits"])
def test_labels_from_another_distribution_are_label_sampling(sampler):
    """16 labels per example drawn from the wrong distribution -- the logits taken as
    probabilities (``torch.distributions.Categorical(logits)`` reads its first argument as
    ``probs``: p' = f / sum f for positive logits), or softmax(-f) -- label counts on the
    lattice, but far outside the Pearson band of the model's p."""
    P = _confident_problem(fl.Categorical())
    b = oracle(P)
    rng = np.random.default_rng(1)
    if sampler == "logits_as_probabilities":
        params = [(np.asarray(W), np.asarray(c)) for W, c in P.params]
        params[-1] = (params[-1][0], params[-1][1] + 8.0)  # positive logits, as torch needs
        P = Problem(P.model, params, P.x, P.y, P.likelihood)
        b = oracle(P)
        assert np.all(b["f"] > 0)
        wrong = b["f"] / b["f"].sum(1, keepdims=True)
    else:
        wrong = no.softmax(-b["f"])
    labels = np.stack([[rng.choice(3, p=q) for q in wrong] for _ in range(16)])  # (S, N)
    M = sum(no.outer(no.output_gradient(P.likelihood, b["f"], lab)) for lab in labels) / 16
    f = diagnose(no.sandwich(b["J"], M), P.reference("fisher"), problem=P, quantity="fisher")
    assert f[0].kind == "label_sampling" and f[0].data["pattern"] == "distribution", str(f[0])


@pytest.mark.parametrize("lik", [fl.Bernoulli(), fl.Poisson()], ids=["bernoulli", "poisson"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_multi_output_one_sample_is_monte_carlo(lik, seed):
    """C = 3, S = 1: each M_n rank one at a label in {0,1}^3 (or N^3). False-failure
    probability: the log-probability band, <= 0.1 %, plus the chance of an all-argmax or
    shared draw (stated in the message; then label_sampling is the honest answer)."""
    P = _confident_problem(lik, seed=seed)
    F1 = np.asarray(fl.fisher_mc(P.f, P.params, P.x, lik, jax.random.key(seed), 1))
    assume_ok = relative_error(F1, P.reference("empirical_fisher")) > 1e-6
    assert assume_ok
    f = diagnose(F1, P.reference("fisher"), problem=P, quantity="fisher")[0]
    if _genuine(f):
        assert f.data["labels"].shape == (6, 3) and "S = 1" in f.message


@pytest.mark.parametrize("shift", ["roll+1", "reversed"])
def test_empirical_fisher_at_misaligned_targets_compared_as_fisher(shift):
    """Recovered one-sample labels that are the data targets of other examples."""
    P = _confident_problem(fl.Categorical(), N=5, seed=4)
    y = np.asarray(P.y)
    y2 = np.roll(y, 1) if shift == "roll+1" else y[::-1]
    assert not np.array_equal(y2, y)
    f = diagnose(_labelled(P, y2), P.reference("fisher"), problem=P, quantity="fisher")[0]
    assert f.kind == "target_mismatch" and f.data["targets"] == shift, str(f)


@pytest.mark.parametrize("what", ["kfac", "kfac_factor_G"])
@pytest.mark.parametrize("seed", [0, 1])
def test_kfac_one_sample_g_is_monte_carlo(what, seed):
    """fisherlab's own one-sample K-FAC (fisher_type="mc") compared with the exact K-FAC."""
    P = _confident_problem(fl.Categorical(), N=4, seed=seed)
    facs = fl.kfac.factors(P.model, P.params, P.x, P.y, P.likelihood, fisher_type="mc",
                           key=jax.random.key(seed), num_samples=1)
    if what == "kfac":
        cand, desired = np.asarray(fl.kfac.matrix(facs, P.model)), P.reference("kfac")
    else:
        cand, desired = np.asarray(facs[0].G), P.reference("kfac_factor_G", layer=0)
    f = diagnose(cand, desired, problem=P, quantity=what)[0]
    if _genuine(f):
        assert f.data["num_samples"] == 1


def test_kfac_with_argmax_labels_is_label_sampling():
    P = _confident_problem(fl.Categorical(), N=4, seed=3)
    b = oracle(P)
    labels = np.argmax(b["f"], 1)
    assert not np.array_equal(labels, np.asarray(P.y))
    M = no.outer(no.output_gradient(P.likelihood, b["f"], labels))
    f = diagnose(no.kfac_matrix(no.kfac_factors(b, M)), P.reference("kfac"), problem=P,
                 quantity="kfac")[0]
    assert f.kind == "label_sampling" and f.data["pattern"] == "argmax", str(f)
