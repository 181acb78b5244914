"""Inputs and targets of :func:`~fisherlab.testing.references.symbolic.curvature` as exact numbers.

One example is a feature vector ``(in,)``, a sequence of feature vectors ``(R, d)`` or a sequence
of integer token ids ``(R,)``; its targets are one per output row: ``(N,)`` / ``(N, D)`` for
outputs ``(C,)``, ``(N, R)`` / ``(N, R, D)`` for per-token outputs ``(R, C)``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from fisherlab.testing.references.symbolic._values import as_array

__all__ = ["feature_inputs", "targets", "token_inputs"]


def feature_inputs(x, d: int, *, sequences: bool):
    """``x`` of shape ``(N, d)`` (or ``(N, R, d)`` with ``sequences``): exact values per example."""
    arr = np.asarray(x)
    ok = arr.ndim >= 2 and arr.shape[0] >= 1 and arr.shape[-1] == d and (
        arr.ndim == 2 or (sequences and arr.ndim == 3))
    if not ok:
        want = f"(N, {d})" + (f" or (N, R, {d})" if sequences else "")
        raise ValueError(f"x must have shape {want} with N >= 1, got {tuple(arr.shape)}")
    shape = arr.shape[1:]
    return [np.array(as_array(arr[n], f"x[{n}]", shape), dtype=object).reshape(shape)
            for n in range(arr.shape[0])]


def token_inputs(x, num_embeddings: int):
    """``x`` of shape ``(N, R)``: integer token ids in ``0..num_embeddings-1``, per example."""
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise ValueError(f"x must hold token ids of shape (N, R) with N >= 1, got shape "
                         f"{tuple(arr.shape)}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"x must hold integer token ids, got dtype {arr.dtype}")
    bad = (arr < 0) | (arr >= num_embeddings)
    if bad.any():
        raise ValueError(f"x must hold token ids in 0..{num_embeddings - 1} (num_embeddings = "
                         f"{num_embeddings}), got {arr[bad][:5].tolist()}")
    return [arr[n].astype(int) for n in range(arr.shape[0])]


def _label(idx) -> str:
    return f"y[{', '.join(map(str, idx))}]"


def targets(y, sym, N: int, R: int | None = None):
    """Target assignments ``{y_symbol: exact value}``: one per example, or a list of ``R`` per
    example for per-token outputs."""
    T = len(sym.targets)
    arr = np.asarray(y)
    lead = (N,) if R is None else (N, R)
    where = "" if R is None else ", one per token"
    if sym.name == "Categorical":
        if arr.shape != lead:
            count = N if R is None else f"{N} x {R}"
            raise ValueError(f"y must hold {count} class indices, shape {lead}{where}, for the "
                             f"Categorical likelihood, got shape {arr.shape}")
        flat = []
        for idx in np.ndindex(*lead):
            v = arr[idx].item()
            if isinstance(v, bool) or float(v) != int(v) or not 0 <= int(v) < T:
                raise ValueError(f"{_label(idx)} must be a class index in 0..{T - 1}, got {v!r}")
            flat.append({t: sp.Integer(int(j == int(v))) for j, t in enumerate(sym.targets)})
    else:
        if arr.shape != lead + (T,):
            raise ValueError(f"y must have shape {lead + (T,)} for the {sym.name} "
                             f"likelihood{where}, got shape {arr.shape}")
        flat = []
        for idx in np.ndindex(*lead):
            vals = as_array(arr[idx], _label(idx), (T,))
            for j, v in enumerate(vals):
                if sym.name == "Bernoulli" and v not in (0, 1):
                    raise ValueError(f"{_label(idx + (j,))} must be 0 or 1 for Bernoulli, "
                                     f"got {v}")
                if sym.name == "Poisson" and not (v.is_integer and v >= 0):
                    raise ValueError(f"{_label(idx + (j,))} must be a non-negative integer for "
                                     f"Poisson, got {v}")
            flat.append(dict(zip(sym.targets, vals)))
    if R is None:
        return flat
    return [flat[n * R:(n + 1) * R] for n in range(N)]
