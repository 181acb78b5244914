r"""Exact whole-network curvature of tiny networks, computed in SymPy (no JAX).

:func:`curvature` is fisherlab's *independent ground truth* for the numeric
references (``fl.hessian``, ``fl.ggn``, ``fl.fisher``, ``fl.empirical_fisher``,
``fl.kfac``): it never calls JAX. It

1. builds the network ``f(theta, x)`` of a :class:`fisherlab.nn.Sequential` as a
   SymPy expression with **one symbol per parameter** and one per input
   component (``Dense``: ``s = W a + b``; activations through their
   ``.symbolic(z)`` method, ``ReLU``'s ``Max(z, 0)`` as the piecewise
   ``z if z > 0 else 0`` so that its derivative at the kink is 0);
2. differentiates it exactly (``sympy.diff``): the Jacobian ``J = df/dtheta``
   (``C x d``) and, for the Hessian, every second derivative ``d^2 f_c``;
3. takes the likelihood's log-density from ``likelihood.symbolic(C)`` -- the
   single symbolic source, :mod:`fisherlab.likelihoods.symbolic` -- and
   differentiates it in the outputs: ``r = grad_eta l``, ``Lambda = grad^2_eta l``
   and the output Fisher ``F_out = E_{y ~ p(.|eta)}[score score^T]`` computed with
   the family's **exact expectation operator** (finite sums, Gaussian moments,
   Poisson series);
4. substitutes the float64 parameters, inputs and targets **as exact rationals**
   (``sympy.Rational(float)`` is the exact binary value the float64 code sees) and
   assembles, per example ``n`` (``l_n = -log p(y_n | f(theta, x_n))``)::

       hessian           H_n  = J^T Lambda J + sum_c r_c d^2 f_c
       ggn               G_n  = J^T Lambda J
       fisher            F_n  = J^T F_out J
       empirical_fisher  EF_n = (J^T r)(J^T r)^T
       kfac (per layer)  G (x) A,  A = mean_n abar abar^T,  G = mean_n J_s^T F_out J_s

   and averages over ``n`` (``reduction="mean"``) or sums (``"sum"``).

The Hessian is assembled by the exact second-order chain rule
(M. Johnson, "Natural gradients and K-FAC" (note, 2017), App. A eq. (40)); the second derivatives of the
outputs come from ``sympy.diff`` of the composed network (at most one nonlinear
activation) or, for nested nonlinearities where that expression swell is costly,
from the exact second-order chain rule applied layer by layer with the
activations' derivatives from ``sympy.diff`` (``second_derivatives=``). The test
suite checks both against ``sympy.hessian`` of the fully composed loss.

Evaluation. With ``exact=True`` the matrix is returned *exactly*: entries are
SymPy expressions in rationals and ``tanh``/``exp``/``log`` of rationals (a linear
model with a Gaussian likelihood gives exact rationals). By default
(``exact=False``) the same exact expressions are evaluated with mpmath at
``precision + 10`` significant digits (the float64 inputs are exactly
representable there, so the only rounding is mpmath's, ~1e-40 relative) and the
entries are returned as SymPy ``Float``\ s with ``precision`` digits: fast enough
for ~30-parameter networks, and ~25 digits more accurate than any float64
reference it is compared with.

Conventions (docs/CONVENTIONS.md): mean reduction by default; rows/columns in
``jax.flatten_util.ravel_pytree(params)`` order = ``W_1`` row-major, ``b_1``,
``W_2``, ``b_2``, ... (PyTorch's ``parameters()`` order); K-FAC block ``G (x) A``
in the row-major order of ``[W b]``, returned permuted into parameter order,
with ``A`` averaged over examples and ``G`` carrying the loss reduction.
"""

from __future__ import annotations

import dataclasses
import contextlib
import numbers
from collections.abc import Sequence

import mpmath
import numpy as np
import sympy as sp

from fisherlab import nn
from fisherlab.likelihoods.symbolic import SymbolicLikelihood

__all__ = ["curvature", "KINDS"]

#: the curvature matrices :func:`curvature` computes.
KINDS = ("hessian", "ggn", "fisher", "empirical_fisher", "kfac", "kfac_empirical")
_NEEDS_TARGETS = ("hessian", "ggn", "empirical_fisher", "kfac_empirical")


