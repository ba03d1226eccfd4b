"""The benchmark harness: interleaving, medians, ratios, the JSON report, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

# bench/ lives beside src/, outside the installed package: import it from the
# project root.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from bench import harness  # noqa: E402
from bench import run as bench_run  # noqa: E402
from bench.harness import (  # noqa: E402
    BenchError,
    Benchmark,
    Metric,
    TrialResult,
    Workload,
    format_table,
    list_benchmarks,
    load_benchmark,
    merge_parameters,
    run_benchmark,
    write_report,
)


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.test", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture(autouse=True)
def source_tree(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean git checkout for the harness to measure (not this one, which may be dirty)."""
    root = tmp_path_factory.mktemp("source")
    git(root, "init", "-q")
    (root / "bench" / "results").mkdir(parents=True)
    (root / "code.py").write_text("x = 1\n")
    (root / "bench" / "results" / "old.json").write_text("{}\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "one")
    monkeypatch.setattr(harness, "SOURCE_ROOT", root)
    return root


def scripted(
    name: str,
    values: list[dict[str, float]],
    calls: list[str],
    rss: list[int] | None = None,
    pss: list[int] | None = None,
) -> Workload:
    """A side whose trials return ``values`` in turn and log their order in ``calls``."""
    feed: Iterator[dict[str, float]] = iter(values)
    rss_feed: Iterator[int] | None = iter(rss) if rss is not None else None
    pss_feed: Iterator[int] | None = iter(pss) if pss is not None else None

    def trial(params: Mapping[str, Any]) -> TrialResult | Mapping[str, float]:
        calls.append(name)
        metrics = next(feed)
        if rss_feed is None and pss_feed is None:
            return metrics  # the short form: a plain mapping
        return TrialResult(
            dict(metrics),
            peak_rss_kib=next(rss_feed) if rss_feed else None,
            notes={"n": len(calls)},
            peak_pss_kib=next(pss_feed) if pss_feed else None,
        )

    return Workload(name, trial, version=f"{name}-1.0")


def fake_benchmark(calls: list[str]) -> Benchmark:
    return Benchmark(
        name="fake",
        description="a fake benchmark",
        sitemail=scripted(
            "sitemail",
            [{"rate": 10, "lat": 4.0}, {"rate": 30, "lat": 2.0}, {"rate": 20, "lat": 3.0}],
            calls,
            rss=[1000, 3000, 2000],
        ),
        peers=[
            scripted(
                "peer",
                [{"rate": 5, "lat": 1.0}, {"rate": 5, "lat": 2.0}, {"rate": 40, "lat": 1.5}],
                calls,
                rss=[500, 600, 400],
            )
        ],
        parameters={"messages": 100, "size": 1.5, "tls": False, "mode": "a"},
        metrics={"rate": Metric("msg/s", True), "lat": Metric("ms", False)},
    )


def test_report_shape_interleaving_medians_and_ratios(tmp_path: Path) -> None:
    calls: list[str] = []
    report = run_benchmark(fake_benchmark(calls), repeats=3)
    path = write_report(report, tmp_path)
    assert path == tmp_path / "fake.json"
    data = json.loads(path.read_text())

    assert calls == ["sitemail", "peer"] * 3
    assert data["sequence"] == [
        {"round": r, "side": s} for r in (1, 2, 3) for s in ("sitemail", "peer")
    ]
    ours, theirs = data["sides"]["sitemail"], data["sides"]["peer"]
    assert [t["metrics"]["rate"] for t in ours["trials"]] == [10, 30, 20]
    assert [t["round"] for t in theirs["trials"]] == [1, 2, 3]
    assert ours["trials"][0]["notes"] == {"n": 1}
    assert ours["medians"] == {"rate": 20, "lat": 3.0}
    assert theirs["medians"] == {"rate": 5, "lat": 1.5}
    assert ours["peak_rss_kib"] == 3000 and theirs["peak_rss_kib"] == 600
    assert data["ratios"] == {"peer": {"rate": 4.0, "lat": 2.0, "peak_rss_kib": 5.0}}

    cond = data["conditions"]
    assert set(cond["machine"]) >= {"cpu_model", "cores", "memory_bytes", "kernel"}
    assert cond["machine"]["cores"] >= 1 and cond["machine"]["memory_bytes"] > 0
    assert cond["versions"]["sides"] == {"sitemail": "sitemail-1.0", "peer": "peer-1.0"}
    assert cond["versions"]["python"].split()[-1] == ".".join(map(str, sys.version_info[:3]))
    assert cond["versions"]["sitemail"]
    assert cond["parameters"] == {"messages": 100, "size": 1.5, "tls": False, "mode": "a"}
    assert cond["repeats"] == 3
    assert data["metrics"]["rate"] == {"unit": "msg/s", "higher_is_better": True}
    assert datetime.fromisoformat(data["timestamp"]).tzinfo is not None
    assert data["self_check"] is False and data["schema"] == 2


def test_table_shows_medians_ratio_and_direction() -> None:
    report = run_benchmark(fake_benchmark([]), repeats=3)
    table = format_table(report)
    rate_row = next(line for line in table.splitlines() if line.startswith("rate"))
    assert rate_row.split() == ["rate", "msg/s", "20.00", "5.00", "4.00", "higher", "is", "better"]
    assert "5.00  lower is better" in next(
        line for line in table.splitlines() if line.startswith("peak_rss_kib")
    )


def test_warmup_rounds_run_but_are_not_recorded() -> None:
    calls: list[str] = []
    values = [{"rate": v} for v in (1000.0, 1.0, 2.0)]
    bench = Benchmark(
        "warm",
        "warm-up",
        scripted("sitemail", values, calls),
        [scripted("peer", [{"rate": 1.0}] * 3, calls)],
    )
    report = run_benchmark(bench, repeats=2, warmup=1)
    assert calls == ["sitemail", "peer"] * 3
    assert [t["metrics"]["rate"] for t in report["sides"]["sitemail"]["trials"]] == [1.0, 2.0]
    assert report["sides"]["sitemail"]["medians"]["rate"] == 1.5
    assert report["conditions"]["warmup_rounds"] == 1


def test_several_peers_zero_medians_and_one_sided_metrics() -> None:
    calls: list[str] = []
    bench = Benchmark(
        "multi",
        "two peers",
        scripted("sitemail", [{"rate": 6.0, "extra": 1.0}] * 2, calls),
        [
            scripted("postfix", [{"rate": 3.0}] * 2, calls),
            scripted("nginx", [{"rate": 0.0}] * 2, calls),
        ],
    )
    report = run_benchmark(bench, repeats=2)
    assert calls == ["sitemail", "postfix", "nginx"] * 2
    # "extra" has no counterpart, and nothing divides by a zero.
    assert report["ratios"] == {"postfix": {"rate": 2.0}, "nginx": {"rate": None}}
    assert "n/a" in format_table(report)


def bench_with(
    trial: Callable[[Mapping[str, Any]], TrialResult | Mapping[str, float]],
) -> Benchmark:
    return Benchmark("bad", "bad", Workload("sitemail", trial), [scripted("peer", [], [])])


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ({"rate": float("nan")}, "finite numbers"),
        ({"rate": "fast"}, "finite numbers"),
        ({"rate": True}, "finite numbers"),
        ({}, "no metrics"),
    ],
)
def test_unusable_metrics_are_refused(metrics: dict[str, Any], message: str) -> None:
    with pytest.raises(BenchError, match=message):
        run_benchmark(bench_with(lambda _p: metrics))


