"""fl.nn layers against PyTorch in float64: forward values, parameter order and layout.

Each test draws random parameters (not the initial values, which would hide a swapped weight and
bias), copies them into the PyTorch module through ``module.parameters()`` -- so a wrong order
or layout shows up as a shape mismatch or a different output -- and compares the outputs.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import fisherlab as fl

torch = pytest.importorskip("torch")

TOL = 1e-13  # float64, a few roundings of O(1) values


def _random_params(layer, seed):
    """Parameters of ``layer``'s structure, drawn N(0, 1) (every entry distinct)."""
    params = layer.init(jax.random.key(seed))
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    leaves = [jax.random.normal(k, l.shape, jnp.float64) for k, l in zip(keys, leaves)]
    return jax.tree_util.tree_unflatten(tree, leaves)


def _load_into(module, params):
    """Copy ``params`` into ``module.parameters()`` in order; shapes must match one to one."""
    leaves = jax.tree_util.tree_leaves(params)
    tparams = list(module.parameters())
    assert [tuple(p.shape) for p in tparams] == [tuple(l.shape) for l in leaves]
    with torch.no_grad():
        for p, l in zip(tparams, leaves):
            p.copy_(torch.from_numpy(np.array(l)))
    # the flat orders agree: ravel_pytree(params) is the concatenation of parameters()
    flat = np.concatenate([p.detach().numpy().ravel() for p in module.parameters()])
    np.testing.assert_array_equal(flat, np.asarray(ravel_pytree(params)[0]))


def _x(shape, seed=0, scale=1.0):
    return scale * np.asarray(jax.random.normal(jax.random.key(100 + seed), shape, jnp.float64))


def _close(ours, theirs):
    ours, theirs = np.asarray(ours), theirs.detach().numpy()
    assert ours.shape == theirs.shape
    err = np.max(np.abs(ours - theirs)) if ours.size else 0.0
    assert err < TOL * max(1.0, np.max(np.abs(theirs)) if theirs.size else 1.0), err


@pytest.mark.parametrize("affine, bias, eps", [(True, True, 1e-5), (True, False, 1e-3),
                                               (False, True, 0.5)])
def test_layernorm(affine, bias, eps):
    d = 5
    ours = fl.nn.LayerNorm(d, eps=eps, elementwise_affine=affine, bias=bias)
    theirs = torch.nn.LayerNorm(d, eps=eps, elementwise_affine=affine, bias=bias).double()
    params = _random_params(ours, 0) if affine else None
    if affine:
        _load_into(theirs, params)
    else:
        assert list(theirs.parameters()) == [] and ours.num_params == 0
    x = _x((3, d), scale=3.0) + 2.0  # a non-zero mean per token
    _close(ours(params, jnp.asarray(x)), theirs(torch.from_numpy(x)))
    _close(ours(params, jnp.asarray(x[0])), theirs(torch.from_numpy(x[0])))  # one vector


@pytest.mark.parametrize("eps", [None, 1e-6, 0.25])
def test_rmsnorm(eps):
    d = 4
    ours, theirs = fl.nn.RMSNorm(d, eps=eps), torch.nn.RMSNorm(d, eps=eps).double()
    params = _random_params(ours, 1)
    _load_into(theirs, params)
    x = _x((3, d), 1)
    x[1] *= 1e-8  # a tiny token, where eps matters (finfo(float64).eps by default, as torch)
    _close(ours(params, jnp.asarray(x)), theirs(torch.from_numpy(x)))


def test_rmsnorm_default_eps_is_the_input_dtype_epsilon():
    x = jnp.zeros((1, 2), jnp.float64).at[0, 0].set(1e-8)
    y = fl.nn.RMSNorm(2, elementwise_affine=False)(None, x)
    expected = 1e-8 / np.sqrt(1e-16 / 2 + np.finfo(np.float64).eps)
    np.testing.assert_allclose(y[0, 0], expected, rtol=1e-14)


def test_embedding():
    ours, theirs = fl.nn.Embedding(7, 3), torch.nn.Embedding(7, 3).double()
    params = _random_params(ours, 2)
    _load_into(theirs, params)
    t = np.array([6, 0, 3, 3])
    _close(ours(params, jnp.asarray(t)), theirs(torch.from_numpy(t)))


@pytest.mark.parametrize("d, heads, R, causal", [(4, 1, 3, False), (4, 2, 3, True),
                                                 (6, 3, 5, False), (6, 3, 5, True),
                                                 (2, 2, 1, True), (4, 4, 2, False)])
@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention(d, heads, R, causal, need_weights):
    ours = fl.nn.MultiHeadAttention(d, heads, causal=causal)
    theirs = torch.nn.MultiheadAttention(d, heads, batch_first=True).double()
    names = [n for n, _ in theirs.named_parameters()]
    assert names == ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    assert [n.replace(".", "_") for n in names] == [n for n, _, _ in ours.param_spec()]
    params = _random_params(ours, 3)
    _load_into(theirs, params)
    x = _x((R, d), 3)
    xt = torch.from_numpy(x)[None]
    mask = torch.triu(torch.ones(R, R, dtype=torch.bool), 1) if causal else None
    expected = theirs(xt, xt, xt, attn_mask=mask, need_weights=need_weights)[0][0]
    _close(ours(params, jnp.asarray(x)), expected)


