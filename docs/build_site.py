"""Assemble and build the fisherlab documentation site (``bash scripts/docs.sh [OUT_DIR]`` runs this).

Strict from start to end; the build fails (non-zero exit, the reason printed) when

* a public name of a documented namespace has no docstring (checked first, before any slow work);
* a derivation fails to verify (``fisherlab docs`` exits non-zero) or has no page;
* an example fails (``examples/*.py`` exit non-zero, ``examples/test_*.py`` fail under pytest);
* a figure cannot be drawn;
* Sphinx warns: a broken link or cross-reference, a formula KaTeX cannot parse, a docstring that is
  not valid reStructuredText (``sphinx-build -W``).

Nothing under version control is written: the sources are assembled in a staging folder
(default ``build/docs/src``), the derivation pages are generated there from ``fl.proofs.all()``
by the renderer (``fisherlab docs``), and the site goes to ``OUT_DIR`` (default ``site/``).

Usage: ``python3 docs/build_site.py OUT_DIR --katex-dir DIR [--stage DIR] [--jobs N]``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import importlib
import inspect
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(ROOT))  # the checkout's fisherlab, whatever is installed
sys.path.insert(0, str(DOCS))

FIGURES = ("steepest_descent.png", "empirical_fisher.png", "kfac_blocks.png", "optimisation.png")


class BuildError(Exception):
    """A reason to fail the build, printed without a traceback."""


# ----------------------------------------------------------------------------- public names


def _namespaces():
    """``(shown, module, [public names])`` of every namespace the API reference documents."""
    from fisherlab._apidoc import NAMESPACES

    out = []
    for shown, module_name in NAMESPACES:
        module = importlib.import_module(module_name)
        names = [n for n in getattr(module, "__all__", ())
                 if not inspect.ismodule(getattr(module, n))]
        out.append((shown, module_name, module, names))
    return out


def _undocumented_members(namespaces) -> list[str]:
    """Public methods and properties of public classes without a docstring of their own."""
    missing = []
    for shown, _, module, names in namespaces:
        for name in names:
            obj = getattr(module, name)
            if not inspect.isclass(obj):
                continue
            for attr, value in vars(obj).items():
                if attr.startswith("_"):
                    continue
                fn = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
                if (callable(fn) or isinstance(value, property)) and not (fn.__doc__ or "").strip():
                    missing.append(f"{shown}.{name}.{attr}")
    return missing


def check_public_names() -> list:
    from fisherlab._apidoc import undocumented

    missing = undocumented()
    if missing:
        raise BuildError("undocumented public names (add a docstring): " + ", ".join(missing))
    namespaces = _namespaces()
    members = _undocumented_members(namespaces)
    if members:
        print(f"note: {len(members)} public methods/properties have no docstring of their own "
              "(listed with their signature only): " + ", ".join(members))
    return namespaces


# ----------------------------------------------------------------------------- slow tasks


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    env["MPLBACKEND"] = "Agg"
    env.setdefault("JAX_PLATFORMS", "cpu")
    return env


def _run(name: str, cmd: list[str], stage: Path, stdout_path: Path | None = None) -> float:
    """Run one task; its stdout goes to ``stdout_path`` (shown on a page) or the log."""
    log = stage / "_logs" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as err:
        out = open(stdout_path, "w") if stdout_path else err
        try:
            rc = subprocess.call(cmd, cwd=ROOT, env=_env(), stdout=out, stderr=err)
        finally:
            if stdout_path:
                out.close()
    seconds = time.perf_counter() - t0
    if rc != 0:
        tail = []
        for path in [stdout_path, log]:
            if path and path.exists():
                tail += path.read_text().splitlines()[-40:]
        raise BuildError(f"{name} failed (exit {rc}): {' '.join(cmd)}\n" + "\n".join(tail))
    return seconds


def slow_tasks(stage: Path) -> dict[str, tuple]:
    """``name -> (command, file for its stdout)``; the longest first.

    Every example runs: the ``examples/test_*.py`` files under pytest (one task, output
    ``oracle.txt``) and every other script with a ``__main__`` block (output ``<name>.txt``).
    """
    py = sys.executable
    gen = stage / "_generated"
    examples = sorted((ROOT / "examples").glob("*.py"))
    tests = [str(p.relative_to(ROOT)) for p in examples if p.name.startswith("test_")]
    scripts = [p for p in examples if not p.name.startswith("test_")
               and 'if __name__ == "__main__":' in p.read_text()]
    tasks = {
        "derivations": ([py, "-m", "fisherlab.cli", "docs", str(stage / "derivations")], None),
        "figures": ([py, str(DOCS / "figures.py"), str(gen / "figures")], None),
        "example tests (pytest)": (
            [py, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "--no-header", *tests],
            gen / "output" / "oracle.txt"),
    }
    for p in scripts:
        tasks[f"example {p.stem}"] = ([py, str(p.relative_to(ROOT))], gen / "output" / f"{p.stem}.txt")
    return tasks


def run_slow_tasks(stage: Path, jobs: int) -> dict[str, float]:
    tasks = slow_tasks(stage)
    (stage / "_generated" / "output").mkdir(parents=True, exist_ok=True)
    times, errors = {}, []
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_run, name, cmd, stage, out): name
                   for name, (cmd, out) in tasks.items()}
        for fut in concurrent.futures.as_completed(futures):
            name = futures[fut]
            try:
                times[name] = fut.result()
                print(f"  {name}: ok ({times[name]:.0f} s)", flush=True)
            except BuildError as exc:
                errors.append(str(exc))
                print(f"  {name}: FAILED", flush=True)
    if errors:
        raise BuildError("\n\n".join(errors))
    return times


# ----------------------------------------------------------------------------- pages


def _first_line(doc: str | None) -> str:
    line = inspect.cleandoc(doc or "").split("\n", 1)[0].strip()
    return re.sub(r"``([^`]+)``", r"`\1`", line).rstrip(".")


def _family_title(family: str) -> str:
    """The first line of the theorem module's docstring, without citations of private notes."""
    module = sys.modules.get(f"fisherlab._theorems.{family}")  # loaded by fl.proofs.all()
    title = _first_line(getattr(module, "__doc__", None))
    title = re.sub(r"\s*\(seed [^)]*\)", "", title).strip()
    return title or family.replace("_", " ")


