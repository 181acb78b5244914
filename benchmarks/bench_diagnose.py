"""Benchmark: planted bugs -> the first finding of ``fl.testing.diagnose`` and its time.

The planted bugs are the table of ``tests/testing/diagnose/planted_bugs.py`` (candidates
computed independently of fisherlab by its NumPy engine, fixed problems and seeds; the test
``test_diagnose_table.py`` asserts the expected kinds); this lists the bug, the expected and
the first finding's kind and the wall time of ``diagnose`` (first call per problem includes the
compiles of the references it needs; the column "warm" repeats the call on a fresh ``Problem`` of the
same shapes, i.e. with compiled programs but no cached results).

Usage: ``python3 benchmarks/bench_diagnose.py`` from the repository root. Prints
``os.getloadavg()``: the figures depend on the load of the machine.
"""

from __future__ import annotations

import os
import sys
import time

import jax

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "testing", "diagnose"))
jax.config.update("jax_enable_x64", True)

import fisherlab as fl  # noqa: E402
from planted_bugs import cases  # noqa: E402


def main():
    print(f"load average {os.getloadavg()}")
    rows = [("bug", "expected", "first kind", "cold s", "warm s")]
    for name, make, q, build, kind in cases():
        times, kinds = [], None
        for _ in range(2):
            P = make()
            cand = build(P)
            desired = P.reference(q)
            t0 = time.perf_counter()
            findings = fl.testing.diagnose(cand, desired, problem=P, quantity=q)
            times.append(time.perf_counter() - t0)
            kinds = [f.kind for f in findings]
        rows.append((name, kind, kinds[0] if kinds else "(none)", f"{times[0]:.2f}",
                     f"{times[1]:.2f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


if __name__ == "__main__":
    main()
