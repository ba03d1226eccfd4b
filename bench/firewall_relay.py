"""Relay throughput through the emulated ASA, beside socat (issue 5).

One firewall process alone (``sitemail serve ASA-BENCH`` from a hand-made lab
folder, as tests/integration/test_firewall_process.py starts one) relays
127.78.1.1:25 to Postfix's ``smtp-sink`` on 127.78.2.1:25, which discards
everything; ``smtp-source`` pushes mail through it.  Each trial starts its
own relay and sink and stops both.

Sides:

- sitemail: the firewall after ``no inspect esmtp`` typed at its console
  (``sitemail asa ASA-BENCH -c ...``): a plain TCP relay, like for like with
  socat, so this is the figure the ratios compare;
- inspect-on (a variant of sitemail, on lines of its own): the same firewall
  with its factory configuration, ``inspect esmtp`` on (banner masking, EHLO
  filtering, command checks on every line), work socat does not do;
- socat: ``socat TCP-LISTEN:25,bind=127.77.1.1,fork,reuseaddr TCP:127.78.2.1:25``,
  default buffer size, one forked process per connection;
- direct: smtp-source straight to smtp-sink, the ceiling of the load itself.

Two passes per trial: ``messages`` messages of ``size`` bytes give msgs/s,
then ``large_messages`` of ``large_size`` bytes give MB/s (10^6 bytes of
message body per second), both over ``sessions`` parallel sessions, one
message a session.  Memory on every relay side the same way: the peak of the
summed PSS (and RSS) of its processes (the firewall process; socat's listener
and its forked children), sampled every 0.2 s; none for direct.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from bench.harness import Benchmark, Metric, TrialResult, Workload
from bench.lab_util import (
    NO_INSPECT_ESMTP,
    BenchSetupError,
    MemorySampler,
    children_of,
    firewall_alone,
    smtp_sink,
    smtp_source,
    socat_relay,
)

FIREWALL = "ASA-BENCH"
RELAY = "127.78.1.1"  # the firewall's relayed address
SINK = "127.78.2.1"  # smtp-sink behind it
SOCAT = "127.77.1.1"  # socat's listening address
PORT = 25


def _drive(target: str, params: Mapping[str, Any]) -> dict[str, float]:
    sessions = int(params["sessions"])
    small, large = int(params["messages"]), int(params["large_messages"])
    run = smtp_source(target, sessions=sessions, messages=small, size=int(params["size"]))
    msgs_per_s = small / run.seconds
    size = int(params["large_size"])
    run = smtp_source(target, sessions=sessions, messages=large, size=size)
    return {"msgs_per_s": msgs_per_s, "mb_per_s": large * size / run.seconds / 1e6}


@contextlib.contextmanager
def _sink() -> Iterator[None]:
    with smtp_sink(SINK, PORT):
        yield


def _firewall_trial(params: Mapping[str, Any], *, inspect: bool) -> TrialResult:
    with _sink(), firewall_alone(FIREWALL, RELAY, SINK) as fw:
        if not inspect:
            fw.asa(NO_INSPECT_ESMTP)
        state = fw.console("health")["esmtp_inspection"]
        if bool(state.get("outside")) != inspect:
            raise BenchSetupError(f"{FIREWALL}: ESMTP inspection is {state}, expected {inspect}")
        with MemorySampler(lambda: [fw.proc.pid]) as memory:
            metrics = _drive(f"{RELAY}:{PORT}", params)
        counters = fw.console("counters").get("inspect", {}).get("esmtp", {})
        return TrialResult(
            metrics,
            peak_rss_kib=memory.peak_kib,
            peak_pss_kib=memory.peak_pss_kib,
            notes={"esmtp_inspection": state, "counters": counters},
        )


def inspect_on_trial(params: Mapping[str, Any]) -> TrialResult:
    return _firewall_trial(params, inspect=True)


def inspect_off_trial(params: Mapping[str, Any]) -> TrialResult:
    return _firewall_trial(params, inspect=False)


def socat_trial(params: Mapping[str, Any]) -> TrialResult:
    with _sink(), socat_relay(SOCAT, PORT, SINK) as pid:
        with MemorySampler(lambda: [pid, *children_of(pid)]) as memory:
            metrics = _drive(f"{SOCAT}:{PORT}", params)
        return TrialResult(
            metrics,
            peak_rss_kib=memory.peak_kib,
            peak_pss_kib=memory.peak_pss_kib,
            notes={"peak_processes": memory.peak_processes},
        )


def direct_trial(params: Mapping[str, Any]) -> TrialResult:
    with _sink():
        return TrialResult(_drive(f"{SINK}:{PORT}", params))


def _sitemail_version() -> str:
    import sitemail

    return f"sitemail {sitemail.__version__}"


def _socat_version() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["socat", "-V"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.stdout.splitlines():
        if line.startswith("socat version"):
            return line.split(" on ")[0].strip()
    return None


BENCHMARK = Benchmark(
    name="firewall_relay",
    description=(
        "SMTP relay throughput through one firewall process, ESMTP inspection off (like for "
        "like with socat) and on (its own lines), beside socat and no relay; "
        "smtp-source -> relay -> smtp-sink"
    ),
    sitemail=Workload(
        "sitemail",
        inspect_off_trial,
        version=_sitemail_version,
        description="firewall process alone after `no inspect esmtp`: a plain relay",
    ),
    variants=[
        Workload(
            "inspect-on",
            inspect_on_trial,
            version=_sitemail_version,
            description="the same firewall, factory configuration (inspect esmtp on)",
        )
    ],
    peers=[
        Workload(
            "socat",
            socat_trial,
            version=_socat_version,
            description="socat TCP-LISTEN fork relay",
        ),
        Workload(
            "direct",
            direct_trial,
            version="no relay",
            description="smtp-source straight to smtp-sink: the ceiling of the load",
        ),
    ],
    parameters={
        "sessions": 20,
        "messages": 10000,
        "size": 5120,
        "large_messages": 3000,
        "large_size": 102400,
    },
    metrics={
        "msgs_per_s": Metric("msg/s", higher_is_better=True, description="messages of `size`"),
        "mb_per_s": Metric(
            "MB/s", higher_is_better=True, description="10^6 body bytes/s, `large_size` messages"
        ),
    },
)