def test_changing_metric_names_between_trials_is_refused() -> None:
    calls: list[str] = []
    bench = Benchmark(
        "drift",
        "drift",
        scripted("sitemail", [{"a": 1.0}, {"b": 1.0}], calls),
        [scripted("peer", [{"a": 1.0}] * 2, calls)],
    )
    with pytest.raises(BenchError, match="same metrics"):
        run_benchmark(bench, repeats=2)


def test_a_failing_trial_names_its_side_and_round() -> None:
    def boom(_params: Mapping[str, Any]) -> Mapping[str, float]:
        raise OSError("port in use")

    with pytest.raises(BenchError, match=r"sitemail failed in round 1/3: OSError: port in use"):
        run_benchmark(bench_with(boom))


def test_side_names_must_be_distinct() -> None:
    calls: list[str] = []
    bench = Benchmark(
        "dup",
        "dup",
        scripted("sitemail", [{"a": 1.0}], calls),
        [scripted("sitemail", [{"a": 1.0}], calls)],
    )
    with pytest.raises(BenchError, match="unique"):
        run_benchmark(bench, repeats=1)
    assert calls == []


def test_parameters_are_typed_like_their_defaults() -> None:
    defaults = {"messages": 100, "size": 1.5, "tls": False, "mode": "a", "hosts": ["x"]}
    merged = merge_parameters(
        defaults,
        {"messages": "250", "size": "2", "tls": "yes", "mode": "b", "hosts": '["y", "z"]'},
    )
    assert merged == {"messages": 250, "size": 2.0, "tls": True, "mode": "b", "hosts": ["y", "z"]}
    with pytest.raises(BenchError, match="unknown parameter 'mesages'"):
        merge_parameters(defaults, {"mesages": "1"})
    with pytest.raises(BenchError, match="does not read as int"):
        merge_parameters(defaults, {"messages": "many"})


