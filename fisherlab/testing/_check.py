"""``fisherlab check CANDIDATE PROBLEM``: compare a saved candidate matrix with the reference.

The problem file's schema is :data:`SCHEMA` (printed by ``fisherlab check --schema`` and shown
by ``fisherlab check --help``; ``docs/check.md``). Every field is validated; an unknown field,
convention or value is an error (exit code 2), never silently ignored.

Exit codes: 0 agreement, 1 disagreement (the diagnosis is printed), 2 invalid input.
"""

from __future__ import annotations

import json
import numbers
import sys
import tomllib
from pathlib import Path

import jax
import numpy as np

from fisherlab import likelihoods, nn
from fisherlab._core.precision import float64
from fisherlab.testing._compare import as_matrix_pair, check_tolerances, is_close, relative_error
from fisherlab.testing._diagnose import diagnose
from fisherlab.testing._problem import Problem
from fisherlab.testing.torch import TorchProblem, loss_factors

__all__ = ["CheckError", "SCHEMA", "load_problem", "run_check"]

SCHEMA = """\
PROBLEM FILE (.json or .toml): what the candidate matrix was computed on.
Relative paths are resolved against the problem file's folder. Unknown fields,
conventions or values are errors (exit code 2), never silently ignored.

Example (JSON):

  {
    "network": {"widths": [3, 4, 2], "activations": ["tanh"]},
    "seed": 0,
    "data": {"x": [[0.1, 0.2, 0.3], [1.0, -1.0, 0.5]], "y": [0, 1]},
    "likelihood": "categorical",
    "quantity": "fisher",
    "conventions": {"reduction": "mean"}
  }

Fields:
  network      required. "widths": [in, hidden..., out] (>= 2 ints), "activations":
               one name per hidden layer (or one name for all) from tanh, sigmoid,
               relu, identity. Builds Dense -> act -> ... -> Dense (PyTorch layout).
  weights      a .npz with W1, b1, W2, b2, ... (W of shape (out, in) unless
               conventions.weight_layout = "in_out")      } exactly one of
  seed         an int >= 0: model.init(jax.random.key(seed))  } weights / seed
  data         required. Inline {"x": [[...], ...], "y": [...]} or a .npz path with
               arrays x (N, in) and y. Targets follow the likelihood: class indices
               (N,) for categorical; (N, C) floats for gaussian, 0/1 for bernoulli,
               counts for poisson; (N, C/2) for gaussian_mean_variance.
  likelihood   required. "categorical" | "gaussian" | "bernoulli" | "poisson" |
               "gaussian_mean_variance", or {"name": "gaussian", "variance": 0.5}.
  quantity     required. What the candidate is: hessian | ggn | fisher |
               empirical_fisher | gradient_covariance | kfac | kfac_factor_A |
               kfac_factor_G.
  conventions  optional.
                 reduction      "mean" (default) | "sum"
                 bias           "augmented" (default) | "separate"   (K-FAC only)
                 fisher_type    "exact" (default) | "empirical"      (K-FAC only)
                 layer          int >= 0: the layer of a kfac_factor_A / _G
                 weight_layout  "out_in" (default) | "in_out"        (weights file)
                 torch_loss     "CrossEntropyLoss" | "MSELoss" | "BCEWithLogitsLoss":
                                the reference in that PyTorch loss's scaling with
                                the given reduction (torch is not needed)
  rtol, atol   optional numbers: tolerances (default by the candidate's dtype:
               float64 rtol 1e-8, float32 1e-4, float16/bfloat16 1e-2).
  candidate_key  optional: the array to use when the candidate .npz holds several.

CANDIDATE: a .npy file, or a .npz with one array (or candidate_key).
Exit codes: 0 agreement, 1 disagreement (the diagnosis is printed), 2 invalid input.
"""

_TOP = {"network", "weights", "seed", "data", "likelihood", "quantity", "conventions", "rtol",
        "atol", "candidate_key"}
