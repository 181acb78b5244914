"""A PyTorch module as a ``fl.nn`` model: trace with ``torch.fx``, map each layer, keep the order.

:func:`convert` traces ``module.forward`` with ``torch.fx`` (standard ``torch.nn`` layers are
leaves; user modules and ``nn.Sequential`` are traced through) and reads the graph as a *chain*:
every node applies one supported layer or function to the previous value, and an addition
``x + g(x)`` of a value and a chain grown from it is a residual connection, ``Residual(g)``.
The result is a ``fl.nn.Sequential`` whose layers are ``fl.nn`` layers with the module's own
weights, in PyTorch's layout. When the layers use the parameters in the order of
``module.named_parameters()`` (modules registered in the order they run) the ``Sequential`` and
its nested parameter list are returned as they are; otherwise the model is wrapped by
:class:`TorchOrder`, whose parameters are the flat tuple in ``named_parameters()`` order, so that
``ravel_pytree(params)`` is always PyTorch's ``parameters()`` order (no permutation).

Everything else is refused before any numeric work, with an error naming the module (qualified
name and type) or the operation and the module it sits in.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Any

import numpy as np

from fisherlab import nn

__all__ = ["Converted", "TorchOrder", "as_numpy", "convert", "describe"]

_SUPPORTED_TEXT = ("Linear (with bias), Conv2d, LayerNorm, RMSNorm, Embedding, MultiheadAttention "
                   "(batch_first self-attention), GELU, ReLU, Tanh, Sigmoid, Identity, Flatten, "
                   "Dropout (p = 0 or eval mode), residual additions x + block(x), and "
                   "x.mean(dim=1) over tokens")


def _torch():
    import torch

    return torch


def describe(qualname: str, module) -> str:
    """``module 'blocks.0.attn' (MultiheadAttention)`` or ``the root module (Net)``."""
    if not qualname:
        return f"the root module ({type(module).__name__})"
    return f"module '{qualname}' ({type(module).__name__})"


# ----------------------------------------------------------------------------- layers


def _layer(module, qualname: str):
    """``(fl.nn layer, parameter attribute names)`` for one supported torch leaf module."""
    torch = _torch()
    tnn = torch.nn
    where = describe(qualname, module)
    kind = type(module)
    if kind is tnn.Linear:
        if module.bias is None:
            raise ValueError(f"{where} is Linear(bias=False); only Linear layers with a bias are "
                             "supported (fl.nn.Dense has the parameters (weight, bias))")
        return nn.Dense(module.in_features, module.out_features), ("weight", "bias")
    if kind is tnn.Conv2d:
        bad = []
        if module.groups != 1:
            bad.append(f"groups={module.groups}")
        if tuple(module.dilation) != (1, 1):
            bad.append(f"dilation={module.dilation}")
        if module.padding_mode != "zeros":
            bad.append(f"padding_mode={module.padding_mode!r}")
        if isinstance(module.padding, str) and module.padding != "valid":
            bad.append(f"padding={module.padding!r}")
        if module.bias is None:
            bad.append("bias=False")
        if bad:
            raise ValueError(f"{where} uses {', '.join(bad)}; supported: Conv2d with a bias, "
                             "groups=1, dilation=1 and integer zero padding")
        padding = (0, 0) if isinstance(module.padding, str) else tuple(module.padding)
        return (nn.Conv2d(module.in_channels, module.out_channels, tuple(module.kernel_size),
                          stride=tuple(module.stride), padding=padding), ("weight", "bias"))
    if kind is tnn.LayerNorm:
        if len(module.normalized_shape) != 1:
            raise ValueError(f"{where} normalises over {tuple(module.normalized_shape)}; only the "
                             "last axis (normalized_shape = (d,)) is supported")
        has_bias = module.elementwise_affine and module.bias is not None
        names = ("weight", "bias") if has_bias else (("weight",) if module.elementwise_affine
                                                     else ())
        return (nn.LayerNorm(module.normalized_shape[0], eps=float(module.eps),
                             elementwise_affine=bool(module.elementwise_affine), bias=has_bias),
                names)
    if kind is getattr(tnn, "RMSNorm", None):
        if len(module.normalized_shape) != 1:
            raise ValueError(f"{where} normalises over {tuple(module.normalized_shape)}; only the "
                             "last axis (normalized_shape = (d,)) is supported")
        eps = None if module.eps is None else float(module.eps)
        return (nn.RMSNorm(module.normalized_shape[0], eps=eps,
                           elementwise_affine=bool(module.elementwise_affine)),
                ("weight",) if module.elementwise_affine else ())
    if kind is tnn.Embedding:
        bad = [f"{a}={getattr(module, a)!r}" for a, ok in (
            ("padding_idx", None), ("max_norm", None), ("scale_grad_by_freq", False),
            ("sparse", False)) if getattr(module, a) != ok]
        if bad:
            raise ValueError(f"{where} uses {', '.join(bad)}; supported: a plain Embedding "
                             "(no padding_idx, max_norm, scale_grad_by_freq or sparse)")
        return nn.Embedding(module.num_embeddings, module.embedding_dim), ("weight",)
    if kind is tnn.MultiheadAttention:
        bad = []
        if not module.batch_first:
            bad.append("batch_first=False (inputs (R, N, d))")
        if not module._qkv_same_embed_dim:
            bad.append("kdim/vdim different from embed_dim")
        if module.in_proj_bias is None:
            bad.append("bias=False")
        if module.bias_k is not None:
            bad.append("add_bias_kv=True")
        if module.add_zero_attn:
            bad.append("add_zero_attn=True")
        if module.dropout and module.training:
            bad.append(f"dropout={module.dropout} in training mode (call module.eval())")
        if bad:
            raise ValueError(f"{where} uses {'; '.join(bad)}; supported: batch_first "
                             "self-attention with biases, no extra key/value bias or zero "
                             "attention, no dropout")
        return (nn.MultiHeadAttention(module.embed_dim, module.num_heads),
                ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"))
    if kind is tnn.GELU:
        return nn.GELU(approximate=module.approximate), ()
    if kind in (tnn.ReLU, tnn.Tanh, tnn.Sigmoid, tnn.Identity):
        return {tnn.ReLU: nn.ReLU, tnn.Tanh: nn.Tanh, tnn.Sigmoid: nn.Sigmoid,
                tnn.Identity: nn.Identity}[kind](), ()
    if kind is tnn.Dropout:
        if module.p and module.training:
            raise ValueError(f"{where} is Dropout(p={module.p}) in training mode, which makes the "
                             "loss random; call module.eval() (or use p=0)")
        return nn.Identity(), ()
    if kind is tnn.Flatten:
        if (module.start_dim, module.end_dim) != (1, -1):
            raise ValueError(f"{where} is Flatten(start_dim={module.start_dim}, "
                             f"end_dim={module.end_dim}); supported: Flatten() (every axis of "
                             "one example, start_dim=1, end_dim=-1)")
        return nn.Flatten(), ()
    raise TypeError(f"{where} is not supported by fisherlab.testing.torch; supported: "
                    f"{_SUPPORTED_TEXT}")


def _is_causal_mask(mask) -> bool:
    """Whether ``mask`` is PyTorch's causal attention mask (bool ``triu(1)`` or float ``-inf``)."""
    torch = _torch()
    if mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        return False
    R = mask.shape[0]
    upper = torch.triu(torch.ones(R, R, dtype=torch.bool), diagonal=1)
    if mask.dtype == torch.bool:
        return bool(torch.equal(mask, upper))
    m = mask.detach().cpu()
    return bool(torch.all(torch.isneginf(m[upper])) and torch.all(m[~upper] == 0))