def derivation_pages(stage: Path) -> int:
    import fisherlab as fl

    derivations = fl.proofs.all()
    folder = stage / "derivations"
    missing = [d.name for d in derivations if not (folder / f"{d.name}.md").exists()]
    if missing or not (folder / "index.md").exists():
        raise BuildError("the renderer wrote no page for: " + ", ".join(missing or ["index.md"]))
    families: dict[str, list] = {}
    for d in derivations:
        families.setdefault(d.name.split(".", 1)[0], []).append(d)
    (folder / "families").mkdir(exist_ok=True)
    listing = []
    for family, members in families.items():
        title = _family_title(family)
        tiers = sorted({str(getattr(d.tier, "value", d.tier)) for d in members})  # enum or str
        entries = "\n".join(f"../{d.name}" for d in members)
        (folder / "families" / f"{family}.md").write_text(
            f"# {title}\n\n"
            f"The `{family}` family: {len(members)} derivation{'s' * (len(members) > 1)} "
            f"(tier {', '.join(tiers)}). Each page is generated from the verification report "
            f"of its derivation.\n\n"
            f"```{{toctree}}\n:maxdepth: 1\n\n{entries}\n```\n")
        count = f"{len(members)} derivation{'s' * (len(members) > 1)}"
        listing.append(f"- [{title}](derivations/families/{family}.md) ({count})")
    n_controls = sum(len(getattr(d, "negative_controls", ()) or ()) for d in derivations)
    (stage / "derivations.md").write_text(
        "# Derivations\n\n"
        f"{len(derivations)} derivations in {len(families)} families, each verified when this "
        "site was built: every step of its proof is checked by SymPy, and each negative control "
        f"(a plausible false variant; {n_controls} in all) must be rejected with an exact "
        "witness. The pages are written by fisherlab's renderer (`fisherlab docs OUT_DIR`) from "
        "exactly what was verified. Tier A: general dimension or a generic model; tier B: fully "
        "symbolic entries at every size up to a stated bound.\n\n"
        "- [All derivations: one table with tiers, scopes and status](derivations/index.md)\n"
        + "\n".join(listing) + "\n\n"
        "```{toctree}\n:hidden:\n:maxdepth: 2\n\nAll derivations <derivations/index>\n"
        + "\n".join(f"derivations/families/{f}" for f in families) + "\n```\n")
    return len(derivations)


