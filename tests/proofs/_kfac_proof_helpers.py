"""Shared checks for the K-FAC theorem families (kronecker, kfac_structure, kfac_exactness,
kfac_damping, ekfac, ema, kfac_weight_sharing, kfac_conv): the metadata (tier, scope,
references, numeric counterparts, a reason for every link or step) is real.
That every derivation verifies with exact witnesses is checked for all families in
test_all_derivations.py."""

from __future__ import annotations

from _resolve import resolve
from _verified import verified
from fisherlab import proofs
from fisherlab.symbolic import Explicit, tier_text


def report(name: str):
    """The derivation's report (shared, see _verified.py) and the seconds its verification took."""
    r = verified(name)
    return r, r.seconds


def family(prefix: str) -> list[str]:
    return [n for n in proofs.names() if n.startswith(prefix + ".")]


def check_metadata(name: str, tier: str, scope_words: tuple[str, ...]) -> None:
    d = proofs.get(name)
    assert tier_text(d) == tier, (name, d.tier)
    for w in scope_words:
        assert w in d.scope, (name, w, d.scope)
    refs = " ".join(d.references)
    assert "Martens" in refs or "George" in refs or "Van Loan" in refs, refs
    assert "Johnson" in refs or "Grosse" in refs or "George" in refs, refs
    assert d.numeric, name
    for dotted in d.numeric:
        assert callable(resolve(dotted)), dotted
    for chain in d.chains():
        for link in chain.links:  # an explicit check at stated sizes explains itself
            assert link.why or isinstance(link.by, Explicit), (name, link)
