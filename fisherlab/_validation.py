"""Input checks shared by the numeric references.

Every check raises ``ValueError``/``TypeError`` whose message names the argument,
what was received (shape, dtype or value) and what was expected. Never a silent
NaN or a wrong number.
"""

from __future__ import annotations

import numbers

import jax
import numpy as np

__all__ = [
    "as_float_array",
    "check_finite",
    "check_positive",
    "check_nonnegative",
    "check_int",
    "check_choice",
    "check_batch",
    "check_key",
]


def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def as_float_array(x, name: str, *, ndim: int | None = None, min_ndim: int | None = None):
    """``x`` as a float64 NumPy/JAX array; checks its rank and finiteness when concrete."""
    if isinstance(x, jax.core.Tracer):
        arr = x
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # noqa: BLE001
            raise TypeError(f"{name} must be array-like, got {type(x).__name__}") from exc
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
            raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
        if np.iscomplexobj(arr):
            raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(arr.shape)}")
    if min_ndim is not None and arr.ndim < min_ndim:
        raise ValueError(
            f"{name} must have at least {min_ndim} dimensions, got shape {tuple(arr.shape)}")
    check_finite(arr, name)
    return arr


def check_finite(x, name: str) -> None:
    """Raise if a concrete array has NaN or inf entries (traced values are not checked)."""
    if not _concrete(x):
        return
    a = np.asarray(x)
    if a.size and not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(
            f"{name} must be finite, got {a[tuple(bad)]} at index {tuple(int(i) for i in bad)}")


def check_positive(value, name: str) -> float:
    if not isinstance(value, numbers.Real) and not (
            hasattr(value, "shape") and np.ndim(value) == 0):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def check_nonnegative(value, name: str) -> float:
    if not isinstance(value, numbers.Real) and not (
            hasattr(value, "shape") and np.ndim(value) == 0):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v


def check_int(value, name: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_batch(x, y, *, x_name: str = "x", y_name: str = "y") -> int:
    """Leading (batch) sizes of ``x`` and ``y`` agree; returns N."""
    nx = np.shape(x)[0] if np.ndim(x) else None
    ny = np.shape(y)[0] if np.ndim(y) else None
    if nx is None:
        raise ValueError(f"{x_name} must have a leading batch axis, got shape {np.shape(x)}")
    if ny is None:
        raise ValueError(f"{y_name} must have a leading batch axis, got shape {np.shape(y)}")
    if nx != ny:
        raise ValueError(
            f"batch sizes differ: {x_name} has {nx} examples (shape {np.shape(x)}), "
            f"{y_name} has {ny} (shape {np.shape(y)})")
    if nx == 0:
        raise ValueError(f"{x_name} must contain at least one example, got shape {np.shape(x)}")
    return int(nx)


def check_key(key, name: str = "key"):
    if key is None:
        raise ValueError(
            f"{name} is required for a Monte-Carlo estimate: pass a jax.random key, "
            "e.g. jax.random.key(0)")
    try:
        is_typed = jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
    except AttributeError as exc:
        raise TypeError(f"{name} must be a jax.random key, got {type(key).__name__}") from exc
    if not is_typed and not (np.shape(key) == (2,) and np.asarray(key).dtype == np.uint32):
        raise TypeError(
            f"{name} must be a jax.random key (jax.random.key or PRNGKey), got "
            f"dtype {key.dtype} shape {np.shape(key)}")
    return key
