"""Curvature against independent ground truth: closed forms, enumeration, structural laws.

* Linear model + Gaussian likelihood: ``H = G = F = X^T X / (N sigma^2)`` (``I_C (x)`` that for
  ``C`` outputs); empirical Fisher ``sum r_n^2 x_n x_n^T / (N sigma^4)``; the gradient and the
  gradient covariance in closed form (NumPy, no autodiff).
* Linear softmax regression: ``F = H = (1/N) sum_n (diag p_n - p_n p_n^T) (x) x_n x_n^T``.
* Fisher of an MLP by exact enumeration of the label space (Categorical: ``C`` classes;
  Bernoulli: ``2^C`` label vectors), ``sum_y p(y) g_y g_y^T`` with ``g_y`` from ``jax.grad`` --
  independent of the closed-form output Fisher used by :func:`fisherlab.fisher`.
* Fisher = GGN for natural-parameter families; not for GaussianMeanVariance.
* ``reduction="sum"`` is ``N`` times the mean (bit-exact for ``N`` a power of two);
  invariance to ``chunk_size``; splitting the data into pieces gives the weighted average
  (and the law of total covariance for the centered gradient covariance).
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fisherlab as fl
from jax.flatten_util import ravel_pytree
from curvature_cases import make_problem, problems, rel_err

moderate = st.floats(-2.0, 2.0, allow_nan=False, allow_infinity=False, width=64)


def _linear(params, x):
    return params["W"] @ x


@st.composite
def linear_gaussian(draw, max_outputs=2):
    n = draw(st.sampled_from([1, 3, 6]))
    dim = draw(st.sampled_from([1, 2, 3]))
    c = draw(st.integers(1, max_outputs))
    X = draw(hnp.arrays(np.float64, (n, dim), elements=moderate))
    W = draw(hnp.arrays(np.float64, (c, dim), elements=moderate))
    Y = draw(hnp.arrays(np.float64, (n, c), elements=moderate))
    var = draw(st.sampled_from([0.25, 1.0, 1.7]))
    return X, W, Y, var


def _close(a, b, rtol=1e-11, atol=1e-12):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


@given(linear_gaussian())
def test_linear_gaussian_hessian_ggn_fisher_closed_form(case):
    X, W, Y, var = case
    n, dim = X.shape
    c = W.shape[0]
    lik = fl.Gaussian(variance=var)
    expected = np.kron(np.eye(c), X.T @ X) / (n * var)  # W flattened row-major
    params = {"W": jnp.asarray(W)}
    _close(fl.hessian(_linear, params, X, Y, lik), expected)
    _close(fl.ggn(_linear, params, X, Y, lik), expected)
    _close(fl.fisher(_linear, params, X, lik), expected)
    _close(fl.hessian(_linear, params, X, Y, lik, reduction="sum"), n * expected)


@given(linear_gaussian(max_outputs=1))
def test_linear_least_squares_gradient_and_empirical_fisher_closed_form(case):
    X, W, Y, var = case
    n = X.shape[0]
    lik = fl.Gaussian(variance=var)
    params = {"W": jnp.asarray(W)}
    r = Y[:, 0] - X @ W[0]  # residuals
    grads = -(r[:, None] * X) / var  # g_n = -r_n x_n / var
    gbar = grads.mean(0)
    _close(fl.gradient(_linear, params, X, Y, lik), gbar)
    _close(fl.empirical_fisher(_linear, params, X, Y, lik),
           (X.T * r ** 2) @ X / (n * var ** 2))
    _close(fl.gradient_covariance(_linear, params, X, Y, lik),
           (grads - gbar).T @ (grads - gbar) / n, atol=1e-11)


@given(st.integers(0, 2 ** 16), st.sampled_from([1, 4]), st.sampled_from([2, 3]))
def test_linear_softmax_fisher_and_hessian_closed_form(seed, n, c):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    W = rng.normal(size=(c, 3))
    y = jnp.asarray(rng.integers(0, c, size=n), jnp.int64)
    logits = X @ W.T
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    expected = sum(np.kron(np.diag(p[i]) - np.outer(p[i], p[i]), np.outer(X[i], X[i]))
                   for i in range(n)) / n
    params = {"W": jnp.asarray(W)}
    lik = fl.Categorical()
    _close(fl.fisher(_linear, params, X, lik), expected)
    _close(fl.ggn(_linear, params, X, y, lik), expected)
    _close(fl.hessian(_linear, params, X, y, lik), expected)  # linear model: H = G


def _enumerated_fisher(f, params, x, lik, labels_and_logprob):
    """``(1/N) sum_n sum_y p(y | f_n) g_{n,y} g_{n,y}^T`` by enumerating every label y."""
    theta, unravel = ravel_pytree(params)
    total = 0.0
    for i in range(x.shape[0]):
        out = f(params, x[i])
        for label, logp in labels_and_logprob(out):
            g = jax.grad(lambda th: lik._nll(f(unravel(th), x[i]), label))(theta)
            total = total + np.exp(logp) * np.outer(g, g)
    return total / x.shape[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_categorical_fisher_by_enumerating_classes(seed):
    f, params, x, _, lik = make_problem("categorical", seed=seed, n=3, outputs=3)

    def labels(out):
        logp = jax.nn.log_softmax(out)
        return [(jnp.asarray(k), logp[k]) for k in range(out.shape[0])]

    _close(fl.fisher(f, params, x, lik), _enumerated_fisher(f, params, x, lik, labels))


@pytest.mark.parametrize("seed", [0, 1])
def test_bernoulli_fisher_by_enumerating_label_vectors(seed):
    f, params, x, _, lik = make_problem("bernoulli", seed=seed, n=3, outputs=2)

    def labels(out):
        result = []
        for bits in itertools.product([0.0, 1.0], repeat=out.shape[0]):
            yv = jnp.asarray(bits, jnp.float64)
            logp = jnp.sum(yv * jax.nn.log_sigmoid(out) + (1 - yv) * jax.nn.log_sigmoid(-out))
            result.append((yv, logp))
        return result

    _close(fl.fisher(f, params, x, lik), _enumerated_fisher(f, params, x, lik, labels))


@given(problems(families=("categorical", "gaussian", "bernoulli", "poisson")))
def test_fisher_equals_ggn_for_natural_parameter_families(problem):
    f, params, x, y, lik = problem
    assert lik.natural
    _close(fl.fisher(f, params, x, lik), fl.ggn(f, params, x, y, lik))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fisher_differs_from_ggn_for_gaussian_mean_variance(seed):
    # Outputs (mean, log-variance) are not natural parameters: the output Hessian
    # [[e^{-s}, r e^{-s}], [r e^{-s}, r^2 e^{-s}/2]] depends on the target through the residual
    # r, while F_out = diag(e^{-s}, 1/2); with targets 3 standard deviations away they differ
    # by O(1).
    f, params, x, _, lik = make_problem("gaussian_mean_variance", seed=seed, n=4, outputs=2)
    assert not lik.natural
    outs = jax.vmap(f, in_axes=(None, 0))(params, x)
    mu, s = outs[:, :2], outs[:, 2:]
    y = mu + 3.0 * jnp.exp(0.5 * s)
    F = fl.fisher(f, params, x, lik)
    G = fl.ggn(f, params, x, y, lik)
    assert rel_err(G, F) > 0.1


# Fixed problems (not Hypothesis-drawn): each new shape/chunking is an XLA compile.
STRUCTURE_CASES = [("categorical", "mlp", 0), ("poisson", "dict", 1),
                   ("gaussian_mean_variance", "mlp", 2)]


@pytest.mark.parametrize("family,model,seed", STRUCTURE_CASES)
def test_sum_reduction_is_exactly_n_times_mean(family, model, seed):
    # N = 4 is a power of two, so w = 1/N is exact and the scaling is bit-exact in IEEE
    # arithmetic (the same compiled kernel runs with weights 1/4 and 1).
    f, params, x, y, lik = make_problem(family, seed=seed, n=4, model=model)
    n = x.shape[0]
    key = jax.random.key(seed)
    cases = {
        "hessian": lambda **kw: fl.hessian(f, params, x, y, lik, **kw),
        "ggn": lambda **kw: fl.ggn(f, params, x, y, lik, **kw),
        "fisher": lambda **kw: fl.fisher(f, params, x, lik, **kw),
        "fisher_mc": lambda **kw: fl.fisher_mc(f, params, x, lik, key, 3, **kw),
        "empirical_fisher": lambda **kw: fl.empirical_fisher(f, params, x, y, lik, **kw),
        "gradient_covariance": lambda **kw: fl.gradient_covariance(f, params, x, y, lik, **kw),
        "gradient": lambda **kw: fl.gradient(f, params, x, y, lik, **kw),
    }
    for name, fn in cases.items():
        np.testing.assert_array_equal(np.asarray(fn(reduction="sum")),
                                      n * np.asarray(fn(reduction="mean")), err_msg=name)
    v = jnp.ones(ravel_pytree(params)[0].shape, jnp.float64)
    np.testing.assert_array_equal(fl.ggn_vp(f, params, x, y, lik, reduction="sum")(v),
                                  n * fl.ggn_vp(f, params, x, y, lik)(v))


def test_sum_reduction_is_n_times_mean_for_any_n():
    f, params, x, y, lik = make_problem("poisson", seed=3, n=5)
    for fn in (fl.ggn, fl.hessian, fl.empirical_fisher, fl.gradient_covariance):
        _close(fn(f, params, x, y, lik, reduction="sum"), 5 * fn(f, params, x, y, lik),
               rtol=1e-13, atol=0)


@pytest.mark.parametrize("family,model,seed", STRUCTURE_CASES[:2])
def test_invariant_to_chunk_size(family, model, seed):
    f, params, x, y, lik = make_problem(family, seed=seed, n=5, model=model)
    key = jax.random.key(seed)
    for chunk in (1, 2):  # 5 examples: 5 chunks of 1; 3 chunks of 2 with one padded example
        _close(fl.ggn(f, params, x, y, lik, chunk_size=chunk), fl.ggn(f, params, x, y, lik),
               rtol=1e-13, atol=1e-15)
        _close(fl.hessian(f, params, x, y, lik, chunk_size=chunk),
               fl.hessian(f, params, x, y, lik), rtol=1e-13, atol=1e-15)
        _close(fl.empirical_fisher(f, params, x, y, lik, chunk_size=chunk),
               fl.empirical_fisher(f, params, x, y, lik), rtol=1e-13, atol=1e-15)
        # one key per example (jax.random.split(key, N)): the same labels in every chunking
        _close(fl.fisher_mc(f, params, x, lik, key, 2, chunk_size=chunk),
               fl.fisher_mc(f, params, x, lik, key, 2), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("family,model,seed", STRUCTURE_CASES[1:])
def test_splitting_the_data_gives_the_weighted_average(family, model, seed):
    f, params, x, y, lik = make_problem(family, seed=seed, n=5, model=model)
    n, cut = x.shape[0], 2
    pieces = [(x[:cut], y[:cut]), (x[cut:], y[cut:])]
    for fn in (fl.hessian, fl.ggn, fl.empirical_fisher, fl.gradient):
        whole = fn(f, params, x, y, lik)
        parts = sum(xp.shape[0] / n * np.asarray(fn(f, params, xp, yp, lik))
                    for xp, yp in pieces)
        _close(whole, parts, rtol=1e-12, atol=1e-14)
        whole_sum = fn(f, params, x, y, lik, reduction="sum")
        _close(whole_sum, sum(np.asarray(fn(f, params, xp, yp, lik, reduction="sum"))
                              for xp, yp in pieces), rtol=1e-12, atol=1e-14)
    _close(fl.fisher(f, params, x, lik),
           sum(xp.shape[0] / n * np.asarray(fl.fisher(f, params, xp, lik)) for xp, _ in pieces),
           rtol=1e-12, atol=1e-14)
    # law of total covariance: Sigma = sum_p (N_p/N) [Sigma_p + (gbar_p - gbar)(gbar_p - gbar)^T]
    gbar = np.asarray(fl.gradient(f, params, x, y, lik))
    total = 0.0
    for xp, yp in pieces:
        gp = np.asarray(fl.gradient(f, params, xp, yp, lik))
        total = total + xp.shape[0] / n * (
            np.asarray(fl.gradient_covariance(f, params, xp, yp, lik)) + np.outer(gp - gbar,
                                                                                  gp - gbar))
    _close(fl.gradient_covariance(f, params, x, y, lik), total, rtol=1e-11, atol=1e-13)
