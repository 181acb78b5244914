"""Compiled kernels behind :mod:`fisherlab.curvature` (traced, no validation).

Gauss-Newton-type matrices (GGN, Fisher, Monte-Carlo Fisher) use the factored form
``sum_n w_n J_n^T Lambda_n J_n``: per chunk (:mod:`fisherlab.curvature._chunking`) the Jacobians
``J`` ``(B, C, d)`` come from reverse mode when ``C < d`` (``C`` backward passes per example) and
forward mode otherwise (``d`` tangents), then ``Lambda J`` is one batched ``einsum`` and
``J^T (Lambda J)`` one matrix product of ``(B C, d)`` matrices: ``2 B C d^2`` flops, the cost of
the dense result itself. The empirical Fisher uses per-example gradients ``g_n`` (one backward
pass each) and one ``(B, d)^T (B, d)`` product.

The matrix-free products compute ``M v = J^T (Lambda (J v))``: a Jacobian-vector product
(``jax.linearize``), an output-space matrix, and its transpose (``jax.linear_transpose``), over
the whole batch (Schraudolph, 2002).

Compiled functions are cached per (model, likelihood, static configuration) when those are
hashable, so repeated calls do not re-trace.

References:
  N. N. Schraudolph, "Fast curvature matrix-vector products for second-order gradient
  descent", Neural Computation 14(7), 2002.
"""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp

from fisherlab._core import sampling
from fisherlab.curvature import _layerwise
from fisherlab.curvature._chunking import HIGHEST, accumulate, flat_model, symmetrize

__all__ = ["compiled", "resolve_mode"]

_CACHE: collections.OrderedDict = collections.OrderedDict()
_CACHE_SIZE = 64


# ----------------------------------------------------------------------------- pieces


def _jacobian_with_outputs(f_flat, mode: str):
    """``(theta, x_n) -> (J_n (C, d), f_n (C,))`` by reverse or forward mode."""

    def both(th, xn):
        out = f_flat(th, xn)
        return out, out

    jac = jax.jacrev if mode == "reverse" else jax.jacfwd
    return jac(both, has_aux=True)


def resolve_mode(mode: str, num_outputs: int, num_params: int) -> str:
    """``"auto"`` -> ``"reverse"`` when ``C < d`` else ``"forward"``; other modes unchanged."""
    if mode != "auto":
        return mode
    return "reverse" if num_outputs < num_params else "forward"


def _jt_lambda_j(J, lam, w):
    """``sum_b w_b J_b^T Lambda_b J_b`` as one einsum and one ``(B C, d)`` matmul."""
    b, c, d = J.shape
    lam_j = jnp.einsum("bce,bed->bcd", lam * w[:, None, None], J, precision=HIGHEST)
    return jnp.matmul(J.reshape(b * c, d).T, lam_j.reshape(b * c, d), precision=HIGHEST)


# ----------------------------------------------------------------------------- builders


def _build_gauss_newton(f, likelihood, kind, mode, num_samples):
    """GGN (``Lambda = grad^2_f l``), Fisher (``F_out``), Monte-Carlo Fisher."""

    def run(params, x_chunks, extra_chunks, w_chunks):
        theta, f_flat = flat_model(f, params)
        d = theta.shape[0]
        jac = jax.vmap(_jacobian_with_outputs(f_flat, mode), in_axes=(None, 0))

        def body(chunk):
            xb, extra, wb = chunk
            J, outs = jac(theta, xb)  # (B, C, d), (B, C)
            J = J.reshape(J.shape[0], -1, d)
            if kind == "ggn":
                lam = jax.vmap(likelihood._output_hessian)(outs, extra)
            elif kind == "fisher":
                lam = jax.vmap(likelihood._output_fisher)(outs)
            else:  # fisher_mc: extra holds one PRNG key per example
                scores = sampling.output_grads(likelihood, outs, sampling.sample_each(
                    likelihood, extra, outs, num_samples))  # (B, S, C)
                if num_samples < J.shape[1]:
                    # S < C: the S sampled gradients J^T r_s are the cheaper rows.
                    rows = jnp.einsum("bsc,bcd->bsd", scores, J, precision=HIGHEST)
                    rows = rows.reshape(-1, d)
                    ws = jnp.repeat(wb / num_samples, num_samples)
                    return jnp.matmul((rows * ws[:, None]).T, rows, precision=HIGHEST)
                lam = jnp.einsum("bsc,bse->bce", scores, scores,
                                 precision=HIGHEST) / num_samples
            return _jt_lambda_j(J, lam, wb)

        m = accumulate(body, jnp.zeros((d, d), jnp.float64), (x_chunks, extra_chunks, w_chunks))
        return symmetrize(m)

    return run


def _per_example_loss(f_flat, likelihood):
    def loss(th, xn, yn):
        return likelihood._nll(f_flat(th, xn), yn)

    return loss


def _build_gradient_outer(f, likelihood):
    """``sum_n w_n (g_n - c)(g_n - c)^T`` from per-example gradients (``c`` a shift)."""

    def run(params, x_chunks, y_chunks, w_chunks, shift):
        theta, f_flat = flat_model(f, params)
        d = theta.shape[0]
        per_grad = jax.vmap(jax.grad(_per_example_loss(f_flat, likelihood)),
                            in_axes=(None, 0, 0))

        def body(chunk):
            xb, yb, wb = chunk
            g = per_grad(theta, xb, yb) - shift[None, :]
            return jnp.matmul((g * wb[:, None]).T, g, precision=HIGHEST)

        m = accumulate(body, jnp.zeros((d, d), jnp.float64), (x_chunks, y_chunks, w_chunks))
        return symmetrize(m)

    return run


