"""Per-token problems and their ground truth, written out independently of fisherlab's kernels.

A single-example model returns ``(R, C)`` outputs (one row per token). The ground truth is
built from the explicitly written summed token loss ``L = w sum_n sum_r l(f_r(theta, x_n),
y_{n,r})`` with each family's negative log-likelihood written here in closed form (not
fisherlab's likelihood code): the Hessian by ``jax.hessian`` of ``L`` on the flat parameters,
the GGN from per-example Jacobians and ``jax.hessian`` of the summed token loss in the outputs,
the Fisher from the families' closed-form output Fisher, and the gradient outer products from
``jax.grad`` (per sequence) or ``jax.jacrev`` of the vector of token losses (per token).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jax.scipy.special import gammaln

import fisherlab as fl

FAMILIES = ("categorical", "gaussian", "bernoulli", "poisson", "gaussian_mean_variance")
VARIANCE = 0.7
N, R, IN = 3, 3, 2


# ----------------------------------------------------------------------------- closed forms


def token_nll(family: str, o, y):
    """``-log p(y | o)`` of one token, written out (normalising constants included)."""
    if family == "categorical":
        return jax.nn.logsumexp(o) - o[y]
    if family == "gaussian":
        c = o.shape[0]
        return 0.5 * jnp.sum((y - o) ** 2) / VARIANCE + 0.5 * c * math.log(2 * math.pi * VARIANCE)
    if family == "bernoulli":
        return jnp.sum(jax.nn.softplus(o) - y * o)
    if family == "poisson":
        return jnp.sum(jnp.exp(o) - y * o + gammaln(y + 1.0))
    if family == "gaussian_mean_variance":
        d = o.shape[0] // 2
        mu, s = o[:d], o[d:]
        return 0.5 * jnp.sum(s + (y - mu) ** 2 * jnp.exp(-s) + math.log(2 * math.pi))
    raise ValueError(family)


def token_output_fisher(family: str, o):
    """Closed-form output Fisher ``E_y[grad log p grad log p^T]`` of one token."""
    if family == "categorical":
        p = jax.nn.softmax(o)
        return jnp.diag(p) - jnp.outer(p, p)
    if family == "gaussian":
        return jnp.eye(o.shape[0]) / VARIANCE
    if family == "bernoulli":
        s = jax.nn.sigmoid(o)
        return jnp.diag(s * (1 - s))
    if family == "poisson":
        return jnp.diag(jnp.exp(o))
    if family == "gaussian_mean_variance":
        d = o.shape[0] // 2
        return jnp.diag(jnp.concatenate([jnp.exp(-o[d:]), jnp.full((d,), 0.5)]))
    raise ValueError(family)


def likelihood_for(family: str):
    return {"categorical": fl.Categorical(), "gaussian": fl.Gaussian(variance=VARIANCE),
            "bernoulli": fl.Bernoulli(), "poisson": fl.Poisson(),
            "gaussian_mean_variance": fl.GaussianMeanVariance()}[family]


def num_classes(family: str) -> int:
    return 4 if family == "gaussian_mean_variance" else 3


# ----------------------------------------------------------------------------- models


def attention_model(params, x):
    """``(R, IN) -> (R, C)``: one softmax self-attention mixing of the tokens, tanh, linear.

    Every output row depends on every token, so the per-example Jacobian is dense across
    tokens (no accidental block structure).
    """
    q, k = x @ params["Wq"], x @ params["Wk"]
    mix = jax.nn.softmax(q @ k.T, axis=-1)
    h = jnp.tanh(mix @ x @ params["W1"] + params["b1"])
    return h @ params["W2"] + params["b2"]


def attention_params(seed: int, c: int):
    ks = jax.random.split(jax.random.key(seed), 6)
    return {"Wq": 0.8 * jax.random.normal(ks[0], (IN, IN), jnp.float64),
            "Wk": 0.8 * jax.random.normal(ks[1], (IN, IN), jnp.float64),
            "W1": 0.8 * jax.random.normal(ks[2], (IN, 3), jnp.float64),
            "b1": 0.3 * jax.random.normal(ks[3], (3,), jnp.float64),
            "W2": 0.8 * jax.random.normal(ks[4], (3, c), jnp.float64),
            "b2": 0.3 * jax.random.normal(ks[5], (c,), jnp.float64)}


def embedding_model(params, ids):
    """Integer token ids ``(R,)`` -> ``(R, C)``: embedding, causal running mean, tanh, linear."""
    e = params["E"][ids]
    r = e.shape[0]
    causal = jnp.tril(jnp.ones((r, r))) / jnp.arange(1.0, r + 1.0)[:, None]
    return jnp.tanh(causal @ e) @ params["W"].T + params["b"]


def embedding_params(seed: int, vocab: int, c: int):
    ks = jax.random.split(jax.random.key(seed), 3)
    return {"E": jax.random.normal(ks[0], (vocab, 2), jnp.float64),
            "W": jax.random.normal(ks[1], (c, 2), jnp.float64),
            "b": 0.3 * jax.random.normal(ks[2], (c,), jnp.float64)}


def targets_for(family: str, shape_nr, c: int, rng: np.random.Generator):
    if family == "categorical":
        return jnp.asarray(rng.integers(0, c, size=shape_nr), jnp.int64)
    if family == "gaussian":
        return jnp.asarray(rng.normal(size=shape_nr + (c,)), jnp.float64)
    if family == "bernoulli":
        return jnp.asarray(rng.integers(0, 2, size=shape_nr + (c,)), jnp.float64)
    if family == "poisson":
        return jnp.asarray(rng.integers(0, 4, size=shape_nr + (c,)), jnp.float64)
    return jnp.asarray(rng.normal(size=shape_nr + (c // 2,)), jnp.float64)


@functools.lru_cache(maxsize=None)
def problem(family: str, seed: int = 0):
    """``(f, params, x, y, likelihood)`` with the attention model, ``N = R = 3``."""
    c = num_classes(family)
    params = attention_params(seed, c)
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=(N, R, IN)), jnp.float64)
    y = targets_for(family, (N, R), c, rng)
    return attention_model, params, x, y, likelihood_for(family)


# ----------------------------------------------------------------------------- ground truth


class Truth:
    """Every reference of a per-token problem from the explicit token loss.

    ``weight(reduction, tokens)``: ``1/N``, ``1/(N R)`` or ``1``. Matrices are in
    ``ravel_pytree(params)`` order.
    """

    def __init__(self, family, f, params, x, y):
        self.family = family
        theta, unravel = ravel_pytree(params)
        self.theta = theta
        self.n = jax.tree_util.tree_leaves(x)[0].shape[0]
        nll = functools.partial(token_nll, family)

        def outputs(th):
            return jax.vmap(lambda xn: f(unravel(th), xn))(x)  # (N, R, C)

        def token_losses(th):  # (N, R)
            return jax.vmap(jax.vmap(nll))(outputs(th), y)

        def total(th):
            return jnp.sum(token_losses(th))

        @jax.jit
        def everything(th):
            outs = outputs(th)
            J = jax.jacrev(outputs)(th)  # (N, R, C, d)
            lam = jax.vmap(jax.hessian(lambda o, yn: jnp.sum(jax.vmap(nll)(o, yn))))(
                outs, y)  # (N, R, C, R, C): the full output Hessian, cross-token blocks included
            fout = jax.vmap(jax.vmap(functools.partial(token_output_fisher, family)))(outs)
            return dict(
                outputs=outs, J=J, hessian_sum=jax.hessian(total)(th),
                gradient_sum=jax.grad(total)(th),
                ggn_sum=jnp.einsum("nrcd,nrcse,nsef->df", J, lam, J),
                fisher_sum=jnp.einsum("nrcd,nrce,nref->df", J, fout, J),
                per_token=jax.jacrev(token_losses)(th))  # (N, R, d)

        with jax.enable_x64(True):
            arrays = {k: np.asarray(v) for k, v in everything(theta).items()}
        self.outputs, self.J = arrays["outputs"], arrays["J"]
        self.r = self.outputs.shape[1]
        self.hessian_sum, self.gradient_sum = arrays["hessian_sum"], arrays["gradient_sum"]
        self.ggn_sum, self.fisher_sum = arrays["ggn_sum"], arrays["fisher_sum"]
        self.token_grads = arrays["per_token"].reshape(-1, theta.shape[0])
        self.sequence_grads = arrays["per_token"].sum(axis=1)

    def weight(self, reduction: str, tokens: str) -> float:
        if reduction == "sum":
            return 1.0
        return 1.0 / (self.n * self.r) if tokens == "flatten" else 1.0 / self.n

    def grads(self, tokens: str):
        return self.token_grads if tokens == "flatten" else self.sequence_grads

    def reference(self, name: str, reduction: str = "mean", tokens: str = "sum"):
        w = self.weight(reduction, tokens)
        if name == "hessian":
            return w * self.hessian_sum
        if name == "ggn":
            return w * self.ggn_sum
        if name == "fisher":
            return w * self.fisher_sum
        if name == "gradient":
            return w * self.gradient_sum
        g = self.grads(tokens)
        if name == "empirical_fisher":
            return w * g.T @ g
        if name == "gradient_covariance":
            c = g - g.mean(axis=0)
            return w * c.T @ c
        raise ValueError(name)


@functools.lru_cache(maxsize=None)
def truth(family: str, seed: int = 0) -> Truth:
    f, params, x, y, _ = problem(family, seed)
    return Truth(family, f, params, x, y)
