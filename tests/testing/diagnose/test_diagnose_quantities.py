"""Quantity swaps: another curvature quantity where one was expected."""

import numpy as np
import pytest
from hypothesis import assume, given

import fisherlab as fl
import numpy_oracle as no
from diagnose_cases import named_first, oracle, problems
from fisherlab.testing import Problem, assert_curvature_close, diagnose


def _ef(problem):
    return no.empirical_fisher(oracle(problem), problem.likelihood, np.asarray(problem.y))


@given(problems())
def test_empirical_fisher_for_fisher(problem):
    named_first(_ef(problem), problem.reference("fisher"), problem, "fisher",
                "empirical_fisher_for_fisher")


@given(problems())
def test_empirical_fisher_with_sum_reduction_for_fisher(problem):
    EF = _ef(problem)
    assume(np.linalg.norm(EF) > 1e-8)
    f = named_first(problem.num_examples * EF, problem.reference("fisher"), problem, "fisher",
                    "empirical_fisher_for_fisher")
    assert f.factor == pytest.approx(problem.num_examples)


@given(problems())
def test_fisher_for_empirical_fisher(problem):
    named_first(no.fisher(oracle(problem), problem.likelihood),
                problem.reference("empirical_fisher"), problem, "empirical_fisher",
                "fisher_for_empirical_fisher")


@given(problems())
def test_ggn_for_hessian(problem):
    named_first(no.fisher(oracle(problem), problem.likelihood), problem.reference("hessian"),
                problem, "hessian", "ggn_for_hessian")


@given(problems())
def test_hessian_for_ggn(problem):
    H = np.asarray(fl.hessian(problem.f, problem.params, problem.x, problem.y,
                              problem.likelihood))
    named_first(H, problem.reference("ggn"), problem, "ggn", "hessian_for_ggn")


@given(problems())
def test_kronecker_factors_exchanged(problem):
    b = oracle(problem)
    A, G = no.kfac_factors(b, no.output_fisher(problem.likelihood, b["f"]))[0]
    assume(A.shape == G.shape)
    named_first(G, problem.reference("kfac_factor_A", layer=0), problem, "kfac_factor_A",
                "kronecker_order_swapped")


def test_empirical_fisher_named_where_it_is_a_multiple_of_desired():
    """One example, one output: EF = (sigma - y)^2 J^T J and GGN = sigma (1 - sigma) J^T J
    are both rank one along J^T, so EF = c GGN; the exact reproduction is still named."""
    model = fl.nn.Sequential([fl.nn.Dense(2, 1)])
    params = [(np.array([[0.7, -1.3]]), np.array([0.4]))]
    problem = Problem(model, params, np.array([[0.5, 1.5]]), np.array([[1.0]]), fl.Bernoulli())
    EF, G = _ef(problem), problem.reference("ggn")
    s = 1 / (1 + np.exp(-(0.7 * 0.5 - 1.3 * 1.5 + 0.4)))
    np.testing.assert_allclose(EF, (1 - s) ** 2 / (s * (1 - s)) * G, rtol=1e-12)  # the premise
    findings = diagnose(EF, G, problem=problem, quantity="ggn")
    assert findings[0].kind == "empirical_fisher_for_fisher", [str(f) for f in findings]
    assert "scalar factor explains it equally well" in findings[0].message
    with pytest.raises(AssertionError, match=r"1\. \[empirical_fisher_for_fisher\]"):
        assert_curvature_close(EF, G, problem=problem, quantity="ggn")


def _one_example_gaussian(residual):
    model = fl.nn.Sequential([fl.nn.Dense(2, 1)])
    params = [(np.array([[0.5, -0.25]]), np.array([0.125]))]
    x = np.array([[1.0, 2.0]])
    out = float((params[0][0] @ x[0])[0] + params[0][1][0])
    return Problem(model, params, x, np.array([[out + residual]]), fl.Gaussian(1.0))


def test_tie_between_a_named_quantity_and_a_named_convention_goes_to_the_convention():
    """r^2 = 2 sigma^2: the EF is exactly 2 x the GGN; the convention ranks first, the EF is
    listed with the tie stated."""
    P = _one_example_gaussian(np.sqrt(2.0))
    G = P.reference("ggn")
    findings = diagnose(2 * G, G, problem=P, quantity="ggn")
    assert findings[0].kind == "scalar_factor" and findings[0].convention
    assert "empirical_fisher_for_fisher" in findings[0].data["ties"]
    ef = [f for f in findings if f.kind == "empirical_fisher_for_fisher"]
    assert ef and "explains it equally well" in ef[0].message


def test_factor_times_a_quantity_that_is_a_multiple_of_desired_is_named():
    """actual = 4 EF (un-halved squared-error gradients), EF = 0.64 GGN: the (2)^2 factor on
    the EF is named first."""
    P = _one_example_gaussian(0.8)
    EF, G = _ef(P), P.reference("ggn")
    np.testing.assert_allclose(EF, 0.64 * G, rtol=1e-12)  # the premise
    findings = diagnose(4 * EF, G, problem=P, quantity="ggn")
    assert findings[0].kind == "empirical_fisher_for_fisher", [str(f) for f in findings]
    assert findings[0].factor == pytest.approx(4.0) and findings[0].convention
