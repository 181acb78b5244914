"""Monte-Carlo estimates compared as if exact, claimed only with evidence.

Tests ``actual = (k/S) s sum_n J_n^T (sum_{j<=S} g_{nj} g_{nj}^T) J_n`` with labels drawn from
the model, in this order:

1. **Identification.** The per-example output-space matrices ``M_n`` are recovered by least
   squares from ``actual = s sum_n J_n^T M_n J_n`` (``s`` the reduction); only when the design
   has full column rank (``N C (C+1)/2 <= d (d+1)/2`` unknowns, smallest singular value > 1e-10
   of the largest) and the residual is at rounding level. Otherwise no claim.
2. **One sample.** When every ``M_n`` has rank one, its label is recovered and must be valid
   (one-hot; in ``{0,1}^C``; a non-negative integer vector): structural evidence for
   Categorical, Bernoulli with any ``C`` and Poisson alike. The labels are then judged
   (:mod:`._labels`): data labels of other examples are a ``target_mismatch``, argmax labels or
   one label shared by all examples are ``label_sampling`` (a deterministic pattern is never
   certified as sampled), labels outside the log-probability band are ``label_sampling``, and
   only the rest is a one-sample ``monte_carlo_estimate``.
3. **Label counts.** For a finite label space (Categorical; Bernoulli with ``2^C <= 64``) each
   ``M_n / k`` must be ``sum_y w_{ny} g_n(y) g_n(y)^T`` with identifiable weights on the
   lattice ``(1/S) Z_{>=0}`` summing to 1, for some ``S <= S_max`` chosen so that weights with
   spread fractional parts fit by coincidence with probability <= 1e-3; ``k = 1`` (an average;
   the smallest consistent ``S`` is reported) or ``k = S`` (summed instead of averaged). A
   deterministic bug with rational weights is a lattice point as well: against it speak the
   Pearson band of the counts against ``S p`` (the message gives its degrees of freedom), the
   exact multinomial test of the counts (per-example exact p-values, Fisher's combination;
   enumerated where ``C(S+K-1, K-1) <= 2e5``, and the powerful one where some ``p`` is small
   and the distribution-free band is wide) and the deterministic patterns (all labels the mode; identical counts for all examples), which
   are named ``label_sampling``. Counts on the lattice that fail the band are
   ``label_sampling`` (sampled, but not from the model).
4. **Continuous likelihoods** (Gaussian, GaussianMeanVariance): ``M_n`` symmetric PSD,
   nonzero, zero on the null space of ``F_out`` and of the same rank ``S < rank F_out`` for
   every example, and two Chebyshev bands (:mod:`._mc_stats`). Without structural evidence --
   continuous likelihoods with ``S >= C`` -- only a note in the ``no_known_pattern`` evidence.

Each band rejects a true estimate with probability <= ``ALPHA`` = 0.1 %. K-FAC ``G`` factors
are handled by :mod:`._mc_kfac`.
"""

from __future__ import annotations

import numpy as np

from fisherlab.testing._compare import relative_error
from fisherlab.testing._diagnose import _labels, _network
from fisherlab.testing._diagnose._finding import EXACT, MONTE_CARLO, Finding
from fisherlab.testing._diagnose._mc_lattice import ALPHA, finite_support, identify, lattice
from fisherlab.testing._diagnose._mc_stats import statistical

__all__ = ["one_sample", "run"]


def one_sample(ctx, labels, what, rebuild, order=90, res=float("nan")):
    """Judge identified one-sample ``labels``; ``rebuild(labels)`` must reproduce ``actual``.

    Records ``target_mismatch`` / ``label_sampling`` (exact) or a one-sample
    ``monte_carlo_estimate``; returns True when something was recorded.
    """
    Z = rebuild(labels)
    err = relative_error(ctx.X, Z)
    if err > ctx.tol:
        return False  # the recovered labels do not reproduce actual: no claim
    v = _labels.verdict(ctx.problem, labels, what)
    if v is not None:
        kind, msg, data = v
        return ctx.col.add((EXACT, order), Finding(kind, msg + f" (reproduced within {err:.1e})",
                                                   residual=err, data=data))
    passed, T, m, half = _labels.log_prob_band(ctx.problem, labels)
    exact = _labels.exact_one_sample(ctx.problem, labels)
    ex = "" if exact is None else f", the exact test of the labels gives p = {exact:.2g}"
    lab = labels.astype(int).tolist() if np.all(labels == np.round(labels)) else labels.tolist()
    msg = (f"{what}: labels {lab}, one per example (reproduced within {err:.1e}); "
           f"their total log-probability {T:.4g} lies in the band {m:.4g} ± {half:.3g}{ex} "
           f"(each test rejects a true draw with probability <= {ALPHA:g}), they follow no "
           f"deterministic pattern (not all argmax, not one shared label, not the data labels "
           f"of other examples): a Monte-Carlo estimate with S = 1 sample per example compared "
           f"as if exact -- compare it statistically, or with fl.fisher_mc and the same key")
    return ctx.col.add((MONTE_CARLO, 0), Finding("monte_carlo_estimate", msg, convention="S=1",
                                                 residual=res, data={"labels": labels,
                                                                     "num_samples": 1}))


