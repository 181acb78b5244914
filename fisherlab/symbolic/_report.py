"""What verification found: one result per link and per negative control, and the report."""

from __future__ import annotations

import dataclasses

__all__ = ["LinkResult", "ControlResult", "Report"]


@dataclasses.dataclass(frozen=True)
class LinkResult:
    """One checked link ``e_{i-1} rel e_i`` of chain ``chain`` (both 1-based)."""

    chain: int
    index: int
    label: str
    rel: str
    passed: bool
    method: str            # how it was checked: "matrix algebra", "entry-wise", "explicit", ...
    tier: str
    sizes: str = ""        # the sizes it was checked at (explicit checks)
    conditions: tuple = ()  # expressions that must not vanish (genericity)
    axioms: tuple = ()     # matrix-algebra axioms the normal form used
    seconds: float = 0.0
    error: str = ""


@dataclasses.dataclass(frozen=True)
class ControlResult:
    """A negative control: the mutation, and the witness at which the mutated claim fails."""

    name: str
    target: str
    rejected: bool
    witness: str = ""      # LaTeX of the point
    value: str = ""        # LaTeX of the nonzero (or negative) value found there
    seconds: float = 0.0
    error: str = ""


@dataclasses.dataclass(frozen=True)
class Report:
    """The verification report of a derivation in chain form."""

    name: str
    tier: str                 # declared
    achieved: str             # what the chains reach
    links: tuple
    controls: tuple
    chain_tiers: tuple = ()   # (part, tier) per chain
    conditions: tuple = ()
    seconds: float = 0.0
    error: str = ""
    legacy: bool = False

    @property
    def ok(self) -> bool:
        return (not self.error and bool(self.links) and all(r.passed for r in self.links)
                and bool(self.controls) and all(c.rejected for c in self.controls)
                and self.achieved == self.tier)

    @property
    def passed_count(self) -> int:
        return sum(r.passed for r in self.links)

    @property
    def total_count(self) -> int:
        return len(self.links)

    @property
    def controls_rejected(self) -> int:
        return sum(c.rejected for c in self.controls)

    def summary(self) -> str:
        status = "VERIFIED" if self.ok else "FAILED"
        return (f"{self.name}: {status} (tier {self.achieved or '?'}"
                f"{'' if self.achieved == self.tier else f', declared {self.tier}'}, "
                f"{self.passed_count}/{self.total_count} links, "
                f"{self.controls_rejected}/{len(self.controls)} controls rejected, "
                f"{self.seconds:.2f}s)")

    def failures(self) -> list[str]:
        lines = []
        if self.error:
            lines.append(f"  error: {self.error}")
        if self.achieved != self.tier and not self.error:
            lines.append(f"  declared tier {self.tier!r} but the chains reach {self.achieved!r}")
        for r in self.links:
            if not r.passed:
                lines.append(f"  chain {r.chain} link {r.index}{f' [{r.label}]' if r.label else ''} "
                             f"NOT verified: {r.error}")
        for c in self.controls:
            if not c.rejected:
                lines.append(f"  negative control NOT rejected: {c.name} ({c.target}): {c.error}")
        return lines

    def raise_if_failed(self) -> None:
        if not self.ok:
            raise AssertionError("\n".join([self.summary()] + self.failures()))
