"""K-FAC for Conv2d (KFC, Grosse & Martens 2016) via im2col patches.

Independent ground truth: patches built by explicit Python loops, pre-activation gradients
of the convolution output taken through the model's own ``lax.conv`` forward pass, and the
brute-force dense curvature of ``fisherlab.testing.references.kfac``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fisherlab as fl
from fisherlab.testing.references.kfac import (block_diagonal_part, dense_empirical_fisher, dense_ggn, rel_err,
                            targets_for)


def _conv_problem(seed, N=3, H=5, W=4, kernel=(3, 2), stride=(1, 2), padding=(1, 0)):
    conv = fl.nn.Conv2d(2, 3, kernel, stride=stride, padding=padding)
    ho, wo = conv.output_size(H, W)
    model = fl.nn.Sequential([conv, fl.nn.Tanh(), fl.nn.Flatten(), fl.nn.Dense(3 * ho * wo, 3)])
    lik = fl.Categorical()
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    params = model.init(k1)
    x = jax.random.normal(k2, (N, 2, H, W), jnp.float64)
    y = targets_for(lik, model, params, x, k3)
    return model, params, x, y, lik, conv


def _loop_patches(conv, a):
    a = np.asarray(a)
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    xp = np.pad(a, ((0, 0), (ph, ph), (pw, pw)))
    ho, wo = conv.output_size(a.shape[1], a.shape[2])
    rows = []
    for i in range(ho):
        for j in range(wo):
            rows.append(xp[:, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(-1))
    return np.stack(rows)


def test_conv_factors_from_the_kfc_definition():
    """A = 1/(N P) sum patches patches^T (augmented), G = 1/N sum_n sum_locations g g^T."""
    model, params, x, y, lik, conv = _conv_problem(0)
    N = x.shape[0]
    pats = [np.concatenate([_loop_patches(conv, xn), np.ones((_loop_patches(conv, xn).shape[0],
                                                                  1))], 1) for xn in x]
    P = pats[0].shape[0]
    A = sum(p.T @ p for p in pats) / (N * P)

    def loss_of_eps(eps, xn, yn):  # perturb the conv output map, model's own lax.conv forward
        s = conv(params[0], xn) + eps
        a = jnp.tanh(s).reshape(-1)
        return lik._nll(model.layers[-1](params[1], a), yn)

    ho, wo = conv.output_size(x.shape[2], x.shape[3])
    grad_eps = jax.jit(jax.grad(loss_of_eps))
    G = np.zeros((3, 3))
    for xn, yn in zip(x, y):
        g = np.asarray(grad_eps(jnp.zeros((3, ho, wo)), xn, yn)).reshape(3, -1)
        G += g @ g.T / N
    f = fl.kfac.factors(model, params, x, y, lik, fisher_type="empirical")
    np.testing.assert_allclose(f[0].A, A, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(f[0].G, G, rtol=1e-12, atol=1e-14)
    fr = fl.kfac.factors(model, params, x, y, lik, fisher_type="empirical", approx="reduce")
    means = np.stack([p.mean(0) for p in pats])
    np.testing.assert_allclose(fr[0].A, means.T @ means / N, rtol=1e-12, atol=1e-14)


def test_conv_kfac_exact_when_the_kernel_covers_the_input():
    """One output location (P = 1) and N = 1: no weight sharing, so K-FAC is exact."""
    conv = fl.nn.Conv2d(2, 3, (3, 2), padding=0)
    model = fl.nn.Sequential([conv, fl.nn.Sigmoid(), fl.nn.Flatten(), fl.nn.Dense(3, 2)])
    lik = fl.Gaussian()
    params = model.init(jax.random.key(1))
    x = jax.random.normal(jax.random.key(2), (1, 2, 3, 2), jnp.float64)
    y = targets_for(lik, model, params, x, jax.random.key(3))
    K = fl.kfac.matrix(fl.kfac.factors(model, params, x, y, lik), model)
    B = block_diagonal_part(dense_ggn(model, params, x, y, lik), model)
    assert rel_err(K, B) < 1e-12


@pytest.mark.parametrize("fisher_type", ["exact", "empirical"])
def test_conv_ekfac_trace_and_closeness(fisher_type):
    """EKFAC projects the true per-example gradients sum_p g_p abar_p^T: its trace equals the
    exact block's (independent dense Jacobians through lax.conv) and it is closer than KFC."""
    model, params, x, y, lik, conv = _conv_problem(4)
    if fisher_type == "exact":
        B = block_diagonal_part(dense_ggn(model, params, x, y, lik), model)
    else:
        B = block_diagonal_part(dense_empirical_fisher(model, params, x, y, lik), model)
    K = np.asarray(fl.kfac.matrix(fl.kfac.factors(model, params, x, y, lik,
                                                  fisher_type=fisher_type), model))
    E = np.asarray(fl.kfac.matrix(fl.kfac.ekfac(model, params, x, y, lik,
                                                fisher_type=fisher_type), model))
    assert np.trace(E) == pytest.approx(np.trace(B), rel=1e-10)
    assert np.linalg.norm(E - B) <= np.linalg.norm(K - B) * (1 + 1e-12)
    assert rel_err(K, B) > 1e-3  # weight sharing: KFC is an approximation here


def test_conv_matrix_parameter_order_matches_pytorch_layout():
    """W (out, in, kh, kw) flattens row-major like W.reshape(out, in*kh*kw): the K-FAC entry of
    (W[o,c,u,v], W[o',c',u',v']) is G[o,o'] A[(c,u,v),(c',u',v')]."""
    conv = fl.nn.Conv2d(2, 2, 2)
    model = fl.nn.Sequential([conv])
    rng = np.random.default_rng(0)
    A = rng.normal(size=(9, 9))
    G = rng.normal(size=(2, 2))
    K = np.asarray(fl.kfac.matrix([fl.kfac.KFACFactors(A, G)], model))
    W = np.zeros((2, 2, 2, 2))
    idx = np.arange(W.size).reshape(W.shape)
    o, c, u, v = 1, 0, 1, 1
    o2, c2, u2, v2 = 0, 1, 0, 1
    assert K[idx[o, c, u, v], idx[o2, c2, u2, v2]] == G[o, o2] * A[c * 4 + u * 2 + v,
                                                                   c2 * 4 + u2 * 2 + v2]
    bias0 = W.size  # b[o] follows W; its input index is the augmented 1 (index 8)
    assert K[bias0 + 1, idx[0, 1, 1, 0]] == G[1, 0] * A[8, 1 * 4 + 1 * 2 + 0]
