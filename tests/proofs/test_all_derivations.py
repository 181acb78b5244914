"""Every registered derivation verifies, every negative control is rejected, and the
committed derivation pages in docs/derivations/ are exactly what `fisherlab docs` writes."""

import re
from pathlib import Path

import pytest

from fisherlab import proofs
from fisherlab.symbolic import to_markdown

DOCS = Path(__file__).resolve().parents[2] / "docs" / "derivations"
NAMES = proofs.names()
#: Generous wall-clock bound per derivation on 2 shared cores (measured 0.02-6 s).
BUDGET_S = 60.0


def normalise(page: str) -> str:
    """Drop wall-clock figures, which legitimately differ between runs."""
    return re.sub(r"\d+\.\d+ s\b", "<t> s", page)


def test_theorem_modules_are_registered():
    assert proofs.modules(), "no theorem modules found in proofs/"
    assert len(NAMES) == len(set(NAMES))
    for d in proofs.all():
        assert d.negative_controls and d.references and d.scope, d.name


@pytest.mark.parametrize("name", NAMES)
def test_derivation_verifies_and_its_page_is_current(name):
    d = proofs.get(name)
    report = d.verify()
    report.raise_if_failed()
    assert report.seconds < BUDGET_S, f"{name} took {report.seconds:.1f}s"
    assert all(step.method for step in report.steps), "every step names the canonicalisation that closed it"
    assert report.controls_rejected == len(d.negative_controls) >= 1
    for c in report.controls:
        # an exact witness: a substitution and the nonzero (or negative) difference it produces
        assert c.witness.startswith("at ") and "difference =" in c.witness, (c.name, c.witness)
        value = c.witness.rsplit("difference =", 1)[1].strip()
        assert re.fullmatch(r"-?[0-9./e+-]+", value) and float(eval(value)) != 0.0, value  # noqa: S307
    page = DOCS / f"{name}.md"
    assert page.exists(), f"{page} missing: run `fisherlab docs docs/derivations`"
    assert normalise(page.read_text()) == normalise(to_markdown(d, report)), (
        f"{page} is out of date: run `fisherlab docs docs/derivations`")


def test_docs_hold_exactly_the_registered_derivations():
    on_disk = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    assert on_disk == set(NAMES), "stale or missing pages: run `fisherlab docs docs/derivations`"
    index = (DOCS / "index.md").read_text()
    for name in NAMES:
        assert f"({name}.md)" in index


def test_get_unknown_name_lists_known_ones():
    with pytest.raises(KeyError, match="known"):
        proofs.get("no.such.theorem")
