"""Scalar conventions: factors named from the problem (N, N/(N-1), C, sigma^2, P, R, float32)."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import fisherlab as fl
import numpy_oracle as no
from diagnose_cases import named_first, oracle, problems
from fisherlab.testing import Problem, diagnose


@given(problems(), st.sampled_from(["N", "1/N", "2/C", "2", "1/2", "-1", "C"]))
def test_scalar_factor_named(problem, which):
    N, C = problem.num_examples, problem.num_outputs
    c = {"N": N, "1/N": 1 / N, "2/C": 2 / C, "2": 2.0, "1/2": 0.5, "-1": -1.0, "C": C}[which]
    b = oracle(problem)
    F = no.fisher(b, problem.likelihood)
    f = named_first(c * F, problem.reference("fisher"), problem, "fisher", "scalar_factor")
    assert f.factor == pytest.approx(c, rel=1e-9) and f.convention is not None


@given(problems(families=("categorical",)))
def test_unbiased_covariance_is_named(problem):
    """np.cov(ddof=1) of the per-example gradients: N/(N-1) x the gradient covariance."""
    b = oracle(problem)
    g = np.einsum("nci,nc->ni", b["J"], no.output_gradient(problem.likelihood, b["f"],
                                                           np.asarray(problem.y)))
    desired = problem.reference("gradient_covariance")
    assume(np.linalg.norm(desired) > 1e-8)  # all gradients equal: the covariance is 0
    f = named_first(np.cov(g.T, ddof=1), desired, problem, "gradient_covariance", "scalar_factor")
    N = problem.num_examples
    assert f.factor == pytest.approx(N / (N - 1)) and "ddof=1" in f.message


def _gaussian(variance):
    rng = np.random.default_rng(0)
    model = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh(), fl.nn.Dense(3, 2)])
    params = [(rng.normal(size=(3, 2)), rng.normal(size=3)), (rng.normal(size=(2, 3)),
                                                              rng.normal(size=2))]
    return Problem(model, params, rng.normal(size=(5, 2)), rng.normal(size=(5, 2)),
                   fl.Gaussian(variance=variance))


@pytest.mark.parametrize("quantity,power", [("ggn", 1), ("empirical_fisher", 2)])
def test_ignored_variance_is_worded_as_ignored(quantity, power):
    """A candidate computed with variance 1 where sigma^2 = 3 was declared: the curvature
    carries 1/sigma^2 (factor sigma^2), the empirical Fisher 1/sigma^4 (factor sigma^4)."""
    P = _gaussian(3.0)
    b = oracle(P)
    unit = fl.Gaussian(1.0)
    cand = (no.fisher(b, unit) if quantity == "ggn" else
            no.empirical_fisher(b, unit, np.asarray(P.y)))
    f = diagnose(cand, P.reference(quantity), problem=P, quantity=quantity)[0]
    assert f.kind == "scalar_factor" and f.factor == pytest.approx(3.0 ** power)
    assert "ignored" in f.convention and "instead of divided" not in f.convention


def test_variance_multiplied_instead_of_divided():
    P = _gaussian(3.0)
    b = oracle(P)
    cand = no.fisher(b, fl.Gaussian(1.0)) * 3.0  # J^T J sigma^2 for J^T J / sigma^2
    f = diagnose(cand, P.reference("ggn"), problem=P, quantity="ggn")[0]
    assert f.factor == pytest.approx(9.0) and "instead of divided" in f.convention


def test_conv2d_position_count_is_named():
    """K-FAC-expand's A carries 1/(N P) with P = H_out W_out: a candidate without the 1/P is P
    x A, named as the position count, not offered as a batch size."""
    model = fl.nn.Sequential([fl.nn.Conv2d(1, 2, 2), fl.nn.Tanh(), fl.nn.Flatten(),
                              fl.nn.Dense(8, 3)])
    rng = np.random.default_rng(1)
    params = [(rng.normal(size=(2, 1, 2, 2)), rng.normal(size=2)),
              (rng.normal(size=(3, 8)), rng.normal(size=3))]
    x = rng.normal(size=(3, 1, 3, 3))
    P = Problem(model, params, x, np.array([0, 1, 2]), fl.Categorical())
    # im2col by hand: every 2x2 patch of the 3x3 input, plus the homogeneous 1
    patches = np.stack([[np.append(x[n, 0, i:i + 2, j:j + 2].ravel(), 1.0)
                         for i in range(2) for j in range(2)] for n in range(3)])
    A_no_P = np.einsum("npi,npj->ij", patches, patches) / 3  # 1/N only
    f = diagnose(A_no_P, P.reference("kfac_factor_A", layer=0), problem=P,
                 quantity="kfac_factor_A")[0]
    assert f.kind == "scalar_factor" and f.factor == pytest.approx(4.0)
    assert "P=4 output positions of Conv2d layer 0" in f.convention
    assert "Monte-Carlo sample count?" not in f.message


def test_token_count_is_named():
    """A Dense layer on a sequence (T = 3 positions, outputs (R = 3, C) per example): the mean
    over all N R tokens where the per-example sum was expected is named 1/R (and 1/P)."""
    model = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh(), fl.nn.Dense(3, 2)])
    rng = np.random.default_rng(2)
    params = [(rng.normal(size=(3, 2)), rng.normal(size=3)), (rng.normal(size=(2, 3)),
                                                              rng.normal(size=2))]
    x = rng.normal(size=(4, 3, 2))
    P = Problem(model, params, x, rng.integers(0, 2, (4, 3)), fl.Categorical())
    assert P.num_positions == 3 and P.num_outputs == 2
    G = P.reference("kfac_factor_G", layer=1)
    f = diagnose(G / 3, G, problem=P, quantity="kfac_factor_G")[0]
    assert f.kind == "scalar_factor" and "R=3 tokens" in f.message


def test_unnamed_integer_factor_says_what_it_could_be():
    P = _gaussian(1.0)
    F = P.reference("ggn")
    f = diagnose(7 * F, F, problem=P, quantity="ggn")[0]
    assert f.convention is None and "an integer (7)" in f.message


def test_float32_candidate_is_named_float32_rounding():
    P = _gaussian(1.0)
    F = P.reference("ggn")
    f32 = F.astype(np.float32).astype(np.float64)
    f = diagnose(f32, F, problem=P, quantity="ggn")
    assert [x.kind for x in f] == ["float32_rounding"], [str(x) for x in f]
    assert "float32 number" in f[0].message
    # the same candidate passed as float32 is compared at float32 tolerance and passes
    fl.testing.assert_curvature_close(F.astype(np.float32), F)


def test_float32_candidate_with_a_bug_is_diagnosed_at_float32_precision():
    """A float32 result upcast to float64 with a real bug (a factor 2): the hypotheses are
    reproduced at float32 precision, so the factor is still named."""
    P = _gaussian(1.0)
    F = P.reference("ggn")
    f = diagnose((2 * F).astype(np.float32).astype(np.float64), F, problem=P, quantity="ggn")
    assert f[0].kind == "scalar_factor" and f[0].factor == pytest.approx(2.0, rel=1e-6)
