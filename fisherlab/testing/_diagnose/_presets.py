"""Peer presets: ``actual`` is a peer library's output (:mod:`fisherlab.testing._peer_conventions`).

A preset that only rescales ``desired`` is named by the scalar family (its normalisation is
listed first among the factor's readings). Here the presets that also change the matrix's
structure are tested exactly, each applied to ``desired``: the K-FAC bias kept separate
(``bias_cross_terms_missing``) and weights stored ``(in, out)`` (``transposed_weight_layout``),
with the preset's scale (for K-FAC both the exact and the empirical one). Presets that give the
same matrix on the problem are named together.
"""

from __future__ import annotations

import numpy as np

from fisherlab.testing import _peer_conventions

__all__ = ["run"]


def _cross_terms_dropped(problem, Y):
    n = Y.shape[0]
    keep = np.ones((n, n), bool)
    leaves = problem.leaves()
    for l1 in leaves:
        for l2 in leaves:
            if l1.group == l2.group and l1 is not l2 and {l1.role, l2.role} == {"W", "b"}:
                keep[l1.start:l1.stop, l2.start:l2.stop] = False
    return np.where(keep, Y, 0.0)


def run(ctx):
    if not ctx.full or ctx.quantity is None:
        return
    problem, q, Y = ctx.problem, ctx.quantity, ctx.Y
    candidates = []  # (kind, Z, [descriptions], [names])
    for preset in _peer_conventions.applicable(problem):
        separate = q == "kfac" and preset.kfac_bias == "separate"
        layout = preset.weight_layout == "in_out"
        if not (separate or layout):
            continue
        kind = "transposed_weight_layout" if layout else "bias_cross_terms_missing"
        base = _cross_terms_dropped(problem, Y) if separate else Y
        curv, outer = preset.factors(problem)
        types = ("exact", "empirical") if q == "kfac" and abs(curv - outer) > 1e-12 * curv else (
            "exact",)
        for ft in types:
            own = base / _peer_conventions.problem_scale(problem, q, ft)  # fisherlab's scaling
            Z = preset.apply(problem, q, own, {"fisher_type": ft})
            desc = preset.describe(problem, q, ft) + (" with fisher_type='empirical'"
                                                      if ft == "empirical" else "")
            for entry in candidates:
                if entry[0] == kind and np.allclose(entry[1], Z, rtol=1e-12, atol=0.0):
                    if preset.name not in entry[3]:
                        entry[2].append(desc)
                        entry[3].append(preset.name)
                    break
            else:
                candidates.append((kind, Z, [desc], [preset.name]))
    for kind, Z, descs, names in candidates:
        data = {"convention": names}
        if kind == "transposed_weight_layout":
            data["permutation"] = _peer_conventions.layout_permutation(problem)
        ctx.col.test(kind, Z, "desired mapped to " + "; or ".join(descs), 29,
                     allow_factor=False, data=data, convention=", ".join(names))
