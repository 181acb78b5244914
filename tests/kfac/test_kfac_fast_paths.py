"""The fast paths of ``fl.kfac.factors`` against the slow, obviously right computations.

* Categorical ``"exact"`` factors back-propagate ``C - 1`` columns of a reduced factor of
  ``F_out = diag(p) - p p^T`` instead of ``C``: the reduced factor reproduces ``F_out`` (ground
  truth: the closed form), the factors equal those of the full ``C``-column factor, and a spy
  shows which path ``fl.kfac.factors`` takes.
* Second moments from two column blocks (from 128 columns on) equal ``abar^T abar`` formed
  with NumPy, and layers that wide give the factors of the definition.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fisherlab as fl
from fisherlab.kfac import _cotangents, _factors, _inputs
from fisherlab.kfac._statistics import second_moment

F64 = jnp.float64


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), np.finfo(float).tiny))


def _closed_form_categorical_fisher(z):
    """``diag(p) - p p^T`` with the diagonal ``p_k sum_{j != k} p_j`` (no cancellation)."""
    p = np.exp(z - z.max())
    p /= p.sum()
    F = -np.outer(p, p)
    np.fill_diagonal(F, [p[k] * (p.sum() - p[k]) if p[k] < 0.5 else p[k] * np.delete(p, k).sum()
                         for k in range(len(p))])
    return F


@pytest.mark.parametrize("logits", [
    [0.3, -1.2, 2.0, 0.0],
    [40.0, 0.0, -3.0],  # saturated: p_0 = 1 - 4e-18
    [0.0, 0.0, 38.0],  # saturated on the last class, the reflection's pivot
    [-5.0, 5.0],
], ids=["generic", "saturated-first", "saturated-last", "binary"])
def test_reduced_categorical_factor_reproduces_the_output_fisher(logits):
    z = jnp.asarray(logits, F64)
    lik = fl.Categorical()
    M = np.asarray(_cotangents.output_factor(lik, z, reduced=True))
    F = _closed_form_categorical_fisher(np.asarray(logits))
    assert M.shape == (len(logits), len(logits) - 1)
    assert np.allclose(M @ M.T, F, rtol=0, atol=1e-15 * np.abs(F).max())
    # every diagonal entry p_k (1 - p_k) to full relative accuracy, also when it is ~1e-17
    np.testing.assert_allclose(np.diag(M @ M.T), np.diag(F), rtol=1e-13)


def _problem(N=6):
    model = fl.nn.Sequential([fl.nn.Dense(3, 5), fl.nn.Tanh(), fl.nn.Dense(5, 4)])
    params = [tuple(jnp.asarray(t, F64) for t in p) for p in model.init(jax.random.key(0))]
    x = jax.random.normal(jax.random.key(1), (N, 3), F64)
    return model, params, x


@pytest.mark.parametrize("approx, bias", [("expand", "augmented"), ("reduce", "separate")])
def test_reduced_and_full_categorical_factors_agree(approx, bias):
    model, params, x = _problem()
    lik = fl.Categorical()
    out = {}
    for reduced in (False, True):
        facs, flags = _factors._compute(model, params, lik, "exact", approx, bias, 1, reduced,
                                        x, None, None)
        assert bool(jnp.all(flags))
        out[reduced] = facs
    for full, red in zip(out[False], out[True]):
        assert _rel(red.A, full.A) == 0.0
        assert _rel(red.G, full.G) < 1e-14


@pytest.mark.parametrize("likelihood, fisher_type, reduced", [
    (fl.Categorical(), "exact", True),
    (fl.Categorical(), "mc", False),
    (fl.Categorical(), "empirical", False),
    (fl.Gaussian(), "exact", False),
])
def test_factors_takes_the_reduced_path_exactly_for_categorical_exact(
        monkeypatch, likelihood, fisher_type, reduced):
    model, params, x = _problem()
    y = jnp.zeros((x.shape[0],), jnp.int32) if isinstance(likelihood, fl.Categorical) else \
        jnp.zeros((x.shape[0], 4), F64)
    calls = []
    compute = _factors._compute

    def spy(*args):
        calls.append(args[7])  # the static ``reduced`` flag
        return compute(*args)

    monkeypatch.setattr(_factors, "_compute", spy)
    fl.kfac.factors(model, params, x, y, likelihood, fisher_type=fisher_type,
                    key=jax.random.key(0))
    assert calls == [reduced]
    assert _inputs.prepare(model, params, x, y, likelihood, fisher_type, jax.random.key(0),
                           1).reduced is reduced


@pytest.mark.parametrize("shape", [(7, 5), (9, 127), (6, 128), (11, 257)])
@pytest.mark.parametrize("augment", [False, True])
def test_second_moment_equals_the_numpy_product(shape, augment):
    a = np.random.default_rng(shape[1]).normal(size=shape)
    abar = np.concatenate([a, np.ones((shape[0], 1))], axis=1) if augment else a
    S, diagonal = second_moment(jnp.asarray(a), 3.0, augment=augment)
    np.testing.assert_allclose(S, abar.T @ abar / 3.0, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(diagonal, np.sum(abar ** 2, axis=0), rtol=1e-13)
    assert np.linalg.norm(S - S.T) <= 1e-15 * np.linalg.norm(S)


def test_wide_layers_give_the_factors_of_the_definition():
    """Layer 0 has 140 inputs and 130 outputs (both second moments split in two blocks):
    A_0 = abar^T abar / N from the inputs, G_0 = (1/N) sum_n g_n g_n^T with g_n the gradient
    of the example's loss with respect to s_0, taken through the model's own forward pass."""
    model = fl.nn.Sequential([fl.nn.Dense(140, 130), fl.nn.Tanh(), fl.nn.Dense(130, 4)])
    params = model.init(jax.random.key(3))
    N = 5
    x = jax.random.normal(jax.random.key(4), (N, 140), F64)
    y = jax.random.randint(jax.random.key(5), (N,), 0, 4)
    lik = fl.Categorical()
    (W0, b0), (W1, b1) = params

    def loss_of_s0(s0, yn):
        return lik._nll(W1 @ jnp.tanh(s0) + b1, yn)

    s0 = np.asarray(x @ W0.T + b0)
    g = np.stack([np.asarray(jax.grad(loss_of_s0)(jnp.asarray(s), yn)) for s, yn in zip(s0, y)])
    xbar = np.concatenate([np.asarray(x), np.ones((N, 1))], axis=1)
    f = fl.kfac.factors(model, params, x, y, lik, fisher_type="empirical")
    np.testing.assert_allclose(f[0].A, xbar.T @ xbar / N, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(f[0].G, g.T @ g / N, rtol=1e-12, atol=1e-16)
