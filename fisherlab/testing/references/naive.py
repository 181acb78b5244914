"""Naive-but-obviously-right curvature, for testing the fast paths of :mod:`fisherlab.curvature`.

Each function is the textbook definition written as directly as possible: the Hessian is
``jax.hessian`` of the mean loss; the others are explicit Python loops over examples
(and samples) with per-example Jacobians from ``jax.jacfwd`` and output-space matrices
from ``jax.hessian`` of the likelihood's per-example NLL (not its closed-form kernels,
except the output Fisher, whose closed form *is* the definition of :func:`fisher`).
Slow (one dispatch per example; the per-example pieces are ``jax.jit``-ed with the model and
likelihood as static arguments, only to avoid re-compiling them for every example and every
call); meant for tiny problems in tests. ``f`` and ``likelihood`` must be hashable. No validation beyond
what the fast path already did: pass well-formed inputs.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from fisherlab._core.precision import reference

__all__ = ["hessian", "ggn", "fisher", "fisher_mc", "empirical_fisher", "gradient_covariance",
           "gradient"]


def _setup(params, x):
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
    theta, _ = ravel_pytree(params)
    x = jax.tree_util.tree_map(
        lambda a: jnp.asarray(a, jnp.float64) if jnp.issubdtype(jnp.asarray(a).dtype,
                                                                jnp.floating) else jnp.asarray(a),
        x)
    n = jax.tree_util.tree_leaves(x)[0].shape[0]
    return params, theta, x, n


def _example(x, n):
    return jax.tree_util.tree_map(lambda a: a[n], x)


def _scale(n, reduction):
    return 1.0 / n if reduction == "mean" else 1.0


# Per-example pieces, jitted with the model and likelihood static (so they compile once per
# model/likelihood/shape, not once per call). Each is the plain definition.

_static2 = functools.partial(jax.jit, static_argnums=(0, 1))


@functools.partial(jax.jit, static_argnums=(0,))
def _jacobian(f, params, xn):
    """``J_n = d f(theta, x_n) / d theta`` (C, d) by forward mode."""
    theta, unravel = ravel_pytree(params)
    return jax.jacfwd(lambda th: f(unravel(th), xn))(theta)


@functools.partial(jax.jit, static_argnums=(0,))
def _output(f, params, xn):
    return f(params, xn)


@functools.partial(jax.jit, static_argnums=(0,))
def _nll_hessian(likelihood, out, yn):
    """``Lambda_n = grad^2_f (-log p(y_n | f))`` by autodiff of the NLL."""
    return jax.hessian(likelihood._nll)(out, yn)


@functools.partial(jax.jit, static_argnums=(0,))
def _output_fisher(likelihood, out):
    return likelihood._output_fisher(out)


@_static2
def _example_grad(f, likelihood, params, xn, yn):
    """``grad_theta (-log p(y_n | f(theta, x_n)))`` (d,)."""
    theta, unravel = ravel_pytree(params)
    return jax.grad(lambda th: likelihood._nll(f(unravel(th), xn), yn))(theta)


def _batch_loss(f, likelihood, reduction, params, x, y):
    theta, unravel = ravel_pytree(params)

    def loss(th):
        ls = jax.vmap(lambda xn, yn: likelihood._nll(f(unravel(th), xn), yn))(x, y)
        return jnp.mean(ls) if reduction == "mean" else jnp.sum(ls)

    return theta, loss


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _batch_hessian(f, likelihood, reduction, params, x, y):
    theta, loss = _batch_loss(f, likelihood, reduction, params, x, y)
    return jax.hessian(loss)(theta)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _batch_gradient(f, likelihood, reduction, params, x, y):
    theta, loss = _batch_loss(f, likelihood, reduction, params, x, y)
    return jax.grad(loss)(theta)


@reference
def hessian(f, params, x, y, likelihood, *, reduction="mean"):
    """``jax.hessian`` of the (mean or summed) loss of the whole batch."""
    params, _, x, _ = _setup(params, x)
    return _batch_hessian(f, likelihood, reduction, params, x, jnp.asarray(y))


@reference
def gradient(f, params, x, y, likelihood, *, reduction="mean"):
    """``jax.grad`` of the (mean or summed) loss of the whole batch."""
    params, _, x, _ = _setup(params, x)
    return _batch_gradient(f, likelihood, reduction, params, x, jnp.asarray(y))


@reference
def ggn(f, params, x, y, likelihood, *, reduction="mean"):
    """Loop: ``sum_n J_n^T Lambda_n J_n`` with ``Lambda_n = jax.hessian(nll)``."""
    params, theta, x, n = _setup(params, x)
    y = jnp.asarray(y)
    total = jnp.zeros((theta.size, theta.size))
    for i in range(n):
        xn = _example(x, i)
        J = _jacobian(f, params, xn)
        lam = _nll_hessian(likelihood, _output(f, params, xn), y[i])
        total = total + J.T @ lam @ J
    return total * _scale(n, reduction)


@reference
def fisher(f, params, x, likelihood, *, reduction="mean"):
    """Loop: ``sum_n J_n^T F_out(f_n) J_n`` (closed-form output Fisher)."""
    params, theta, x, n = _setup(params, x)
    total = jnp.zeros((theta.size, theta.size))
    for i in range(n):
        xn = _example(x, i)
        J = _jacobian(f, params, xn)
        total = total + J.T @ _output_fisher(likelihood, _output(f, params, xn)) @ J
    return total * _scale(n, reduction)


@reference
def fisher_mc(f, params, x, likelihood, key, num_samples, *, reduction="mean"):
    """Loop over examples and samples: ``(1/S) sum_s g_ns g_ns^T`` with sampled labels.

    The labels are ``likelihood.sample(key, outputs, num_samples)`` (``(S, N, ...)``), the
    same labels as the fast path by the documented key convention.
    """
    params, theta, x, n = _setup(params, x)
    outputs = jnp.stack([_output(f, params, _example(x, i)) for i in range(n)])
    labels = likelihood.sample(key, outputs, num_samples)
    total = jnp.zeros((theta.size, theta.size))
    for i in range(n):
        xn = _example(x, i)
        for s in range(num_samples):
            g = _example_grad(f, likelihood, params, xn, labels[s, i])
            total = total + jnp.outer(g, g) / num_samples
    return total * _scale(n, reduction)


def _per_example_grads(f, params, x, y, n, likelihood):
    return [_example_grad(f, likelihood, params, _example(x, i), y[i]) for i in range(n)]


@reference
def empirical_fisher(f, params, x, y, likelihood, *, reduction="mean"):
    """Loop: ``sum_n g_n g_n^T``."""
    params, theta, x, n = _setup(params, x)
    y = jnp.asarray(y)
    total = jnp.zeros((theta.size, theta.size))
    for g in _per_example_grads(f, params, x, y, n, likelihood):
        total = total + jnp.outer(g, g)
    return total * _scale(n, reduction)


@reference
def gradient_covariance(f, params, x, y, likelihood, *, reduction="mean"):
    """Loop: ``sum_n (g_n - gbar)(g_n - gbar)^T`` with ``gbar`` the mean gradient."""
    params, theta, x, n = _setup(params, x)
    y = jnp.asarray(y)
    grads = _per_example_grads(f, params, x, y, n, likelihood)
    gbar = sum(grads) / n
    total = jnp.zeros((theta.size, theta.size))
    for g in grads:
        total = total + jnp.outer(g - gbar, g - gbar)
    return total * _scale(n, reduction)