# --------------------------------------------------------------------------- network


@dataclasses.dataclass(frozen=True)
class _SymbolicNetwork:
    """``f(theta, x)`` of a Sequential as SymPy expressions."""

    theta: tuple[sp.Symbol, ...]          # parameters in ravel_pytree order
    inputs: tuple[sp.Symbol, ...]         # x_1..x_in
    outputs: tuple[sp.Expr, ...]          # f_1..f_C
    layer_inputs: tuple[tuple[sp.Expr, ...], ...]   # a_{k-1} of each Dense layer
    weight_index: tuple[tuple[int, int, int], ...]  # (start, out, in) of W_k in theta
    bias_index: tuple[int, ...]           # start of b_k in theta
    key: object = None                    # hashable identity of the architecture (or None)
    program: tuple = ()                   # ("dense", start, out, in, bstart) | ("act", phi(z), z)


def _relu_piecewise(expr):
    """``Max(z, 0) -> Piecewise((z, z > 0), (0, True))``: derivative 0 at the kink."""

    def rule(m):
        args = list(m.args)
        if len(args) == 2 and sp.Integer(0) in args:
            z = args[0] if args[1] == 0 else args[1]
            return sp.Piecewise((z, z > 0), (sp.Integer(0), True))
        return m

    return expr.replace(lambda e: isinstance(e, sp.Max), rule)


def _build_network(model) -> _SymbolicNetwork:
    if not isinstance(model, nn.Sequential):
        raise TypeError(
            f"model must be a fisherlab.nn.Sequential (Dense layers and elementwise "
            f"activations), got {type(model).__name__}")
    dense = model.dense_layers
    if not dense:
        raise ValueError(f"model must contain at least one Dense layer, got {model!r}")
    n_in = dense[0].in_features
    inputs = tuple(sp.Symbol(f"x_{i + 1}", real=True) for i in range(n_in))
    theta: list[sp.Symbol] = []
    layer_inputs, weight_index, bias_index, program = [], [], [], []
    a: list[sp.Expr] = list(inputs)
    k = 0
    for i, layer in enumerate(model.layers):
        if isinstance(layer, nn.Dense):
            if len(a) != layer.in_features:
                raise ValueError(
                    f"model.layers[{i}] ({layer}) expects {layer.in_features} inputs, "
                    f"but the previous layers produce {len(a)}")
            k += 1
            out, inn = layer.out_features, layer.in_features
            W = [[sp.Symbol(f"W{k}_{r + 1}{c + 1}", real=True) for c in range(inn)]
                 for r in range(out)]
            b = [sp.Symbol(f"b{k}_{r + 1}", real=True) for r in range(out)]
            weight_index.append((len(theta), out, inn))
            theta.extend(w for row in W for w in row)
            bias_index.append(len(theta))
            theta.extend(b)
            layer_inputs.append(tuple(a))
            program.append(("dense", weight_index[-1][0], out, inn, bias_index[-1]))
            a = [sp.Add(*[W[r][c] * a[c] for c in range(inn)]) + b[r] for r in range(out)]
        elif hasattr(layer, "symbolic") and callable(layer.symbolic) and not getattr(
                layer, "has_params", False):
            a = [_relu_piecewise(sp.sympify(layer.symbolic(z))) for z in a]
            z = sp.Symbol("z", real=True)
            program.append(("act", _relu_piecewise(sp.sympify(layer.symbolic(z))), z))
        else:
            raise TypeError(
                f"model.layers[{i}] is {layer!r}: fl.symbolic.curvature supports Dense layers "
                "and parameter-free elementwise activations with a .symbolic(z) method "
                "(Tanh, Sigmoid, ReLU, Identity)")
    try:
        key = ("Sequential",) + tuple((type(l).__qualname__, l) for l in model.layers)
        hash(key)
    except TypeError:
        key = None
    return _SymbolicNetwork(tuple(theta), inputs, tuple(a), tuple(layer_inputs),
                            tuple(weight_index), tuple(bias_index), key, tuple(program))


