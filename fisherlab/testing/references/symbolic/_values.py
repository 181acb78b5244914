"""Exact numbers in, exact or high-precision arithmetic out: the conversions and the two
arithmetics of :func:`~fisherlab.testing.references.symbolic.curvature`.

Floats are taken at their exact binary value (``sympy.Rational(float)``); ``Exact`` keeps SymPy
expressions, ``Numeric`` evaluates them with mpmath at a stated number of digits.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import mpmath
import numpy as np
import sympy as sp

__all__ = ["Exact", "Numeric", "add", "as_array", "exact", "matmul", "transpose"]


def exact(value, name):
    """A real number as an exact SymPy number (float64 -> its exact binary rational)."""
    if isinstance(value, sp.Basic):
        v = sp.Rational(value) if isinstance(value, sp.Float) else value
        if not (v.is_number and v.is_real):
            raise ValueError(f"{name} must be a real number, got {value!r}")
        return v
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number, got {value!r} (bool)")
    if isinstance(value, numbers.Integral):
        return sp.Integer(int(value))
    if isinstance(value, numbers.Rational):
        return sp.Rational(value.numerator, value.denominator)
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return sp.Rational(v)


def as_array(value, name, shape):
    """Array-like (NumPy/JAX array, nested lists, Python/SymPy numbers) of ``shape``."""
    if isinstance(value, sp.MatrixBase):
        value = [[value[i, j] for j in range(value.cols)] for i in range(value.rows)]
    try:
        # NumPy/JAX arrays convert without a JAX computation (host copy); SymPy numbers
        # and Fractions give an object array.
        arr = np.asarray(value)
        if arr.dtype != object and not (np.issubdtype(arr.dtype, np.number)
                                        or arr.dtype == bool):
            raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a numeric array-like, got "
                        f"{type(value).__name__}") from exc
    if arr.shape != tuple(shape):
        if arr.size == int(np.prod(shape)) and arr.ndim <= 1 and (arr.ndim == 0 or len(shape) == 1):
            arr = arr.reshape(shape)  # a Python float for a 1x1 weight, a flat bias, ...
        else:
            raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    flat = [exact(v.item() if hasattr(v, "item") and not isinstance(v, sp.Basic) else v,
                   f"{name}{list(np.unravel_index(i, shape)) if shape else ''}")
            for i, v in enumerate(arr.ravel())]
    return flat



class Exact:
    """Exact arithmetic: substitute rationals, keep SymPy expressions."""

    zero = sp.Integer(0)
    one = sp.Integer(1)

    def __init__(self, args: Sequence[sp.Symbol]):
        self.args = tuple(args)

    def compile(self, exprs):
        exprs = list(exprs)
        args = self.args

        def run(values):
            sub = dict(zip(args, values))
            return [sp.sympify(e).xreplace(sub) for e in exprs]

        return run

    @staticmethod
    def number(v):
        return v


class Numeric:
    """mpmath evaluation of the exact expressions at ``dps`` significant digits."""

    zero = mpmath.mpf(0)
    one = mpmath.mpf(1)

    def __init__(self, args: Sequence[sp.Symbol], dps: int):
        self.args = tuple(args)
        self.dps = dps

    def compile(self, exprs):
        exprs = [sp.sympify(e) for e in exprs]
        live = [i for i, e in enumerate(exprs) if e != 0]   # structural zeros stay exact 0
        if not live:
            return lambda values: [self.zero] * len(exprs)
        fn = sp.lambdify(self.args, [exprs[i] for i in live], modules="mpmath", cse=True)

        def run(values):
            out = [self.zero] * len(exprs)
            for i, v in zip(live, fn(*values)):
                out[i] = mpmath.mpf(v)
            return out

        return run

    def number(self, v):
        # exact rationals -> mpf; float64 binary values are represented exactly.
        if isinstance(v, sp.Rational):
            return mpmath.mpf(v.p) / v.q
        return mpmath.mpf(sp.Float(v, self.dps)._mpf_)

    @staticmethod
    def finish(v, digits):
        return sp.Float(v, digits)


def matmul(A, B, zero):
    n, m, p = len(A), len(B), len(B[0]) if B else 0
    return [[sum((A[i][k] * B[k][j] for k in range(m)), zero) for j in range(p)]
            for i in range(n)]


def transpose(A):
    return [list(r) for r in zip(*A)] if A else []



def add(A, B):
    return [[a + b for a, b in zip(ra, rb)] for ra, rb in zip(A, B)]
