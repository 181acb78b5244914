"""Categorical (softmax) likelihood against its SymPy source.

Ground truth: ``fisherlab.likelihoods.symbolic.categorical(C)`` -- the log-density
``sum_k y_k eta_k - log sum_k e^{eta_k}`` with one-hot ``y``; its Hessian
(``hessian_nll``) and Fisher (``fisher_definition``, the exact expectation over the C
classes) are derived by SymPy and evaluated in mpmath at 50 digits on the exact float
inputs (see ``likelihood_oracle.py``).

Tolerances (entry-wise ``|got - exact| <= rtol (|exact| + sum|terms| + max|matrix|) +
finfo.tiny``; nll with an absolute floor of ``rtol`` nats):

* float64 (public methods under ``jax.jit``): ``rtol = 1e-12``;
* float32 (kernels traced in float32 under the ``x32`` fixture): ``rtol = 1e-5``;
* JAX-lambdified source vs kernels, float64, jit: ``rtol = 1e-12``.

Logits include +-1000 (float64 and float32) -- results must be finite and correct.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp
from hypothesis import example, given
from hypothesis import strategies as st

import likelihood_oracle as O
from fisherlab import Categorical
from fisherlab.likelihoods import symbolic as _symbolic

LIK = Categorical()
HESSIAN = jax.jit(LIK.output_hessian)
EXTREMES = (-1000.0, 1000.0, 0.0, 745.0, -745.0)


@st.composite
def cases(draw, bound=40.0, extremes=EXTREMES, sizes=None):
    N = 2  # fixed batch: one jit compilation per C
    C = draw(st.sampled_from(sizes or [2, 3]))
    logits = O.float_matrix(draw, N, C, st.floats(-bound, bound), extremes)
    targets = np.array([draw(st.integers(0, C - 1)) for _ in range(N)], dtype=np.int64)
    return logits, targets


@given(cases())
@example((np.array([[1000.0, -1000.0, 0.0], [0.0, 1.0, 2.0]]), np.array([1, 2])))
@example((np.array([[1000.0, 1000.0], [-1000.0, -1000.0]]), np.array([0, 1])))
@example((np.array([[40.0, 0.0], [-40.0, 0.0]]), np.array([0, 0])))
def test_float64_matches_symbolic_source(case):
    logits, targets = case
    values = O.implementation_values(LIK, logits, targets)
    O.assert_matches_source("Categorical", logits, targets, values, rtol=O.F64_RTOL)


@given(cases(extremes=(-1000.0, 1000.0, 0.0, 80.0)))
@example((np.array([[1000.0, -1000.0, 0.0], [80.0, 0.0, -80.0]]), np.array([1, 0])))
def test_float32_kernels_match_symbolic_source(case):
    logits, targets = case
    logits = O.flush_subnormal(logits, np.float32)
    with jax.enable_x64(False):  # the x32 fixture, per Hypothesis example
        values = O.implementation_values(LIK, logits, targets, float32=True)
    O.assert_matches_source("Categorical", logits, targets, values, rtol=O.F32_RTOL,
                            dtype=np.float32)


@given(cases(bound=30.0, extremes=(0.0, 30.0), sizes=[2]))  # literal forms: small C (fast)
def test_kernels_match_jax_lambdified_source(case):
    logits, targets = case
    O.assert_lambdified_agrees(LIK, "Categorical", logits, targets)


def test_fisher_probability_form_at_extreme_logits():
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 999.0, 1000.0]])
    O.assert_lambdified_agrees(LIK, "Categorical", logits, np.array([0, 1]), quantities=("fisher",))


def test_nll_at_extreme_logits_is_exact():
    # -log softmax: [1000, -1000] -> class 1 costs 2000 + log(1 + e^-2000) = 2000 (float64)
    got = LIK.nll(jnp.array([[1000.0, -1000.0], [1000.0, -1000.0]]), jnp.array([1, 0]))
    assert np.all(np.isfinite(got))
    assert got[0] == 2000.0 and got[1] == 0.0


@pytest.mark.parametrize("C", [2, 3])
def test_symbolic_is_the_single_source(C):
    sym = LIK.symbolic(C)
    ref = _symbolic.categorical(C)
    assert sym.outputs == ref.outputs and sym.targets == ref.targets
    assert sp.expand(sym.log_density - ref.log_density) == 0
    # natural parameters: the output Hessian has no target symbol (target-independent) ...
    H = sym.hessian_nll()
    assert not (H.free_symbols & set(sym.targets))
    # ... and equals the Fisher (definition, exact expectation): exactly zero after
    # writing x_k = e^{eta_k} > 0 and cancelling
    xs = sp.symbols(f"x_1:{C + 1}", positive=True)
    to_x = {sp.exp(e): x for e, x in zip(sym.outputs, xs)}
    diff = (H - sym.fisher_definition()).subs(to_x)
    assert diff.applyfunc(sp.cancel) == sp.zeros(C, C)


@given(cases())
def test_output_hessian_is_target_independent(case):
    logits, targets = case
    other = (targets + 1) % logits.shape[1]
    np.testing.assert_array_equal(HESSIAN(logits, targets), HESSIAN(logits, other))
