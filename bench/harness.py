"""The benchmark runner: sitemail and its peers side by side, reported as ratios.

Absolute numbers from one run on a shared two-core machine move by 15-20 %
from run to run, so they only mean something next to a peer measured in the
same batch.  The harness therefore runs trials interleaved (sitemail, peer,
sitemail, peer, ...), takes the median of each side, and reports the ratio
sitemail / peer per metric, together with the conditions of the run.

A benchmark is a module ``bench/<name>.py`` with a module-level
``BENCHMARK = Benchmark(...)``; see ``bench/README.md``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "RESULTS_DIR",
    "SCHEMA_VERSION",
    "SITEMAIL",
    "BenchError",
    "Benchmark",
    "Metric",
    "TrialFn",
    "TrialResult",
    "Workload",
    "format_table",
    "list_benchmarks",
    "load_benchmark",
    "machine_conditions",
    "merge_parameters",
    "peak_rss_kib",
    "run_benchmark",
    "self_peak_rss_kib",
    "source_state",
    "write_report",
]

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
# The tree whose commit a run measures (its own git checkout).
SOURCE_ROOT = PROJECT_ROOT
SCHEMA_VERSION = 2
SITEMAIL = "sitemail"
# Modules of bench/ that are the harness itself, not benchmarks.
_NOT_BENCHMARKS = frozenset(
    {"__init__", "__main__", "harness", "run", "lab_util", "lab_names", "exchangelib_suite"}
)


class BenchError(Exception):
    """A benchmark that cannot run or reported something unusable, in one line."""


@dataclass(frozen=True)
class Metric:
    """How to read one metric: its unit and which direction is better.

    ``higher_is_better=None`` leaves the direction unsaid (the table then
    shows the ratio without a verdict).
    """

    unit: str = ""
    higher_is_better: bool | None = None
    description: str = ""


@dataclass
class TrialResult:
    """What one measured trial returns.

    ``metrics`` are the numbers (msgs/s, MB/s, latencies ...);
    ``peak_pss_kib`` is the headline memory: the peak, over samples taken
    during the trial, of the summed proportional set size (``Pss:`` of
    /proc/PID/smaps_rollup) of every process of the side, so that a side of
    forty processes sharing their libraries is not charged forty times for
    them; ``peak_rss_kib`` is the peak resident memory, a second figure;
    either is None when the workload did not measure it; ``notes`` is
    free-form, kept in the JSON as is (it must be JSON-able).
    """

    metrics: dict[str, float]
    peak_rss_kib: int | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    peak_pss_kib: int | None = None


# A trial receives the run's parameters; it sets up, measures once and tears
# down.  Returning a plain mapping of metrics is the short form of TrialResult.
TrialFn = Callable[[Mapping[str, Any]], TrialResult | Mapping[str, float]]


@dataclass(frozen=True)
class Workload:
    """One side of a benchmark: sitemail, or a peer such as Postfix.

    ``version`` is a string, or a callable asked once per run (for instance
    one that runs ``postconf -h mail_version``); None when unknown.
    """

    name: str
    trial: TrialFn
    version: str | Callable[[], str | None] | None = None
    description: str = ""


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    sitemail: Workload
    peers: Sequence[Workload]
    parameters: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    # True for benchmarks that only check the harness: their numbers say
    # nothing about sitemail, and reports say so.
    self_check: bool = False
    # Other configurations of sitemail (say, with a costly feature on): run in
    # every round right after the sitemail side and reported on lines of their
    # own, so that the sitemail side can be the one that compares like with
    # like with the peers.
    variants: Sequence[Workload] = ()

    def sides(self) -> list[Workload]:
        return [self.sitemail, *self.variants, *self.peers]


# --- loading ------------------------------------------------------------------


def list_benchmarks() -> list[str]:
    """Names of the benchmark modules in bench/ (by file name, nothing imported)."""
    return sorted(
        p.stem
        for p in BENCH_DIR.glob("*.py")
        if p.stem not in _NOT_BENCHMARKS and not p.stem.startswith("_")
    )


def load_benchmark(name: str) -> Benchmark:
    """Import ``bench.<name>`` and return its ``BENCHMARK``."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name in _NOT_BENCHMARKS:
        raise BenchError(f"{name!r} is not a benchmark name: choose one of {list_benchmarks()}")
    if not (BENCH_DIR / f"{name}.py").exists():
        raise BenchError(f"no benchmark {name!r} in {BENCH_DIR}: choose one of {list_benchmarks()}")
    module = importlib.import_module(f"bench.{name}")
    benchmark = getattr(module, "BENCHMARK", None)
    if not isinstance(benchmark, Benchmark):
        raise BenchError(f"bench/{name}.py has no BENCHMARK = Benchmark(...): add one")
    return benchmark


