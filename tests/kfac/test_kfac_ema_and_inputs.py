"""``ema`` closed form, and every bad-input case of the K-FAC references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fisherlab as fl
from fisherlab.testing.references.kfac import mlp, targets_for


def _f(a, g):
    return fl.kfac.KFACFactors(jnp.full((2, 2), a), jnp.full((3, 3), g))


def test_ema_closed_form():
    old, new = [_f(1.0, 10.0), _f(2.0, 4.0)], [_f(3.0, 0.0), _f(2.0, 8.0)]
    out = fl.kfac.ema(old, new, 0.75)
    np.testing.assert_allclose(out[0].A, np.full((2, 2), 0.75 * 1 + 0.25 * 3))
    np.testing.assert_allclose(out[0].G, np.full((3, 3), 7.5))
    np.testing.assert_allclose(out[1].G, np.full((3, 3), 5.0))
    assert isinstance(out[0], fl.kfac.KFACFactors)
    np.testing.assert_array_equal(fl.kfac.ema(old, new, 0.0)[1].G, new[1].G)
    np.testing.assert_array_equal(fl.kfac.ema(old, new, 1.0)[0].A, old[0].A)


@pytest.mark.parametrize("decay", [-0.1, 1.5, float("nan")])
def test_ema_bad_decay(decay):
    with pytest.raises(ValueError, match="decay"):
        fl.kfac.ema([_f(1, 1)], [_f(2, 2)], decay)


def test_ema_structure_mismatch():
    with pytest.raises(ValueError, match="structure"):
        fl.kfac.ema([_f(1, 1)], [_f(2, 2), _f(2, 2)], 0.5)
    with pytest.raises(ValueError, match="shape"):
        fl.kfac.ema([_f(1, 1)], [fl.kfac.KFACFactors(jnp.ones((3, 3)), jnp.ones((3, 3)))], 0.5)


@pytest.fixture(scope="module")
def problem():
    model = mlp([3, 4, 2], fl.nn.Tanh)
    lik = fl.Categorical()
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (4, 3), jnp.float64)
    y = targets_for(lik, model, params, x, jax.random.key(2))
    return model, params, x, y, lik


def test_model_without_dense_layers(problem):
    _, _, x, y, lik = problem
    model = fl.nn.Sequential([fl.nn.Tanh()])
    with pytest.raises(ValueError, match="no layer with parameters"):
        fl.kfac.factors(model, [], x, y, lik)
    with pytest.raises(TypeError, match="Sequential"):
        fl.kfac.factors(lambda p, x: x, [], x, y, lik)


@pytest.mark.parametrize("kwargs, match", [
    (dict(fisher_type="true"), "fisher_type"),
    (dict(approx="mean"), "approx"),
    (dict(bias="none"), "bias"),
    (dict(fisher_type="mc"), "key"),
    (dict(fisher_type="mc", key=jax.random.key(0), num_samples=0), "num_samples"),
])
def test_bad_options(problem, kwargs, match):
    with pytest.raises(ValueError, match=match):
        fl.kfac.factors(*problem, **kwargs)


def test_bad_data(problem):
    model, params, x, y, lik = problem
    with pytest.raises(ValueError, match="y is required"):
        fl.kfac.factors(model, params, x, None, lik, fisher_type="empirical")
    with pytest.raises(ValueError, match="batch sizes differ"):
        fl.kfac.factors(model, params, x, y[:2], lik, fisher_type="empirical")
    with pytest.raises(ValueError, match="params"):
        fl.kfac.factors(model, params[:1], x, y, lik)
    with pytest.raises(ValueError, match="x must be finite"):
        fl.kfac.factors(model, params, x.at[0, 0].set(jnp.nan), y, lik)
    with pytest.raises(ValueError, match="model outputs"):  # Categorical needs C >= 2
        single = mlp([3, 1], fl.nn.Tanh)
        fl.kfac.factors(single, single.init(jax.random.key(0)), x, None, lik)
    with pytest.raises(TypeError, match="likelihood"):
        fl.kfac.factors(model, params, x, y, "categorical")
    with pytest.raises(TypeError, match="key"):
        fl.kfac.factors(model, params, x, y, lik, fisher_type="mc", key=3)


def test_matrix_bad_inputs(problem):
    model, params, x, y, lik = problem
    f = fl.kfac.factors(model, params, x, y, lik)
    with pytest.raises(ValueError, match="one entry per"):
        fl.kfac.matrix(f[:1], model)
    with pytest.raises(ValueError, match="bias="):
        fl.kfac.matrix(f, model, bias="separate")
    with pytest.raises(ValueError, match="bias"):
        fl.kfac.matrix(f, model, bias="both")
    with pytest.raises(ValueError, match="does not match layer"):
        fl.kfac.matrix([f[1], f[0]], model)


def test_factors_under_jit(problem):
    """The reference traces: jit over params/x gives the same numbers."""
    model, params, x, y, lik = problem
    eager = fl.kfac.factors(model, params, x, y, lik)
    jitted = jax.jit(lambda p, xx: fl.kfac.factors(model, p, xx, None, lik))(params, x)
    for a, b in zip(eager, jitted):
        np.testing.assert_allclose(a.A, b.A, rtol=1e-13)
        np.testing.assert_allclose(a.G, b.G, rtol=1e-13)


def test_float32_caller_still_gets_float64(problem, x32):
    model, params, x, y, lik = problem
    f = fl.kfac.factors(model, params, np.asarray(x, np.float32), y, lik)
    assert f[0].A.dtype == jnp.float64
    assert not jax.config.jax_enable_x64
