"""How other curvature libraries' conventions differ from fisherlab's: the documentation table.

The documentation build renders ``PEERS`` on the Conventions page (:func:`markdown`, one section
per library). The facts are not written here: they are the presets of
``fisherlab.testing.PEER_CONVENTIONS`` (``fisherlab/testing/_peer_conventions.py``), the single
source that ``Problem.reference(quantity, convention=...)`` applies, ``diagnose`` names and
``tests/peers/test_presets.py`` checks against the installed libraries. Each entry says where its
facts come from: *measured* (a fisherlab test or report compares the real library's numbers
with the preset) or *read from the source*.
"""

from __future__ import annotations

from typing import NamedTuple

from fisherlab.testing import PEER_CONVENTIONS

__all__ = ["Peer", "PEERS", "COLUMNS", "markdown"]

#: the libraries of the table, in its order (the PyTorch-loss preset is documented with the
#: PyTorch bridge, ``fisherlab.testing.torch``)
LIBRARIES = ("curvlinops", "backpack", "kfac-jax", "asdl", "nngeometry", "laplace-torch")


class Peer(NamedTuple):
    library: str
    reduction: str
    squared_error: str
    parameters: str
    kfac: str
    to_fisherlab: str
    evidence: str


COLUMNS = ("library", "batch reduction", "squared-error loss", "parameter order and layout",
           "K-FAC factors and bias", "to match fisherlab's reference", "evidence")


def _peer(preset) -> Peer:
    return Peer(preset.library, preset.doc_reduction, preset.doc_squared_error,
                preset.doc_parameters, preset.doc_kfac, preset.doc_to_fisherlab,
                preset.evidence)


PEERS = tuple(_peer(PEER_CONVENTIONS[name]) for name in LIBRARIES)


def markdown(peers=PEERS, heading: str = "###") -> str:
    """The table as Markdown: one section per library, one line per aspect."""
    out = []
    for p in peers:
        out.append(f"{heading} {p.library}\n")
        out += [f"- **{label}:** {value}" for label, value in zip(COLUMNS[1:], p[1:])]
        out.append("")
    return "\n".join(out)
