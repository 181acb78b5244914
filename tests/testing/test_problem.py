"""fl.testing.Problem: the problem a candidate was computed on, and its references.

Ground truth: a naive loop over examples and tokens with ``jax.jacfwd`` over the flat
parameters and the closed-form softmax output Fisher ``diag(p) - p p^T``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import fisherlab as fl
from fisherlab.testing import Problem, relative_error

RTOL = 1e-12


def _token_problem():
    model = fl.nn.Sequential([fl.nn.Embedding(5, 2), fl.nn.Tanh(), fl.nn.Dense(2, 3)])
    params = model.init(jax.random.key(0))
    x = np.array([[0, 4, 2], [1, 1, 3]])  # (N, R) integer token ids
    y = np.array([[2, 0, 1], [0, 2, 2]])
    return model, params, x, y


def _naive_token_ggn(model, params, x):
    """tokens="sum", mean over the N sequences: (1/N) sum_n sum_r J_nr^T F_out J_nr."""
    flat, unravel = ravel_pytree(params)
    G = 0.0
    for xn in x:
        J = np.asarray(jax.jacfwd(lambda t: model(unravel(t), jnp.asarray(xn)))(flat))  # (R, C, d)
        out = np.asarray(model(params, jnp.asarray(xn)))
        for r in range(out.shape[0]):
            p = np.exp(out[r] - out[r].max()); p /= p.sum()
            G = G + J[r].T @ (np.diag(p) - np.outer(p, p)) @ J[r]
    return G / x.shape[0]


def test_token_model_with_integer_ids():
    """Integer token ids stay integers (an Embedding refuses float ids)."""
    model, params, x, y = _token_problem()
    P = Problem(model, params, x, y, fl.Categorical())
    assert jnp.issubdtype(P.x.dtype, jnp.integer)
    truth = _naive_token_ggn(model, params, x)
    assert relative_error(P.reference("ggn"), truth) <= RTOL
    assert relative_error(P.reference("fisher"), truth) <= RTOL


def test_options_reach_the_dense_references():
    """``reference(q, **options)`` passes the options on for every quantity: tokens="flatten"
    is the mean over the N R tokens (the sequence GGN divided by R), not silently "sum"."""
    model, params, x, y = _token_problem()
    P = Problem(model, params, x, y, fl.Categorical())
    truth = _naive_token_ggn(model, params, x)
    R = x.shape[1]
    assert relative_error(P.reference("ggn", tokens="flatten"), truth / R) <= RTOL
    assert relative_error(P.reference("ggn"), truth) <= RTOL  # the cache keeps them apart


def test_kfac_factor_of_a_norm_block_or_a_missing_block_is_named():
    """A LayerNorm's K-FAC block is exact (no A, G): asking for its factor names the block
    kind; a block index out of range names the range."""
    model = fl.nn.Sequential([fl.nn.Embedding(5, 2), fl.nn.LayerNorm(2), fl.nn.Dense(2, 3)])
    _, params, x, y = _token_problem()
    P = Problem(model, model.init(jax.random.key(1)), x, y, fl.Categorical())
    with pytest.raises(ValueError, match=r"block 1 is a ExactBlock .* no Kronecker factors"):
        P.reference("kfac_factor_A", layer=1)
    with pytest.raises(IndexError, match=r"layer must be a K-FAC block index in 0\.\.2, got 3"):
        P.reference("kfac_factor_G", layer=3)
    assert P.reference("kfac_factor_G", layer=2).shape == (3, 3)
