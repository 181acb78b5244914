"""Monte-Carlo estimates: claimed with structural evidence only; deterministic bugs never are.

The statistical claims have stated false-failure probabilities (<= 0.1 % per band); the
drawn tests are derandomized so that every run checks the same draws.
"""

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


def _mc(problem, S, seed):
    return np.asarray(fl.fisher_mc(problem.f, problem.params, problem.x, problem.likelihood,
                                   jax.random.key(seed), S))


def _identifiable(problem, X):
    return identify(problem, X, 1e-8) is not None


def _kinds(actual, problem, quantity="fisher"):
    return [f.kind for f in diagnose(actual, problem.reference(quantity), problem=problem,
                                     quantity=quantity)]


def _genuine(findings):
    """A genuine estimate is named Monte-Carlo -- or by the deterministic pattern its draw
    happens to show (all argmax, one shared label, the data labels of other examples), stated
    with the probability of that pattern under the model (then never certified as sampled)."""
    f = findings[0]
    if f.kind in ("label_sampling", "target_mismatch"):
        assert f.data["probability"] >= 1e-3, str(f)
        return None
    assert f.kind == "monte_carlo_estimate", [str(x) for x in findings]
    return f


@settings(derandomize=True)
@given(problems(), st.sampled_from([1, 4]))
def test_monte_carlo_estimate_claimed_only_where_verifiable(problem, S):
    """Verifiable: one sample of a labelled likelihood (Categorical, Bernoulli with any C,
    Poisson: rank-one M_n at a valid label), label counts of a Categorical, or a Gaussian with
    S < C. Otherwise never claimed."""
    F_mc = _mc(problem, S, S)
    assume(relative_error(F_mc, problem.reference("empirical_fisher")) > 1e-6)
    assume(_identifiable(problem, F_mc))
    lik, C = problem.likelihood, problem.num_outputs
    verifiable = (S == 1 and isinstance(lik, (fl.Categorical, fl.Bernoulli, fl.Poisson))
                  or isinstance(lik, fl.Categorical) or (isinstance(lik, fl.Gaussian) and S < C))
    findings = diagnose(F_mc, problem.reference("fisher"), problem=problem, quantity="fisher")
    if verifiable:
        _genuine(findings)
    else:
        assert "monte_carlo_estimate" not in [x.kind for x in findings], [str(x) for x in findings]


def _fixed_categorical_problem(N=4):
    rng = np.random.default_rng(7)
    model = fl.nn.Sequential([fl.nn.Dense(4, 5), fl.nn.Tanh(), fl.nn.Dense(5, 3)])
    params = [(rng.normal(size=(5, 4)), rng.normal(size=5)),
              (rng.normal(size=(3, 5)), rng.normal(size=3))]
    return Problem(model, params, rng.normal(size=(N, 4)), np.array([0, 1, 2, 1][:N]),
                   fl.Categorical())


def _planted(problem, bug):
    """Deterministic bugs a user's Fisher code can have (NumPy closed forms)."""
    b = oracle(problem)
    J, f, N = b["J"], b["f"], problem.num_examples
    if bug.startswith("temperature"):
        T = float(bug.split("_")[1])
        p = no.softmax(f / T)
        Fo = np.einsum("nc,cd->ncd", p, np.eye(p.shape[1])) - no.outer(p)
        return no.sandwich(J, Fo)
    Fo = no.output_fisher(problem.likelihood, f)
    if bug == "output_fisher_diag_p":
        return no.sandwich(J, np.einsum("nc,cd->ncd", no.softmax(f), np.eye(f.shape[1])))
    w = {"dropped_last_example": [1, 1, 1, 0], "dropped_example_mean_over_N": [1, 1, 1, 0],
         "example_counted_twice": [2, 1, 1, 1]}[bug]
    w = np.array(w, float) / (3 if bug == "dropped_last_example" else 4)
    return no.sandwich(J, Fo, weights=w)


BUGS = {"output_fisher_diag_p": "output_matrix_formula", "temperature_2": "no_known_pattern",
        "temperature_0.5": "no_known_pattern", "dropped_last_example": "example_weighting",
        "dropped_example_mean_over_N": "example_weighting",
        "example_counted_twice": "example_weighting"}


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_deterministic_bugs_are_named_and_never_monte_carlo(bug):
    P = _fixed_categorical_problem()
    actual = _planted(P, bug)
    assert _identifiable(P, actual)  # a Monte-Carlo claim is refused on evidence
    kinds = _kinds(actual, P)
    assert kinds[0] == BUGS[bug] and "monte_carlo_estimate" not in kinds, kinds


@given(problems(families=("categorical",)), st.sampled_from(sorted(BUGS)))
def test_deterministic_bugs_are_never_monte_carlo_on_drawn_problems(problem, bug):
    actual = _planted(problem, bug)
    assume(relative_error(actual, problem.reference("fisher")) > 1e-6)
    findings = diagnose(actual, problem.reference("fisher"), problem=problem, quantity="fisher")
    assert "monte_carlo_estimate" not in [f.kind for f in findings], [str(f) for f in findings]
    assert findings[0].kind == "no_known_pattern" or findings[0].residual <= 1e-8


