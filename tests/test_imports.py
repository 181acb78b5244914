"""Import discipline: no import cycles, a numeric user never loads SymPy, namespaces show `__all__`.

The import graph is built from the source (``ast``), counting module-level *and*
function-local imports (and ``importlib.import_module`` of a literal name), so a cycle cannot
hide behind an import inside a function. Importing ``a.b.c`` also runs the packages ``a.b`` and
``a``, so those count as edges too, except the importer's own enclosing packages (already being
imported when it runs).
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fisherlab"

# Cycles that live entirely in modules whose owners are reworking them; each entry is one
# strongly connected component of the import graph. THIS LIST MUST BE EMPTY: delete an entry as
# soon as its cycle is gone (a stale entry is reported by the test below).
_KNOWN_CYCLES_OWNED_ELSEWHERE: list[set[str]] = []

# Function-local imports of fisherlab modules allowed in the modules this rule covers: the
# lazy namespaces and the one place that loads the SymPy definitions on demand.
_COVERED = ("fisherlab._core", "fisherlab.curvature", "fisherlab.updates", "fisherlab.likelihoods",
            "fisherlab.nn", "fisherlab.optax", "fisherlab.proofs", "fisherlab._apidoc",
            "fisherlab.testing", "fisherlab.symbolic", "fisherlab.kfac")
_ALLOWED_LOCAL_IMPORTS = {
    ("fisherlab.likelihoods", "__getattr__"),  # SymbolicLikelihood loads SymPy: on demand
    ("fisherlab.likelihoods._base", "symbolic_definitions"),  # likelihood.symbolic()
    ("fisherlab.symbolic", "__getattr__"),  # fl.symbolic.curvature: the exact reference, lazily
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(tree: ast.AST, module: str, is_package: bool):
    """``(imported name, enclosing function or None)`` for every import in ``tree``."""
    package = module if is_package else module.rpartition(".")[0]

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) \
                else function
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, function
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:
                    yield f"{base}.{alias.name}", function  # a submodule, or a name in base
                    yield base, function
            elif (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                  and child.func.attr == "import_module" and child.args
                  and isinstance(child.args[0], ast.Constant)
                  and isinstance(child.args[0].value, str)):
                yield child.args[0].value, function
            yield from visit(child, inner)

    yield from visit(tree, None)


def _ancestors(name: str):
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _graph():
    modules = _modules()
    edges: dict[str, set[str]] = {m: set() for m in modules}
    local: set[tuple[str, str]] = set()
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        own = _ancestors(module) | {module}
        for name, function in _imports(tree, module, path.name == "__init__.py"):
            if name not in modules:
                continue
            if function is not None:
                local.add((module, function))
            for target in ({name} | _ancestors(name)) - own:
                if target in modules:
                    edges[module].add(target)
    return edges, local


def _cycles(edges):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def connect(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(edges):
        if v not in index:
            connect(v)
    return out


def test_graph_sees_function_local_imports():
    # The builder itself: a cycle hidden behind a function-local import is found.
    tree = ast.parse(textwrap.dedent("""
        import fisherlab.b
        def f():
            from fisherlab import c
            import importlib
            importlib.import_module("fisherlab.d")
    """))
    found = set(_imports(tree, "fisherlab.a", False))
    assert ("fisherlab.b", None) in found
    assert ("fisherlab.c", "f") in found and ("fisherlab.d", "f") in found
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]


def test_no_import_cycles():
    edges, _ = _graph()
    cycles = _cycles(edges)
    unexpected = [sorted(c) for c in cycles if c not in _KNOWN_CYCLES_OWNED_ELSEWHERE]
    assert not unexpected, f"import cycles: {unexpected}"


def test_known_cycles_are_still_cycles():
    # An entry whose cycle is gone must be deleted from the allow-list (which must end empty).
    edges, _ = _graph()
    cycles = _cycles(edges)
    stale = [sorted(c) for c in _KNOWN_CYCLES_OWNED_ELSEWHERE if c not in cycles]
    assert not stale, f"remove these entries from _KNOWN_CYCLES_OWNED_ELSEWHERE: {stale}"


def test_no_function_local_imports_of_fisherlab():
    _, local = _graph()
    covered = {(m, f) for m, f in local
               if any(m == c or m.startswith(c + ".") for c in _COVERED)}
    assert covered == _ALLOWED_LOCAL_IMPORTS, (
        f"function-local imports of fisherlab modules: {sorted(covered - _ALLOWED_LOCAL_IMPORTS)}; "
        f"no longer present: {sorted(_ALLOWED_LOCAL_IMPORTS - covered)}")


_NUMERIC_SCRIPT = r"""
import sys
import jax, jax.numpy as jnp
import fisherlab as fl

model = fl.nn.Sequential([fl.nn.Dense(3, 4), fl.nn.Tanh(), fl.nn.Dense(4, 2)])
params = model.init(jax.random.key(0))
x = jax.random.normal(jax.random.key(1), (5, 3)); y = jnp.array([0, 1, 1, 0, 1])
for lik in (fl.Gaussian(), fl.Bernoulli(), fl.Poisson(), fl.GaussianMeanVariance()):
    lik.output_fisher(jnp.zeros((1, 2)))
lik = fl.Categorical()
lik.nll(jnp.zeros((5, 2)), y)
fl.ggn(model, params, x, y, lik)
fl.hvp(model, params, x, y, lik)(jnp.ones(26))
fl.kfac.factors(model, params, x, y, lik)
fl.updates.natural_gradient(model, params, x, y, lik, lr=1.0, damping=1e-3)
print("numeric", "sympy" in sys.modules)
lik.symbolic(2)
print("symbolic", "sympy" in sys.modules)
"""


def test_numeric_use_never_imports_sympy():
    proc = subprocess.run([sys.executable, "-c", _NUMERIC_SCRIPT], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.split()
    assert lines[-4:-2] == ["numeric", "False"], proc.stdout
    # the control: the symbolic face does load SymPy, so the probe above can see it
    assert lines[-2:] == ["symbolic", "True"], proc.stdout


NAMESPACES = ["fisherlab", "fisherlab.curvature", "fisherlab.updates", "fisherlab.nn",
              "fisherlab.likelihoods", "fisherlab.likelihoods.symbolic", "fisherlab.kfac", "fisherlab.optax", "fisherlab.proofs",
              "fisherlab.testing.references"]


@pytest.mark.parametrize("name", NAMESPACES)
def test_namespace_shows_exactly_its_all(name):
    module = importlib.import_module(name)
    for public in module.__all__:
        getattr(module, public)  # every listed name resolves (this also loads lazy ones)
    assert dir(module) == sorted(module.__all__)


def test_test_file_names_are_unique():
    # pytest imports test files by their base name (no packages under tests/): two files with
    # one name in different folders stop the whole collection
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