def conventions_page(stage: Path) -> None:
    from peer_conventions import markdown

    gen = stage / "_generated"
    shutil.copy2(DOCS / "CONVENTIONS.md", gen / "CONVENTIONS.md")
    peers = sorted((DOCS / "peers").glob("*.md")) if (DOCS / "peers").is_dir() else []
    (stage / "peers").mkdir(exist_ok=True)
    for p in peers:
        shutil.copy2(p, stage / "peers" / p.name)
    toctree = ("\n```{toctree}\n:hidden:\n\n" + "\n".join(f"peers/{p.stem}" for p in peers)
               + "\n```\n") if peers else ""
    (stage / "conventions.md").write_text(
        "# Conventions\n\n"
        "What every number fisherlab returns means. This is the repository's "
        "`docs/CONVENTIONS.md`, a public contract; docstrings point here instead of restating "
        "it.\n\n"
        "```{include} _generated/CONVENTIONS.md\n:heading-offset: 1\n```\n\n"
        "## How the peer libraries differ\n\n"
        "The same matrix has different scalings and layouts in different libraries. For each "
        "library: what differs from fisherlab's convention and what converts one into the "
        "other. Entries whose evidence is *measured* are checked against the real library by "
        "fisherlab's peer tests or reports; the others are read from the library's source.\n\n"
        + markdown() + toctree)


def api_pages(stage: Path, namespaces) -> None:
    folder = stage / "api"
    folder.mkdir(exist_ok=True)
    rows, docs = [], []
    # An object public in two namespaces (fl.Categorical is fl.likelihoods.Categorical) is
    # documented in both, indexed once: in the namespace listed last (its own module).
    home = {}
    for shown, _, module, names in namespaces:
        for name in names:
            obj = getattr(module, name)
            if inspect.isclass(obj) or callable(obj):
                home[id(obj)] = shown
    for shown, module_name, module, names in namespaces:
        slug = "fl" if shown == "fl" else shown[len("fl."):]
        parts = [f"# `{shown}`\n", "```{eval-rst}", f".. automodule:: {module_name}",
                 "   :no-members:", "```\n"]
        for name in names:
            obj = getattr(module, name)
            target = f"{module_name}.{name}"
            if inspect.isclass(obj):
                directive = (f".. autoclass:: {target}\n   :members:\n   :undoc-members:\n"
                             "   :show-inheritance:")
            elif callable(obj):
                directive = f".. autofunction:: {target}"
            else:
                directive = f".. autodata:: {target}"
            if home.get(id(obj), shown) != shown:  # the object's other namespace indexes it
                directive += "\n   :no-index:"
            parts += ["```{eval-rst}", directive, "```\n"]
        (folder / f"{slug}.md").write_text("\n".join(parts))
        summary = _first_line(module.__doc__).replace("|", "\\|")
        rows.append(f"| [`{shown}`]({slug}.md) | {len(names)} | {summary} |")
        docs.append(slug)
    (folder / "index.md").write_text(
        "# API reference\n\n"
        "Generated from the docstrings of every public name (`__all__`) when this site is "
        "built; a public name without a docstring fails the build. Conventions: "
        "[Conventions](../conventions.md); `import fisherlab as fl`.\n\n"
        "| namespace | names | what it is |\n|---|---|---|\n" + "\n".join(rows) + "\n\n"
        "```{toctree}\n:hidden:\n\n" + "\n".join(docs) + "\n```\n")


