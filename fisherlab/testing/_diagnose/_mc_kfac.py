"""K-FAC ``G`` factors with one Monte-Carlo label per example, compared as if exact.

``G_k = (1/N) sum_n T_k(n, y_n)`` with ``T_k(n, y) = sum_p v v^T``, ``v = J_{s_k,n,p}^T g_n(y)``
(expand; reduce sums ``v`` over positions first): a sum over examples, so the labels are not
identified example by example. For a finite label space and ``K^N <= MAX_ASSIGNMENTS`` every
assignment ``(y_1, ..., y_N)`` is enumerated against the ``G`` of *every* layer at once (on the
dense ``kfac`` matrix, ``G_k`` is read off each layer block by projecting on its ``A_k``); a
claim needs exactly one assignment to fit, and the quantity rebuilt at those labels to
reproduce ``actual`` within tolerance. The labels are then judged as in :mod:`._labels`
(argmax or shared labels are ``label_sampling``; a passing log-probability band makes it a
one-sample ``monte_carlo_estimate``).
"""

from __future__ import annotations

import numpy as np

from fisherlab.testing._diagnose import _labels, _monte_carlo, _network, _rebuild
from fisherlab.testing._diagnose._mc_lattice import label_gradients

__all__ = ["run"]

#: largest number of label assignments enumerated, and of entries of the enumeration
MAX_ASSIGNMENTS = 50_000
MAX_ENTRIES = 20_000_000


def _layer_rows(problem, k, bias):
    """Parameter indices of the rows of layer ``k``'s ``[W | b]`` (``[W]`` for a separate bias)."""
    leaves = [l for l in problem.leaves() if l.group == k]
    W, b = leaves[0], leaves[1]
    out = W.shape[0]
    inp = (W.stop - W.start) // out
    rows = []
    for o in range(out):
        r = list(range(W.start + o * inp, W.start + (o + 1) * inp))
        if bias == "augmented":
            r.append(b.start + o)
        rows.append(np.array(r))
    return rows


def _g_from_kfac(ctx, st):
    """Each layer's ``G`` read off the dense K-FAC ``actual`` (divided by ``c0``)."""
    Gs = []
    for k, A in enumerate(st.A):
        rows = _layer_rows(ctx.problem, k, st.bias)
        nA = float(np.vdot(A, A))
        G = np.array([[np.vdot(ctx.X[np.ix_(ro, rp)], A) / nA for rp in rows] for ro in rows])
        Gs.append(G / st.c0)
    return Gs


def _terms(st, J, g):
    """``T(n, y)`` of one layer: ``(N, K, out, out)``."""
    v = np.einsum("ncpo,nkc->nkpo", J, g)
    if st.approx == "reduce":
        v = v.sum(axis=2, keepdims=True)
    return np.einsum("nkpo,nkpq->nkoq", v, v)


def run(ctx):
    rb = _rebuild.calibrate(ctx)
    if rb is None or rb.kfac is None or rb.kfac.what == "A" or rb.kfac.fisher_type != "exact":
        return
    st, problem = rb.kfac, ctx.problem
    if problem.num_positions != 1:
        return
    N = problem.num_examples
    ys = _labels.support_for_enumeration(problem, N)
    if ys is None or len(ys) ** N > MAX_ASSIGNMENTS:
        return
    K = len(ys)
    L = _network.layers(problem)
    g = label_gradients(problem.likelihood, _network.flat_outputs(problem)[:, 0], ys)
    layers = [st.layer] if st.what == "G" else range(len(L["Js"]))
    targets = [ctx.X / st.c0] if st.what == "G" else _g_from_kfac(ctx, st)
    t = np.concatenate([_terms(st, L["Js"][k], g).reshape(N, K, -1) for k in layers], axis=2)
    x = np.concatenate([T.ravel() for T in targets])
    if K ** N * t.shape[2] > MAX_ENTRIES:
        return
    sums = t[0]
    for n in range(1, N):
        sums = (sums[:, None, :] + t[n][None, :, :]).reshape(-1, t.shape[2])
    resid = np.linalg.norm(sums / N - x[None, :], axis=1) / max(np.linalg.norm(x), 1e-300)
    hits = np.flatnonzero(resid <= max(10 * ctx.tol, 1e-9))
    if len(hits) != 1:
        if len(hits) > 1:
            ctx.notes.append(f"{len(hits)} label assignments reproduce the K-FAC G factors: the "
                             f"labels of a one-sample estimate are not identified")
        return
    assign = np.array(np.unravel_index(hits[0], (K,) * N))
    labels = np.asarray(ys)[assign]

    def rebuild(lab):
        gl = _network.gradients(problem, lab).reshape(N, -1)
        return rb.with_output(g=gl)

    what = (f"the K-FAC G factor{'s of every layer are' if st.what == 'kfac' else ' is'} "
            f"reproduced by exactly one of the {K}^{N} label assignments, one label per "
            f"example")
    _monte_carlo.one_sample(ctx, labels, what, rebuild, order=92,
                            res=float(resid[hits[0]]))
