"""The numeric references equal the independent SymPy ground truth on tiny networks.

``fl.hessian``, ``fl.ggn``, ``fl.fisher``, ``fl.empirical_fisher`` (float64 JAX, run under
``jax.jit``) and ``fl.kfac.factors``/``fl.kfac.matrix`` are compared with
``fl.symbolic.curvature`` -- exact SymPy differentiation of the network with the float64
inputs substituted as exact rationals, evaluated at 30 significant digits, and never
touching JAX (tests/testing/references/test_symbolic_curvature.py checks that). Hypothesis draws the network
(1-3 Dense layers, widths 1-3, every activation, at most 30 parameters), the likelihood
family, N = 1..4, the reduction and the data. Tolerance: relative Frobenius error <= 1e-10
(float64 rounding of these small problems is ~1e-15; the symbolic side is exact to ~1e-30).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fisherlab as fl
from fisherlab.symbolic import curvature

RTOL = 1e-10
ACTIVATIONS = {"tanh": fl.nn.Tanh, "sigmoid": fl.nn.Sigmoid, "relu": fl.nn.ReLU,
               "identity": fl.nn.Identity}
FAMILIES = ("categorical", "gaussian", "bernoulli", "poisson", "gaussian_mean_variance")


def rel_err(numeric, symbolic):
    S = np.array(symbolic.evalf(20).tolist(), dtype=np.float64)
    A = np.asarray(numeric, np.float64)
    assert A.shape == S.shape, (A.shape, S.shape)
    return np.linalg.norm(A - S) / max(np.linalg.norm(S), 1e-300)


def _likelihood(family, variance):
    return {"categorical": lambda: fl.Categorical(), "gaussian": lambda: fl.Gaussian(variance=variance),
            "bernoulli": lambda: fl.Bernoulli(), "poisson": lambda: fl.Poisson(),
            "gaussian_mean_variance": lambda: fl.GaussianMeanVariance()}[family]()


def _num_outputs(family, draw):
    if family == "categorical":
        return draw(st.integers(2, 3))
    if family == "gaussian_mean_variance":
        return 2
    return draw(st.integers(1, 2))


def _targets(family, draw, N, C):
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    if family == "categorical":
        return rng.integers(0, C, size=N)
    if family == "bernoulli":
        return rng.integers(0, 2, size=(N, C)).astype(np.float64)
    if family == "poisson":
        return rng.integers(0, 4, size=(N, C)).astype(np.float64)
    D = C // 2 if family == "gaussian_mean_variance" else C
    return rng.normal(size=(N, D))


@st.composite
def problems(draw, families=FAMILIES, max_params=30):
    family = draw(st.sampled_from(families))
    C = _num_outputs(family, draw)
    n_dense = draw(st.integers(1, 3))
    widths = [draw(st.integers(1, 3)) for _ in range(n_dense)] + [C]
    layers = []
    for k in range(n_dense):
        layers.append(fl.nn.Dense(widths[k], widths[k + 1]))
        if k < n_dense - 1:
            layers.append(ACTIVATIONS[draw(st.sampled_from(sorted(ACTIVATIONS)))]())
    model = fl.nn.Sequential(layers)
    if model.num_params > max_params:  # shrink to a single layer rather than reject
        model = fl.nn.Sequential([fl.nn.Dense(widths[0], C)])
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    params = [(rng.uniform(-1.5, 1.5, size=(l.out_features, l.in_features)),
               rng.uniform(-1.0, 1.0, size=l.out_features)) for l in model.dense_layers]
    N = draw(st.integers(1, 4))
    x = rng.uniform(-2.0, 2.0, size=(N, model.in_features))
    y = _targets(family, draw, N, C)
    variance = draw(st.sampled_from([0.25, 1.0, 2.0, 0.3]))
    reduction = draw(st.sampled_from(["mean", "sum"]))
    return model, params, x, y, _likelihood(family, variance), reduction


def _numeric(kind, model, params, x, y, lik, reduction):
    params = [(jnp.asarray(W, jnp.float64), jnp.asarray(b, jnp.float64)) for W, b in params]
    x = jnp.asarray(x, jnp.float64)
    if kind == "fisher":
        fn = jax.jit(lambda p, xx: fl.fisher(model, p, xx, lik, reduction=reduction))
        return fn(params, x)
    y = jnp.asarray(y) if isinstance(lik, fl.Categorical) else jnp.asarray(y, jnp.float64)
    f = {"hessian": fl.hessian, "ggn": fl.ggn, "empirical_fisher": fl.empirical_fisher}[kind]
    fn = jax.jit(lambda p, xx, yy: f(model, p, xx, yy, lik, reduction=reduction))
    return fn(params, x, y)


@settings(max_examples=min(settings().max_examples, 15))
@given(problems())
def test_dense_curvature_equals_symbolic_ground_truth(problem):
    model, params, x, y, lik, reduction = problem
    for kind in ("hessian", "ggn", "fisher", "empirical_fisher"):
        sym = curvature(model, params, x, y, lik, kind, reduction=reduction)
        err = rel_err(_numeric(kind, model, params, x, y, lik, reduction), sym)
        assert err <= RTOL, f"{kind}: relative error {err:.3e} for {model}, {lik}, N={len(x)}"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("activations", [("tanh", "relu"), ("sigmoid", "identity")])
def test_every_family_and_activation(family, activations):
    # deterministic coverage of every (family, activation) pair, independent of Hypothesis
    rng = np.random.default_rng(FAMILIES.index(family) + (10 if activations[0] == "tanh" else 0))
    C = 2 if family in ("categorical", "gaussian_mean_variance") else 1
    a1, a2 = (ACTIVATIONS[a]() for a in activations)
    model = fl.nn.Sequential([fl.nn.Dense(2, 2), a1, fl.nn.Dense(2, 2), a2, fl.nn.Dense(2, C)])
    params = [(rng.uniform(-1, 1, (2, 2)), rng.uniform(-1, 1, 2)),
              (rng.uniform(-1, 1, (2, 2)), rng.uniform(-1, 1, 2)),
              (rng.uniform(-1, 1, (C, 2)), rng.uniform(-1, 1, C))]
    x = rng.uniform(-2, 2, (3, 2))
    if family == "categorical":
        y = np.array([0, 1, 1])
    elif family == "bernoulli":
        y = np.array([[0.0], [1.0], [1.0]])
    elif family == "poisson":
        y = np.array([[0.0], [2.0], [5.0]])
    else:
        y = rng.normal(size=(3, C // 2 if family == "gaussian_mean_variance" else C))
    lik = _likelihood(family, 0.5)
    for kind in ("hessian", "ggn", "fisher", "empirical_fisher"):
        err = rel_err(_numeric(kind, model, params, x, y, lik, "mean"),
                      curvature(model, params, x, y, lik, kind))
        assert err <= RTOL, f"{kind}: relative error {err:.3e}"


@settings(max_examples=min(settings().max_examples, 8))
@given(problems(max_params=24))
def test_kfac_equals_symbolic_kfac(problem):
    model, params, x, y, lik, _ = problem
    p = [(jnp.asarray(W, jnp.float64), jnp.asarray(b, jnp.float64)) for W, b in params]
    yy = jnp.asarray(y) if isinstance(lik, fl.Categorical) else jnp.asarray(y, jnp.float64)
    for fisher_type, kind in (("exact", "kfac"), ("empirical", "kfac_empirical")):
        K = fl.kfac.matrix(fl.kfac.factors(model, p, jnp.asarray(x, jnp.float64), yy, lik,
                                           fisher_type=fisher_type), model)
        err = rel_err(K, curvature(model, params, x, y, lik, kind))
        assert err <= RTOL, f"{fisher_type}: relative error {err:.3e}"


def test_relu_kink_convention_matches_symbolic():
    model = fl.nn.Sequential([fl.nn.Dense(1, 1), fl.nn.ReLU(), fl.nn.Dense(1, 1)])
    params = [(np.array([[1.0]]), np.array([-0.5])), (np.array([[2.0]]), np.array([0.25]))]
    x = np.array([[0.5]])  # pre-activation exactly 0
    err = rel_err(_numeric("fisher", model, params, x, None, fl.Gaussian(), "mean"),
                  curvature(model, params, x, None, fl.Gaussian(), "fisher"))
    assert err <= RTOL
