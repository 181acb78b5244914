"""One verification per derivation per test process: ``verify()`` is deterministic and several
test files check the same report (test_all_derivations.py checks every one), so they share it.
The wall-clock time a budget is checked against is the report's own ``seconds``."""

from __future__ import annotations

import functools

from fisherlab import proofs


@functools.lru_cache(maxsize=None)
def verified(name: str):
    """The report of ``proofs.get(name).verify()``, computed once per process."""
    return proofs.get(name).verify()
