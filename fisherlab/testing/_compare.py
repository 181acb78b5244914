"""Comparison primitives of the oracle kit: relative error, dtype-aware default tolerances.

Comparison (CONVENTIONS.md § Precision): the relative Frobenius error

.. math::  \\mathrm{err}(X, Y) = \\frac{\\|X - Y\\|_F}{\\max(\\|Y\\|_F, \\mathrm{tiny})},

and ``X`` passes against ``Y`` when ``||X - Y||_F <= atol + rtol * max(||Y||_F, tiny)``.

Default tolerances, chosen from the *least precise* dtype of ``actual`` and ``desired``
(a candidate computed in float32 is compared at float32 accuracy):

=============  ========  ======
dtype          rtol      atol
=============  ========  ======
float64        1e-8      0
float32        1e-4      0
float16/bf16   1e-2      0
=============  ========  ======

``1e-8`` leaves room for a different (correct) float64 algorithm: summation order, a
Cholesky instead of an eigendecomposition, forward- instead of reverse-mode Jacobians
accumulate errors of ``~1e-13 .. 1e-10`` relative on the problems of this kit. ``1e-4`` is
``~1000 eps_32``: float32 products of Jacobians over a small batch. ``tiny`` is
``np.finfo(float64).tiny`` so that an all-zero ``desired`` is compared absolutely.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TINY", "as_matrix_pair", "check_tolerances", "default_tolerances", "is_close",
           "relative_error"]

TINY = float(np.finfo(np.float64).tiny)

_DEFAULT_RTOL = {
    np.dtype(np.float64): 1e-8,
    np.dtype(np.float32): 1e-4,
    np.dtype(np.float16): 1e-2,
}


def _dtype_of(a) -> np.dtype:
    dt = getattr(a, "dtype", None)
    if dt is None:
        return np.asarray(a).dtype
    name = str(dt)
    if name == "bfloat16":
        return np.dtype(np.float16)  # same default tolerance
    if "torch." in name:  # a torch dtype
        name = name.replace("torch.", "")
        return np.dtype({"bfloat16": "float16"}.get(name, name))
    return np.dtype(dt)


def default_tolerances(*arrays) -> tuple[float, float]:
    """``(rtol, atol)`` for the least precise floating dtype among ``arrays`` (table above)."""
    rtol = 1e-8
    for a in arrays:
        dt = _dtype_of(a)
        if np.issubdtype(dt, np.floating):
            rtol = max(rtol, _DEFAULT_RTOL.get(dt, 1e-2 if dt.itemsize < 4 else 1e-8))
    return rtol, 0.0


def _to_numpy(a, name: str) -> np.ndarray:
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # a torch tensor
        a = a.detach().cpu().double().numpy()
    try:
        arr = np.asarray(a)
    except Exception as exc:  # noqa: BLE001
        raise TypeError(f"{name} must be array-like, got {type(a).__name__}") from exc
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if arr.size and not np.all(np.isfinite(arr)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name} must be finite, got {arr[bad]} at index {bad} "
                         f"({int(np.sum(~np.isfinite(arr)))} non-finite entries in shape "
                         f"{arr.shape}): a NaN/inf curvature can never pass a comparison")
    return arr


def as_matrix_pair(actual, desired) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert to float64 NumPy: same shape, finite, real (clear errors otherwise)."""
    X = _to_numpy(actual, "actual")
    Y = _to_numpy(desired, "desired")
    if X.shape != Y.shape:
        hint = ""
        if X.size == Y.size:
            hint = " (same number of entries: reshape it, or check the parameter layout)"
        elif X.ndim == 1 and Y.ndim == 2 and X.shape[0] == Y.shape[0] == Y.shape[1]:
            hint = " (actual looks like a diagonal: compare with np.diag(desired))"
        raise ValueError(f"actual has shape {X.shape} but desired has shape {Y.shape}{hint}; "
                         "they must have the same shape")
    if X.size == 0:
        raise ValueError(f"actual and desired are empty (shape {X.shape}): nothing to compare")
    return X, Y


def relative_error(actual, desired) -> float:
    """``||actual - desired||_F / max(||desired||_F, tiny)``."""
    X = np.asarray(actual, np.float64)
    Y = np.asarray(desired, np.float64)
    with np.errstate(over="ignore"):
        return float(np.linalg.norm(X - Y) / max(np.linalg.norm(Y), TINY))


def check_tolerances(rtol, atol, actual, desired):
    d_rtol, d_atol = default_tolerances(actual, desired)
    rtol = d_rtol if rtol is None else float(rtol)
    atol = d_atol if atol is None else float(atol)
    if not (np.isfinite(rtol) and rtol >= 0):
        raise ValueError(f"rtol must be a finite number >= 0, got {rtol!r}")
    if not (np.isfinite(atol) and atol >= 0):
        raise ValueError(f"atol must be a finite number >= 0, got {atol!r}")
    return rtol, atol


def is_close(X, Y, rtol, atol) -> bool:
    return bool(np.linalg.norm(X - Y) <= atol + rtol * max(np.linalg.norm(Y), TINY))


