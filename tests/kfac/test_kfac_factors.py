"""K-FAC factors: the exactness cases against brute-force dense curvature.

Ground truth: ``fisherlab.testing.references.kfac`` builds the dense GGN / empirical Fisher from full Jacobians
(and checks ``fl.ggn`` / ``fl.empirical_fisher`` against it when present). Theory
(Martens & Grosse 2015; Eschenhagen et al. 2023; Bernacchia et al. 2018):

* N = 1, no weight sharing: K-FAC (any fisher_type's expectation) equals the block exactly;
* deep linear network + Gaussian likelihood: exact K-FAC equals the GGN blocks at any N
  (expand in the expand setting, reduce in the reduce setting);
* the empirical K-FAC is NOT exact for deep linear networks at N > 1.
"""

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

import fisherlab as fl
from fisherlab.testing.references.kfac import (LIKELIHOODS, cross_terms_removed, block_diagonal_part, dense_empirical_fisher, dense_ggn,
                            kron_block_by_loops, layer_slices, mlp, rel_err, targets_for)

ACTIVATIONS = [fl.nn.Tanh, fl.nn.Sigmoid, fl.nn.ReLU, fl.nn.Identity]
# a few architectures (each new shape costs a jit compile); depth 1-3, widths 1-4
widths_st = st.sampled_from([(3, 2), (2, 3, 2), (3, 1, 4, 2)])
seed_st = st.integers(0, 2**31 - 1)


def _problem(widths, activation, likelihood_name, seed, N, out_min=1):
    widths = list(widths)
    if likelihood_name == "categorical":
        widths[-1] = max(widths[-1], 2)
    model = mlp(widths, activation)
    lik = LIKELIHOODS[likelihood_name]()
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    params = model.init(k1)
    x = jax.random.normal(k2, (N, widths[0]), jnp.float64)
    y = targets_for(lik, model, params, x, k3)
    return model, params, x, y, lik


@given(widths=widths_st, act=st.sampled_from(ACTIVATIONS),
       lik=st.sampled_from(sorted(LIKELIHOODS)), seed=seed_st,
       bias=st.sampled_from(["augmented", "separate"]))
def test_exact_kfac_equals_ggn_block_for_one_example(widths, act, lik, seed, bias):
    """N = 1: G (x) A is the exact block of J^T F_out J (the GGN; the Fisher for the
    non-natural GaussianMeanVariance); with a separate bias, minus the weight--bias terms."""
    model, params, x, y, likelihood = _problem(widths, act, lik, seed, N=1)
    K = fl.kfac.matrix(fl.kfac.factors(model, params, x, y, likelihood, bias=bias), model)
    B = block_diagonal_part(dense_ggn(model, params, x, y, likelihood), model)
    if bias == "separate":
        B = cross_terms_removed(B, model)
    np.testing.assert_allclose(K, B, rtol=0, atol=1e-12 * max(1.0, np.abs(B).max()))


@given(widths=widths_st, act=st.sampled_from(ACTIVATIONS),
       lik=st.sampled_from(sorted(LIKELIHOODS)), seed=seed_st)
def test_empirical_kfac_equals_empirical_fisher_block_for_one_example(widths, act, lik, seed):
    model, params, x, y, likelihood = _problem(widths, act, lik, seed, N=1)
    K = fl.kfac.matrix(
        fl.kfac.factors(model, params, x, y, likelihood, fisher_type="empirical"), model)
    B = block_diagonal_part(dense_empirical_fisher(model, params, x, y, likelihood), model)
    np.testing.assert_allclose(K, B, rtol=0, atol=1e-12 * max(1.0, np.abs(B).max()))


@given(widths=widths_st, seed=seed_st, N=st.integers(2, 6))
def test_exact_kfac_equals_ggn_blocks_for_deep_linear_gaussian(widths, seed, N):
    model, params, x, y, likelihood = _problem(widths, fl.nn.Identity, "gaussian", seed, N)
    K = fl.kfac.matrix(fl.kfac.factors(model, params, x, y, likelihood), model)
    B = block_diagonal_part(dense_ggn(model, params, x, y, likelihood), model)
    assert rel_err(K, B) < 1e-12


