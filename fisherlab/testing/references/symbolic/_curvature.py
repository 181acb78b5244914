r"""``curvature``: exact whole-network curvature of tiny ``fl.nn`` models (never calls JAX)."""

from __future__ import annotations

import contextlib

import mpmath
import numpy as np
import sympy as sp

from fisherlab import nn
from fisherlab.testing.references.symbolic import _composed, _params
from fisherlab.testing.references.symbolic._data import feature_inputs, targets, token_inputs
from fisherlab.testing.references.symbolic._jets import Propagator, UnsupportedLayer
from fisherlab.testing.references.symbolic._likelihood import (calculus_key, output_calculus,
                                                                output_fisher,
                                                                symbolic_likelihood)
from fisherlab.testing.references.symbolic._values import Exact, Numeric, matmul, transpose

__all__ = ["KINDS", "curvature"]

#: the curvature matrices :func:`curvature` computes.
KINDS = ("hessian", "ggn", "fisher", "empirical_fisher", "kfac", "kfac_empirical")
_NEEDS_TARGETS = ("hessian", "ggn", "empirical_fisher", "kfac_empirical")
_ENGINES = ("auto", "composed", "layerwise")
_TOKENS = ("sum", "flatten")


def curvature(model, params, x, y, likelihood, kind: str = "hessian", *,
              reduction: str = "mean", tokens: str = "sum", exact: bool = False,
              precision: int = 30, second_derivatives: str = "auto",
              engine: str = "auto") -> sp.Matrix:
    r"""Exact curvature matrix of a tiny network, computed symbolically (never calls JAX).

    Args:
      model: a :class:`fisherlab.nn.Sequential` of ``Dense``, ``LayerNorm``, ``RMSNorm``,
        ``Embedding``, ``MultiHeadAttention``, ``Residual``, ``MeanPool``, nested
        ``Sequential`` and elementwise activations (``Tanh``, ``Sigmoid``, ``ReLU``,
        ``Identity``, ``GELU``; any parameter-free ``fl.nn.Activation`` with a
        ``.symbolic(z)`` method). Its outputs for one example are ``(C,)`` or per token
        ``(R, C)``.
      params: the model's parameters, nested as ``model.init`` nests them (``[(W_1, b_1),
        ...]`` for an MLP): NumPy/JAX arrays, nested lists, Python or SymPy numbers (a
        Python float is accepted for a ``1 x 1`` weight). Floats are used at their exact
        binary value.
      x: inputs ``(N, in)``, sequences ``(N, R, d)``, or integer token ids ``(N, R)`` for a
        model that starts with an ``Embedding``.
      y: targets: ``(N,)`` class indices for ``Categorical``, ``(N, D)`` otherwise (``D = C``
        except ``GaussianMeanVariance``, ``D = C/2``); for per-token outputs ``(N, R)`` /
        ``(N, R, D)``. Ignored (may be ``None``) for ``kind="fisher"`` and ``"kfac"``.
      likelihood: a fisherlab likelihood (its ``.symbolic(C)`` is used) or a
        :class:`~fisherlab.likelihoods.SymbolicLikelihood`.
      kind: ``"hessian"`` | ``"ggn"`` | ``"fisher"`` (true Fisher, exact expectation over
        ``y ~ p(.|f_n)``) | ``"empirical_fisher"`` (data labels) | ``"kfac"`` (K-FAC with the
        exact expectation, ``fisher_type="exact"``, ``bias="augmented"``) |
        ``"kfac_empirical"`` (K-FAC with the data labels in ``G``). The K-FAC kinds need a
        chain of ``Dense`` layers and activations.
      reduction: ``"mean"`` (``L = (1/N) sum_n l_n``, default) or ``"sum"``.
      tokens: per-token outputs only: ``"sum"`` (default; ``l_n`` is the sum of the ``R``
        token losses, the mean runs over the ``N`` examples) or ``"flatten"`` (the ``N R``
        tokens are the examples, as PyTorch's loss on flattened tokens: the mean carries
        ``1/(N R)`` and the empirical Fisher sums the ``N R`` token-gradient outer products);
        docs/CONVENTIONS.md, "Model, loss, reduction".
      exact: return exact SymPy expressions instead of evaluated ``Float``\ s (meant for
        networks of a few parameters: exact expressions in ``tanh``/``exp`` of rationals
        grow quickly; a linear model with a Gaussian likelihood gives exact rationals).
      precision: significant digits of the returned ``Float``\ s (``exact=False``);
        intermediate evaluation uses ``precision + 10`` digits.
      second_derivatives: for the ``"composed"`` engine's Hessian: ``"symbolic"`` --
        ``sympy.diff`` of the composed network expression; ``"layerwise"`` -- the exact
        second-order chain rule layer by layer; ``"auto"`` (default) -- symbolic for at most
        one nonlinear activation, layerwise otherwise.
      engine: ``"composed"`` -- the whole network as one SymPy expression per output,
        differentiated by ``sympy.diff`` (chains of ``Dense`` layers and activations on inputs
        ``(N, in)``); ``"layerwise"`` -- every layer a small SymPy function, local derivatives
        by ``sympy.diff``, composed by the exact chain rule (every supported layer);
        ``"auto"`` (default): composed where it applies, layerwise otherwise. The tests check
        that both agree where both apply.

    Returns:
      A ``d x d`` SymPy ``Matrix`` in ``ravel_pytree(params)`` order (PyTorch's
      ``parameters()`` order: ``W_1`` row-major, ``b_1``, ``W_2``, ...).

    .. math::

        H = \tfrac1N \sum_n J_n^\top \Lambda_n J_n + \sum_c r_{n,c} \nabla^2 f_{n,c},\quad
        G = \tfrac1N \sum_n J_n^\top \Lambda_n J_n,\quad
        F = \tfrac1N \sum_n J_n^\top \mathbb E_{y}[s s^\top] J_n,\quad
        EF = \tfrac1N \sum_n g_n g_n^\top,

    with ``r = grad_eta l``, ``Lambda = grad^2_eta l``, ``s = grad_eta log p`` and
    ``g_n = J_n^T r_n``; for per-token outputs ``J_n^T M J_n`` is ``sum_r J_{n,r}^T M_{n,r}
    J_{n,r}`` (token ``r``'s ``C`` outputs) and ``g_n = sum_r J_{n,r}^T r_{n,r}``. K-FAC: block
    ``G_k (x) A_k`` per Dense layer (docs/CONVENTIONS.md), ``A_k = (1/N) sum_n abar abar^T``,
    ``G_k = (1/N) sum_n J_{s,n}^T E[s s^T] J_{s,n}`` (``J_s = df/ds_k = df/db_k``), zero
    between layers; with ``reduction="sum"`` the ``1/N`` of ``G`` (not of ``A``) is dropped,
    so the matrix is ``N`` times the mean one.

    Cost (measured, 2 shared cores): one symbolic differentiation per architecture (cached,
    independent of ``N``), then an evaluation per example: Hessian of a 22-parameter
    2-4-2 tanh network, ``N = 2``: 0.9 s cold, 0.08 s warm; the other kinds <= 0.3 s cold.
    A 28-parameter 3-3-3-1 tanh/sigmoid network: 2.2 s (layerwise second derivatives).
    The Poisson output Fisher (a series per entry) costs ~1 s per entry once (cached).
    The layerwise engine differentiates each layer once per size (cached): the GGN of a
    pre-LN transformer block with ``d = 2``, two heads, ``R = 2`` (about 50 parameters) costs
    well under a second per example warm; its Hessian a few seconds.

    References:
      M. Johnson, "Natural gradients and K-FAC" (note, 2017), App. A eqs. (40)-(47) (Hessian
      = GGN + residual term; Fisher as J^T (Hess A) J); J. Martens, "New insights and
      perspectives on the natural gradient method", JMLR 21, 2020; J. Martens & R. Grosse,
      "Optimizing neural networks with Kronecker-factored approximate curvature", ICML 2015;
      F. Kunstner, L. Balles & P. Hennig, "Limitations of the empirical Fisher approximation
      for natural gradient descent", NeurIPS 2019.

    >>> import numpy as np, fisherlab as fl
    >>> model = fl.nn.Sequential([fl.nn.Embedding(3, 2), fl.nn.LayerNorm(2), fl.nn.MeanPool(),
    ...                           fl.nn.Dense(2, 2)])
    >>> params = [(np.array([[0.5, -1.0], [2.0, 0.25], [1.0, 1.0]]),),
    ...           (np.array([1.0, 0.5]), np.array([0.0, 0.25])),
    ...           (np.eye(2), np.zeros(2))]
    >>> G = fl.symbolic.curvature(model, params, np.array([[0, 1]]), np.array([1]),
    ...                           fl.Categorical(), "ggn")
    >>> G.shape
    (16, 16)

    Derivations: ``fisher_ggn.expected_hessian``, ``fisher_ggn.natural_parameters``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if tokens not in _TOKENS:
        raise ValueError(f"tokens must be 'sum' or 'flatten', got {tokens!r}")
    if not isinstance(exact, bool):
        raise TypeError(f"exact must be a bool, got {exact!r}")
    if second_derivatives not in ("auto", "symbolic", "layerwise"):
        raise ValueError("second_derivatives must be 'auto', 'symbolic' or 'layerwise', got "
                         f"{second_derivatives!r}")
    if engine not in _ENGINES:
        raise ValueError(f"engine must be 'auto', 'composed' or 'layerwise', got {engine!r}")
    if not isinstance(precision, int) or isinstance(precision, bool) or precision < 15:
        raise ValueError(f"precision must be an int >= 15 (significant digits), got {precision!r}")
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"model must be a fisherlab.nn.Sequential, got {type(model).__name__}")
    if not model.has_params:
        raise ValueError(f"model must contain at least one Dense layer or another layer with "
                         f"parameters, got {model!r}")

    composed = _composed.supports(model) and np.ndim(x) == 2
    if engine == "composed" and not _composed.supports(model):
        raise TypeError("engine='composed' needs a Sequential of Dense layers and elementwise "
                        f"activations, got {model!r}")
    use_composed = engine == "composed" or (engine == "auto" and composed)
    if not use_composed:
        if kind in ("kfac", "kfac_empirical"):
            raise ValueError(f"kind={kind!r} needs a chain of Dense layers and elementwise "
                             f"activations on inputs (N, in) (the composed engine), got {model!r}")
        if second_derivatives == "symbolic":
            raise ValueError("second_derivatives='symbolic' (sympy.diff of the composed network) "
                             "needs a chain of Dense layers and elementwise activations on "
                             "inputs (N, in); use 'auto' or 'layerwise'")
        _check_supported(model)

    theta_vals = _params.values(model, params)
    spec = model.input_spec()
    if use_composed:
        xs = [list(a) for a in feature_inputs(x, model.in_features, sequences=False)]
    elif spec is not None and spec[0] == "tokens":
        xs = token_inputs(x, spec[1])
    else:
        xs = feature_inputs(x, spec[1], sequences=True) if spec is not None else _any_inputs(x)

    ctx = contextlib.nullcontext() if exact else mpmath.workdps(precision + 10)
    with ctx:
        if use_composed:
            net = _composed.build_network(model)
            sym = symbolic_likelihood(likelihood, len(net.outputs))
            ys = _targets_or_none(kind, y, sym, len(xs), None)
            return _composed.assemble(net, sym, kind, reduction, exact, precision, theta_vals,
                                      xs, ys, second_derivatives)
        return _assemble_layerwise(model, likelihood, kind, reduction, tokens, exact, precision,
                                   theta_vals, xs, y, spec)


def _check_supported(model):
    """Refuse a layer the chain-rule engine has no definition for, before any work."""
    supported = (nn.Dense, nn.LayerNorm, nn.RMSNorm, nn.Embedding, nn.MultiHeadAttention,
                 nn.MeanPool)

    def walk(layer, where):
        if isinstance(layer, nn.Sequential):
            for i, sub in enumerate(layer.layers):
                walk(sub, f"{where}.layers[{i}]")
        elif isinstance(layer, nn.Residual):
            walk(layer.block, f"{where}.block")
        elif isinstance(layer, nn.Activation):
            if not callable(getattr(layer, "symbolic", None)):  # pragma: no cover - abstract
                raise UnsupportedLayer(f"{where} is {layer!r}: it has no .symbolic(z)")
        elif not isinstance(layer, supported):
            raise UnsupportedLayer(
                f"{where} is {layer!r}: fl.symbolic.curvature supports Dense, LayerNorm, "
                "RMSNorm, Embedding, MultiHeadAttention, Residual, MeanPool, nested Sequential "
                "and elementwise activations (Tanh, Sigmoid, ReLU, Identity, GELU)")

    walk(model, "model")


def _any_inputs(x):
    arr = np.asarray(x)
    if arr.ndim < 2 or arr.shape[0] < 1:
        raise ValueError(f"x must have a leading batch axis N >= 1 and at least one more axis, "
                         f"got shape {tuple(arr.shape)}")
    return feature_inputs(arr, arr.shape[-1], sequences=True)


def _targets_or_none(kind, y, sym, N, R):
    if kind not in _NEEDS_TARGETS:
        return [None] * N
    if y is None:
        raise ValueError(f"y (targets) is required for kind={kind!r}, got None")
    return targets(y, sym, N, R)


def _assemble_layerwise(model, likelihood, kind, reduction, tokens, exact, precision, theta_vals,
                        xs, y, spec):
    """Curvature from the jets of the outputs (:mod:`~._jets`), example by example."""
    ar_num = Exact(()) if exact else Numeric((), precision + 10)
    num = ar_num.number
    zero = ar_num.zero
    theta = [num(v) for v in theta_vals]
    positions, d = _params.layout(model)
    prop = Propagator(theta, 2 if kind == "hessian" else 1, exact, precision + 10)

    outs = []
    for xn in xs:
        if spec is not None and spec[0] == "tokens":
            a = xn
        else:
            a = np.empty(xn.shape, dtype=object)
            for idx in np.ndindex(*xn.shape):
                a[idx] = prop.constant(num(xn[idx]))
        outs.append(prop.forward(model, positions, a))
    shape = outs[0].shape
    if len(shape) not in (1, 2):
        raise ValueError(f"the model's outputs for one example must have shape (C,) or (R, C), "
                         f"got {shape}")
    R = shape[0] if len(shape) == 2 else None
    C = shape[-1]
    N = len(xs)
    sym = symbolic_likelihood(likelihood, C)
    ys = _targets_or_none(kind, y, sym, N, R)

    calc = output_calculus(sym)
    eta, tgt = tuple(sym.outputs), tuple(sym.targets)
    aro = Exact(eta + tgt) if exact else Numeric(eta + tgt, precision + 10)
    skey, mode = calculus_key(sym), ("exact" if exact else "numeric")
    fns = _OUTPUT_FNS.setdefault((skey, mode), {})
    if kind in ("hessian", "ggn") and "L" not in fns:
        fns["L"] = aro.compile(list(calc.hess))
    if kind in ("hessian", "empirical_fisher") and "r" not in fns:
        fns["r"] = aro.compile(list(calc.grad))
    if kind == "fisher" and "F" not in fns:
        fns["F"] = aro.compile(list(output_fisher(sym)))

    flatten = tokens == "flatten" and R is not None
    total = [[zero] * d for _ in range(d)]
    for n in range(N):
        groups = [outs[n]] if R is None else [outs[n][r] for r in range(R)]
        g_example = [zero] * d
        for r, group in enumerate(groups):
            y_nr = ys[n] if R is None else (ys[n][r] if ys[n] is not None else None)
            y_vals = [num(y_nr[t]) for t in tgt] if y_nr is not None else [zero] * len(tgt)
            o_vals = [j.v for j in group] + y_vals
            J = [[j.g.get(p, zero) for p in range(d)] for j in group]           # C x d
            if kind in ("hessian", "ggn", "fisher"):
                Mflat = fns["F" if kind == "fisher" else "L"](o_vals)
                M = [Mflat[c * C:(c + 1) * C] for c in range(C)]
                block = matmul(matmul(transpose(J), M, zero), J, zero)
                if kind == "hessian":
                    res = fns["r"](o_vals)
                    for c, j in enumerate(group):
                        for (p, q), v in j.h.items():  # upper triangle
                            rv = res[c] * v
                            block[p][q] = block[p][q] + rv
                            if p != q:
                                block[q][p] = block[q][p] + rv
                _add_into(total, block)
            else:  # empirical Fisher: outer products of gradients
                res = fns["r"](o_vals)
                g = [sum((J[c][p] * res[c] for c in range(C)), zero) for p in range(d)]
                if flatten:
                    _add_into(total, [[gi * gj for gj in g] for gi in g])
                else:
                    g_example = [a + b for a, b in zip(g_example, g)]
        if kind == "empirical_fisher" and not flatten:
            _add_into(total, [[gi * gj for gj in g_example] for gi in g_example])

    count = N * (R if flatten else 1)
    scale = num(sp.Rational(1, count)) if reduction == "mean" else num(sp.Integer(1))
    if exact:
        return sp.Matrix(d, d, lambda i, j: sp.sympify(scale * total[i][j]))
    return sp.Matrix(d, d, lambda i, j: ar_num.finish(scale * total[i][j], precision))


_OUTPUT_FNS: dict = {}


def _add_into(total, block):
    for i, row in enumerate(block):
        trow = total[i]
        for j, v in enumerate(row):
            if v != 0:
                trow[j] = trow[j] + v
