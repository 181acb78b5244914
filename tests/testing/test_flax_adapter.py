"""fl.testing.flax: references for Flax (linen, nnx) models in Flax's parameter order and layout.

Ground truth is computed here without the adapter and without fisherlab's kernels: the model is
applied to the *whole* batch with ``module.apply`` on parameters unflattened from a flat vector,
the categorical loss is written out (``logsumexp(o) - o[y]``), and the GGN is ``J^T Lambda J``
with ``jax.jacrev`` of the batched outputs and ``jax.hessian`` of the written loss in them; the
empirical Fisher uses ``jax.jacrev`` of the vector of per-example (or per-token) losses.

Flax's normalisation layers promote to float32 internally, which the suite's strict dtype
promotion forbids; the tests with them run under ``jax.numpy_dtype_promotion("standard")``
(what a Flax user has).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import fisherlab as fl

flax = pytest.importorskip("flax")
import flax.linen as nn  # noqa: E402
from flax import nnx  # noqa: E402

from fisherlab.testing import flax as flf  # noqa: E402

RTOL = 1e-10
N, R, D, C = 3, 3, 4, 3


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


class TokenBlock(nn.Module):
    """Pre-LN self-attention block with a per-token head: (N, R, D) -> (N, R, C)."""

    @nn.compact
    def __call__(self, x):
        h = nn.LayerNorm(dtype=jnp.float64, param_dtype=jnp.float64)(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=2, dtype=jnp.float64,
                                                param_dtype=jnp.float64)(h, h)
        h = nn.Dense(8, dtype=jnp.float64, param_dtype=jnp.float64)(
            nn.LayerNorm(dtype=jnp.float64, param_dtype=jnp.float64)(x))
        x = x + nn.Dense(D, dtype=jnp.float64, param_dtype=jnp.float64)(nn.gelu(h))
        return nn.Dense(C, dtype=jnp.float64, param_dtype=jnp.float64)(x)


def _perturbed(params, seed):
    """Every parameter moved away from its initial value (LayerNorm scale != 1, bias != 0)."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [l + 0.3 * jax.random.normal(k, l.shape, l.dtype) for l, k in zip(leaves, keys)])


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(N, R, D)))
    y = jnp.asarray(rng.integers(0, C, size=(N, R)))
    return x, y


def _truth(apply_batched, params, x, y, tokens):
    """GGN and empirical Fisher of the token cross-entropy, written out (mean reduction)."""
    theta, unravel = ravel_pytree(params)

    def outs(th):
        return apply_batched(unravel(th), x)  # (N, R, C)

    def token_losses(o):
        return jax.nn.logsumexp(o, axis=-1) - jnp.take_along_axis(o, y[..., None], -1)[..., 0]

    w = 1.0 / (N * R) if tokens == "flatten" else 1.0 / N
    J = jax.jacrev(outs)(theta)
    lam = jax.hessian(lambda o: jnp.sum(token_losses(o)))(outs(theta))
    ggn = w * jnp.einsum("nrci,nrcmsd,msdj->ij", J, lam, J)
    g = jax.jacrev(lambda th: token_losses(outs(th)))(theta)  # (N, R, d)
    g = g.reshape(N * R, -1) if tokens == "flatten" else g.sum(axis=1)
    return {"ggn": ggn, "empirical_fisher": w * g.T @ g}


@pytest.fixture
def standard_promotion():
    with jax.numpy_dtype_promotion("standard"):
        yield


@pytest.mark.parametrize("tokens", ["sum", "flatten"])
def test_linen_token_block_equals_the_written_loss(tokens, standard_promotion):
    net = TokenBlock()
    x, y = _batch()
    variables = {"params": _perturbed(net.init(jax.random.key(0), x)["params"], 1)}
    truth = _truth(lambda p, xb: net.apply({"params": p}, xb), variables["params"], x, y, tokens)
    refs = flf.references(net, x, y, fl.Categorical(), ("ggn", "empirical_fisher", "fisher"),
                          variables=variables, tokens=tokens)
    for q in ("ggn", "empirical_fisher"):
        assert rel(refs[q], truth[q]) < RTOL, q
    assert rel(refs["fisher"], truth["ggn"]) < RTOL


class NnxMLP(nnx.Module):
    def __init__(self, rngs):
        self.norm = nnx.LayerNorm(D, rngs=rngs, param_dtype=jnp.float64)
        self.l1 = nnx.Linear(D, 5, rngs=rngs, param_dtype=jnp.float64)
        self.l2 = nnx.Linear(5, C, rngs=rngs, param_dtype=jnp.float64)

    def __call__(self, x):
        return self.l2(jnp.tanh(self.l1(self.norm(x))))


def test_nnx_per_token_model_equals_the_written_loss(standard_promotion):
    model = NnxMLP(nnx.Rngs(0))
    x, y = _batch(2)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params = _perturbed(params, 3)
    nnx.update(model, params)
    truth = _truth(lambda p, xb: nnx.merge(graphdef, p, rest)(xb), params, x, y, "sum")
    refs = flf.references(model, x, y, fl.Categorical(), ("ggn", "empirical_fisher"))
    for q in ("ggn", "empirical_fisher"):
        assert rel(refs[q], truth[q]) < RTOL, q


