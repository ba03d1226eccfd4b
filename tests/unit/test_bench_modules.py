"""The lab benchmarks declare what bench/README.md promises; nothing is measured here."""

from __future__ import annotations

import importlib

import pytest
from bench.harness import SITEMAIL, Benchmark, load_benchmark, merge_parameters
from bench.lab_util import TOPOLOGIES, percentile

# name -> (peers in order, parameters, metrics)
EXPECTED: dict[str, tuple[list[str], set[str], set[str]]] = {
    "smtp_accept": (
        ["postfix"],
        {"sessions", "messages", "size", "keep_open"},
        {"msgs_per_s", "msgs_per_s_kept_open"},
    ),
    "firewall_relay": (
        ["socat", "direct"],
        {"sessions", "messages", "size", "large_messages", "large_size"},
        {"msgs_per_s", "mb_per_s"},
    ),
    "mail_flow": (
        ["accept-only"],
        {"sessions", "messages", "size", "paced_messages", "paced_rate", "poll_ms"},
        {"msgs_per_s", "accept_msgs_per_s", "p50_ms", "p99_ms", "burst_p50_ms", "burst_p99_ms"},
    ),
    "owa_proxy": (
        ["local", "nginx", "aiohttp"],
        {"connections", "threads", "duration_s", "warmup_s", "inbox_messages"},
        {"requests_per_s", "p50_ms", "p99_ms"},
    ),
    "directory_reads": (
        ["embedded", "ldap3"],
        {"mailboxes", "gets", "lists"},
        {"get_mailbox_per_s", "get_mailbox_p50_us", "list_servers_per_s", "list_vdirs_per_s"},
    ),
}


# name -> variants of sitemail (reported on lines of their own)
VARIANTS = {"firewall_relay": ["inspect-on"], "owa_proxy": ["ldap"]}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_benchmark_declares_its_sides_parameters_and_metrics(name: str) -> None:
    benchmark = load_benchmark(name)
    peers, parameters, metrics = EXPECTED[name]
    assert isinstance(benchmark, Benchmark)
    assert benchmark.name == name
    assert not benchmark.self_check
    assert benchmark.sitemail.name == SITEMAIL
    assert [p.name for p in benchmark.peers] == peers
    assert [v.name for v in benchmark.variants] == VARIANTS.get(name, [])
    assert set(benchmark.parameters) == parameters
    assert set(benchmark.metrics) == metrics
    for side in benchmark.sides():
        assert callable(side.trial) and side.description
    for metric in benchmark.metrics.values():
        assert metric.unit and metric.higher_is_better is not None
    # -p KEY=VALUE reads every default back as its own type.
    for key, default in benchmark.parameters.items():
        merged = merge_parameters(benchmark.parameters, {key: str(default)})
        assert merged[key] == default and type(merged[key]) is type(default)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_module_documents_what_it_measures(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    assert module.__doc__ and len(module.__doc__.splitlines()) > 5


def test_the_topologies_the_benchmarks_start_load() -> None:
    from sitemail.org.topology import Topology

    names = sorted(p.name for p in TOPOLOGIES.glob("*.yaml"))
    assert names == ["one_hub.yaml", "two_sites.yaml"]
    one = Topology.load(TOPOLOGIES / "one_hub.yaml").spec
    assert [s.name for s in one.servers] == ["EX-BENCH1"] and not one.firewalls
    (bench_connector,) = one.servers[0].receive_connectors
    assert bench_connector["permission_groups"] == ["AnonymousUsers"]
    assert bench_connector["tarpit_interval"] == 0
    two = Topology.load(TOPOLOGIES / "two_sites.yaml").spec
    assert [f.name for f in two.firewalls] == ["ASA-NY", "ASA-FL"]


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
    with pytest.raises(ValueError):
        percentile([], 0.5)