# ----------------------------------------------------------------------------- graph walk


@dataclasses.dataclass(eq=False, frozen=True)
class _Step:
    """One layer of the chain (``residual`` steps hold the chain of their block)."""

    layer: Any = None
    names: tuple = ()
    residual: tuple | None = None


@dataclasses.dataclass(frozen=True)
class _Value:
    """A tensor of the traced forward: the input with a chain of steps applied."""

    steps: tuple


@dataclasses.dataclass(frozen=True)
class _AttentionOutput:
    """The ``(output, weights)`` pair returned by ``MultiheadAttention``."""

    value: _Value
    where: str


def _where(node, root) -> str:
    """The module an operation sits in, from ``torch.fx``'s module stack."""
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        qualname, cls = list(stack.values())[-1]
        return f"module '{qualname}' ({getattr(cls, '__name__', cls)})"
    return describe("", root)


def _fn_name(target) -> str:
    mod = getattr(target, "__module__", None) or ""
    name = getattr(target, "__name__", repr(target))
    return f"{mod}.{name}" if mod and not mod.startswith("_operator") else name


def _residual(a: _Value, b: _Value, node, root):
    short, long_ = (a, b) if len(a.steps) <= len(b.steps) else (b, a)
    k = len(short.steps)
    if len(long_.steps) > k and all(s is t for s, t in zip(short.steps, long_.steps[:k])):
        return _Value(short.steps + (_Step(residual=long_.steps[k:]),))
    raise ValueError(
        f"{_where(node, root)} adds two tensors that are not a residual connection "
        "x + block(x) (one operand must be the other's input); other additions are not "
        "supported")


