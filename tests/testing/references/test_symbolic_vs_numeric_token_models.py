"""The numeric references on token models equal fl.symbolic.curvature (SymPy, never JAX).

Property tests: for each small architecture built from the token layers (Embedding, LayerNorm,
RMSNorm, multi-head attention with and without a causal mask, GELU, residual blocks, mean
pooling; R = 2 tokens, d <= 2, one or two heads), Hypothesis draws parameters, inputs and
targets, and ``fl.ggn``, ``fl.fisher``, ``fl.empirical_fisher`` and ``fl.hessian`` must equal the
exact SymPy curvature within 1e-10 (relative to ``max(1, max |entry|)``). The architectures and
batch shapes are fixed, so the symbolic derivatives are built once per architecture and the
numeric functions compile once.
"""

import hypothesis.extra.numpy as hnp
import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fisherlab as fl
from fisherlab.symbolic import curvature

nn = fl.nn
TOL = 1e-10
N, R = 2, 2

NUMERIC = {"ggn": lambda m, p, x, y, lik: fl.ggn(m, p, x, y, lik),
           "fisher": lambda m, p, x, y, lik: fl.fisher(m, p, x, lik),
           "empirical_fisher": lambda m, p, x, y, lik: fl.empirical_fisher(m, p, x, y, lik),
           "hessian": lambda m, p, x, y, lik: fl.hessian(m, p, x, y, lik)}


def _pre_ln_block(d, heads, m, causal, approximate="none"):
    return [nn.Residual(nn.Sequential([nn.LayerNorm(d),
                                       nn.MultiHeadAttention(d, heads, causal=causal)])),
            nn.Residual(nn.Sequential([nn.LayerNorm(d), nn.Dense(d, m),
                                       nn.GELU(approximate), nn.Dense(m, d)]))]


# name -> (model, input kind, likelihood, kinds checked)
ARCHITECTURES = {
    "embedding-layernorm": (
        nn.Sequential([nn.Embedding(3, 2), nn.LayerNorm(2), nn.MeanPool(), nn.Dense(2, 2)]),
        ("tokens", 3), fl.Categorical(), ("ggn", "fisher", "empirical_fisher", "hessian")),
    "rmsnorm-gelu-residual": (
        nn.Sequential([nn.Dense(2, 2), nn.Residual(nn.Sequential([
            nn.RMSNorm(2), nn.Dense(2, 2), nn.GELU(), nn.Dense(2, 2)])), nn.MeanPool(),
            nn.Dense(2, 1)]),
        ("features", 2), fl.Gaussian(), ("ggn", "fisher", "empirical_fisher", "hessian")),
    "causal-two-head-attention": (
        nn.Sequential([nn.Embedding(3, 2), nn.MultiHeadAttention(2, 2, causal=True),
                       nn.MeanPool(), nn.Dense(2, 2)]),
        ("tokens", 3), fl.Categorical(), ("ggn", "fisher", "empirical_fisher", "hessian")),
    "attention-plain-layernorm-bernoulli": (
        nn.Sequential([nn.MultiHeadAttention(2, 1), nn.LayerNorm(2, elementwise_affine=False),
                       nn.GELU("tanh"), nn.MeanPool(), nn.Dense(2, 2)]),
        ("features", 2), fl.Bernoulli(), ("ggn", "empirical_fisher", "hessian")),
    "pre-ln-transformer-block": (
        nn.Sequential([nn.Embedding(3, 2), *_pre_ln_block(2, 2, 2, causal=True),
                       nn.MeanPool(), nn.Dense(2, 2)]),
        ("tokens", 3), fl.Categorical(), ("ggn", "empirical_fisher")),
}


@st.composite
def problems(draw, name):
    model, (kind, size), lik, _ = ARCHITECTURES[name]
    template = model.init(jax.random.key(0))
    leaves, tree = jax.tree_util.tree_flatten(template)
    el = st.floats(-1.5, 1.5, allow_subnormal=False)
    params = jax.tree_util.tree_unflatten(
        tree, [draw(hnp.arrays(np.float64, leaf.shape, elements=el)) for leaf in leaves])
    if kind == "tokens":
        x = draw(hnp.arrays(np.int64, (N, R), elements=st.integers(0, size - 1)))
    else:
        x = draw(hnp.arrays(np.float64, (N, R, size), elements=st.floats(-2, 2,
                                                                        allow_subnormal=False)))
    C = model.out_features
    if isinstance(lik, fl.Categorical):
        y = draw(hnp.arrays(np.int64, (N,), elements=st.integers(0, C - 1)))
    elif isinstance(lik, fl.Bernoulli):
        y = draw(hnp.arrays(np.float64, (N, C), elements=st.sampled_from([0.0, 1.0])))
    else:
        y = draw(hnp.arrays(np.float64, (N, C), elements=st.floats(-2, 2,
                                                                  allow_subnormal=False)))
    return model, params, x, y, lik


def _as_float(M):
    return np.array(M.tolist(), dtype=np.float64)


# fewer draws than the profile's default: each draw builds several exact matrices
_FEW = settings(max_examples=max(2, settings.default.max_examples // 2))


@pytest.mark.parametrize("name", list(ARCHITECTURES))
@_FEW
@given(data=st.data())
def test_numeric_references_equal_the_symbolic_curvature(name, data):
    model, params, x, y, lik = data.draw(problems(name))
    for kind in ARCHITECTURES[name][3]:
        exact = _as_float(curvature(model, params, x, y, lik, kind))
        numeric = np.asarray(NUMERIC[kind](model, params, x, y, lik))
        scale = max(1.0, float(np.max(np.abs(exact))))
        err = float(np.max(np.abs(numeric - exact)))
        assert err <= TOL * scale, (name, kind, err, scale)


def test_the_comparison_sees_a_wrong_layer_definition():
    """A control: an RMSNorm with a different eps (1e-2 instead of float64's eps) is caught."""
    model, _, lik, _ = ARCHITECTURES["rmsnorm-gelu-residual"]
    wrong = nn.Sequential([model.layers[0], nn.Residual(nn.Sequential([
        nn.RMSNorm(2, eps=1e-2), *model.layers[1].block.layers[1:]])), *model.layers[2:]])
    params = model.init(jax.random.key(3))
    x = 0.05 * np.asarray(jax.random.normal(jax.random.key(4), (N, R, 2)))  # small tokens
    y = np.zeros((N, 1))
    exact = _as_float(curvature(model, params, x, y, lik, "ggn"))
    assert np.max(np.abs(np.asarray(fl.ggn(model, params, x, y, lik)) - exact)) <= TOL
    assert np.max(np.abs(np.asarray(fl.ggn(wrong, params, x, y, lik)) - exact)) > 1e-4
