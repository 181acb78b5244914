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
from fisherlab.kfac._layers import layer_dims
from fisherlab.likelihoods import Likelihood

__all__ = ["APPROXES", "BIASES", "FISHER_TYPES", "Problem", "check_factor_list", "check_model",
           "check_options", "check_values", "finite_flags", "infer_bias", "prepare"]

FISHER_TYPES = ("exact", "mc", "empirical")
APPROXES = ("expand", "reduce")
BIASES = ("augmented", "separate")


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


def check_model(model, name: str = "model"):
    """The parametric layers of ``model``, a :class:`fisherlab.nn.Sequential` with at least one."""
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
def _output_shape(model, param_shapes, example_shape):
    """Shape of one example's model output (traced once per model and input shape)."""
    params = [tuple(jax.ShapeDtypeStruct(s, jnp.float64) for s in p) for p in param_shapes]
    xn = jax.ShapeDtypeStruct(example_shape, jnp.float64)
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
    x = _float64(_check_x(x))
    params = [tuple(_float64(t) for t in p) for p in params]
    N = int(x.shape[0])
    out = _output_shape(model, tuple(tuple(t.shape for t in p) for p in params), x.shape[1:])
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


def infer_bias(entry, layer, k: int, name: str, bias=None) -> str:
    """``"augmented"`` or ``"separate"`` from the shape of ``A`` (checked against ``bias``)."""
    out, inp = layer_dims(layer)
    A_dim = entry[0].shape[0]
    if tuple(entry[1].shape[:1]) != (out,):
        raise ValueError(
            f"{name}[{k}] does not match layer {layer}: expected G (or its eigenbasis) with "
            f"{out} rows, got shape {tuple(entry[1].shape)}")
    found = {inp + 1: "augmented", inp: "separate"}.get(A_dim)
    if found is None:
        raise ValueError(
            f"{name}[{k}] does not match layer {layer}: expected A of size {inp + 1} "
            f"(bias='augmented') or {inp} (bias='separate'), got shape {tuple(entry[0].shape)}")
    if bias is not None and bias != found:
        raise ValueError(
            f"bias={bias!r} but {name}[{k}].A has shape {tuple(entry[0].shape)}, which is the "
            f"{found!r} layout (input dimension {inp})")
    return found


def check_factor_list(factor_list, model, name: str = "factors"):
    """``factor_list`` has one entry per parametric layer of ``model``; returns the layers."""
    layers = check_model(model)
    if not isinstance(factor_list, (list, tuple)) or len(factor_list) != len(layers):
        raise ValueError(
            f"{name} must be a list with one entry per Dense/Conv2d layer ({len(layers)}), "
            f"got {type(factor_list).__name__} of length "
            f"{len(factor_list) if hasattr(factor_list, '__len__') else '?'}")
    return layers
