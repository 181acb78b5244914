"""The ``fl.kfac`` namespace and the import structure of ``fisherlab/kfac``.

``dir(fl.kfac)`` is exactly ``__all__``; the package's modules import each other without a
cycle, and no function imports a fisherlab module locally (the way cycles get hidden).
"""

import ast
from pathlib import Path

import fisherlab as fl

PACKAGE = Path(fl.__file__).resolve().parent / "kfac"


def _modules():
    return {p.stem: ast.parse(p.read_text()) for p in sorted(PACKAGE.glob("*.py"))}


def test_namespace_is_exactly_all():
    assert dir(fl.kfac) == sorted(fl.kfac.__all__)
    assert set(fl.kfac.__all__) == {"EKFACFactors", "KFACFactors", "ekfac", "ema", "factors",
                                    "matrix", "permutation", "solve"}


def test_no_function_local_imports_of_fisherlab():
    local = []
    for name, tree in _modules().items():
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fisherlab"):
                    local.append(f"{name}.{fn.name}: from {node.module}")
                if isinstance(node, ast.Import) and any(a.name.startswith("fisherlab")
                                                        for a in node.names):
                    local.append(f"{name}.{fn.name}: import")
    assert local == []


def test_the_modules_of_the_package_import_each_other_without_a_cycle():
    graph = {}
    for name, tree in _modules().items():
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fisherlab.kfac."):
                deps.add(node.module.rsplit(".", 1)[1])
        graph[name] = deps
    assert graph["__init__"] - {"_types"}, "the package re-exports from its modules"
    state = {}

    def visit(node, path):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", f"import cycle: {' -> '.join(path + [node])}"
        state[node] = "open"
        for dep in sorted(graph[node]):
            visit(dep, path + [node])
        state[node] = "done"

    for node in sorted(graph):
        visit(node, [])
