"""Fixed examples for the driver: the evidence of ``no_known_pattern`` (each number recomputed
here from its definition), float32 candidates, the quantity inferred from the problem, and the
order of the findings."""

import re

import numpy as np
import pytest

import fisherlab as fl
import numpy_oracle as no
from planted_bugs import problem_factory
from fisherlab.testing import diagnose

_NUM = r"([-+0-9.e]+)"


def _spd(n, seed):
    B = np.random.default_rng(seed).normal(size=(n, n))
    return B @ B.T + 0.1 * np.eye(n)


def _number(pattern, text):
    m = re.search(pattern, text)
    assert m, (pattern, text)
    return float(m.group(1))


def test_no_known_pattern_evidence_recomputed():
    """An asymmetric perturbation: the evidence states the relative error, the asymmetry and
    both smallest eigenvalues, each checked against NumPy on the definitions."""
    Y = _spd(5, 3)
    E = np.random.default_rng(4).normal(size=Y.shape)
    X = Y + 0.1 * np.linalg.norm(Y) * E / np.linalg.norm(E)
    (f,) = diagnose(X, Y)
    assert f.kind == "no_known_pattern"
    msg = f.message
    rel = np.linalg.norm(X - Y) / np.linalg.norm(Y)
    assert _number(r"relative error " + _NUM, msg) == pytest.approx(rel, rel=1e-3)
    asym = np.linalg.norm(X - X.T) / np.linalg.norm(X)
    assert asym > 0.05
    assert _number(r"actual is not symmetric \(\|\|X - X\^T\|\|/\|\|X\|\| = " + _NUM + r"\)",
                   msg) == pytest.approx(asym, rel=1e-2)
    lx = np.linalg.eigvalsh((X + X.T) / 2).min()
    ly = np.linalg.eigvalsh(Y).min()  # Y is symmetric: its own eigenvalues
    assert _number(r"smallest eigenvalue actual " + _NUM, msg) == pytest.approx(lx, rel=1e-3)
    assert _number(r"vs desired " + _NUM, msg) == pytest.approx(ly, rel=1e-3)
    i, j = np.unravel_index(np.argmax(np.abs(X - Y)), X.shape)
    assert f"at index ({i}, {j})" in msg
    assert "pass problem= and quantity=" in msg
    # without a problem no family has anything to fail on: the evidence notes no failure
    assert "could not be tested" not in msg


def test_symmetric_difference_is_not_called_asymmetric():
    Y = _spd(4, 5)
    E = np.random.default_rng(6).normal(size=Y.shape)
    X = Y + 0.1 * np.linalg.norm(Y) * (E + E.T) / np.linalg.norm(E + E.T)
    (f,) = diagnose(X, Y)
    assert f.kind == "no_known_pattern" and "not symmetric" not in f.message


def test_float32_level_error_in_float64_entries_is_noted():
    """A 1e-6 relative error whose entries are not float32 numbers: not a float32 rounding
    finding, but the evidence says the error is at float32 level (a float32 intermediate)."""
    Y = _spd(5, 7)
    E = np.random.default_rng(8).normal(size=Y.shape)
    X = Y + 1e-6 * np.linalg.norm(Y) * (E + E.T) / np.linalg.norm(E + E.T)
    eps = float(np.finfo(np.float32).eps)
    (f,) = diagnose(X, Y)
    assert f.kind == "no_known_pattern"
    assert "at float32 rounding level" in f.message
    assert "a float32 intermediate" in f.message
    assert _number(r"level \(" + _NUM + " float32 epsilons", f.message) == pytest.approx(
        1e-6 / eps, rel=1e-2)


@pytest.mark.parametrize("c", [3.0, 0.25])
def test_float32_candidate_is_diagnosed_at_float32_precision(c):
    """``c Y`` computed in float32 and upcast: every entry is a float32 number, the error is far
    above float32 rounding, and the factor is found at float32 precision (an exact-at-float64
    comparison would leave a residual ~1e-8 and reject it)."""
    Y = _spd(5, 9)
    X = (c * Y).astype(np.float32).astype(np.float64)
    f = diagnose(X, Y)
    assert f[0].kind == "scalar_factor", [str(x) for x in f]
    assert f[0].factor == pytest.approx(c, rel=1e-6)
    assert 1e-10 < f[0].residual <= 1e-4


def _categorical():
    P = problem_factory(fl.Categorical(), 3)()
    m, params, x, y, lik = no.problem_arrays(P)
    return P, no.batch(m, params, x), lik, y


def test_quantity_is_inferred_from_the_problem():
    """Without ``quantity=``, a desired equal to the problem's Fisher is read as the Fisher,
    and the empirical Fisher planted for it is named (N=5, C=3: no factor coincides)."""
    P, b, lik, y = _categorical()
    EF = no.empirical_fisher(b, lik, y)
    F = no.fisher(b, lik)
    f = diagnose(EF, F, problem=P)
    assert f[0].kind == "empirical_fisher_for_fisher", [str(x) for x in f]


@pytest.mark.parametrize("c,words,several", [
    (3.0, "a sum over the C=3 outputs", False),
    (0.2, "an extra 1/N (N=5)", False),
    (-1.0, "flipped sign", False),
    # N=5 is also laplace-torch's sum-reduced classification loss: two readings, said so
    (5.0, "sum over the N=5 examples", True)])
def test_named_factor_on_a_problem_with_distinct_sizes(c, words, several):
    """c F with N=5, C=3 (categorical): the one convention giving c is named; a note on
    several conventions appears exactly when two readings give the factor."""
    P, b, lik, y = _categorical()
    F = no.fisher(b, lik)
    f = diagnose(c * F, F, problem=P, quantity="fisher")
    assert f[0].kind == "scalar_factor" and f[0].factor == pytest.approx(c)
    assert words in f[0].message
    assert ("several conventions give this factor" in f[0].message) == several
    assert "[tie:" not in f[0].message
    assert f[0].data.get("ties", []) == []