_NETWORK = {"widths", "activations"}
_CONVENTIONS = {"reduction": ("mean", "sum"), "bias": ("augmented", "separate"),
                "fisher_type": ("exact", "empirical"), "layer": None,
                "weight_layout": ("out_in", "in_out"),
                "torch_loss": ("CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss")}
_ACTIVATIONS = ("tanh", "sigmoid", "relu", "identity")
_LIKELIHOODS = ("categorical", "gaussian", "bernoulli", "poisson", "gaussian_mean_variance")
_QUANTITIES = ("hessian", "ggn", "fisher", "empirical_fisher", "gradient_covariance", "kfac",
               "kfac_factor_A", "kfac_factor_G")


class CheckError(ValueError):
    """Invalid candidate or problem file (exit code 2)."""


def _unknown(keys, allowed, where):
    extra = sorted(set(keys) - set(allowed))
    if extra:
        raise CheckError(f"unknown field(s) {extra} in {where}; allowed: {sorted(allowed)}")


def _read(path: Path) -> dict:
    if not path.exists():
        raise CheckError(f"problem file {str(path)!r} does not exist")
    text = path.read_bytes()
    if path.suffix == ".json":
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CheckError(f"problem file {str(path)!r} is not valid JSON: {exc}") from exc
    elif path.suffix == ".toml":
        try:
            spec = tomllib.loads(text.decode())
        except tomllib.TOMLDecodeError as exc:
            raise CheckError(f"problem file {str(path)!r} is not valid TOML: {exc}") from exc
    else:
        raise CheckError(f"problem file must end in .json or .toml, got {str(path)!r}")
    if not isinstance(spec, dict):
        raise CheckError(f"problem file must hold a table/object, got {type(spec).__name__}")
    return spec


