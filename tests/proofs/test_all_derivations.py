"""Every registered derivation verifies, every negative control is rejected with a witness,
every test a derivation names as checking its numeric counterpart exists, and the committed
derivation pages in docs/derivations/ are exactly what `fisherlab docs` writes (pages carry
no wall-clock times, so regenerating them leaves the tree clean)."""

import ast
import functools
import re
from pathlib import Path

import pytest

from _resolve import resolve
from fisherlab import proofs
from fisherlab.symbolic import to_markdown

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "derivations"
NAMES = proofs.names()
#: Generous wall-clock bound per derivation on 2 shared cores (measured 0.1-6 s).
BUDGET_S = 60.0


def test_theorem_modules_are_registered():
    assert proofs.modules(), "no theorem modules found in proofs/"
    assert len(NAMES) == len(set(NAMES))
    for d in proofs.all():
        controls = d.negative_controls if d.legacy else d.controls
        assert controls and d.references and d.scope, d.name


@pytest.mark.parametrize("name", NAMES)
def test_derivation_verifies_and_its_page_is_current(name):
    d = proofs.get(name)
    report = d.verify()
    report.raise_if_failed()
    assert report.seconds < BUDGET_S, f"{name} took {report.seconds:.1f}s"
    if d.legacy:
        assert all(step.method for step in report.steps), "every step names its canonicalisation"
        for c in report.controls:
            # an exact witness: a substitution and the nonzero (or negative) difference it produces
            assert c.witness.startswith("at ") and "difference =" in c.witness, (c.name, c.witness)
            value = c.witness.rsplit("difference =", 1)[1].strip()
            assert re.fullmatch(r"-?[0-9./e+-]+", value) and float(eval(value)) != 0.0, value  # noqa: S307
    else:
        assert all(link.method for link in report.links), "every link names how it was checked"
        for c in report.controls:
            assert c.rejected and c.witness and c.value, (c.name, c.error)
    page = DOCS / f"{name}.md"
    assert page.exists(), f"{page} missing: run `fisherlab docs docs/derivations`"
    assert page.read_text() == to_markdown(d, report), (
        f"{page} is out of date: run `fisherlab docs docs/derivations`")


def test_docs_hold_exactly_the_registered_derivations():
    on_disk = {p.stem for p in DOCS.glob("*.md")} - {"index"}
    assert on_disk == set(NAMES), "stale or missing pages: run `fisherlab docs docs/derivations`"
    index = (DOCS / "index.md").read_text()
    for name in NAMES:
        assert f"({name}.md)" in index


@functools.lru_cache(maxsize=None)
def _test_functions(path: str) -> frozenset:
    tree = ast.parse((ROOT / path).read_text())
    return frozenset(n.name for n in ast.walk(tree)
                     if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test"))


TESTED_BY = [(d.name, node) for d in proofs.all() if not d.legacy for node in d.tested_by]


@pytest.mark.parametrize("name, node", TESTED_BY, ids=[f"{n}:{t.split('::')[-1]}" for n, t in TESTED_BY])
def test_tested_by_names_existing_tests(name, node):
    path, _, func = node.partition("::")
    assert (ROOT / path).is_file(), f"{name}: {path} does not exist"
    assert func.split("[")[0] in _test_functions(path), f"{name}: no test {func} in {path}"


def test_derivations_in_chain_form_name_their_numeric_counterparts_and_tests():
    for d in proofs.all():
        if d.legacy:
            continue
        assert d.numeric and d.tested_by, d.name
        for dotted in d.numeric:
            assert callable(resolve(dotted)), (d.name, dotted)


def test_get_unknown_name_lists_known_ones():
    with pytest.raises(KeyError, match="known"):
        proofs.get("no.such.theorem")
