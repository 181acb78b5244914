"""EKFAC (George et al. 2018) against the exact curvature blocks."""

import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

import fisherlab as fl
from kfac_reference import (block_diagonal_part, cross_terms_removed, dense_empirical_fisher, dense_ggn, mlp, rel_err,
                            targets_for)

seed_st = st.integers(0, 2**31 - 1)


def _problem(seed, N=6, act=fl.nn.Tanh):
    model = mlp([3, 4, 3], act)
    lik = fl.Categorical()
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    params = model.init(k1)
    x = jax.random.normal(k2, (N, 3), jnp.float64)
    y = targets_for(lik, model, params, x, k3)
    return model, params, x, y, lik


@given(seed=seed_st, fisher_type=st.sampled_from(["exact", "empirical"]),
       bias=st.sampled_from(["augmented", "separate"]))
def test_ekfac_closer_than_kfac_with_the_same_trace(seed, fisher_type, bias):
    model, params, x, y, lik = _problem(seed)
    if fisher_type == "exact":
        B = block_diagonal_part(dense_ggn(model, params, x, y, lik), model)
    else:
        B = block_diagonal_part(dense_empirical_fisher(model, params, x, y, lik), model)
    if bias == "separate":  # EKFAC/K-FAC with a separate bias approximate W and b blocks only
        B = cross_terms_removed(B, model)
    opts = dict(fisher_type=fisher_type, bias=bias)
    K = np.asarray(fl.kfac.matrix(fl.kfac.factors(model, params, x, y, lik, **opts), model))
    E = np.asarray(fl.kfac.matrix(fl.kfac.ekfac(model, params, x, y, lik, **opts), model))
    assert np.linalg.norm(E - B) <= np.linalg.norm(K - B) * (1 + 1e-12)
    assert np.trace(E) == pytest.approx(np.trace(B), rel=1e-11)
    np.testing.assert_allclose(E, E.T, atol=1e-14)


def test_ekfac_diagonal_in_its_basis_is_the_exact_blocks_diagonal():
    model, params, x, y, lik = _problem(4)
    B = dense_ggn(model, params, x, y, lik)
    ek = fl.kfac.ekfac(model, params, x, y, lik)
    start = 0
    for e, (W, b) in zip(ek, params):
        d = W.size + b.size
        out, inp = W.shape
        # parameter order -> [W b] row-major order, then rotate into U_G (x) U_A
        perm = fl.kfac.permutation(out, inp)
        Bwb = np.zeros((d, d))
        Bwb[np.ix_(perm, perm)] = B[start:start + d, start:start + d]
        U = np.kron(np.asarray(e.UG), np.asarray(e.UA))
        np.testing.assert_allclose(np.diag(U.T @ Bwb @ U), np.asarray(e.S).reshape(-1),
                                   rtol=1e-10, atol=1e-14)
        start += d


def test_ekfac_is_exact_for_one_example_and_strictly_better_on_a_drawn_net():
    model, params, x, y, lik = _problem(8, N=1)
    B = block_diagonal_part(dense_ggn(model, params, x, y, lik), model)
    E = fl.kfac.matrix(fl.kfac.ekfac(model, params, x, y, lik), model)
    assert rel_err(E, B) < 1e-10
    model, params, x, y, lik = _problem(8, N=10)
    B = block_diagonal_part(dense_ggn(model, params, x, y, lik), model)
    K = fl.kfac.matrix(fl.kfac.factors(model, params, x, y, lik), model)
    E = fl.kfac.matrix(fl.kfac.ekfac(model, params, x, y, lik), model)
    assert rel_err(E, B) < rel_err(K, B) - 1e-3  # strictly (measured 0.101 vs 0.111)


def test_ekfac_accepts_precomputed_factors_and_checks_them():
    model, params, x, y, lik = _problem(2)
    f = fl.kfac.factors(model, params, x, y, lik)
    a = fl.kfac.ekfac(model, params, x, y, lik)
    b = fl.kfac.ekfac(model, params, x, y, lik, factors=f)
    for u, v in zip(a, b):
        np.testing.assert_allclose(u.S, v.S, rtol=1e-12)
    with pytest.raises(ValueError, match="factors"):
        fl.kfac.ekfac(model, params, x, y, lik, factors=f[:1])
    with pytest.raises(ValueError, match="bias"):
        fl.kfac.ekfac(model, params, x, y, lik, factors=f, bias="separate")


def test_mc_ekfac_requires_a_key():
    model, params, x, y, lik = _problem(5)
    with pytest.raises(ValueError, match="key"):
        fl.kfac.ekfac(model, params, x, y, lik, fisher_type="mc")
