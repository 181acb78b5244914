"""Naive K-FAC ground truth: brute-force dense curvature and entry-by-entry Kronecker blocks.

The dense curvature comes from full Jacobians of the model outputs with respect to the
flattened parameters (``ravel_pytree`` order), contracted with the output Fisher -- no K-FAC
code, no pre-activation gradients, no Kronecker products -- and is cross-checked with
``fl.ggn`` / ``fl.fisher`` / ``fl.empirical_fisher`` where those apply. K-FAC's structure
(block diagonal, Kronecker blocks, dropped weight--bias cross terms) is written out by loops
and slices, so a K-FAC matrix can be compared entry by entry. Also small building blocks for
K-FAC tests: multilayer perceptrons, one instance of every likelihood family, and targets
drawn from the model.

Model outputs may carry positions ``(..., C)``; the per-example loss is the sum over
positions, so the output Fisher is block-diagonal over positions (docs/CONVENTIONS.md, "K-FAC").
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from fisherlab import curvature, likelihoods, nn

__all__ = [
    "LIKELIHOODS",
    "block_diagonal_part",
    "cross_terms_removed",
    "dense_empirical_fisher",
    "dense_ggn",
    "gaussian_targets",
    "kron_block_by_loops",
    "layer_slices",
    "mlp",
    "naive_empirical_fisher",
    "naive_ggn",
    "rel_err",
    "targets_for",
]


def _jacobians(model, params, x):
    flat, unravel = ravel_pytree(params)
    J = jax.vmap(lambda xn: jax.jacobian(lambda th: model(unravel(th), xn).reshape(-1))(flat))(x)
    outs = jax.vmap(lambda xn: model(params, xn))(x)
    return J, outs  # J: (N, Q*C, d), outs: (N, ..., C)


def naive_ggn(model, params, x, likelihood):
    """``(1/N) sum_n J_n^T F_out(f_n) J_n`` (Fisher = GGN for natural parameters)."""
    return np.asarray(_naive_ggn(model, params, x, likelihood))


@functools.partial(jax.jit, static_argnums=(0, 3))
def _naive_ggn(model, params, x, likelihood):
    J, outs = _jacobians(model, params, x)
    N, C = outs.shape[0], outs.shape[-1]
    flat_outs = outs.reshape((N, -1, C))
    F = jax.vmap(jax.vmap(likelihood._output_fisher))(flat_outs)  # (N, Q, C, C)
    Q = F.shape[1]
    Fbd = jnp.einsum("nqcd,qr->nqcrd", F, jnp.eye(Q)).reshape((N, Q * C, Q * C))
    return jnp.einsum("nai,nab,nbj->ij", J, Fbd, J) / N


def naive_empirical_fisher(model, params, x, y, likelihood):
    """``(1/N) sum_n g_n g_n^T`` with ``g_n = J_n^T grad_f l_n`` (data labels)."""
    return np.asarray(_naive_ef(model, params, x, jnp.asarray(y), likelihood))


@functools.partial(jax.jit, static_argnums=(0, 4))
def _naive_ef(model, params, x, y, likelihood):
    J, outs = _jacobians(model, params, x)
    N, C = outs.shape[0], outs.shape[-1]
    flat_outs = outs.reshape((N, -1, C))
    Q = flat_outs.shape[1]
    yq = jnp.reshape(jnp.asarray(y), (N, Q) + jnp.shape(y)[1 + outs.ndim - 2:])
    r = jax.vmap(jax.vmap(likelihood._output_grad))(flat_outs, yq).reshape((N, Q * C))
    g = jnp.einsum("nai,na->ni", J, r)
    return g.T @ g / N


def dense_ggn(model, params, x, y, likelihood):
    """The dense curvature that exact K-FAC approximates: ``(1/N) sum_n J^T F_out J``.

    That is the GGN for natural-parameter likelihoods (cross-checked with ``fl.ggn``) and the
    Fisher otherwise (cross-checked with ``fl.fisher``) when the outputs carry no positions.
    """
    naive = naive_ggn(model, params, x, likelihood)
    if jax.eval_shape(lambda: model(params, x[0])).ndim != 1:
        return naive
    if likelihood.natural:
        G = np.asarray(curvature.ggn(model, params, x, y, likelihood))
    else:
        G = np.asarray(curvature.fisher(model, params, x, likelihood))
    np.testing.assert_allclose(G, naive, rtol=1e-10, atol=1e-12)
    return G


def dense_empirical_fisher(model, params, x, y, likelihood):
    """``(1/N) sum_n g_n g_n^T``, cross-checked with ``fl.empirical_fisher`` when the outputs
    carry no positions."""
    naive = naive_empirical_fisher(model, params, x, y, likelihood)
    if jax.eval_shape(lambda: model(params, x[0])).ndim != 1:
        return naive
    E = np.asarray(curvature.empirical_fisher(model, params, x, y, likelihood))
    np.testing.assert_allclose(E, naive, rtol=1e-10, atol=1e-12)
    return E


def layer_slices(model):
    """Parameter-order slice of every Dense/Conv2d layer (sizes from the params themselves)."""
    params = model.init(jax.random.key(0))
    out, start = [], 0
    for W, b in params:
        size = int(np.size(W) + np.size(b))
        out.append(slice(start, start + size))
        start += size
    return out


def block_diagonal_part(M, model):
    """Zero every entry of ``M`` outside the per-layer diagonal blocks."""
    M = np.asarray(M)
    out = np.zeros_like(M)
    for s in layer_slices(model):
        out[s, s] = M[s, s]
    return out


def kron_block_by_loops(A, G, out_features, in_features, *, separate=False):
    """The layer block in parameter order, entry by entry, with no permutation.

    Parameter ``W[i, j]`` is at ``i * in + j``, ``b[i]`` at ``out * in + i``; the K-FAC entry
    between ``theta_(i, j)`` and ``theta_(k, l)`` is ``G[i, k] * A[j, l]`` where the bias has
    input index ``j = in`` (the constant 1 of ``abar``). With ``separate`` there are no
    weight--bias entries and the bias--bias entry is ``G[i, k]``.
    """
    A, G = np.asarray(A), np.asarray(G)
    d = out_features * (in_features + 1)
    coords = [(i, j) for i in range(out_features) for j in range(in_features)]
    coords += [(i, in_features) for i in range(out_features)]
    M = np.zeros((d, d))
    for p, (i, j) in enumerate(coords):
        for q, (k, l) in enumerate(coords):
            wb_p, wb_q = j == in_features, l == in_features
            if not separate:
                M[p, q] = G[i, k] * A[j, l]
            elif wb_p and wb_q:
                M[p, q] = G[i, k]
            elif not wb_p and not wb_q:
                M[p, q] = G[i, k] * A[j, l]
    return M


def rel_err(X, Y):
    """Relative Frobenius error ``||X - Y|| / max(||Y||, tiny)``."""
    X, Y = np.asarray(X), np.asarray(Y)
    return float(np.linalg.norm(X - Y) / max(np.linalg.norm(Y), np.finfo(float).tiny))


def mlp(widths, activation):
    """``Dense(widths[0], widths[1])``, ``activation()``, ..., ``Dense(widths[-2], widths[-1])``."""
    layers = []
    for k, (a, b) in enumerate(zip(widths, widths[1:])):
        layers.append(nn.Dense(a, b))
        if k < len(widths) - 2:
            layers.append(activation())
    return nn.Sequential(layers)


def gaussian_targets(key, shape):
    """Standard normal float64 targets of ``shape``."""
    return jax.random.normal(key, shape, jnp.float64)


#: one likelihood of every family, by name: ``LIKELIHOODS[name]()`` builds it.
LIKELIHOODS = {
    "categorical": likelihoods.Categorical,
    "gaussian": functools.partial(likelihoods.Gaussian, variance=0.7),
    "bernoulli": likelihoods.Bernoulli,
    "poisson": likelihoods.Poisson,
    # outputs (mean, log-variance): not natural, so exact K-FAC approximates the Fisher
    "gaussian_mean_variance": likelihoods.GaussianMeanVariance,
}


def targets_for(likelihood, model, params, x, key):
    """Labels drawn from the model's own predictive (a valid target of every family)."""
    outs = jax.vmap(lambda xn: model(params, xn))(x)
    C = outs.shape[-1]
    flat = outs.reshape((-1, C))
    y = likelihood.sample(key, flat, 1)[0]
    return jnp.reshape(y, outs.shape[:-1] + y.shape[1:])


def cross_terms_removed(M, model):
    """Zero the weight--bias entries of every layer block of ``M`` (parameter order)."""
    M = np.array(M)
    params = model.init(jax.random.key(0))
    for s, (W, b) in zip(layer_slices(model), params):
        w = slice(s.start, s.start + W.size)
        bb = slice(s.start + W.size, s.stop)
        M[w, bb] = 0.0
        M[bb, w] = 0.0
    return M
