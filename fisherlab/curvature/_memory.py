r"""Memory plan of a dense curvature computation: refuse at once what cannot fit.

A dense curvature matrix has ``d^2`` float64 entries: ``d = 200,803`` parameters need 322.6 GB
for the result alone. Before anything is compiled or allocated, every dense function of
:mod:`fisherlab.curvature` (and every update that forms a dense matrix) estimates its peak
memory from ``d``, ``N``, ``C`` and the chunk size (:func:`plan`) and, when the estimate is over
the *memory budget*, raises :class:`CurvatureMemoryError` stating the bytes needed and the
matrix-free alternatives.

The estimate (float64 entries, 8 bytes each) is

.. math:: \text{peak} = d^2 + k\,c + B\,e + s\,d^2

with ``c`` the entries of the compact accumulators of the kernel (the blocks on and above the
diagonal, :mod:`fisherlab.curvature._symmetric`, about ``0.55 d^2``; ``d^2`` for the Hessian),
``k = 1``
for one chunk and ``2`` for several (the running sum and the chunk's term), ``B`` the chunk size,
``e`` the per-example intermediates (``3 C d`` for per-example Jacobians and their products with
the output matrix, ``2 d`` for per-example gradients, ``64 d`` for the Hessian's
forward-over-reverse pass, the small Kronecker factors of the layer-wise method) and ``s`` the
extra ``d x d`` copies of a dense solve (updates only). It is an estimate of the arrays the
kernel needs, not of XLA's allocator, and is meant to catch requests off by orders of
magnitude, not to pack memory tightly.

The budget is, in this order of precedence:

1. the ``memory_budget`` argument of the function (bytes: a number, or a string such as
   ``"16GB"`` or ``"512MiB"``; ``math.inf`` disables the check);
2. the environment variable ``FISHERLAB_MEMORY_BUDGET`` (same syntax, or ``off``);
3. :data:`DEFAULT_FRACTION` of the memory available to the computation: the free memory of
   the accelerator (``device.memory_stats()``: ``bytes_limit - bytes_in_use``) when the device
   reports it, otherwise ``MemAvailable`` of ``/proc/meminfo`` (the host's free memory, CPU
   backend). When neither is known the check is skipped.

Unless the caller chooses it, the chunk size ``B`` is the largest whose intermediates fit in
:data:`CHUNK_BYTES` and in what the budget leaves after the fixed part, spread evenly over the
examples.
"""

from __future__ import annotations

import math
import os
import re

import jax
import numpy as np

from fisherlab.curvature import _layerwise, _symmetric
from fisherlab.curvature._chunking import balanced_chunk_size

__all__ = ["CHUNK_BYTES", "DEFAULT_FRACTION", "ENV_VAR", "CurvatureMemoryError", "Plan",
           "available_bytes", "check_memory_budget", "parse_bytes", "plan", "resolve_budget"]

#: environment variable overriding the default budget (bytes, e.g. ``16GB``; ``off``: no check).
ENV_VAR = "FISHERLAB_MEMORY_BUDGET"
#: fraction of the available memory used as the default budget.
DEFAULT_FRACTION = 0.9
#: largest default working set of one chunk's per-example intermediates.
CHUNK_BYTES = 512 * 2 ** 20
_ENTRY = 8  # bytes of a float64