def merge_parameters(defaults: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The benchmark's parameters with overrides applied.

    String overrides (from the command line) are converted to the type of the
    default, so ``messages=500`` stays an int.  Unknown names are an error: a
    typo must not silently run the default workload.
    """
    merged = dict(defaults)
    for key, value in overrides.items():
        if key not in defaults:
            raise BenchError(
                f"unknown parameter {key!r}: this benchmark takes {sorted(defaults) or 'none'}"
            )
        merged[key] = _coerce(key, value, defaults[key]) if isinstance(value, str) else value
    return merged


def _coerce(key: str, text: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if isinstance(default, str):
            return text
        return json.loads(text)
    except ValueError:
        raise BenchError(
            f"parameter {key}={text!r} does not read as {type(default).__name__} "
            f"(its default is {default!r})"
        ) from None


# --- running ------------------------------------------------------------------


def run_benchmark(
    benchmark: Benchmark,
    *,
    repeats: int = 3,
    warmup: int = 0,
    parameters: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    allow_dirty: bool = False,
) -> dict[str, Any]:
    """Run ``repeats`` interleaved rounds (after ``warmup`` unrecorded ones).

    One round runs every side once: sitemail first, then its variants, then
    each peer in order.  Returns the report (see bench/README.md for its
    fields); write it with :func:`write_report`.  A run measures a commit:
    it refuses a source tree with uncommitted changes (or none that git
    knows) unless ``allow_dirty``, and the report names the commit.
    """
    source = source_state(SOURCE_ROOT)
    if not allow_dirty and (source["commit"] is None or source["dirty"]):
        why = "is not a git checkout" if source["commit"] is None else "has uncommitted changes"
        raise BenchError(
            f"the source tree {SOURCE_ROOT} {why}: results must name the commit they measure; "
            "commit first, or pass --allow-dirty for a trial run"
        )
    if repeats < 1:
        raise BenchError(f"repeats must be at least 1, got {repeats}")
    if warmup < 0:
        raise BenchError(f"warmup must be 0 or more, got {warmup}")
    names = [side.name for side in benchmark.sides()]
    if len(set(names)) != len(names) or names.count(SITEMAIL) != 1 or names[0] != SITEMAIL:
        raise BenchError(
            f"side names must be unique, the sitemail side named {SITEMAIL!r} and no peer "
            f"so named; got {names}"
        )
    params = merge_parameters(benchmark.parameters, parameters or {})
    say = progress or (lambda _line: None)
    started = datetime.now(UTC)
    versions = _versions(benchmark)
    conditions = {
        "machine": machine_conditions(),
        "versions": versions,
        "parameters": params,
        "repeats": repeats,
        "warmup_rounds": warmup,
        "order": names,
        "source": source,
    }

    trials: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    sequence: list[dict[str, Any]] = []
    for round_no in range(-warmup, repeats):
        recorded = round_no >= 0
        label = f"round {round_no + 1}/{repeats}" if recorded else "warm-up"
        for side in benchmark.sides():
            record = _run_trial(side, params, label)
            say(f"{label}  {side.name:<20} {_summary(record['metrics'], benchmark.metrics)}")
            if recorded:
                record["round"] = round_no + 1
                trials[side.name].append(record)
                sequence.append({"round": round_no + 1, "side": side.name})

    variants = {v.name for v in benchmark.variants}
    sides: dict[str, dict[str, Any]] = {}
    for side in benchmark.sides():
        runs = trials[side.name]
        _check_same_metrics(side.name, runs)
        sides[side.name] = {
            "role": SITEMAIL
            if side.name == SITEMAIL
            else "variant"
            if side.name in variants
            else "peer",
            "description": side.description,
            "version": versions["sides"][side.name],
            "trials": runs,
            "medians": {
                metric: statistics.median(r["metrics"][metric] for r in runs)
                for metric in runs[0]["metrics"]
            },
        }
        for memory in MEMORY_FIGURES:
            peaks = [r[memory] for r in runs if r[memory] is not None]
            # The peak over all trials: memory is judged by its worst case.
            sides[side.name][memory] = max(peaks) if peaks else None

    ratios = {p.name: _ratios(sides[SITEMAIL], sides[p.name]) for p in benchmark.peers}
    variant_ratios = {
        v.name: {p.name: _ratios(sides[v.name], sides[p.name]) for p in benchmark.peers}
        for v in benchmark.variants
    }

    finished = datetime.now(UTC)
    return {
        "schema": SCHEMA_VERSION,
        "benchmark": benchmark.name,
        "description": benchmark.description,
        "self_check": benchmark.self_check,
        "timestamp": started.isoformat(timespec="seconds"),
        "duration_s": round((finished - started).total_seconds(), 3),
        "conditions": conditions,
        "metrics": {
            name: {"unit": m.unit, "higher_is_better": m.higher_is_better}
            for name, m in benchmark.metrics.items()
        },
        "sequence": sequence,
        "sides": sides,
        "ratios": ratios,
        "variant_ratios": variant_ratios,
    }


#: The memory figures a trial may report, headline first.
MEMORY_FIGURES = ("peak_pss_kib", "peak_rss_kib")


def _ratios(ours: Mapping[str, Any], theirs: Mapping[str, Any]) -> dict[str, float | None]:
    """Median / median for the metrics both sides report, and the memory peaks both have."""
    pair = {
        metric: _ratio(ours["medians"][metric], theirs["medians"][metric])
        for metric in ours["medians"]
        if metric in theirs["medians"]
    }
    for memory in MEMORY_FIGURES:
        if ours[memory] is not None and theirs[memory] is not None:
            pair[memory] = _ratio(ours[memory], theirs[memory])
    return pair


def _run_trial(side: Workload, params: Mapping[str, Any], label: str) -> dict[str, Any]:
    began = time.perf_counter()
    try:
        outcome = side.trial(params)
    except Exception as exc:
        raise BenchError(f"{side.name} failed in {label}: {type(exc).__name__}: {exc}") from exc
    seconds = time.perf_counter() - began
    result = outcome if isinstance(outcome, TrialResult) else TrialResult(dict(outcome))
    metrics: dict[str, float] = {}
    for key, value in result.metrics.items():
        # bool is an int to Python but never a measurement.
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise BenchError(
                f"{side.name} reported {key}={value!r} in {label}: metrics must be finite numbers"
            )
        metrics[key] = value
    if not metrics:
        raise BenchError(f"{side.name} reported no metrics in {label}")
    return {
        "metrics": metrics,
        "peak_pss_kib": result.peak_pss_kib,
        "peak_rss_kib": result.peak_rss_kib,
        "seconds": round(seconds, 4),
        "notes": result.notes,
    }


def _check_same_metrics(side: str, runs: list[dict[str, Any]]) -> None:
    first = set(runs[0]["metrics"])
    for run in runs[1:]:
        if set(run["metrics"]) != first:
            raise BenchError(
                f"{side} reported {sorted(run['metrics'])} in round {run['round']} but "
                f"{sorted(first)} in round 1: every trial must report the same metrics"
            )


def _ratio(ours: float, theirs: float) -> float | None:
    # No ratio against a zero: "infinitely better" is not a number to report.
    return None if theirs == 0 else ours / theirs


def _summary(metrics: Mapping[str, float], meta: Mapping[str, Metric]) -> str:
    parts = []
    for key, value in metrics.items():
        unit = meta[key].unit if key in meta else ""
        parts.append(f"{key}={_fmt(value)}{' ' + unit if unit else ''}")
    return ", ".join(parts)


# --- conditions ---------------------------------------------------------------


def machine_conditions() -> dict[str, Any]:
    """The machine a run happened on, as far as Linux tells."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = None
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_bytes": _mem_total(),
        "kernel": f"{platform.system()} {platform.release()}",
        "os": _os_release(),
        "arch": platform.machine(),
        # The load before the run: a busy machine explains a strange batch.
        "loadavg": load,
    }


