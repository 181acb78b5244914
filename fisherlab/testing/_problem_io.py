"""Saving and loading a problem (``Problem.save`` / ``Problem.load``): one ``.npz`` file.

What is saved: a ``fl.nn.Sequential`` model (its layers and their fields, as JSON, nested
``Residual``/``Sequential`` blocks included), its parameters (``[(W, b), ...]``, or the leaves
in ``ravel_pytree`` order for nested parameters), the inputs (integer token ids stay integers) and targets, the likelihood (its class and
parameters, e.g. a Gaussian's variance) and the reduction, plus any extra arrays the caller
adds (``assert_curvature_close`` adds ``actual`` and ``desired``). Everything is stored as
plain arrays and JSON strings: loading needs no pickle.

What cannot be saved (a clear ``TypeError`` names it): a problem built on an arbitrary Python
function ``f(params, x)`` (code is not data -- rebuild the problem from ``fl.nn`` layers, or save
``params``, ``x``, ``y`` yourself), a likelihood that is not one of fisherlab's, and a problem
converted from PyTorch (``fl.testing.torch``: its loss is a PyTorch object -- save the module
and the data with PyTorch instead).
"""

from __future__ import annotations

import dataclasses
import json

import jax
import numpy as np

from fisherlab import likelihoods, nn

__all__ = ["FORMAT", "decode", "encode"]

FORMAT = "fisherlab.testing.Problem/1"


def _layer_spec(layer):
    name = type(layer).__name__
    if getattr(nn, name, None) is not type(layer):
        raise TypeError(f"cannot save a model with layer {layer!r}: only fl.nn layers can be "
                        f"saved")
    if isinstance(layer, nn.Sequential):  # nested, e.g. the block of a Residual
        return {"type": name, "layers": [_layer_spec(l) for l in layer.layers]}
    fields = {}
    if dataclasses.is_dataclass(layer):
        for f in dataclasses.fields(layer):
            v = getattr(layer, f.name)
            if isinstance(v, nn.Layer):
                fields[f.name] = {"layer": _layer_spec(v)}
            else:
                fields[f.name] = list(v) if isinstance(v, tuple) else v
    return {"type": name, "fields": fields}


def _layer(spec):
    cls = getattr(nn, spec["type"], None)
    if not isinstance(cls, type) or not issubclass(cls, nn.Layer):
        raise ValueError(f"unknown layer type {spec['type']!r} in the problem file")
    if "layers" in spec:
        return cls([_layer(l) for l in spec["layers"]])
    fields = {k: _layer(v["layer"]) if isinstance(v, dict) and "layer" in v else v
              for k, v in spec["fields"].items()}
    return cls(**fields)


def _likelihood_spec(lik):
    name = type(lik).__name__
    if getattr(likelihoods, name, None) is not type(lik):
        raise TypeError(f"cannot save a problem with likelihood {lik!r}: only fisherlab's "
                        f"likelihoods (fl.Categorical(), fl.Gaussian(variance), ...) can be saved")
    return {"type": name, "params": [float(v) for v in lik._params()]}


def encode(problem, extra=None) -> dict:
    """The arrays of the ``.npz`` file of ``problem`` (see the module docstring)."""
    if type(problem).__name__ != "Problem":
        raise TypeError(f"cannot save a {type(problem).__name__}: only a fl.testing.Problem built "
                        f"from fl.nn layers can be saved (a problem converted from PyTorch keeps "
                        f"its loss as a PyTorch object; save the module and data with PyTorch)")
    if problem.model is None:
        raise TypeError(f"cannot save a problem built on a Python function "
                        f"{getattr(problem.f, '__name__', problem.f)!r}: code is not data. Build "
                        f"the model from fl.nn layers (fl.nn.Sequential) to save it, or save "
                        f"params, x and y yourself")
    meta = {"format": FORMAT, "model": [_layer_spec(l) for l in problem.model.layers],
            "likelihood": _likelihood_spec(problem.likelihood),
            "reduction": problem.reduction, "num_layers": len(problem.params)}
    arrays = {"meta": np.array(json.dumps(meta)), "x": np.asarray(problem.x),
              "y": np.asarray(problem.y)}
    if all(isinstance(p, (list, tuple)) and len(p) == 2 and not isinstance(p[0], (list, tuple))
           for p in problem.params):
        for k, (W, b) in enumerate(problem.params):  # [(W, b), ...]
            arrays[f"W{k}"], arrays[f"b{k}"] = np.asarray(W), np.asarray(b)
    else:  # nested parameters (Residual blocks, Embedding, norms, attention): the leaves in
        # ravel_pytree order; the structure is the model's own (model.init)
        leaves = jax.tree_util.tree_leaves(problem.params)
        meta["num_leaves"] = len(leaves)
        arrays["meta"] = np.array(json.dumps(meta))
        for i, leaf in enumerate(leaves):
            arrays[f"p{i}"] = np.asarray(leaf)
    for name, value in (extra or {}).items():
        arrays[f"extra.{name}"] = np.asarray(value)
    return arrays


def decode(arrays) -> tuple:
    """``(model, params, x, y, likelihood, reduction)`` from the arrays of a saved problem."""
    if "meta" not in arrays:
        raise ValueError("not a saved fl.testing.Problem (no 'meta' entry): save one with "
                         "Problem.save(path)")
    meta = json.loads(str(arrays["meta"]))
    if meta.get("format") != FORMAT:
        raise ValueError(f"unsupported problem file format {meta.get('format')!r}; expected "
                         f"{FORMAT!r}")
    model = nn.Sequential([_layer(spec) for spec in meta["model"]])
    lik_cls = getattr(likelihoods, meta["likelihood"]["type"], None)
    if not isinstance(lik_cls, type):
        raise ValueError(f"unknown likelihood {meta['likelihood']['type']!r} in the problem file")
    if "num_leaves" in meta:
        treedef = jax.tree_util.tree_structure(jax.eval_shape(model.init, jax.random.key(0)))
        params = jax.tree_util.tree_unflatten(
            treedef, [arrays[f"p{i}"] for i in range(meta["num_leaves"])])
    else:
        params = [(arrays[f"W{k}"], arrays[f"b{k}"]) for k in range(meta["num_layers"])]
    return (model, params, arrays["x"], arrays["y"],
            lik_cls(*meta["likelihood"]["params"]), meta["reduction"])