def test_empirical_kfac_is_not_the_empirical_fisher_block_for_deep_linear_nets():
    """Counterexample: deep linear net, Gaussian, N = 4 -- exact K-FAC matches the GGN
    blocks, but the empirical K-FAC differs from the empirical Fisher blocks by > 10 %
    (the residuals r_n = f_n - y_n vary with n, so E[g g^T] does not factor)."""
    model, params, x, y, lik = _problem([3, 2, 2], fl.nn.Identity, "gaussian", 7, N=4)
    EF = block_diagonal_part(dense_empirical_fisher(model, params, x, y, lik), model)
    K_emp = fl.kfac.matrix(fl.kfac.factors(model, params, x, y, lik, fisher_type="empirical"),
                           model)
    assert rel_err(K_emp, EF) > 0.1
    GGN = block_diagonal_part(dense_ggn(model, params, x, y, lik), model)
    assert rel_err(fl.kfac.matrix(fl.kfac.factors(model, params, x, y, lik), model), GGN) < 1e-12


def test_exactness_needs_a_linear_network_or_one_example():
    """Sanity of the exactness tests: with tanh and N = 5 exact K-FAC is NOT the GGN block."""
    model, params, x, y, lik = _problem([3, 4, 2], fl.nn.Tanh, "gaussian", 3, N=5)
    K = fl.kfac.matrix(fl.kfac.factors(model, params, x, y, lik), model)
    B = block_diagonal_part(dense_ggn(model, params, x, y, lik), model)
    assert rel_err(K, B) > 1e-3


# ------------------------------------------------------------------ weight sharing
def _sequence_problem(layers, seed, N=3, T=4, positions_in_output=True):
    model = fl.nn.Sequential(layers)
    lik = fl.Gaussian(variance=0.7)
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    params = model.init(k1)
    x = jax.random.normal(k2, (N, T, layers[0].in_features), jnp.float64)
    y = targets_for(lik, model, params, x, k3)
    return model, params, x, y, lik


@pytest.mark.parametrize("seed", [0, 1])
def test_expand_is_exact_for_deep_linear_nets_in_the_expand_setting(seed):
    """Per-position outputs and losses (l_n = sum_t l(f_{n,t}, y_{n,t})): K-FAC-expand equals
    the GGN blocks (Eschenhagen et al. 2023, expand setting); K-FAC-reduce does not."""
    layers = [fl.nn.Dense(3, 4), fl.nn.Identity(), fl.nn.Dense(4, 2)]
    model, params, x, y, lik = _sequence_problem(layers, seed)
    B = block_diagonal_part(dense_ggn(model, params, x, y, lik), model)
    K_exp = fl.kfac.matrix(fl.kfac.factors(model, params, x, y, lik, approx="expand"), model)
    K_red = fl.kfac.matrix(fl.kfac.factors(model, params, x, y, lik, approx="reduce"), model)
    assert rel_err(K_exp, B) < 1e-12
    assert rel_err(K_red, B) > 1e-2


@pytest.mark.parametrize("seed", [0, 1])
def test_reduce_is_exact_for_deep_linear_nets_in_the_reduce_setting(seed):
    """Positions mean-pooled before the output: K-FAC-reduce equals the GGN blocks
    (Eschenhagen et al. 2023, reduce setting); K-FAC-expand does not."""
    layers = [fl.nn.Dense(3, 4), fl.nn.Identity(), fl.nn.Dense(4, 3), fl.nn.MeanPool(),
              fl.nn.Dense(3, 2)]
    model, params, x, y, lik = _sequence_problem(layers, seed)
    B = block_diagonal_part(dense_ggn(model, params, x, y, lik), model)
    K_red = fl.kfac.matrix(fl.kfac.factors(model, params, x, y, lik, approx="reduce"), model)
    K_exp = fl.kfac.matrix(fl.kfac.factors(model, params, x, y, lik, approx="expand"), model)
    assert rel_err(K_red, B) < 1e-12
    assert rel_err(K_exp, B) > 1e-2


