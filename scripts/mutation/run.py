"""Run a seeded sample of mutants of each module against the tests that mirror it.

``bash scripts/mutation.sh [MODULE|FOLDER ...] [--seed S] [--per-module N] ...``

1. The repository's files (``git ls-files``, tracked and untracked-not-ignored) are copied to a
   temporary folder; the work tree is never written to.
2. For every set of test paths in the mapping (``scripts/mutation/config.toml``) the tests run
   once on the unmutated copy (the *baseline*: all must pass; it gives each test's duration
   and the per-mutant timeout).
3. Each mutant is written into the copy, its module's tests run (in a process forked from this
   one after the heavy imports, or a fresh ``python -m pytest`` with ``--isolation
   subprocess``), and the original file is put back. The verdict comes from the pytest plugin
   (``scripts/mutation/plugin.py``): ``killed`` (a test failed on an assertion, or an expected
   exception was not raised), ``crash`` (tests failed only with other exceptions: a weak kill),
   ``timeout``, ``survived``, or ``equivalent`` (survived and listed in
   ``scripts/mutation/allowlist.toml`` with its reason).
4. A table per module, every surviving diff, the allow-listed equivalents and the wall time
   are printed; ``--json FILE`` writes everything.

Score = (killed + crash) / (mutants - equivalent); the crash column says how many kills were weak.
Timeouts count as not killed.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from scripts.mutation.generate import Mutant, candidates, sample

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


@dataclasses.dataclass
class Outcome:
    mutant: Mutant
    status: str  # killed | crash | timeout | survived | equivalent | error
    seconds: float
    detail: str = ""
    reason: str = ""  # the allow-list's reason for an equivalent mutant


# ----------------------------------------------------------------------------- configuration


def load_config(path: Path) -> dict:
    with open(path, "rb") as fh:
        cfg = tomllib.load(fh)
    cfg.setdefault("run", {})
    cfg.setdefault("modules", {})
    return cfg


def load_allowlist(path: Path) -> dict[tuple[str, str, str], str]:
    """``{(module, before, after): reason}`` from the allow-list file (missing file: empty)."""
    if not path.exists():
        return {}
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    out = {}
    for entry in data.get("equivalent", []):
        reason = entry.get("reason", "").strip()
        if not reason:
            raise ValueError(f"allow-list entry without a reason: {entry}")
        out[(entry["module"], entry["before"].strip(), entry["after"].strip())] = reason
    return out


def expand_tests(root: Path, patterns: list[str]) -> tuple[str, ...]:
    """Test paths with globs expanded (relative to ``root``), in a stable order."""
    out: list[str] = []
    for p in patterns:
        hits = sorted(str(h.relative_to(root)) for h in root.glob(p)) if any(
            c in p for c in "*?[") else [p]
        out.extend(h for h in hits if h not in out)
    return tuple(out)


def select_modules(cfg: dict, wanted: list[str]) -> list[str]:
    """The mapped modules named (a file) or lying under a named folder; all when none named."""
    mapped = list(cfg["modules"])
    if not wanted:
        return mapped
    out = []
    for w in wanted:
        w = w.rstrip("/")
        hits = [m for m in mapped if m == w or m.startswith(w + "/")]
        if not hits:
            raise SystemExit(f"mutation: {w!r} is not a module or folder in the mapping "
                             f"(scripts/mutation/config.toml)")
        out.extend(h for h in hits if h not in out)
    return out


# ----------------------------------------------------------------------------- the tree copy


def tree_files(root: Path) -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=root, capture_output=True, check=True).stdout
        return [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        return [str(p.relative_to(root)) for p in root.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts and ".git" not in p.parts]


def copy_tree(root: Path, dest: Path) -> None:
    for rel in tree_files(root):
        src = root / rel
        if not src.is_file():  # deleted but still in the index
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


# ----------------------------------------------------------------------------- one test run


class Runner:
    """Runs pytest in the tree copy, forked from this process or as a subprocess."""

    def __init__(self, tree: Path, workdir: Path, isolation: str, env: dict[str, str],
                 pytest_args: list[str]):
        self.tree, self.workdir, self.isolation = tree, workdir, isolation
        self.env, self.pytest_args = env, pytest_args
        self.count = 0

    def run(self, tests: list[str], *, stop: bool, order: dict | None, timeout: float | None):
        """Run ``tests``; returns ``(result dict or None, timed_out, seconds, log path)``."""
        self.count += 1
        result = self.workdir / f"result-{self.count}.json"
        log = self.workdir / f"log-{self.count}.txt"
        order_file = self.workdir / f"order-{self.count}.json"
        order_file.write_text(json.dumps(order or {}))
        env = dict(self.env)
        env.update({"FISHERLAB_MUTATION_RESULT": str(result),
                    "FISHERLAB_MUTATION_ORDER": str(order_file),
                    "FISHERLAB_MUTATION_STOP": "1" if stop else "0",
                    "PYTHONDONTWRITEBYTECODE": "1"})
        args = ["-p", "scripts.mutation.plugin", "-p", "no:cacheprovider", "-q",
                "--no-header", "-o", "addopts=", *self.pytest_args, *tests]
        t0 = time.monotonic()
        if self.isolation == "fork":
            pid = os.fork()
            if pid == 0:  # the child: never returns
                self._child(args, env, log)
            timed_out = self._wait(pid, timeout)
        else:
            full_env = {**os.environ, **env,
                        "PYTHONPATH": os.pathsep.join([str(self.tree), str(ROOT)])}
            with open(log, "w") as fh:
                proc = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=self.tree,
                                        env=full_env, stdout=fh, stderr=subprocess.STDOUT,
                                        start_new_session=True)
                try:
                    proc.wait(timeout=timeout)
                    timed_out = False
                except subprocess.TimeoutExpired:
                    _kill_group(proc.pid)
                    proc.wait()
                    timed_out = True
                except BaseException:
                    _kill_group(proc.pid)
                    raise
        seconds = time.monotonic() - t0
        data = None
        if result.exists():
            data = json.loads(result.read_text())
            result.unlink()
        return data, timed_out, seconds, log

    def _child(self, args, env, log):
        try:
            os.setpgid(0, 0)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.chdir(self.tree)
            sys.path.insert(0, str(self.tree))
            os.environ.update(env)
            sys.dont_write_bytecode = True
            import pytest

            code = int(pytest.main(args))
        except BaseException:  # noqa: BLE001 - the child reports through its exit code
            import traceback

            traceback.print_exc()
            code = 99
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    @staticmethod
    def _wait(pid: int, timeout: float | None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    return False
                if deadline is not None and time.monotonic() > deadline:
                    _kill_group(pid)
                    os.waitpid(pid, 0)
                    return True
                time.sleep(0.05)
        except BaseException:  # interrupted: the child (its own process group) goes too
            _kill_group(pid)
            raise


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _terminate(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


# ----------------------------------------------------------------------------- the verdict


def verdict(data, timed_out: bool) -> tuple[str, str]:
    if timed_out:
        return "timeout", "the tests ran past the per-mutant timeout"
    if data is None:
        return "error", "the test process wrote no result"
    fails = data["failures"]
    if any(f["kind"] == "assertion" for f in fails):
        f = next(f for f in fails if f["kind"] == "assertion")
        return "killed", f"{f['nodeid']}: {f['exception']}"
    if fails:
        f = fails[0]
        return "crash", f"{f['nodeid']}: {f['exception']}: {f['message'][:120]}"
    if data["exitstatus"] not in (0,):
        return "error", f"pytest exit status {data['exitstatus']} with no failing test"
    return "survived", ""


def keywords_for(m: Mutant) -> list[str]:
    """Names of the function (and class) the mutated line lies in, without leading ``_``."""
    import ast

    tree = ast.parse(m.source)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.lineno <= m.line <= (node.end_lineno or node.lineno):
                names.append(node.name.lstrip("_"))
    return [n for n in names if len(n) > 2]


# ----------------------------------------------------------------------------- one module


def evaluate(runner: Runner, tree: Path, mod: str, original: str, mutants: list[Mutant],
             tests, durations: dict, allow: dict, timeout: float | None) -> list[Outcome]:
    """Run each mutant of ``mod`` against ``tests`` in the copy ``tree``; the file is restored."""
    killers: list[str] = []
    outcomes = []
    target = tree / mod
    for m in mutants:
        target.write_text(m.source)
        try:
            order = {"first": killers, "keywords": keywords_for(m), "durations": durations}
            data, timed_out, secs, _ = runner.run(list(tests), stop=True, order=order,
                                                  timeout=timeout)
        finally:
            target.write_text(original)
        status, detail = verdict(data, timed_out)
        reason = allow.get((m.module, m.before, m.after), "")
        if reason:
            if status == "survived":
                status = "equivalent"
            else:
                detail += " [allow-listed as equivalent, but it was killed: fix the entry]"
        if status in ("killed", "crash") and data and data["failures"]:
            killer = data["failures"][0]["nodeid"]
            if killer in killers:
                killers.remove(killer)
            killers.insert(0, killer)
        outcomes.append(Outcome(m, status, secs, detail, reason))
        print(f"  {status:10s} {secs:6.1f} s  {m.ident}  {m.description}"
              + (f"  <- {detail}" if status in ("killed", "crash") else ""), flush=True)
    return outcomes


# ----------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="scripts/mutation.sh", description=__doc__.split("\n")[0])
    ap.add_argument("modules", nargs="*", help="modules or folders from the mapping (default: all)")
    ap.add_argument("--config", type=Path, default=HERE / "config.toml")
    ap.add_argument("--allowlist", type=Path, default=HERE / "allowlist.toml")
    ap.add_argument("--root", type=Path, default=ROOT, help="the repository to copy")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--per-module", type=int, default=None, dest="per_module")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds per mutant (default: factor x baseline + floor, config.toml)")
    ap.add_argument("--isolation", choices=("fork", "subprocess"), default=None)
    ap.add_argument("--list", action="store_true", help="print the sampled mutants and exit")
    ap.add_argument("--json", type=Path, default=None, help="write the full report here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary tree and logs")
    ap.add_argument("--fail-under", type=float, default=None, dest="fail_under",
                    help="exit 1 when a module's score is below this percentage")
    args = ap.parse_args(argv)

    cfg = load_config(args.config)
    run_cfg = cfg["run"]
    seed = args.seed if args.seed is not None else int(run_cfg.get("seed", 0))
    per_module = args.per_module if args.per_module is not None else int(
        run_cfg.get("per_module", 10))
    isolation = args.isolation or run_cfg.get("isolation", "fork")
    allow = load_allowlist(args.allowlist)
    modules = select_modules(cfg, args.modules)
    root = args.root.resolve()

    plan: dict[str, tuple[str, list[Mutant]]] = {}
    for mod in modules:
        original = (root / mod).read_text()
        plan[mod] = (original, sample(candidates(original, mod), per_module, seed=seed,
                                      module=mod))
    if args.list:
        for mod, (_, ms) in plan.items():
            print(f"== {mod} ({len(ms)} mutants, seed {seed})")
            for m in ms:
                print(f"  {m.ident}  {m.description}\n      - {m.before}\n      + {m.after}")
        return 0

    signal.signal(signal.SIGTERM, _terminate)
    t_start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="fisherlab-mutation-"))
    tree = work / "tree"
    tree.mkdir()
    copy_tree(root, tree)
    env = {str(k): str(v) for k, v in run_cfg.get("env", {}).items()}
    env.setdefault("FISHERLAB_JAX_CACHE", str(Path(tempfile.gettempdir())
                                              / "fisherlab-mutation-jax-cache"))
    if isolation == "fork":
        for name in run_cfg.get("preload", []):
            importlib.import_module(name)
        leaked = [m for m in sys.modules if m.split(".")[0] in ("fisherlab", "proofs", "tests")]
        if leaked:
            raise SystemExit(f"mutation: the harness imported {leaked[0]} before forking")
    runner = Runner(tree, work, isolation, env, list(run_cfg.get("pytest_args", [])))
    factor = float(run_cfg.get("timeout_factor", 2.0))
    floor = float(run_cfg.get("timeout_floor", 60.0))
    print(f"mutation: seed {seed}, {per_module} per module, {len(modules)} modules, "
          f"isolation {isolation}, tree {tree}", flush=True)

    baselines: dict[tuple[str, ...], dict] = {}
    outcomes: dict[str, list[Outcome]] = {}
    baseline_failed: dict[str, str] = {}
    try:
        for mod in modules:
            original, mutants = plan[mod]
            tests = expand_tests(tree, cfg["modules"][mod])
            if tests not in baselines:
                data, timed_out, secs, log = runner.run(list(tests), stop=False, order=None,
                                                        timeout=None)
                ok = data is not None and not data["failures"] and data["exitstatus"] == 0
                if data is not None and data.get("fisherlab") and not str(
                        data["fisherlab"]).startswith(str(tree)):
                    raise SystemExit(f"mutation: the tests imported fisherlab from "
                                     f"{data['fisherlab']}, not from the copy {tree}")
                baselines[tests] = {"ok": ok, "seconds": secs,
                                    "durations": (data or {}).get("durations", {}),
                                    "log": str(log), "passed": (data or {}).get("passed", 0)}
                print(f"baseline {' '.join(tests)}: {'ok' if ok else 'FAILED'} "
                      f"({(data or {}).get('passed', 0)} passed, {secs:.0f} s)", flush=True)
                if data is not None:
                    (work / f"baseline-{len(baselines)}.json").write_text(json.dumps(data))
                    slow = sorted(data["durations"].items(), key=lambda kv: -kv[1])[:5]
                    print("  slowest: " + ", ".join(f"{n} {d:.0f} s" for n, d in slow))
                    for f in data["failures"][:5]:
                        print(f"  baseline failure: {f['nodeid']}: {f['exception']}: "
                              f"{f['message'][:200]}")
            base = baselines[tests]
            if not base["ok"]:
                baseline_failed[mod] = base["log"]
                outcomes[mod] = []
                continue
            timeout = args.timeout or factor * base["seconds"] + floor
            outcomes[mod] = evaluate(runner, tree, mod, original, mutants, tests,
                                     base["durations"], allow, timeout)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    total = time.monotonic() - t_start
    return report(plan, outcomes, baseline_failed, seed, per_module, total, args)


def score(outs: list[Outcome]) -> tuple[int, int, int, int, int, int, float]:
    n = len(outs)
    killed = sum(o.status == "killed" for o in outs)
    crash = sum(o.status == "crash" for o in outs)
    equiv = sum(o.status == "equivalent" for o in outs)
    timeout = sum(o.status == "timeout" for o in outs)
    survived = n - killed - crash - equiv
    denom = n - equiv
    pct = 100.0 * (killed + crash) / denom if denom else 100.0
    return n, killed + crash, survived, crash, equiv, timeout, pct


def report(plan, outcomes, baseline_failed, seed, per_module, total, args) -> int:
    print()
    print(f"Mutation score (seed {seed}, {per_module} mutants per module; score = killed / "
          "(mutants - equivalent); crash = weak kills, by a non-assertion exception)")
    header = f"{'module':52s} {'mutants':>7s} {'killed':>6s} {'surv.':>5s} {'crash':>5s} " \
             f"{'equiv':>5s} {'t/o':>4s} {'score':>7s}"
    print(header)
    print("-" * len(header))
    below = []
    for mod, outs in outcomes.items():
        if mod in baseline_failed:
            print(f"{mod:52s} baseline FAILED (log {baseline_failed[mod]})")
            below.append(mod)
            continue
        n, k, s, c, e, t, pct = score(outs)
        print(f"{mod:52s} {n:7d} {k:6d} {s:5d} {c:5d} {e:5d} {t:4d} {pct:6.1f}%")
        if args.fail_under is not None and pct < args.fail_under:
            below.append(mod)
    every = [o for outs in outcomes.values() for o in outs]
    n, k, s, c, e, t, pct = score(every)
    print("-" * len(header))
    print(f"{'total':52s} {n:7d} {k:6d} {s:5d} {c:5d} {e:5d} {t:4d} {pct:6.1f}%")
    print(f"wall time {total / 60:.1f} min")
    survivors = [o for o in every if o.status in ("survived", "timeout", "error")]
    if survivors:
        print("\nSurviving mutants:")
        for o in survivors:
            print(f"\n# {o.status}: {o.mutant.ident}  {o.mutant.description}  {o.detail}")
            print(o.mutant.diff(plan[o.mutant.module][0]), end="")
    equivalents = [o for o in every if o.reason]
    if equivalents:
        print("\nAllow-listed equivalent mutants:")
        for o in equivalents:
            print(f"  [{o.status}] {o.mutant.ident}: {o.mutant.before!r} -> {o.mutant.after!r}"
                  f"\n      reason: {o.reason}")
    if args.json:
        args.json.write_text(json.dumps({
            "seed": seed, "per_module": per_module, "seconds": total,
            "modules": {mod: {"score": score(outs)[-1], "baseline_failed": mod in baseline_failed,
                              "mutants": [{"id": o.mutant.ident, "status": o.status,
                                           "operator": o.mutant.operator,
                                           "description": o.mutant.description,
                                           "before": o.mutant.before, "after": o.mutant.after,
                                           "seconds": o.seconds, "detail": o.detail,
                                           "reason": o.reason} for o in outs]}
                        for mod, outs in outcomes.items()}}, indent=1))
    return 1 if below and args.fail_under is not None else 0