def _activation_fn(target, kwargs):
    torch = _torch()
    F = torch.nn.functional
    if target in (torch.relu, F.relu):
        return nn.ReLU()
    if target in (torch.tanh, F.tanh):
        return nn.Tanh()
    if target in (torch.sigmoid, F.sigmoid):
        return nn.Sigmoid()
    if target is F.gelu:
        return nn.GELU(approximate=kwargs.get("approximate", "none"))
    return None


def _arg(node, i, name, default=None):
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


def _walk(gm, root):
    """The chain of steps of a traced module (a tuple of :class:`_Step`)."""
    torch = _torch()
    env: dict = {}
    placeholder = None

    def value(arg, node):
        v = env.get(arg) if hasattr(arg, "op") else None
        if not isinstance(v, _Value):
            raise ValueError(f"{_where(node, root)} applies {node.target} to {arg!r}, which is "
                             "not the chain's running tensor; only chains of supported layers "
                             "are covered")
        return v

    def then(v, layer, names=()):
        return _Value(v.steps + (_Step(layer=layer, names=tuple(names)),))

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            if placeholder is not None:
                raise ValueError(f"{describe('', root)}.forward takes more than one input "
                                 f"({placeholder.target!r}, {node.target!r}); only forward(x) "
                                 "is supported")
            placeholder = node
            env[node] = _Value(())
        elif node.op == "get_attr":
            env[node] = ("attr", node.target)
        elif node.op == "call_module":
            sub = gm.get_submodule(node.target)
            layer, names = _layer(sub, node.target)
            x = value(node.args[0] if node.args else _arg(node, 0, "query"), node)
            prefixed = tuple(f"{node.target}.{n}" for n in names)
            if isinstance(layer, nn.MultiHeadAttention):
                where = describe(node.target, sub)
                q, k, v = (_arg(node, i, n) for i, n in enumerate(("query", "key", "value")))
                if not (q is k is v):
                    raise ValueError(f"{where} is called with different query, key and value; "
                                     "only self-attention attn(x, x, x) is supported")
                if _arg(node, 3, "key_padding_mask") is not None:
                    raise ValueError(f"{where} is called with a key_padding_mask; padded "
                                     "sequences are not supported (use one length per batch)")
                mask = node.kwargs.get("attn_mask", node.args[5] if len(node.args) > 5 else None)
                causal = False
                if mask is not None:
                    entry = env.get(mask)
                    tensor = (gm.get_buffer(entry[1]) if isinstance(entry, tuple)
                              and entry[0] == "attr" else None)
                    if tensor is None or not _is_causal_mask(tensor):
                        raise ValueError(
                            f"{where} is called with an attn_mask that is not a registered "
                            "causal mask buffer (torch.triu(ones(R, R, dtype=bool), 1) or "
                            "nn.Transformer.generate_square_subsequent_mask(R)); only "
                            "unmasked or causal self-attention is supported")
                    causal = True
                layer = nn.MultiHeadAttention(layer.d, layer.num_heads, causal=causal)
                env[node] = _AttentionOutput(then(x, layer, prefixed), where)
            else:
                env[node] = then(x, layer, prefixed)
        elif node.op == "call_function":
            target = node.target
            if target in (operator.add, operator.iadd, torch.add):
                if "alpha" in node.kwargs:
                    raise ValueError(f"{_where(node, root)} uses torch.add(..., alpha=...); "
                                     "only x + block(x) is supported")
                a, b = node.args[:2]
                env[node] = _residual(value(a, node), value(b, node), node, root)
            elif target is operator.getitem:
                src = env.get(node.args[0])
                if isinstance(src, _AttentionOutput) and node.args[1] == 0:
                    env[node] = src.value
                else:
                    what = ("the attention weights (output [1])"
                            if isinstance(src, _AttentionOutput) else "an indexed tensor")
                    raise ValueError(f"{_where(node, root)} uses {what}; only the attention "
                                     "output attn(x, x, x)[0] is supported")
            elif _activation_fn(target, node.kwargs) is not None:
                env[node] = then(value(node.args[0], node), _activation_fn(target, node.kwargs))
            elif target is torch.flatten and _arg(node, 1, "start_dim", 0) == 1 and _arg(
                    node, 2, "end_dim", -1) == -1:
                env[node] = then(value(node.args[0], node), nn.Flatten())
            elif target is torch.mean and _arg(node, 1, "dim") in (1, (1,)) and not _arg(
                    node, 2, "keepdim", False):
                env[node] = then(value(node.args[0], node), nn.MeanPool())
            else:
                raise TypeError(f"{_where(node, root)} applies {_fn_name(target)}, which "
                                f"fisherlab.testing.torch does not support; supported: "
                                f"{_SUPPORTED_TEXT}")
        elif node.op == "call_method":
            method = node.target
            x = value(node.args[0], node)
            if method in ("relu", "tanh", "sigmoid"):
                env[node] = then(x, {"relu": nn.ReLU, "tanh": nn.Tanh,
                                     "sigmoid": nn.Sigmoid}[method]())
            elif method == "mean" and _arg(node, 1, "dim") in (1, (1,)) and not _arg(
                    node, 2, "keepdim", False):
                env[node] = then(x, nn.MeanPool())
            elif method == "flatten" and _arg(node, 1, "start_dim", 0) == 1 and _arg(
                    node, 2, "end_dim", -1) == -1:
                env[node] = then(x, nn.Flatten())
            else:
                raise TypeError(f"{_where(node, root)} calls the tensor method .{method}(), which "
                                f"fisherlab.testing.torch does not support; supported: "
                                f"{_SUPPORTED_TEXT}")
        elif node.op == "output":
            out = env.get(node.args[0]) if hasattr(node.args[0], "op") else None
            if not isinstance(out, _Value):
                raise ValueError(f"{describe('', root)}.forward must return one tensor computed "
                                 f"from its input, got {node.args[0]!r}")
            return out.steps
    raise ValueError(f"{describe('', root)} has no output")  # pragma: no cover


