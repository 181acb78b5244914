"""Scalar conventions: the factors a correct computation in another convention produces.

``actual = c * desired`` is named by matching ``c`` against products of the conventions of the
problem (each within ``10 tol`` relative):

* batch reduction: ``N``, ``1/N`` (mean vs sum, a mean taken twice), ``N/(N-1)`` and
  ``(N-1)/N`` (an unbiased, ``ddof=1``, covariance), ``1/N^2`` (gradients of the *mean* loss in
  an outer product);
* squared error: ``2``, ``1/2``, ``4``, ``2/C`` (``MSELoss(reduction="mean")``), ``C/2``,
  ``1/C``, ``C``, ``(2/C)^2``, ``4/C``, ``1/C^2``;
* a declared Gaussian variance ``sigma^2``, worded by what the quantity carries (a curvature
  carries ``1/sigma^2``, an empirical Fisher ``1/sigma^4``): ignored, applied twice, or
  multiplied instead of divided;
* weight sharing: the output-position count ``P = H_out W_out`` of a ``Conv2d`` (or the length
  ``T`` of a sequence a ``Dense`` layer is shared over), ``P``, ``1/P``, ``P^2``, ``1/P^2``; the
  token count ``R`` of a token model's outputs ``(R, C)``, ``R`` and ``1/R``;
* a flipped sign.

An integer factor that matches none of these is reported as such (a batch size or a sample
count of the user's setup?), never as a named convention.
"""

from __future__ import annotations

import itertools

import numpy as np

from fisherlab.testing._diagnose import _network

__all__ = ["conventions", "factor_text", "float32_evidence", "integer_hint", "is_float32",
           "match_factor"]

_CURVATURE = ("hessian", "ggn", "fisher", "kfac", "kfac_factor_G")
_EMPIRICAL = ("empirical_fisher", "gradient_covariance")


def factor_text(c: float) -> str:
    """``c`` with its shortest fraction when it is one (``0.666667 = 2/3``)."""
    txt = f"{c:.6g}"
    for den in range(1, 65):
        num = c * den
        if abs(num - round(num)) < 1e-9 * max(1.0, abs(num)) and round(num) != 0:
            n = int(round(num))
            frac = f"{n}" if den == 1 else f"{n}/{den}"
            return txt if frac == txt else f"{txt} = {frac}"
    return txt


def _variance_terms(var: float, quantity):
    v = f"sigma^2={var:g}"
    curv = [(var, f"the declared Gaussian variance {v} ignored (variance 1 assumed; the "
                  f"curvature carries 1/sigma^2)"),
            (1.0 / var, f"1/sigma^2 applied twice ({v})"),
            (var ** 2, f"multiplied by the variance {v} instead of divided")]
    emp = [(var ** 2, f"the declared Gaussian variance {v} ignored (variance 1 assumed; each "
                      f"gradient of the outer product carries 1/sigma^2)"),
           (var, f"1/sigma^2 in only one of the two gradients of the outer product ({v})"),
           (1.0 / var, f"1/sigma^2 once too often ({v})"),
           (var ** 4, f"gradients multiplied by the variance {v} instead of divided")]
    if quantity in _CURVATURE:
        return curv
    if quantity in _EMPIRICAL:
        return emp
    if quantity == "kfac_factor_A":
        return []
    return ([(c, d + " -- for a curvature") for c, d in curv]
            + [(c, d + " -- for an empirical Fisher") for c, d in emp])


def _positions(problem):
    """Weight-sharing position counts ``[(P, description)]`` and the token count ``R``."""
    out = []
    if problem is None:
        return out
    for P, what in _network.position_counts(problem):
        out += [(float(P), f"the P={P} {what} summed where they were averaged"),
                (1.0 / P, f"an extra 1/P (P={P} {what}): positions counted as examples, or "
                          f"averaged where they were summed"),
                (float(P) ** 2, f"P^2 (P={P} {what}): inputs summed over positions where "
                                f"they were averaged (K-FAC reduce)"),
                (1.0 / P ** 2, f"1/P^2 (P={P} {what})")]
    R = problem.num_positions
    if R > 1:
        out += [(1.0 / R, f"1/R (R={R} tokens per example): the mean over all N·R tokens "
                          f"(PyTorch's loss on flattened tokens) where the per-example sum over "
                          f"tokens was expected"),
                (float(R), f"R (R={R} tokens per example): a sum over tokens where their mean "
                           f"was expected")]
    return out


def conventions(problem, quantity=None):
    """``[(value, [descriptions]), ...]``: scalar factors that named conventions produce."""
    if problem is None:
        return _conventions(None, quantity)
    key = ("diagnose_conventions", quantity)
    if key not in problem._cache:
        problem._cache[key] = _conventions(problem, quantity)
    return problem._cache[key]


