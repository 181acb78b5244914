"""Sphinx configuration of the fisherlab documentation site.

Build it with ``bash scripts/docs.sh [OUT_DIR]``: ``docs/build_site.py`` assembles the sources
(hand-written pages from ``docs/site/``, the derivation pages written by ``fisherlab docs``, the
Conventions page, the API reference pages, the examples' output and the figures) in a staging
folder and runs ``sphinx-build -W`` with this file as configuration (``-c docs``).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # document the checkout, not an installed copy
sys.path.insert(0, str(Path(__file__).resolve().parent / "sphinxext"))

project = "fisherlab"
author = "the fisherlab authors"
copyright = "the fisherlab authors"  # noqa: A001 - Sphinx's option name

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "katex_ssr",
]

# Markdown (MyST, CommonMark): the derivation pages use $...$ and $$...$$ math.
source_suffix = {".md": "markdown"}
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# Math: rendered to HTML at build time by KaTeX (docs/sphinxext/katex_ssr.py); katex_dir is set
# by docs/build_site.py (-D katex_dir=...).
html_math_renderer = "katex_ssr"

# API reference from the docstrings (Google style sections, reST markup).
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_member_order = "bysource"
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # an Attributes: section documents fields once (autodoc lists them too)


html_theme = "furo"
html_title = "fisherlab"
html_copy_source = False
html_show_sourcelink = False
html_last_updated_fmt = None
html_static_path = []
exclude_patterns = ["_generated/**", "_logs/**",  # included into pages, not pages
                    "dev/**"]  # development notes, linked from the README, not site pages
# A broken cross-reference is an error: the build runs with -W (warnings are errors).
nitpicky = False
