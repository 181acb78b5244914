"""fl.testing.equinox: references for Equinox models in Equinox's parameter order and layout.

Ground truth is computed here without the adapter and without fisherlab's kernels: the model is
rebuilt from a flat vector with ``eqx.combine``, applied with ``jax.vmap`` over the batch, the
categorical loss written out (``logsumexp(o) - o[y]``), the GGN ``J^T Lambda J`` with
``jax.jacrev`` and ``jax.hessian``, the empirical Fisher from ``jax.jacrev`` of the per-token
losses.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import fisherlab as fl

eqx = pytest.importorskip("equinox")
from fisherlab.testing import equinox as fle  # noqa: E402

RTOL = 1e-10
N, R, D, C = 3, 3, 4, 3


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


class TokenBlock(eqx.Module):
    """Pre-LN self-attention block with a per-token head: one sequence (R, D) -> (R, C)."""

    norm1: eqx.nn.LayerNorm
    attn: eqx.nn.MultiheadAttention
    norm2: eqx.nn.LayerNorm
    mlp: eqx.nn.MLP
    head: eqx.nn.Linear

    def __init__(self, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.norm1 = eqx.nn.LayerNorm(D, dtype=jnp.float64)
        self.attn = eqx.nn.MultiheadAttention(2, D, use_query_bias=True, use_output_bias=True,
                                              key=k1, dtype=jnp.float64)
        self.norm2 = eqx.nn.LayerNorm(D, dtype=jnp.float64)
        self.mlp = eqx.nn.MLP(D, D, 8, 1, activation=jax.nn.gelu, key=k2, dtype=jnp.float64)
        self.head = eqx.nn.Linear(D, C, key=k3, dtype=jnp.float64)

    def __call__(self, x):
        h = jax.vmap(self.norm1)(x)
        x = x + self.attn(h, h, h)
        x = x + jax.vmap(self.mlp)(jax.vmap(self.norm2)(x))
        return jax.vmap(self.head)(x)


def _perturbed(model, seed):
    params, static = eqx.partition(model, eqx.is_inexact_array)
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    leaves = [l + 0.3 * jax.random.normal(k, l.shape, l.dtype) for l, k in zip(leaves, keys)]
    return eqx.combine(jax.tree_util.tree_unflatten(tree, leaves), static)


@pytest.mark.parametrize("tokens", ["sum", "flatten"])
def test_token_block_equals_the_written_loss(tokens):
    model = _perturbed(TokenBlock(jax.random.key(0)), 1)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(N, R, D)))
    y = jnp.asarray(rng.integers(0, C, size=(N, R)))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    theta, unravel = ravel_pytree(params)

    def outs(th):
        return jax.vmap(eqx.combine(unravel(th), static))(x)

    def token_losses(o):
        return jax.nn.logsumexp(o, axis=-1) - jnp.take_along_axis(o, y[..., None], -1)[..., 0]

    w = 1.0 / (N * R) if tokens == "flatten" else 1.0 / N
    J = jax.jacrev(outs)(theta)
    lam = jax.hessian(lambda o: jnp.sum(token_losses(o)))(outs(theta))
    ggn = w * jnp.einsum("nrci,nrcmsd,msdj->ij", J, lam, J)
    g = jax.jacrev(lambda th: token_losses(outs(th)))(theta)
    g = g.reshape(N * R, -1) if tokens == "flatten" else g.sum(axis=1)
    refs = fle.references(model, x, y, fl.Categorical(), ("ggn", "empirical_fisher"),
                          tokens=tokens)
    assert rel(refs["ggn"], ggn) < RTOL
    assert rel(refs["empirical_fisher"], w * g.T @ g) < RTOL


def test_linear_layout_is_out_in_as_pytorch():
    """An eqx MLP's GGN equals fl.nn's (PyTorch-order) GGN of the same network with no
    permutation: ``weight (out, in)`` then ``bias``, layer by layer."""
    net = eqx.nn.MLP(3, C, width_size=4, depth=1, activation=jnp.tanh, key=jax.random.key(0),
                     dtype=jnp.float64)
    net = _perturbed(net, 2)
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(6, 3)))
    y = jnp.asarray(rng.integers(0, C, size=6))
    G_eqx = fle.reference(net, x, y, fl.Categorical(), "ggn")
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, C)])
    params = [(layer.weight, layer.bias) for layer in net.layers]
    assert rel(G_eqx, fl.ggn(model, params, x, y, fl.Categorical())) < RTOL
    names = [s.name for s in fle.parameter_slices(fle.model_and_params(net)[1])]
    assert names == [".layers[0].weight", ".layers[0].bias", ".layers[1].weight",
                     ".layers[1].bias"]


def test_filter_spec_selects_the_parameters():
    """Only the head trainable: the reference is the head's block of the full one."""
    model = _perturbed(TokenBlock(jax.random.key(0)), 1)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(N, R, D)))
    y = jnp.asarray(rng.integers(0, C, size=(N, R)))
    spec = jax.tree_util.tree_map(lambda _: False, model)
    spec = eqx.tree_at(lambda m: (m.head.weight, m.head.bias), spec, replace=(True, True))
    G_head = fle.reference(model, x, y, fl.Categorical(), "ggn", filter_spec=spec)
    G = fle.reference(model, x, y, fl.Categorical(), "ggn")
    sl = [s for s in fle.parameter_slices(fle.model_and_params(model)[1])
          if s.name.startswith(".head")]
    idx = np.concatenate([np.arange(s.start, s.stop) for s in sl])
    assert rel(G_head, G[np.ix_(idx, idx)]) < RTOL


def test_bad_input():
    x, y = jnp.ones((2, 3)), jnp.array([0, 1])
    with pytest.raises(TypeError, match="model must be an equinox.Module"):
        fle.reference(lambda xx: xx, x, y, fl.Categorical(), "ggn")
    net = eqx.nn.Linear(3, 2, key=jax.random.key(0))
    with pytest.raises(ValueError, match="has no parameters"):
        fle.reference(net, x, y, fl.Categorical(), "ggn", filter_spec=lambda leaf: False)
    with pytest.raises(ValueError, match="quantity must be one of"):
        fle.references(net, x, y, fl.Categorical(), ("kfac",))


def test_problem_for_assertions_and_diagnosis():
    """``fle.problem`` is the Problem of the Equinox model: its GGN is the one of ``reference``,
    and a candidate with a sum where the mean was expected is diagnosed as the factor N."""
    model = eqx.nn.MLP(2, 2, 3, 1, activation=jnp.tanh, key=jax.random.key(0))
    x = np.random.default_rng(0).normal(size=(4, 2))
    y = np.array([0, 1, 1, 0])
    P = fle.problem(model, x, y, fl.Categorical())
    G = fle.reference(model, x, y, fl.Categorical(), "ggn")
    fl.testing.assert_curvature_close(P.reference("ggn"), G, problem=P, quantity="ggn")
    f = fl.testing.diagnose(4 * G, G, problem=P, quantity="ggn")[0]
    assert f.kind == "scalar_factor" and f.factor == pytest.approx(4.0), str(f)
