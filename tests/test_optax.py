"""fl.optax transformations equal fl.updates step for step (eager and under jax.jit)."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import fisherlab as fl

optax = pytest.importorskip("optax")

MODEL = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 3)])
LIK = fl.Categorical()
RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.normal(size=(10, 3)))
Y = jnp.asarray(RNG.integers(0, 3, size=10))


def loss(params, x, y):
    return jnp.mean(LIK.nll(jax.vmap(lambda xi: MODEL(params, xi))(x), y))


def flat(t):
    return np.asarray(ravel_pytree(t)[0])


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


CASES = [
    (lambda: fl.optax.natural_gradient(MODEL, LIK, lr=0.5, damping=1e-2),
     lambda p, x, y: fl.updates.natural_gradient(MODEL, p, x, y, LIK, lr=0.5, damping=1e-2)),
    (lambda: fl.optax.empirical_fisher(MODEL, LIK, lr=0.5, damping=1e-2),
     lambda p, x, y: fl.updates.empirical_fisher_update(MODEL, p, x, y, LIK, lr=0.5,
                                                        damping=1e-2)),
    (lambda: fl.optax.kfac(MODEL, LIK, lr=0.5, damping=1e-2),
     lambda p, x, y: fl.updates.kfac_update(MODEL, p, x, y, LIK, lr=0.5, damping=1e-2)),
    (lambda: fl.optax.kfac(MODEL, LIK, lr=0.5, damping=1e-2, method="factored"),
     lambda p, x, y: fl.updates.kfac_update(MODEL, p, x, y, LIK, lr=0.5, damping=1e-2,
                                            method="factored")),
]


@pytest.mark.parametrize("make_tx,reference", CASES)
@pytest.mark.parametrize("jit", [False, True])
def test_optax_matches_updates_step_for_step(make_tx, reference, jit):
    tx = make_tx()
    params_tx = params_ref = MODEL.init(jax.random.key(3))
    state = tx.init(params_tx)
    update = tx.update
    if jit:
        update = jax.jit(lambda g, s, p, x, y: tx.update(g, s, p, x=x, y=y))
    for step in range(3):
        xb, yb = X[3 * step: 3 * step + 6], Y[3 * step: 3 * step + 6]
        grads = jax.grad(loss)(params_tx, xb, yb)
        updates, state = (update(grads, state, params_tx, xb, yb) if jit
                          else update(grads, state, params_tx, x=xb, y=yb))
        params_tx = optax.apply_updates(params_tx, updates)
        delta = reference(params_ref, xb, yb)
        params_ref = jax.tree_util.tree_map(lambda a, b: a + b, params_ref, delta)
        assert rel(flat(params_tx), flat(params_ref)) < 1e-12, f"step {step}"


def test_kfac_ema_state_averages_factors():
    tx = fl.optax.kfac(MODEL, LIK, lr=0.5, damping=1e-2, decay=0.5)
    params = MODEL.init(jax.random.key(3))
    state = tx.init(params)
    grads = jax.grad(loss)(params, X[:5], Y[:5])
    _, state = tx.update(grads, state, params, x=X[:5], y=Y[:5])
    _, state = tx.update(grads, state, params, x=X[5:], y=Y[5:])
    f1 = fl.kfac.factors(MODEL, params, X[:5], Y[:5], LIK)
    f2 = fl.kfac.factors(MODEL, params, X[5:], Y[5:], LIK)
    for got, a, b in zip(state.factors, f1, f2):
        assert rel(np.asarray(got.A), 0.5 * np.asarray(a.A) + 0.5 * np.asarray(b.A)) < 1e-12
        assert rel(np.asarray(got.G), 0.5 * np.asarray(a.G) + 0.5 * np.asarray(b.G)) < 1e-12
    assert int(state.count) == 2


def test_chains_with_other_transforms():
    tx = optax.chain(fl.optax.natural_gradient(MODEL, LIK, lr=1.0, damping=1e-2),
                     optax.scale(0.5))
    params = MODEL.init(jax.random.key(3))
    state = tx.init(params)
    grads = jax.grad(loss)(params, X, Y)
    updates, _ = tx.update(grads, state, params, x=X, y=Y)
    ref = fl.updates.natural_gradient(MODEL, params, X, Y, LIK, lr=0.5, damping=1e-2)
    assert rel(flat(updates), flat(ref)) < 1e-12


def test_update_needs_params_and_batch():
    tx = fl.optax.natural_gradient(MODEL, LIK, lr=0.5, damping=1e-2)
    params = MODEL.init(jax.random.key(3))
    grads = jax.grad(loss)(params, X, Y)
    with pytest.raises(ValueError, match="needs params"):
        tx.update(grads, tx.init(params), None, x=X, y=Y)
    with pytest.raises(ValueError, match="x=... and y=..."):
        tx.update(grads, tx.init(params), params)


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="lr must be"):
        fl.optax.natural_gradient(MODEL, LIK, lr=0.0, damping=1e-2)
    with pytest.raises(ValueError, match="damping must be"):
        fl.optax.empirical_fisher(MODEL, LIK, lr=0.1, damping=-1.0)
    with pytest.raises(ValueError, match="decay must be None or a number"):
        fl.optax.kfac(MODEL, LIK, lr=0.1, damping=0.1, decay=2.0)
    with pytest.raises(ValueError, match="method must be one of"):
        fl.optax.kfac(MODEL, LIK, lr=0.1, damping=0.1, method="eigen")


def test_missing_optax_gives_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "optax", None)
    with pytest.raises(ImportError, match="pip install optax"):
        fl.optax.natural_gradient(MODEL, LIK, lr=0.1, damping=0.1)


def test_kfac_on_a_token_model_with_nested_params(nested_token_problem):
    """A transformer's params nest (Residual, MultiHeadAttention): the K-FAC transformation's
    step is ``-lr (K + damping I)^{-1} g`` of the dense K-FAC matrix, as fl.updates.kfac_update."""
    model, params, x, y = nested_token_problem
    g = fl.gradient(model, params, x, y, LIK)
    K = np.asarray(fl.kfac.matrix(fl.kfac.factors(model, params, x, y, LIK), model))
    want = -0.5 * np.linalg.solve(K + 0.1 * np.eye(len(g)), np.asarray(g))
    tx = fl.optax.kfac(model, LIK, lr=0.5, damping=0.1)
    _, unravel = ravel_pytree(params)
    step, _ = tx.update(unravel(g), tx.init(params), params, x=x, y=y)
    assert rel(flat(step), want) <= 1e-10


@pytest.mark.parametrize("name", ["natural_gradient", "empirical_fisher", "kfac"])
def test_token_mean_curvature(name):
    """tokens="flatten": the curvature of the mean over all N R tokens, so with the gradient of
    that loss each transformation equals its fl.updates step with tokens="flatten"."""
    model = fl.nn.Sequential([fl.nn.Embedding(5, 3), fl.nn.Tanh(), fl.nn.Dense(3, 4)])
    params = model.init(jax.random.key(0))
    x = np.array([[0, 1, 2], [3, 4, 0]])
    y = np.array([[0, 1, 3], [2, 1, 0]])
    kw = dict(lr=0.5, damping=0.1, tokens="flatten")
    tx = getattr(fl.optax, name)(model, LIK, **kw)
    ref = {"natural_gradient": fl.updates.natural_gradient,
           "empirical_fisher": fl.updates.empirical_fisher_update,
           "kfac": fl.updates.kfac_update}[name](model, params, x, y, LIK, **kw)
    g = fl.gradient(model, params, x, y, LIK, tokens="flatten")
    step, _ = tx.update(ravel_pytree(params)[1](g), tx.init(params), params, x=x, y=y)
    assert rel(flat(step), flat(ref)) <= 1e-10