def test_benchmarks_are_found_by_module_name() -> None:
    assert "example_tcp_echo" in list_benchmarks()
    assert "harness" not in list_benchmarks() and "run" not in list_benchmarks()
    assert load_benchmark("example_tcp_echo").self_check
    for name in ("harness", "../etc", "missing_one"):
        with pytest.raises(BenchError):
            load_benchmark(name)


def test_cli_runs_the_self_check_example(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["example_tcp_echo", "-n", "1", "-p", "messages=200", "--results-dir", str(tmp_path)]
    assert bench_run.main(argv) == 0
    out = capsys.readouterr().out
    assert "harness self-check" in out and "msgs_per_s" in out
    data = json.loads((tmp_path / "example_tcp_echo.json").read_text())
    assert data["self_check"] is True
    assert data["conditions"]["parameters"]["messages"] == 200
    for side in ("sitemail", "socket-echo"):
        assert data["sides"][side]["medians"]["msgs_per_s"] > 0
        # Each echo server runs in its own process, so each side has its own memory peak.
        assert data["sides"][side]["peak_rss_kib"] > 1000
    ratio = data["ratios"]["socket-echo"]["msgs_per_s"]
    medians = [data["sides"][s]["medians"]["msgs_per_s"] for s in ("sitemail", "socket-echo")]
    assert ratio == pytest.approx(medians[0] / medians[1])


def test_cli_reports_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_run.main(["no_such_bench", "--results-dir", str(tmp_path)]) == 2
    assert "no benchmark 'no_such_bench'" in capsys.readouterr().err
    assert bench_run.main(["example_tcp_echo", "-p", "messages"]) == 2
    assert "not KEY=VALUE" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# --- what a run measures: a commit ----------------------------------------------------------


def test_the_report_names_the_commit_measured(source_tree: Path) -> None:
    report = run_benchmark(fake_benchmark([]), repeats=1)
    head = git(source_tree, "rev-parse", "HEAD")
    assert report["conditions"]["source"] == {"commit": head, "dirty": False}
    assert report["conditions"]["versions"]["git"] == head[:7]


def test_a_dirty_tree_is_refused_unless_allowed(source_tree: Path) -> None:
    (source_tree / "code.py").write_text("x = 2\n")
    calls: list[str] = []
    with pytest.raises(BenchError, match=r"has uncommitted changes.*--allow-dirty"):
        run_benchmark(fake_benchmark(calls), repeats=1)
    assert calls == []  # refused before anything ran
    report = run_benchmark(fake_benchmark(calls), repeats=1, allow_dirty=True)
    assert report["conditions"]["source"]["dirty"] is True
    assert report["conditions"]["versions"]["git"].endswith("-dirty")
    # An untracked file is a change too.
    git(source_tree, "checkout", "--", "code.py")
    (source_tree / "new.py").write_text("")
    with pytest.raises(BenchError, match="uncommitted"):
        run_benchmark(fake_benchmark([]), repeats=1)


def test_results_are_output_not_source(source_tree: Path) -> None:
    (source_tree / "bench" / "results" / "old.json").write_text('{"changed": 1}\n')
    (source_tree / "bench" / "results" / "fake.json").write_text("{}\n")
    report = run_benchmark(fake_benchmark([]), repeats=1)
    assert report["conditions"]["source"]["dirty"] is False


def test_a_tree_git_does_not_know_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness, "SOURCE_ROOT", tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    with pytest.raises(BenchError, match="is not a git checkout"):
        run_benchmark(fake_benchmark([]), repeats=1)
    report = run_benchmark(fake_benchmark([]), repeats=1, allow_dirty=True)
    assert report["conditions"]["source"] == {"commit": None, "dirty": True}


def test_cli_refuses_a_dirty_tree_without_allow_dirty(
    source_tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (source_tree / "code.py").write_text("x = 3\n")
    argv = ["example_tcp_echo", "-n", "1", "-p", "messages=50", "--results-dir", str(tmp_path)]
    assert bench_run.main(argv) == 2
    assert "uncommitted changes" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
    assert bench_run.main([*argv, "--allow-dirty"]) == 0
    data = json.loads((tmp_path / "example_tcp_echo.json").read_text())
    assert data["conditions"]["source"]["dirty"] is True


# --- memory and variants --------------------------------------------------------------------


def test_pss_is_the_headline_memory_and_compared_when_both_sides_have_it() -> None:
    calls: list[str] = []
    bench = Benchmark(
        "mem",
        "memory",
        scripted("sitemail", [{"rate": 1.0}] * 2, calls, rss=[900, 800], pss=[300, 400]),
        [
            scripted("postfix", [{"rate": 1.0}] * 2, calls, rss=[2000, 2100], pss=[200, 100]),
            scripted("other", [{"rate": 1.0}] * 2, calls, rss=[450, 450]),
        ],
    )
    report = run_benchmark(bench, repeats=2)
    assert report["sides"]["sitemail"]["peak_pss_kib"] == 400  # the worst trial
    assert report["sides"]["postfix"]["peak_pss_kib"] == 200
    assert [t["peak_pss_kib"] for t in report["sides"]["sitemail"]["trials"]] == [300, 400]
    assert report["ratios"]["postfix"] == {
        "rate": 1.0,
        "peak_pss_kib": 2.0,
        "peak_rss_kib": pytest.approx(900 / 2100),
    }
    assert report["ratios"]["other"] == {"rate": 1.0, "peak_rss_kib": 2.0}  # no PSS there
    lines = format_table(report).splitlines()
    pss = next(i for i, line in enumerate(lines) if line.startswith("peak_pss_kib"))
    rss = next(i for i, line in enumerate(lines) if line.startswith("peak_rss_kib"))
    assert pss < rss and lines[pss].split()[1:5] == ["KiB", "400", "200", "2.00"]


def test_variants_run_beside_sitemail_and_get_lines_of_their_own() -> None:
    calls: list[str] = []
    bench = Benchmark(
        "relay",
        "relay",
        scripted("sitemail", [{"rate": 100.0}] * 2, calls),
        [scripted("socat", [{"rate": 200.0}] * 2, calls)],
        variants=[scripted("inspect-on", [{"rate": 50.0}] * 2, calls)],
    )
    report = run_benchmark(bench, repeats=2)
    assert calls == ["sitemail", "inspect-on", "socat"] * 2
    assert report["conditions"]["order"] == ["sitemail", "inspect-on", "socat"]
    assert report["ratios"] == {"socat": {"rate": 0.5}}  # the like-for-like figure
    assert report["variant_ratios"] == {"inspect-on": {"socat": {"rate": 0.25}}}
    roles = {name: side["role"] for name, side in report["sides"].items()}
    assert roles == {"sitemail": "sitemail", "inspect-on": "variant", "socat": "peer"}
    rows = [line.split() for line in format_table(report).splitlines()]
    assert ["rate", "100", "200", "0.50"] in rows
    assert ["rate", "[inspect-on]", "50.00", "200", "0.25"] in rows
