"""The benchmark harness: interleaving, medians, ratios, the JSON report, the CLI."""

from __future__ import annotations

import json
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


def scripted(
    name: str, values: list[dict[str, float]], calls: list[str], rss: list[int] | None = None
) -> Workload:
    """A side whose trials return ``values`` in turn and log their order in ``calls``."""
    feed: Iterator[dict[str, float]] = iter(values)
    rss_feed: Iterator[int] | None = iter(rss) if rss is not None else None

    def trial(params: Mapping[str, Any]) -> TrialResult | Mapping[str, float]:
        calls.append(name)
        metrics = next(feed)
        if rss_feed is None:
            return metrics  # the short form: a plain mapping
        return TrialResult(dict(metrics), peak_rss_kib=next(rss_feed), notes={"n": len(calls)})

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
    assert data["self_check"] is False and data["schema"] == 1


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
