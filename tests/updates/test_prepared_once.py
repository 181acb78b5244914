"""Each update validates and casts its problem once: the gradient and the curvature of a step are
computed on the same prepared problem (counted at the parameter check every preparation runs)."""

import jax
import jax.numpy as jnp
import pytest

import fisherlab as fl
from fisherlab.curvature import _problem

MODEL = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 2)])
PARAMS = MODEL.init(jax.random.key(0))
X = jax.random.normal(jax.random.key(1), (5, 3))
Y = jnp.array([0, 1, 1, 0, 1])
LIK = fl.Categorical()


@pytest.fixture
def preparations(monkeypatch):
    calls = []
    check_params = _problem.check_params

    def counting(params, name="params"):
        calls.append(name)
        return check_params(params, name)

    monkeypatch.setattr(_problem, "check_params", counting)
    return calls


STEPS = {
    "natural_gradient": lambda: fl.updates.natural_gradient(
        MODEL, PARAMS, X, Y, LIK, lr=1.0, damping=1e-3),
    "natural_gradient_mc": lambda: fl.updates.natural_gradient(
        MODEL, PARAMS, X, Y, LIK, lr=1.0, damping=1e-3, fisher_type="mc",
        key=jax.random.key(2), num_samples=2),
    "empirical_fisher_update": lambda: fl.updates.empirical_fisher_update(
        MODEL, PARAMS, X, Y, LIK, lr=1.0, damping=1e-3),
    "newton": lambda: fl.updates.newton(MODEL, PARAMS, X, Y, LIK, lr=1.0, damping=1e-3),
    "gauss_newton": lambda: fl.updates.gauss_newton(MODEL, PARAMS, X, Y, LIK, lr=1.0,
                                                    damping=1e-3),
    "hessian_free": lambda: fl.updates.hessian_free(MODEL, PARAMS, X, Y, LIK, lr=1.0,
                                                    damping=1e-3, maxiter=3),
    "diagonal_update": lambda: fl.updates.diagonal_update(MODEL, PARAMS, X, Y, LIK, lr=1.0,
                                                          damping=1e-3),
}


@pytest.mark.parametrize("name", sorted(STEPS))
def test_step_prepares_its_problem_once(name, preparations):
    STEPS[name]()
    assert preparations == ["params"]


def test_counter_sees_every_preparation(preparations):
    # the control: the gradient and the Fisher computed separately prepare the problem twice
    fl.gradient(MODEL, PARAMS, X, Y, LIK)
    fl.fisher(MODEL, PARAMS, X, LIK)
    assert preparations == ["params", "params"]