@given(seed=seed_st, options=st.sampled_from([("exact", "augmented"), ("empirical", "separate")]))
def test_expand_equals_reduce_without_weight_sharing(seed, options):
    """T = 1: both flavours, on (N, 1, in) inputs, equal plain K-FAC on (N, in) inputs."""
    fisher_type, bias = options
    model = mlp([3, 4, 2], fl.nn.Tanh)
    lik = fl.Categorical()
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    params = model.init(k1)
    x = jax.random.normal(k2, (5, 3), jnp.float64)
    y = targets_for(lik, model, params, x, k3)
    plain = fl.kfac.factors(model, params, x, y, lik, fisher_type=fisher_type, bias=bias)
    for approx in ("expand", "reduce"):
        seq = fl.kfac.factors(model, params, x[:, None, :], y[:, None], lik,
                              fisher_type=fisher_type, approx=approx, bias=bias)
        for f, g in zip(plain, seq):
            np.testing.assert_allclose(g.A, f.A, rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(g.G, f.G, rtol=1e-13, atol=1e-15)


def test_weight_sharing_factor_scalings_from_the_definition():
    """A of both flavours from the inputs written out by hand (expand: 1/(N T) sum over all
    positions; reduce: outer products of position means, 1/N)."""
    layers = [fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 2)]
    model, params, x, y, lik = _sequence_problem(layers, 5, N=3, T=4)
    x_np = np.asarray(x)
    abar = np.concatenate([x_np, np.ones(x_np.shape[:-1] + (1,))], -1)  # (N, T, 4)
    A_expand = sum(np.outer(abar[n, t], abar[n, t]) for n in range(3) for t in range(4)) / 12
    mean = abar.mean(axis=1)
    A_reduce = sum(np.outer(mean[n], mean[n]) for n in range(3)) / 3
    f_exp = fl.kfac.factors(model, params, x, y, lik, approx="expand")
    f_red = fl.kfac.factors(model, params, x, y, lik, approx="reduce")
    np.testing.assert_allclose(f_exp[0].A, A_expand, rtol=1e-13)
    np.testing.assert_allclose(f_red[0].A, A_reduce, rtol=1e-13)


