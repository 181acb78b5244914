"""Float64 computation without touching the caller's global JAX configuration.

Every public numeric reference runs its body under :func:`float64`, a context manager around
``jax.enable_x64(True)``: inside it arrays default to float64; on exit the caller's setting is
restored, even when the caller runs with x64 disabled (docs/CONVENTIONS.md, "Precision and
tolerances").
"""

from __future__ import annotations

import contextlib
import functools

import jax

__all__ = ["float64", "reference"]


@contextlib.contextmanager
def float64():
    """Context in which JAX computes in float64; the previous setting is restored on exit."""
    with jax.enable_x64(True):
        yield


def reference(fn):
    """Decorator: run ``fn`` under :func:`float64`.

    Results are float64 JAX arrays; the caller's global flag is left untouched.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with float64():
            return fn(*args, **kwargs)

    return wrapper
