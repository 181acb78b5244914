"""The driver: correct candidates give no finding, unexplained ones ``no_known_pattern``,
coinciding explanations are reported as a tie; bad input is refused; no import cycle."""

import ast
import pathlib

import numpy as np
import pytest
from hypothesis import assume, find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

import fisherlab as fl
import numpy_oracle as no
from diagnose_cases import assert_no_finding, oracle, problems
from fisherlab.testing import KINDS, Finding, Problem, diagnose, relative_error


@given(problems(archs=("tanh", "sigmoid", "both")),
       st.sampled_from(["fisher", "ggn", "empirical_fisher", "gradient_covariance", "kfac"]))
def test_correct_candidates_give_no_finding(problem, quantity):
    """Computed by the NumPy engine, independently of fisherlab."""
    b = oracle(problem)
    lik, y = problem.likelihood, np.asarray(problem.y)
    if quantity in ("fisher", "ggn"):
        cand = no.fisher(b, lik)
    elif quantity == "empirical_fisher":
        cand = no.empirical_fisher(b, lik, y)
    elif quantity == "gradient_covariance":
        G = np.einsum("nci,nc->ni", b["J"], no.output_gradient(lik, b["f"], y))
        cand = np.cov(G.T, ddof=0)
    else:
        cand = no.kfac_matrix(no.kfac_factors(b, no.output_fisher(lik, b["f"])))
    assert_no_finding(cand, problem, quantity)


@given(problems(), st.integers(0, 2**32 - 1))
def test_random_perturbation_is_no_known_pattern(problem, seed):
    F = problem.reference("fisher")
    assume(np.linalg.norm(F) > 1e-6)
    E = np.random.default_rng(seed).normal(size=F.shape)
    actual = F + 0.1 * np.linalg.norm(F) * (E + E.T) / np.linalg.norm(E + E.T)
    f = diagnose(actual, F, problem=problem, quantity="fisher")
    assert [x.kind for x in f] == ["no_known_pattern"], [str(x) for x in f]
    assert "relative error" in f[0].message


def test_coinciding_conventions_are_reported_as_a_tie():
    """N = 2 and C = 2 with a Gaussian: a sum over the examples (factor N = 2) is also the
    un-halved squared error (2) and a sum over outputs (C = 2): the diagnosis says they tie."""
    rng = np.random.default_rng(0)
    model = fl.nn.Sequential([fl.nn.Dense(2, 2)])
    P = Problem(model, [(rng.normal(size=(2, 2)), rng.normal(size=2))], rng.normal(size=(2, 2)),
                rng.normal(size=(2, 2)), fl.Gaussian())
    F = P.reference("ggn")
    f = diagnose(2 * F, F, problem=P, quantity="ggn")[0]
    assert f.kind == "scalar_factor"
    assert "N=2" in f.message and "C=2" in f.message and "squared error" in f.message
    assert "several conventions give this factor" in f.message


def test_distinct_problems_separate_the_conventions():
    """fl.testing.strategies.problems(distinct=True) never draws N, C that coincide."""
    strat = fl.testing.strategies.problems(distinct=True)
    with pytest.raises(NoSuchExample):
        find(strat, lambda p: p.num_examples == p.num_outputs or p.num_examples < 3
             or p.num_outputs < 3, settings=settings(max_examples=30, database=None))


def test_bad_input_is_refused():
    F = np.eye(3)
    with pytest.raises(ValueError, match="quantity must be one of"):
        diagnose(F, F, quantity="fischer")
    with pytest.raises(TypeError, match="problem must be a fisherlab.testing.Problem"):
        diagnose(F, F, problem=object())
    with pytest.raises(ValueError, match="same shape"):
        diagnose(np.eye(2), F)
    with pytest.raises(ValueError, match="finite"):
        diagnose(np.full((3, 3), np.nan), F)


def test_findings_have_stable_kinds_and_data():
    F = np.array([[2.0, 1.0], [1.0, 3.0]])
    (f,) = diagnose(4 * F, F)
    assert isinstance(f, Finding) and f.kind in KINDS and f.kind == "scalar_factor"
    assert f.data["factor"] == pytest.approx(4.0)
    assert hash(f) == hash(Finding(f.kind, f.message, f.factor, f.convention, f.residual))
    assert diagnose(F, F) == []
    assert relative_error(F, F) == 0.0


def _imports(path):
    tree = ast.parse(path.read_text())
    top, local = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = ([node.module] if isinstance(node, ast.ImportFrom) else
                     [a.name for a in node.names])
            target = top if node.col_offset == 0 else local
            target.update(n for n in names if n)
    return top, local


def test_no_import_cycle_and_no_hidden_local_imports():
    """The assertion helpers import the diagnoser, never the other way round, and no module of
    the oracle kit hides an import of fisherlab inside a function (torch is optional)."""
    root = pathlib.Path(fl.testing.__file__).parent
    for path in list(root.glob("_*.py")) + list((root / "_diagnose").glob("*.py")):
        top, local = _imports(path)
        assert not any(m.startswith("fisherlab") for m in local), (path.name, local)
        if path.parent.name == "_diagnose":
            assert "fisherlab.testing._assertions" not in top, path.name
    top, _ = _imports(root / "_assertions.py")
    assert "fisherlab.testing._diagnose" in top