def _conventions(problem, quantity):
    reductions = [(1.0, "")]
    # outer products of gradients carry squared factors: only for the empirical quantities
    outer = quantity in _EMPIRICAL or quantity is None
    outs = [(1.0, ""), (2.0, "squared error without the 1/2 (||y-f||^2 instead of ½||y-f||^2)"),
            (0.5, "an extra 1/2 (e.g. ½ applied twice, or a Gaussian variance of 2)")]
    if outer:
        outs.append((4.0, "(2)^2: gradients of the un-halved squared error in an outer product"))
    positions = [(1.0, "")]
    if problem is not None:
        N, C = problem.num_examples, problem.num_outputs
        reductions += [
            (float(N), f"sum over the N={N} examples where the mean was expected"),
            (1.0 / N, f"an extra 1/N (N={N}): the batch mean taken twice, e.g. an empirical "
                      f"Fisher normalised by 1/N^2, or a mean where a sum was expected")]
        if N > 1 and quantity in ("gradient_covariance", None):
            reductions += [
                (N / (N - 1.0), f"N/(N-1) (N={N}): an unbiased (ddof=1) covariance, divided "
                                f"by N-1 instead of N"),
                ((N - 1.0) / N, f"(N-1)/N (N={N}): divided by N where N-1 (ddof=1) was "
                                f"expected")]
        if N > 1 and (outer or quantity in ("kfac", "kfac_factor_G")):
            reductions.append(
                (1.0 / N ** 2, f"1/N^2 (N={N}): gradients of the mean loss (each scaled by "
                               f"1/N) in the outer products, where per-example gradients were "
                               f"expected"))
        if C > 1 and quantity != "kfac_factor_A":
            outs += [
                (2.0 / C, f"MSELoss(reduction='mean'): the mean over the C={C} outputs of (y-f)^2 "
                          f"= (2/C)·½||y-f||^2"),
                (C / 2.0, f"C/2 (C={C}): the inverse of the MSELoss mean-over-outputs convention"),
                (1.0 / C, f"a mean over the C={C} outputs (e.g. BCEWithLogitsLoss(reduction="
                          f"'mean') or ½-squared error averaged over outputs)"),
                (float(C), f"a sum over the C={C} outputs where a mean over outputs was expected")]
            if outer:
                outs += [
                    (4.0 / C ** 2, f"(2/C)^2 (C={C}): outer products of MSELoss(mean) "
                                   f"per-example gradients"),
                    (4.0 / C, f"4/C = (2/C)^2·C (C={C}): MSELoss(mean) gradient outer products "
                              f"summed over the outputs"),
                    (1.0 / C ** 2, f"(1/C)^2 (C={C}): outer products of gradients of a loss "
                                   f"averaged over the outputs")]
        var = getattr(problem.likelihood, "variance", None)
        if var is not None and abs(float(var) - 1.0) > 1e-12:
            outs += _variance_terms(float(var), quantity)
        positions += _positions(problem)
    # a convention whose factor is 1 on this problem (2/C with C = 2, N with N = 1) is no reading
    reductions, outs, positions = ([(v, d) for v, d in axis if not d or abs(v - 1.0) > 1e-12]
                                   for axis in (reductions, outs, positions))
    signs = [(1.0, ""), (-1.0, "flipped sign (curvature of log p instead of -log p)")]
    table = {}
    for (r, rd), (o, od), (p, pd), (s, sd) in itertools.product(reductions, outs, positions,
                                                                signs):
        v = r * o * p * s
        if abs(v - 1.0) < 1e-12:
            continue
        desc = " and ".join(d for d in (rd, od, pd, sd) if d)
        table.setdefault(round(v, 12), []).append(desc)
    return sorted(table.items(), key=lambda kv: min(len(d) for d in kv[1]))


def match_factor(c: float, problem, tol: float, quantity=None):
    """The descriptions of the conventions whose factor is ``c`` (fewest combined first)."""
    rel = max(10 * tol, 1e-9)
    hits = []
    for v, descs in conventions(problem, quantity):
        if abs(c - v) <= rel * abs(v):
            hits.extend(descs)
    if hits:
        return sorted(set(hits), key=lambda d: (d.count(" and "), len(d)))
    return None


def integer_hint(c: float) -> str:
    for v, name in ((c, "an integer"), (1.0 / c if c else 0.0, "the inverse of an integer")):
        if v >= 2 and abs(v - round(v)) < 1e-6 * v:
            return (f" by name, but it is {name} ({int(round(v))}): a batch size, a position "
                    f"count or a Monte-Carlo sample count of your setup?")
    return ""


_EPS32 = float(np.finfo(np.float32).eps)


def is_float32(X) -> bool:
    """Whether every entry of ``X`` is a float32 number (a float32 result upcast to float64)."""
    with np.errstate(over="ignore"):
        return bool(np.all(X.astype(np.float32).astype(np.float64) == X))


def float32_evidence(X, Y):
    """``(structural, text)`` when the difference is at float32 rounding level, else None.

    Structural: every entry of ``X`` is a float32 number (the upcast leaves the low 29 mantissa
    bits zero) and the relative error is at most ``1e3`` float32 epsilons (the accumulation of a
    small float32 computation). Otherwise, an error at float32 level with entries that are not
    float32 numbers is reported as a hint only (a float32 intermediate?).
    """
    err = float(np.linalg.norm(X - Y) / max(np.linalg.norm(Y), 1e-300))
    if not (0 < err <= 1e3 * _EPS32):
        return None
    rounding = float(np.linalg.norm(Y.astype(np.float32).astype(np.float64) - Y)
                     / max(np.linalg.norm(Y), 1e-300))
    if is_float32(X):
        return True, (f"every entry of actual is a float32 number (upcast to float64) and the "
                      f"relative error {err:.2e} is {err / _EPS32:.3g} float32 epsilons "
                      f"(rounding desired to float32 alone gives {rounding:.1e}): float32 "
                      f"rounding of a float32 computation compared at float64 tolerance -- pass "
                      f"actual as float32 (default rtol 1e-4) or compute in float64")
    if err >= 1e-2 * _EPS32:
        return False, (f"the relative error {err:.2e} is at float32 rounding level "
                       f"({err / _EPS32:.3g} float32 epsilons) although actual's entries are "
                       f"not float32 numbers: a float32 intermediate (inputs, parameters or a "
                       f"product) in a float64 computation?")
    return None
