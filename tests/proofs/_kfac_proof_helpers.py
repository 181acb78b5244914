"""Shared checks for the K-FAC theorem families (kronecker, kfac_structure, kfac_exactness,
kfac_damping, ekfac): the metadata (tier, scope, references, numeric counterparts, a reason
for every link or step) is real.
That every derivation verifies with exact witnesses is checked for all families in
test_all_derivations.py."""

from __future__ import annotations

import functools
import time

from _resolve import resolve
from fisherlab import proofs
from fisherlab.symbolic import Explicit, tier_text


@functools.lru_cache(maxsize=None)
def report(name: str):
    t0 = time.perf_counter()
    r = proofs.get(name).verify()
    return r, time.perf_counter() - t0


def family(prefix: str) -> list[str]:
    return [n for n in proofs.names() if n.startswith(prefix + ".")]


def check_metadata(name: str, tier: str, scope_words: tuple[str, ...]) -> None:
    d = proofs.get(name)
    assert tier_text(d) == tier, (name, d.tier)
    for w in scope_words:
        assert w in d.scope, (name, w, d.scope)
    refs = " ".join(d.references)
    assert "Martens" in refs or "George" in refs or "Van Loan" in refs, refs
    assert "Johnson" in refs or "Grosse" in refs or "seed 00" in refs or "George" in refs, refs
    assert d.numeric, name
    for dotted in d.numeric:
        assert callable(resolve(dotted)), dotted
    if d.legacy:
        for step in d.build():
            assert step.display and step.justification, (name, step.claim)
    else:
        for chain in d.chains():
            for link in chain.links:  # an explicit check at stated sizes explains itself
                assert link.why or isinstance(link.by, Explicit), (name, link)
