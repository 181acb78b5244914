"""Per-example statistics with several output-position axes: the Monte-Carlo labels of
``tokens="flatten"`` come from one key per position, counted over every position axis."""

import jax
import jax.numpy as jnp
import numpy as np

import fisherlab as fl
from fisherlab.testing.references.kfac import rel_err


def test_mc_flatten_labels_split_the_key_over_every_position_axis():
    """Outputs ``(N, 2, 3, C)``: ``Q = 6`` positions per example (both axes), and position
    ``q`` (row-major) of example ``n`` draws ``likelihood.sample(split(key, N Q)[n Q + q], f_nq,
    1)``, so the mc factors are the empirical factors at those labels. N = 4, C = 5 and the
    position axes 2 and 3 all differ, so counting one axis only draws other keys."""
    N, C = 4, 5
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, C)])
    params = model.init(jax.random.key(0))
    lik = fl.Categorical()
    x = jax.random.normal(jax.random.key(1), (N, 2, 3, 3), jnp.float64)
    key = jax.random.key(6)
    outs = np.asarray(jax.vmap(lambda xn: model(params, xn))(x))
    assert outs.shape == (N, 2, 3, C)
    # likelihood.sample draws row m of its (M, C) outputs with split(key, M)[m]: the N Q
    # positions in row-major order as rows give position q of example n the key n Q + q
    y = np.asarray(lik.sample(key, outs.reshape((N * 6, C)), 1)[0]).reshape((N, 2, 3))
    assert len(np.unique(y)) > 1
    mc = fl.kfac.factors(model, params, x, None, lik, fisher_type="mc", key=key,
                         tokens="flatten")
    emp = fl.kfac.factors(model, params, x, jnp.asarray(y), lik, fisher_type="empirical",
                          tokens="flatten")
    for a, b in zip(mc, emp):
        assert rel_err(a.G, b.G) < 1e-13 and rel_err(a.A, b.A) == 0.0
