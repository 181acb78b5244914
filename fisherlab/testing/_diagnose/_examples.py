"""The examples and their targets: ``target_mismatch`` and ``example_weighting``.

``target_mismatch`` -- the quantities that depend on the targets (the empirical Fisher, the
gradient covariance, the Hessian, the GGN of a non-natural likelihood, the empirical K-FAC)
recomputed by fisherlab with the targets misaligned or mislabelled: rolled by one example
either way, reversed, class indices shifted by one (``(y +- 1) mod C``: 1-based labels), 0/1
labels flipped. (A general misalignment is found from identified per-example labels, see
:mod:`._labels`.)

``example_weighting`` -- a sum over examples with the wrong weights. The per-example terms
``T_n`` of ``desired = sum_n w0 T_n`` (``J_n^T M_n J_n``, a per-example Hessian, the K-FAC
factor terms) are recomputed and the weights of ``actual`` fitted by least squares; where the
``T_n`` are linearly independent the weights are *identified* and named only when they follow
a pattern: examples dropped (the sum still divided by ``N``, or by the remaining count),
examples counted twice, the mean (or sum) of contiguous chunk means of unequal sizes (a ragged
last batch). Where they are not identified the same patterns are tested one by one.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np

from fisherlab.testing._compare import relative_error
from fisherlab.testing._diagnose import _kfac, _network, _rebuild
from fisherlab.testing._diagnose._finding import fit

__all__ = ["run", "with_data"]

_TARGETED = ("empirical_fisher", "gradient_covariance", "hessian")


def with_data(problem, *, y=None, index=None, reduction=None):
    """A copy of ``problem`` with other targets, a subset of the examples or another reduction.

    The copy shares the model, parameters and likelihood (and so every compiled reference of
    the same shapes); cached results that no longer hold are dropped.
    """
    p = copy.copy(problem)
    keep = {}
    if index is not None:
        p.x, p.y = problem.x[index], problem.y[index]
    else:
        keep = {k: v for k, v in problem._cache.items() if k in ("outputs", "jac")}
        if y is not None:
            p.y = np.asarray(y).astype(np.asarray(problem.y).dtype)
    if reduction is not None:
        p.reduction = reduction
    p._cache = keep
    return p


def _target_variants(problem):
    y = np.asarray(problem.y)
    N = y.shape[0]
    out = []
    if N > 1:
        out += [("roll+1", np.roll(y, 1, axis=0), "each example paired with the previous "
                 "example's target (targets rolled by one)"),
                ("roll-1", np.roll(y, -1, axis=0), "each example paired with the next "
                 "example's target (targets rolled by one the other way)"),
                ("reversed", y[::-1], "the targets in reverse order")]
    name = type(problem.likelihood).__name__
    if name == "Categorical":
        C = problem.num_outputs
        out += [("class+1", (y + 1) % C, "class indices shifted by +1 (mod C)"),
                ("class-1", (y - 1) % C, "class indices shifted by -1 (mod C): 1-based labels")]
    if name == "Bernoulli":
        out += [("flipped", 1.0 - y, "the 0/1 labels flipped")]
    return [(k, v, d) for k, v, d in out if not np.array_equal(v, y)]


def _targets(ctx):
    problem, q, col = ctx.problem, ctx.quantity, ctx.col
    natural = getattr(problem.likelihood, "natural", True)
    dense = ctx.full and (q in _TARGETED or (q == "ggn" and not natural))
    rb = _rebuild.calibrate(ctx)
    kfac_emp = rb is not None and rb.kfac is not None and rb.output_kind == "empirical"
    if not (dense or kfac_emp):
        return
    hits, tried = [], []
    for name, y2, desc in _target_variants(problem):
        if dense:
            try:
                Z = with_data(problem, y=y2).reference(q)
            except (TypeError, ValueError):
                continue
        else:
            Z = rb.with_output(g=_network.gradients(problem, y2).reshape(len(y2), -1))
        tried.append((name, desc, Z))
        if relative_error(col.X, Z) <= col.tol:
            hits.append((name, desc, Z))
    if not hits:  # up to a named scalar factor (e.g. misaligned targets and a sum reduction)
        for name, desc, Z in tried:
            if col.test("target_mismatch", Z, f"desired computed with {desc}", 70,
                        data={"targets": name, "description": desc}):
                return
        return
    name, desc, Z = hits[0]
    data = {"targets": name, "description": desc}
    if len(hits) > 1:  # examples with coinciding terms (repeated inputs) are exchangeable
        desc += (" -- or equally " + "; or ".join(h[1] for h in hits[1:])
                 + " (these give the same matrix on this problem)")
        data["alternatives"] = [h[0] for h in hits[1:]]
    col.test("target_mismatch", Z, f"desired computed with {desc}", 70, data=data)


# ----------------------------------------------------------------------------- weighting


#: largest number of entries of the per-example terms ``(N, n, n)`` held at once
MAX_TERM_ENTRIES = 20_000_000


def _terms(ctx, rb):
    """Per-example terms ``(N, n, n)`` with ``desired = c * sum_n T_n`` (uniform ``c``), or None."""
    problem, q = ctx.problem, ctx.quantity
    if problem.num_examples * ctx.X.size > MAX_TERM_ENTRIES:
        ctx.notes.append(f"example weights not tested: {problem.num_examples} per-example terms "
                         f"of {ctx.X.size} entries exceed the memory bound")
        return None
    if rb is not None and rb.kfac is None and q != "gradient_covariance":
        M, g = rb.true_output()
        if M is None:
            M = np.einsum("ni,nj->nij", g, g)
        J = _network.jacobians(problem)
        return np.einsum("nki,nkl,nlj->nij", J, M, J)
    if rb is not None and rb.kfac is not None and rb.kfac.what in ("A", "G"):
        st = rb.kfac
        L = _network.layers(problem)
        if st.what == "A":
            a = L["a"][st.layer]
            return np.stack([_kfac.a_factor(a[n:n + 1], st.bias, st.approx)
                             for n in range(len(a))])
        M, g = rb.true_output()
        if M is None:
            M = np.einsum("ni,nj->nij", g, g)
        J = L["Js"][st.layer]
        return np.stack([_kfac.g_factor(J[n:n + 1], M[n:n + 1], st.approx)
                         for n in range(len(J))])
    if q == "hessian" and ctx.full:
        N = problem.num_examples
        try:
            return np.stack([with_data(problem, index=slice(n, n + 1), reduction="sum")
                             .reference("hessian") for n in range(N)])
        except (TypeError, ValueError):
            return None
    return None


def _chunkings(N):
    """Contiguous chunkings with a ragged last chunk: ``[[sizes]]`` for batch sizes 2..N-1."""
    out = []
    for b in range(2, N):
        sizes = [b] * (N // b) + ([N % b] if N % b else [])
        if len(set(sizes)) > 1:
            out.append(sizes)
    return out


def _patterns(N):
    """``[(relative weights r (N,), description, data)]`` of the named weighting bugs."""
    out = []
    for k in ((1, 2) if N <= 12 else (1,)):
        for drop in itertools.combinations(range(N), k):
            if N - k < 1:
                continue
            keep = np.ones(N)
            keep[list(drop)] = 0.0
            d = list(drop)
            out.append((keep, f"examples {d} dropped (the sum still divided by N={N})",
                        {"examples": d, "normalised_by": N}))
            out.append((keep * N / (N - k), f"examples {d} dropped (the mean taken over the "
                        f"remaining {N - k})", {"examples": d, "normalised_by": N - k}))
    for n in range(N):
        r = np.ones(N)
        r[n] = 2.0
        out.append((r, f"example {n} counted twice", {"examples": [n], "count": 2}))
    for sizes in _chunkings(N):
        K = len(sizes)
        r = np.concatenate([np.full(s, N / (K * s)) for s in sizes])
        out.append((r, f"the mean of {K} chunk means (chunk sizes {sizes}) instead of the mean "
                    f"over all N={N} examples", {"chunks": sizes, "combined": "mean"}))
        out.append((K * r, f"the sum of {K} chunk means (chunk sizes {sizes})",
                    {"chunks": sizes, "combined": "sum"}))
    return out


def _weighting(ctx):
    rb = _rebuild.calibrate(ctx)
    T = _terms(ctx, rb)
    if T is None:
        return
    N = T.shape[0]
    if N < 2:
        return
    D = T.reshape(N, -1).T
    c0, res = fit(ctx.Y, T.sum(0))
    if c0 is None or res > ctx.tol:
        return  # desired is not the uniform sum of these terms: nothing to compare with
    sv = np.linalg.svd(D, compute_uv=False)
    identified = sv[-1] > 1e-8 * sv[0]
    if identified:
        w, *_ = np.linalg.lstsq(D, ctx.X.ravel(), rcond=None)
        r = w / c0
    hits = []
    for pattern, desc, data in _patterns(N):
        if identified and np.max(np.abs(r - pattern)) > 1e-6 * max(1.0, np.max(np.abs(r))):
            continue
        Z = c0 * np.tensordot(pattern, T, axes=1)
        if relative_error(ctx.X, Z) <= ctx.tol:
            hits.append((pattern, desc, data, Z))
    if not hits:
        return
    pattern, desc, data, Z = hits[0]
    if len(hits) > 1:  # examples with coinciding terms (e.g. repeated inputs) are exchangeable
        desc += (" -- or equally " + "; or ".join(h[1] for h in hits[1:4])
                 + " (these examples' terms coincide on this problem)")
        data = dict(data, alternatives=[h[2] for h in hits[1:]])
    ctx.col.test("example_weighting", Z, f"desired with {desc}", 80, allow_factor=False,
                 data=dict(data, weights=pattern))


def _kfac_dropped(ctx):
    """K-FAC (dense) with one example missing from both factors."""
    rb = _rebuild.calibrate(ctx)
    if rb is None or rb.kfac is None or rb.kfac.what != "kfac":
        return
    st, L = rb.kfac, _network.layers(ctx.problem)
    N = L["a"][0].shape[0]
    if N < 2:
        return
    M, g = rb.true_output()
    if M is None:
        M = np.einsum("ni,nj->nij", g, g)
    for n in range(N):
        keep = np.arange(N) != n
        for renorm in (True, False):
            s = 1.0 if renorm else (N - 1) / N
            As = [s * _kfac.a_factor(a[keep], st.bias, st.approx) for a in L["a"]]
            Gs = [s * _kfac.g_factor(J[keep], M[keep], st.approx) for J in L["Js"]]
            desc = (f"example {n} dropped from both K-FAC factors (means over the remaining "
                    f"{N - 1})" if renorm else f"example {n} dropped from both K-FAC factors "
                    f"(sums still divided by N={N})")
            if ctx.col.test("example_weighting", _kfac.assemble(ctx, st, As, Gs),
                            f"desired with {desc}", 81, allow_factor=False,
                            data={"examples": [n], "normalised_by": N - 1 if renorm else N}):
                return


def run(ctx):
    if ctx.problem is None:
        return
    _targets(ctx)
    _weighting(ctx)
    _kfac_dropped(ctx)