def _cpu_model() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Processor"):
                return value.strip()
    return platform.processor() or None


def _mem_total() -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return None


def _os_release() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    return None


def _versions(benchmark: Benchmark) -> dict[str, Any]:
    sides: dict[str, str | None] = {}
    for side in benchmark.sides():
        version = side.version
        if callable(version):
            try:
                version = version()
            except Exception as exc:
                raise BenchError(f"cannot find the version of {side.name}: {exc}") from exc
        sides[side.name] = version
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sitemail": _sitemail_version(),
        "git": _git(SOURCE_ROOT, "describe", "--always", "--dirty"),
        "sides": sides,
    }


def _sitemail_version() -> str | None:
    try:
        import sitemail
    except ImportError:
        return None
    return str(sitemail.__version__)


def source_state(root: Path) -> dict[str, Any]:
    """The commit checked out in ``root`` (None if git knows none) and whether the tree
    differs from it (tracked changes or untracked files that are not ignored).

    ``bench/results/`` does not count: it is what runs write, not what they measure
    (so that one benchmark after another may run before their results are committed).
    """
    commit = _git(root, "rev-parse", "--verify", "HEAD")
    changes = _git(
        root, "status", "--porcelain", "--untracked-files=normal", "--", ".", ":!bench/results"
    )
    return {"commit": commit, "dirty": commit is None or bool(changes)}


