"""Validation of the K-FAC references' arguments before any computation.

Shapes, types, options and (small, host-side) targets are checked in Python. The model outputs'
shape is checked against the likelihood on traced shapes (``jax.eval_shape``, cached per model
and input shape). Values that live on the device -- the finiteness of ``params``, ``x``, the
model outputs and the results -- are checked by one reduction fused with the computation
(:func:`check_values` reads its flags with one host sync), and the named checks that say which
entry is bad run only when a flag is down.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fisherlab import nn
from fisherlab._core.validation import as_float_array, check_choice, check_int, check_key
from fisherlab.kfac._checks import all_finite, check_params_finite, is_concrete
from fisherlab.kfac._cotangents import uses_reduced_factor
from fisherlab.kfac._layers import blocks
from fisherlab.kfac._types import ExactBlock
from fisherlab.likelihoods import Likelihood

__all__ = ["APPROXES", "BIASES", "FISHER_TYPES", "TOKENS", "Problem", "check_factor_list",
           "check_model",
           "check_options", "check_values", "finite_flags", "infer_bias", "prepare"]

FISHER_TYPES = ("exact", "mc", "empirical")
APPROXES = ("expand", "reduce")
BIASES = ("augmented", "separate")
TOKENS = ("sum", "flatten")


class Problem(NamedTuple):
    """A validated K-FAC problem: float64 ``params`` and ``x``, checked ``y`` and ``key``."""

    model: Any
    params: list
    x: jax.Array
    y: Any
    likelihood: Any
    fisher_type: str
    num_samples: int
    key: Any
    reduced: bool


def check_model(model, name: str = "model", *, kinds=("dense", "embedding", "exact"),
                what: str = "K-FAC"):
    """The K-FAC blocks (:class:`~fisherlab.kfac._layers.Block`) of ``model``, a
    :class:`fisherlab.nn.Sequential` with at least one layer with parameters, each of a kind in
    ``kinds`` (else an error naming the layer)."""
    if not isinstance(model, nn.Sequential):
        raise TypeError(
            f"{name} must be a fisherlab.nn.Sequential (K-FAC needs the layer structure), "
            f"got {type(model).__name__}")
    found = blocks(model)
    if not found:
        raise ValueError(
            f"{name} has no layer with parameters, so K-FAC has no factors to compute: "
            f"got {model!r}")
    for b in found:
        if b.kind not in kinds:
            raise TypeError(
                f"{what} does not support {name}.{b.where} = {b.layer!r} (a K-FAC block of "
                f"kind {b.kind!r}); it supports Dense, Conv2d and MultiHeadAttention layers")
    return found


def check_options(fisher_type, approx, bias) -> None:
    check_choice(fisher_type, "fisher_type", FISHER_TYPES)
    check_choice(approx, "approx", APPROXES)
    check_choice(bias, "bias", BIASES)


def _check_likelihood(likelihood) -> None:
    if not isinstance(likelihood, Likelihood):
        raise TypeError(
            f"likelihood must be a fisherlab likelihood (e.g. fl.Categorical()), "
            f"got {type(likelihood).__name__}")


def _check_x(x):
    """``x`` as an array with a batch axis; a JAX array is checked without a host copy."""
    if not is_concrete(x):
        arr = x
    elif isinstance(x, jax.Array):
        if not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == bool):
            raise TypeError(f"x must be a numeric array, got dtype {x.dtype}")
        if jnp.issubdtype(x.dtype, jnp.complexfloating):
            raise TypeError(f"x must be real, got dtype {x.dtype}")
        arr = x
    else:
        arr = as_float_array(x, "x", min_ndim=1)  # host values: checked here, finiteness too
    if arr.ndim < 1:
        raise ValueError(f"x must have at least 1 dimensions, got shape {tuple(arr.shape)}")
    if arr.shape[0] == 0:
        raise ValueError(f"x must contain at least one example, got shape {tuple(arr.shape)}")
    return arr


def _float64(t):
    if isinstance(t, jax.Array) and t.dtype == jnp.float64:
        return t
    return jnp.asarray(t, jnp.float64)


@functools.lru_cache(maxsize=256)
def _output_shape(model, treedef, param_shapes, example_shape, dtype):
    """Shape of one example's model output (traced once per model and input shape)."""
    params = treedef.unflatten([jax.ShapeDtypeStruct(s, jnp.float64) for s in param_shapes])
    xn = jax.ShapeDtypeStruct(example_shape, dtype)
    return tuple(jax.eval_shape(model, params, xn).shape)


@functools.lru_cache(maxsize=256)
def _check_output_shape(likelihood, shape) -> None:
    """``likelihood.check_outputs`` on outputs of ``shape`` (shape checks only, traced)."""
    jax.eval_shape(lambda o: likelihood.check_outputs(o, "model outputs"),
                   jax.ShapeDtypeStruct(shape, jnp.float64))


