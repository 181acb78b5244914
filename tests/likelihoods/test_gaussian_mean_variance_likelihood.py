"""Gaussian mean / log-variance likelihood against its SymPy source.

Ground truth: ``_symbolic.gaussian_mean_variance(D)`` (outputs ``[mu | s]``, ``s = log
sigma^2``), its SymPy Hessian (target-dependent) and its Fisher by exact standard-normal
moments (``diag(e^{-s}, 1/2)``), evaluated in mpmath (50 digits).

Tolerances (see ``likelihood_oracle.close``): float64 public methods under ``jax.jit``
``rtol = 1e-12``; float32 kernels ``rtol = 1e-5``; JAX-lambdified source ``rtol = 1e-12``.
Log-variances in float64 include +-700 (variances 1e-304 .. 1e304); float32 within +-70.
"""

import jax
import numpy as np
import pytest
import sympy as sp
from hypothesis import example, given
from hypothesis import strategies as st

import likelihood_oracle as O
from fisherlab import GaussianMeanVariance
from fisherlab.likelihoods import symbolic as _symbolic

LIK = GaussianMeanVariance()
HESSIAN = jax.jit(LIK.output_hessian)


@st.composite
def cases(draw, s_bound=20.0, s_extremes=(-700.0, 700.0, 0.0)):
    D = draw(st.sampled_from([1, 2]))
    means = O.float_matrix(draw, 2, D, st.floats(-30.0, 30.0), (0.0,))
    log_vars = O.float_matrix(draw, 2, D, st.floats(-s_bound, s_bound), s_extremes)
    targets = O.float_matrix(draw, 2, D, st.floats(-30.0, 30.0), (0.0,))
    return np.concatenate([means, log_vars], axis=1), targets


@given(cases())
@example((np.array([[1.0, 1.0, -700.0, 700.0], [3.0, -2.0, 0.5, -3.0]]),
          np.array([[1.0, 1.1], [0.0, 0.0]])))
def test_float64_matches_symbolic_source(case):
    outputs, targets = case
    values = O.implementation_values(LIK, outputs, targets)
    O.assert_matches_source("GaussianMeanVariance", outputs, targets, values, rtol=O.F64_RTOL)


@given(cases(s_extremes=(-70.0, 70.0, 0.0)))
def test_float32_kernels_match_symbolic_source(case):
    outputs, targets = case
    outputs = O.flush_subnormal(outputs, np.float32)
    targets = O.flush_subnormal(targets, np.float32)
    with jax.enable_x64(False):  # the x32 fixture, per Hypothesis example
        values = O.implementation_values(LIK, outputs, targets, float32=True)
    O.assert_matches_source("GaussianMeanVariance", outputs, targets, values, rtol=O.F32_RTOL,
                            dtype=np.float32)


@given(cases(s_extremes=(0.0,)))
def test_kernels_match_jax_lambdified_source(case):
    O.assert_lambdified_agrees(LIK, "GaussianMeanVariance", *case)


@pytest.mark.parametrize("C", [2, 4])
def test_symbolic_is_the_single_source(C):
    sym = LIK.symbolic(C)
    ref = _symbolic.gaussian_mean_variance(C // 2)
    assert sym.outputs == ref.outputs
    assert sp.expand(sym.log_density - ref.log_density) == 0
    # not natural parameters: the Hessian depends on the target and differs from the Fisher
    H = sym.hessian_nll()
    assert H.free_symbols & set(sym.targets)
    assert sp.expand(H - sym.fisher_definition()) != sp.zeros(C, C)
    # ... but its expectation is the Fisher (information equality)
    assert sp.expand(H.applyfunc(sym.expectation) - sym.fisher_definition()) == sp.zeros(C, C)


def test_output_hessian_depends_on_the_target():
    outputs = np.array([[0.5, -1.0]])  # mu = 0.5, s = -1
    at_mean = LIK.output_hessian(outputs, np.array([[0.5]]))[0]
    off_mean = LIK.output_hessian(outputs, np.array([[1.5]]))[0]
    e = np.exp(1.0)
    # y = mu: diag(e^{-s}, 0); y = mu + 1: [[e^{-s}, e^{-s}], [e^{-s}, e^{-s}/2]]
    np.testing.assert_allclose(at_mean, [[e, 0.0], [0.0, 0.0]], rtol=1e-15)
    np.testing.assert_allclose(off_mean, [[e, e], [e, e / 2]], rtol=1e-15)
    fisher = LIK.output_fisher(outputs)[0]
    np.testing.assert_allclose(fisher, [[e, 0.0], [0.0, 0.5]], rtol=1e-15)


@pytest.mark.parametrize("C", [1, 3, 0])
def test_symbolic_rejects_odd_or_empty_outputs(C):
    with pytest.raises(ValueError, match="num_outputs for GaussianMeanVariance must be an even"):
        LIK.symbolic(C)
