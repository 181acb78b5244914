"""Shared checks for the K-FAC theorem families (kronecker, kfac_structure, kfac_exactness,
kfac_damping, ekfac): each derivation verifies, each negative control is rejected *with an
exact witness*, and the metadata (tier, scope, references, numeric counterparts) is real."""

from __future__ import annotations

import functools
import importlib
import re
import time

from fisherlab import proofs

#: Generous wall-clock bound per derivation on 2 shared cores (measured 0.3-5 s).
BUDGET_S = 60.0


@functools.lru_cache(maxsize=None)
def report(name: str):
    t0 = time.perf_counter()
    r = proofs.get(name).verify()
    return r, time.perf_counter() - t0


def family(prefix: str) -> list[str]:
    return [n for n in proofs.names() if n.startswith(prefix + ".")]


def check_verified(name: str) -> None:
    r, seconds = report(name)
    r.raise_if_failed()
    assert seconds < BUDGET_S, f"{name} took {seconds:.1f}s"
    assert all(s.method for s in r.steps), "every step names the canonicalisation that closed it"


def check_controls_have_witnesses(name: str) -> None:
    d = proofs.get(name)
    r, _ = report(name)
    assert len(r.controls) == len(d.negative_controls) >= 1
    for c in r.controls:
        assert c.rejected, f"{name}: control {c.name} not rejected ({c.error})"
        # an exact witness: a substitution and the nonzero (or negative) difference it produces
        assert c.witness.startswith("at ") and "difference =" in c.witness, c.witness
        value = c.witness.rsplit("difference =", 1)[1].strip()
        assert re.fullmatch(r"-?[0-9./e+-]+", value) and float(eval(value)) != 0.0, value  # noqa: S307


def check_metadata(name: str, tier: str, scope_words: tuple[str, ...]) -> None:
    d = proofs.get(name)
    assert d.tier.value == tier, (name, d.tier)
    for w in scope_words:
        assert w in d.scope, (name, w, d.scope)
    refs = " ".join(d.references)
    assert "Martens" in refs or "George" in refs or "Van Loan" in refs, refs
    assert "seed 00" in refs or "George" in refs, refs
    assert d.numeric, name
    for dotted in d.numeric:
        module, _, attr = dotted.rpartition(".")
        assert callable(getattr(importlib.import_module(module), attr)), dotted
    for step in d.build():
        assert step.display and step.justification, (name, step.claim)
