"""The documentation site in a real browser: math rendered, figures shown, nothing fetched from outside.

Builds the site with ``bash scripts/docs.sh`` (or uses the one in ``FISHERLAB_DOCS_SITE``), opens
the landing page, the figures and example pages and every derivation page from ``file://`` in
headless Chromium, and checks on each page that

* the math was rendered: KaTeX elements exist, no KaTeX/MathJax error node, no raw TeX (``$$``,
  ``$...$``, ``\\(``) left in the text, KaTeX's math font loaded;
* every image loaded;
* no request left the machine: every URL the page requested is ``file:`` or ``data:`` (the
  requests are recorded through the DevTools protocol, and the browser's proxy is unreachable);

and saves a screenshot of each page to ``FISHERLAB_DOCS_SCREENSHOTS`` (default
``build/docs/screenshots``). A first test shows that these checks fail on a page that breaks them.

Marked ``docs`` (deselect with ``-m "not docs"``); skipped without the docs extra, Node.js and npm
(for the build) or Chromium (Debian: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from _chromium import Chromium, external, find_chromium

pytestmark = pytest.mark.docs
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("FISHERLAB_DOCS_SCREENSHOTS", ROOT / "build" / "docs" / "screenshots"))
DOCS_EXTRA = ("sphinx", "myst_parser", "furo", "matplotlib")


def _missing_for_build() -> list[str]:
    missing = [m for m in DOCS_EXTRA if importlib.util.find_spec(m) is None]
    return missing + [tool for tool in ("node", "npm") if shutil.which(tool) is None]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    executable = find_chromium()
    if executable is None:
        pytest.skip("Chromium not installed (Debian: apt-get install -y chromium)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    b = Chromium(executable, profile, profile.parent / "chromium.log")
    yield b
    b.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    given = os.environ.get("FISHERLAB_DOCS_SITE")
    if given:
        path = Path(given).resolve()
        assert (path / "index.html").exists(), f"FISHERLAB_DOCS_SITE={given} holds no index.html"
        return path
    missing = _missing_for_build()
    if missing:
        pytest.skip("the docs build needs " + ", ".join(missing)
                    + " (python3 -m pip install '.[docs]'; Node.js and npm)")
    out = tmp_path_factory.mktemp("site")
    stage = tmp_path_factory.mktemp("stage")
    t0 = time.perf_counter()
    proc = subprocess.run(["bash", "scripts/docs.sh", str(out)], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "FISHERLAB_DOCS_NO_INSTALL": "1",
                                          "FISHERLAB_DOCS_STAGE": str(stage / "src")})
    assert proc.returncode == 0, f"docs build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    print(f"\ndocs build: {time.perf_counter() - t0:.0f} s")
    return out


def _problems(found: dict, *, math: bool) -> list[str]:
    """What is wrong with one page (empty when it passes)."""
    problems = []
    if external(found["requests"]):
        problems.append(f"requests leaving the machine: {external(found['requests'])}")
    if found["failed"]:
        problems.append(f"failed requests: {found['failed']}")
    if found["math_errors"]:
        problems.append(f"{found['math_errors']} math error nodes")
    if found["raw_tex"]:
        problems.append(f"raw TeX in the text: {found['raw_tex']}")
    broken = [src for src, ok in found["images"] if not ok]
    if broken:
        problems.append(f"images not loaded: {broken}")
    if math:
        if found["katex"] == 0:
            problems.append("no rendered math (.katex) on a page with math")
        if "KaTeX_Main" not in found["fonts_loaded"]:
            problems.append(f"KaTeX's font not loaded (loaded: {found['fonts_loaded']})")
        if not any(u.endswith("katex/katex.min.css") for u in found["requests"]):
            problems.append("the KaTeX stylesheet request was not seen (is the request log live?)")
    return problems


def test_the_checks_fail_on_a_page_that_breaks_them(browser, tmp_path):
    """Negative control: an external stylesheet, raw TeX and a KaTeX error node are all caught."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!doctype html><html><head><title>bad</title>"
        '<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/katex/dist/katex.min.css">'
        "</head><body><p>$$F = J^T \\Lambda J$$ and $x$</p>"
        '<span class="katex-error">\\badmacro</span></body></html>')
    found = browser.page(page.as_uri())
    assert external(found["requests"]) == ["https://cdn.jsdelivr.net/npm/katex/dist/katex.min.css"]
    assert found["failed"], "the external request must fail: the proxy is unreachable"
    assert found["raw_tex"][:2] == ["$$", "$$"] and "$x$" in found["raw_tex"]
    assert found["math_errors"] == 1
    problems = _problems(found, math=True)
    assert len(problems) >= 5, problems


def _check_pages(site: Path, browser, pages: list[tuple[str, bool]]) -> dict[str, list[str]]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    failures = {}
    for rel, math in pages:
        path = site / rel
        assert path.exists(), f"the site has no {rel}"
        shot = SCREENSHOTS / (rel.replace("/", "__").removesuffix(".html") + ".png")
        problems = _problems(browser.page(path.as_uri(), screenshot=shot), math=math)
        if problems:
            failures[rel] = problems
    return failures


def test_site_pages_in_chromium(site, browser):
    """The landing, figures, conventions, examples and API pages, and every derivation page."""
    import fisherlab as fl

    pages = [("index.html", False), ("figures.html", True), ("conventions.html", False),
             ("examples/oracle.html", False), ("examples/natural_gradient.html", False),
             ("examples/kfac.html", False), ("derivations.html", False),
             ("derivations/index.html", False), ("api/fl.html", True)]
    pages += [(f"derivations/{name}.html", True) for name in fl.proofs.names()]
    t0 = time.perf_counter()
    failures = _check_pages(site, browser, pages)
    print(f"\n{len(pages)} pages checked in {time.perf_counter() - t0:.0f} s; "
          f"screenshots in {SCREENSHOTS}")
    assert failures == {}