def setup_commands(text: str | None = None) -> str:
    """The README's set-up commands (its fenced bash blocks under the 'Set up' heading)."""
    text = (ROOT / "README.md").read_text() if text is None else text
    match = re.search(r"^##+ [^\n]*set[ -]?up[^\n]*\n(.*?)(?=^## |\Z)", text, re.I | re.M | re.S)
    blocks = re.findall(r"```(?:bash|sh|console)\n(.*?)```", match.group(1), re.S) if match else []
    if not blocks:
        raise BuildError("README.md has no ```bash block under a 'Set up' heading; the landing "
                         "page shows the README's set-up commands")
    return "\n".join(f"```bash\n{b.strip()}\n```\n" for b in blocks)


_KEPT_BY_REUSE = ("derivations", "_generated/figures", "_generated/output")


def stage_sources(stage: Path, reuse: bool = False) -> None:
    kept = stage.parent / "kept"
    if kept.exists():
        shutil.rmtree(kept)
    if reuse:
        for rel in _KEPT_BY_REUSE:
            if not (stage / rel).exists():
                raise BuildError(f"--reuse: {stage / rel} does not exist; build once without it")
            (kept / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(stage / rel, kept / rel)
    if stage.exists():
        shutil.rmtree(stage)
    shutil.copytree(DOCS / "site", stage)
    if reuse:
        for rel in _KEPT_BY_REUSE:
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(kept / rel, stage / rel)
        shutil.rmtree(kept)
    examples = stage / "_generated" / "examples"
    examples.mkdir(parents=True)
    for p in sorted((ROOT / "examples").glob("*.py")):
        shutil.copy2(p, examples / p.name)
    index = stage / "index.md"
    index.write_text(index.read_text().replace("<!-- fisherlab-docs: setup-commands -->",
                                               setup_commands()))


# ----------------------------------------------------------------------------- sphinx


def sphinx(stage: Path, out: Path, katex_dir: Path, jobs: int) -> float:
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q",
           "-j", str(jobs), "-c", str(DOCS), "-d", str(stage.parent / "doctrees"),
           "-D", f"katex_dir={katex_dir}", str(stage), str(out)]
    t0 = time.perf_counter()
    rc = subprocess.call(cmd, cwd=ROOT, env=_env())
    if rc != 0:
        raise BuildError(f"sphinx-build failed (exit {rc}; the warnings above are errors)")
    return time.perf_counter() - t0


def check_site(out: Path, n_derivations: int) -> None:
    import fisherlab as fl

    missing = [d.name for d in fl.proofs.all() if not (out / "derivations" / f"{d.name}.html").exists()]
    if missing:
        raise BuildError("no HTML page for the derivations: " + ", ".join(missing))
    images = {p.name for p in (out / "_images").glob("*.png")}
    absent = [f for f in FIGURES if f not in images]
    if absent:
        raise BuildError("figures missing from the site: " + ", ".join(absent))
    print(f"site: {n_derivations} derivation pages, {len(FIGURES)} figures, "
          f"{sum(1 for _ in out.rglob('*.html'))} HTML pages in {out}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default="site", help="output folder (default: site)")
    parser.add_argument("--katex-dir", required=True, type=Path,
                        help="folder of the katex npm package")
    parser.add_argument("--stage", type=Path, default=ROOT / "build" / "docs" / "src")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the derivation pages, example outputs and figures of the "
                             "previous build in the staging folder (to edit the site's own "
                             "pages quickly; a full build checks them again)")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()
    stage = args.stage.resolve()
    t0 = time.perf_counter()
    try:
        namespaces = check_public_names()
        stage_sources(stage, reuse=args.reuse)
        if args.reuse:
            times = {}
        else:
            print("running the derivations, examples and figures ...", flush=True)
            times = run_slow_tasks(stage, args.jobs)
        n = derivation_pages(stage)
        conventions_page(stage)
        api_pages(stage, namespaces)
        print("sphinx-build ...", flush=True)
        times["sphinx"] = sphinx(stage, out, args.katex_dir.resolve(), args.jobs)
        check_site(out, n)
    except BuildError as exc:
        print(f"\ndocs build FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"built {out} in {time.perf_counter() - t0:.0f} s ("
          + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + ")")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
