"""Per-example, per-layer quantities of a problem, recomputed for the formula families.

For a :class:`fisherlab.nn.Sequential` problem, one jitted pass per model (shared by every
problem on that architecture) returns, per example ``n`` and parametric layer ``k``:

* ``J`` -- the Jacobian of the outputs with respect to the flat parameters ``(Q C, d)``;
* ``Js[k]`` / ``Ja[k]`` -- the Jacobians of the outputs with respect to the pre-activations
  ``s_k`` and the post-activations ``phi(s_k)`` (after the elementwise activations that follow
  the layer), each ``(Q C, P_k, out_k)``;
* ``a[k]`` -- the layer inputs as a matrix ``(P_k, in'_k)`` (im2col patches for ``Conv2d``),
  and ``s[k]`` ``(P_k, out_k)``.

``forms`` (one int per activation kind, :data:`ACTIVATIONS`) replaces the *derivative* used
by back-propagation -- the forward pass is unchanged: ``0`` the true derivative, ``1`` the
derivative evaluated at the output ``a = phi(s)`` instead of at ``s``, ``2`` the output form of
the derivative (``1 - a^2`` for tanh, ``a (1 - a)`` for the sigmoid) evaluated at ``s``. The
forms are traced, so all of them share one compiled program.

Outputs with positions (``(Q, C)`` per example, a token model) are flattened to ``Q C`` and
their output-space matrices are block-diagonal over the positions (the per-example loss is
the sum over positions, CONVENTIONS.md).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from fisherlab import nn
from fisherlab._core.precision import float64
from fisherlab._core.sampling import output_grads

__all__ = ["ACTIVATIONS", "layers", "output_matrices", "position_counts", "sandwich"]

#: activation kinds whose derivative form can be replaced, and the names of forms 1 and 2
ACTIVATIONS = {
    "Tanh": ("tanh' evaluated at the output a = tanh(s) instead of at s: 1 - tanh(a)^2",
             "the output form 1 - a^2 of tanh' evaluated at the pre-activation s: 1 - s^2"),
    "Sigmoid": ("sigmoid' evaluated at the output a = sigmoid(s) instead of at s: "
                "sigmoid(a)(1 - sigmoid(a))",
                "the output form a(1 - a) of sigmoid' evaluated at the pre-activation s: "
                "s(1 - s)"),
}
_KINDS = tuple(ACTIVATIONS)
_ELEMENTWISE = (nn.Tanh, nn.Sigmoid, nn.ReLU, nn.Identity) + tuple(
    c for c in (getattr(nn, "GELU", None),) if c is not None)


def _make_activation(kind):
    phi = {"Tanh": jnp.tanh, "Sigmoid": jax.nn.sigmoid}[kind]

    def true_d(s):
        a = phi(s)
        return 1.0 - a * a if kind == "Tanh" else a * (1.0 - a)

    def out_form(v):  # the derivative written in terms of the output, evaluated at v
        return 1.0 - v * v if kind == "Tanh" else v * (1.0 - v)

    @jax.custom_jvp
    def act(s, form):
        return phi(s)

    @act.defjvp
    def _jvp(primals, tangents):
        s, form = primals
        ds = tangents[0]
        a = phi(s)
        d = jnp.where(form == 0, true_d(s), jnp.where(form == 1, true_d(a), out_form(s)))
        return a, d * ds

    return act


_ACT = {k: _make_activation(k) for k in _KINDS}


def _forward(model, params, x, eps_s, eps_a, forms):
    """Outputs with ``s_k += eps_s[k]`` and ``phi(s_k) += eps_a[k]``; plus inputs, preacts."""
    a, k, i, layers = x, 0, 0, model.layers
    inputs, preacts = [], []
    while i < len(layers):
        layer = layers[i]
        if not layer.has_params:
            a = _apply(layer, a, forms)
            i += 1
            continue
        W, b = params[k]
        if isinstance(layer, nn.Dense):
            amat = a.reshape((-1, a.shape[-1]))
            lead = a.shape[:-1]
            s = (amat @ W.T + b).reshape(lead + (W.shape[0],))
        else:  # Conv2d: the layer's own forward (its im2col view is tested against it)
            amat = layer.patches(a)[0]
            s = layer(params[k], a)
        inputs.append(amat)
        s = s + eps_s[k]
        preacts.append(s)
        a, i = s, i + 1
        while i < len(layers) and isinstance(layers[i], _ELEMENTWISE):
            a = _apply(layers[i], a, forms)
            i += 1
        a = a + eps_a[k]
        k += 1
    return a, inputs, preacts


def _apply(layer, a, forms):
    kind = type(layer).__name__
    if kind in _ACT:
        return _ACT[kind](a, forms[_KINDS.index(kind)])
    return layer(None, a)


def _as_rows(layer, t):
    """``(..., out)`` (Dense) or ``(out, H, W)`` (Conv2d) -> ``(P, out)``."""
    if isinstance(layer, nn.Conv2d):
        return t.reshape((t.shape[0], -1)).T
    return t.reshape((-1, t.shape[-1]))


@functools.partial(jax.jit, static_argnums=(0,))
def _layers_jit(model, params, x, forms):
    flat, unravel = ravel_pytree(params)
    s_shapes = [jax.ShapeDtypeStruct(p.shape, p.dtype) for p in jax.eval_shape(
        lambda xi: _forward(model, params, xi, _ZeroList(), _ZeroList(), forms)[2], x[0])]
    plist = [l for l in model.layers if l.has_params]

    def one(xi):
        es = [jnp.zeros(s.shape, jnp.float64) for s in s_shapes]
        ea = [jnp.zeros(s.shape, jnp.float64) for s in s_shapes]

        def out(fl, e_s, e_a):
            return _forward(model, unravel(fl), xi, e_s, e_a, forms)[0].reshape(-1)

        J, Js, Ja = jax.jacrev(out, argnums=(0, 1, 2))(flat, es, ea)
        _, inputs, preacts = _forward(model, params, xi, es, ea, forms)
        Js = [jax.vmap(functools.partial(_as_rows, l))(j) for l, j in zip(plist, Js)]
        Ja = [jax.vmap(functools.partial(_as_rows, l))(j) for l, j in zip(plist, Ja)]
        return J, Js, Ja, inputs, [_as_rows(l, s) for l, s in zip(plist, preacts)]

    return jax.vmap(one)(x)


class _ZeroList:
    """``eps[k]`` = 0 for every ``k`` (used to read the shapes of the pre-activations)."""

    def __getitem__(self, k):
        return 0.0


def layers(problem, forms=None) -> dict | None:
    """The per-layer quantities of a ``fl.nn.Sequential`` problem as NumPy arrays (cached).

    Returns None for a plain function ``f`` (no layer structure). ``forms``: a tuple with one
    int per :data:`ACTIVATIONS` kind (default: the true derivatives).
    """
    if problem.model is None:
        return None
    forms = tuple(forms or (0,) * len(_KINDS))
    key = ("diagnose_layers", forms)
    if key not in problem._cache:
        with float64():
            J, Js, Ja, a, s = _layers_jit(problem.model, problem.params, problem.x,
                                          jnp.asarray(forms, jnp.int32))
        problem._cache[key] = dict(
            J=np.asarray(J), Js=[np.asarray(t) for t in Js], Ja=[np.asarray(t) for t in Ja],
            a=[np.asarray(t) for t in a], s=[np.asarray(t) for t in s])
    return problem._cache[key]


def activation_kinds(problem):
    """The replaceable activation kinds present in the model, in :data:`ACTIVATIONS` order."""
    if problem.model is None:
        return []
    present = {type(l).__name__ for l in problem.model.layers}
    return [k for k in _KINDS if k in present]


def forms_for(kind, form):
    """The ``forms`` tuple replacing the derivative of ``kind`` by ``form`` (1 or 2)."""
    return tuple(form if k == kind else 0 for k in _KINDS)


def position_counts(problem):
    """``[(P, description)]`` for the parametric layers shared over ``P > 1`` positions."""
    if problem.model is None:
        return []
    key = "diagnose_positions"
    if key not in problem._cache:
        with float64():
            pre = jax.eval_shape(lambda xi: problem.model.forward_with_intermediates(
                problem.params, xi)[2], problem.x[0])
        out, seen = [], set()
        for k, (layer, s) in enumerate(zip(problem.model.param_layers, pre)):
            if isinstance(layer, nn.Conv2d):
                P = int(np.prod(s.shape[1:]))
                what = (f"output positions of Conv2d layer {k} (H_out·W_out = "
                        f"{s.shape[1]}·{s.shape[2]})")
            else:
                P = int(np.prod(s.shape[:-1]))
                what = f"sequence positions of Dense layer {k}"
            if P > 1 and P not in seen:
                seen.add(P)
                out.append((P, what))
        problem._cache[key] = out
    return problem._cache[key]


# ----------------------------------------------------------------------------- output space


def flat_outputs(problem):
    """Outputs ``(N, Q, C)`` (``Q = 1`` without output positions)."""
    out = np.asarray(problem.outputs(), np.float64)
    return out.reshape((out.shape[0], -1, out.shape[-1]))


def jacobians(problem):
    """Per-example Jacobians ``(N, Q C, d)``."""
    J = np.asarray(problem.jacobians(), np.float64)
    return J.reshape((J.shape[0], -1, J.shape[-1]))


def _block_diag(blocks):
    """``(N, Q, C, C)`` -> ``(N, Q C, Q C)``."""
    N, Q, C, _ = blocks.shape
    out = np.zeros((N, Q * C, Q * C))
    for q in range(Q):
        out[:, q * C:(q + 1) * C, q * C:(q + 1) * C] = blocks[:, q]
    return out


def flat_targets(problem, y=None):
    """Targets ``(N Q, ...)``, one row per output position (default: the data targets)."""
    y = np.asarray(problem.y if y is None else y)
    npos = len(problem.outputs().shape) - 2
    N, Q = problem.num_examples, flat_outputs(problem).shape[1]
    return y.reshape((N * Q,) + y.shape[1 + npos:])


@functools.partial(jax.jit, static_argnums=(0, 1))
def _output_jit(likelihood, kind, out, y):
    if kind == "fisher":
        return jax.vmap(likelihood._output_fisher)(out)
    if kind == "hessian":
        return jax.vmap(likelihood._output_hessian)(out, y)
    return output_grads(likelihood, out, y[:, None])[:, 0]


def _output(problem, kind, y):
    out = flat_outputs(problem)
    N, Q, C = out.shape
    yq = flat_targets(problem, y)
    if kind == "fisher":
        yq = np.zeros(N * Q)  # unused
    with float64():
        return np.asarray(_output_jit(problem.likelihood, kind, jnp.asarray(out.reshape(N * Q, C)),
                                      jnp.asarray(yq)))


def gradients(problem, y=None):
    """Output gradients of the NLL at targets ``y`` (default the data), ``(N, Q, C)``."""
    out = flat_outputs(problem)
    return _output(problem, "gradient", y).reshape(out.shape)


def output_matrices(problem, kind, y=None):
    """Per-example output-space matrices ``(N, Q C, Q C)``.

    ``kind``: ``"fisher"`` (``F_out``), ``"hessian"`` (``Lambda``, at the targets) or
    ``"empirical"`` (``g g^T`` at the targets).
    """
    N, Q, C = flat_outputs(problem).shape
    if kind == "empirical":
        g = gradients(problem, y).reshape(N, Q * C)
        return np.einsum("ni,nj->nij", g, g)
    return _block_diag(_output(problem, kind, y).reshape(N, Q, C, C))


def sandwich(J, M, weights=None):
    """``sum_n w_n J_n^T M_n J_n`` (``w = 1`` by default) for ``J (N, K, d)``, ``M (N, K, K)``."""
    if weights is None:
        return np.einsum("nki,nkl,nlj->ij", J, M, J)
    return np.einsum("n,nki,nkl,nlj->ij", weights, J, M, J)
