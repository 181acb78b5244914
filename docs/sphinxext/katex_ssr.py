"""Sphinx extension: render math with KaTeX at build time (server-side), no CDN, no page script.

Every ``math`` / ``math_block`` node (MyST ``$...$`` / ``$$...$$``, reST ``:math:`` and
``.. math::``) is rendered to HTML by one long-lived ``node`` process running KaTeX's
``renderToString`` (``katex_render.js``). A formula KaTeX cannot parse is a build warning naming
the page and the formula -- an error under ``sphinx-build -W`` -- instead of a red error box in a
reader's browser. The pages then need only KaTeX's stylesheet and fonts, copied to
``_static/katex/``: the site shows its math from ``file://`` or a local server without network.

Configuration (``conf.py``): ``katex_dir`` -- the folder of the ``katex`` npm package (holding
``package.json`` and ``dist/``); ``katex_node`` -- the node executable (default ``node``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.errors import ConfigError
from sphinx.util import logging

logger = logging.getLogger(__name__)
_SCRIPT = Path(__file__).with_name("katex_render.js")


class _Renderer:
    """One node process per Python process (parallel builds fork: each child starts its own)."""

    def __init__(self, node: str, katex_dir: str):
        self.node, self.katex_dir = node, katex_dir
        self.proc = None
        self.pid = None
        self.lock = threading.Lock()
        self.cache: dict[tuple[str, bool], dict] = {}

    def _start(self):
        self.proc = subprocess.Popen(
            [self.node, str(_SCRIPT), self.katex_dir], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, encoding="utf-8", bufsize=1)
        self.pid = os.getpid()

    def render(self, tex: str, display: bool) -> dict:
        key = (tex, display)
        if key in self.cache:
            return self.cache[key]
        with self.lock:
            if self.proc is None or self.pid != os.getpid() or self.proc.poll() is not None:
                self._start()
            self.proc.stdin.write(json.dumps({"tex": tex, "display": display}) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the KaTeX node process stopped without an answer")
        reply = json.loads(line)
        self.cache[key] = reply
        return reply

    def close(self):
        if self.proc is not None and self.pid == os.getpid():
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
            self.proc = None


_RENDERER: _Renderer | None = None


def _render(translator, node, tex: str, display: bool) -> str:
    reply = _RENDERER.render(tex, display)
    if "error" in reply:
        logger.warning("KaTeX cannot render %r: %s", tex if len(tex) < 300 else tex[:300] + "...",
                       reply["error"], location=node, type="katex", subtype="render")
        return f'<span class="katex-source-error">{translator.encode(tex)}</span>'
    return reply["html"]


def visit_math(translator, node):
    translator.body.append(_render(translator, node, node.astext(), display=False))
    raise nodes.SkipNode


def visit_math_block(translator, node):
    tex = node.astext()
    parts = [tex] if node.get("nowrap") else [p for p in tex.split("\n\n") if p.strip()]
    anchor = f' id="{node["ids"][0]}"' if node.get("ids") else ""
    translator.body.append(f'<div class="math-display"{anchor}>')
    if node.get("number"):
        translator.body.append(f'<span class="eqno">({node["number"]})</span>')
    for part in parts:
        translator.body.append(_render(translator, node, part, display=True))
    translator.body.append("</div>\n")
    raise nodes.SkipNode


def _builder_inited(app: Sphinx):
    global _RENDERER
    katex_dir = app.config.katex_dir
    if not katex_dir or not (Path(katex_dir) / "dist" / "katex.min.css").exists():
        raise ConfigError(f"katex_dir = {katex_dir!r} does not hold the katex npm package "
                          "(dist/katex.min.css); scripts/docs.sh installs it")
    if shutil.which(app.config.katex_node) is None:
        raise ConfigError(f"katex_node = {app.config.katex_node!r} is not an executable on PATH "
                          "(KaTeX renders the math at build time with Node.js)")
    _RENDERER = _Renderer(app.config.katex_node, str(Path(katex_dir).resolve()))
    app.add_css_file("katex/katex.min.css")
    app.add_css_file("katex-layout.css")


def _build_finished(app: Sphinx, exception):
    if _RENDERER is not None:
        _RENDERER.close()
    if exception is not None or app.builder.format != "html":
        return
    dist = Path(app.config.katex_dir) / "dist"
    target = Path(app.outdir) / "_static" / "katex"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(dist / "katex.min.css", target / "katex.min.css")
    shutil.copytree(dist / "fonts", target / "fonts", dirs_exist_ok=True)
    (Path(app.outdir) / "_static" / "katex-layout.css").write_text(
        ".math-display { overflow-x: auto; overflow-y: hidden; margin: 0.8em 0; }\n"
        ".math-display .eqno { float: right; }\n"
        ".katex-source-error { color: #b00; font-family: monospace; }\n")


def setup(app: Sphinx):
    app.add_config_value("katex_dir", "", "env")
    app.add_config_value("katex_node", "node", "env")
    app.add_html_math_renderer("katex_ssr", (visit_math, None), (visit_math_block, None))
    app.connect("builder-inited", _builder_inited)
    app.connect("build-finished", _build_finished)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