def _second_order_layerwise(net, ar, theta_num, x_num, activation_fns):
    """Values, gradients and Hessians of the outputs w.r.t. theta, layer by layer.

    The exact second-order chain rule through the network, with every local derivative
    exact: ``s = W a + b`` gives ``d s_i/d W_ij = a_j``, ``d^2 s_i/(d W_ij d theta) =
    d a_j/d theta``; an activation ``a = phi(s)`` gives ``grad a = phi'(s) grad s`` and
    ``Hess a = phi''(s) grad s grad s^T + phi'(s) Hess s`` with ``phi'``, ``phi''`` from
    ``sympy.diff`` of the activation's ``.symbolic(z)``. Used for the Hessian of deeper
    networks (``sympy.diff`` of the composed expression grows fast with depth); the test
    suite checks it against ``sympy.hessian`` of the fully composed loss.
    """
    d, zero = len(theta_num), ar.zero
    units = [(v, [zero] * d, None) for v in x_num]          # (value, grad, Hessian or None)
    for step in net.program:
        if step[0] == "dense":
            _, start, out, inn, bstart = step
            new = []
            for i in range(out):
                v = theta_num[bstart + i]
                g = [zero] * d
                H = [[zero] * d for _ in range(d)]
                for j in range(inn):
                    w_idx = start + i * inn + j
                    w = theta_num[w_idx]
                    av, ag, aH = units[j]
                    v = v + w * av
                    for p in range(d):
                        if ag[p] != 0:
                            g[p] = g[p] + w * ag[p]
                            H[w_idx][p] = H[w_idx][p] + ag[p]
                            H[p][w_idx] = H[p][w_idx] + ag[p]
                    if aH is not None:
                        for p in range(d):
                            for q in range(d):
                                if aH[p][q] != 0:
                                    H[p][q] = H[p][q] + w * aH[p][q]
                    g[w_idx] = g[w_idx] + av
                g[bstart + i] = g[bstart + i] + 1
                new.append((v, g, H))
            units = new
        else:
            fn = activation_fns[id(step)]
            new = []
            for v, g, H in units:
                phi, dphi, d2phi = fn([v])
                gn = [dphi * gp for gp in g]
                Hn = [[d2phi * g[p] * g[q] + (dphi * H[p][q] if H is not None else zero)
                       for q in range(d)] for p in range(d)]
                new.append((phi, gn, Hn))
            units = new
    return units


_MEMO: dict = {}


def _memo(key, build):
    """Cache symbolic derivatives and compiled evaluators per architecture / likelihood."""
    if key[1] is None:  # an unhashable custom layer: no caching
        return build()
    if key not in _MEMO:
        if len(_MEMO) > 512:
            _MEMO.clear()
        _MEMO[key] = build()
    return _MEMO[key]


# --------------------------------------------------------------------------- likelihood


@dataclasses.dataclass(frozen=True)
class _OutputCalculus:
    """The likelihood's output-space quantities, symbolic in ``(eta, y)``."""

    sym: object                       # SymbolicLikelihood
    grad: tuple[sp.Expr, ...]         # r = grad_eta (-log p)
    hess: sp.Matrix                   # Lambda = grad^2_eta (-log p)


def _symbolic_likelihood(likelihood, num_outputs: int):
    if isinstance(likelihood, SymbolicLikelihood):
        sym = likelihood
    else:
        if not callable(getattr(likelihood, "symbolic", None)):
            raise TypeError(
                "likelihood must be a fisherlab likelihood (with a .symbolic(num_outputs) "
                f"method) or a SymbolicLikelihood, got {type(likelihood).__name__}")
        sym = likelihood.symbolic(num_outputs)
    if len(sym.outputs) != num_outputs:
        raise ValueError(
            f"the model has {num_outputs} outputs but likelihood {sym.name} takes "
            f"{len(sym.outputs)} output parameters ({', '.join(map(str, sym.outputs))})")
    return sym


_CALCULUS: dict = {}
_FISHER: dict = {}


def _key(sym):
    # SymbolicLikelihood holds a callable and a dict (unhashable): key the caches on its
    # defining SymPy data.
    return (sym.name, tuple(sym.outputs), tuple(sym.targets), sym.log_density)


