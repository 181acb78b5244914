"""Fixed examples for the scalar conventions on problems whose sizes differ (N=5, C=3; a token
model with R=4): each factor is planted as ``c × desired`` and the reading it must get -- or
must not get -- is asserted in the message; the fraction text and the float32 bounds are
checked against their definitions."""

import numpy as np
import pytest

import fisherlab as fl
import numpy_oracle as no
from planted_bugs import problem_factory, token_problem
from fisherlab.testing import diagnose
from fisherlab.testing._diagnose._scalar import factor_text

EPS32 = float(np.finfo(np.float32).eps)


@pytest.mark.parametrize("c,text", [(3.0, "3"), (1.0, "1"), (0.5, "0.5 = 1/2"),
                                    (2 / 3, "0.666667 = 2/3"), (0.2, "0.2 = 1/5"),
                                    (-1.25, "-1.25 = -5/4"), (np.pi, "3.14159")])
def test_factor_text_is_the_shortest_fraction(c, text):
    assert factor_text(c) == text


def _categorical():
    return problem_factory(fl.Categorical(), 3)()


@pytest.mark.parametrize("quantity,c,words", [
    ("fisher", 1 / 3, "a mean over the C=3 outputs"),
    ("fisher", 2 / 3, "MSELoss(reduction='mean'): the mean over the C=3 outputs"),
    ("fisher", 1.5, "C/2 (C=3)"),
    ("gradient_covariance", 5 / 4, "N/(N-1) (N=5): an unbiased (ddof=1) covariance"),
    ("gradient_covariance", 4 / 5, "(N-1)/N (N=5)"),
    ("empirical_fisher", 1 / 25, "1/N^2 (N=5): gradients of the mean loss"),
    ("empirical_fisher", 4 / 9, "(2/C)^2 (C=3)")])
def test_named_factor(quantity, c, words):
    P = _categorical()
    Y = P.reference(quantity)
    f = diagnose(c * Y, Y, problem=P, quantity=quantity)[0]
    assert f.kind == "scalar_factor" and f.factor == pytest.approx(c, rel=1e-9)
    # one convention gives c: it is the first reading, not combined with another
    assert f.convention.startswith(words) and " and " not in f.convention, f.message
    assert f"actual = {factor_text(c)} × desired" in f.message


def test_squared_gradient_factor_is_no_reading_of_a_curvature():
    """1/N^2 comes from gradients of the mean loss in an *outer product*: on the Fisher (no
    outer product) 1/25 is only the inverse of an integer, not a named convention."""
    P = _categorical()
    F = P.reference("fisher")
    f = diagnose(F / 25, F, problem=P, quantity="fisher")[0]
    assert f.kind == "scalar_factor" and f.convention is None
    assert "N^2" not in f.message
    assert "no known convention by name, but it is the inverse of an integer (25)" in f.message


def test_unbiased_covariance_of_per_example_gradients():
    """np.cov(ddof=1) of the per-example gradients computed by the NumPy engine."""
    P = _categorical()
    m, params, x, y, lik = no.problem_arrays(P)
    b = no.batch(m, params, x)
    g = np.einsum("nci,nc->ni", b["J"], no.output_gradient(lik, b["f"], y))
    f = diagnose(np.cov(g.T, ddof=1), P.reference("gradient_covariance"), problem=P,
                 quantity="gradient_covariance")[0]
    assert f.kind == "scalar_factor" and f.factor == pytest.approx(5 / 4)
    assert f.convention == ("N/(N-1) (N=5): an unbiased (ddof=1) covariance, divided by N-1 "
                            "instead of N")


def test_token_conventions_and_their_reading_order():
    """R = 4 tokens per example, N = 5, C = 3: the sum over tokens (factor R) is named; for 1/4
    on the empirical Fisher three readings coincide (1/P, 1/R, and (2)^2 combined with 1/P^2)
    and the single conventions are listed before the combined one."""
    P = token_problem()()
    F = P.reference("fisher")
    f = diagnose(4 * F, F, problem=P, quantity="fisher")[0]
    assert f.kind == "scalar_factor" and "R (R=4 tokens per example)" in f.message
    EF = P.reference("empirical_fisher")
    f = diagnose(EF / 4, EF, problem=P, quantity="empirical_fisher")[0]
    readings = f.message.split("the factor matches: ")[1].split(" [")[0].split("; or ")
    assert len(readings) == 3
    assert [r.count(" and ") for r in readings] == [0, 0, 1]
    assert readings[2].startswith("(2)^2") and "1/P^2 (P=4" in readings[2]


def _spd(n, seed):
    B = np.random.default_rng(seed).normal(size=(n, n))
    return B @ B.T + np.eye(n)


def test_accumulated_float32_error_is_float32_rounding():
    """A float32 computation whose error accumulated to ~10 float32 epsilons (well above one
    rounding, below the 1e3 epsilons bound): every entry a float32 number, named
    float32_rounding with the error in epsilons."""
    Y = _spd(6, 1)
    E = np.random.default_rng(2).normal(size=Y.shape)
    rel = 10 * EPS32
    X = (Y + rel * np.linalg.norm(Y) * (E + E.T) / np.linalg.norm(E + E.T))
    X = X.astype(np.float32).astype(np.float64)
    err = np.linalg.norm(X - Y) / np.linalg.norm(Y)
    assert 5 * EPS32 < err < 20 * EPS32
    (f,) = diagnose(X, Y)
    assert f.kind == "float32_rounding" and "every entry of actual is a float32 number" in \
        f.message
    assert f"{err / EPS32:.3g} float32 epsilons" in f.message


def test_error_beyond_float32_accumulation_is_not_float32_rounding():
    """float32 entries with an error of 1e4 float32 epsilons: a real difference, not rounding."""
    Y = _spd(6, 3)
    E = np.random.default_rng(4).normal(size=Y.shape)
    X = Y + 1e4 * EPS32 * np.linalg.norm(Y) * (E + E.T) / np.linalg.norm(E + E.T)
    f = diagnose(X.astype(np.float32).astype(np.float64), Y)
    assert f[0].kind != "float32_rounding", [str(x) for x in f]
