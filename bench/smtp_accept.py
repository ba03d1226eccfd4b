"""SMTP acceptance rate of one hub's receive connector, beside Postfix (issue 3).

Both sides accept durably and only accept:

- sitemail: a one-site lab of one Hub Transport server (``topologies/one_hub.yaml``,
  no firewall) whose "Bench" receive connector takes anonymous mail from
  127.0.0.0/8 for bench.test, with no tarpit.  The hub runs its default
  receive workers (one per CPU, docs/lab.md).  Its Submission queue is
  suspended through the admin API before the run, so the categorizer never
  runs and the measurement is the receive connector making each message
  durable before its 250 (a 5 KB body and its envelope committed to
  mail.que with a WAL fsync, group commit).  Afterwards the queue database
  must hold every message sent.
- postfix: a private instance (own main.cf, master.cf, queue folder) on
  127.77.0.25:25 that puts every message in its hold queue
  (``check_client_access static:HOLD``): cleanup writes and fsyncs the queue
  file as always, nothing is delivered.  Afterwards the hold queue must hold
  every message sent.

The load is Postfix's ``smtp-source``: ``sessions`` parallel sessions,
``messages`` messages of ``size`` bytes, one message per session; with
``keep_open`` a second pass of as many messages over sessions kept open
(``-d``) follows in the same trial, into the same queue.

Memory: the headline is PSS on both sides.  Every 0.2 s during the load a
sampler reads ``Pss:`` from /proc/PID/smaps_rollup of every process of each
side (sitemail: the hub process and its receive workers; Postfix: master and
every process it runs, smtpd, cleanup, qmgr, pickup, anvil ...) and keeps the
peak of the sum (``peak_pss_kib``).  PSS divides a shared page among the
processes that share it, so forty Postfix processes are not charged forty
times for one libc.  ``peak_rss_kib`` is the peak of the summed VmRSS from the
same samples, the second figure.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from bench.harness import Benchmark, Metric, TrialResult, Workload
from bench.lab_util import (
    TOPOLOGIES,
    BenchSetupError,
    MemorySampler,
    postfix_peer,
    process_tree,
    running_lab,
    smtp_source,
)
from sitemail.internet.postfix import postfix_version

HUB = "EX-BENCH1"
TOPOLOGY = TOPOLOGIES / "one_hub.yaml"
SENDER, RECIPIENT = "a@bench.test", "b@bench.test"


def _passes(params: Mapping[str, Any]) -> list[tuple[str, bool]]:
    passes = [("msgs_per_s", False)]
    if params["keep_open"]:
        passes.append(("msgs_per_s_kept_open", True))
    return passes


def _drive(target: str, params: Mapping[str, Any]) -> tuple[dict[str, float], int]:
    """Every pass of smtp-source against ``target``; (metrics, messages sent)."""
    metrics: dict[str, float] = {}
    sent = 0
    for metric, keep_open in _passes(params):
        messages = int(params["messages"])
        run = smtp_source(
            target,
            sessions=int(params["sessions"]),
            messages=messages,
            size=int(params["size"]),
            keep_open=keep_open,
            sender=SENDER,
            recipient=RECIPIENT,
        )
        metrics[metric] = messages / run.seconds
        sent += messages
    return metrics, sent


def sitemail_trial(params: Mapping[str, Any]) -> TrialResult:
    with running_lab(TOPOLOGY) as lab:
        lab.suspend_queue(HUB, "Submission")
        pid = lab.pid(HUB)
        # The lab of one hub is one server process and its receive workers.
        with MemorySampler(lambda: process_tree(pid)) as memory:
            metrics, sent = _drive(f"{lab.address(HUB)}:25", params)
        queued = lab.queue_count(HUB)
        if queued != sent:
            raise BenchSetupError(f"{HUB} acknowledged {sent} messages, its queue holds {queued}")
        return TrialResult(
            metrics,
            peak_rss_kib=memory.peak_kib,
            peak_pss_kib=memory.peak_pss_kib,
            notes={
                "queued": queued,
                "peak_processes": memory.peak_processes,
                "lab_up_s": round(lab.up_s, 3),
                "lab_lock_wait_s": round(lab.lock_wait_s, 3),
            },
        )


def postfix_trial(params: Mapping[str, Any]) -> TrialResult:
    with postfix_peer() as peer:
        with MemorySampler(peer.processes) as memory:
            metrics, sent = _drive(f"{peer.address}:{peer.port}", params)
        # cleanup moves a file to hold/ before the 250; allow a moment for the last rename.
        deadline = time.monotonic() + 10
        while (held := peer.held()) < sent and time.monotonic() < deadline:
            time.sleep(0.1)
        if held != sent:
            raise BenchSetupError(
                f"Postfix acknowledged {sent} messages but holds {held}: {peer.log_tail()}"
            )
        return TrialResult(
            metrics,
            peak_rss_kib=memory.peak_kib,
            peak_pss_kib=memory.peak_pss_kib,
            notes={"held": held, "peak_processes": memory.peak_processes},
        )


def _sitemail_version() -> str:
    import sitemail

    return f"sitemail {sitemail.__version__}"


BENCHMARK = Benchmark(
    name="smtp_accept",
    description=(
        "messages accepted durably per second by one receive connector (Submission "
        "suspended) beside Postfix holding what it accepts; smtp-source load"
    ),
    sitemail=Workload(
        "sitemail",
        sitemail_trial,
        version=_sitemail_version,
        description=(
            "one-hub lab (bench/topologies/one_hub.yaml), anonymous receive connector on "
            "127.1.0.11:25, default receive workers, Submission queue suspended; memory = "
            "peak summed PSS (and RSS) of the hub process and its workers, sampled every 0.2 s"
        ),
    ),
    peers=[
        Workload(
            "postfix",
            postfix_trial,
            version=postfix_version,
            description=(
                "private instance on 127.77.0.25:25, static:HOLD, own queue folder; memory = "
                "peak summed PSS (and RSS) of master and all its processes, sampled every 0.2 s"
            ),
        )
    ],
    parameters={"sessions": 20, "messages": 20000, "size": 5120, "keep_open": True},
    metrics={
        "msgs_per_s": Metric("msg/s", higher_is_better=True, description="one message a session"),
        "msgs_per_s_kept_open": Metric(
            "msg/s", higher_is_better=True, description="sessions kept open (smtp-source -d)"
        ),
    },
)
