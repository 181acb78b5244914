r"""Whole-network SymPy expressions for chains of ``Dense`` layers and elementwise activations.

The network ``f(theta, x)`` of such a :class:`fisherlab.nn.Sequential` is built as one SymPy
expression per output, with one symbol per parameter and per input component, and differentiated
exactly with ``sympy.diff``: the Jacobian ``J = df/dtheta`` (``C x d``) and, for the Hessian,
every second derivative ``d^2 f_c`` -- from the composed expression (at most one nonlinear
activation) or, for nested nonlinearities where that expression swell is costly, from the exact
second-order chain rule applied layer by layer with the activations' derivatives from
``sympy.diff`` (``second_derivatives=``). Derivatives are built once per architecture (cached)
and compiled for exact substitution or mpmath evaluation.
"""

from __future__ import annotations

import dataclasses

import sympy as sp

from fisherlab import nn
from fisherlab.testing.references.symbolic._likelihood import (calculus_key, output_calculus,
                                                                output_fisher)
from fisherlab.testing.references.symbolic._local import relu_piecewise
from fisherlab.testing.references.symbolic._values import Exact, Numeric, add, matmul, transpose

__all__ = ["assemble", "build_network", "supports"]


def supports(model) -> bool:
    """Whether ``model`` is a ``Sequential`` of ``Dense`` layers and elementwise activations."""
    return isinstance(model, nn.Sequential) and any(
        isinstance(l, nn.Dense) for l in model.layers) and all(
        isinstance(l, (nn.Dense, nn.Activation)) for l in model.layers)




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


def build_network(model) -> _SymbolicNetwork:
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
            a = [relu_piecewise(sp.sympify(layer.symbolic(z))) for z in a]
            z = sp.Symbol("z", real=True)
            program.append(("act", relu_piecewise(sp.sympify(layer.symbolic(z))), z))
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


def assemble(net, sym, kind, reduction, exact, precision, theta_vals, xs, ys,
             second_derivatives="auto"):
    """The ``d x d`` curvature of ``kind`` from the composed network's exact derivatives."""
    d, C, N = len(net.theta), len(net.outputs), len(xs)
    calc = output_calculus(sym)
    eta, tgt = tuple(sym.outputs), tuple(sym.targets)

    # ---- exact symbolic derivatives of the network (once per architecture, cached),
    #      compiled for exact substitution or mpmath evaluation
    mode = "exact" if exact else "numeric"
    net_args = net.theta + net.inputs
    ar: Exact | Numeric = Exact(net_args) if exact else Numeric(net_args, precision + 10)
    aro = Exact(eta + tgt) if exact else Numeric(eta + tgt, precision + 10)
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
                evaluator = Exact((z,)) if exact else Numeric((z,), precision + 10)
                activation_fns[id(step)] = _memo(
                    ("phi", phi, mode),
                    lambda phi=phi, z=z, ev=evaluator: ev.compile(
                        [phi, sp.diff(phi, z), sp.diff(phi, z, 2)]))
    skey = calculus_key(sym)
    if kind in ("hessian", "ggn"):
        L_fn = _memo(("Lambda", skey, mode), lambda: aro.compile(list(calc.hess)))
    if kind in ("hessian", "empirical_fisher", "kfac_empirical"):
        r_fn = _memo(("r", skey, mode), lambda: aro.compile(list(calc.grad)))
    if kind in ("fisher", "kfac"):
        F_fn = _memo(("Fout", skey, mode), lambda: aro.compile(list(output_fisher(sym))))
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
        JnT = transpose(Jn)                                      # d x C
        if kind in ("hessian", "ggn", "fisher"):
            Mflat = (L_fn if kind != "fisher" else F_fn)(o_vals)
            M = [Mflat[c * C:(c + 1) * C] for c in range(C)]
            Hn = matmul(matmul(JnT, M, ar.zero), Jn, ar.zero)
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
                Gn = matmul(matmul(transpose(Js), M, ar.zero), Js, ar.zero)
                An = [[abar[i] * abar[j] for j in range(inn + 1)] for i in range(inn + 1)]
                kf_A[k] = An if kf_A[k] is None else add(kf_A[k], An)
                kf_G[k] = Gn if kf_G[k] is None else add(kf_G[k], Gn)
            continue
        total = add(total, Hn)

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


