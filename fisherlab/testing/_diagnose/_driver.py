"""``diagnose``: run the hypothesis families in order and rank what reproduces ``actual``."""

from __future__ import annotations

import dataclasses

import numpy as np

from fisherlab.testing._compare import (TINY, as_matrix_pair, check_tolerances, is_close,
                                        relative_error)
from fisherlab.testing._diagnose import (_activation, _examples, _kfac, _layout, _likelihood,
                                         _mc_kfac, _monte_carlo, _quantities, _scalar)
from fisherlab.testing._diagnose._finding import (EXACT, NAMED_FACTOR, Collector,
                                                  Context, Finding, fit)
from fisherlab.testing._problem import QUANTITIES, Problem

__all__ = ["diagnose"]

#: re-raise errors inside a family instead of noting them in the evidence (for tests)
STRICT = False

#: the families, in stages: a later stage runs only when the earlier ones reproduced nothing
_STAGES = (
    (("quantity swaps", _quantities.run), ("layouts", _layout.run)),
    (("K-FAC factor formulas", _kfac.run), ("activation derivatives", _activation.run),
     ("output-space matrices", _likelihood.run), ("targets and example weights", _examples.run)),
    (("Monte-Carlo (dense)", _monte_carlo.run), ("Monte-Carlo (K-FAC)", _mc_kfac.run)),
)


def _family(ctx, name, fn):
    try:
        fn(ctx)
    except Exception as exc:  # noqa: BLE001 - one family's failure must not hide the others
        if STRICT:
            raise
        ctx.notes.append(f"the {name} hypotheses could not be tested ({type(exc).__name__}: "
                         f"{exc})")


def diagnose(actual, desired, *, problem=None, quantity=None, rtol=None) -> list[Finding]:
    """Explain why a candidate curvature matrix differs from the reference.

    Every hypothesis is tested, never assumed: a finding reproduces ``actual`` within ``rtol``
    (see :mod:`fisherlab.testing._diagnose` for the families and the evidence each needs).

    Args:
      actual: the candidate matrix (NumPy/JAX/PyTorch).
      desired: the reference matrix.
      problem: optional :class:`fisherlab.testing.Problem` both were computed on; with it the
        diagnosis computes the alternative quantities itself (fisherlab's float64 references
        and per-example quantities) and knows ``N``, ``C``, the layers and parameter layout.
      quantity: what ``desired`` is: one of ``"hessian"``, ``"ggn"``, ``"fisher"``,
        ``"empirical_fisher"``, ``"gradient_covariance"``, ``"kfac"``, ``"kfac_factor_A"``,
        ``"kfac_factor_G"``; inferred from ``problem`` when omitted (if possible).
      rtol: the reproduction tolerance (default: by dtype, as in ``assert_curvature_close``).

    Returns:
      ``[]`` when ``actual`` and ``desired`` agree within tolerance; otherwise the findings,
      most likely first (exact reproductions, then reproductions up to a scalar that matches
      a named convention, then Monte-Carlo, then unexplained scalar factors, then rounding),
      or the single finding ``no_known_pattern`` with the evidence that was measured. When
      several findings reproduce ``actual`` equally well, the first one's ``data["ties"]``
      names the others and its message says so.

    Raises:
      ValueError: mismatched shapes, non-finite entries, unknown ``quantity``, or a
        ``problem`` whose parameter count does not match ``desired``.
      TypeError: ``problem`` is not a ``fisherlab.testing.Problem``.

    >>> import numpy as np, fisherlab as fl
    >>> F = np.array([[2.0, 1.0], [1.0, 3.0]])
    >>> [f.kind for f in fl.testing.diagnose(4 * F, F)]
    ['scalar_factor']
    """
    if quantity is not None and quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {list(QUANTITIES)} or None, got {quantity!r}")
    if problem is not None and not isinstance(problem, Problem):
        raise TypeError(f"problem must be a fisherlab.testing.Problem, got "
                        f"{type(problem).__name__}")
    try:
        X, Y = as_matrix_pair(actual, desired)
    except ValueError as exc:
        hint = _shape_hint(actual, desired, quantity)
        raise ValueError(f"{exc}{hint}") from None
    rtol, _ = check_tolerances(rtol, None, actual, desired)
    if problem is not None:
        d = problem.num_params
        if quantity not in ("kfac_factor_A", "kfac_factor_G") and Y.shape != (d, d):
            raise ValueError(f"desired has shape {Y.shape} but the problem has d={d} parameters "
                             f"(expected ({d}, {d}))")
    if is_close(X, Y, rtol, 0.0):
        return []
    tol = max(rtol, 1e-12)
    f32 = _scalar.float32_evidence(X, Y)
    if f32 is not None and f32[0]:
        return [Finding("float32_rounding", f32[1], residual=relative_error(X, Y),
                        data={"dtype": "float32"})]
    if _scalar.is_float32(X) and not _scalar.is_float32(Y):
        tol = max(tol, 1e-4)  # a float32 result: hypotheses are reproduced at its precision
    q = quantity
    if problem is not None and q is None and X.ndim == 2 and X.shape[0] == X.shape[1]:
        q = _quantities.infer_quantity(problem, Y, tol)
    ctx = Context(X, Y, problem, q, tol, Collector(X, Y, problem, tol, q))
    ctx.col.test("scalar_factor", Y, "desired", 0, is_desired=True)
    for i, stage in enumerate(_STAGES):
        # the first stage always runs in full (its ties with a scalar factor are reported)
        if i and (ctx.col.has_reproduction() or (stage is _STAGES[-1] and ctx.col.findings)):
            break
        for name, fn in stage:
            _family(ctx, name, fn)
    if f32 is not None:
        ctx.notes.append(f32[1])
    ranked = ctx.col.ranked()
    if ranked:
        return _with_ties(ranked, tol)
    evidence = _evidence(X, Y, problem, q, tol)
    if ctx.notes:
        evidence += "; " + "; ".join(ctx.notes)
    return [Finding("no_known_pattern", evidence, residual=relative_error(X, Y))]


