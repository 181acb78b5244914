"""EKFAC's less-used branches against independent ground truth: a separate bias on a layer with
weight sharing under Monte-Carlo sampling (the bias eigenvalues are the diagonal of the exact
bias block in ``U_G``), the entry checks of given ``factors`` and the refused layer kinds, each
with its message."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fisherlab as fl
from fisherlab.testing.references.kfac import dense_ggn, layer_slices, targets_for


def _conv_problem(seed=5, N=3, H=5, W=4):
    """Conv2d(2 -> 4) with 5 x 2 = 10 output positions, then a Dense head to C = 3 classes:
    the channel count, the class count, the position count and the batch size all differ."""
    conv = fl.nn.Conv2d(2, 4, (3, 2), stride=(1, 2), padding=(1, 0))
    ho, wo = conv.output_size(H, W)
    assert (ho, wo) == (5, 2)
    model = fl.nn.Sequential([conv, fl.nn.Tanh(), fl.nn.Flatten(), fl.nn.Dense(4 * ho * wo, 3)])
    lik = fl.Categorical()
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    params = model.init(k1)
    x = jax.random.normal(k2, (N, 2, H, W), jnp.float64)
    y = targets_for(lik, model, params, x, k3)
    return model, params, x, y, lik


@pytest.mark.parametrize("fisher_type", ["exact", "mc"])
def test_separate_bias_eigenvalues_are_the_exact_blocks_diagonal_in_the_basis(fisher_type):
    """With ``bias="separate"``, ``S`` is ``diag(U^T B_WW U)`` (``U = U_G (x) U_A``, ``W`` row-major
    is its parameter order) and ``Sb`` is ``diag(U_G^T B_bb U_G)``, for ``B`` the curvature that
    ``fisher_type`` names: the GGN (brute-force Jacobians) or the Monte-Carlo Fisher of
    ``fl.fisher_mc`` with the same key and ``S = 2`` samples (so the ``1/S`` weight shows). The
    convolution's bias gradient sums its 10 positions, so ``Sb`` is a sum, not a mean, over them."""
    model, params, x, y, lik = _conv_problem()
    key = jax.random.key(11)
    if fisher_type == "exact":
        B = np.asarray(dense_ggn(model, params, x, y, lik))
        opts = {}
    else:
        B = np.asarray(fl.fisher_mc(model, params, x, lik, key, num_samples=2))
        opts = dict(key=key, num_samples=2)
    ek = fl.kfac.ekfac(model, params, x, y, lik, fisher_type=fisher_type, bias="separate",
                       **opts)
    for e, s, (W, b) in zip(ek, layer_slices(model), params):
        nw = W.size
        Bw = B[s, s][:nw, :nw]
        Bb = B[s, s][nw:, nw:]
        UA, UG = np.asarray(e.UA), np.asarray(e.UG)
        U = np.kron(UG, UA)
        S, Sb = np.asarray(e.S), np.asarray(e.S_bias)
        assert S.shape == (W.shape[0], nw // W.shape[0]) and Sb.shape == b.shape
        np.testing.assert_allclose(S.reshape(-1), np.diag(U.T @ Bw @ U), rtol=1e-9,
                                   atol=1e-12 * np.abs(Bw).max())
        np.testing.assert_allclose(Sb, np.diag(UG.T @ Bb @ UG), rtol=1e-9,
                                   atol=1e-12 * np.abs(Bb).max())


def _mlp_problem():
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 2)])
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (5, 3), jnp.float64)
    return model, params, x, fl.Categorical()


def test_given_factors_must_be_pairs():
    """A three-entry tuple passes the per-block count of the list but is not an ``(A, G)`` pair."""
    model, params, x, lik = _mlp_problem()
    f = fl.kfac.factors(model, params, x, None, lik)
    bad = [tuple(f[0]) + (f[0].A,), f[1]]
    with pytest.raises(ValueError,
                       match=r"factors\[0\] must be a KFACFactors \(A, G\) pair, got tuple"):
        fl.kfac.ekfac(model, params, x, None, lik, factors=bad)
    bad = [f[0], [f[1].A]]
    with pytest.raises(ValueError,
                       match=r"factors\[1\] must be a KFACFactors \(A, G\) pair, got list"):
        fl.kfac.ekfac(model, params, x, None, lik, factors=bad)


@pytest.mark.parametrize("given", [False, True])
def test_exact_blocks_are_refused_by_name(given):
    """A LayerNorm has an exact block, which EKFAC has no Kronecker eigenbasis for: refused
    before any work, naming the layer, with or without given factors."""
    model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.LayerNorm(4), fl.nn.Dense(4, 2)])
    params = model.init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (5, 3), jnp.float64)
    kw = {}
    if given:
        kw["factors"] = fl.kfac.factors(model, params, x, None, fl.Categorical())
    with pytest.raises(TypeError, match=r"fl\.kfac\.ekfac does not support model\.layers\[1\] = "
                                        r"LayerNorm\(d=4"):
        fl.kfac.ekfac(model, params, x, None, fl.Categorical(), **kw)
