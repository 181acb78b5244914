"""Poisson (log-rate) likelihood against its SymPy source.

Ground truth: ``_symbolic.poisson(C)`` (``sum_c y_c eta_c - e^{eta_c} - log Gamma(y_c + 1)``),
its SymPy Hessian and its Fisher by the exact series expectation, evaluated in mpmath
(50 digits; ``loggamma`` -> ``mpmath.loggamma``; ``jax.scipy.special.gammaln`` for the JAX
lambdification).

Tolerances (see ``likelihood_oracle.close``): float64 public methods under ``jax.jit``
``rtol = 1e-12``; float32 kernels ``rtol = 1e-5``; JAX-lambdified source ``rtol = 1e-12``.
Log-rates in float64 include -1000 (rate underflows to 0: near-zero rates) and 700 (rate
1e304); float32 uses log-rates within +-80 (``e^80`` must be a float32).
"""

import jax
import numpy as np
import pytest
import sympy as sp
from hypothesis import example, given
from hypothesis import strategies as st

import likelihood_oracle as O
from fisherlab import Poisson
from fisherlab.likelihoods import symbolic as _symbolic

LIK = Poisson()
HESSIAN = jax.jit(LIK.output_hessian)


@st.composite
def cases(draw, bound=20.0, extremes=(-1000.0, -700.0, 700.0, 0.0)):
    C = draw(st.sampled_from([1, 3]))
    log_rates = O.float_matrix(draw, 2, C, st.floats(-bound, bound), extremes)
    counts = O.float_matrix(draw, 2, C, st.integers(0, 10_000).map(float), (0.0, 1.0))
    return log_rates, counts


@given(cases())
@example((np.array([[700.0, -1000.0, 0.0], [3.0, -2.0, 10.0]]),
          np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 22026.0]])))
def test_float64_matches_symbolic_source(case):
    log_rates, counts = case
    values = O.implementation_values(LIK, log_rates, counts)
    O.assert_matches_source("Poisson", log_rates, counts, values, rtol=O.F64_RTOL)


@given(cases(extremes=(-80.0, 80.0, 0.0)))
def test_float32_kernels_match_symbolic_source(case):
    log_rates, counts = case
    log_rates = O.flush_subnormal(log_rates, np.float32)
    counts = O.flush_subnormal(counts, np.float32)
    with jax.enable_x64(False):  # the x32 fixture, per Hypothesis example
        values = O.implementation_values(LIK, log_rates, counts, float32=True)
    O.assert_matches_source("Poisson", log_rates, counts, values, rtol=O.F32_RTOL,
                            dtype=np.float32)


@given(cases(bound=20.0, extremes=(0.0,)))
def test_kernels_match_jax_lambdified_source(case):
    O.assert_lambdified_agrees(LIK, "Poisson", *case)


@pytest.mark.parametrize("C", [1, 2])
def test_symbolic_is_the_single_source(C):
    sym = LIK.symbolic(C)
    ref = _symbolic.poisson(C)
    assert sp.expand(sym.log_density - ref.log_density) == 0
    H = sym.hessian_nll()
    assert not (H.free_symbols & set(sym.targets))
    assert sp.expand(H - sym.fisher_definition()) == sp.zeros(C, C)


@given(cases())
def test_output_hessian_is_target_independent(case):
    log_rates, counts = case
    np.testing.assert_array_equal(HESSIAN(log_rates, counts), HESSIAN(log_rates, counts + 3.0))
