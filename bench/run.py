"""Command line: ``python -m bench.run NAME`` or ``python bench/run.py NAME``.

Runs ``bench/NAME.py`` interleaved with its peers, prints a table, and writes
``bench/results/NAME.json``.  It measures a commit: a source tree with
uncommitted changes is refused unless ``--allow-dirty`` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):
    # Run as a file: Python put bench/ on the path, not the project root, so
    # ``import bench`` would fail.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    RESULTS_DIR,
    BenchError,
    format_table,
    list_benchmarks,
    load_benchmark,
    run_benchmark,
    write_report,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Run a benchmark side by side with its peers and report ratios.",
    )
    parser.add_argument("name", nargs="?", help="benchmark module in bench/ (see --list)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument(
        "-n", "--repeats", type=int, default=3, help="interleaved rounds to keep (default 3)"
    )
    parser.add_argument(
        "--warmup", type=int, default=0, help="unrecorded rounds to run first (default 0)"
    )
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a benchmark parameter (repeatable)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=RESULTS_DIR,
        help=f"where NAME.json goes (default {RESULTS_DIR})",
    )
    parser.add_argument(
        "--allow-dirty",
        action="store_true",
        help="run from a source tree with uncommitted changes (a trial run: the report says so)",
    )
    parser.add_argument("--json", action="store_true", help="print the JSON report, not a table")
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-trial progress lines")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        for name in list_benchmarks():
            print(name)
        return 0
    if not args.name:
        parser.print_usage(sys.stderr)
        print("error: give a benchmark name (see --list)", file=sys.stderr)
        return 2
    overrides: dict[str, str] = {}
    for pair in args.param:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            print(f"error: --param {pair!r} is not KEY=VALUE", file=sys.stderr)
            return 2
        overrides[key.strip()] = value
    try:
        benchmark = load_benchmark(args.name)
        report = run_benchmark(
            benchmark,
            repeats=args.repeats,
            warmup=args.warmup,
            parameters=overrides,
            progress=None if args.quiet else lambda line: print(line, file=sys.stderr),
            allow_dirty=args.allow_dirty,
        )
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    path = write_report(report, args.results_dir)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(format_table(report))
        print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