@pytest.mark.parametrize("S", [1, 4, 16])
def test_genuine_monte_carlo_named_on_a_fixed_problem(S):
    P = _fixed_categorical_problem()
    f = _genuine(diagnose(_mc(P, S, 100 + S), P.reference("fisher"), problem=P,
                          quantity="fisher"))
    if f is not None:
        S0 = int(f.convention.split("=")[1].split()[0])  # smallest consistent sample count
        assert S % S0 == 0 and f.factor is None


@pytest.mark.parametrize("S", [2, 4, 16, 50])
def test_monte_carlo_summed_over_samples_has_factor_S(S):
    P = _fixed_categorical_problem()
    f = diagnose(S * _mc(P, S, 200 + S), P.reference("fisher"), problem=P, quantity="fisher")
    assert f[0].kind == "monte_carlo_estimate" and f[0].factor == S, [str(x) for x in f]


def test_rational_weight_caveat_stated_when_monte_carlo_is_claimed():
    P = _fixed_categorical_problem()
    f = diagnose(_mc(P, 4, 104), P.reference("fisher"), problem=P, quantity="fisher")
    assert f[0].kind == "monte_carlo_estimate", [str(x) for x in f]
    assert "rational weights" in f[0].message and "degrees of freedom" in f[0].message


def test_monte_carlo_named_when_an_example_has_coincident_label_terms():
    """Two classes and an example at p = (1/2, 1/2): g(0) g(0)^T = g(1) g(1)^T; the example is
    checked for consistency and left out of the counts."""
    model = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh(), fl.nn.Dense(3, 2)])
    params = [(np.ones((3, 2)), np.zeros(3)), (np.array([[0.0, 1, 1], [1, 1, 1]]), np.zeros(2))]
    P = Problem(model, params, np.array([[1.0, 0], [2, 0], [0, 0]]), np.zeros(3, int),
                fl.Categorical())
    f = diagnose(_mc(P, 1, 1), P.reference("fisher"), problem=P, quantity="fisher")
    assert f[0].kind == "monte_carlo_estimate", [str(x) for x in f]
    assert "examples [2] have linearly dependent label terms" in f[0].message


def _mostly_half_problem():
    """Two classes, five examples; four of them sit at p = (1/2, 1/2)."""
    model = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh(), fl.nn.Dense(3, 2)])
    W1 = np.array([[1.0, 1.0], [0.3, -0.8], [-1.1, 0.4]])
    W2 = np.array([[0.0, 0.7, -0.5], [1.0, 0.7, -0.5]])
    x = np.array([[0.9, 0.2], [0.5, -0.5], [-1.2, 1.2], [0.3, -0.3], [2.0, -2.0]])
    return Problem(model, [(W1, np.zeros(3)), (W2, np.zeros(2))], x, np.array([0, 1, 1, 0, 1]),
                   fl.Categorical())


def test_rational_weight_bugs_on_mostly_unidentifiable_examples_are_not_monte_carlo():
    """The unweighted class average is named as an output-matrix formula; the empirical
    Fisher at shifted labels (with four examples whose labels are not identified) is not
    claimed at all."""
    P = _mostly_half_problem()
    b = oracle(P)
    p = no.softmax(b["f"])
    avg = sum(no.outer(p - e) for e in np.eye(2)) / 2
    assert _kinds(no.sandwich(b["J"], avg), P)[0] == "output_matrix_formula"
    shifted = no.outer(no.output_gradient(P.likelihood, b["f"], (np.asarray(P.y) + 1) % 2))
    assert _kinds(no.sandwich(b["J"], shifted), P) == ["no_known_pattern"]


def test_continuous_monte_carlo_claimed_only_with_structural_evidence():
    """Gaussian (C = 4): a sum of S < C rank-one terms per example is claimed (rank S), S >= C
    never (only a note in the evidence)."""
    rng = np.random.default_rng(14)
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 4)])
    params = [(rng.normal(size=(4, 3)), rng.normal(size=4)),
              (rng.normal(size=(4, 4)), rng.normal(size=4))]
    P = Problem(model, params, rng.normal(size=(6, 3)), rng.normal(size=(6, 4)), fl.Gaussian())
    F = P.reference("fisher")
    for S, summed in ((1, False), (3, True)):
        f = diagnose(_mc(P, S, 1) * (S if summed else 1), F, problem=P, quantity="fisher")
        assert f[0].kind == "monte_carlo_estimate", (S, [str(x) for x in f])
    f = diagnose(_mc(P, 4, 1), F, problem=P, quantity="fisher")
    assert [x.kind for x in f] == ["no_known_pattern"]
    assert "no Monte-Carlo estimate is claimed" in f[0].message


def test_exact_multinomial_test_closed_forms_and_calibration():
    """Two labels, S = 4, p = 1/2: counts (0, 4) have p-value P(0,4) + P(4,0) = 1/8 (and one
    example's combination is that p-value); counts (2, 2) the most likely: p-value 1. Under the
    hypothesis the test rejects at level 5 % at most about 5 % of the time (it is conservative:
    discrete p-values), measured on 2000 simulated batches."""
    from fisherlab.testing._diagnose._mc_lattice import exact_test

    half = np.array([[0.5, 0.5]])
    assert exact_test(np.array([[0, 4]]), half, 4) == pytest.approx(1 / 8)
    assert exact_test(np.array([[2, 2]]), half, 4) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    p = np.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.05, 0.15, 0.8]])
    pv = [exact_test(np.stack([rng.multinomial(5, q) for q in p]), p, 5) for _ in range(2000)]
    assert np.mean(np.array(pv) <= 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 2000)
