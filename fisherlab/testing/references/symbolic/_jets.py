r"""Exact derivatives of any ``fl.nn`` model by the chain rule, layer by layer.

Every scalar of the forward pass carries a *jet* ``(v, g, H)``: its value, its gradient with
respect to all parameters ``theta`` and (for the Hessian) its matrix of second derivatives, as
sparse dictionaries. A layer is a small function ``y = g(u, p)`` written in SymPy
(:mod:`~fisherlab.testing.references.symbolic._local`); its local derivatives come from
``sympy.diff`` (built once per layer size and cached), and the jets are pushed through it by the
exact first- and second-order chain rule:

.. math::

    \nabla y = \sum_i \partial_{u_i} g\, \nabla u_i + \sum_p \partial_{p} g\, e_p,\qquad
    \nabla^2 y = \sum_i \partial_{u_i} g\, \nabla^2 u_i
      + \sum_{a, b} \partial_{a}\partial_{b} g\; \nabla a\, \nabla b^\top

(``a, b`` range over the local inputs ``u_i``, with gradient ``nabla u_i``, and the parameters
``p``, with gradient the unit vector ``e_p``). Linear steps (``Residual``'s addition, ``MeanPool``,
``Embedding``'s lookup) combine jets directly. The arithmetic is exact (SymPy numbers) or mpmath
at a stated precision; nothing here calls JAX.

How each layer is split into local functions: ``Dense`` per position (weights shared over
positions: the same parameter positions); ``LayerNorm``/``RMSNorm`` per position; an activation
per entry; ``MultiHeadAttention`` as the input projection (a dense layer ``d -> 3d`` per token),
one local function per head on that head's ``q, k, v`` columns, and the output projection (a
dense layer ``d -> d`` per token) -- PyTorch's definition (see ``fl.nn.MultiHeadAttention``).
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from fisherlab import nn
from fisherlab.testing.references.symbolic import _local
from fisherlab.testing.references.symbolic._values import Exact, Numeric

__all__ = ["Jet", "Propagator", "UnsupportedLayer"]


class UnsupportedLayer(TypeError):
    """A layer the chain-rule engine has no local definition for."""


class Jet:
    """A scalar with its gradient ``g`` and second derivatives ``h`` (``None``: not tracked).

    ``g`` maps a parameter position ``p`` to ``d v / d theta_p``; ``h`` maps ``(p, q)`` with
    ``p <= q`` to ``d^2 v / d theta_p d theta_q`` (the upper triangle; absent entries are zero).
    """

    __slots__ = ("v", "g", "h")

    def __init__(self, v, g, h):
        self.v, self.g, self.h = v, g, h


def _axpy(acc: dict, src: dict, c) -> None:
    for k, v in src.items():
        acc[k] = acc[k] + c * v if k in acc else c * v


def _outer(acc: dict, g1: dict, g2: dict, c, same: bool) -> None:
    """``acc += c g1 g2^T`` (``same``: ``g1 is g2``) or ``c (g1 g2^T + g2 g1^T)``, upper triangle."""
    if same:
        items = sorted(g1.items())
        for n, (i, a) in enumerate(items):
            ca = c * a
            for j, b in items[n:]:
                key = (i, j)
                acc[key] = acc[key] + ca * b if key in acc else ca * b
        return
    for i, a in g1.items():
        ca = c * a
        for j, b in g2.items():
            if i < j:
                key, v = (i, j), ca * b
            elif i > j:
                key, v = (j, i), ca * b
            else:
                key, v = (i, i), 2 * ca * b
            acc[key] = acc[key] + v if key in acc else v


class _Compiled:
    """A local function with its first (and second) derivatives, compiled for evaluation."""

    def __init__(self, local: _local.Local, order: int, arith):
        args = local.inputs + local.params
        exprs = list(local.outputs)
        self.first, self.second = [], []
        for o, y in enumerate(local.outputs):
            firsts = {}
            for k, a in enumerate(args):
                dy = sp.diff(y, a)
                if dy != 0:
                    firsts[k] = dy
                    self.first.append((o, k, len(exprs)))
                    exprs.append(dy)
            if order == 2:
                for k, dy in firsts.items():
                    for l in range(k, len(args)):
                        d2 = sp.diff(dy, args[l])
                        if d2 != 0:
                            self.second.append((o, k, l, len(exprs)))
                            exprs.append(d2)
        self.n_in, self.n_out = len(local.inputs), len(local.outputs)
        self.run = arith.compile(exprs) if exprs else (lambda values: [])


class Propagator:
    """Pushes jets through a ``fl.nn`` model for one example at a time.

    Args:
      theta: the parameter values (exact SymPy numbers, or mpmath numbers), ``ravel`` order.
      order: 1 (gradients) or 2 (gradients and second derivatives).
      exact: exact SymPy arithmetic instead of mpmath.
      dps: mpmath digits (``exact=False``).
    """

    _CACHE: dict = {}

    def __init__(self, theta, order: int, exact: bool, dps: int):
        self.theta, self.order, self.exact, self.dps = theta, order, exact, dps
        self.zero = Exact.zero if exact else Numeric.zero
        self.one = Exact.one if exact else Numeric.one

    # ------------------------------------------------------------------ jets
    def constant(self, v) -> Jet:
        return Jet(v, {}, {} if self.order == 2 else None)

    def parameter(self, p: int) -> Jet:
        return Jet(self.theta[p], {p: self.one}, {} if self.order == 2 else None)

    def combine(self, terms) -> Jet:
        """``sum_k c_k jet_k`` for ``terms = [(c_k, jet_k)]`` (a linear step)."""
        v, g = self.zero, {}
        h = {} if self.order == 2 else None
        for c, j in terms:
            v = v + c * j.v
            _axpy(g, j.g, c)
            if h is not None:
                _axpy(h, j.h, c)
        return Jet(v, g, h)

    def _compiled(self, local) -> _Compiled:
        key = (local, self.order, self.exact)
        if key not in self._CACHE:
            args = local.inputs + local.params
            arith = Exact(args) if self.exact else Numeric(args, self.dps)
            self._CACHE[key] = _Compiled(local, self.order, arith)
        return self._CACHE[key]

    def apply(self, local, inputs, positions) -> list[Jet]:
        """The jets of ``local``'s outputs from its input jets and its parameters' positions."""
        comp = self._compiled(local)
        n_in = comp.n_in
        res = comp.run([j.v for j in inputs] + [self.theta[p] for p in positions])

        def grad(k):
            return inputs[k].g if k < n_in else {positions[k - n_in]: self.one}

        out = [Jet(res[o], {}, {} if self.order == 2 else None) for o in range(comp.n_out)]
        for o, k, i in comp.first:
            dv = res[i]
            if dv == 0:
                continue
            _axpy(out[o].g, grad(k), dv)
            if self.order == 2 and k < n_in and inputs[k].h:
                _axpy(out[o].h, inputs[k].h, dv)
        for o, k, l, i in comp.second:
            dv = res[i]
            if dv == 0:
                continue
            _outer(out[o].h, grad(k), grad(l), dv, k == l)
        return out

    # ------------------------------------------------------------------ layers
    def forward(self, layer, pos, a, where: str = "model"):
        """Jets of ``layer``'s output (an object array) from those of its input ``a``."""
        if isinstance(layer, nn.Sequential):
            k = 0
            for i, sub in enumerate(layer.layers):
                p = None
                if sub.has_params:
                    p, k = pos[k], k + 1
                a = self.forward(sub, p, a, f"{where}.layers[{i}]")
            return a
        if isinstance(layer, nn.Residual):
            out = self.forward(layer.block, pos, a, f"{where}.block")
            if out.shape != a.shape:
                raise ValueError(f"{where} ({layer}): the block maps shape {a.shape} to "
                                 f"{out.shape}")
            return _map2(lambda u, v: self.combine([(self.one, u), (self.one, v)]), a, out)
        if isinstance(layer, nn.Dense):
            W, b = pos
            return self._per_position(_local.dense(layer.in_features, layer.out_features), a,
                                      list(W.ravel()) + list(b))
        if isinstance(layer, nn.LayerNorm):
            local = _local.layer_norm(layer.d, layer.eps, layer.elementwise_affine,
                                      layer.elementwise_affine and layer.bias)
            return self._per_position(local, a, [int(q) for p in (pos or ()) for q in p])
        if isinstance(layer, nn.RMSNorm):
            local = _local.rms_norm(layer.d, layer.eps, layer.elementwise_affine)
            return self._per_position(local, a, [int(q) for p in (pos or ()) for q in p])
        if isinstance(layer, nn.Activation):
            local = _local.activation(layer)
            return _map1(lambda u: self.apply(local, [u], [])[0], a)
        if isinstance(layer, nn.Embedding):
            (E,) = pos
            return np.array([[self.parameter(int(E[t, j])) for j in range(layer.d)]
                             for t in np.asarray(a).ravel()],
                            dtype=object).reshape(np.shape(a) + (layer.d,))
        if isinstance(layer, nn.MeanPool):
            R = a.shape[0]
            c = sp.Rational(1, R) if self.exact else self.one / R
            rest = a.shape[1:]
            out = np.empty(rest, dtype=object)
            for idx in np.ndindex(*rest):
                out[idx] = self.combine([(c, a[(r,) + idx]) for r in range(R)])
            return out
        if isinstance(layer, nn.MultiHeadAttention):
            return self._attention(layer, pos, a)
        raise UnsupportedLayer(
            f"{where} is {layer!r}: the chain-rule engine of fl.symbolic.curvature supports "
            "Dense, LayerNorm, RMSNorm, Embedding, MultiHeadAttention, Residual, MeanPool, "
            "nested Sequential and elementwise activations (Tanh, Sigmoid, ReLU, Identity, GELU)")

    def _per_position(self, local, a, positions):
        n_in = len(local.inputs)
        if a.ndim == 0 or a.shape[-1] != n_in:
            raise ValueError(f"{local.name} expects a last axis of {n_in} entries, got shape "
                             f"{a.shape}")
        lead = a.shape[:-1]
        out = np.empty(lead + (len(local.outputs),), dtype=object)
        for idx in np.ndindex(*lead):
            out[idx] = np.array(self.apply(local, list(a[idx]), positions) + [None],
                                dtype=object)[:-1]
        return out

    def _attention(self, layer, pos, a):
        in_w, in_b, out_w, out_b = pos
        d, h, hd = layer.d, layer.num_heads, layer.head_dim
        if a.ndim != 2 or a.shape[1] != d:
            raise ValueError(f"{layer} expects one sequence of shape (R, {d}), got {a.shape}")
        R = a.shape[0]
        qkv = self._per_position(_local.dense(d, 3 * d), a, list(in_w.ravel()) + list(in_b))
        heads = np.empty((R, d), dtype=object)
        local = _local.attention_head(R, hd, layer.causal)
        for j in range(h):
            cols = [range(i * d + j * hd, i * d + (j + 1) * hd) for i in range(3)]  # q, k, v
            inputs = [qkv[r, c] for col in cols for r in range(R) for c in col]
            o = self.apply(local, inputs, [])
            for r in range(R):
                for t in range(hd):
                    heads[r, j * hd + t] = o[r * hd + t]
        return self._per_position(_local.dense(d, d), heads, list(out_w.ravel()) + list(out_b))


def _map1(fn, a):
    out = np.empty(a.shape, dtype=object)
    for idx in np.ndindex(*a.shape):
        out[idx] = fn(a[idx])
    return out


def _map2(fn, a, b):
    out = np.empty(a.shape, dtype=object)
    for idx in np.ndindex(*a.shape):
        out[idx] = fn(a[idx], b[idx])
    return out