def _output_calculus(sym) -> _OutputCalculus:
    k = _key(sym)
    if k not in _CALCULUS:
        nll = -sym.log_density
        _CALCULUS[k] = _OutputCalculus(sym, tuple(sp.diff(nll, e) for e in sym.outputs),
                                       sp.hessian(nll, sym.outputs))
    return _CALCULUS[k]


def _output_fisher(sym) -> sp.Matrix:
    """``E_{y ~ p(.|eta)}[score score^T]`` by the family's exact expectation operator (cached)."""
    k = _key(sym)
    if k not in _FISHER:
        _FISHER[k] = sym.fisher_definition()
    return _FISHER[k]


# --------------------------------------------------------------------------- inputs


def _exact(value, name):
    """A real number as an exact SymPy number (float64 -> its exact binary rational)."""
    if isinstance(value, sp.Basic):
        v = sp.Rational(value) if isinstance(value, sp.Float) else value
        if not (v.is_number and v.is_real):
            raise ValueError(f"{name} must be a real number, got {value!r}")
        return v
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number, got {value!r} (bool)")
    if isinstance(value, numbers.Integral):
        return sp.Integer(int(value))
    if isinstance(value, numbers.Rational):
        return sp.Rational(value.numerator, value.denominator)
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return sp.Rational(v)


def _as_array(value, name, shape):
    """Array-like (NumPy/JAX array, nested lists, Python/SymPy numbers) of ``shape``."""
    if isinstance(value, sp.MatrixBase):
        value = [[value[i, j] for j in range(value.cols)] for i in range(value.rows)]
    try:
        # NumPy/JAX arrays convert without a JAX computation (host copy); SymPy numbers
        # and Fractions give an object array.
        arr = np.asarray(value)
        if arr.dtype != object and not (np.issubdtype(arr.dtype, np.number)
                                        or arr.dtype == bool):
            raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array-like, got "
                        f"{type(value).__name__}") from exc
    if arr.shape != tuple(shape):
        if arr.size == int(np.prod(shape)) and arr.ndim <= 1 and (arr.ndim == 0 or len(shape) == 1):
            arr = arr.reshape(shape)  # a Python float for a 1x1 weight, a flat bias, ...
        else:
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    flat = [_exact(v.item() if hasattr(v, "item") and not isinstance(v, sp.Basic) else v,
                   f"{name}{list(np.unravel_index(i, shape)) if shape else ''}")
            for i, v in enumerate(arr.ravel())]
    return flat


def _param_values(net: _SymbolicNetwork, model, params):
    dense = model.dense_layers
    if not isinstance(params, (list, tuple)) or len(params) != len(dense):
        raise ValueError(
            f"params must be a list of {len(dense)} (W, b) pairs (one per Dense layer), got "
            f"{type(params).__name__}"
            + (f" of length {len(params)}" if hasattr(params, "__len__") else ""))
    values = []
    for k, (layer, p) in enumerate(zip(dense, params)):
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            raise ValueError(f"params[{k}] must be a (W, b) pair, got {type(p).__name__}")
        values += _as_array(p[0], f"params[{k}][0] (W, shape (out, in))",
                            (layer.out_features, layer.in_features))
        values += _as_array(p[1], f"params[{k}][1] (b)", (layer.out_features,))
    assert len(values) == len(net.theta)
    return values


def _inputs(x, n_in):
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[1] != n_in or arr.shape[0] < 1:
        raise ValueError(f"x must have shape (N, {n_in}) with N >= 1, got {tuple(arr.shape)}")
    return [_as_array(arr[n], f"x[{n}]", (n_in,)) for n in range(arr.shape[0])]


