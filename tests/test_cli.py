"""The command line: `fisherlab prove` prints a table (tier, links, time) and fails loudly;
`fisherlab docs` writes pages that carry no wall-clock times."""

import re

import pytest
import sympy as sp

from fisherlab import cli, proofs
from fisherlab.symbolic import Algebra, Chain, Control, Derivation, Link

x = sp.Symbol("x", real=True)


def _fake(name, ok):
    rhs = x ** 2 + 2 * x + 1 if ok else x ** 2 + 1
    return Derivation(name=name, title=name, conclusion=sp.Eq((x + 1) ** 2, rhs, evaluate=False),
                      proof=lambda: Chain((x + 1) ** 2, [Link(rhs, Algebra(), why="expand")]),
                      tier="A", scope="test",
                      controls=[Control("c", target="conclusion", replace=(rhs, rhs + 1), why="off by one")],
                      references=["test"])


@pytest.fixture
def fake_registry(monkeypatch):
    table = {"demo.good": _fake("demo.good", True), "demo.bad": _fake("demo.bad", False),
             "demo.also": _fake("demo.also", True)}
    monkeypatch.setattr(proofs, "_load", lambda: table)
    return table


def test_prove_prints_a_table_and_succeeds(fake_registry, capsys):
    assert cli.main(["prove", "--jobs", "1", "demo.good", "demo.also"]) == 0
    out = capsys.readouterr()
    assert "demo.good" in out.out and "verified" in out.out and "1/1" in out.out
    assert "tier" in out.out and "2/2 derivations verified" in out.out
    assert "[1/2] demo.good" in out.err  # progress while it runs


def test_prove_exits_nonzero_on_any_failure(fake_registry, capsys):
    assert cli.main(["prove", "--jobs", "1"]) == 1
    out = capsys.readouterr()
    assert "FAILED" in out.out and "NOT verified" in out.err


def test_prove_prefix_selects_a_family_and_unknown_names_are_errors(fake_registry):
    assert cli.main(["prove", "demo.good"]) == 0
    with pytest.raises(SystemExit, match="no derivation named"):
        cli.main(["prove", "nonexistent"])


def test_docs_writes_one_page_per_derivation_and_an_index(fake_registry, tmp_path):
    assert cli.main(["docs", "--jobs", "1", str(tmp_path)]) == 1  # demo.bad fails, but its page is written
    page = (tmp_path / "demo.good.md").read_text()
    assert page.startswith("# demo.good") and " s)" not in page and "s ·" not in page
    index = (tmp_path / "index.md").read_text()
    assert "demo.good.md" in index and "demo.also.md" in index and "FAILED" in index
    # a selection rewrites its own pages and leaves the index listing every derivation
    assert cli.main(["docs", "--jobs", "1", str(tmp_path), "demo.good"]) == 0
    assert (tmp_path / "index.md").read_text() == index


def _without_times(table: str) -> str:
    return re.sub(r"\b\d+\.\d\ds\b", "<t>", re.sub(r"in \d+\.\ds", "in <t>", table))


def test_prove_jobs_gives_the_serial_table_and_pages(tmp_path, capsys):
    # two real derivations (about a second each): the table (times aside) and the pages
    # written by a pool of two workers are exactly the serial ones, in the same order
    names = ["kl_expansion.gaussian", "information_equality.gaussian"]
    assert cli.main(["prove", "--jobs", "1", "--docs", str(tmp_path / "serial"), *names]) == 0
    serial = capsys.readouterr()
    assert cli.main(["prove", "--jobs", "2", "--docs", str(tmp_path / "pool"), *names]) == 0
    pool = capsys.readouterr()
    assert _without_times(pool.out).replace("/pool", "/serial") == _without_times(serial.out)
    assert pool.out.index(names[0]) < pool.out.index(names[1])
    assert "[1/2] kl_expansion.gaussian" in pool.err and "[2/2] information_equality.gaussian" in pool.err
    for name in names:
        assert (tmp_path / "pool" / f"{name}.md").read_text() == \
            (tmp_path / "serial" / f"{name}.md").read_text()


def test_jobs_must_be_a_positive_integer(capsys):
    for bad in ("0", "-2", "two"):
        with pytest.raises(SystemExit):
            cli.main(["prove", "--jobs", bad, "demo.good"])
        assert "--jobs expects a positive integer" in capsys.readouterr().err
