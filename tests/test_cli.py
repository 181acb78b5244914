"""The command line: `fisherlab prove` prints a table (form, tier, time) and fails loudly;
`fisherlab docs` writes pages that carry no wall-clock times."""

import pytest
import sympy as sp

from fisherlab import cli, proofs
from fisherlab.symbolic import (Algebra, Chain, Control, Derivation, LegacyDerivation, Link,
                                NegativeControl, Step, Tier)

x = sp.Symbol("x", real=True)


def _fake(name, ok):
    rhs = x ** 2 + 2 * x + 1 if ok else x ** 2 + 1
    return Derivation(name=name, title=name, conclusion=sp.Eq((x + 1) ** 2, rhs, evaluate=False),
                      proof=lambda: Chain((x + 1) ** 2, [Link(rhs, Algebra(), why="expand")]),
                      tier="A", scope="test",
                      controls=[Control("c", target="conclusion", replace=(rhs, rhs + 1), why="off by one")],
                      references=["test"])


def _legacy(name):
    return LegacyDerivation(name=name, title=name, statement="x = x", tier=Tier.B, scope="test",
                            build=lambda: [Step.equal("s", x, x, justification="")],
                            negative_controls=[NegativeControl("c", "", lambda: Step.equal(
                                "f", x, 2 * x, justification=""))], references=["test"])


@pytest.fixture
def fake_registry(monkeypatch):
    table = {"demo.good": _fake("demo.good", True), "demo.bad": _fake("demo.bad", False),
             "demo.old": _legacy("demo.old")}
    monkeypatch.setattr(proofs, "_load", lambda: table)
    return table


def test_prove_prints_a_table_and_succeeds(fake_registry, capsys):
    assert cli.main(["prove", "demo.good", "demo.old"]) == 0
    out = capsys.readouterr()
    assert "demo.good" in out.out and "verified" in out.out and "1/1" in out.out
    assert "chain" in out.out and "legacy" in out.out and "1 in chain form, 1 legacy" in out.out
    assert "[1/2] demo.good" in out.err  # progress while it runs


def test_prove_exits_nonzero_on_any_failure(fake_registry, capsys):
    assert cli.main(["prove"]) == 1
    out = capsys.readouterr()
    assert "FAILED" in out.out and "NOT verified" in out.err


def test_prove_prefix_selects_a_family_and_unknown_names_are_errors(fake_registry):
    assert cli.main(["prove", "demo.good"]) == 0
    with pytest.raises(SystemExit, match="no derivation named"):
        cli.main(["prove", "nonexistent"])


def test_docs_writes_one_page_per_derivation_and_an_index(fake_registry, tmp_path):
    assert cli.main(["docs", str(tmp_path)]) == 1  # demo.bad fails, but its page is written
    page = (tmp_path / "demo.good.md").read_text()
    assert page.startswith("# demo.good") and " s)" not in page and "s ·" not in page
    index = (tmp_path / "index.md").read_text()
    assert "demo.good.md" in index and "demo.old.md" in index and "FAILED" in index
    # a selection rewrites its own pages and leaves the index listing every derivation
    assert cli.main(["docs", str(tmp_path), "demo.good"]) == 0
    assert (tmp_path / "index.md").read_text() == index
