"""Token models built from fl.nn: structure, parameter nesting and order, derivatives."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import fisherlab as fl

nn = fl.nn


def _block(d, heads, m, causal=False):
    return [nn.Residual(nn.Sequential([nn.LayerNorm(d), nn.MultiHeadAttention(d, heads,
                                                                             causal=causal)])),
            nn.Residual(nn.Sequential([nn.LayerNorm(d), nn.Dense(d, m), nn.GELU(),
                                       nn.Dense(m, d)]))]


def test_nested_parameters_flatten_in_layer_order():
    d, heads, m = 4, 2, 3
    model = nn.Sequential([nn.Embedding(6, d), *_block(d, heads, m), nn.RMSNorm(d),
                           nn.MeanPool(), nn.Dense(d, 2)])
    params = model.init(jax.random.key(0))
    model.check_params(params)
    shapes = [tuple(p.shape) for p in jax.tree_util.tree_leaves(params)]
    assert shapes == [(6, d),                                   # embedding
                      (d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,),  # LN1, attention
                      (d,), (d,), (m, d), (m,), (d, m), (d,),   # LN2, MLP
                      (d,),                                     # RMSNorm
                      (2, d), (2,)]                             # head
    assert model.num_params == ravel_pytree(params)[0].size == sum(
        int(np.prod(s)) for s in shapes)
    assert isinstance(params[1], list) and isinstance(params[1][1], tuple)
    assert model.in_features is None and model.out_features == 2
    assert nn.Sequential(_block(d, heads, m)).in_features == d


def test_layers_without_parameters_own_no_entry():
    model = nn.Sequential([nn.LayerNorm(3, elementwise_affine=False), nn.Dense(3, 2),
                           nn.Residual(nn.GELU("tanh")), nn.MeanPool()])
    params = model.init(jax.random.key(0))
    assert len(params) == 1 and model.num_params == 8
    assert model.param_layers == (model.layers[1],)
    x = jax.random.normal(jax.random.key(1), (4, 3), jnp.float64)
    h = model.layers[1](params[0], model.layers[0](None, x))
    np.testing.assert_allclose(model(params, x), jnp.mean(h + jax.nn.gelu(h), axis=0),
                               rtol=1e-14)


def test_residual_adds_its_input():
    res = nn.Residual(nn.Dense(2, 2))
    W, b = res.init(jax.random.key(0))
    x = jnp.asarray([[1.0, -2.0], [0.5, 3.0]])
    np.testing.assert_allclose(res((W, b), x), x + x @ W.T + b, rtol=1e-15)


def test_layers_compare_and_hash_by_value():
    a = nn.Sequential(_block(4, 2, 3, causal=True))
    assert a == nn.Sequential(_block(4, 2, 3, causal=True))
    assert hash(a) == hash(nn.Sequential(_block(4, 2, 3, causal=True)))
    assert a != nn.Sequential(_block(4, 2, 3, causal=False))
    assert nn.GELU() != nn.GELU("tanh") and nn.LayerNorm(2) != nn.RMSNorm(2)


def test_causal_attention_has_finite_second_derivatives_and_ignores_the_future():
    mha = nn.MultiHeadAttention(2, 2, causal=True)
    params = mha.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (3, 2), jnp.float64)
    flat, unravel = ravel_pytree(params)
    H = jax.hessian(lambda p: jnp.sum(jnp.sin(mha(unravel(p), x))))(flat)
    assert np.all(np.isfinite(H))
    # token 0 sees only itself: changing tokens 1, 2 leaves its output unchanged
    y0 = mha(params, x)[0]
    np.testing.assert_array_equal(mha(params, x.at[1:].set(7.0))[0], y0)
    # without the mask it does change
    full = nn.MultiHeadAttention(2, 2)
    assert not np.allclose(full(params, x.at[1:].set(7.0))[0], full(params, x)[0])


def test_token_model_is_a_valid_f_for_the_dense_references():
    d = 2
    model = nn.Sequential([nn.Embedding(4, d), *_block(d, 1, 2), nn.MeanPool(), nn.Dense(d, 3)])
    params = model.init(jax.random.key(0))
    x = jnp.asarray([[0, 3, 1], [2, 2, 0]])
    y = jnp.asarray([2, 0])
    G = fl.ggn(model, params, x, y, fl.Categorical())
    assert G.shape == (model.num_params,) * 2 and np.all(np.isfinite(G))
    np.testing.assert_allclose(G, G.T, atol=1e-14)


@pytest.mark.parametrize("layer", [nn.LayerNorm(3), nn.RMSNorm(3), nn.GELU(), nn.Dense(3, 3)])
def test_norms_and_activations_act_per_token(layer):
    params = layer.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (4, 3), jnp.float64)
    out = layer(params, x)
    for r in range(4):
        np.testing.assert_allclose(out[r], layer(params, x[r]), rtol=1e-14)


@pytest.mark.parametrize("layers, x", [
    ([nn.Embedding(4, 2), nn.MeanPool(), nn.Dense(2, 2)], np.array([[0, 3], [1, 2]])),
    ([nn.LayerNorm(2), nn.Dense(2, 2)], np.ones((2, 2))),
    ([nn.Dense(2, 2), nn.RMSNorm(2), nn.Dense(2, 2)], np.ones((2, 2))),
    ([nn.Dense(2, 2), nn.GELU(), nn.Dense(2, 2)], np.ones((2, 2))),
    ([nn.Residual(nn.Dense(2, 2)), nn.Dense(2, 2)], np.ones((2, 2))),
])
def test_the_layerwise_fast_path_refuses_token_layers(layers, x):
    """The Kronecker-structured GGN path is for Dense + Tanh/Sigmoid/ReLU/Identity only."""
    from fisherlab.curvature import _layerwise

    model = nn.Sequential(layers)
    params = model.init(jax.random.key(0))
    assert not _layerwise.supports(model, params, jnp.asarray(x))
    y = np.array([0, 1])
    with pytest.raises(ValueError, match="method='layerwise' needs f to be a fisherlab.nn."
                                         "Sequential of Dense layers and elementwise"):
        fl.ggn(model, params, x, y, fl.Categorical(), method="layerwise")
    # the default path gives the generic (Jacobian) result
    G = fl.ggn(model, params, x, y, fl.Categorical())
    np.testing.assert_allclose(G, fl.ggn(model, params, x, y, fl.Categorical(),
                                         method="jacobian"), rtol=1e-13, atol=1e-15)
