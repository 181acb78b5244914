"""Gaussian (fixed variance) likelihood against its SymPy source.

Ground truth: ``_symbolic.gaussian(C, v)`` with a positive symbol ``v`` for the variance
(``-log p = ||y - mu||^2 / (2 v) + (C/2) log(2 pi v)``, the constant included), its SymPy
Hessian and its Fisher by exact standard-normal moments, evaluated in mpmath (50 digits).

Tolerances (see ``likelihood_oracle.close``): float64 public methods under ``jax.jit``
``rtol = 1e-12``; float32 kernels ``rtol = 1e-5``; JAX-lambdified source ``rtol = 1e-12``.
Variances include 1e-300 and 1e-12 (near zero) and 1e12 in float64; float32 uses variances
in [1e-6, 1e6] (1/variance must be a float32).
"""

import jax
import numpy as np
import pytest
import sympy as sp
from hypothesis import example, given
from hypothesis import strategies as st

import likelihood_oracle as O
from fisherlab import Gaussian
from fisherlab.likelihoods import symbolic as _symbolic

VARIANCES_64 = (1e-300, 1e-12, 0.37, 1.0, 1e12)
VARIANCES_32 = (1e-6, 0.37, 1.0, 1e6)


@st.composite
def cases(draw, variances=VARIANCES_64, bound=30.0):
    C = draw(st.sampled_from([1, 3]))
    means = O.float_matrix(draw, 2, C, st.floats(-bound, bound), (0.0, 1000.0))
    targets = O.float_matrix(draw, 2, C, st.floats(-bound, bound), (0.0,))
    return means, targets, draw(st.sampled_from(variances))


@given(cases())
@example((np.array([[1.0, -3.0, 0.0], [3.0, -2.0, 0.5]]),
          np.array([[1.5, 0.0, 30.0], [0.0, 0.0, 0.0]]), 1e-300))
def test_float64_matches_symbolic_source(case):
    means, targets, var = case
    values = O.implementation_values(Gaussian(var), means, targets)
    O.assert_matches_source("Gaussian", means, targets, values, rtol=O.F64_RTOL, variance=var)


@given(cases(variances=VARIANCES_32))
def test_float32_kernels_match_symbolic_source(case):
    means, targets, var = case
    means = O.flush_subnormal(means, np.float32)
    targets = O.flush_subnormal(targets, np.float32)
    with jax.enable_x64(False):  # the x32 fixture, per Hypothesis example
        values = O.implementation_values(Gaussian(var), means, targets, float32=True)
    O.assert_matches_source("Gaussian", means, targets, values, rtol=O.F32_RTOL, variance=var,
                            dtype=np.float32)


@given(cases(variances=(0.37, 1.0)))
def test_kernels_match_jax_lambdified_source(case):
    means, targets, var = case
    O.assert_lambdified_agrees(Gaussian(var), "Gaussian", means, targets, variance=var)


def test_nll_keeps_the_normalising_constant():
    # y = mu: -log p = (C/2) log(2 pi var) exactly (the constant is part of -log p)
    lik = Gaussian(variance=0.5)
    got = lik.nll(np.zeros((1, 3)), np.zeros((1, 3)))
    np.testing.assert_allclose(got, [1.5 * np.log(np.pi)], rtol=1e-15)


@pytest.mark.parametrize("variance", [1.0, 0.1, 2.5])
def test_symbolic_is_the_single_source(variance):
    C = 2
    sym = Gaussian(variance).symbolic(C)
    ref = _symbolic.gaussian(C, O.VAR)
    exact_var = sp.nsimplify(variance, rational=True)
    assert abs(float(exact_var) - variance) <= 1e-16 * variance
    assert sp.expand(sym.log_density - ref.log_density.subs(O.VAR, exact_var)) == 0
    H = sym.hessian_nll()
    assert not (H.free_symbols & set(sym.targets))
    assert sp.expand(H - sym.fisher_definition()) == sp.zeros(C, C)
    assert H == sp.eye(C) / exact_var


@given(cases())
def test_output_hessian_is_target_independent(case):
    means, targets, var = case
    lik = Gaussian(var)
    np.testing.assert_array_equal(lik.output_hessian(means, targets),
                                  lik.output_hessian(means, targets + 1.0))
