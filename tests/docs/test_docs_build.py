"""The pieces of the documentation build (docs/build_site.py, docs/peer_conventions.py, the KaTeX
renderer) on small inputs; fast, no browser. The whole build is checked by test_site_browser.py."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KATEX = ROOT / "build" / "docs" / "katex" / "node_modules" / "katex"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_docs_{name}", ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load("build_site")
peers = _load("peer_conventions")


def test_landing_page_takes_the_readme_set_up_commands():
    readme = ("# x\n\n## Set up\n\nFirst:\n\n```bash\npip install .\n```\n\nthen\n\n"
              "```bash\nbash scripts/test.sh\n```\n\n## Next\n\n```bash\nnot this\n```\n")
    out = build.setup_commands(readme)
    assert out == "```bash\npip install .\n```\n\n```bash\nbash scripts/test.sh\n```\n"
    assert "bash" in build.setup_commands()  # the repository's README has them


def test_a_readme_without_set_up_commands_fails_the_build():
    with pytest.raises(build.BuildError, match="no ```bash block under a 'Set up' heading"):
        build.setup_commands("# x\n\n## Usage\n\n```bash\nfoo\n```\n")


def test_an_undocumented_public_name_fails_the_build(monkeypatch):
    import fisherlab._apidoc as apidoc

    monkeypatch.setattr(apidoc, "undocumented", lambda: ["fl.kfac.nameless"])
    with pytest.raises(build.BuildError, match=r"undocumented public names .*fl\.kfac\.nameless"):
        build.check_public_names()


def test_api_pages_document_every_public_name_once(tmp_path):
    namespaces = build.check_public_names()
    build.api_pages(tmp_path, namespaces)
    pages = {p.stem: p.read_text() for p in (tmp_path / "api").glob("*.md")}
    for shown, module_name, _, names in namespaces:
        page = pages["fl" if shown == "fl" else shown[3:]]
        for name in names:
            assert f"{module_name}.{name}\n" in page, f"{shown}.{name} missing from its page"
    # fl.Categorical is fl.likelihoods.Categorical: shown on both pages, indexed on one
    assert ".. autoclass:: fisherlab.Categorical\n" in pages["fl"]
    entry = pages["fl"].split(".. autoclass:: fisherlab.Categorical\n", 1)[1].split("```", 1)[0]
    assert ":no-index:" in entry
    entry = pages["likelihoods"].split("fisherlab.likelihoods.Categorical\n", 1)[1].split("```", 1)[0]
    assert ":no-index:" not in entry


def test_peer_table_covers_the_six_libraries_with_evidence():
    names = [p.library.split(" (")[0] for p in peers.PEERS]
    assert names == ["curvlinops", "BackPACK", "kfac-jax", "ASDL", "nngeometry", "laplace-torch"]
    for p in peers.PEERS:
        assert all(field.strip() for field in p), p.library
        assert p.evidence.startswith(("measured", "read from the source")), p.evidence
    text = peers.markdown()
    assert text.count("### ") == 6
    assert text.count("- **evidence:** ") == 6


def test_family_titles_drop_citations_of_private_notes(monkeypatch):
    fake = type(sys)("fisherlab._theorems.fake_family")
    fake.__doc__ = "Damping and ``preconditioning`` (seed 004: a lecture).\n\nMore."
    monkeypatch.setitem(sys.modules, "fisherlab._theorems.fake_family", fake)
    assert build._family_title("fake_family") == "Damping and `preconditioning`"
    assert build._family_title("no_such_family") == "no such family"


@pytest.mark.skipif(shutil.which("node") is None or not (KATEX / "package.json").exists(),
                    reason="needs node and KaTeX (installed into build/docs by scripts/docs.sh)")
def test_katex_renders_at_build_time_and_reports_bad_tex():
    pytest.importorskip("sphinx")
    sys.path.insert(0, str(ROOT / "docs" / "sphinxext"))
    try:
        from katex_ssr import _Renderer
    finally:
        sys.path.remove(str(ROOT / "docs" / "sphinxext"))
    r = _Renderer("node", str(KATEX))
    try:
        good = r.render(r"\frac{a}{b} = F^{-1}\nabla\ell", display=True)
        assert 'class="katex-display"' in good["html"] and "<math" in good["html"]
        bad = r.render(r"\frac{a}{b", display=False)
        assert bad["error"].startswith("KaTeX parse error") and "expected '}'" in bad["error"]
    finally:
        r.close()


@pytest.mark.skipif(shutil.which("node") is None or not (KATEX / "package.json").exists(),
                    reason="needs node and KaTeX (installed into build/docs by scripts/docs.sh)")
def test_sphinx_build_fails_on_bad_math_and_broken_links(tmp_path):
    """The strict build: a formula KaTeX cannot parse and a link to a missing page are errors."""
    for module in ("sphinx", "myst_parser", "furo"):
        pytest.importorskip(module)
    import subprocess

    src = tmp_path / "src"
    src.mkdir()
    (src / "index.md").write_text("# Page\n\nGood $F = J^\\top \\Lambda J$.\n\n$$\n\\frac{a}{b\n$$\n\n"
                                  "A [link](missing.md).\n")
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q", "-c",
           str(ROOT / "docs"), "-D", f"katex_dir={KATEX}", str(src), str(tmp_path / "out")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode != 0
    assert "KaTeX cannot render" in proc.stderr and "missing.md" in proc.stderr, proc.stderr
    (src / "index.md").write_text("# Page\n\nGood $F = J^\\top \\Lambda J$.\n")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    html = (tmp_path / "out" / "index.html").read_text()
    assert 'class="katex"' in html and "$F = J" not in html


def test_every_example_runs_in_the_build(tmp_path):
    commands = [" ".join(cmd) for cmd, _ in build.slow_tasks(tmp_path).values()]
    for path in sorted((ROOT / "examples").glob("*.py")):
        if path.name in ("mylib.py", "conftest.py"):  # imported by the example tests
            continue
        assert any(f"examples/{path.name}" in c for c in commands), f"{path.name} never runs"
    assert any("fisherlab.cli docs" in c for c in commands)  # every derivation is verified