def test_kernel_layout_is_flax_in_out():
    """The Flax-order GGN of a linen MLP is fl.nn's (PyTorch-order) GGN of the same network
    (``W = kernel.T``) under the documented index map: bias before kernel (sorted keys), kernel
    entry ``(i, o)`` at ``i * out + o``."""
    net = nn.Sequential([nn.Dense(4, param_dtype=jnp.float64), nn.tanh,
                         nn.Dense(C, param_dtype=jnp.float64)])
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(6, 3)))
    y = jnp.asarray(rng.integers(0, C, size=6))
    params = _perturbed(net.init(jax.random.key(0), x)["params"], 4)
    G_flax = flf.reference(net, x, y, fl.Categorical(), "ggn", variables={"params": params})
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, C)])
    torch_params = [(params[k]["kernel"].T, params[k]["bias"]) for k in ("layers_0", "layers_2")]
    G_torch = np.asarray(fl.ggn(model, torch_params, x, y, fl.Categorical()))
    # index of each Flax-order row in the PyTorch order
    perm, t0, f_names = [], 0, [s.name for s in flf.parameter_slices(params)]
    assert f_names == ["['layers_0']['bias']", "['layers_0']['kernel']",
                       "['layers_2']['bias']", "['layers_2']['kernel']"]
    for inp, out in ((3, 4), (4, C)):
        w0, b0 = t0, t0 + inp * out  # torch: W (out, in) row-major, then b
        perm += [b0 + o for o in range(out)]  # flax: bias first
        perm += [w0 + o * inp + i for i in range(inp) for o in range(out)]  # kernel (in, out)
        t0 += inp * out + out
    assert rel(G_flax, G_torch[np.ix_(perm, perm)]) < RTOL


def test_unflatten_and_slices():
    net = nn.Dense(2, param_dtype=jnp.float64)
    params = net.init(jax.random.key(0), jnp.ones((1, 3)))["params"]
    slices = flf.parameter_slices(params)
    assert [(s.name, s.start, s.stop, s.shape) for s in slices] == [
        ("['bias']", 0, 2, (2,)), ("['kernel']", 2, 8, (3, 2))]
    back = flf.unflatten(params, np.arange(8.0))
    np.testing.assert_array_equal(back["kernel"], np.arange(2.0, 8.0).reshape(3, 2))
    with pytest.raises(ValueError, match=r"vector must have shape \(8,\)"):
        flf.unflatten(params, np.zeros(7))


def test_bad_input():
    net = nn.Dense(2, param_dtype=jnp.float64)
    x, y = jnp.ones((2, 3)), jnp.array([0, 1])
    with pytest.raises(TypeError, match=r"variables must be the dict returned by model\.init"):
        flf.reference(net, x, y, fl.Categorical(), "ggn")
    with pytest.raises(TypeError, match=r"with collections \['batch_stats'\]"):
        flf.reference(net, x, y, fl.Categorical(), "ggn", variables={"batch_stats": {}})
    with pytest.raises(TypeError, match="variables must be None for a flax.nnx module"):
        flf.reference(nnx.Linear(3, 2, rngs=nnx.Rngs(0)), x, y, fl.Categorical(), "ggn",
                      variables={})
    with pytest.raises(TypeError, match="model must be a flax.linen.Module or a flax.nnx.Module"):
        flf.reference(lambda p, xx: xx, x, y, fl.Categorical(), "ggn", variables={"params": {}})
    variables = net.init(jax.random.key(0), x)
    with pytest.raises(ValueError, match="quantity must be one of"):
        flf.reference(net, x, y, fl.Categorical(), "kfac", variables=variables)
    with pytest.raises(TypeError, match="batch_axis must be a bool"):
        flf.model_and_params(net, variables, batch_axis=1)


def test_problem_for_assertions_and_diagnosis(standard_promotion):
    """``flf.problem`` is the Problem of the Flax model: its GGN is the one of ``reference`` (the
    GGN written out per example in test_linen_token_block_equals_the_written_loss), and a
    candidate with a sum where the mean was expected is diagnosed as the factor N."""
    net = nn.Sequential([nn.Dense(3), nn.tanh, nn.Dense(2)])
    x = np.random.default_rng(0).normal(size=(4, 2))
    y = np.array([0, 1, 1, 0])
    variables = net.init(jax.random.key(0), jnp.ones((1, 2)))
    P = flf.problem(net, x, y, fl.Categorical(), variables=variables)
    G = flf.reference(net, x, y, fl.Categorical(), "ggn", variables=variables)
    fl.testing.assert_curvature_close(P.reference("ggn"), G, problem=P, quantity="ggn")
    f = fl.testing.diagnose(4 * G, G, problem=P, quantity="ggn")[0]
    assert f.kind == "scalar_factor" and f.factor == pytest.approx(4.0), str(f)
