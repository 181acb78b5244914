# fisherlab as a test oracle in your pytest suite: `python3 -m pytest examples/test_oracle.py`
from hypothesis import given, settings
from fisherlab.testing import assert_curvature_close, strategies as fls

from mylib import ggn  # the implementation under test (examples/mylib.py stands in for yours)

@settings(max_examples=5)  # few draws: the first call per shape compiles (JAX JIT)
@given(fls.problems(max_depth=2, max_width=3))  # networks, parameters, batches, likelihoods
def test_ggn_matches_fisherlab(problem):
    mine = ggn(problem.f, problem.params, problem.x, problem.y, problem.likelihood)
    assert_curvature_close(mine, problem.reference("ggn"), problem=problem, quantity="ggn")
