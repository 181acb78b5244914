"""Command line: ``fisherlab prove``, ``fisherlab docs``, ``fisherlab check``, ``fisherlab api-docs``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main"]


def _select(names):
    from fisherlab import proofs

    if not names:
        return proofs.all()
    out = []
    for n in names:
        matches = [d for d in proofs.all() if d.name == n or d.name.startswith(n + ".")]
        if not matches:
            raise SystemExit(f"fisherlab prove: no derivation named {n!r}; known: "
                             + ", ".join(proofs.names()))
        out += [m for m in matches if m not in out]
    return out


def _verify_all(derivations, stream):
    results = []
    total = len(derivations)
    for i, d in enumerate(derivations, 1):
        print(f"[{i}/{total}] {d.name} ...", end="", file=stream, flush=True)
        r = d.verify()
        print(f" {'ok' if r.ok else 'FAILED'} ({r.seconds:.2f}s)", file=stream, flush=True)
        results.append((d, r))
    return results


def _table(results) -> str:
    from fisherlab.symbolic import tier_text

    rows = [("derivation", "form", "tier", "links/steps", "controls rejected", "time", "status")]
    for d, r in results:
        rows.append((d.name, "legacy" if d.legacy else "chain", tier_text(d),
                     f"{r.passed_count}/{r.total_count}",
                     f"{r.controls_rejected}/{len(r.controls)}", f"{r.seconds:.2f}s",
                     "verified" if r.ok else "FAILED"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_docs(results, out_dir: Path, *, index: bool = True) -> list[Path]:
    """Write one page per derivation plus (``index``) ``index.md``; returns the paths written.

    Pages carry no wall-clock times, so regenerating them leaves the tree unchanged."""
    from fisherlab.symbolic import index_markdown, to_markdown

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for d, r in results:
        p = out_dir / f"{d.name}.md"
        p.write_text(to_markdown(d, r))
        written.append(p)
    if index:
        idx = out_dir / "index.md"
        idx.write_text(index_markdown(results))
        written.append(idx)
    return written


def _cmd_prove(args) -> int:
    t0 = time.perf_counter()
    results = _verify_all(_select(args.names), sys.stderr)
    print(_table(results))
    failed = [d.name for d, r in results if not r.ok]
    legacy = sum(d.legacy for d, _ in results)
    print(f"\n{len(results) - len(failed)}/{len(results)} derivations verified "
          f"({len(results) - legacy} in chain form, {legacy} legacy), "
          f"{sum(r.controls_rejected for _, r in results)}/"
          f"{sum(len(r.controls) for _, r in results)} negative controls rejected "
          f"in {time.perf_counter() - t0:.1f}s")
    for d, r in results:
        if not r.ok:
            print("\n".join([r.summary()] + r.failures()), file=sys.stderr)
    if args.docs:
        paths = write_docs(results, Path(args.docs), index=not args.names)
        print(f"wrote {len(paths)} pages to {args.docs}")
    return 1 if failed else 0


def _cmd_docs(args) -> int:
    results = _verify_all(_select(args.names), sys.stderr)
    # the index lists every derivation: a selection rewrites its own pages only
    paths = write_docs(results, Path(args.out_dir), index=not args.names)
    print(f"wrote {len(paths)} pages to {args.out_dir}")
    return 1 if any(not r.ok for _, r in results) else 0


def _compilation_cache() -> None:
    """Keep compiled references on disk between ``fisherlab check`` runs (JAX's persistent
    compilation cache): ``$FISHERLAB_JAX_CACHE``, default ``~/.cache/fisherlab/jax``; ``off``
    disables it. A check of a problem with shapes seen before then compiles nothing."""
    import os

    import jax

    where = os.environ.get("FISHERLAB_JAX_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "fisherlab", "jax")
    if where.lower() == "off" or jax.config.jax_compilation_cache_dir:
        return
    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def _cmd_check(args) -> int:
    if args.schema:
        from fisherlab.testing._check import SCHEMA

        print(SCHEMA, end="")
        return 0
    if args.candidate is None or args.problem is None:
        args.parser.error("CANDIDATE and PROBLEM are required (or --schema)")
    _compilation_cache()
    from fisherlab.testing._check import run_check

    return run_check(args.candidate, args.problem, stream=sys.stdout)


_CHECK_HELP = """\
Compare a candidate curvature matrix (CANDIDATE, .npy/.npz) with fisherlab's float64
reference on the problem described by PROBLEM (.json/.toml); on a mismatch print the
diagnosis (fl.testing.diagnose): the convention or bug that reproduces the candidate.
"""


class _CheckHelp(argparse.Action):
    """``-h``: the help with the problem-file schema (imported only when asked for)."""

    def __call__(self, parser, namespace, values, option_string=None):
        from fisherlab.testing._check import SCHEMA

        parser.epilog = SCHEMA
        parser.print_help()
        parser.exit()


def _cmd_api_docs(args) -> int:
    from fisherlab._apidoc import main as write_api_docs

    return write_api_docs(args.path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fisherlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prove", help="verify derivations (all by default) and print a table")
    p.add_argument("names", nargs="*", help="derivation names or name prefixes")
    p.add_argument("--docs", metavar="OUT_DIR", help="also write the derivation pages there")
    p.set_defaults(func=_cmd_prove)
    d = sub.add_parser("docs", help="verify and write one Markdown page per derivation")
    d.add_argument("out_dir")
    d.add_argument("names", nargs="*")
    d.set_defaults(func=_cmd_docs)
    c = sub.add_parser("check", help="compare a candidate matrix with fisherlab's reference",
                       description=_CHECK_HELP, add_help=False,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("-h", "--help", action=_CheckHelp, nargs=0,
                   help="show this help, with the problem-file schema, and exit")
    c.add_argument("candidate", nargs="?", metavar="CANDIDATE",
                   help=".npy file, or .npz with one array, holding the candidate matrix")
    c.add_argument("problem", nargs="?", metavar="PROBLEM",
                   help="problem file (.json or .toml); schema below and with --schema")
    c.add_argument("--schema", action="store_true",
                   help="print the problem-file schema with an example and exit")
    c.set_defaults(func=_cmd_check, parser=c)
    a = sub.add_parser("api-docs", help="write the API reference generated from the docstrings")
    a.add_argument("path", nargs="?", default="docs/api.md")
    a.set_defaults(func=_cmd_api_docs)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