_UNITS = {"": 1, "b": 1, "kb": 10 ** 3, "mb": 10 ** 6, "gb": 10 ** 9, "tb": 10 ** 12,
          "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30, "tib": 2 ** 40}

_MATRIX_FREE = {
    "ggn": "fl.ggn_vp (G v)",
    "fisher": "fl.fisher_vp (F v)",
    "fisher_mc": "fl.fisher_mc_vp (F_mc v)",
    "empirical_fisher": "fl.empirical_fisher_vp (E v)",
    "gradient_covariance": "fl.empirical_fisher_vp (E v) with fl.gradient",
    "hessian": "fl.hvp (H v)",
}


class CurvatureMemoryError(MemoryError, ValueError):
    """A dense curvature request whose estimated peak memory is over the memory budget.

    Raised before anything is allocated. A ``MemoryError`` (the computation does not fit) and a
    ``ValueError`` (the arguments ask for it), so either ``except`` clause catches it.

    Attributes:
      needed: the estimated peak, in bytes.
      budget: the budget it exceeds, in bytes.
    """

    def __init__(self, message: str, needed: int, budget: int):
        super().__init__(message)
        self.needed = int(needed)
        self.budget = int(budget)


def parse_bytes(value, name: str = "memory_budget") -> float:
    """A byte count from a number or a string with an optional unit (``"16GB"``, ``"512MiB"``).

    Returns a float ``> 0`` (``math.inf`` for no limit). Raises ``ValueError``/``TypeError``
    naming ``name`` for anything else.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number of bytes or a string such as '16GB', got "
                        f"{value!r}")
    if isinstance(value, (int, float, np.integer, np.floating)):
        v = float(value)
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", value)
        if m is None or m.group(2).lower() not in _UNITS:
            if value.strip().lower() in ("inf", "off", "none"):
                return math.inf
            raise ValueError(
                f"{name} must be a number of bytes or a string such as '16GB', '512MiB' or "
                f"'off', got {value!r}")
        v = float(m.group(1)) * _UNITS[m.group(2).lower()]
    else:
        raise TypeError(f"{name} must be a number of bytes or a string such as '16GB', got "
                        f"{type(value).__name__} {value!r}")
    if not v > 0:
        raise ValueError(f"{name} must be > 0 bytes, got {value!r}")
    return v


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def available_bytes(device=None) -> tuple[int | None, str]:
    """``(bytes, source)``: the free memory of ``device`` (default: JAX's first device) as
    reported by ``device.memory_stats()``, else the host's ``MemAvailable``; ``(None, ...)`` when
    neither is known."""
    device = device if device is not None else jax.devices()[0]
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001 -- backends without memory statistics
        stats = None
    if stats and "bytes_limit" in stats:
        free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
        return free, f"free memory of {device.device_kind} {device.id}"
    host = _meminfo_available()
    if host is not None:
        return host, "host MemAvailable"
    return None, "unknown"


def resolve_budget(memory_budget=None, device=None) -> tuple[float, str]:
    """``(budget in bytes, where it came from)``; ``math.inf`` when there is no limit."""
    if memory_budget is not None:
        return parse_bytes(memory_budget), "memory_budget argument"
    env = os.environ.get(ENV_VAR)
    if env is not None and env.strip():
        return parse_bytes(env, ENV_VAR), f"{ENV_VAR}={env.strip()}"
    free, source = available_bytes(device)
    if free is None:
        return math.inf, "no memory information"
    return DEFAULT_FRACTION * free, (f"{DEFAULT_FRACTION:.0%} of the {_fmt(free)} available "
                                     f"({source})")


def check_memory_budget(memory_budget):
    """Validate a ``memory_budget`` argument (``None`` or bytes); returns it unchanged."""
    if memory_budget is not None:
        parse_bytes(memory_budget)
    return memory_budget


def _fmt(nbytes: float) -> str:
    if not math.isfinite(nbytes):
        return "unlimited"
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{int(nbytes)} bytes"


class Plan:
    """The chunk size and the estimated peak (bytes) of one dense computation."""

    def __init__(self, chunk_size: int, peak: int, parts: dict):
        self.chunk_size = chunk_size
        self.peak = peak
        self.parts = parts  # name -> bytes

    def __repr__(self):
        return f"Plan(chunk_size={self.chunk_size}, peak={_fmt(self.peak)})"


def _entries(kind: str, method: str, f, n: int, c: int, d: int, num_samples: int):
    """``(compact entries, per-example entries)`` of a kernel (see the module doc)."""
    if kind == "hessian":
        return d * d, 64 * d
    blocks = sum((p1 - p0) * (d - p0) for p0, p1 in _symmetric.panels(d))
    if kind in ("empirical_fisher", "gradient_covariance"):
        return blocks, 2 * d
    if method == "layerwise":
        return _layerwise.compact_entries(f), _layerwise.per_example_entries(f, c, num_samples)
    return blocks, 3 * c * d + (num_samples * d if kind == "fisher_mc" else 0)


def plan(kind: str, *, f, num_examples: int, num_outputs: int, num_params: int,
         method: str = "jacobian", chunk_size: int | None = None, num_samples: int = 1,
         solve_copies: int = 0, memory_budget=None, name: str | None = None) -> Plan:
    """The chunk size and peak memory of a dense ``kind`` computation, checked against the budget.

    Args:
      kind: ``"ggn"``, ``"fisher"``, ``"fisher_mc"``, ``"empirical_fisher"``,
        ``"gradient_covariance"`` or ``"hessian"``.
      f: the model (for the layer-wise method's sizes).
      num_examples, num_outputs, num_params: ``N``, ``C``, ``d``.
      method: ``"jacobian"`` or ``"layerwise"`` (Gauss-Newton kinds).
      chunk_size: the caller's chunk size, or ``None`` to choose one.
      num_samples: Monte-Carlo samples per example.
      solve_copies: extra ``d x d`` matrices (a dense solve's workspace).
      memory_budget: the caller's budget (see the module doc), or ``None``.
      name: the public function, for the message (default ``fl.<kind>``).

    Raises:
      CurvatureMemoryError: the estimate is over the budget.
    """
    n, d = num_examples, num_params
    budget, source = resolve_budget(memory_budget)
    compact, per_example = _entries(kind, method, f, n, num_outputs, d, num_samples)
    fixed = (d * d + compact + solve_copies * d * d) * _ENTRY
    if chunk_size is None:
        room = min(CHUNK_BYTES, max(budget - fixed - compact * _ENTRY, 0.0))
        b = balanced_chunk_size(n, max(1, int(room // (per_example * _ENTRY))))
    else:
        b = min(int(chunk_size), n)
    parts = {f"the ({d}, {d}) result": d * d * _ENTRY,
             "the accumulators": compact * _ENTRY * (2 if b < n else 1),
             f"chunks of {b} examples": b * per_example * _ENTRY}
    if solve_copies:
        parts["the dense solve"] = solve_copies * d * d * _ENTRY
    peak = int(sum(parts.values()))
    if peak > budget:
        name = name or f"fl.{kind}"
        detail = " + ".join(f"{_fmt(v)} for {k}" for k, v in parts.items())
        raise CurvatureMemoryError(
            f"{name}: a dense ({d}, {d}) matrix (d = {d:,} parameters, N = {n:,} examples, "
            f"C = {num_outputs} outputs) needs about {_fmt(peak)} ({peak:,} bytes: {detail}), "
            f"over the memory budget of {_fmt(budget)} ({source}). Nothing was allocated. "
            f"Matrix-free alternatives work at this size: {_MATRIX_FREE[kind]}, fl.kfac.factors "
            "(K-FAC, for fl.nn models) and fl.updates.hessian_free (truncated conjugate "
            "gradient on the products). To raise the limit pass memory_budget=... (bytes or "
            f"e.g. '64GB') or set {ENV_VAR}.", peak, int(min(budget, 2 ** 62)))
    return Plan(b, peak, parts)