def _with_ties(ranked, tol):
    findings = [f for _, f in ranked]
    exact = [f for rank, f in ranked if rank[0] in (EXACT, NAMED_FACTOR) and f.residual <= tol]
    first = findings[0]
    ties = [f.kind for f in exact if f is not first]
    conv = first.kind == "scalar_factor" and first.message.count("; or ") > 0
    if not ties and not conv:
        return findings
    note = ""
    if ties:
        note += (f" [tie: {', '.join(ties)} reproduce actual equally well on this problem -- "
                 f"its sizes or values make these explanations coincide; a problem where they "
                 f"differ (e.g. fl.testing.strategies.problems(distinct=True)) tells them apart]")
    if conv:
        note += (" [several conventions give this factor on this problem; a problem where "
                 "N, C and the other sizes differ tells them apart]")
    data = dict(first.data, ties=ties)
    findings[0] = dataclasses.replace(first, message=first.message + note, data=data)
    return findings


def _shape_hint(actual, desired, quantity):
    a, d = np.shape(actual), np.shape(desired)
    if (quantity == "kfac_factor_A" and len(a) == len(d) == 2 and a[0] == a[1]
            and d[0] == d[1] and a[0] == d[0] - 1):
        return (" -- actual is one row and column smaller than the augmented A: K-FAC's A "
                "without the homogeneous coordinate 1 (a separate bias?); compare with "
                "problem.reference('kfac_factor_A', bias='separate')")
    return ""


def _evidence(X, Y, problem, q, tol) -> str:
    parts = [f"no tested explanation reproduces actual within {tol:.1e}: relative error "
             f"{relative_error(X, Y):.3e}"]
    c, res = fit(X, Y)
    if c is not None:
        parts.append(f"best scalar fit actual ≈ {c:.4g} × desired leaves residual {res:.2e}")
    if X.ndim == 2 and X.shape[0] == X.shape[1]:
        asym = float(np.linalg.norm(X - X.T) / max(np.linalg.norm(X), TINY))
        if asym > tol:
            parts.append(f"actual is not symmetric (||X - X^T||/||X|| = {asym:.2e})")
        try:
            lx = float(np.linalg.eigvalsh((X + X.T) / 2)[0])
            ly = float(np.linalg.eigvalsh((Y + Y.T) / 2)[0])
            parts.append(f"smallest eigenvalue actual {lx:.3e} vs desired {ly:.3e}")
        except np.linalg.LinAlgError:  # pragma: no cover
            pass
    idx = np.unravel_index(int(np.argmax(np.abs(X - Y))), X.shape)
    where = f"at index {tuple(int(i) for i in idx)}"
    if problem is not None and X.ndim == 2 and X.shape[0] == problem.num_params:
        leaves = problem.leaves()

        def name(i):
            for l in leaves:
                if l.start <= i < l.stop:
                    return f"{l.role or 'leaf'}{l.group + 1}[{i - l.start}]"
            return str(i)  # pragma: no cover

        where += f" ({name(idx[0])}, {name(idx[1])})"
    parts.append(f"largest entry difference {float(np.abs(X - Y)[idx]):.3e} {where}")
    if q is None and problem is None:
        parts.append("pass problem= and quantity= to test alternative quantities "
                     "(empirical Fisher, Hessian, GGN, K-FAC, Monte-Carlo)")
    return "; ".join(parts)