def _dense_rebuild(ctx):
    p = ctx.problem
    s = p.scale * p._scales["curvature"]
    J = _network.jacobians(p)

    def rebuild(labels):
        g = _network.gradients(p, labels).reshape(len(labels), -1)
        return s * np.einsum("nki,nk,nl,nlj->ij", J, g, g, J)

    return rebuild


def _pattern_of_counts(problem, counts, S, ident):
    """``(pattern, text)`` when label counts follow a deterministic pattern, else None."""
    out = np.asarray(problem.outputs(), np.float64)[ident]
    ys, _ = finite_support(problem.likelihood, np.asarray(problem.outputs(), np.float64))
    if _labels.unique_modes(problem):
        mode = _labels.modes(problem)[ident]
        idx = np.array([int(np.flatnonzero(np.all(np.reshape(ys, (len(ys), -1))
                                                  == np.reshape(m, (1, -1)), axis=1))[0])
                        for m in mode])
        if np.all(counts[np.arange(len(out)), idx] == S):
            return "argmax", f"all S = {S} labels of every example are its mode (argmax)"
    if len(counts) >= 2 and np.all(counts == counts[0]):
        return "shared", (f"every example has the same label counts {counts[0].tolist()}: one "
                          f"draw shared by the batch")
    return None


def _lattice_claim(ctx, lat, head, res):
    col = ctx.col
    passed = [c for c in lat if c[4]]
    if not passed:
        k, S, counts, (Q, EQ, band, *_, exact), _ = sorted(
            lat, key=lambda t: (t[0] != 1, t[1]))[0]
        ex = "" if exact is None else f"; exact multinomial test p = {exact:.2g}"
        col.add((EXACT, 91), Finding(
            "label_sampling", f"{head}; each M_n is {'an average' if k == 1 else 'a sum'} of "
            f"label terms g(y) g(y)ᵀ with counts {counts.tolist()} out of S = {S} (sampled-label "
            f"structure) but the counts are not draws from S p: Pearson Q = {Q:.3g} (mean "
            f"{EQ:g}, Chebyshev half-width {band:.3g}){ex} (each test rejects a true estimate "
            f"with probability <= {ALPHA:g}): labels not drawn from the model's predictive "
            f"distribution",
            residual=res, data={"counts": counts, "num_samples": S, "pattern": "distribution"}))
        return
    k, S, counts, (Q, EQ, band, fp, smax, skipped, ident, exact), _ = sorted(
        passed, key=lambda t: (t[0] != 1, t[1]))[0]
    pattern = _pattern_of_counts(ctx.problem, counts, S, ident)
    if pattern is not None:
        col.add((EXACT, 91), Finding(
            "label_sampling", f"{head}; label counts {counts.tolist()} out of S = {S}: "
            f"{pattern[1]} -- a deterministic label pattern, not independent draws from the "
            f"model", residual=res, data={"counts": counts, "num_samples": S,
                                          "pattern": pattern[0]}))
        return
    stats = (f"the label counts pass the Pearson chi-square band (Q = {Q:.3g}, mean {EQ:g}, "
             f"Chebyshev half-width {band:.3g}: a true estimate fails with probability "
             f"<= {ALPHA:g}); weights with uniformly spread fractional parts fit a "
             f"lattice with S <= {smax} with probability <= {fp:.1e}, but a deterministic "
             f"bug with rational weights (an unweighted class average, wrong one-hot labels) "
             f"is a lattice point too: against it only the statistics speak, the band with "
             f"{EQ:g} degrees of freedom")
    if exact is not None:
        stats += (f"; the exact multinomial test of the counts (Fisher's combination over the "
                  f"examples) gives p = {exact:.2g} > {ALPHA:g}")
    if skipped:
        stats += (f"; examples {skipped} have linearly dependent label terms (e.g. p = 1/2 "
                  f"with two classes): consistent, but left out of the counts and the band")
    ambiguous = len(passed) > 1
    if k == 1:
        msg = (f"{head}; each M_n is an average of sampled-label terms g(y) g(y)ᵀ with label "
               f"counts {counts.tolist()} out of S = {S} per example (S = {S} is the "
               f"smallest sample count consistent with them; any multiple fits too); "
               f"{stats}: a Monte-Carlo estimate compared as if exact -- compare it "
               f"statistically, or with fl.fisher_mc and the same key")
        if ambiguous:
            msg += (f" (it also fits as a sum over S = {[t[1] for t in passed if t[0] != 1]} "
                    f"samples)")
        col.add((MONTE_CARLO, 0), Finding("monte_carlo_estimate", msg,
                                          convention=f"S={S} (or a multiple)", residual=res,
                                          data={"counts": counts, "num_samples": S}))
        return
    msg = (f"{head}; each M_n is a sum (not an average) of S = {S} sampled-label terms "
           f"g(y) g(y)ᵀ with label counts {counts.tolist()}; {stats}: the estimate "
           f"was summed over the S = {S} samples instead of averaged")
    if ambiguous:
        msg += f" (other hypotheses also fit: {[(t[0], t[1]) for t in passed[1:]]} as (k, S))"
    col.add((MONTE_CARLO, 1), Finding("monte_carlo_estimate", msg,
                                      factor=None if ambiguous else float(S),
                                      convention=f"sum over S={S} samples", residual=res,
                                      data={"counts": counts, "num_samples": S}))