def _git(root: Path, *args: str) -> str | None:
    """``git ARGS`` in ``root``: its output stripped, or None when git fails."""
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


# --- memory -------------------------------------------------------------------


def peak_rss_kib(pid: int) -> int | None:
    """Peak resident memory (VmHWM) of a live process, in KiB; read it before stopping it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def self_peak_rss_kib() -> int:
    """Peak resident memory of this process so far, in KiB (Linux reports KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# --- output -------------------------------------------------------------------


def write_report(report: Mapping[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    """Write ``<results_dir>/<benchmark>.json`` (atomically) and return its path."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"{report['benchmark']}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def format_table(report: Mapping[str, Any]) -> str:
    """A short human table: medians per side and the ratio sitemail / peer."""
    lines: list[str] = []
    title = f"{report['benchmark']}: {report['description']}"
    if report["self_check"]:
        title += "  [harness self-check: says nothing about sitemail]"
    lines.append(title)
    cond = report["conditions"]
    machine = cond["machine"]
    lines.append(
        f"{cond['repeats']} interleaved rounds; {machine['cpu_model']}, "
        f"{machine['cores']} cores; {report['conditions']['versions']['python']}"
    )
    sides = report["sides"]
    meta = report["metrics"]
    for peer, ratios in report["ratios"].items():
        rows = [("metric", "unit", SITEMAIL, peer, "ratio", "")]
        rows += _rows(sides, meta, SITEMAIL, peer, ratios, "")
        # A variant of sitemail on lines of its own, below the like-for-like figures.
        for variant, by_peer in report.get("variant_ratios", {}).items():
            rows += _rows(sides, meta, variant, peer, by_peer[peer], f" [{variant}]")
        widths = [max(len(row[i]) for row in rows) for i in range(6)]
        lines.append("")
        for row in rows:
            cells = [
                cell.ljust(widths[i]) if i in (0, 1, 5) else cell.rjust(widths[i])
                for i, cell in enumerate(row)
            ]
            lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _rows(
    sides: Mapping[str, Any],
    meta: Mapping[str, Any],
    ours_name: str,
    peer: str,
    ratios: Mapping[str, float | None],
    label: str,
) -> list[tuple[str, str, str, str, str, str]]:
    rows = []
    for metric, ratio in ratios.items():
        if metric in MEMORY_FIGURES:
            ours, theirs = sides[ours_name][metric], sides[peer][metric]
            unit, better = "KiB", False
        else:
            ours, theirs = sides[ours_name]["medians"][metric], sides[peer]["medians"][metric]
            unit = meta.get(metric, {}).get("unit", "")
            better = meta.get(metric, {}).get("higher_is_better")
        verdict = ""
        if ratio is not None and better is not None:
            verdict = "higher is better" if better else "lower is better"
        shown = "n/a" if ratio is None else f"{ratio:.2f}"
        rows.append((metric + label, unit, _fmt(ours), _fmt(theirs), shown, verdict))
    return rows


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}"
    return f"{value:.3g}"
