"""assert_curvature_close in a user's test run: a short traceback, a reproducible problem."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import fisherlab as fl
from fisherlab.testing import Problem, assert_curvature_close


def _problem(reduction="mean"):
    model = fl.nn.Sequential([fl.nn.Dense(2, 3), fl.nn.Tanh(), fl.nn.Dense(3, 2)])
    rng = np.random.default_rng(0)
    return Problem(model, model.init(jax.random.key(1)), rng.normal(size=(4, 2)),
                   np.array([0, 1, 1, 0]), fl.Categorical(), reduction=reduction)


def test_failure_message_names_the_problem_and_a_saved_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("FISHERLAB_FAILURE_DIR", str(tmp_path))
    P = _problem()
    F = P.reference("fisher")
    with pytest.raises(AssertionError) as info:
        assert_curvature_close(4 * F, F, problem=P, quantity="fisher")
    msg = str(info.value)
    assert "x (4, 2), y (4,) int" in msg and "Categorical()" in msg and P.digest() in msg
    assert "1. [scalar_factor]" in msg and "N=4" in msg
    (path,) = tmp_path.glob("fisher-*.npz")
    assert str(path) in msg
    Q = Problem.load(path)
    np.testing.assert_array_equal(np.load(path)["extra.actual"], 4 * F)
    assert Q.digest() == P.digest()
    np.testing.assert_allclose(Q.reference("fisher"), F, rtol=1e-13)


def test_no_saved_copy_when_switched_off_or_unsavable(tmp_path, monkeypatch):
    monkeypatch.setenv("FISHERLAB_FAILURE_DIR", "off")
    P = _problem()
    F = P.reference("fisher")
    with pytest.raises(AssertionError, match=r"saved copy: none \(FISHERLAB_FAILURE_DIR=off\)"):
        assert_curvature_close(2 * F, F, problem=P)
    monkeypatch.setenv("FISHERLAB_FAILURE_DIR", str(tmp_path))
    Pf = Problem(lambda p, x: p @ x, np.eye(2), np.ones((3, 2)), np.zeros(3, int),
                 fl.Categorical())
    G = Pf.reference("fisher")
    with pytest.raises(AssertionError, match="saved copy: none .*Python function"):
        assert_curvature_close(2 * G, G, problem=Pf)


def test_pytest_traceback_hides_the_helper(tmp_path):
    """The failing user line is shown, not ~50 lines of the helper's source."""
    test = tmp_path / "test_user.py"
    test.write_text(textwrap.dedent("""
        import numpy as np
        import fisherlab as fl

        def test_mine():
            F = np.array([[2.0, 1.0], [1.0, 3.0]])
            fl.testing.assert_curvature_close(2 * F, F)
    """))
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(test)], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=300).stdout
    assert "fl.testing.assert_curvature_close(2 * F, F)" in out
    assert "[scalar_factor]" in out
    assert "as_matrix_pair" not in out and "def assert_curvature_close" not in out, out


def test_unknown_quantity_is_refused_even_when_the_matrices_agree():
    """A misspelt ``quantity`` raises at once, not only once a candidate starts to differ."""
    M = np.eye(3)
    with pytest.raises(ValueError, match=r"quantity must be one of .*got 'gnn'"):
        assert_curvature_close(M, M, quantity="gnn")
    assert_curvature_close(M, M, quantity="ggn")