def test_causal_mask_is_torchs_square_subsequent_mask():
    R = 4
    float_mask = torch.nn.Transformer.generate_square_subsequent_mask(R, dtype=torch.float64)
    allowed = np.asarray(fl.nn.MultiHeadAttention(2, 1, causal=True).mask(R))
    np.testing.assert_array_equal(allowed, float_mask.numpy() == 0)
    assert allowed[2, 1] and not allowed[1, 2]  # token 2 sees token 1, not the reverse


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu(approximate):
    x = np.linspace(-6.0, 6.0, 49)
    _close(fl.nn.GELU(approximate)(None, jnp.asarray(x)),
           torch.nn.GELU(approximate=approximate)(torch.from_numpy(x)))


def test_dense_on_tokens_is_linear_on_the_last_axis():
    ours, theirs = fl.nn.Dense(3, 2), torch.nn.Linear(3, 2).double()
    params = _random_params(ours, 4)
    _load_into(theirs, params)
    x = _x((5, 3), 4)
    _close(ours(params, jnp.asarray(x)), theirs(torch.from_numpy(x)))


class _TorchPreLN(torch.nn.Module):
    """x + MHA(LN(x)); x + MLP(LN(x)) -- the usual hand-written pre-LN block."""

    def __init__(self, d, heads, m, causal):
        super().__init__()
        self.ln1 = torch.nn.LayerNorm(d)
        self.attn = torch.nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln2 = torch.nn.LayerNorm(d)
        self.fc1, self.act, self.fc2 = torch.nn.Linear(d, m), torch.nn.GELU(), torch.nn.Linear(m, d)
        self.causal = causal

    def forward(self, x):
        R = x.shape[1]
        mask = torch.triu(torch.ones(R, R, dtype=torch.bool), 1) if self.causal else None
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.fc2(self.act(self.fc1(self.ln2(x))))


def _pre_ln(d, heads, m, causal):
    return [fl.nn.Residual(fl.nn.Sequential([fl.nn.LayerNorm(d),
                                             fl.nn.MultiHeadAttention(d, heads, causal=causal)])),
            fl.nn.Residual(fl.nn.Sequential([fl.nn.LayerNorm(d), fl.nn.Dense(d, m), fl.nn.GELU(),
                                             fl.nn.Dense(m, d)]))]


@pytest.mark.parametrize("causal", [False, True])
def test_pre_ln_transformer_block_with_embedding_and_head(causal):
    d, heads, m, vocab, C, R = 4, 2, 6, 9, 3, 5
    ours = fl.nn.Sequential([fl.nn.Embedding(vocab, d), *_pre_ln(d, heads, m, causal),
                             fl.nn.MeanPool(), fl.nn.Dense(d, C)])

    class TorchModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(vocab, d)
            self.block = _TorchPreLN(d, heads, m, causal)
            self.head = torch.nn.Linear(d, C)

        def forward(self, t):
            return self.head(self.block(self.emb(t)).mean(dim=1))

    theirs = TorchModel().double()
    params = _random_params(ours, 5)
    _load_into(theirs, params)
    assert ours.num_params == sum(p.numel() for p in theirs.parameters())
    t = np.array([[1, 8, 0, 3, 3]])
    _close(ours(params, jnp.asarray(t[0])), theirs(torch.from_numpy(t))[0])
    assert ours(params, jnp.asarray(t[0])).shape == (C,)


def test_initialisation_follows_pytorch_defaults():
    d = 64
    ln_w, ln_b = fl.nn.LayerNorm(d).init(jax.random.key(0))
    np.testing.assert_array_equal(ln_w, np.ones(d))
    np.testing.assert_array_equal(ln_b, np.zeros(d))
    np.testing.assert_array_equal(fl.nn.RMSNorm(d).init(jax.random.key(0))[0], np.ones(d))
    in_w, in_b, out_w, out_b = fl.nn.MultiHeadAttention(d, 4).init(jax.random.key(1))
    np.testing.assert_array_equal(in_b, np.zeros(3 * d))
    np.testing.assert_array_equal(out_b, np.zeros(d))
    xavier, kaiming = np.sqrt(6 / (4 * d)), 1 / np.sqrt(d)
    for w, bound in [(in_w, xavier), (out_w, kaiming)]:
        w = np.asarray(w)
        assert w.dtype == np.float64
        assert np.max(np.abs(w)) <= bound and np.max(np.abs(w)) > 0.95 * bound
        assert abs(np.std(w) - bound / np.sqrt(3)) < 0.1 * bound  # uniform: std = bound / sqrt 3
    # the bounds are PyTorch's own: compare with its initialiser's range on a large module
    t = torch.nn.MultiheadAttention(d, 4)
    assert np.max(np.abs(t.in_proj_weight.detach().numpy())) <= xavier
    assert np.max(np.abs(t.out_proj.weight.detach().numpy())) <= kaiming
    assert np.max(np.abs(t.out_proj.weight.detach().numpy())) > 0.95 * kaiming
    (E,) = fl.nn.Embedding(500, 40).init(jax.random.key(2))
    E = np.asarray(E)
    assert E.dtype == np.float64 and abs(E.mean()) < 0.02 and abs(E.std() - 1) < 0.02