def _build(steps):
    """``(fl.nn.Sequential, template)``: template mirrors the params with torch names as leaves."""
    layers, template = [], []
    for step in steps:
        if step.residual is not None:
            block, inner = _build(step.residual)
            layers.append(nn.Residual(block))
            if block.has_params:
                template.append(inner)
        else:
            layers.append(step.layer)
            if step.layer.has_params:
                template.append(tuple(step.names))
    return nn.Sequential(layers), template


def _leaves(template):
    out = []
    for entry in template:
        if isinstance(entry, list):
            out.extend(_leaves(entry))
        else:
            out.extend(entry)
    return out


def _index_template(template, index):
    return tuple(_index_template(e, index) if isinstance(e, list)
                 else tuple(index[n] for n in e) for e in template)


@dataclasses.dataclass(frozen=True)
class TorchOrder:
    """A ``fl.nn.Sequential`` whose parameters are passed flat, in the module's
    ``named_parameters()`` order: ``params[i]`` is the ``i``-th parameter tensor.

    Used when the module registers its layers in another order than they run (or shares a
    layer), so that ``ravel_pytree(params)`` is still PyTorch's ``parameters()`` order.
    ``index`` mirrors the ``Sequential``'s nested parameter list with indices into ``params``.
    """

    model: Any
    index: tuple

    def nested(self, params):
        """The ``Sequential``'s nested parameter list built from the flat tuple."""
        def fill(entries):
            out = []
            for e in entries:
                if e and isinstance(e[0], tuple):
                    out.append(fill(e))
                else:
                    out.append(tuple(params[i] for i in e))
            return out
        return fill(self.index)

    def __call__(self, params, x):
        return self.model(self.nested(params), x)

    def check_inputs(self, x, name: str = "x"):
        return self.model.check_inputs(x, name)


