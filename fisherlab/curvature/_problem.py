"""Validation and preparation shared by the dense and matrix-free curvature references.

:func:`prepare` turns the public arguments ``(f, params, x, y, likelihood)`` into a
:class:`Prepared` problem: float64 parameters, validated inputs and targets, the
batch size ``N``, the number of outputs ``C`` and the number of parameters ``d``.
Every failure is a ``ValueError``/``TypeError`` whose message names the argument,
what was received and what was expected (see :mod:`fisherlab._core.validation`).

A model with per-token outputs ``(R, C)`` is prepared in the *sequences* view of
:mod:`fisherlab.curvature._tokens` (``R C`` outputs, a likelihood summing the ``R`` token
terms), so every kernel runs unchanged; with ``tokens="flatten"``,
:meth:`Prepared.outer_product_problem` gives the *tokens as examples* view for the quantities
built from per-example gradient outer products.

Checks that need concrete values (finiteness, class-index ranges) are skipped for
traced values, so the references stay usable under ``jax.jit``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab import nn as _nn
from fisherlab._core.validation import (as_array, as_float_array, check_choice, check_finite,
                                        check_int, is_tracer)
from fisherlab.curvature._tokens import PerToken, TokenExamples, TokenOutputs

__all__ = ["Prepared", "check_chunk_size", "check_jacobian_mode", "check_method",
           "check_num_samples", "check_params", "check_reduction", "check_tokens",
           "check_vector", "prepare", "reduction_weights"]

_REDUCTIONS = ("mean", "sum")
_TOKENS = ("sum", "flatten")
_JACOBIAN_MODES = ("auto", "forward", "reverse")
_METHODS = ("auto", "jacobian", "layerwise")
_LIKELIHOOD_KERNELS = ("_nll", "_output_grad", "_output_hessian", "_output_fisher", "_sample",
                       "check_outputs", "check_targets")


class Prepared(NamedTuple):
    """A validated curvature problem (all floating arrays float64).

    For per-token outputs ``(R, C)`` this is the sequences view (:mod:`fisherlab.curvature.
    _tokens`): ``f`` returns ``vec`` of the outputs (``C`` here is ``R`` times the classes),
    ``likelihood`` is the :class:`~fisherlab.curvature._tokens.PerToken` sum over tokens and
    ``y`` has shape ``(N, R, ...)``.
    """

    f: Any  #: the single-example model ``f(params, x)``
    params: Any  #: the parameters, every leaf float64
    x: Any  #: the inputs, leading axis N (floating leaves float64)
    y: Any  #: the targets (validated by the likelihood) or ``None``
    likelihood: Any
    outputs: Any  #: ``vmap(f)(params, x)``, shape (N, C)
    num_examples: int  #: N
    num_outputs: int  #: C
    num_params: int  #: d
    num_tokens: int = 0  #: R for per-token outputs (R, C); 0 for outputs (C,)
    tokens: str = "sum"  #: "sum" or "flatten" (docs/CONVENTIONS.md, "Per-token outputs")

    def example_weight(self, reduction: str) -> float:
        """The weight ``w`` of one example's loss: ``1/N`` (mean) or ``1`` (sum); ``1/(N R)``
        for the mean over the ``N R`` tokens (``tokens="flatten"``)."""
        w = reduction_weights(self.num_examples, reduction)
        if reduction == "mean" and self.tokens == "flatten" and self.num_tokens:
            w /= self.num_tokens
        return w

    def outer_product_problem(self) -> "Prepared":
        """The problem whose examples are the units of per-example gradient outer products.

        Itself, except for per-token outputs with ``tokens="flatten"``: then the ``N R`` pairs
        ``(x_n, r)`` are the examples (:class:`~fisherlab.curvature._tokens.TokenExamples`,
        the token family as likelihood, targets ``(N R, ...)``), so the empirical Fisher,
        the gradient covariance and the Monte-Carlo Fisher are sums over tokens, as for
        PyTorch's ``loss(out.flatten(0, 1), y.flatten(0, 1))``.
        """
        if self.tokens != "flatten" or not self.num_tokens:
            return self
        n, r = self.num_examples, self.num_tokens
        x = jax.tree_util.tree_map(lambda a: jnp.repeat(a, r, axis=0), self.x)
        token = jnp.tile(jnp.arange(r), n)
        y = None if self.y is None else jnp.reshape(self.y, (n * r,) + tuple(self.y.shape[2:]))
        c = self.num_outputs // r
        return Prepared(f=TokenExamples(self.f.f), params=self.params, x=(x, token), y=y,
                        likelihood=self.likelihood.base,
                        outputs=jnp.reshape(self.outputs, (n * r, c)), num_examples=n * r,
                        num_outputs=c, num_params=self.num_params)


def check_reduction(reduction) -> str:
    """``reduction`` is ``"mean"`` or ``"sum"``."""
    return check_choice(reduction, "reduction", _REDUCTIONS)


def check_tokens(tokens) -> str:
    """``tokens`` is ``"sum"`` or ``"flatten"`` (docs/CONVENTIONS.md, "Per-token outputs")."""
    return check_choice(tokens, "tokens", _TOKENS)


def check_jacobian_mode(jacobian) -> str:
    """``jacobian`` is ``"auto"``, ``"forward"`` or ``"reverse"``."""
    return check_choice(jacobian, "jacobian", _JACOBIAN_MODES)


def check_method(method) -> str:
    """``method`` is ``"auto"``, ``"jacobian"`` or ``"layerwise"``."""
    return check_choice(method, "method", _METHODS)


def check_chunk_size(chunk_size) -> int | None:
    """``chunk_size`` is ``None`` (automatic) or an int >= 1."""
    if chunk_size is None:
        return None
    return check_int(chunk_size, "chunk_size", minimum=1)


def check_num_samples(num_samples) -> int:
    """``num_samples`` is an int >= 1 (the Monte-Carlo sample count per example)."""
    return check_int(num_samples, "num_samples", minimum=1)


def reduction_weights(num_examples: int, reduction: str) -> float:
    """Per-example weight: ``1/N`` for ``"mean"``, ``1`` for ``"sum"``."""
    return 1.0 / num_examples if reduction == "mean" else 1.0


def _check_model(f) -> None:
    if not callable(f):
        raise TypeError(
            f"f must be a callable model f(params, x) -> outputs of shape (C,), got "
            f"{type(f).__name__} {f!r}")


def _check_likelihood(likelihood) -> None:
    if isinstance(likelihood, type):
        raise TypeError(
            "likelihood must be a fisherlab likelihood instance, got the class "
            f"{likelihood.__name__}: call it, e.g. fl.{likelihood.__name__}()")
    missing = [k for k in _LIKELIHOOD_KERNELS if not hasattr(likelihood, k)]
    if missing:
        raise TypeError(
            "likelihood must be a fisherlab likelihood (e.g. fl.Categorical(), fl.Gaussian()), "
            f"got {type(likelihood).__name__} {likelihood!r} (missing {', '.join(missing)})")


def _leaf_name(root: str, path) -> str:
    return root + jax.tree_util.keystr(path)


def check_params(params, name: str = "params"):
    """``params`` is a non-empty pytree of finite floating-point arrays; returns it as float64.

    Raises ``TypeError`` for a leaf that is not a real floating-point array (int,
    bool, complex, string, object) and ``ValueError`` for an empty pytree or a
    non-finite entry.
    """
    leaves = jax.tree_util.tree_leaves_with_path(params)
    if not leaves:
        raise ValueError(
            f"{name} must be a pytree with at least one floating-point array leaf, got "
            f"{params!r}")
    out = []
    for path, leaf in leaves:
        leaf_name = _leaf_name(name, path)
        if is_tracer(leaf):
            dtype = leaf.dtype
        else:
            if isinstance(leaf, (str, bytes)):
                raise TypeError(
                    f"{leaf_name} must be a floating-point array, got {type(leaf).__name__} "
                    f"{leaf!r}")
            try:
                dtype = np.asarray(leaf).dtype if not hasattr(leaf, "dtype") else leaf.dtype
            except Exception as exc:  # noqa: BLE001
                raise TypeError(
                    f"{leaf_name} must be a floating-point array, got {type(leaf).__name__}"
                ) from exc
        if not jnp.issubdtype(dtype, jnp.floating):
            raise TypeError(
                f"{leaf_name} must be a floating-point array (curvature is taken with respect "
                f"to it), got dtype {dtype} with shape {tuple(np.shape(leaf))}; cast it, e.g. "
                "jnp.asarray(p, jnp.float64), or close over non-trainable values in f")
        check_finite(leaf, leaf_name)
        out.append(jnp.asarray(leaf, jnp.float64))
    treedef = jax.tree_util.tree_structure(params)
    return jax.tree_util.tree_unflatten(treedef, out)


def _check_inputs(x, name: str = "x"):
    """Inputs: a pytree of numeric arrays sharing the leading (batch) axis; returns (x, N)."""
    leaves = jax.tree_util.tree_leaves_with_path(x)
    if not leaves:
        raise ValueError(f"{name} must be an array (or pytree of arrays) with a leading batch "
                         f"axis, got {x!r}")
    out, sizes = [], []
    for path, leaf in leaves:
        leaf_name = _leaf_name(name, path)
        if isinstance(leaf, (str, bytes)):
            raise TypeError(f"{leaf_name} must be a numeric array, got {type(leaf).__name__}")
        arr = as_float_array(leaf, leaf_name, min_ndim=1)
        if jnp.issubdtype(arr.dtype, jnp.floating):
            arr = jnp.asarray(arr, jnp.float64)
        else:
            arr = jnp.asarray(arr)
        sizes.append((leaf_name, arr.shape[0], tuple(arr.shape)))
        out.append(arr)
    n0 = sizes[0][1]
    for leaf_name, n, shape in sizes[1:]:
        if n != n0:
            raise ValueError(
                f"the leaves of {name} must share their leading (batch) size: {sizes[0][0]} has "
                f"{n0} examples but {leaf_name} has {n} (shape {shape})"
                + _ragged_hint(x, [s_[2] for s_ in sizes], name))
    if n0 == 0:
        raise ValueError(f"{name} must contain at least one example, got shape {sizes[0][2]}")
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(x), out), int(n0)


def _ragged_hint(tree, shapes, name: str) -> str:
    """A sentence for a list of sequences of different lengths passed as one batch, else ''."""
    if not isinstance(tree, (list, tuple)) or len(shapes) != len(tree) or len(shapes) < 2:
        return ""
    if len({len(sh) for sh in shapes}) != 1 or len({sh[1:] for sh in shapes}) != 1:
        return ""
    lengths = ", ".join(str(sh[0]) for sh in shapes)
    return (f". If {name} is a list of {len(shapes)} sequences of lengths ({lengths}): the "
            f"sequence length must not change within a batch; pass one array of shape "
            f"(N, R, ...) with the same R for every example (pad the sequences to one length, "
            f"or group them by length)")


def _as_targets(y, name: str = "y"):
    """``y`` as one array with a leading batch axis (a list of differing shapes is refused)."""
    if is_tracer(y):
        shape = tuple(y.shape)
    else:
        if isinstance(y, (list, tuple)) and len(y) > 1:
            try:
                shapes = [tuple(np.shape(e)) for e in y]
            except ValueError:
                shapes = None
            if shapes is None or len(set(shapes)) > 1:
                got = "" if shapes is None else f" ({', '.join(map(str, shapes))})"
                raise ValueError(
                    f"{name} must be one array with a leading batch axis N, got a "
                    f"{type(y).__name__} of {len(y)} targets of different shapes{got}: the "
                    "sequence length must not change within a batch; per-token targets need "
                    "the same number of tokens R for every example, shape (N, R, ...) (pad the "
                    "sequences to one length, or group them by length)")
        y = as_array(y, name)
        shape = tuple(y.shape)
    if len(shape) == 0:
        raise ValueError(f"{name} must have a leading batch axis, got shape {shape}")
    return y


def _one_or_list(items):
    return items[0] if len(items) == 1 else items


def _check_not_the_whole_batch(outputs, x, n: int) -> None:
    """Per-token outputs ``(R, C)`` with ``R = N`` that are the same for every example while the
    examples differ: ``f`` returns the outputs of the whole batch (it closes over it) rather
    than those of the one example it receives -- refused, as the Fisher (which needs no
    targets) would otherwise be a wrong number."""
    if n < 2 or int(outputs.shape[1]) != n or is_tracer(outputs):
        return
    leaves = jax.tree_util.tree_leaves(x)
    if any(is_tracer(a) for a in leaves):
        return
    out = np.asarray(outputs)
    if not np.array_equal(out, np.broadcast_to(out[:1], out.shape)):
        return
    if np.array_equal(out[0], np.broadcast_to(out[0, :1], out[0].shape)):
        return  # constant outputs (e.g. a zero-initialised read-out): nothing to tell
    if all(np.array_equal(np.asarray(a), np.broadcast_to(np.asarray(a)[:1], np.shape(a)))
           for a in leaves):
        return  # identical examples: identical outputs are expected
    raise ValueError(
        f"f(params, x) returns the same outputs of shape {tuple(out.shape[1:])} = (N, C) for "
        f"every one of the N = {n} examples, although the examples differ: f must map the "
        "single example x_n it receives to its outputs (C,) (or per token (R, C)), not return "
        "the outputs of the whole batch")


def prepare(f, params, x, y, likelihood, *, needs_targets: bool = True,
            tokens: str = "sum") -> Prepared:
    """Validate ``(f, params, x, y, likelihood)`` and evaluate the outputs once.

    With ``needs_targets=False`` (the Fisher, which needs no labels) ``y`` is ignored.
    Per-token outputs ``(R, C)`` give the sequences view (module docstring); ``tokens``
    (``"sum"`` or ``"flatten"``) is recorded for the weights and the outer-product view.
    """
    tokens = check_tokens(tokens)
    _check_model(f)
    _check_likelihood(likelihood)
    params = check_params(params)
    if isinstance(f, _nn.Sequential):  # a parameter list that does not fit, named
        f.check_params(params)
        spec = f.input_spec()
        if ((isinstance(x, (list, tuple)) or (spec is not None and spec[0] == "tokens"))
                and not any(is_tracer(a) or not getattr(a, "is_fully_addressable", True)
                            for a in jax.tree_util.tree_leaves(x))):
            # the model's own batch check: ragged sequences, token ids in range (an id out of
            # range would read a row of NaN); a list becomes the stacked batch
            checked = f.check_inputs(x)
            x = checked if isinstance(x, (list, tuple)) else x
    x, n = _check_inputs(x)
    if needs_targets:
        if y is None:
            raise ValueError("y must be the batch of targets (leading axis N), got None")
        y = _as_targets(y, "y")
        ny = int(y.shape[0])
        if ny != n:
            raise ValueError(
                f"batch sizes differ: x has {n} examples (leading axis), y has {ny} "
                f"(shape {tuple(y.shape)}); they must match")
    try:
        outputs = jax.vmap(f, in_axes=(None, 0))(params, x)
    except (TypeError, ValueError, IndexError, KeyError) as e:  # e.g. a feature size the
        # model's first layer rejects, or params of another structure than f indexes
        shapes = [tuple(np.shape(a)) for a in jax.tree_util.tree_leaves(x)]
        one = [s_[1:] for s_ in shapes]
        cls = next(c for c in (TypeError, ValueError, IndexError, KeyError) if isinstance(e, c))
        raise cls(f"f(params, x) failed on the inputs: x has shape {_one_or_list(shapes)} "
                  f"(leading axis N; one example {_one_or_list(one)}); check that x matches "
                  f"the model and params ({type(e).__name__}: {e})") from e
    if not hasattr(outputs, "shape") or not hasattr(outputs, "dtype"):
        raise TypeError(
            "f(params, x) must return one array of shape (C,) (or (R, C), one row per token) "
            f"per example, got {type(outputs).__name__}")
    if outputs.ndim not in (2, 3):
        raise ValueError(
            "f(params, x) must return outputs of shape (C,) or, per token, (R, C) for a single "
            f"example (batched: (N, C) or (N, R, C)), got batched shape {tuple(outputs.shape)}")
    if not jnp.issubdtype(outputs.dtype, jnp.floating):
        raise TypeError(f"f(params, x) must return floating-point outputs, got {outputs.dtype}")
    num_tokens = 0
    if outputs.ndim == 3:
        num_tokens, c = int(outputs.shape[1]), int(outputs.shape[2])
        if num_tokens == 0:
            raise ValueError(
                "f(params, x) returned per-token outputs with no token: batched shape "
                f"{tuple(outputs.shape)} = (N, R, C) has R = 0; a sequence needs R >= 1 tokens")
        _check_not_the_whole_batch(outputs, x, n)
        rows = likelihood.check_outputs(outputs.reshape(n * num_tokens, c),
                                        "f(params, x) outputs (one row per token)")
        outputs = rows.reshape(n, num_tokens * c)
        f, likelihood = TokenOutputs(f), PerToken(likelihood, num_tokens)
    else:
        outputs = likelihood.check_outputs(outputs, "f(params, x) outputs")
    outputs = jnp.asarray(outputs, jnp.float64)
    if needs_targets:
        y = likelihood.check_targets(y, outputs, "y")
        y = jnp.asarray(y)
        if jnp.issubdtype(y.dtype, jnp.floating):
            y = jnp.asarray(y, jnp.float64)
    else:
        y = None
    d = sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(params))
    return Prepared(f=f, params=params, x=x, y=y, likelihood=likelihood, outputs=outputs,
                    num_examples=n, num_outputs=int(outputs.shape[1]), num_params=d,
                    num_tokens=num_tokens, tokens=tokens)


def check_vector(v, num_params: int, name: str = "v"):
    """A flat real vector of shape ``(d,)`` as float64 (finite when concrete)."""
    if is_tracer(v):
        if v.shape != (num_params,):
            raise ValueError(
                f"{name} must be a flat vector of shape ({num_params},) (ravel_pytree(params) "
                f"order), got shape {tuple(v.shape)}")
        if not (jnp.issubdtype(v.dtype, jnp.floating) or jnp.issubdtype(v.dtype, jnp.integer)):
            raise TypeError(f"{name} must be a real vector, got dtype {v.dtype}")
        return jnp.asarray(v, jnp.float64)
    arr = as_float_array(v, name)
    if arr.shape != (num_params,):
        raise ValueError(
            f"{name} must be a flat vector of shape ({num_params},) (ravel_pytree(params) "
            f"order), got shape {tuple(arr.shape)}")
    return jnp.asarray(arr, jnp.float64)
