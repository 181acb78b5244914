"""The shared interface (``_base.Likelihood``): precision, identity, shapes, the Fisher factor."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from fisherlab import Bernoulli, Categorical, Gaussian, GaussianMeanVariance, Likelihood, Poisson

OUT = np.array([[0.1, -0.2, 0.3, 1.0], [1.0, 2.0, -1.0, 0.0]])
FAMILIES = [
    (Categorical(), np.array([0, 3])),
    (Gaussian(0.5), OUT * 0.5),
    (Bernoulli(), (OUT > 0).astype(float)),
    (Poisson(), np.round(np.abs(OUT) * 3)),
    (GaussianMeanVariance(), OUT[:, :2] + 0.25),
]
IDS = [type(f[0]).__name__ for f in FAMILIES]


@pytest.mark.parametrize("lik, targets", FAMILIES, ids=IDS)
def test_results_are_float64_under_x32_and_the_flag_is_restored(x32, lik, targets):
    assert not jax.config.jax_enable_x64
    for value in (lik.nll(OUT.astype(np.float32), targets), lik.output_fisher(OUT),
                  lik.output_hessian(OUT, targets), lik.output_fisher_sqrt(OUT)):
        assert value.dtype == jnp.float64
    assert not jax.config.jax_enable_x64
    # and equal to the float64 computation on the same (float32-rounded) inputs
    o32 = OUT.astype(np.float32).astype(np.float64)
    with jax.enable_x64(True):
        ref = jax.vmap(lik._nll)(jnp.asarray(o32), jnp.asarray(targets))
    np.testing.assert_allclose(lik.nll(OUT.astype(np.float32), targets), ref, rtol=1e-15)


@pytest.mark.parametrize("lik, targets", FAMILIES, ids=IDS)
def test_shapes(lik, targets):
    N, C = OUT.shape
    assert lik.nll(OUT, targets).shape == (N,)
    assert lik.output_fisher(OUT).shape == (N, C, C)
    assert lik.output_hessian(OUT, targets).shape == (N, C, C)
    assert lik.output_fisher_sqrt(OUT).shape == (N, C, C)
    draws = lik.sample(jax.random.key(0), OUT, 5)
    assert draws.shape == (5,) + np.shape(targets)
    # draws are valid targets of the family (accepted by the validation)
    lik.nll(OUT, np.asarray(draws[0]))


@pytest.mark.parametrize("lik, targets", FAMILIES, ids=IDS)
def test_fisher_factor_reproduces_the_fisher(lik, targets):
    M = lik.output_fisher_sqrt(OUT)
    F = lik.output_fisher(OUT)
    np.testing.assert_allclose(M @ jnp.swapaxes(M, 1, 2), F, rtol=1e-14, atol=1e-15)


def test_generic_fisher_factor_fallback():
    # the base-class default (eigh square root) for a family that gives only _output_fisher
    class Fixed(Gaussian):
        _output_fisher_sqrt = Likelihood._output_fisher_sqrt

        def _output_fisher(self, out):
            return jnp.asarray(F, dtype=out.dtype)

    # eigenvectors not symmetric (for [[2, 1], [1, 2]] they are, and V^T = V hides a dropped
    # transpose); the symmetric square root is unique, so scipy's sqrtm is a ground truth
    F = np.array([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]])
    M = np.asarray(Fixed().output_fisher_sqrt(np.zeros((1, 3)))[0])
    np.testing.assert_allclose(M @ M.T, F, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(M, M.T, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(M, scipy.linalg.sqrtm(F).real, rtol=1e-12, atol=1e-13)


def test_natural_flags():
    assert Categorical().natural and Gaussian().natural and Bernoulli().natural
    assert Poisson().natural and not GaussianMeanVariance().natural


def test_equality_hash_and_repr():
    assert Gaussian(0.5) == Gaussian(0.5) and hash(Gaussian(0.5)) == hash(Gaussian(0.5))
    assert Gaussian(0.5) != Gaussian(1.0)
    assert Categorical() == Categorical() and Categorical() != Bernoulli()
    assert repr(Gaussian(0.5)) == "Gaussian(variance=0.5)"
    assert repr(Poisson()) == "Poisson()"
    assert Gaussian(np.float32(0.5)).variance == 0.5
    assert isinstance(Gaussian(2).variance, float)
    # usable as a static jit argument
    f = jax.jit(lambda lik, o: jax.vmap(lik._output_fisher)(o), static_argnums=0)
    np.testing.assert_allclose(f(Gaussian(0.5), OUT)[0], 2.0 * np.eye(4), rtol=1e-15)


def test_equality_sees_subclass_state_so_cached_kernels_are_never_shared():
    """Equal likelihoods share compiled kernels (static jit arguments): a subclass that adds
    state without overriding ``_params`` must not compare equal across different states."""
    import jax.numpy as jnp

    import fisherlab as fl

    class ScaledGaussian(fl.Gaussian):
        def __init__(self, scale):
            super().__init__(1.0)
            self.scale = scale

        def _nll(self, out, t):
            return super()._nll(self.scale * out, t)

        def _output_fisher(self, out):
            return self.scale**2 * jnp.eye(out.shape[-1])

    assert ScaledGaussian(1.0) != ScaledGaussian(3.0)
    assert ScaledGaussian(2.0) == ScaledGaussian(2.0)
    assert hash(ScaledGaussian(2.0)) == hash(ScaledGaussian(2.0))
    assert fl.Gaussian(2.0) != fl.Gaussian(1.0) and fl.Gaussian() == fl.Gaussian()
    f = lambda p, x: p["W"] @ x  # noqa: E731
    x, p = np.array([[1.0, 0.5]]), {"W": np.array([[0.3, 0.2]])}
    one = np.asarray(fl.fisher(f, p, x, ScaledGaussian(1.0)))
    three = np.asarray(fl.fisher(f, p, x, ScaledGaussian(3.0)))
    # closed form: F = scale^2 x x^T for a linear model
    np.testing.assert_allclose(one, np.outer(x[0], x[0]), rtol=1e-14)
    np.testing.assert_allclose(three, 9.0 * np.outer(x[0], x[0]), rtol=1e-14)


@pytest.mark.parametrize("method", ["nll", "output_fisher", "output_hessian", "output_fisher_sqrt"])
def test_overflowing_results_raise_instead_of_returning_inf(method):
    # sqrt(F_out) = exp(eta / 2) overflows only past eta ~ 1420
    big = 1500.0 if method == "output_fisher_sqrt" else 710.0
    out, y = np.array([[1.0], [big]]), np.array([[1.0], [2.0]])
    args = (out, y) if method in ("nll", "output_hessian") else (out,)
    with pytest.raises(ValueError, match=rf"Poisson\.{method}: the result overflowed .* example 1"):
        getattr(Poisson(), method)(*args)
    # just below the float64 limit the closed forms are returned: F_out = exp(eta)
    np.testing.assert_allclose(np.asarray(Poisson().output_fisher(np.array([[700.0]])))[0, 0, 0],
                               np.exp(700.0), rtol=1e-14)
    gmv = np.array([[0.0, -710.0]])  # log-variance -710: precision exp(710) overflows
    with pytest.raises(ValueError, match="GaussianMeanVariance.output_fisher"):
        GaussianMeanVariance().output_fisher(gmv)