def _build_gradient(f, likelihood):
    def run(params, x_chunks, y_chunks, w_chunks):
        theta, f_flat = flat_model(f, params)
        loss = _per_example_loss(f_flat, likelihood)

        def body(chunk):
            xb, yb, wb = chunk
            return jax.grad(lambda th: jnp.sum(
                wb * jax.vmap(loss, in_axes=(None, 0, 0))(th, xb, yb)))(theta)

        return accumulate(body, jnp.zeros_like(theta), (x_chunks, y_chunks, w_chunks))

    return run


def _build_hessian(f, likelihood):
    def run(params, x_chunks, y_chunks, w_chunks):
        theta, f_flat = flat_model(f, params)
        d = theta.shape[0]
        loss = _per_example_loss(f_flat, likelihood)

        def body(chunk):
            xb, yb, wb = chunk
            return jax.hessian(lambda th: jnp.sum(
                wb * jax.vmap(loss, in_axes=(None, 0, 0))(th, xb, yb)))(theta)

        m = accumulate(body, jnp.zeros((d, d), jnp.float64), (x_chunks, y_chunks, w_chunks))
        return symmetrize(m)

    return run


# ----------------------------------------------------------------------------- matvecs


def _build_hvp(f, likelihood):
    def run(params, x, y, w, v):
        theta, f_flat = flat_model(f, params)
        loss = _per_example_loss(f_flat, likelihood)

        def total(th):
            return jnp.sum(w * jax.vmap(loss, in_axes=(None, 0, 0))(th, x, y))

        return jax.jvp(jax.grad(total), (theta,), (v,))[1]

    return run


def _build_output_space_vp(f, likelihood, kind):
    """``v -> sum_n w_n J_n^T Lambda_n J_n v``: JVP, output-space matrix, transposed JVP.

    ``kind``: ``"ggn"`` (``Lambda_n`` the output Hessian at ``y_n``), ``"fisher"`` (the output
    Fisher) or ``"fisher_mc"`` (``y`` the sampled labels ``(N, S, ...)``, ``Lambda_n`` the
    sampled output Fisher ``(1/S) sum_s r_s r_s^T``, never formed).
    """

    def run(params, x, y, w, v):
        theta, f_flat = flat_model(f, params)

        def outputs(th):
            return jax.vmap(f_flat, in_axes=(None, 0))(th, x)

        outs, jvp_fn = jax.linearize(outputs, theta)
        jv = jvp_fn(v)  # (N, C)
        if kind == "fisher_mc":
            # y: the sampled labels (N, S, ...); sampled output Fisher (1/S) sum_s r_s r_s^T
            # applied without forming it: u_n = (1/S) sum_s r_s (r_s^T J_n v)
            r = sampling.output_grads(likelihood, outs, y)
            rjv = jnp.einsum("nsc,nc->ns", r, jv.reshape(jv.shape[0], -1), precision=HIGHEST)
            u = (w / r.shape[1])[:, None] * jnp.einsum("nsc,ns->nc", r, rjv,
                                                       precision=HIGHEST)
        else:
            if kind == "ggn":
                lam = jax.vmap(likelihood._output_hessian)(outs, y)
            else:
                lam = jax.vmap(likelihood._output_fisher)(outs)
            u = w[:, None] * jnp.einsum("nce,ne->nc", lam, jv.reshape(jv.shape[0], -1),
                                        precision=HIGHEST)
        (out,) = jax.linear_transpose(jvp_fn, theta)(u.reshape(jv.shape))
        return out

    return run


def _build_empirical_fisher_vp(f, likelihood):
    """``v -> sum_n w_n g_n (g_n^T v)`` through the Jacobian of the loss vector."""

    def run(params, x, y, w, v):
        theta, f_flat = flat_model(f, params)
        loss = _per_example_loss(f_flat, likelihood)

        def losses(th):
            return jax.vmap(loss, in_axes=(None, 0, 0))(th, x, y)

        _, jvp_fn = jax.linearize(losses, theta)
        gv = jvp_fn(v)  # (N,): g_n^T v
        (out,) = jax.linear_transpose(jvp_fn, theta)(w * gv)
        return out

    return run


_BUILDERS = {
    "gauss_newton": _build_gauss_newton,
    "layerwise": _layerwise.build,
    "gradient_outer": _build_gradient_outer,
    "gradient": _build_gradient,
    "hessian": _build_hessian,
    "hvp": _build_hvp,
    "output_space_vp": _build_output_space_vp,
    "empirical_fisher_vp": _build_empirical_fisher_vp,
}


def compiled(name: str, f, likelihood, *static):
    """The jitted kernel ``name`` for this model/likelihood/static configuration (cached)."""
    builder = _BUILDERS[name]
    key = (name, f, likelihood) + tuple(static)
    try:
        hash(key)
    except TypeError:
        return jax.jit(builder(f, likelihood, *static))
    fn = _CACHE.get(key)
    if fn is None:
        fn = jax.jit(builder(f, likelihood, *static))
        _CACHE[key] = fn
        if len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    return fn
