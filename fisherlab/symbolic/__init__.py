"""The symbolic face of fisherlab: derivations, their checker and renderer, and
exact SymPy curvature for tiny networks (``curvature``)."""

from fisherlab.symbolic._derivation import (
    ControlResult,
    Derivation,
    NegativeControl,
    Report,
    Step,
    StepResult,
    Tier,
    find_witness,
    is_zero,
    verify,
)
from fisherlab.symbolic._render import index_markdown, to_markdown

__all__ = [
    "ControlResult",
    "Derivation",
    "NegativeControl",
    "Report",
    "Step",
    "StepResult",
    "Tier",
    "curvature",
    "find_witness",
    "index_markdown",
    "is_zero",
    "to_markdown",
    "verify",
]


def __getattr__(name):
    # `curvature` builds SymPy networks; imported lazily (its module is larger).
    if name == "curvature":
        from fisherlab.testing.references.symbolic import curvature

        return curvature
    raise AttributeError(f"module 'fisherlab.symbolic' has no attribute {name!r}")