def prepare(model, params, x, y, likelihood, fisher_type, key, num_samples) -> Problem:
    """Validate everything that can be checked before computing; returns a :class:`Problem`."""
    model.check_params(params)
    _check_likelihood(likelihood)
    num_samples = check_int(num_samples, "num_samples", minimum=1)
    spec = model.input_spec()
    if spec is not None and spec[0] == "tokens":  # integer token ids stay integers
        x = model.check_inputs(x) if is_concrete(x) else x
    else:
        x = _float64(_check_x(x))
    params = jax.tree_util.tree_map(_float64, params)
    N = int(x.shape[0])
    leaves, treedef = jax.tree_util.tree_flatten(params)
    out = _output_shape(model, treedef, tuple(t.shape for t in leaves), x.shape[1:],
                        jnp.dtype(x.dtype))
    if len(out) < 1:
        raise ValueError(f"the model outputs must have shape (N, ..., C), got {(N,) + out}")
    C = out[-1]
    pos = out[:-1]
    Q = int(np.prod(pos, dtype=np.int64))
    if fisher_type == "mc":
        key = check_key(key)
    _check_output_shape(likelihood, (N * Q, C))
    if fisher_type == "empirical" or y is not None:
        if y is None:
            raise ValueError("y is required for fisher_type='empirical' (the data labels)")
        y_arr = np.asarray(y) if is_concrete(y) else y
        if y_arr.ndim < 1 or y_arr.shape[0] != N:
            raise ValueError(
                f"batch sizes differ: x has {N} examples (shape {tuple(x.shape)}), "
                f"y has shape {tuple(np.shape(y))}")
        if tuple(y_arr.shape[1:1 + len(pos)]) != pos:
            raise ValueError(
                f"y must have shape (N, {', '.join(map(str, pos))}, ...) to match model outputs "
                f"of shape {(N,) + out}, got {tuple(y_arr.shape)}")
        event = tuple(y_arr.shape[1 + len(pos):])
        outputs = jax.ShapeDtypeStruct((N * Q, C), jnp.float64)  # targets need the shape only
        yq = likelihood.check_targets(jnp.reshape(y_arr, (N * Q,) + event) if pos else y_arr,
                                      outputs, "y")
        y = jnp.reshape(jnp.asarray(yq), (N,) + pos + event)
    return Problem(model, params, x, y, likelihood, fisher_type, num_samples, key,
                   uses_reduced_factor(likelihood, fisher_type))


def finite_flags(params, x, outputs, *results_finite):
    """``[params and x finite, outputs finite, *results_finite]`` (traced, inside the compiled
    computation)."""
    return jnp.stack([all_finite((params, x)), all_finite(outputs), *results_finite])


def check_values(flags, problem: Problem) -> tuple[bool, ...]:
    """Raise the named error for non-finite ``params``, ``x`` or model outputs if the kernel's
    ``flags`` (:func:`finite_flags`) say so; returns whether each result is finite."""
    if not is_concrete(flags):
        return (True,) * (len(flags) - 2)
    inputs_ok, outputs_ok, *results_ok = (bool(f) for f in np.asarray(flags))
    model, params, x = problem[:3]
    if not inputs_ok:
        check_params_finite(params)
        as_float_array(x, "x")
        raise ValueError("params and x must be finite")  # pragma: no cover - named above
    if not outputs_ok:
        outputs = jax.vmap(lambda xn: model(params, xn))(x)
        problem.likelihood.check_outputs(outputs.reshape((-1, outputs.shape[-1])),
                                         "model outputs")
        raise ValueError("model outputs must be finite")  # pragma: no cover - named above
    return tuple(results_ok)


def infer_bias(entry, block, k: int, name: str, bias=None) -> str:
    """``"augmented"`` or ``"separate"`` from the shape of ``A`` (checked against ``bias``);
    ``"none"`` for an embedding block (no bias)."""
    out, inp, layer = block.out, block.inp, block.layer
    A_dim = entry[0].shape[0]
    if tuple(entry[1].shape[:1]) != (out,):
        raise ValueError(
            f"{name}[{k}] does not match {block.where} = {layer}: expected G (or its eigenbasis) "
            f"with {out} rows, got shape {tuple(entry[1].shape)}")
    if block.kind == "embedding":
        if A_dim != inp:
            raise ValueError(
                f"{name}[{k}] does not match {block.where} = {layer}: expected A of size {inp} "
                f"(num_embeddings), got shape {tuple(entry[0].shape)}")
        return "none"
    found = {inp + 1: "augmented", inp: "separate"}.get(A_dim)
    if found is None:
        raise ValueError(
            f"{name}[{k}] does not match {block.where} = {layer}: expected A of size {inp + 1} "
            f"(bias='augmented') or {inp} (bias='separate'), got shape {tuple(entry[0].shape)}")
    if bias is not None and bias != found:
        raise ValueError(
            f"bias={bias!r} but {name}[{k}].A has shape {tuple(entry[0].shape)}, which is the "
            f"{found!r} layout (input dimension {inp})")
    return found


def check_factor_list(factor_list, model, name: str = "factors", **kwargs):
    """``factor_list`` has one entry per K-FAC block of ``model``; returns the blocks, each
    entry checked to be a :class:`~fisherlab.kfac.ExactBlock` exactly for an exact block."""
    found = check_model(model, **kwargs)
    if not isinstance(factor_list, (list, tuple)) or len(factor_list) != len(found):
        raise ValueError(
            f"{name} must be a list with one entry per K-FAC block ({len(found)}: one per "
            f"Dense/Conv2d/Embedding/LayerNorm/RMSNorm layer, two per MultiHeadAttention), "
            f"got {type(factor_list).__name__} of length "
            f"{len(factor_list) if hasattr(factor_list, '__len__') else '?'}")
    for k, (entry, b) in enumerate(zip(factor_list, found)):
        exact = isinstance(entry, ExactBlock)
        if exact != (b.kind == "exact"):
            want = "an ExactBlock" if b.kind == "exact" else "a KFACFactors (A, G) pair"
            raise ValueError(f"{name}[{k}] must be {want} for {b.where} = {b.layer!r}, got "
                             f"{type(entry).__name__}")
        if exact and tuple(np.shape(entry.B)) != (b.out, b.out):
            raise ValueError(f"{name}[{k}].B must have shape {(b.out, b.out)} for {b.where} = "
                             f"{b.layer!r}, got {tuple(np.shape(entry.B))}")
    return found
