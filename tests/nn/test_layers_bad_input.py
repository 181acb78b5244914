"""fl.nn refuses bad input with a message naming the argument and what was expected."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fisherlab as fl

nn = fl.nn


# ---------------------------------------------------------------- token ids
def test_token_ids_out_of_range():
    emb = nn.Embedding(5, 2)
    params = emb.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"token ids must lie in 0\.\.4 \(num_embeddings = 5\), "
                                         r"got \[5\] out of range"):
        emb(params, jnp.asarray([0, 5, 1]))
    with pytest.raises(ValueError, match=r"must lie in 0\.\.4.*\[-1\]"):
        emb(params, np.array([-1, 2]))
    model = nn.Sequential([emb, nn.MeanPool()])
    with pytest.raises(ValueError, match=r"^x must lie in 0\.\.4"):
        model.check_inputs(np.array([[0, 1], [2, 7]]))


def test_token_ids_not_integers():
    emb = nn.Embedding(5, 2)
    params = emb.init(jax.random.key(0))
    with pytest.raises(TypeError, match=r"token ids must be integers .*got dtype float64"):
        emb(params, jnp.asarray([0.0, 1.0]))
    with pytest.raises(TypeError, match="must be integers .*got dtype bool"):
        emb(params, np.array([True, False]))
    # the dtype is static: refused under jit and vmap as well
    with pytest.raises(TypeError, match="must be integers"):
        jax.jit(lambda t: emb(params, t))(jnp.asarray([1.0]))
    model = nn.Sequential([emb, nn.MeanPool()])
    with pytest.raises(TypeError, match=r"^x must be integers"):
        model.check_inputs(np.array([[0.0, 1.0]]))


def test_out_of_range_id_under_a_transformation_is_nan_not_a_wrapped_row():
    emb = nn.Embedding(3, 2)
    (W,) = emb.init(jax.random.key(0))
    out = jax.vmap(lambda t: emb((W,), t))(jnp.asarray([[0, 3, -1, 2]]))[0]
    np.testing.assert_array_equal(out[0], W[0])
    np.testing.assert_array_equal(out[3], W[2])
    assert np.all(np.isnan(out[1])) and np.all(np.isnan(out[2]))  # -1 does not read row 2


def test_sequence_length_that_changes_within_a_batch():
    model = nn.Sequential([nn.Embedding(5, 2), nn.MeanPool()])
    with pytest.raises(ValueError, match=r"x: the sequence length changes within the batch: "
                                         r"x\[0\] has R = 2 tokens but x\[2\] has R = 3"):
        model.check_inputs([[1, 2], [0, 0], [1, 2, 3]])
    feats = nn.Sequential([nn.Dense(2, 2), nn.MeanPool()])
    with pytest.raises(ValueError, match="sequence length changes within the batch"):
        feats.check_inputs([np.ones((3, 2)), np.ones((4, 2))])
    with pytest.raises(ValueError, match=r"must share their shape.*\(3, 2\).*\(3, 5\)"):
        feats.check_inputs([np.ones((3, 2)), np.ones((3, 5))])
    # the control: equal lengths stack
    assert model.check_inputs([[1, 2], [0, 0]]).shape == (2, 2)


def test_check_inputs_last_axis_and_empty_batch():
    model = nn.Sequential([nn.LayerNorm(3), nn.MeanPool()])
    with pytest.raises(ValueError, match=r"x must have shape \(N, \.\.\., 3\).*got shape \(2, 4, 2\)"):
        model.check_inputs(np.ones((2, 4, 2)))
    with pytest.raises(ValueError, match="at least one example"):
        model.check_inputs(np.ones((0, 4, 3)))
    assert model.check_inputs(np.ones((2, 4, 3))).shape == (2, 4, 3)


# ---------------------------------------------------------------- attention
@pytest.mark.parametrize("d, heads", [(4, 3), (5, 2), (2, 4)])
def test_head_count_that_does_not_divide_d(d, heads):
    with pytest.raises(ValueError, match=f"num_heads = {heads} must divide d = {d}"):
        nn.MultiHeadAttention(d, heads)


def test_causal_attention_with_no_tokens():
    mha = nn.MultiHeadAttention(2, 1, causal=True)
    with pytest.raises(ValueError, match=r"causal attention needs at least one token \(R >= 1\), "
                                         r"got shape \(0, 2\)"):
        mha(mha.init(jax.random.key(0)), jnp.zeros((0, 2)))


def test_attention_options():
    with pytest.raises(TypeError, match="causal must be a bool"):
        nn.MultiHeadAttention(2, 1, causal=1)
    with pytest.raises(TypeError, match="num_heads"):
        nn.MultiHeadAttention(2, 1.0)


# ---------------------------------------------------------------- wrong last-axis size
@pytest.mark.parametrize("layer, shape, message", [
    (nn.Dense(3, 2), (4, 2), r"Dense\(in_features=3, out_features=2\) expects inputs whose last "
                             r"axis has in_features = 3 entries, got shape \(4, 2\)"),
    (nn.LayerNorm(3), (2, 4), r"LayerNorm\(d=3.*last axis has d = 3 entries, got shape \(2, 4\)"),
    (nn.RMSNorm(3), (5,), r"RMSNorm\(d=3.*last axis has d = 3 entries, got shape \(5,\)"),
    (nn.MultiHeadAttention(4, 2), (3, 2), r"expects one sequence of shape \(R, d\) = \(R, 4\), "
                                          r"got shape \(3, 2\)"),
    (nn.MultiHeadAttention(4, 2), (4,), r"shape \(R, d\) = \(R, 4\), got shape \(4,\)"),
])
def test_wrong_last_axis_size(layer, shape, message):
    params = layer.init(jax.random.key(0))
    with pytest.raises(ValueError, match=message):
        layer(params, jnp.ones(shape))
    with pytest.raises(ValueError, match=message):  # also when traced: shapes are static
        jax.jit(lambda a: layer(params, a))(jnp.ones(shape))


# ---------------------------------------------------------------- chaining and construction
@pytest.mark.parametrize("layers, message", [
    (lambda: [nn.Dense(2, 4), nn.LayerNorm(3)], r"widths do not chain: layers\[1\] is LayerNorm"
                                                r".*normalises 3 features, but the previous "
                                                r"layers produce 4"),
    (lambda: [nn.Embedding(5, 4), nn.MultiHeadAttention(2, 1)],
     r"layers\[1\] is MultiHeadAttention.*d = 2 features.*produce 4"),
    (lambda: [nn.Dense(2, 2), nn.Embedding(5, 2)], r"layers\[1\] is Embedding.*takes integer "
                                                   r"token ids"),
    (lambda: [nn.Embedding(5, 2), nn.Embedding(5, 2)], r"layers\[1\] is Embedding.*takes "
                                                       r"integer token"),
    (lambda: [nn.Residual(nn.Dense(2, 3))], r"layers\[0\] is Residual.*the block must keep the "
                                            r"shape of its input, but it maps 2 features to 3 "
                                            r"features"),
    (lambda: [nn.Dense(2, 3), nn.Residual(nn.Sequential([nn.LayerNorm(2), nn.Dense(2, 2)]))],
     r"widths do not chain: layers\[1\]\.block\.layers\[0\] is LayerNorm"),
    (lambda: [nn.LayerNorm(2), nn.Dense(3, 2)], r"widths do not chain: layers\[1\] is Dense"),
    (lambda: [nn.Embedding(3, 2), nn.Residual(nn.Sequential([nn.Embedding(3, 2)]))],
     r"layers\[1\]\.block\.layers\[0\] is Embedding"),
])
def test_layers_that_do_not_chain(layers, message):
    with pytest.raises(ValueError, match=message):
        nn.Sequential(layers())


def test_residual_call_checks_shape_when_unknown_statically():
    res = nn.Residual(nn.Flatten())
    with pytest.raises(ValueError, match=r"must keep the shape of its input, but it maps "
                                         r"\(2, 3\) to \(6,\)"):
        res(None, jnp.ones((2, 3)))
    with pytest.raises(TypeError, match="block must be a fisherlab.nn layer"):
        nn.Residual(lambda p, a: a)


@pytest.mark.parametrize("make, error, message", [
    (lambda: nn.LayerNorm(0), ValueError, "d"),
    (lambda: nn.LayerNorm(2, eps=0.0), ValueError, "eps must be a positive finite number"),
    (lambda: nn.LayerNorm(2, eps=float("nan")), ValueError, "eps must be a positive finite"),
    (lambda: nn.LayerNorm(2, elementwise_affine=1), TypeError, "elementwise_affine must be a bool"),
    (lambda: nn.RMSNorm(2, eps=-1e-6), ValueError, "eps must be a positive finite number"),
    (lambda: nn.RMSNorm(2.5), TypeError, "d"),
    (lambda: nn.Embedding(0, 2), ValueError, "num_embeddings"),
    (lambda: nn.GELU("fast"), ValueError, "approximate must be 'none' or 'tanh', got 'fast'"),
])
def test_bad_constructor_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_check_params_names_the_parameter_and_its_layout():
    model = nn.Sequential([nn.Embedding(5, 4), nn.Residual(nn.Sequential(
        [nn.LayerNorm(4), nn.MultiHeadAttention(4, 2)])), nn.RMSNorm(4)])
    params = model.init(jax.random.key(0))
    model.check_params(params)
    bad = [params[0], [params[1][0], (params[1][1][0].T,) + params[1][1][1:]], params[2]]
    with pytest.raises(ValueError, match=r"params\[1\]\[1\]\[0\] \(in_proj_weight\) must have "
                                         r"shape \(12, 4\) = \(3d, d\), got \(4, 12\)"):
        model.check_params(bad)
    with pytest.raises(ValueError, match=r"params\[2\] must be a \(weight,\) tuple for RMSNorm"):
        model.check_params([params[0], params[1], params[2] + params[2]])
    with pytest.raises(ValueError, match=r"params\[0\]\[0\] \(weight\) must have shape \(5, 4\) "
                                         r"= \(num_embeddings, d\)"):
        model.check_params([(params[0][0][:3],), params[1], params[2]])
    with pytest.raises(ValueError, match=r"params must be a list of 3 parameter tuples"):
        model.check_params(params[:2])
