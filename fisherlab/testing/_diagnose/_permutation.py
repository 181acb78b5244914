"""The general parameter-order search: ``actual = P desired P^T`` for *some* permutation ``P``.

A symmetric permutation moves rows and columns together, so row ``i`` of ``actual`` is row
``p[i]`` of ``desired`` with its entries reordered: the diagonal entry and the *sorted* row are
invariants. Candidates for ``p[i]`` are the rows of ``desired`` with the same invariants (within
the entry tolerance ``tol ||desired||``, which bounds every entry error of a reproduction within
``tol``); a depth-first search then assigns rows, most constrained first, keeping every
assigned pair ``actual[i, j] = desired[p[i], p[j]]``, under a node budget. A found ``p`` is
verified exactly (relative error <= ``tol``) before it is reported, and described in the
problem's terms: the parameter tensors in their new order, each marked transposed or permuted
within, or (for an irregular map) the runs of consecutive indices it moves.
"""

from __future__ import annotations

import numpy as np

from fisherlab.testing._compare import relative_error

__all__ = ["describe", "find", "run"]

#: the largest matrix searched (the invariants take O(n^3) memory in chunks) and the search budget
MAX_N = 600
MAX_NODES = 200_000


def _candidates(X, Y, tau):
    n = X.shape[0]
    SX, SY = np.sort(X, axis=1), np.sort(Y, axis=1)
    dX, dY = np.diag(X), np.diag(Y)
    cand = np.abs(dX[:, None] - dY[None, :]) <= tau
    step = max(1, 4_000_000 // max(n * n, 1))
    for i0 in range(0, n, step):
        d = np.max(np.abs(SX[i0:i0 + step, None, :] - SY[None, :, :]), axis=2)
        cand[i0:i0 + step] &= d <= tau
    return cand


def find(X, Y, tol):
    """A permutation ``p`` with ``X ~ Y[p][:, p]`` (relative error <= ``tol``), or None."""
    n = X.shape[0]
    if n > MAX_N or n < 2:
        return None
    tau = tol * max(float(np.linalg.norm(Y)), 1e-300)
    if np.max(np.abs(np.sort(X, axis=None) - np.sort(Y, axis=None))) > tau:
        return None  # different multisets of entries: no permutation maps one to the other
    cand = _candidates(X, Y, tau)
    if not cand.any(axis=1).all():
        return None
    order = np.argsort(cand.sum(axis=1), kind="stable")
    p = -np.ones(n, int)
    used = np.zeros(n, bool)
    stack = [(0, list(np.flatnonzero(cand[order[0]])))]
    nodes = 0
    while stack:
        depth, options = stack[-1]
        i = order[depth]
        if p[i] >= 0:  # undo the previous choice at this depth
            used[p[i]] = False
            p[i] = -1
        placed = False
        while options:
            k = options.pop()
            nodes += 1
            if nodes > MAX_NODES:
                return None
            if used[k]:
                continue
            done = order[:depth]
            if depth and (np.max(np.abs(X[i, done] - Y[k, p[done]])) > tau):
                continue
            p[i], used[k], placed = k, True, True
            break
        if not placed:
            stack.pop()
            continue
        if depth + 1 == n:
            if relative_error(X, Y[np.ix_(p, p)]) <= tol:
                return p.copy()
            continue  # rounding let a wrong branch through: keep searching
        nxt = order[depth + 1]
        stack.append((depth + 1, list(np.flatnonzero(cand[nxt] & ~used))))
    return None


def _leaf_names(problem):
    return [(l, f"{l.role}{l.group + 1}" if l.role else f"leaf{i}")
            for i, l in enumerate(problem.leaves())]


def describe(p, problem=None) -> str:
    """The permutation in words: tensors in their new order, or the runs of indices it moves."""
    n = len(p)
    if problem is not None and problem.num_params == n:
        names = _leaf_names(problem)
        owner = np.empty(n, int)
        for i, (l, _) in enumerate(names):
            owner[l.start:l.stop] = i
        parts, a = [], 0
        while a < n:
            i = owner[p[a]]
            l, name = names[i]
            size = l.stop - l.start
            window = p[a:a + size]
            if len(window) != size or not np.array_equal(np.sort(window),
                                                         np.arange(l.start, l.stop)):
                parts = None
                break
            local = window - l.start
            if np.array_equal(local, np.arange(size)):
                parts.append(name)
            elif len(l.shape) == 2 and np.array_equal(
                    local, np.arange(size).reshape(l.shape).T.ravel()):
                parts.append(name + "ᵀ")
            else:
                parts.append(name + " (entries permuted)")
            a += size
        if parts is not None:
            std = [nm for _, nm in names]
            return (f"the parameter tensors in the order [{', '.join(parts)}] instead of "
                    f"[{', '.join(std)}] (ᵀ: stored transposed)")
    runs, a = [], 0
    while a < n:
        b = a + 1
        while b < n and p[b] == p[b - 1] + 1:
            b += 1
        runs.append(f"actual[{a}:{b}] = desired[{p[a]}:{p[a] + b - a}]" if b - a > 1 else
                    f"actual[{a}] = desired[{p[a]}]")
        a = b
    more = f" ... ({len(runs)} runs)" if len(runs) > 8 else ""
    return "the indices moved as " + "; ".join(runs[:8]) + more


def run(ctx):
    """Record ``parameter_order`` when some permutation of ``desired`` reproduces ``actual``."""
    X, Y = ctx.X, ctx.Y
    p = find(X, Y, ctx.tol)
    if p is None or np.array_equal(p, np.arange(len(p))):
        return
    what = describe(p, ctx.problem)
    ctx.col.test("parameter_order", Y[np.ix_(p, p)],
                 f"desired with its parameters permuted, found by the general search: {what}",
                 35, allow_factor=False,
                 data={"permutation": p, "layout": "general", "description": what})