def _model(spec):
    net = spec.get("network")
    if not isinstance(net, dict):
        raise CheckError("field 'network' is required: {\"widths\": [in, ..., out], "
                         "\"activations\": [...]}")
    _unknown(net, _NETWORK, "'network'")
    widths = net.get("widths")
    if (not isinstance(widths, list) or len(widths) < 2
            or not all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in widths)):
        raise CheckError(f"network.widths must be a list of >= 2 positive ints, got {widths!r}")
    acts = net.get("activations", [])
    hidden = len(widths) - 2
    if isinstance(acts, str):
        acts = [acts] * hidden
    if not isinstance(acts, list) or (len(acts) != hidden and not (len(acts) == 1 and hidden)):
        raise CheckError(f"network.activations must name one activation per hidden layer "
                         f"({hidden}), got {acts!r}")
    if len(acts) == 1 and hidden > 1:
        acts = acts * hidden
    table = {"tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "relu": nn.ReLU, "identity": nn.Identity}
    layers = []
    for k in range(len(widths) - 1):
        layers.append(nn.Dense(widths[k], widths[k + 1]))
        if k < hidden:
            if acts[k] not in table:
                raise CheckError(f"unknown activation {acts[k]!r}; expected one of "
                                 f"{list(_ACTIVATIONS)}")
            layers.append(table[acts[k]]())
    return nn.Sequential(layers)


def _params(spec, model, base, layout):
    has_w, has_s = "weights" in spec, "seed" in spec
    if has_w == has_s:
        raise CheckError("give exactly one of 'weights' (a .npz path) or 'seed' (an int)")
    if has_s:
        seed = spec["seed"]
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise CheckError(f"seed must be a non-negative int, got {seed!r}")
        with float64():  # the same float64 weights whatever the caller's global x64 flag
            return model.init(jax.random.key(seed))
    path = base / str(spec["weights"])
    if path.suffix != ".npz" or not path.exists():
        raise CheckError(f"weights must be an existing .npz file, got {str(path)!r}")
    with np.load(path) as z:
        arrays = dict(z)
    params = []
    for k, layer in enumerate(model.dense_layers, 1):
        if f"W{k}" not in arrays or f"b{k}" not in arrays:
            raise CheckError(f"weights file {str(path)!r} must hold W{k} and b{k} "
                             f"(has {sorted(arrays)})")
        W = np.asarray(arrays[f"W{k}"], np.float64)
        if layout == "in_out":
            W = W.T
        params.append((W, np.asarray(arrays[f"b{k}"], np.float64)))
    extra = sorted(set(arrays) - {f"{p}{k}" for k in range(1, len(params) + 1) for p in "Wb"})
    if extra:
        raise CheckError(f"weights file has arrays {extra} that match no layer of the network")
    try:
        model.check_params(params, "weights")
    except ValueError as exc:
        raise CheckError(str(exc) + (" (set conventions.weight_layout = 'in_out' if W is "
                                     "stored as (in, out))" if layout == "out_in" else "")) from exc
    return params


def _data(spec, base):
    data = spec.get("data")
    if isinstance(data, str):
        path = base / data
        if path.suffix != ".npz" or not path.exists():
            raise CheckError(f"data must be an existing .npz file or an inline table, got "
                             f"{str(path)!r}")
        with np.load(path) as z:
            data = dict(z)
    if not isinstance(data, dict):
        raise CheckError("field 'data' is required: {\"x\": [...], \"y\": [...]} or a .npz path")
    _unknown(data, {"x", "y"}, "'data'")
    if "x" not in data or "y" not in data:
        raise CheckError("data must have both 'x' and 'y'")
    try:
        x = np.asarray(data["x"], np.float64)
        y = np.asarray(data["y"])
    except (TypeError, ValueError) as exc:
        raise CheckError(f"data.x / data.y must be numeric arrays: {exc}") from exc
    return x, y


def _likelihood(spec):
    lik = spec.get("likelihood")
    opts = {}
    if isinstance(lik, dict):
        _unknown(lik, {"name", "variance"}, "'likelihood'")
        opts = {k: v for k, v in lik.items() if k != "name"}
        lik = lik.get("name")
    if lik not in _LIKELIHOODS:
        raise CheckError(f"likelihood must be one of {list(_LIKELIHOODS)}, got {lik!r}")
    if opts and lik != "gaussian":
        raise CheckError(f"likelihood {lik!r} takes no options, got {sorted(opts)}")
    cls = {"categorical": likelihoods.Categorical, "gaussian": likelihoods.Gaussian,
           "bernoulli": likelihoods.Bernoulli, "poisson": likelihoods.Poisson,
           "gaussian_mean_variance": likelihoods.GaussianMeanVariance}[lik]
    if "variance" in opts and not (isinstance(opts["variance"], numbers.Real)
                                   and opts["variance"] > 0):
        raise CheckError(f"likelihood.variance must be a number > 0, got {opts['variance']!r}")
    return cls(**opts)


def load_problem(problem_path):
    """Parse and validate a problem file: ``(Problem, quantity, options, spec)``."""
    path = Path(problem_path)
    spec = _read(path)
    _unknown(spec, _TOP, "the problem file")
    conv = spec.get("conventions", {})
    if not isinstance(conv, dict):
        raise CheckError(f"conventions must be a table, got {conv!r}")
    _unknown(conv, _CONVENTIONS, "'conventions'")
    for k, v in conv.items():
        allowed = _CONVENTIONS[k]
        if allowed is not None and v not in allowed:
            raise CheckError(f"unknown convention {k} = {v!r}; expected one of {list(allowed)}")
    if "layer" in conv and (not isinstance(conv["layer"], int) or conv["layer"] < 0):
        raise CheckError(f"conventions.layer must be an int >= 0, got {conv['layer']!r}")
    quantity = spec.get("quantity")
    if quantity not in _QUANTITIES:
        raise CheckError(f"quantity must be one of {list(_QUANTITIES)}, got {quantity!r}")
    kfac_only = {"bias", "fisher_type"} & set(conv)
    if kfac_only and not quantity.startswith("kfac"):
        raise CheckError(f"conventions {sorted(kfac_only)} apply to K-FAC quantities only, "
                         f"not to {quantity!r}")
    if "layer" in conv and not quantity.startswith("kfac_factor"):
        raise CheckError("conventions.layer applies to kfac_factor_A / kfac_factor_G only")
    model = _model(spec)
    params = _params(spec, model, path.parent, conv.get("weight_layout", "out_in"))
    x, y = _data(spec, path.parent)
    lik = _likelihood(spec)
    reduction = conv.get("reduction", "mean")
    try:
        if "torch_loss" in conv:
            # a stand-in with the loss's class name and reduction (torch is not needed)
            loss = type(conv["torch_loss"], (), {"reduction": reduction,
                                                 "__repr__": lambda self: (
                                                     f"{type(self).__name__}(reduction="
                                                     f"{self.reduction!r})")})()
            expected = {"CrossEntropyLoss": "categorical", "MSELoss": "gaussian",
                        "BCEWithLogitsLoss": "bernoulli"}[conv["torch_loss"]]
            if type(lik).__name__.lower() != expected:
                raise CheckError(f"conventions.torch_loss = {conv['torch_loss']!r} needs "
                                 f"likelihood {expected!r}, got {type(lik).__name__}")
            N = x.shape[0]
            cf, ef = loss_factors(loss, N, model.out_features)
            problem = TorchProblem(model, params, x, y, lik, loss=loss, curvature_factor=cf,
                                   empirical_fisher_factor=ef)
        else:
            problem = Problem(model, params, x, y, lik, reduction=reduction)
        # let the likelihood validate the targets now (clear errors before any computation)
        lik.check_targets(y, lik.check_outputs(np.asarray(problem.outputs())))
    except CheckError:
        raise
    except (TypeError, ValueError) as exc:
        raise CheckError(f"invalid problem: {exc}") from exc
    options = {k: conv[k] for k in ("bias", "fisher_type", "layer") if k in conv}
    return problem, quantity, options, spec


def _candidate(path, key):
    path = Path(path)
    if not path.exists():
        raise CheckError(f"candidate file {str(path)!r} does not exist")
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            keys = list(z)
            if key is None:
                if len(keys) != 1:
                    raise CheckError(f"candidate .npz holds {keys}: name one with "
                                     f"'candidate_key' in the problem file")
                key = keys[0]
            if key not in keys:
                raise CheckError(f"candidate_key {key!r} not in {str(path)!r} (has {keys})")
            return z[key]
    raise CheckError(f"candidate must be a .npy or .npz file, got {str(path)!r}")


def run_check(candidate_path, problem_path, *, stream=None) -> int:
    """Run ``fisherlab check``; returns the exit code (0 agree, 1 disagree, 2 invalid input)."""
    stream = sys.stdout if stream is None else stream
    try:
        problem, quantity, options, spec = load_problem(problem_path)
        cand = _candidate(candidate_path, spec.get("candidate_key"))
        try:
            ref = problem.reference(quantity, **options)
        except (TypeError, ValueError, IndexError) as exc:
            raise CheckError(f"cannot compute the reference {quantity}: {exc}") from exc
        try:
            X, Y = as_matrix_pair(cand, ref)
            rtol, atol = check_tolerances(spec.get("rtol"), spec.get("atol"), cand, ref)
        except (TypeError, ValueError) as exc:
            raise CheckError(f"candidate: {exc}") from exc
    except CheckError as exc:
        print(f"fisherlab check: error: {exc}", file=stream)
        return 2
    err = relative_error(X, Y)
    what = f"{quantity}" + (f" ({', '.join(f'{k}={v}' for k, v in options.items())})"
                            if options else "")
    if is_close(X, Y, rtol, atol):
        print(f"agreement: {what} matches fisherlab's reference: relative Frobenius error "
              f"{err:.3e} <= rtol {rtol:.1e} ({problem!r})", file=stream)
        return 0
    print(f"DISAGREEMENT: {what}: relative Frobenius error {err:.3e} > rtol {rtol:.1e} "
          f"({problem!r})", file=stream)
    findings = diagnose(X, Y, problem=problem,
                        quantity=quantity if quantity in _QUANTITIES else None, rtol=rtol)
    print("diagnosis (most likely first):", file=stream)
    for i, f in enumerate(findings, 1):
        print(f"  {i}. [{f.kind}] {f.message}", file=stream)
    return 1
