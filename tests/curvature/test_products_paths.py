"""The matrix-free products explain a non-finite product as the quantity they compute.

``fl.fisher_mc_vp`` multiplies by the Monte-Carlo Fisher, so when its product overflows the
explanation must bound the *sampled* output gradients (the labels drawn from the model), not
the closed-form output Fisher of ``fl.fisher_vp``. A Gaussian of variance ``1e-6`` makes the
sampled gradients ``(y_s - f) / sigma^2 = eps / sigma`` of size ``1e3`` (``eps`` standard
normal), and a vector of ``1e306`` then overflows float64.

``fl.empirical_fisher_vp`` with ``tokens="flatten"`` multiplies by the outer products of the
per-*token* gradients (the tokens are the examples), checked against those gradients written
out (``jax.jacrev`` of the explicit token losses) on ``N = 2`` sequences of ``R = 3`` tokens.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import fisherlab as fl
from curvature_cases import make_problem
from token_cases import IN, attention_model, attention_params

VARIANCE = 1e-6
F, PARAMS, X, _, _ = make_problem("gaussian", seed=1, n=6, in_features=3, hidden=4, outputs=3)
LIK = fl.Gaussian(variance=VARIANCE)
D = 3 * 4 + 4 + 4 * 3 + 3
V = jnp.full((D,), 1e306)


def test_fisher_mc_vp_overflow_is_explained_by_the_sampled_gradients():
    mv = fl.fisher_mc_vp(F, PARAMS, X, LIK, jax.random.key(0), 2)
    with pytest.raises(ValueError, match=r"^the fl\.fisher_mc_vp matvec: the result is not "
                                         r"finite") as info:
        mv(V)
    msg = str(info.value)
    bound = re.search(r"\|sampled grad_f l\| <= ([0-9.e+-]+)", msg)
    assert bound is not None, msg
    # |eps| / sigma for 12 standard normal draws eps: between 0.1 / sigma and 6 / sigma
    assert 0.1 / VARIANCE ** 0.5 < float(bound.group(1)) < 6 / VARIANCE ** 0.5
    assert "F_out" not in msg and "|v| <= 1.000e+306" in msg


def test_fisher_vp_overflow_is_explained_by_the_output_fisher():
    with pytest.raises(ValueError, match=r"^the fl\.fisher_vp matvec: the result is not "
                                         r"finite .*\|F_out\| <= 1\.000e\+06") as info:
        fl.fisher_vp(F, PARAMS, X, LIK)(V)  # F_out = I / sigma^2
    assert "sampled" not in str(info.value)


def test_empirical_fisher_vp_of_flattened_tokens_is_the_per_token_outer_product():
    n, r, c = 2, 3, 4
    params = attention_params(4, c)
    x = jnp.asarray(np.random.default_rng(4).normal(size=(n, r, IN)))
    y = jnp.asarray([[1, 0, 3], [2, 3, 3]])
    theta, unravel = ravel_pytree(params)

    @jax.jit
    def token_grads(th):  # (N R, d): gradients of -log softmax(o_r)[y_r], token by token
        def losses(th):
            outs = jax.vmap(lambda xn: attention_model(unravel(th), xn))(x)  # (N, R, C)
            return jax.nn.logsumexp(outs, axis=-1) - jnp.take_along_axis(
                outs, y[..., None], axis=-1)[..., 0]
        return jax.jacrev(losses)(th).reshape(n * r, -1)

    g = np.asarray(token_grads(theta))
    v = np.random.default_rng(5).normal(size=theta.shape[0])
    for reduction, w in (("mean", 1 / (n * r)), ("sum", 1.0)):
        got = fl.empirical_fisher_vp(attention_model, params, x, y, fl.Categorical(),
                                     reduction=reduction, tokens="flatten")(jnp.asarray(v))
        want = w * g.T @ (g @ v)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-14)
    # the sequences' outer products (tokens="sum") are another matrix
    seq = g.reshape(n, r, -1).sum(axis=1)
    got = fl.empirical_fisher_vp(attention_model, params, x, y, fl.Categorical(),
                                 reduction="sum")(jnp.asarray(v))
    np.testing.assert_allclose(np.asarray(got), seq.T @ (seq @ v), rtol=1e-10, atol=1e-14)
    assert np.linalg.norm(seq.T @ (seq @ v) - g.T @ (g @ v)) > 1e-3 * np.linalg.norm(g.T @ g @ v)