def _statistical_claim(ctx, M, err, out, Fout, head, res, num_draws, seed):
    stat, structural = statistical(ctx.problem, M, err, ctx.tol, out, Fout,
                                   num_draws=num_draws, seed=seed) or ([], False)
    if not stat:
        return
    if not structural:
        txt = "; ".join(f"{'a sum' if sm else 'an average'} over S in [{g.min()}, {g.max()}]"
                        for sm, g in stat)
        ctx.notes.append(
            f"the per-example output-space M_n are identified and PSD and would pass the "
            f"statistical bands of a Monte-Carlo estimate ({txt}), but with no structural "
            f"evidence (label counts on a lattice, or rank S below rank F_out) no "
            f"Monte-Carlo estimate is claimed")
        return

    def span(good):
        lo, hi = int(good.min()), int(good.max())
        return (lo, hi), (f"S = {lo}" if lo == hi else f"S in [{lo}, {hi}]")

    stats = ("M_n is PSD, nonzero, zero on the null space of F_out, and its deviation from F_out "
             "passes two Chebyshev bands (each rejects a true estimate with probability <= "
             f"{ALPHA:g})")
    col = ctx.col
    if len(stat) == 2:  # both an average and a sum fit: the factor is not identified
        (_, mean_txt), ((lo, hi), sum_txt) = span(stat[0][1]), span(stat[1][1])
        msg = (f"{head}; {stats} both as an average over {mean_txt} samples and as a sum over "
               f"{sum_txt} samples: a Monte-Carlo estimate compared as if exact (whether it "
               f"was averaged or summed over its samples is not identified)")
        col.add((MONTE_CARLO, 0), Finding("monte_carlo_estimate", msg, residual=res,
                                          convention=f"average over {mean_txt} or sum over "
                                                     f"{sum_txt}"))
        return
    summed, good = stat[0]
    (lo, hi), rng_txt = span(good)
    if not summed:
        msg = (f"{head}; {stats} for {rng_txt}: a Monte-Carlo estimate with {rng_txt} samples "
               f"per example compared as if exact -- compare it statistically, or with "
               f"fl.fisher_mc and the same key")
        col.add((MONTE_CARLO, 0), Finding("monte_carlo_estimate", msg, convention=rng_txt,
                                          residual=res))
    else:
        msg = (f"{head}; {stats} for a Monte-Carlo estimate summed over {rng_txt} samples "
               f"instead of averaged" + ("" if lo == hi else " (S not identified exactly)"))
        col.add((MONTE_CARLO, 1), Finding("monte_carlo_estimate", msg,
                                          factor=float(lo) if lo == hi else None,
                                          convention=f"sum over {rng_txt} samples",
                                          residual=res))


def run(ctx, *, num_draws=20000, seed=0):
    """The dense Fisher / GGN path (steps 1-4 of the module docstring)."""
    problem, q = ctx.problem, ctx.quantity
    if not ctx.full:
        return  # no problem: nothing to rebuild from
    lik = problem.likelihood
    natural = getattr(lik, "natural", True)
    if (not ctx.full or q not in ("fisher", "ggn") or (q == "ggn" and not natural)
            or problem.num_positions != 1):
        return
    ident = identify(problem, ctx.X, ctx.tol)
    if ident is None:
        return
    M, res, err = ident
    N, C, _ = M.shape
    head = (f"actual = s·Σ_n J_nᵀ M_n J_n with the per-example output-space M_n identified "
            f"(N·C(C+1)/2 = {N * C * (C + 1) // 2} unknowns, residual {res:.1e})")
    labels = _labels.recover(problem, M, err, ctx.tol)
    if labels is not None:
        what = f"{head}; every M_n has rank one, g_n g_nᵀ at a valid label"
        if one_sample(ctx, labels, what, _dense_rebuild(ctx), res=res):
            return
    out = np.asarray(problem.outputs(), np.float64)
    lat = lattice(problem, M, err, ctx.tol, out)
    if lat is not None:
        if lat:
            _lattice_claim(ctx, lat, head, res)
        return
    Fout = np.asarray(lik.output_fisher(out), np.float64)
    _statistical_claim(ctx, M, err, out, Fout, head, res, num_draws, seed)
