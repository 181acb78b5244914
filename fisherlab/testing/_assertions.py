"""``assert_curvature_close``: compare, and explain a difference with :func:`diagnose`.

Tolerances and the relative error are those of :mod:`fisherlab.testing._compare` (float64
``rtol = 1e-8``, float32 ``1e-4``, float16/bfloat16 ``1e-2``; chosen from the least precise
dtype of the two arrays).
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from fisherlab.testing._compare import (as_matrix_pair, check_tolerances, is_close,
                                        relative_error)
from fisherlab.testing._diagnose import diagnose
from fisherlab.testing._problem import QUANTITIES

__all__ = ["assert_curvature_close", "failure_dir"]


def failure_dir() -> str | None:
    """Where failing comparisons save their problem: ``$FISHERLAB_FAILURE_DIR`` (``off``: nowhere),
    default ``<temp dir>/fisherlab-failures``."""
    where = os.environ.get("FISHERLAB_FAILURE_DIR")
    if where is None:
        return os.path.join(tempfile.gettempdir(), "fisherlab-failures")
    return None if where.lower() == "off" else where


def _saved_copy(problem, X, Y, quantity) -> str:
    where = failure_dir()
    if where is None:
        return "saved copy: none (FISHERLAB_FAILURE_DIR=off)"
    name = f"{quantity or 'curvature'}-{problem.digest()}.npz"
    try:
        os.makedirs(where, exist_ok=True)
        path = problem.save(os.path.join(where, name), extra={"actual": X, "desired": Y})
    except (TypeError, OSError) as exc:
        return f"saved copy: none ({exc})"
    return (f"saved copy: {path} -- reload with fl.testing.Problem.load(path); the matrices are "
            f"np.load(path)['extra.actual'] and ['extra.desired']")


def assert_curvature_close(actual, desired, *, problem=None, quantity=None, rtol=None,
                           atol=None) -> None:
    """Assert that a candidate curvature matrix equals the reference, explaining any difference.

    Passes iff ``||actual - desired||_F <= atol + rtol * max(||desired||_F, tiny)``; default
    ``rtol``/``atol`` depend on the dtypes (module docstring: float64 ``1e-8``, float32 ``1e-4``).
    On failure the ``AssertionError`` message holds the relative error, the problem (model,
    shapes, likelihood, a digest) and where a copy of it was saved (:func:`failure_dir`; reload
    with :meth:`Problem.load`), and the findings of :func:`fisherlab.testing.diagnose` (most
    likely first), e.g. "scalar_factor: actual = 1/N x desired (the batch mean applied twice)".
    In pytest the helper's own frame is hidden from the traceback.

    Args:
      actual: the candidate (NumPy/JAX/PyTorch array).
      desired: the reference (typically from fisherlab).
      problem: the :class:`fisherlab.testing.Problem` they were computed on (lets the diagnosis
        compute alternative quantities: empirical Fisher, Hessian, GGN, K-FAC, ...).
      quantity: what ``desired`` is ("hessian", "ggn", "fisher", "empirical_fisher", "kfac", ...).
      rtol, atol: override the defaults.

    Raises:
      AssertionError: when they differ (message with the diagnosis).
      ValueError / TypeError: mismatched shapes, non-finite entries, non-numeric input --
        never a silent pass.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this function's source
    if quantity is not None and quantity not in QUANTITIES:  # a typo must not pass silently
        raise ValueError(f"quantity must be one of {list(QUANTITIES)} or None, got {quantity!r}")
    X, Y = as_matrix_pair(actual, desired)
    rtol, atol = check_tolerances(rtol, atol, actual, desired)
    if is_close(X, Y, rtol, atol):
        return
    err = relative_error(X, Y)
    findings = diagnose(actual, desired, problem=problem, quantity=quantity, rtol=rtol)
    what = f" {quantity}" if quantity else ""
    lines = [f"curvature{what} mismatch: relative Frobenius error {err:.3e} > rtol {rtol:.1e}"
             + (f" (+ atol {atol:.1e})" if atol else "")
             + f"; ||actual|| = {np.linalg.norm(X):.6e}, ||desired|| = {np.linalg.norm(Y):.6e}"]
    if problem is not None:
        lines += [f"problem: {problem!r} [digest {problem.digest()}]",
                  _saved_copy(problem, X, Y, quantity)]
    lines.append("diagnosis (most likely first):")
    for i, f in enumerate(findings, 1):
        lines.append(f"  {i}. [{f.kind}] {f.message}")
    raise AssertionError("\n".join(lines))
