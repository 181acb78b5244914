"""Input checks shared by the numeric references.

Every check raises ``ValueError`` or ``TypeError`` with a message that names the argument, what
was received (shape, dtype or value) and what was expected -- never a silent NaN or a wrong
number. Checks that need concrete values are skipped for traced ones (under ``jax.jit`` there is
nothing concrete to test): :func:`is_tracer` is the one test for that, and :func:`as_array` the
one coercion of array-like input.
"""

from __future__ import annotations

import math
import numbers

import jax
import numpy as np

__all__ = [
    "as_array",
    "as_float_array",
    "check_choice",
    "check_finite",
    "check_int",
    "check_key",
    "check_scalar",
    "is_tracer",
]


def is_tracer(x) -> bool:
    """Whether ``x`` is a traced JAX value (inside ``jax.jit``, ``vmap``, ``grad``, ...)."""
    return isinstance(x, jax.core.Tracer)


def as_array(x, name: str):
    """``x`` as an array: a tracer unchanged, anything else through ``np.asarray``.

    Raises:
      TypeError: ``x`` is not array-like.
    """
    if is_tracer(x):
        return x
    try:
        return np.asarray(x)
    except Exception as exc:  # noqa: BLE001
        raise TypeError(f"{name} must be array-like, got {type(x).__name__}") from exc


def as_float_array(x, name: str, *, ndim: int | None = None, min_ndim: int | None = None):
    """``x`` as a real numeric array, its rank checked, finite when concrete.

    Args:
      x: array-like (or a tracer, whose values are not checked).
      name: the argument's name, used in error messages.
      ndim: the required number of dimensions, if any.
      min_ndim: the smallest allowed number of dimensions, if any.

    Returns:
      The array (a NumPy array, or the tracer unchanged); its dtype is not changed.

    Raises:
      TypeError: not array-like, not numeric, or complex.
      ValueError: wrong rank, or a NaN/inf entry.
    """
    arr = as_array(x, name)
    if not is_tracer(arr):
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
    """Raise ``ValueError`` naming the first NaN/inf entry of a concrete array (tracers pass)."""
    if is_tracer(x):
        return
    a = np.asarray(x)
    if a.size and not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(
            f"{name} must be finite, got {a[tuple(bad)]} at index {tuple(int(i) for i in bad)}")


def check_scalar(value, name: str, *, positive: bool):
    """A finite real scalar, ``> 0`` (``positive``) or ``>= 0``; a tracer passes unchecked.

    Returns:
      ``float(value)``, or the tracer unchanged.

    Raises:
      TypeError: not a real number (``bool`` included).
      ValueError: not finite, or out of range.
    """
    if is_tracer(value):
        return value
    if isinstance(value, bool) or not (isinstance(value, numbers.Real)
                                       or (hasattr(value, "shape") and np.ndim(value) == 0)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or (v <= 0 if positive else v < 0):
        raise ValueError(f"{name} must be a finite number {'> 0' if positive else '>= 0'}, "
                         f"got {value!r}")
    return v


def check_int(value, name: str, *, minimum: int | None = None) -> int:
    """A Python/NumPy integer (not ``bool``), at least ``minimum`` when given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_choice(value, name: str, choices) -> str:
    """``value`` is one of ``choices``; the error lists them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def check_key(key, name: str = "key"):
    """A ``jax.random`` key (typed, or a legacy ``uint32[2]``) for a Monte-Carlo estimate."""
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
