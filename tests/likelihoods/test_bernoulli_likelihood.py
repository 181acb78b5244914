"""Bernoulli (logit) likelihood against its SymPy source.

Ground truth: ``_symbolic.bernoulli(C)`` (``sum_c y_c eta_c - log(1 + e^{eta_c})``), its SymPy
Hessian and its Fisher by exact enumeration of ``{0, 1}^C``, evaluated in mpmath (50 digits).

Tolerances (see ``likelihood_oracle.close``): float64 public methods under ``jax.jit``
``rtol = 1e-12``; float32 kernels ``rtol = 1e-5``; JAX-lambdified source ``rtol = 1e-12``.
Logits include +-1000 (float64 and float32).
"""

import jax
import numpy as np
import pytest
import sympy as sp
from hypothesis import example, given
from hypothesis import strategies as st

import likelihood_oracle as O
from fisherlab import Bernoulli
from fisherlab.likelihoods import symbolic as _symbolic

LIK = Bernoulli()
HESSIAN = jax.jit(LIK.output_hessian)
EXTREMES = (-1000.0, 1000.0, 0.0, 745.0, -745.0)


@st.composite
def cases(draw, bound=40.0, extremes=EXTREMES, sizes=None):
    C = draw(st.sampled_from(sizes or [1, 3]))
    logits = O.float_matrix(draw, 2, C, st.floats(-bound, bound), extremes)
    targets = O.float_matrix(draw, 2, C, st.sampled_from([0.0, 1.0]))
    return logits, targets


@given(cases())
@example((np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 40.0]]),
          np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 0.0]])))
def test_float64_matches_symbolic_source(case):
    logits, targets = case
    values = O.implementation_values(LIK, logits, targets)
    O.assert_matches_source("Bernoulli", logits, targets, values, rtol=O.F64_RTOL)


@given(cases(extremes=(-1000.0, 1000.0, 0.0, 80.0)))
def test_float32_kernels_match_symbolic_source(case):
    logits, targets = case
    logits = O.flush_subnormal(logits, np.float32)
    targets = O.flush_subnormal(targets, np.float32)
    with jax.enable_x64(False):  # the x32 fixture, per Hypothesis example
        values = O.implementation_values(LIK, logits, targets, float32=True)
    O.assert_matches_source("Bernoulli", logits, targets, values, rtol=O.F32_RTOL,
                            dtype=np.float32)


@given(cases(bound=30.0, extremes=(0.0,), sizes=[1, 2]))  # literal forms: small C (fast)
def test_kernels_match_jax_lambdified_source(case):
    O.assert_lambdified_agrees(LIK, "Bernoulli", *case)


def test_nll_at_extreme_logits_is_exact():
    got = LIK.nll(np.array([[1000.0, -1000.0, 1000.0, -1000.0]]),
                  np.array([[1.0, 1.0, 0.0, 0.0]]))
    assert got[0] == 2000.0


@pytest.mark.parametrize("C", [1, 2])
def test_symbolic_is_the_single_source(C):
    sym = LIK.symbolic(C)
    ref = _symbolic.bernoulli(C)
    assert sp.expand(sym.log_density - ref.log_density) == 0
    H = sym.hessian_nll()
    assert not (H.free_symbols & set(sym.targets))
    xs = sp.symbols(f"x_1:{C + 1}", positive=True)
    to_x = {sp.exp(e): x for e, x in zip(sym.outputs, xs)}
    assert (H - sym.fisher_definition()).subs(to_x).applyfunc(sp.cancel) == sp.zeros(C, C)


@given(cases())
def test_output_hessian_is_target_independent(case):
    logits, targets = case
    np.testing.assert_array_equal(HESSIAN(logits, targets), HESSIAN(logits, 1.0 - targets))


def test_bool_targets_are_the_zero_one_labels():
    # closed form: -log p(y | z) = log(1 + exp(-z)) for y = 1 and log(1 + exp(z)) for y = 0
    z = np.array([[0.5, -2.0, 3.0]])
    y = np.array([[True, False, True]])
    expected = np.sum(np.where(y, np.log1p(np.exp(-z)), np.log1p(np.exp(z))), axis=1)
    np.testing.assert_allclose(LIK.nll(z, y), expected, rtol=1e-14)
