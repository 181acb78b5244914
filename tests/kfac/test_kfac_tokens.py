"""K-FAC inside token models: embeddings, residual blocks, attention projections, norms.

Ground truth: the dense curvature from full Jacobians (``naive_ggn`` / ``naive_empirical_fisher``
of ``fisherlab.testing.references.kfac``) and ``fl.fisher_mc`` with the same key. Theory
(Eschenhagen et al. 2023; Martens & Grosse 2015):

* a deep linear token model (embedding, dense layers, residual additions) with a per-token
  Gaussian likelihood, every token its own loss term: K-FAC-expand equals the GGN blocks,
  K-FAC-reduce does not;
* the same layers before a mean over tokens (the reduce setting): K-FAC-reduce equals the GGN
  blocks, K-FAC-expand does not;
* one example with one token (N = 1, R = 1): every Kronecker block is exact for any model, and
  both flavours coincide -- for the exact, empirical and Monte-Carlo expectations;
* attention mixes tokens: no flavour is exact for R > 1;
* the LayerNorm / RMSNorm blocks are the layer's exact blocks (any N, R, tokens setting).

The block sizes in parameter order are written out by hand per model (not read from the
implementation).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fisherlab as fl
from fisherlab.kfac._layers import forward_with_offsets
from fisherlab.testing.references.kfac import naive_empirical_fisher, naive_ggn, rel_err

nn = fl.nn
V, D, C = 5, 3, 2


def _block_part(M, sizes):
    """``M`` with every entry outside the diagonal blocks of ``sizes`` zeroed."""
    M = np.asarray(M)
    out, start = np.zeros_like(M), 0
    assert sum(sizes) == M.shape[0]
    for s in sizes:
        out[start:start + s, start:start + s] = M[start:start + s, start:start + s]
        start += s
    return out


def _tokens(seed, N, R):
    return jax.random.randint(jax.random.key(seed), (N, R), 0, V)


def _gaussian_targets(model, params, x, seed):
    out = jax.vmap(lambda xn: model(params, xn))(x)
    return jax.random.normal(jax.random.key(seed + 7), out.shape, jnp.float64)


# ------------------------------------------------------------------ deep linear token models
# Embedding (V D), Residual(Dense(D, D)) (D (D + 1)), Dense(D, C) (C (D + 1))
LINEAR_SIZES = [V * D, D * (D + 1), C * (D + 1)]


def _linear_token_model():
    return nn.Sequential([nn.Embedding(V, D), nn.Residual(nn.Dense(D, D)), nn.Dense(D, C)])


def _pooled_model():
    # the same layers, mean over tokens before the head: the reduce setting
    return nn.Sequential([nn.Embedding(V, D), nn.Residual(nn.Dense(D, D)), nn.MeanPool(),
                          nn.Dense(D, C)])


@pytest.mark.parametrize("seed", [0, 1])
def test_expand_is_exact_for_a_linear_token_model(seed):
    model, lik = _linear_token_model(), fl.Gaussian(variance=0.7)
    params = model.init(jax.random.key(seed))
    x = _tokens(seed + 1, 4, 3)
    y = _gaussian_targets(model, params, x, seed)
    B = _block_part(naive_ggn(model, params, x, lik), LINEAR_SIZES)
    K_exp = fl.kfac.matrix(fl.kfac.factors(model, params, x, y, lik, approx="expand"), model)
    K_red = fl.kfac.matrix(fl.kfac.factors(model, params, x, y, lik, approx="reduce"), model)
    assert rel_err(K_exp, B) < 1e-12
    assert rel_err(K_red, B) > 1e-2  # the counterexample: reduce is not exact here
    # tokens="flatten" (the mean over the N R tokens) is the GGN of fl.ggn(tokens="flatten")
    K_flat = fl.kfac.matrix(fl.kfac.factors(model, params, x, y, lik, tokens="flatten"), model)
    G_flat = fl.ggn(model, params, x, y, lik, tokens="flatten")
    assert rel_err(K_flat, _block_part(G_flat, LINEAR_SIZES)) < 1e-12


def test_expand_input_factor_of_the_embedding_is_the_token_frequencies():
    model, lik = _linear_token_model(), fl.Gaussian()
    params = model.init(jax.random.key(0))
    x = jnp.asarray([[0, 1, 1], [4, 1, 0]])
    A = fl.kfac.factors(model, params, x, None, lik)[0].A
    np.testing.assert_allclose(A, np.diag([2, 3, 0, 0, 1]) / 6.0, rtol=0, atol=1e-15)


@pytest.mark.parametrize("seed", [0, 1])
def test_reduce_is_exact_for_a_pooled_linear_token_model(seed):
    model, lik = _pooled_model(), fl.Gaussian(variance=0.7)
    params = model.init(jax.random.key(seed))
    x = _tokens(seed + 1, 4, 3)
    y = _gaussian_targets(model, params, x, seed)
    B = _block_part(naive_ggn(model, params, x, lik), LINEAR_SIZES)
    K_red = fl.kfac.matrix(fl.kfac.factors(model, params, x, y, lik, approx="reduce"), model)
    K_exp = fl.kfac.matrix(fl.kfac.factors(model, params, x, y, lik, approx="expand"), model)
    assert rel_err(K_red, B) < 1e-12
    assert rel_err(K_exp, B) > 1e-2  # the counterexample: expand is not exact here


# ------------------------------------------------------------------ a pre-LN transformer
M_HIDDEN = 4


def _transformer(causal=True):
    d = D + 1
    blocks = [nn.Residual(nn.Sequential([nn.LayerNorm(d), nn.MultiHeadAttention(d, 2,
                                                                               causal=causal)])),
              nn.Residual(nn.Sequential([nn.RMSNorm(D + 1), nn.Dense(D + 1, M_HIDDEN), nn.GELU(),
                                         nn.Dense(M_HIDDEN, D + 1)]))]
    return nn.Sequential([nn.Embedding(V, D + 1), *blocks, nn.Dense(D + 1, C + 1)])


def _transformer_sizes():
    d = D + 1
    return [V * d, 2 * d, 3 * d * (d + 1), d * (d + 1), d, M_HIDDEN * (d + 1),
            d * (M_HIDDEN + 1), (C + 1) * (d + 1)]


def _transformer_problem(seed, N, R):
    model, lik = _transformer(), fl.Categorical()
    params = model.init(jax.random.key(seed))
    # move the norms off their initial values so their blocks are generic
    params = jax.tree_util.tree_map(
        lambda p: p + 0.3 * jax.random.normal(jax.random.key(seed + 3), p.shape, p.dtype), params)
    x = _tokens(seed + 1, N, R)
    y = jax.random.randint(jax.random.key(seed + 2), (N, R), 0, C + 1)
    return model, params, x, y, lik


def test_forward_with_offsets_reproduces_the_model():
    model, params, x, _, _ = _transformer_problem(0, 2, 3)
    for xn in x:
        out, _ = forward_with_offsets(model, params, xn, None)
        np.testing.assert_allclose(out, model(params, xn), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("approx", ["expand", "reduce"])
def test_one_example_one_token_is_exact_for_every_expectation(approx):
    model, params, x, y, lik = _transformer_problem(4, 1, 1)
    sizes = _transformer_sizes()
    key = jax.random.key(9)
    truths = {
        "exact": naive_ggn(model, params, x, lik),
        "empirical": naive_empirical_fisher(model, params, x, y, lik),
        "mc": fl.fisher_mc(model, params, x, lik, key, num_samples=3),
    }
    for fisher_type, dense in truths.items():
        f = fl.kfac.factors(model, params, x, y, lik, fisher_type=fisher_type, approx=approx,
                            key=key, num_samples=3)
        K = fl.kfac.matrix(f, model)
        assert rel_err(K, _block_part(dense, sizes)) < 1e-11, fisher_type


def test_attention_breaks_exactness_for_several_tokens():
    model, params, x, y, lik = _transformer_problem(5, 1, 3)
    B = _block_part(naive_ggn(model, params, x, lik), _transformer_sizes())
    for approx in ("expand", "reduce"):
        K = fl.kfac.matrix(fl.kfac.factors(model, params, x, y, lik, approx=approx), model)
        assert rel_err(K, B) > 1e-3


@pytest.mark.parametrize("tokens", ["sum", "flatten"])
def test_norm_blocks_are_the_exact_blocks(tokens):
    model, params, x, y, lik = _transformer_problem(6, 3, 3)
    sizes = _transformer_sizes()
    starts = np.cumsum([0] + sizes)
    R = x.shape[1]
    scale = 1.0 / R if tokens == "flatten" else 1.0
    cases = [("exact", scale * naive_ggn(model, params, x, lik))]
    if tokens == "sum":  # the sequence's gradient: the empirical Fisher of l_n = sum_r l_{n,r}
        cases.append(("empirical", naive_empirical_fisher(model, params, x, y, lik)))
        key = jax.random.key(2)
        cases.append(("mc", fl.fisher_mc(model, params, x, lik, key, num_samples=2)))
    for fisher_type, dense in cases:
        f = fl.kfac.factors(model, params, x, y, lik, fisher_type=fisher_type, tokens=tokens,
                            key=jax.random.key(2), num_samples=2)
        for k in (1, 4):  # LayerNorm (weight, bias) and RMSNorm (weight,)
            assert isinstance(f[k], fl.kfac.ExactBlock)
            s = slice(starts[k], starts[k + 1])
            np.testing.assert_allclose(f[k].B, dense[s, s], rtol=1e-11, atol=1e-13,
                                       err_msg=fisher_type)


def test_flatten_is_sum_divided_by_the_token_count():
    model, params, x, y, lik = _transformer_problem(7, 2, 3)
    for fisher_type in ("exact", "empirical"):
        f_sum = fl.kfac.factors(model, params, x, y, lik, fisher_type=fisher_type)
        f_flat = fl.kfac.factors(model, params, x, y, lik, fisher_type=fisher_type,
                                 tokens="flatten")
        np.testing.assert_allclose(fl.kfac.matrix(f_flat, model),
                                   fl.kfac.matrix(f_sum, model) / 3, rtol=1e-12, atol=1e-15)


def test_flatten_draws_one_key_per_token():
    """With R = 1 the flattened draw ``split(key, N R)[n R + r]`` is the per-example draw."""
    model, params, x, y, lik = _transformer_problem(8, 3, 1)
    key = jax.random.key(4)
    a = fl.kfac.factors(model, params, x, y, lik, fisher_type="mc", key=key)
    b = fl.kfac.factors(model, params, x, y, lik, fisher_type="mc", key=key, tokens="flatten")
    np.testing.assert_allclose(fl.kfac.matrix(a, model), fl.kfac.matrix(b, model),
                               rtol=1e-13, atol=1e-15)


# ------------------------------------------------------------------ bad input
class _Scale(nn.Layer):
    """A layer with a parameter that K-FAC does not know."""

    has_params = True

    def param_spec(self):
        return (("s", (1,), ""),)

    def init(self, key):
        return (jnp.ones((1,), jnp.float64),)

    def __call__(self, params, a):
        return params[0] * a

    def __hash__(self):
        return 1

    def __eq__(self, other):
        return isinstance(other, _Scale)

    def __repr__(self):
        return "_Scale()"


def test_unsupported_layer_is_named():
    model = nn.Sequential([nn.Dense(2, 2), nn.Residual(nn.Sequential([_Scale()])), nn.Dense(2, 1)])
    params = model.init(jax.random.key(0))
    x = jnp.ones((2, 2))
    with pytest.raises(TypeError, match=r"layers\[1\]\.block\.layers\[0\] = _Scale\(\)"):
        fl.kfac.factors(model, params, x, None, fl.Gaussian())


def test_ekfac_refuses_norm_and_embedding_blocks_by_name():
    model, params, x, y, lik = _transformer_problem(0, 2, 2)
    with pytest.raises(TypeError, match=r"ekfac does not support model\.layers\[0\] = Embedding"):
        fl.kfac.ekfac(model, params, x, y, lik)


def test_bad_tokens_option():
    model, params, x, y, lik = _transformer_problem(0, 2, 2)
    with pytest.raises(ValueError, match="tokens"):
        fl.kfac.factors(model, params, x, y, lik, tokens="mean")


def test_token_ids_out_of_range():
    model, params, x, y, lik = _transformer_problem(0, 2, 2)
    with pytest.raises(ValueError, match="0..4"):
        fl.kfac.factors(model, params, x.at[0, 0].set(V), y, lik)


def test_factor_list_of_the_wrong_kind_is_refused():
    model, params, x, y, lik = _transformer_problem(0, 2, 2)
    f = fl.kfac.factors(model, params, x, y, lik)
    f[1] = fl.kfac.KFACFactors(np.eye(2), np.eye(2))
    with pytest.raises(ValueError, match=r"factors\[1\] must be an ExactBlock for layers\[1\]"):
        fl.kfac.matrix(f, model)