# ------------------------------------------------------------------ bias, parameter order
@given(seed=seed_st, fisher_type=st.sampled_from(["exact", "empirical"]))
def test_separate_bias_is_augmented_without_cross_terms(seed, fisher_type):
    model, params, x, y, lik = _problem([3, 4, 3], fl.nn.Tanh, "categorical", seed, N=6)
    aug = fl.kfac.factors(model, params, x, y, lik, fisher_type=fisher_type)
    sep = fl.kfac.factors(model, params, x, y, lik, fisher_type=fisher_type, bias="separate")
    for a, s in zip(aug, sep):
        np.testing.assert_allclose(s.A, a.A[:-1, :-1], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(s.G, a.G, rtol=1e-13, atol=1e-15)
        assert a.A[-1, -1] == pytest.approx(1.0, rel=1e-14)
    K_aug = fl.kfac.matrix(aug, model)
    K_sep = fl.kfac.matrix(sep, model, bias="separate")
    np.testing.assert_allclose(K_sep, cross_terms_removed(K_aug, model), rtol=0, atol=1e-15)


@given(seed=seed_st, out=st.integers(1, 3), inp=st.integers(1, 3),
       bias=st.sampled_from(["augmented", "separate"]))
def test_matrix_parameter_order_against_entrywise_construction(seed, out, inp, bias):
    model = fl.nn.Sequential([fl.nn.Dense(inp, out)])
    k1, k2 = jax.random.split(jax.random.key(seed))
    m = inp + 1 if bias == "augmented" else inp
    A = np.asarray(jax.random.normal(k1, (m, m)))
    G = np.asarray(jax.random.normal(k2, (out, out)))
    K = fl.kfac.matrix([fl.kfac.KFACFactors(A, G)], model, bias=bias)
    A_full = A if bias == "augmented" else np.pad(A, ((0, 1), (0, 1)))
    expected = kron_block_by_loops(A_full, G, out, inp, separate=bias == "separate")
    np.testing.assert_array_equal(np.asarray(K), expected)


def test_matrix_is_block_diagonal_over_layers_in_ravel_order():
    model, params, x, y, lik = _problem([2, 3, 2], fl.nn.Tanh, "categorical", 0, N=3)
    f = fl.kfac.factors(model, params, x, y, lik)
    K = np.asarray(fl.kfac.matrix(f, model))
    assert K.shape == (model.num_params,) * 2 == (jax.flatten_util.ravel_pytree(params)[0].size,) * 2
    s0, s1 = layer_slices(model)
    assert not K[s0, s1].any() and not K[s1, s0].any()
    np.testing.assert_array_equal(K[s1, s1], kron_block_by_loops(f[1].A, f[1].G, 2, 3))


# ------------------------------------------------------------------ Monte-Carlo
def test_mc_factors_converge_to_exact_hoeffding():
    """``G_mc`` is an average of N*S independent bounded terms with mean ``G_exact``.

    For Categorical, per example the term ``v_y v_y^T`` (``v_y = grad_s l(f, y)``) takes one
    of C values, so each entry lies in ``[lo_n, hi_n]`` (min/max over the classes, computed
    by enumeration). Hoeffding: ``P(|G_mc - G| >= t) <= 2 exp(-2 N^2 S t^2 / sum_n (hi_n -
    lo_n)^2)``; with ``t`` set for probability ``1e-6 / #entries`` per entry, the union bound
    gives a false-failure probability <= 1e-6 for a random key (fixed key here). The
    expectation is checked against the class enumeration ``sum_y p_y v_y v_y^T`` too,
    independently of the output-Fisher square root used by ``"exact"``.
    """
    model, params, x, _, lik = _problem([3, 4, 3], fl.nn.Tanh, "categorical", 11, N=8)
    N, C, S = 8, 3, 400
    probs = np.asarray(jax.nn.softmax(jax.vmap(lambda xn: model(params, xn))(x)))
    per = [[fl.kfac.factors(model, params, x[n:n + 1], jnp.asarray([c]), lik,
                            fisher_type="empirical") for c in range(C)] for n in range(N)]
    exact = fl.kfac.factors(model, params, x, None, lik)
    mc = fl.kfac.factors(model, params, x, None, lik, fisher_type="mc",
                         key=jax.random.key(2024), num_samples=S)
    n_entries = sum(f.G.size for f in exact)
    delta = 1e-6 / n_entries
    for k, (fe, fm) in enumerate(zip(exact, mc)):
        np.testing.assert_allclose(fm.A, fe.A, rtol=1e-13)  # A is deterministic
        terms = np.stack([[np.asarray(per[n][c][k].G) for c in range(C)] for n in range(N)])
        enum = np.einsum("nc,ncij->ij", probs, terms) / N
        np.testing.assert_allclose(fe.G, enum, rtol=1e-10, atol=1e-14)
        ranges = terms.max(axis=1) - terms.min(axis=1)  # (N, out, out)
        t = np.sqrt((ranges ** 2).sum(0) * np.log(2 / delta) / (2 * N ** 2 * S))
        err = np.abs(np.asarray(fm.G) - np.asarray(fe.G))
        assert np.all(err <= t), (err / t).max()
        assert np.abs(np.asarray(fm.G) - enum).max() > 0  # really an estimate
