"""The mutation harness itself (scripts/mutation): generation, mapping, allow-list, verdicts.

Generation is checked on fisherlab's own modules (pure syntax-tree work, no JAX); the verdicts
on a toy project of two functions and their tests, run in subprocesses, so a killable mutant,
an equivalent one and a crashing one each get the verdict they must.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.mutation import generate, run  # noqa: E402

CONFIG = ROOT / "scripts" / "mutation" / "config.toml"
ALLOWLIST = ROOT / "scripts" / "mutation" / "allowlist.toml"
SAMPLE_MODULES = ["fisherlab/updates/_damping.py", "fisherlab/likelihoods/_categorical.py",
                  "fisherlab/_core/validation.py"]


def _mutants(module):
    return generate.candidates((ROOT / module).read_text(), module)


# ----------------------------------------------------------------------------- generation


@pytest.mark.parametrize("module", SAMPLE_MODULES)
def test_sample_is_deterministic_for_a_seed(module):
    a = [m.ident for m in generate.sample(_mutants(module), 10, seed=5, module=module)]
    b = [m.ident for m in generate.sample(_mutants(module), 10, seed=5, module=module)]
    c = [m.ident for m in generate.sample(_mutants(module), 10, seed=6, module=module)]
    assert a == b and len(a) == 10
    assert a != c


def test_sample_does_not_depend_on_hash_randomisation():
    code = ("import sys; sys.path.insert(0, {root!r}); from scripts.mutation import generate; "
            "m = {mod!r}; src = open({path!r}).read(); "
            "print([x.ident for x in generate.sample(generate.candidates(src, m), 8, seed=3, "
            "module=m)])")
    mod = SAMPLE_MODULES[0]
    outs = set()
    for hashseed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        outs.add(subprocess.run(
            [sys.executable, "-c", code.format(root=str(ROOT), mod=mod, path=str(ROOT / mod))],
            env=env, capture_output=True, text=True, check=True).stdout)
    assert len(outs) == 1


def test_sample_spreads_over_operators():
    module = "fisherlab/updates/_damping.py"
    ms = _mutants(module)
    kinds = {m.operator for m in ms}
    picked = generate.sample(ms, len(kinds), seed=1, module=module)
    assert {m.operator for m in picked} == kinds


@pytest.mark.parametrize("module", SAMPLE_MODULES)
def test_every_mutant_compiles_and_changes_one_place(module):
    original = (ROOT / module).read_text()
    tree = ast.dump(ast.parse(original))
    for m in _mutants(module):
        assert m.operator in generate.OPERATORS
        assert ast.dump(ast.parse(m.source)) != tree, m.ident
        diff = m.diff(original)
        assert diff.count("\n@@") + diff.startswith("@@") == 1, diff
        assert m.before and m.after and m.before != m.after


_TOY = '''
"""Docstring with a - b and 0.5 that is never mutated."""
import math

__all__ = ["f"]


def f(x: float, y, m):
    """Another docstring: x.T, mean."""
    if x < 0:
        raise ValueError(f"x must be >= 0, got {x - 1}")
    x = abs(x)
    z = 0.5 * (x - y) / 2.0
    w = -z + math.sqrt(x)
    v = m.T @ m
    s = m.mean() + max(x, y)
    ok = x > 1 and not y
    return (z, w, v, s, ok, y if ok else x)
'''


def _afters(src):
    return {m.after for m in generate.candidates(src, "toy.py")}


def test_each_operator_produces_its_mutant():
    afters = _afters(_TOY)
    expected = {
        "if x <= 0:", "if x >= 0:", "if False:",                     # compare_flip, skip_branch
        "z = 0.5 * (x + y) / 2.0", "z = 0.5 * (x - y) * 2.0",        # sign_flip, arith_op
        "z = 1.0 * (x - y) / 2.0", "z = 0.5 * (x - y) / 4.0",        # constant
        "z = (0.5 * (x - y))", "z = (x - y) / 2.0", "z = 0.5 / 2.0",   # drop_term (a*b -> b: z = (x - y) / 2.0)
        "w = z + math.sqrt(x)", "w = -z - math.sqrt(x)",             # sign_flip
        "v = m @ m", "v = m @ m.T",                                  # drop_transpose, swap_args
        "s = m.sum() + max(x, y)", "s = m.mean() + min(x, y)",       # reduction_swap
        "ok = x > 1 or not y", "ok = x > 1 and y", "ok = (not y)",   # bool_op
        "return (w, z, v, s, ok, y if ok else x)",                   # swap_args (elements)
        "return (z, w, v, s, ok, x)",                                # skip_branch (x if c else y)
        "pass",                                                      # drop_statement
    }
    missing = expected - afters
    assert not missing, missing


def test_docstrings_messages_annotations_and_all_are_never_mutated():
    src = _TOY
    for m in generate.candidates(src, "toy.py"):
        mutated = ast.parse(m.source)
        original = ast.parse(src)
        assert ast.get_docstring(mutated) == ast.get_docstring(original)
        fn_m = next(n for n in mutated.body if isinstance(n, ast.FunctionDef))
        fn_o = next(n for n in original.body if isinstance(n, ast.FunctionDef))
        assert ast.get_docstring(fn_m) == ast.get_docstring(fn_o)
        assert "__all__ = ['f']" in ast.unparse(mutated)
        assert "x: float" in ast.unparse(fn_m.args)
        raise_m = [ast.unparse(n) for n in ast.walk(mutated) if isinstance(n, ast.JoinedStr)]
        raise_o = [ast.unparse(n) for n in ast.walk(original) if isinstance(n, ast.JoinedStr)]
        assert raise_m == raise_o


def test_pragma_no_mutate_excludes_a_line():
    src = "def f(a, b):\n    return a - b  # pragma: no mutate\n"
    assert generate.candidates(src, "toy.py") == []


def test_commutative_calls_are_not_swapped():
    afters = _afters("def f(a, b):\n    return max(a, b) + isinstance(a, (int, float))\n")
    assert "return max(b, a) + isinstance(a, (int, float))" not in afters
    assert "return max(a, b) + isinstance(a, (float, int))" not in afters


# ----------------------------------------------------------------------------- mapping


def test_config_maps_existing_modules_to_existing_tests():
    cfg = run.load_config(CONFIG)
    assert cfg["modules"]
    for module, tests in cfg["modules"].items():
        assert (ROOT / module).is_file(), module
        expanded = run.expand_tests(ROOT, tests)
        assert expanded, module
        for t in expanded:
            assert (ROOT / t).exists(), (module, t)


def test_every_stable_module_is_mapped():
    cfg = run.load_config(CONFIG)
    stable = [p for pattern in ("fisherlab/likelihoods/_[!_]*.py", "fisherlab/updates/_[!_]*.py",
                                "fisherlab/_core/[!_]*.py")
              for p in sorted(ROOT.glob(pattern))]
    stable.append(ROOT / "fisherlab/testing/strategies.py")
    missing = [str(p.relative_to(ROOT)) for p in stable
               if str(p.relative_to(ROOT)) not in cfg["modules"]]
    assert not missing


def test_select_modules_by_file_and_folder():
    cfg = {"modules": {"pkg/a.py": [], "pkg/sub/b.py": [], "other.py": []}}
    assert run.select_modules(cfg, []) == ["pkg/a.py", "pkg/sub/b.py", "other.py"]
    assert run.select_modules(cfg, ["pkg/"]) == ["pkg/a.py", "pkg/sub/b.py"]
    assert run.select_modules(cfg, ["other.py"]) == ["other.py"]
    with pytest.raises(SystemExit, match="not a module or folder in the mapping"):
        run.select_modules(cfg, ["pk"])


def test_allowlist_entries_have_reasons_and_match_a_mutant():
    with open(ALLOWLIST, "rb") as fh:
        entries = tomllib.load(fh).get("equivalent", [])
    for e in entries:
        assert e["reason"].strip(), e
        pairs = {(m.before, m.after) for m in _mutants(e["module"])}
        assert (e["before"].strip(), e["after"].strip()) in pairs, e


def test_allowlist_without_reason_is_rejected(tmp_path):
    p = tmp_path / "allow.toml"
    p.write_text('[[equivalent]]\nmodule = "m.py"\nbefore = "a"\nafter = "b"\nreason = " "\n')
    with pytest.raises(ValueError, match="without a reason"):
        run.load_allowlist(p)


# ----------------------------------------------------------------------------- verdicts


_TOY_MODULE = '''
def scale(x, factor=2.0):
    return x * factor


def clip(x):
    if x < 0:
        return 0.0
    return x


def first(items):
    return items[0]
'''

_TOY_TESTS = '''
from toy.calc import clip, first, scale


def test_scale():
    assert scale(3.0) == 6.0


def test_clip():
    assert clip(-1.0) == 0.0
    assert clip(2.0) == 2.0
    assert clip(0.0) == 0.0


def test_first():
    assert first([7]) == 7
'''


@pytest.fixture
def toy(tmp_path):
    root = tmp_path / "toy_project"
    (root / "toy").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "toy" / "__init__.py").write_text("")
    (root / "toy" / "calc.py").write_text(_TOY_MODULE)
    (root / "tests" / "test_calc.py").write_text(_TOY_TESTS)
    return root


def _by_after(after):
    ms = [m for m in generate.candidates(_TOY_MODULE, "toy/calc.py") if m.after == after]
    assert len(ms) == 1, after
    return ms[0]


def test_verdicts_on_a_toy_project(toy, tmp_path, capsys):
    killable = _by_after("return x / factor")       # scale(3) = 1.5: an assertion fails
    equivalent = _by_after("if x <= 0:")            # clip(0) = 0.0 either way
    crashing = _by_after("return items[1]")        # IndexError: a crash, not an assertion
    work = tmp_path / "work"
    work.mkdir()
    tree = work / "tree"
    tree.mkdir()
    run.copy_tree(toy, tree)
    runner = run.Runner(tree, work, "subprocess", {}, [])
    allow = {(equivalent.module, equivalent.before, equivalent.after): "0.0 == 0 for clip(0)"}
    outs = run.evaluate(runner, tree, "toy/calc.py", _TOY_MODULE,
                        [killable, equivalent, crashing], ["tests"], {}, allow, timeout=120)
    status = {o.mutant.after: o.status for o in outs}
    assert status == {"return x / factor": "killed", "if x <= 0:": "equivalent",
                      "return items[1]": "crash"}
    assert outs[1].reason == "0.0 == 0 for clip(0)"
    # without the allow-list the equivalent mutant is reported as surviving
    outs = run.evaluate(runner, tree, "toy/calc.py", _TOY_MODULE, [equivalent], ["tests"], {},
                        {}, timeout=120)
    assert outs[0].status == "survived"
    n, killed, survived, crash, equiv, timeouts, pct = run.score(outs)
    assert (n, killed, survived, pct) == (1, 0, 1, 0.0)
    # the copy was restored after each mutant, and the project itself never touched
    assert (tree / "toy" / "calc.py").read_text() == _TOY_MODULE
    assert (toy / "toy" / "calc.py").read_text() == _TOY_MODULE


def test_main_runs_in_a_copy_and_reports(toy, tmp_path, capsys):
    cfg = tmp_path / "config.toml"
    cfg.write_text('[run]\nseed = 1\nper_module = 2\nisolation = "subprocess"\n'
                   'timeout_floor = 120\n[modules]\n"toy/calc.py" = ["tests"]\n')
    report = tmp_path / "report.json"
    code = run.main(["--root", str(toy), "--config", str(cfg), "--allowlist",
                     str(tmp_path / "none.toml"), "--json", str(report)])
    out = capsys.readouterr().out
    assert code == 0
    assert "baseline tests: ok" in out and "toy/calc.py" in out
    import json

    data = json.loads(report.read_text())
    mutants = data["modules"]["toy/calc.py"]["mutants"]
    assert len(mutants) == 2 and data["seed"] == 1
    assert all(m["status"] in ("killed", "crash", "survived") for m in mutants)
    assert (toy / "toy" / "calc.py").read_text() == _TOY_MODULE


def test_a_timeout_is_not_a_kill(toy, tmp_path):
    slow = _TOY_MODULE.replace("return x * factor", "return x * factor  # pragma: no mutate")
    (toy / "toy" / "calc.py").write_text(slow)
    m = next(m for m in generate.candidates(slow, "toy/calc.py") if m.after == "if False:")
    # a mutant that loops forever: written by hand through the same Mutant record
    looping = generate.Mutant("toy/calc.py", "skip_branch", m.line, "hand-made", m.source.replace(
        "def clip(x):\n", "def clip(x):\n    while True:\n        pass\n"), "x", "y")
    work = tmp_path / "work"
    (work / "tree").mkdir(parents=True)
    run.copy_tree(toy, work / "tree")
    runner = run.Runner(work / "tree", work, "subprocess", {}, [])
    outs = run.evaluate(runner, work / "tree", "toy/calc.py", slow, [looping], ["tests"], {}, {},
                        timeout=5)
    assert outs[0].status == "timeout"
    assert run.score(outs)[1] == 0


def test_classify_assertions_and_crashes():
    from scripts.mutation.plugin import classify

    assert classify(AssertionError("x")) == "assertion"
    assert classify(pytest.fail.Exception("DID NOT RAISE")) == "assertion"
    assert classify(TypeError("x")) == "crash"
    assert classify(ExceptionGroup("g", [TypeError("a"), AssertionError("b")])) == "assertion"
    assert classify(ExceptionGroup("g", [NameError("a")])) == "crash"
