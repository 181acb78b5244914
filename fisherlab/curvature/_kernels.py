"""Compiled kernels behind :mod:`fisherlab.curvature` (traced, no validation).

Gauss-Newton-type matrices (GGN, Fisher, Monte-Carlo Fisher) use the factored form
``sum_n w_n J_n^T Lambda_n J_n``: per chunk (:mod:`fisherlab.curvature._chunking`) the Jacobians
``J`` ``(B, C, d)`` come from reverse mode when ``C < d`` (``C`` backward passes per example) and
forward mode otherwise (``d`` tangents), then ``Lambda J`` is one batched ``einsum`` and
``J^T (Lambda J)`` is multiplied out only on and above the diagonal, in blocks of parameter
panels (:mod:`fisherlab.curvature._symmetric`): about half of the ``2 B C d^2`` flops of the full
product. The empirical Fisher uses per-example gradients ``g_n`` (one backward pass each) and
the same blocks of ``(B, d)^T (B, d)``.

Every kernel is a pair ``(partial, finish)``: ``partial(params, batch, *rest)`` sums over the
examples of ``batch = (x, extra, w)`` (inputs, targets or keys, weights; leading axis ``N``)
and ``finish`` turns that sum into the result (writes the ``d x d`` matrix from its blocks).
:func:`compiled` jits ``finish(partial(...))``; given a device mesh it runs ``partial`` on each
device's own examples under ``jax.shard_map`` and adds the partial sums with one ``psum``
across the devices before ``finish`` (:mod:`fisherlab.curvature._sharding`).

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
from fisherlab.curvature import _layerwise, _sharding, _symmetric
from fisherlab.curvature._chunking import HIGHEST, accumulate, flat_model, symmetrize

__all__ = ["compiled", "resolve_mode"]

_CACHE: collections.OrderedDict = collections.OrderedDict()
_CACHE_SIZE = 64


def _identity(out):
    return out


def _assemble_blocks(blocks):
    """The symmetric ``(d, d)`` matrix from its upper blocks over the default panels."""
    d = sum(q.shape[1] for q in blocks[0])
    return _symmetric.assemble(blocks, _symmetric.panels(d), d)


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


def _per_example_loss(f_flat, likelihood):
    def loss(th, xn, yn):
        return likelihood._nll(f_flat(th, xn), yn)

    return loss


# ----------------------------------------------------------------------------- dense


def _build_gauss_newton(f, likelihood, kind, mode, num_samples, chunk_size):
    """GGN (``Lambda = grad^2_f l``), Fisher (``F_out``), Monte-Carlo Fisher, in blocks."""
    def partial(params, batch):
        x, extra, w = batch
        theta, f_flat = flat_model(f, params)
        d = theta.shape[0]
        parts = _symmetric.panels(d)
        jac = jax.vmap(_jacobian_with_outputs(f_flat, mode), in_axes=(None, 0))

        def body(chunk, wb):
            xb, ex = chunk
            J, outs = jac(theta, xb)  # (B, C, d), (B, C)
            J = J.reshape(J.shape[0], -1, d)
            if kind == "fisher_mc":
                scores = sampling.output_grads(likelihood, outs, sampling.sample_each(
                    likelihood, ex, outs, num_samples))  # (B, S, C)
                if num_samples < J.shape[1]:
                    # S < C: the S sampled gradients J^T r_s are the cheaper rows.
                    rows = jnp.einsum("bsc,bcd->bsd", scores, J, precision=HIGHEST)
                    rows = rows.reshape(-1, d)
                    ws = jnp.repeat(wb / num_samples, num_samples)
                    return _symmetric.block_products(rows * ws[:, None], rows, parts)
                lam = jnp.einsum("bsc,bse->bce", scores, scores,
                                 precision=HIGHEST) / num_samples
            elif kind == "ggn":
                lam = jax.vmap(likelihood._output_hessian)(outs, ex)
            else:
                lam = jax.vmap(likelihood._output_fisher)(outs)
            lam_j = jnp.einsum("bce,bed->bcd", lam * wb[:, None, None], J, precision=HIGHEST)
            b, c = J.shape[:2]
            return _symmetric.block_products(J.reshape(b * c, d), lam_j.reshape(b * c, d),
                                             parts)

        return accumulate(body, (x, extra), w, chunk_size)

    return partial, _assemble_blocks


def _build_gradient_outer(f, likelihood, chunk_size):
    """``sum_n w_n (g_n - c)(g_n - c)^T`` from per-example gradients (``c`` a shift)."""
    def partial(params, batch, shift):
        x, y, w = batch
        theta, f_flat = flat_model(f, params)
        d = theta.shape[0]
        parts = _symmetric.panels(d)
        per_grad = jax.vmap(jax.grad(_per_example_loss(f_flat, likelihood)),
                            in_axes=(None, 0, 0))

        def body(chunk, wb):
            xb, yb = chunk
            g = per_grad(theta, xb, yb) - shift[None, :]
            return _symmetric.block_products(g * wb[:, None], g, parts)

        return accumulate(body, (x, y), w, chunk_size)

    return partial, _assemble_blocks


def _loss_derivative(derivative, finish):
    """A builder of ``derivative`` (``jax.grad`` or ``jax.hessian``) of the weighted loss sum."""
    def build(f, likelihood, chunk_size):
        def partial(params, batch):
            x, y, w = batch
            theta, f_flat = flat_model(f, params)
            loss = _per_example_loss(f_flat, likelihood)

            def body(chunk, wb):
                xb, yb = chunk
                return derivative(lambda th: jnp.sum(
                    wb * jax.vmap(loss, in_axes=(None, 0, 0))(th, xb, yb)))(theta)

            return accumulate(body, (x, y), w, chunk_size)

        return partial, finish

    return build


_build_gradient = _loss_derivative(jax.grad, _identity)
_build_hessian = _loss_derivative(jax.hessian, symmetrize)


def _build_layerwise(model, likelihood, kind, num_samples, chunk_size):
    partial, finish = _layerwise.build(model, likelihood, kind, num_samples, chunk_size)
    return (lambda params, batch: partial(params, *batch)), finish


# ----------------------------------------------------------------------------- matvecs


def _build_hvp(f, likelihood):
    def partial(params, batch, v):
        x, y, w = batch
        theta, f_flat = flat_model(f, params)
        loss = _per_example_loss(f_flat, likelihood)

        def total(th):
            return jnp.sum(w * jax.vmap(loss, in_axes=(None, 0, 0))(th, x, y))

        return jax.jvp(jax.grad(total), (theta,), (v,))[1]

    return partial, _identity


def _build_output_space_vp(f, likelihood, kind):
    """``v -> sum_n w_n J_n^T Lambda_n J_n v``: JVP, output-space matrix, transposed JVP.

    ``kind``: ``"ggn"`` (``Lambda_n`` the output Hessian at ``y_n``), ``"fisher"`` (the output
    Fisher) or ``"fisher_mc"`` (``y`` the sampled labels ``(N, S, ...)``, ``Lambda_n`` the
    sampled output Fisher ``(1/S) sum_s r_s r_s^T``, never formed).
    """

    def partial(params, batch, v):
        x, y, w = batch
        theta, f_flat = flat_model(f, params)

        def outputs(th):
            return jax.vmap(f_flat, in_axes=(None, 0))(th, x)

        outs, jvp_fn = jax.linearize(outputs, theta)
        jv = jvp_fn(v)  # (N, C)
        if kind == "fisher_mc":
            # sampled output Fisher (1/S) sum_s r_s r_s^T applied without forming it:
            # u_n = (1/S) sum_s r_s (r_s^T J_n v)
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

    return partial, _identity


def _build_empirical_fisher_vp(f, likelihood):
    """``v -> sum_n w_n g_n (g_n^T v)`` through the Jacobian of the loss vector."""

    def partial(params, batch, v):
        x, y, w = batch
        theta, f_flat = flat_model(f, params)
        loss = _per_example_loss(f_flat, likelihood)

        def losses(th):
            return jax.vmap(loss, in_axes=(None, 0, 0))(th, x, y)

        _, jvp_fn = jax.linearize(losses, theta)
        gv = jvp_fn(v)  # (N,): g_n^T v
        (out,) = jax.linear_transpose(jvp_fn, theta)(w * gv)
        return out

    return partial, _identity


_BUILDERS = {
    "gauss_newton": _build_gauss_newton,
    "layerwise": _build_layerwise,
    "gradient_outer": _build_gradient_outer,
    "gradient": _build_gradient,
    "hessian": _build_hessian,
    "hvp": _build_hvp,
    "output_space_vp": _build_output_space_vp,
    "empirical_fisher_vp": _build_empirical_fisher_vp,
}

#: kernel calls, by name: a count per ``compiled(...)(...)`` call (tests assert which ran).
CALLS: collections.Counter = collections.Counter()


def _jit(name, f, likelihood, static, mesh):
    partial, finish = _BUILDERS[name](f, likelihood, *static)
    if mesh is None:
        def run(params, batch, *rest):
            return finish(partial(params, batch, *rest))
    else:
        run = _sharding.sharded(partial, finish, mesh)
    return jax.jit(run)


def compiled(name: str, f, likelihood, *static, mesh=None):
    """The jitted kernel ``name`` for this model/likelihood/static configuration (cached).

    The kernel is called as ``kernel(params, (x, extra, w), *rest)``; with ``mesh`` (a
    ``(mesh, axis)`` pair from :func:`fisherlab.curvature._sharding.batch_mesh`) the batch is
    split over the devices of ``axis``.
    """
    key = (name, f, likelihood, mesh) + tuple(static)
    try:
        hash(key)
    except TypeError:
        fn = _jit(name, f, likelihood, static, mesh)
    else:
        fn = _CACHE.get(key)
        if fn is None:
            fn = _jit(name, f, likelihood, static, mesh)
            _CACHE[key] = fn
            if len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        else:
            _CACHE.move_to_end(key)

    def counted(*args):
        CALLS[name] += 1
        if mesh is None or any(isinstance(a, jax.core.Tracer)
                               for a in jax.tree_util.tree_leaves(args)):
            return fn(*args)  # inside a caller's trace the caller's mesh context applies
        # traced under the mesh, so arrays created inside the kernel (the d x d result the
        # blocks are written into) live on the same mesh as the cross-device sum
        with jax.set_mesh(mesh[0]):
            return fn(*args)

    counted.jitted = fn
    return counted