@dataclasses.dataclass(frozen=True)
class Converted:
    """The result of :func:`convert`: ``model(params, x)`` on one example, ``params`` in
    ``module.named_parameters()`` order when flattened, ``names`` those parameter names."""

    model: Any
    params: Any
    names: tuple


def convert(module) -> Converted:
    """A ``torch.nn.Module`` as a ``fl.nn`` model with its weights (float64 NumPy copies).

    See the module docstring for what is covered; anything else raises ``TypeError`` (an
    unsupported layer or operation) or ``ValueError`` (a supported layer with unsupported
    options, or a graph that is not a chain with residual additions), naming the module by its
    qualified name and type.
    """
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    named = dict(module.named_parameters())
    if not named:
        raise ValueError(f"{describe('', module)} has no parameters: nothing to take curvature "
                         "with respect to (supported layers with parameters: Linear, Conv2d, "
                         "LayerNorm, RMSNorm, Embedding, MultiheadAttention)")
    leaf_types = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.LayerNorm, torch.nn.Embedding,
                  torch.nn.MultiheadAttention) + ((torch.nn.RMSNorm,)
                                                 if hasattr(torch.nn, "RMSNorm") else ())
    if type(module) in leaf_types:
        layer, names = _layer(module, "")
        steps = (_Step(layer=layer, names=names),)
    else:
        if type(module).__module__.startswith("torch.nn.modules") and not isinstance(
                module, (torch.nn.Sequential,)):
            _layer(module, "")  # raises: an unsupported torch.nn layer as the whole model
        try:
            gm = torch.fx.symbolic_trace(module)
        except Exception as exc:  # noqa: BLE001 - torch.fx raises many kinds
            raise ValueError(
                f"{describe('', module)} could not be traced with torch.fx ({type(exc).__name__}:"
                f" {exc}); only modules whose forward is a fixed chain of supported layers are "
                f"covered: {_SUPPORTED_TEXT}") from exc
        steps = _walk(gm, module)
    seq, template = _build(steps)
    used = _leaves(template)
    order = list(named)
    missing = [n for n in order if n not in used]
    if missing:
        raise ValueError(f"{describe('', module)} has parameters that forward does not use: "
                         f"{', '.join(missing)}; their curvature rows would be zero (remove "
                         "them, or pass a module that uses every parameter)")
    arrays = {n: p.detach().cpu().double().numpy().copy() for n, p in named.items()}
    if used == order:
        params = _fill_names(template, arrays)
        return Converted(seq, params, tuple(order))
    index = {n: i for i, n in enumerate(order)}
    model = TorchOrder(seq, _index_template(template, index))
    return Converted(model, tuple(arrays[n] for n in order), tuple(order))


def _fill_names(template, arrays):
    return [_fill_names(e, arrays) if isinstance(e, list) else tuple(arrays[n] for n in e)
            for e in template]


def as_numpy(t, name: str):
    """A tensor (or array-like) as NumPy: floating -> float64, integers kept."""
    torch = _torch()
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu()
        return t.double().numpy() if t.dtype.is_floating_point else t.numpy()
    arr = np.asarray(t)
    return arr.astype(np.float64) if np.issubdtype(arr.dtype, np.floating) else arr