def _targets(y, sym, N):
    """Per-example target assignments ``{y_symbol: exact value}``."""
    T = len(sym.targets)
    arr = np.asarray(y)
    if sym.name == "Categorical":
        if arr.shape != (N,):
            raise ValueError(f"y must hold {N} class indices, shape ({N},), for the "
                             f"Categorical likelihood, got shape {arr.shape}")
        out = []
        for n, v in enumerate(arr.tolist()):
            if isinstance(v, bool) or float(v) != int(v) or not 0 <= int(v) < T:
                raise ValueError(f"y[{n}] must be a class index in 0..{T - 1}, got {v!r}")
            out.append({t: sp.Integer(int(j == int(v))) for j, t in enumerate(sym.targets)})
        return out
    if arr.shape != (N, T):
        raise ValueError(f"y must have shape ({N}, {T}) for the {sym.name} likelihood, "
                         f"got shape {arr.shape}")
    out = []
    for n in range(N):
        vals = _as_array(arr[n], f"y[{n}]", (T,))
        for j, v in enumerate(vals):
            if sym.name == "Bernoulli" and v not in (0, 1):
                raise ValueError(f"y[{n}, {j}] must be 0 or 1 for Bernoulli, got {v}")
            if sym.name == "Poisson" and not (v.is_integer and v >= 0):
                raise ValueError(
                    f"y[{n}, {j}] must be a non-negative integer for Poisson, got {v}")
        out.append(dict(zip(sym.targets, vals)))
    return out


# --------------------------------------------------------------------------- arithmetic


class _Exact:
    """Exact arithmetic: substitute rationals, keep SymPy expressions."""

    zero = sp.Integer(0)

    def __init__(self, args: Sequence[sp.Symbol]):
        self.args = tuple(args)

    def compile(self, exprs):
        exprs = list(exprs)
        args = self.args

        def run(values):
            sub = dict(zip(args, values))
            return [sp.sympify(e).xreplace(sub) for e in exprs]

        return run

    @staticmethod
    def number(v):
        return v


class _Numeric:
    """mpmath evaluation of the exact expressions at ``dps`` significant digits."""

    zero = mpmath.mpf(0)

    def __init__(self, args: Sequence[sp.Symbol], dps: int):
        self.args = tuple(args)
        self.dps = dps

    def compile(self, exprs):
        exprs = [sp.sympify(e) for e in exprs]
        live = [i for i, e in enumerate(exprs) if e != 0]   # structural zeros stay exact 0
        if not live:
            return lambda values: [self.zero] * len(exprs)
        fn = sp.lambdify(self.args, [exprs[i] for i in live], modules="mpmath", cse=True)

        def run(values):
            out = [self.zero] * len(exprs)
            for i, v in zip(live, fn(*values)):
                out[i] = mpmath.mpf(v)
            return out

        return run

    def number(self, v):
        # exact rationals -> mpf; float64 binary values are represented exactly.
        if isinstance(v, sp.Rational):
            return mpmath.mpf(v.p) / v.q
        return mpmath.mpf(sp.Float(v, self.dps)._mpf_)

    @staticmethod
    def finish(v, digits):
        return sp.Float(v, digits)


def _matmul(A, B, zero):
    n, m, p = len(A), len(B), len(B[0]) if B else 0
    return [[sum((A[i][k] * B[k][j] for k in range(m)), zero) for j in range(p)]
            for i in range(n)]


def _transpose(A):
    return [list(r) for r in zip(*A)] if A else []


# --------------------------------------------------------------------------- public


