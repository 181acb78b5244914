"""The fast (chunked, factored) dense curvature equals the naive textbook computation.

Naive paths (fisherlab.testing.references.naive): ``jax.hessian`` of the mean loss for the
Hessian; explicit per-example loops with ``jax.jacfwd`` Jacobians and ``jax.hessian`` of
the per-example NLL for the others. Problems are Hypothesis-drawn over every likelihood
family, an MLP and a dict-params model, chunk sizes, Jacobian modes and reductions.
"""

import jax
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import fisherlab as fl
from fisherlab.testing.references import naive
from curvature_cases import problems, rel_err

RTOL = 1e-11  # float64: both paths are exact up to O(d) rounding steps


def _close(actual, desired, rtol=RTOL, atol=1e-13):
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.dtype == np.float64
    assert actual.shape == desired.shape
    err = np.linalg.norm(actual - desired)
    assert err <= rtol * np.linalg.norm(desired) + atol, (
        f"relative Frobenius error {rel_err(actual, desired):.3e}")


chunks = st.sampled_from([None, 2, 3])  # few distinct shapes: each one is a compile
reductions = st.sampled_from(["mean", "sum"])
modes = st.sampled_from(["auto", "forward", "reverse"])


@given(problems(), chunks, reductions)
def test_hessian_equals_jax_hessian_of_the_loss(problem, chunk_size, reduction):
    f, params, x, y, lik = problem
    _close(fl.hessian(f, params, x, y, lik, reduction=reduction, chunk_size=chunk_size),
           naive.hessian(f, params, x, y, lik, reduction=reduction))


@given(problems(), chunks, reductions)
def test_gradient_equals_jax_grad_of_the_loss(problem, chunk_size, reduction):
    f, params, x, y, lik = problem
    _close(fl.gradient(f, params, x, y, lik, reduction=reduction, chunk_size=chunk_size),
           naive.gradient(f, params, x, y, lik, reduction=reduction))


@given(problems(), chunks, reductions, modes)
def test_ggn_equals_per_example_loop(problem, chunk_size, reduction, mode):
    f, params, x, y, lik = problem
    _close(fl.ggn(f, params, x, y, lik, reduction=reduction, chunk_size=chunk_size,
                  jacobian=mode),
           naive.ggn(f, params, x, y, lik, reduction=reduction))


@given(problems(), chunks, reductions, modes)
def test_fisher_equals_per_example_loop(problem, chunk_size, reduction, mode):
    f, params, x, _, lik = problem
    _close(fl.fisher(f, params, x, lik, reduction=reduction, chunk_size=chunk_size,
                     jacobian=mode),
           naive.fisher(f, params, x, lik, reduction=reduction))


@given(problems(), st.sampled_from([1, 4]), st.integers(0, 2 ** 16))
def test_fisher_mc_equals_per_sample_loop(problem, num_samples, seed):
    # Same labels by the documented key convention (likelihood.sample(key, outputs, S));
    # covers both code paths (S < C: sampled rows; S >= C: sampled output Fisher).
    f, params, x, _, lik = problem
    key = jax.random.key(seed)
    # (chunking of the MC path: test_invariant_to_chunk_size, layer-wise test below)
    _close(fl.fisher_mc(f, params, x, lik, key, num_samples),
           naive.fisher_mc(f, params, x, lik, key, num_samples))


@given(problems(), chunks, reductions)
def test_empirical_fisher_equals_per_example_loop(problem, chunk_size, reduction):
    f, params, x, y, lik = problem
    _close(fl.empirical_fisher(f, params, x, y, lik, reduction=reduction,
                               chunk_size=chunk_size),
           naive.empirical_fisher(f, params, x, y, lik, reduction=reduction))


@given(problems(), chunks, reductions)
def test_gradient_covariance_equals_per_example_loop(problem, chunk_size, reduction):
    f, params, x, y, lik = problem
    _close(fl.gradient_covariance(f, params, x, y, lik, reduction=reduction,
                                  chunk_size=chunk_size),
           naive.gradient_covariance(f, params, x, y, lik, reduction=reduction))


@given(problems())
def test_gradient_covariance_is_empirical_fisher_minus_outer_gradient(problem):
    # Sigma = E - gbar gbar^T: three separately computed quantities.
    f, params, x, y, lik = problem
    g = np.asarray(fl.gradient(f, params, x, y, lik))
    E = fl.empirical_fisher(f, params, x, y, lik)
    _close(fl.gradient_covariance(f, params, x, y, lik), E - np.outer(g, g), rtol=1e-10,
           atol=1e-12)


@given(problems())
def test_matrices_are_symmetric_and_psd_where_theory_says(problem):
    f, params, x, y, lik = problem
    for name, M in [("fisher", fl.fisher(f, params, x, lik)),
                    ("empirical_fisher", fl.empirical_fisher(f, params, x, y, lik)),
                    ("gradient_covariance", fl.gradient_covariance(f, params, x, y, lik))]:
        M = np.asarray(M)
        np.testing.assert_array_equal(M, M.T, err_msg=name)
        ev = np.linalg.eigvalsh(M)
        assert ev.min() >= -1e-12 * max(1.0, np.abs(ev).max()), (name, lik, ev)
    for M in (fl.ggn(f, params, x, y, lik), fl.hessian(f, params, x, y, lik)):
        M = np.asarray(M)
        np.testing.assert_array_equal(M, M.T)


# one activation per model (few distinct models: each is a compile)
ACTIVATIONS = [fl.nn.Tanh(), fl.nn.ReLU(), fl.nn.Sigmoid()]


@st.composite
def sequential_problems(draw):
    """Deeper Sequential MLPs with mixed activations (the layer-wise path's domain)."""
    from curvature_cases import likelihood_for, targets_for

    family = draw(st.sampled_from(["categorical", "gaussian_mean_variance", "poisson"]))
    depth = draw(st.sampled_from([1, 3]))
    widths = [2, 3, 4, 2][:depth + 1]
    if family == "gaussian_mean_variance":
        widths[-1] = 2
    activation = draw(st.sampled_from(ACTIVATIONS))
    layers = []
    for k in range(depth):
        layers.append(fl.nn.Dense(widths[k], widths[k + 1]))
        if k < depth - 1:
            layers.append(activation)
    model = fl.nn.Sequential(layers)
    seed = draw(st.integers(0, 2 ** 16))
    params = model.init(jax.random.key(seed))
    x = jax.random.normal(jax.random.key(seed + 1), (4, widths[0]))
    outs = np.asarray(jax.vmap(model, in_axes=(None, 0))(params, x))
    y = targets_for(family, outs, np.random.default_rng(seed))
    return model, params, x, y, likelihood_for(family)


@given(sequential_problems(), st.sampled_from([None, 3]), reductions)
def test_layerwise_path_equals_naive_and_jacobian_path(problem, chunk_size, reduction):
    f, params, x, y, lik = problem
    kw = dict(reduction=reduction, chunk_size=chunk_size)
    G = fl.ggn(f, params, x, y, lik, method="layerwise", **kw)
    _close(G, naive.ggn(f, params, x, y, lik, reduction=reduction))
    _close(G, fl.ggn(f, params, x, y, lik, method="jacobian", **kw))
    _close(fl.fisher(f, params, x, lik, method="layerwise", **kw),
           naive.fisher(f, params, x, lik, reduction=reduction))
    key = jax.random.key(1)
    _close(fl.fisher_mc(f, params, x, lik, key, 3, method="layerwise", **kw),
           fl.fisher_mc(f, params, x, lik, key, 3, method="jacobian", **kw))
