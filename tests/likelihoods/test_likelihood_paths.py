"""Less-used argument types and boundaries of the likelihoods, against closed forms (NumPy).

* ``natural`` is what it claims: the output Hessian is independent of the target and equals
  the output Fisher exactly for the natural families, and not for the mean-variance Gaussian;
* a Gaussian variance given as a 0-d NumPy or JAX array is its value;
* the kernels take a Python ``int`` class index (what ``jax.grad(lik._nll)(out, k)`` passes);
* the mean-variance Gaussian's NLL with ``D = 2`` (every coordinate's log-variance counts);
* its symbolic size check with the message, for each kind of bad size;
* Poisson sampling at exactly the largest supported log-rate.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fisherlab import Bernoulli, Categorical, Gaussian, GaussianMeanVariance, Poisson
from fisherlab.likelihoods._poisson import MAX_LOG_SAMPLING_RATE

OUT = np.array([[0.3, -1.2, 0.8, 0.1], [1.5, 0.4, -0.6, 2.0]])
TARGETS = {
    "Categorical": [np.array([0, 3]), np.array([2, 1])],
    "Gaussian": [np.zeros((2, 4)), np.full((2, 4), 1.7)],
    "Bernoulli": [np.zeros((2, 4)), np.ones((2, 4))],
    "Poisson": [np.zeros((2, 4)), np.full((2, 4), 3.0)],
    "GaussianMeanVariance": [np.zeros((2, 2)), np.array([[2.0, -1.0], [0.5, 3.0]])],
}


@pytest.mark.parametrize("lik", [Categorical(), Gaussian(0.5), Bernoulli(), Poisson(),
                                 GaussianMeanVariance()], ids=repr)
def test_natural_means_the_output_hessian_is_the_output_fisher(lik):
    y0, y1 = TARGETS[type(lik).__name__]
    H0, H1 = np.asarray(lik.output_hessian(OUT, y0)), np.asarray(lik.output_hessian(OUT, y1))
    F = np.asarray(lik.output_fisher(OUT))
    same = np.allclose(H0, F, rtol=1e-13, atol=1e-15) and np.allclose(H1, F, rtol=1e-13,
                                                                        atol=1e-15)
    assert lik.natural is same


@pytest.mark.parametrize("variance", [np.array(0.5), jnp.asarray(0.5), np.float32(0.5)],
                         ids=["numpy-0d", "jax-0d", "numpy-scalar"])
def test_gaussian_variance_as_a_zero_dimensional_array(variance):
    lik = Gaussian(variance=variance)
    assert lik.variance == 0.5 and type(lik.variance) is float
    assert lik == Gaussian(0.5)
    np.testing.assert_allclose(np.asarray(lik.output_fisher(OUT[:1]))[0], 2.0 * np.eye(4),
                               rtol=1e-15)


def test_gaussian_nll_keeps_the_normalising_constant():
    y = np.array([[1.0, 0.0, -1.0, 2.0]])
    got = float(Gaussian(0.5).nll(OUT[:1], y)[0])
    r = y[0] - OUT[0]
    assert got == pytest.approx(r @ r / (2 * 0.5) + 2.0 * math.log(2 * math.pi * 0.5), rel=1e-14)


def test_categorical_kernels_take_a_python_int_class_index():
    lik = Categorical()
    out = jnp.asarray(OUT[1])
    p = np.exp(OUT[1] - OUT[1].max())
    p /= p.sum()
    np.testing.assert_allclose(np.asarray(lik._output_grad(out, 2)), p - np.eye(4)[2],
                               rtol=1e-13, atol=1e-16)
    np.testing.assert_allclose(np.asarray(jax.grad(lik._nll)(out, 2)), p - np.eye(4)[2],
                               rtol=1e-13, atol=1e-16)
    assert float(lik._nll(out, 2)) == pytest.approx(-math.log(p[2]), rel=1e-13)


def test_mean_variance_nll_with_two_coordinates():
    out = np.array([[0.5, -1.0, 0.3, -0.7]])  # mu = (0.5, -1.0), s = (0.3, -0.7)
    y = np.array([[1.5, 0.0]])
    mu, s = out[0, :2], out[0, 2:]
    expected = np.sum(0.5 * (y[0] - mu) ** 2 * np.exp(-s) + 0.5 * s + 0.5 * math.log(2 * math.pi))
    assert float(GaussianMeanVariance().nll(out, y)[0]) == pytest.approx(expected, rel=1e-14)
    g = np.asarray(GaussianMeanVariance().output_hessian(out, y))[0]
    r = y[0] - mu
    expected_H = np.block([[np.diag(np.exp(-s)), np.diag(r * np.exp(-s))],
                           [np.diag(r * np.exp(-s)), np.diag(0.5 * r ** 2 * np.exp(-s))]])
    np.testing.assert_allclose(g, expected_H, rtol=1e-14)


@pytest.mark.parametrize("size", [0, -2, 3, True, 2.0, "4"])
def test_mean_variance_symbolic_size_check(size):
    with pytest.raises(ValueError, match=r"num_outputs for GaussianMeanVariance must be an even "
                                         r"int C = 2 D >= 2 \(\[means \| log-variances\]\), got "
                                         + re_repr(size)):
        GaussianMeanVariance().symbolic(size)


def re_repr(v):
    import re

    return re.escape(repr(v))


def test_mean_variance_symbolic_smallest_size():
    sym = GaussianMeanVariance().symbolic(2)
    assert len(sym.outputs) == 2


def test_poisson_sampling_at_the_largest_supported_log_rate():
    edge = np.array([[MAX_LOG_SAMPLING_RATE, 0.0]])
    draws = np.asarray(Poisson().sample(jax.random.key(0), edge, 4))
    assert draws.shape == (4, 1, 2) and np.all(np.isfinite(draws))
    assert np.all(draws >= 0) and np.all(draws == np.round(draws))
    above = np.array([[np.nextafter(MAX_LOG_SAMPLING_RATE, np.inf), 0.0]])
    with pytest.raises(ValueError, match=r"outputs for Poisson.sample must be log-rates <= "
                                         r"log\(10000\)"):
        Poisson().sample(jax.random.key(0), above, 1)


def test_poisson_targets_checks_name_the_first_bad_entry():
    y = np.array([[0.0, 2.0, 1.0, 0.0], [3.0, 0.5, 2.5, 1.0]])
    with pytest.raises(ValueError, match=r"got 0.5 at index \(1, 1\)"):
        Poisson().nll(OUT, y)


def test_bernoulli_boolean_targets_equal_float_targets():
    yb = np.array([[True, False, True, True], [False, False, True, False]])
    np.testing.assert_array_equal(np.asarray(Bernoulli().nll(OUT, yb)),
                                  np.asarray(Bernoulli().nll(OUT, yb.astype(np.float64))))
    f = jax.jit(lambda o, t: Bernoulli().nll(o, t))
    np.testing.assert_allclose(np.asarray(f(OUT, yb.astype(np.float64))),
                               np.asarray(Bernoulli().nll(OUT, yb)), rtol=1e-15)