def curvature(model, params, x, y, likelihood, kind: str = "hessian", *,
              reduction: str = "mean", exact: bool = False, precision: int = 30,
              second_derivatives: str = "auto") -> sp.Matrix:
    r"""Exact curvature matrix of a tiny network, computed symbolically (never calls JAX).

    Args:
      model: a :class:`fisherlab.nn.Sequential` of ``Dense`` layers and elementwise
        activations (``Tanh``, ``Sigmoid``, ``ReLU``, ``Identity``; any parameter-free
        layer with a ``.symbolic(z)`` method).
      params: ``[(W_1, b_1), ...]`` with ``W_k`` of shape ``(out, in)``: NumPy/JAX arrays,
        nested lists, Python or SymPy numbers (a Python float is accepted for a
        ``1 x 1`` weight). Floats are used at their exact binary value.
      x: inputs ``(N, in)``.
      y: targets: ``(N,)`` class indices for ``Categorical``, ``(N, D)`` otherwise
        (``D = C`` except ``GaussianMeanVariance``, ``D = C/2``). Ignored (may be
        ``None``) for ``kind="fisher"`` and ``"kfac"``.
      likelihood: a fisherlab likelihood (its ``.symbolic(C)`` is used) or a
        :class:`~fisherlab.likelihoods.SymbolicLikelihood`.
      kind: ``"hessian"`` | ``"ggn"`` | ``"fisher"`` (true Fisher, exact expectation over
        ``y ~ p(.|f_n)``) | ``"empirical_fisher"`` (data labels) | ``"kfac"`` (K-FAC with the
        exact expectation, ``fisher_type="exact"``, ``bias="augmented"``) |
        ``"kfac_empirical"`` (K-FAC with the data labels in ``G``).
      reduction: ``"mean"`` (``L = (1/N) sum_n l_n``, default) or ``"sum"``.
      exact: return exact SymPy expressions instead of evaluated ``Float``\ s (meant for
        networks of a few parameters: exact expressions in ``tanh``/``exp`` of rationals
        grow quickly; a linear model with a Gaussian likelihood gives exact rationals).
      precision: significant digits of the returned ``Float``\ s (``exact=False``);
        intermediate evaluation uses ``precision + 10`` digits.
      second_derivatives: how the second derivatives of the outputs (Hessian only) are
        formed: ``"symbolic"`` -- ``sympy.diff`` of the composed network expression;
        ``"layerwise"`` -- the exact second-order chain rule layer by layer, with the
        activations' derivatives from ``sympy.diff`` of their ``.symbolic(z)``; ``"auto"``
        (default) -- symbolic for at most one nonlinear activation, layerwise otherwise.
        Both are exact; the tests check they agree and equal ``sympy.hessian`` of the
        fully composed loss.

    Returns:
      A ``d x d`` SymPy ``Matrix`` in ``ravel_pytree(params)`` order (``W_1`` row-major,
      ``b_1``, ``W_2``, ...).

    .. math::

        H = \tfrac1N \sum_n J_n^\top \Lambda_n J_n + \sum_c r_{n,c} \nabla^2 f_{n,c},\quad
        G = \tfrac1N \sum_n J_n^\top \Lambda_n J_n,\quad
        F = \tfrac1N \sum_n J_n^\top \mathbb E_{y}[s s^\top] J_n,\quad
        EF = \tfrac1N \sum_n g_n g_n^\top,

    with ``r = grad_eta l``, ``Lambda = grad^2_eta l``, ``s = grad_eta log p`` and
    ``g_n = J_n^T r_n``; K-FAC: block ``G_k (x) A_k`` per Dense layer (docs/CONVENTIONS.md),
    ``A_k = (1/N) sum_n abar abar^T``, ``G_k = (1/N) sum_n J_{s,n}^T E[s s^T] J_{s,n}``
    (``J_s = df/ds_k = df/db_k``), zero between layers; with ``reduction="sum"`` the
    ``1/N`` of ``G`` (not of ``A``) is dropped, so the matrix is ``N`` times the mean one.

    Cost (measured, 2 shared cores): one symbolic differentiation per architecture (cached,
    independent of ``N``), then an evaluation per example: Hessian of a 22-parameter
    2-4-2 tanh network, ``N = 2``: 0.9 s cold, 0.08 s warm; the other kinds <= 0.3 s cold.
    A 28-parameter 3-3-3-1 tanh/sigmoid network: 2.2 s (layerwise second derivatives).
    The Poisson output Fisher (a series per entry) costs ~1 s per entry once (cached).

    References:
      M. Johnson, "Natural gradients and K-FAC" (note, 2017), App. A eqs. (40)-(47) (Hessian
      = GGN + residual term; Fisher as J^T (Hess A) J); J. Martens, "New insights and
      perspectives on the natural gradient method", JMLR 21, 2020; J. Martens & R. Grosse,
      "Optimizing neural networks with Kronecker-factored approximate curvature", ICML 2015;
      F. Kunstner, L. Balles & P. Hennig, "Limitations of the empirical Fisher approximation
      for natural gradient descent", NeurIPS 2019.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if not isinstance(exact, bool):
        raise TypeError(f"exact must be a bool, got {exact!r}")
    if second_derivatives not in ("auto", "symbolic", "layerwise"):
        raise ValueError("second_derivatives must be 'auto', 'symbolic' or 'layerwise', got "
                         f"{second_derivatives!r}")
    if not isinstance(precision, int) or isinstance(precision, bool) or precision < 15:
        raise ValueError(f"precision must be an int >= 15 (significant digits), got {precision!r}")

    net = _build_network(model)
    d, C = len(net.theta), len(net.outputs)
    theta_vals = _param_values(net, model, params)
    xs = _inputs(x, len(net.inputs))
    N = len(xs)
    sym = _symbolic_likelihood(likelihood, C)
    if kind in _NEEDS_TARGETS:
        if y is None:
            raise ValueError(f"y (targets) is required for kind={kind!r}, got None")
        ys = _targets(y, sym, N)
    else:
        ys = [None] * N

    ctx = contextlib.nullcontext() if exact else mpmath.workdps(precision + 10)
    with ctx:
        return _assemble(net, sym, kind, reduction, exact, precision, theta_vals, xs, ys,
                         second_derivatives)


def _assemble(net, sym, kind, reduction, exact, precision, theta_vals, xs, ys,
              second_derivatives="auto"):
    d, C, N = len(net.theta), len(net.outputs), len(xs)
    calc = _output_calculus(sym)
    eta, tgt = tuple(sym.outputs), tuple(sym.targets)

    # ---- exact symbolic derivatives of the network (once per architecture, cached),
    #      compiled for exact substitution or mpmath evaluation
    mode = "exact" if exact else "numeric"
    net_args = net.theta + net.inputs
    ar: _Exact | _Numeric = _Exact(net_args) if exact else _Numeric(net_args, precision + 10)
    aro = _Exact(eta + tgt) if exact else _Numeric(eta + tgt, precision + 10)
    layers = net.key

    def J_exprs():
        return [[sp.diff(f, t) for t in net.theta] for f in net.outputs]

    J = _memo(("J", layers), J_exprs)
    f_fn = _memo(("f", layers, mode), lambda: ar.compile(net.outputs))
    J_fn = _memo(("Jfn", layers, mode), lambda: ar.compile([e for row in J for e in row]))
    pairs = [(i, j) for i in range(d) for j in range(i, d)]
    # sympy.diff of the composed expression is fastest for one nonlinearity; its cost grows
    # steeply with nested nonlinearities (3-3-3-1 tanh/sigmoid: 18 s vs 2 s layer by layer).
    nested = sum(1 for st in net.program if st[0] == "act" and st[1] != st[2])
    layerwise = kind == "hessian" and (second_derivatives == "layerwise" or (
        second_derivatives == "auto" and nested >= 2))
    if kind == "hessian" and not layerwise:
        D2_fn = _memo(("D2", layers, mode), lambda: ar.compile(
            [sp.diff(J[c][i], net.theta[j]) for c in range(C) for (i, j) in pairs]))
    if layerwise:
        activation_fns = {}
        for step in net.program:
            if step[0] == "act":
                phi, z = step[1], step[2]
                evaluator = _Exact((z,)) if exact else _Numeric((z,), precision + 10)
                activation_fns[id(step)] = _memo(
                    ("phi", phi, mode),
                    lambda phi=phi, z=z, ev=evaluator: ev.compile(
                        [phi, sp.diff(phi, z), sp.diff(phi, z, 2)]))
    skey = _key(sym)
    if kind in ("hessian", "ggn"):
        L_fn = _memo(("Lambda", skey, mode), lambda: aro.compile(list(calc.hess)))
    if kind in ("hessian", "empirical_fisher", "kfac_empirical"):
        r_fn = _memo(("r", skey, mode), lambda: aro.compile(list(calc.grad)))
    if kind in ("fisher", "kfac"):
        F_fn = _memo(("Fout", skey, mode), lambda: aro.compile(list(_output_fisher(sym))))
    if kind in ("kfac", "kfac_empirical"):
        A_fn = _memo(("a", layers, mode),
                     lambda: ar.compile([e for a in net.layer_inputs for e in a]))

    tgt_zero = [sp.Integer(0)] * len(tgt)
    scale = sp.Rational(1, N) if reduction == "mean" else sp.Integer(1)
    num = ar.number
    theta_num = [num(v) for v in theta_vals]

    total = [[ar.zero] * d for _ in range(d)]
    kf_A = [None] * len(net.bias_index)
    kf_G = [None] * len(net.bias_index)
    for n in range(N):
        vals = theta_num + [num(v) for v in xs[n]]
        f_n = f_fn(vals)
        y_n = [num(ys[n][t]) for t in tgt] if ys[n] is not None else [num(v) for v in tgt_zero]
        o_vals = f_n + y_n
        Jf = J_fn(vals)
        Jn = [Jf[c * d:(c + 1) * d] for c in range(C)]           # C x d
        JnT = _transpose(Jn)                                      # d x C
        if kind in ("hessian", "ggn", "fisher"):
            Mflat = (L_fn if kind != "fisher" else F_fn)(o_vals)
            M = [Mflat[c * C:(c + 1) * C] for c in range(C)]
            Hn = _matmul(_matmul(JnT, M, ar.zero), Jn, ar.zero)
            if kind == "hessian" and layerwise:
                r = r_fn(o_vals)
                outs = _second_order_layerwise(net, ar, theta_num, vals[d:], activation_fns)
                for c in range(C):
                    Hc = outs[c][2]
                    for i in range(d):
                        for j in range(d):
                            if Hc[i][j] != 0:
                                Hn[i][j] = Hn[i][j] + r[c] * Hc[i][j]
            elif kind == "hessian":
                r = r_fn(o_vals)
                D2 = D2_fn(vals)
                P = len(pairs)
                for c in range(C):
                    for p, (i, j) in enumerate(pairs):
                        v = r[c] * D2[c * P + p]
                        Hn[i][j] = Hn[i][j] + v
                        if i != j:
                            Hn[j][i] = Hn[j][i] + v
        elif kind == "empirical_fisher":
            r = r_fn(o_vals)
            g = [sum((JnT[i][c] * r[c] for c in range(C)), ar.zero) for i in range(d)]
            Hn = [[g[i] * g[j] for j in range(d)] for i in range(d)]
        else:  # kfac, kfac_empirical: accumulate factors
            if kind == "kfac":
                Mflat = F_fn(o_vals)
                M = [Mflat[c * C:(c + 1) * C] for c in range(C)]
            else:
                r = r_fn(o_vals)
                M = [[r[a] * r[b] for b in range(C)] for a in range(C)]
            a_all = A_fn(vals)
            pos = 0
            for k, (start, out, inn) in enumerate(net.weight_index):
                abar = a_all[pos:pos + inn] + [num(sp.Integer(1))]
                pos += inn
                bstart = net.bias_index[k]
                Js = [row[bstart:bstart + out] for row in Jn]     # C x out = df/ds_k
                Gn = _matmul(_matmul(_transpose(Js), M, ar.zero), Js, ar.zero)
                An = [[abar[i] * abar[j] for j in range(inn + 1)] for i in range(inn + 1)]
                kf_A[k] = An if kf_A[k] is None else _add(kf_A[k], An)
                kf_G[k] = Gn if kf_G[k] is None else _add(kf_G[k], Gn)
            continue
        total = _add(total, Hn)

    if kind in ("kfac", "kfac_empirical"):
        a_scale, g_scale = num(sp.Rational(1, N)), num(scale)
        for k, (start, out, inn) in enumerate(net.weight_index):
            A = [[a_scale * v for v in row] for row in kf_A[k]]
            G = [[g_scale * v for v in row] for row in kf_G[k]]
            # index of [W b] row-major entry (i, j) in parameter order
            def pidx(i, j, start=start, inn=inn, bstart=net.bias_index[k]):
                return start + i * inn + j if j < inn else bstart + i
            m = inn + 1
            for i1 in range(out):
                for j1 in range(m):
                    for i2 in range(out):
                        for j2 in range(m):
                            total[pidx(i1, j1)][pidx(i2, j2)] = G[i1][i2] * A[j1][j2]
        result = total
    else:
        s = num(scale)
        result = [[s * v for v in row] for row in total]

    if exact:
        return sp.Matrix(d, d, lambda i, j: sp.sympify(result[i][j]))
    return sp.Matrix(d, d, lambda i, j: ar.finish(result[i][j], precision))


def _add(A, B):
    return [[a + b for a, b in zip(ra, rb)] for ra, rb in zip(A, B)]
