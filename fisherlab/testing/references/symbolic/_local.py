r"""Each ``fl.nn`` layer's mathematics as SymPy expressions of its local inputs and parameters.

A :class:`Local` is one small function ``y = g(u, p)``: input symbols ``u``, parameter symbols
``p`` and output expressions ``y``, written from the layer's published definition (not from
fisherlab's JAX code):

* ``dense(n_in, n_out)``: ``s_i = sum_j W_ij u_j + b_i`` (one position);
* ``activation(layer)``: ``phi(z)`` from the layer's ``.symbolic(z)``, ``ReLU``'s ``Max(z, 0)`` as
  the piecewise ``z if z > 0 else 0`` (derivative 0 at the kink, as PyTorch and JAX);
* ``layer_norm(d, eps, ...)``: ``(u_i - mu) / sqrt(sigma^2 + eps) w_i + b_i`` with the biased
  variance (one position);
* ``rms_norm(d, eps, ...)``: ``u_i / sqrt(mean_j u_j^2 + eps) w_i`` (one position);
* ``attention_head(R, k, causal)``: one head of scaled dot-product attention on ``q, k, v``
  (``R x k`` each): ``o_r = sum_s softmax_s(q_r . k_s / sqrt(k)) v_s``, the softmax written with
  ``exp`` over the keys ``s`` token ``r`` may see (``s <= r`` when causal).

``eps`` enters as the exact rational value of the float64 the numeric code adds (``RMSNorm``'s
default, float64's machine epsilon, is exactly ``2^-52``). Each is built once per size (cached).

References:
  J. L. Ba, J. R. Kiros & G. E. Hinton, "Layer normalization", 2016; B. Zhang & R. Sennrich,
  "Root mean square layer normalization", NeurIPS 2019; A. Vaswani et al., "Attention is all you
  need", NeurIPS 2017.
"""

from __future__ import annotations

import dataclasses
import functools

import sympy as sp

__all__ = ["Local", "activation", "attention_head", "dense", "layer_norm", "relu_piecewise",
           "rms_norm"]


@dataclasses.dataclass(frozen=True)
class Local:
    """``outputs = g(inputs, params)`` as SymPy expressions; ``name`` says which layer."""

    name: str
    inputs: tuple[sp.Symbol, ...]
    params: tuple[sp.Symbol, ...]
    outputs: tuple[sp.Expr, ...]


def _symbols(prefix: str, n: int) -> tuple[sp.Symbol, ...]:
    return tuple(sp.Symbol(f"{prefix}{i}", real=True) for i in range(n))


def relu_piecewise(expr):
    """``Max(z, 0) -> Piecewise((z, z > 0), (0, True))``: derivative 0 at the kink."""

    def rule(m):
        args = list(m.args)
        if len(args) == 2 and sp.Integer(0) in args:
            z = args[0] if args[1] == 0 else args[1]
            return sp.Piecewise((z, z > 0), (sp.Integer(0), True))
        return m

    return expr.replace(lambda e: isinstance(e, sp.Max), rule)


@functools.lru_cache(maxsize=None)
def dense(n_in: int, n_out: int) -> Local:
    """``s = W u + b``, ``W`` row-major then ``b`` as the parameters (PyTorch's order)."""
    u = _symbols("u", n_in)
    W = [_symbols(f"W{i}_", n_in) for i in range(n_out)]
    b = _symbols("b", n_out)
    out = tuple(sp.Add(*[W[i][j] * u[j] for j in range(n_in)]) + b[i] for i in range(n_out))
    return Local(f"Dense({n_in}, {n_out})", u, tuple(w for row in W for w in row) + b, out)


@functools.lru_cache(maxsize=None)
def activation(layer) -> Local:
    """``phi(z)`` of a parameter-free elementwise layer with a ``.symbolic(z)`` method."""
    z = sp.Symbol("z", real=True)
    return Local(repr(layer), (z,), (), (relu_piecewise(sp.sympify(layer.symbolic(z))),))


def _eps(eps) -> sp.Expr:
    return sp.Rational(2) ** -52 if eps is None else sp.Rational(float(eps))


@functools.lru_cache(maxsize=None)
def layer_norm(d: int, eps: float, weight: bool, bias: bool) -> Local:
    """LayerNorm of one position: parameters ``weight`` then ``bias`` (those present)."""
    u = _symbols("u", d)
    w = _symbols("w", d) if weight else ()
    b = _symbols("b", d) if weight and bias else ()
    mu = sp.Add(*u) / d
    var = sp.Add(*[(ui - mu) ** 2 for ui in u]) / d
    den = sp.sqrt(var + _eps(eps))
    out = []
    for i in range(d):
        y = (u[i] - mu) / den
        if w:
            y = y * w[i]
        if b:
            y = y + b[i]
        out.append(y)
    return Local(f"LayerNorm({d})", u, w + b, tuple(out))


@functools.lru_cache(maxsize=None)
def rms_norm(d: int, eps, weight: bool) -> Local:
    """RMSNorm of one position: parameter ``weight`` (if present)."""
    u = _symbols("u", d)
    w = _symbols("w", d) if weight else ()
    den = sp.sqrt(sp.Add(*[ui ** 2 for ui in u]) / d + _eps(eps))
    out = tuple((u[i] / den) * (w[i] if w else 1) for i in range(d))
    return Local(f"RMSNorm({d})", u, w, out)


@functools.lru_cache(maxsize=None)
def attention_head(R: int, k: int, causal: bool) -> Local:
    """One head: inputs ``q`` (R x k), ``k``, ``v`` row-major; outputs ``o`` (R x k) row-major."""
    q = [_symbols(f"q{r}_", k) for r in range(R)]
    kk = [_symbols(f"k{r}_", k) for r in range(R)]
    v = [_symbols(f"v{r}_", k) for r in range(R)]
    scale = 1 / sp.sqrt(k)
    out = []
    for r in range(R):
        keys = range(r + 1) if causal else range(R)
        e = {s: sp.exp(scale * sp.Add(*[q[r][t] * kk[s][t] for t in range(k)])) for s in keys}
        Z = sp.Add(*e.values())
        for t in range(k):
            out.append(sp.Add(*[e[s] * v[s][t] for s in keys]) / Z)
    inputs = tuple(x for rows in (q, kk, v) for row in rows for x in row)
    return Local(f"attention head (R={R}, k={k}, causal={causal})", inputs, (), tuple(out))
