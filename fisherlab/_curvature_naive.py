"""Naive-but-obviously-right curvature, for testing the fast paths of :mod:`fisherlab.curvature`.

Each function is the textbook definition written as directly as possible: the Hessian is
``jax.hessian`` of the mean loss; the others are explicit Python loops over examples
(and samples) with per-example Jacobians from ``jax.jacfwd`` and output-space matrices
from ``jax.hessian`` of the likelihood's per-example NLL (not its closed-form kernels,
except the output Fisher, whose closed form *is* the definition of :func:`fisher`).
Slow (one dispatch per example; the per-example pieces are ``jax.jit``-ed only to avoid
re-tracing them for every example); meant for tiny problems in tests. No validation beyond
what the fast path already did: pass well-formed inputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from fisherlab._precision import reference

__all__ = ["hessian", "ggn", "fisher", "fisher_mc", "empirical_fisher", "gradient_covariance",
           "gradient"]


def _setup(f, params, x):
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
    theta, unravel = ravel_pytree(params)

    def f_flat(th, xn):
        return f(unravel(th), xn)

    x = jax.tree_util.tree_map(
        lambda a: jnp.asarray(a, jnp.float64) if jnp.issubdtype(jnp.asarray(a).dtype,
                                                                jnp.floating) else jnp.asarray(a),
        x)
    n = jax.tree_util.tree_leaves(x)[0].shape[0]
    return theta, f_flat, x, n


def _example(x, n):
    return jax.tree_util.tree_map(lambda a: a[n], x)


def _scale(n, reduction):
    return 1.0 / n if reduction == "mean" else 1.0


@reference
def hessian(f, params, x, y, likelihood, *, reduction="mean"):
    """``jax.hessian`` of the (mean or summed) loss of the whole batch."""
    theta, f_flat, x, n = _setup(f, params, x)
    y = jnp.asarray(y)

    def loss(th):
        ls = jax.vmap(lambda xn, yn: likelihood._nll(f_flat(th, xn), yn))(x, y)
        return jnp.mean(ls) if reduction == "mean" else jnp.sum(ls)

    return jax.jit(jax.hessian(loss))(theta)


@reference
def gradient(f, params, x, y, likelihood, *, reduction="mean"):
    """``jax.grad`` of the (mean or summed) loss of the whole batch."""
    theta, f_flat, x, n = _setup(f, params, x)
    y = jnp.asarray(y)

    def loss(th):
        ls = jax.vmap(lambda xn, yn: likelihood._nll(f_flat(th, xn), yn))(x, y)
        return jnp.mean(ls) if reduction == "mean" else jnp.sum(ls)

    return jax.jit(jax.grad(loss))(theta)


@reference
def ggn(f, params, x, y, likelihood, *, reduction="mean"):
    """Loop: ``sum_n J_n^T Lambda_n J_n`` with ``Lambda_n = jax.hessian(nll)``."""
    theta, f_flat, x, n = _setup(f, params, x)
    y = jnp.asarray(y)
    jac, out, lam_fn = (jax.jit(jax.jacfwd(f_flat)), jax.jit(f_flat),
                        jax.jit(jax.hessian(likelihood._nll)))
    total = jnp.zeros((theta.size, theta.size))
    for i in range(n):
        xn = _example(x, i)
        J = jac(theta, xn)
        lam = lam_fn(out(theta, xn), y[i])
        total = total + J.T @ lam @ J
    return total * _scale(n, reduction)


@reference
def fisher(f, params, x, likelihood, *, reduction="mean"):
    """Loop: ``sum_n J_n^T F_out(f_n) J_n`` (closed-form output Fisher)."""
    theta, f_flat, x, n = _setup(f, params, x)
    jac, out, fout = (jax.jit(jax.jacfwd(f_flat)), jax.jit(f_flat),
                      jax.jit(likelihood._output_fisher))
    total = jnp.zeros((theta.size, theta.size))
    for i in range(n):
        xn = _example(x, i)
        J = jac(theta, xn)
        total = total + J.T @ fout(out(theta, xn)) @ J
    return total * _scale(n, reduction)


@reference
def fisher_mc(f, params, x, likelihood, key, num_samples, *, reduction="mean"):
    """Loop over examples and samples: ``(1/S) sum_s g_ns g_ns^T`` with sampled labels.

    The labels are ``likelihood.sample(key, outputs, num_samples)`` (``(S, N, ...)``), the
    same labels as the fast path by the documented key convention.
    """
    theta, f_flat, x, n = _setup(f, params, x)
    outputs = jax.vmap(f_flat, in_axes=(None, 0))(theta, x)
    labels = likelihood.sample(key, outputs, num_samples)
    grad = _example_grad(f_flat, likelihood)
    total = jnp.zeros((theta.size, theta.size))
    for i in range(n):
        xn = _example(x, i)
        for s in range(num_samples):
            g = grad(theta, xn, labels[s, i])
            total = total + jnp.outer(g, g) / num_samples
    return total * _scale(n, reduction)


def _example_grad(f_flat, likelihood):
    """``(theta, x_n, y_n) -> grad_theta (-log p(y_n | f(theta, x_n)))`` (jitted)."""
    return jax.jit(jax.grad(lambda th, xn, yn: likelihood._nll(f_flat(th, xn), yn)))


def _per_example_grads(f_flat, theta, x, y, n, likelihood):
    grad = _example_grad(f_flat, likelihood)
    return [grad(theta, _example(x, i), y[i]) for i in range(n)]


@reference
def empirical_fisher(f, params, x, y, likelihood, *, reduction="mean"):
    """Loop: ``sum_n g_n g_n^T``."""
    theta, f_flat, x, n = _setup(f, params, x)
    y = jnp.asarray(y)
    total = jnp.zeros((theta.size, theta.size))
    for g in _per_example_grads(f_flat, theta, x, y, n, likelihood):
        total = total + jnp.outer(g, g)
    return total * _scale(n, reduction)


@reference
def gradient_covariance(f, params, x, y, likelihood, *, reduction="mean"):
    """Loop: ``sum_n (g_n - gbar)(g_n - gbar)^T`` with ``gbar`` the mean gradient."""
    theta, f_flat, x, n = _setup(f, params, x)
    y = jnp.asarray(y)
    grads = _per_example_grads(f_flat, theta, x, y, n, likelihood)
    gbar = sum(grads) / n
    total = jnp.zeros((theta.size, theta.size))
    for g in grads:
        total = total + jnp.outer(g - gbar, g - gbar)
    return total * _scale(n, reduction)
