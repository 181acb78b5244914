"""Shared machinery of the K-FAC references: validation and per-example quantities.

For every parametric layer (``Dense``, ``Conv2d``) of a :class:`~fisherlab.nn.Sequential`
the K-FAC references need, per example ``n``:

* the *layer inputs as a matrix* ``a_{n,p}`` of shape ``(P, in')``: one row per weight-sharing
  position ``p`` (``P = 1`` for a plain dense layer on a vector; ``P = T`` for a dense layer on a
  sequence ``(T, in)``; ``P = H_out W_out`` patches for a convolution, ``in' = C_in k_h k_w``);
* the *pre-activation gradients* ``v_{n,k,p} = J_{s_{n,p}}^T u_{n,k}`` (shape ``(K, P, out)``) for
  ``K`` output-space cotangents ``u_{n,k}`` with weights ``w_k``:

  - ``"exact"``: ``u_{n,k}`` = the columns of ``M_n`` with ``M_n M_n^T = F_out(f_n)``
    (block-diagonal over output positions), ``w_k = 1``, so
    ``sum_k w_k v v^T = J_s^T F_out J_s = E_{y ~ p(.|f_n)}[g g^T]`` in closed form;
  - ``"mc"``: ``u_{n,k} = grad_f l(f_n, y_k)``, ``y_k ~ p(.|f_n)``, ``k = 1..S``, ``w_k = 1/S``;
  - ``"empirical"``: ``u_{n,1} = grad_f l(f_n, y_n)`` (the data label), ``w_1 = 1``.

The pre-activations are perturbed by ``eps`` (zero) and ``v`` is the gradient with respect to
``eps`` -- one reverse-mode pass per cotangent, vmapped. The layer is evaluated as
``s = a_mat W_mat^T + b`` with ``W_mat = W.reshape(out, -1)`` (PyTorch's row-major layout), so
``grad_{W_mat} = sum_p v_p a_p^T``; a test checks that this im2col forward reproduces the
model's own forward pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab import nn
from fisherlab._sampled import output_grads, sample_each
from fisherlab._validation import check_choice, check_int, check_key

FISHER_TYPES = ("exact", "mc", "empirical")
APPROXES = ("expand", "reduce")
BIASES = ("augmented", "separate")


# ----------------------------------------------------------------------------- validation
def check_model(model, name: str = "model"):
    if not isinstance(model, nn.Sequential):
        raise TypeError(
            f"{name} must be a fisherlab.nn.Sequential (K-FAC needs the layer structure), "
            f"got {type(model).__name__}")
    layers = [l for l in model.layers if l.has_params]
    if not layers:
        raise ValueError(
            f"{name} has no Dense or Conv2d layer, so K-FAC has no factors to compute: "
            f"got {model!r}")
    return layers


def check_options(fisher_type, approx, bias):
    check_choice(fisher_type, "fisher_type", FISHER_TYPES)
    check_choice(approx, "approx", APPROXES)
    check_choice(bias, "bias", BIASES)


def check_likelihood(likelihood):
    from fisherlab.likelihoods import Likelihood

    if not isinstance(likelihood, Likelihood):
        raise TypeError(
            f"likelihood must be a fisherlab likelihood (e.g. fl.Categorical()), "
            f"got {type(likelihood).__name__}")


# ----------------------------------------------------------------------------- layers as matrices
def layer_matrix_input(layer, a):
    """``(a_mat (P, in'), unflatten)`` with ``s = a_mat W_mat^T + b`` and ``unflatten(s)`` the output."""
    if isinstance(layer, nn.Dense):
        lead = a.shape[:-1]
        amat = a.reshape((-1, a.shape[-1]))
        return amat, (lambda s: s.reshape(lead + (s.shape[-1],)))
    if isinstance(layer, nn.Conv2d):
        patches, (ho, wo) = layer.patches(a)  # (ho*wo, C_in*kh*kw), rows in row-major (i, j)
        return patches, (lambda s: s.T.reshape((s.shape[-1], ho, wo)))
    raise TypeError(f"K-FAC supports Dense and Conv2d layers, got {layer!r}")  # pragma: no cover


def weight_matrix(W):
    return W.reshape((W.shape[0], -1))


def forward_eps(model, params, x, eps):
    """The model's forward pass with ``s_k <- s_k + eps_k``; returns ``(out, [a_mat_k])``."""
    a, k, inputs = x, 0, []
    for layer in model.layers:
        if layer.has_params:
            W, b = params[k]
            amat, unflatten = layer_matrix_input(layer, a)
            s = amat @ weight_matrix(W).T + b
            if eps is not None:
                s = s + eps[k]
            inputs.append(amat)
            a = unflatten(s)
            k += 1
        else:
            a = layer(None, a)
    return a, inputs


# ----------------------------------------------------------------------------- per-example quantities
def _fisher_sqrt(likelihood, out):
    """``M`` with ``M M^T = F_out(out)``: the likelihood's own factor, else a symmetric eigh root."""
    fn = getattr(type(likelihood), "_output_fisher_sqrt", None)
    if fn is not None:
        try:
            return likelihood._output_fisher_sqrt(out)
        except NotImplementedError:
            pass
    F = likelihood._output_fisher(out)
    w, V = jnp.linalg.eigh((F + F.T) / 2)
    return (V * jnp.sqrt(jnp.maximum(w, 0.0))) @ V.T


def output_cotangents(likelihood, fisher_type, num_samples, out, y, key):
    """The output-space cotangents ``u_{n,k}`` of one example, ``(K, Q, C)`` (``out`` is ``(..., C)``).

    ``"exact"``: the columns of ``M_q`` (``M_q M_q^T = F_out(f_q)``) one output position at a
    time; ``"empirical"``: ``grad_f l(f_q, y_q)`` at the data labels; ``"mc"``:
    ``grad_f l(f_q, y_{s,q})`` at ``S`` labels drawn with this example's ``key``. With one
    output position (``Q = 1``) the labels are ``likelihood._sample(key, f, S)`` -- exactly the
    draw of :func:`fisherlab.fisher_mc` for this example's key (``jax.random.split(key, N)[n]``);
    with ``Q > 1`` positions the key is split once more, ``jax.random.split(key, Q)[q]`` for
    position ``q`` (= ``likelihood.sample(key, f.reshape(Q, C), S)``).
    """
    C = out.shape[-1]
    flat = out.reshape((-1, C))  # (Q, C)
    Q = flat.shape[0]
    if fisher_type == "exact":
        M = jax.vmap(lambda o: _fisher_sqrt(likelihood, o))(flat)  # (Q, C, R)
        # cotangent (q, c): position q carries column c of M_q, all other positions zero
        eye = jnp.eye(Q, dtype=jnp.float64)
        R = M.shape[-1]  # M M^T = F_out, M of shape (C, R)
        return jnp.einsum("qr,qic->qcri", eye, M).reshape((Q * R, Q, C))
    event = jnp.shape(y)[len(out.shape) - 1:]
    if fisher_type == "empirical":
        yq = jnp.reshape(y, (Q,) + event)
        return jax.vmap(likelihood._output_grad)(flat, yq)[None]  # (1, Q, C)
    # "mc": one key per output position; no re-split when Q = 1 (same labels as fisher_mc)
    keys = key[None] if Q == 1 else jax.random.split(key, Q)
    ys = sample_each(likelihood, keys, flat, num_samples)  # (Q, S, ...)
    return jnp.moveaxis(output_grads(likelihood, flat, ys), 1, 0)  # (S, Q, C)


def per_example(model, params, likelihood, fisher_type, num_samples, x, y, key):
    """For one example: ``([a_mat_k (P_k, in'_k)], [v_k (K, P_k, out_k)], out)``.

    ``out`` has shape ``(..., C)``; its leading axes (if any) are output positions whose
    losses are summed: ``l_n = sum_q l(f_{n,q}, y_{n,q})``.
    """
    eps_shapes = jax.eval_shape(lambda: [
        jax.ShapeDtypeStruct((am.shape[0], W.shape[0]), jnp.float64)
        for am, (W, _) in zip(forward_eps(model, params, x, None)[1], params)])
    eps0 = [jnp.zeros(s.shape, jnp.float64) for s in eps_shapes]

    def fwd(eps):
        out, inputs = forward_eps(model, params, x, eps)
        return out, inputs

    out, vjp_fn, inputs = jax.vjp(fwd, eps0, has_aux=True)
    cots = output_cotangents(likelihood, fisher_type, num_samples, out, y, key)
    cots = cots.reshape((cots.shape[0],) + out.shape)
    (vs,) = jax.vmap(vjp_fn)(cots)  # list of (K, P, out)
    return inputs, vs, out


def cotangent_weight(fisher_type, num_samples):
    return 1.0 / num_samples if fisher_type == "mc" else 1.0


def batched(model, params, likelihood, fisher_type, num_samples, x, y, key):
    """``per_example`` vmapped over the batch: lists of ``(N, P, in')`` and ``(N, K, P, out)``."""
    N = x.shape[0]
    if fisher_type == "mc":
        keys = jax.random.split(key, N)
    else:
        keys = jnp.zeros((N,), jnp.float64)  # unused placeholder
    if y is None:
        y = jnp.zeros((N,), jnp.float64)  # unused placeholder (exact / mc)

    def one(xn, yn, kn):
        inputs, vs, _ = per_example(model, params, likelihood, fisher_type, num_samples,
                                    xn, yn, kn)
        return inputs, vs

    return jax.vmap(one)(x, y, keys)


# ----------------------------------------------------------------------------- inputs
def prepare(model, params, x, y, likelihood, fisher_type, key, num_samples):
    """Validate everything; returns float64 ``(x, y, key, num_samples, N)``."""
    from fisherlab._validation import as_float_array

    from fisherlab.kfac._checks import check_params_finite

    model.check_params(params)
    check_params_finite(params)
    check_likelihood(likelihood)
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    x = as_float_array(x, "x", min_ndim=1)
    if x.shape[0] == 0:
        raise ValueError(f"x must contain at least one example, got shape {tuple(x.shape)}")
    x = jnp.asarray(x, jnp.float64)
    N = int(x.shape[0])
    out = jax.eval_shape(jax.vmap(lambda xn: model(params, xn)), x)
    if len(out.shape) < 2:
        raise ValueError(f"the model outputs must have shape (N, ..., C), got {out.shape}")
    C = out.shape[-1]
    Q = int(np.prod(out.shape[1:-1], dtype=np.int64)) if len(out.shape) > 2 else 1
    if fisher_type == "mc":
        key = check_key(key)
    outputs = jnp.reshape(jax.vmap(lambda xn: model(params, xn))(x), (N * Q, C))
    checked = likelihood.check_outputs(outputs, "model outputs")
    if fisher_type == "empirical" or y is not None:
        if y is None:
            raise ValueError("y is required for fisher_type='empirical' (the data labels)")
        y_arr = np.asarray(y) if not isinstance(y, jax.core.Tracer) else y
        if y_arr.ndim < 1 or y_arr.shape[0] != N:
            raise ValueError(
                f"batch sizes differ: x has {N} examples (shape {tuple(x.shape)}), "
                f"y has shape {tuple(np.shape(y))}")
        pos = tuple(out.shape[1:-1])
        if tuple(y_arr.shape[1:1 + len(pos)]) != pos:
            raise ValueError(
                f"y must have shape (N, {', '.join(map(str, pos))}, ...) to match model outputs "
                f"of shape {out.shape}, got {tuple(y_arr.shape)}")
        event = tuple(y_arr.shape[1 + len(pos):])
        yq = likelihood.check_targets(jnp.reshape(y_arr, (N * Q,) + event) if pos else y_arr,
                                      checked, "y")
        y = jnp.reshape(jnp.asarray(yq), (N,) + pos + event)
    return x, y, key, num_samples, N
