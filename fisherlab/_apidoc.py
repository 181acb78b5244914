"""Generate the API reference (``docs/api.md``) from the public names and their docstrings.

Every name in a public namespace's ``__all__`` appears with its signature and the first
paragraph of its docstring; a public name without a docstring is an error (the docs build
fails, as in optax). ``fisherlab api-docs docs/api.md`` writes the page; a test checks
that the committed page is current. The optional PyTorch bridge is read from its source
(``ast``) so the page does not depend on whether torch is installed.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

__all__ = ["NAMESPACES", "api_markdown", "undocumented"]

#: (namespace shown to users, module, how names are listed)
NAMESPACES = (
    ("fl", "fisherlab"),
    ("fl.likelihoods", "fisherlab.likelihoods"),
    ("fl.nn", "fisherlab.nn"),
    ("fl.kfac", "fisherlab.kfac"),
    ("fl.updates", "fisherlab.updates"),
    ("fl.optax", "fisherlab.optax"),
    ("fl.symbolic", "fisherlab.symbolic"),
    ("fl.proofs", "fisherlab.proofs"),
    ("fl.testing", "fisherlab.testing"),
    ("fl.testing.strategies", "fisherlab.testing.strategies"),
    ("fl.testing.torch", "fisherlab.testing.torch"),
    ("fl.testing.flax", "fisherlab.testing.flax"),
    ("fl.testing.equinox", "fisherlab.testing.equinox"),
    ("fl.testing.references.naive", "fisherlab.testing.references.naive"),
    ("fl.testing.references.kfac", "fisherlab.testing.references.kfac"),
    ("fl.testing.references.symbolic", "fisherlab.testing.references.symbolic"),
)
_SOURCE_ONLY = {"fisherlab.testing.torch", "fisherlab.testing.flax", "fisherlab.testing.equinox"}


def _first_paragraph(doc: str | None) -> str:
    if not doc:
        return ""
    return inspect.cleandoc(doc).split("\n\n")[0].strip()


def _signature(obj) -> str:
    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""
    return re.sub(r" at 0x[0-9a-f]+", "", sig)


def _entries_from_module(module_name: str):
    module = importlib.import_module(module_name)
    names = list(getattr(module, "__all__", ()))
    if module_name == "fisherlab":
        names = sorted(module._LAZY)  # submodules get sections of their own
    out = []
    for name in names:
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            continue
        if not (inspect.isclass(obj) or callable(obj)):
            out.append((name, "", f"constant: `{obj!r}`"[:200]))
            continue
        out.append((name, _signature(obj), _first_paragraph(inspect.getdoc(obj))))
    return _first_paragraph(module.__doc__), out


def _source_docs(module_name: str):
    """``(module docstring, __all__, {name: (signature, doc)}, {name: source module})`` read
    from the module's source with ``ast`` (nothing imported)."""
    path = Path(importlib.util.find_spec("fisherlab").origin).parent.joinpath(
        *module_name.split(".")[1:]).with_suffix(".py")
    tree = ast.parse(path.read_text())
    names: list[str] = []
    docs: dict[str, tuple[str, str]] = {}
    imported: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fisherlab."):
            for alias in node.names:
                imported[alias.asname or alias.name] = node.module
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            names = list(ast.literal_eval(node.value))
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id != "__all__":
                    docs[t.id] = ("", f"constant: `{ast.unparse(node.value)}`"[:200])
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            sig = ""
            if isinstance(node, ast.FunctionDef):
                sig = "(" + ast.unparse(node.args) + ")"
            docs[node.name] = (sig, _first_paragraph(ast.get_docstring(node)))
    return _first_paragraph(ast.get_docstring(tree)), names, docs, imported


def _entries_from_source(module_name: str):
    summary, names, docs, imported = _source_docs(module_name)
    entries = []
    for n in names:
        if n not in docs and n in imported:  # re-exported from another fisherlab module
            docs[n] = _source_docs(imported[n])[2].get(n, ("", ""))
        entries.append((n, *docs.get(n, ("", ""))))
    return summary, entries


def _collect():
    for shown, module_name in NAMESPACES:
        if module_name in _SOURCE_ONLY:
            yield shown, module_name, *_entries_from_source(module_name)
        else:
            yield shown, module_name, *_entries_from_module(module_name)


def undocumented() -> list[str]:
    """Public names whose docstring is missing (must be empty for a release)."""
    return [f"{shown}.{name}" for shown, _, _, entries in _collect()
            for name, _, doc in entries if not doc]


def api_markdown() -> str:
    out = ["# API reference", "",
           "Generated by `fisherlab api-docs docs/api.md` from the public names (`__all__`) and "
           "their docstrings; do not edit by hand. Conventions: [CONVENTIONS.md](CONVENTIONS.md); "
           "derivations: [derivations/index.md](derivations/index.md).", ""]
    for shown, module_name, mod_doc, entries in _collect():
        out += [f"## `{shown}`", ""]
        if mod_doc:
            out += [mod_doc, ""]
        for name, sig, doc in entries:
            out += [f"### `{shown}.{name}{sig}`", "", doc or "**(undocumented)**", ""]
    return "\n".join(out)


def main(path: str) -> int:
    missing = undocumented()
    Path(path).write_text(api_markdown())
    print(f"wrote {path}")
    if missing:
        print("undocumented public names: " + ", ".join(missing))
        return 1
    return 0
