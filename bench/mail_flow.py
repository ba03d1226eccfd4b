"""End-to-end mail flow NY -> FL -> mailbox, beside the single-hop accept rate (issue 4).

sitemail: the lab of ``topologies/two_sites.yaml`` (the seed's path without
the legacy server) with ``no inspect esmtp`` typed on both ASAs.  The client
connects from the Internet's address 127.99.0.11 to EX-NY1's "Internet"
connector and sends messages of ``size`` bytes to adam@contoso.com, one
message a session.  Each travels EX-NY1 -> ASA-NY -> ASA-FL -> EX-FL1 (SMTP,
TLS, Exchange Server authentication) -> FL-DB1.  A thread polls FL-DB1 every
``poll_ms`` (read-only SQLite, only rows past the last one seen), so a
message's latency is the time from the 250 after its data to the first poll
that sees it in the mailbox (an upper bound, by at most one poll interval).

Two phases per trial, in one lab:

1. paced: ``paced_messages`` sent open-loop at ``paced_rate`` a second, a load
   the path keeps up with; ``p50_ms``/``p99_ms`` are their latencies, the
   delay a message meets on an idle path;
2. burst: ``messages`` over ``sessions`` parallel sessions as fast as EX-NY1
   accepts them; ``msgs_per_s`` = messages / time from the first connection
   to the last delivery, ``accept_msgs_per_s`` = messages / time to the last
   250, ``burst_p50_ms``/``burst_p99_ms`` their latencies (mostly time spent
   waiting in EX-NY1's queue for the next hop).

accept-only: the single hop of bench/smtp_accept (one-hub lab, Submission
suspended), driven by the same client with the same burst, so the ratio of
``msgs_per_s`` says how much of the acceptance rate makes it end to end
(its ``msgs_per_s`` and ``accept_msgs_per_s`` are the same number).

Peak memory (sitemail only): VmHWM of EX-NY1 plus EX-FL1 (the two Exchange
server processes; the firewalls are not counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.harness import Benchmark, Metric, TrialResult, Workload
from bench.lab_util import (
    NO_INSPECT_ESMTP,
    TOPOLOGIES,
    BenchSetupError,
    LabHandle,
    hwm_kib,
    percentile,
    running_lab,
)

TOPOLOGY = TOPOLOGIES / "two_sites.yaml"
ENTRY, TARGET, DATABASE = "EX-NY1", "EX-FL1", "FL-DB1"
INTERNET_SOURCE = "127.99.0.11"  # the lab's Internet host address: the Internet connector's range
SENDER = "carol@fabrikam.com"
RECIPIENT = "adam@contoso.com"

ONE_HOP_TOPOLOGY = TOPOLOGIES / "one_hub.yaml"
ONE_HOP_HUB = "EX-BENCH1"


# --- the client -------------------------------------------------------------------------


class SmtpReplyError(Exception):
    pass


def message_bytes(message_id: str, size: int, sender: str, recipient: str) -> bytes:
    """A message of about ``size`` bytes (headers included), dot-stuffing never needed."""
    head = (
        f"From: <{sender}>\r\nTo: <{recipient}>\r\nSubject: bench {message_id}\r\n"
        f"Date: Tue, 03 Mar 2026 09:00:00 +0000\r\nMessage-ID: <{message_id}>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    line = b"x" * 76 + b"\r\n"
    lines = max(1, (size - len(head)) // len(line))
    return head + line * lines


async def _reply(reader: asyncio.StreamReader, expected: int) -> None:
    while True:
        line = await reader.readline()
        if not line:
            raise SmtpReplyError(f"connection closed while waiting for {expected}")
        if line[3:4] != b"-":
            break
    if int(line[:3]) != expected:
        raise SmtpReplyError(f"expected {expected}, got {line.decode(errors='replace').strip()}")


@dataclass
class ClientRun:
    started: float
    accepted_at: dict[str, float] = field(default_factory=dict)


async def _send_one(
    host: str, port: int, source: str, sender: str, recipient: str, message_id: str, body: bytes
) -> float:
    """One session, one message; the monotonic time of its 250."""
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    try:
        await _reply(reader, 220)
        writer.write(b"EHLO client.bench.test\r\n")
        await _reply(reader, 250)
        writer.write(f"MAIL FROM:<{sender}>\r\n".encode())
        await _reply(reader, 250)
        writer.write(f"RCPT TO:<{recipient}>\r\n".encode())
        await _reply(reader, 250)
        writer.write(b"DATA\r\n")
        await _reply(reader, 354)
        writer.write(body + b".\r\n")
        await _reply(reader, 250)
        accepted = time.monotonic()
        writer.write(b"QUIT\r\n")
        await _reply(reader, 221)
        return accepted
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _message_ids(count: int) -> list[str]:
    tag = uuid.uuid4().hex[:12]
    return [f"bench-{tag}-{i}@client.bench.test" for i in range(count)]


async def _burst(
    target: tuple[str, str], recipient: str, ids: list[str], params: Mapping[str, Any]
) -> ClientRun:
    """Every message as fast as ``sessions`` parallel sessions go (closed loop)."""
    (host, source), size = target, int(params["size"])
    run = ClientRun(time.monotonic())
    pending = iter(ids)

    async def worker() -> None:
        for message_id in pending:
            body = message_bytes(message_id, size, SENDER, recipient)
            run.accepted_at[message_id] = await _send_one(
                host, 25, source, SENDER, recipient, message_id, body
            )

    await asyncio.gather(*(worker() for _ in range(int(params["sessions"]))))
    return run


async def _paced(
    target: tuple[str, str], recipient: str, ids: list[str], params: Mapping[str, Any]
) -> ClientRun:
    """One message every 1/``paced_rate`` s whatever the server does (open loop)."""
    (host, source), size = target, int(params["size"])
    run = ClientRun(time.monotonic())
    interval = 1 / float(params["paced_rate"])

    async def send(message_id: str) -> None:
        body = message_bytes(message_id, size, SENDER, recipient)
        run.accepted_at[message_id] = await _send_one(
            host, 25, source, SENDER, recipient, message_id, body
        )

    tasks = []
    for i, message_id in enumerate(ids):
        delay = run.started + i * interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(send(message_id)))
    await asyncio.gather(*tasks)
    return run


# --- the mailbox poller ---------------------------------------------------------------------


class MailboxWatch:
    """Polls a mailbox database for new messages; when each Message-ID first appeared."""

    def __init__(self, path: Path, interval: float) -> None:
        self.path = path
        self.interval = interval
        self.seen: dict[str, float] = {}
        self.polls = 0
        self._last_id = 0
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="mailbox-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise BenchSetupError(f"polling {self.path.name}: {self._error}")

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.is_set():
                if conn is None and self.path.exists():
                    conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
                if conn is not None:
                    self._poll(conn)
                self._stop.wait(self.interval)
        except BaseException as exc:  # reported by stop(); a thread must not die silently
            self._error = exc
        finally:
            if conn is not None:
                conn.close()

    def _poll(self, conn: sqlite3.Connection) -> None:
        try:
            rows = conn.execute(
                "SELECT m.id, c.internet_message_id FROM messages m "
                "JOIN contents c ON c.id = m.content_id WHERE m.id > ? ORDER BY m.id",
                (self._last_id,),
            ).fetchall()
        except sqlite3.OperationalError:  # the database is still being created
            return
        now = time.monotonic()
        self.polls += 1
        for row_id, message_id in rows:
            self._last_id = max(self._last_id, int(row_id))
            if message_id:
                self.seen.setdefault(str(message_id).strip("<>"), now)


# --- the trials ----------------------------------------------------------------------------


def _await_delivery(watch: MailboxWatch, run: ClientRun, lab: LabHandle) -> list[float]:
    """Wait until every message of ``run`` is in the mailbox; their latencies in ms, sorted."""
    wanted = set(run.accepted_at)
    # Generous: even a slow relay drains ten messages a second.
    deadline = time.monotonic() + 60 + len(wanted) / 10
    while not wanted <= watch.seen.keys() and time.monotonic() < deadline:
        time.sleep(0.05)
    missing = wanted - watch.seen.keys()
    if missing:
        raise BenchSetupError(
            f"{len(missing)} of {len(wanted)} messages never reached {DATABASE} "
            f"({ENTRY} queue holds {lab.queue_count(ENTRY)} messages)"
        )
    return sorted((watch.seen[m] - run.accepted_at[m]) * 1000 for m in wanted)


def sitemail_trial(params: Mapping[str, Any]) -> TrialResult:
    with running_lab(TOPOLOGY) as lab:
        for firewall in ("ASA-NY", "ASA-FL"):
            lab.asa(firewall, NO_INSPECT_ESMTP)
        target = (lab.address(ENTRY), INTERNET_SOURCE)
        watch = MailboxWatch(
            lab.dir / "servers" / TARGET / "mailbox" / f"{DATABASE}.db",
            float(params["poll_ms"]) / 1000,
        )
        watch.start()
        try:
            # First the latency of a path that keeps up, then the burst.
            ids = _message_ids(int(params["paced_messages"]))
            paced = asyncio.run(_paced(target, RECIPIENT, ids, params))
            paced_ms = _await_delivery(watch, paced, lab)
            ids = _message_ids(int(params["messages"]))
            burst = asyncio.run(_burst(target, RECIPIENT, ids, params))
            burst_ms = _await_delivery(watch, burst, lab)
        finally:
            watch.stop()
        memory = {name: hwm_kib(lab.pid(name)) for name in (ENTRY, TARGET)}
        n = len(burst.accepted_at)
        last_accept = max(burst.accepted_at.values())
        last_delivery = max(watch.seen[m] for m in burst.accepted_at)
        return TrialResult(
            {
                "msgs_per_s": n / (last_delivery - burst.started),
                "accept_msgs_per_s": n / (last_accept - burst.started),
                "p50_ms": percentile(paced_ms, 0.50),
                "p99_ms": percentile(paced_ms, 0.99),
                "burst_p50_ms": percentile(burst_ms, 0.50),
                "burst_p99_ms": percentile(burst_ms, 0.99),
            },
            peak_rss_kib=sum(memory.values()),
            notes={
                "vmhwm_kib": memory,
                "polls": watch.polls,
                "paced_max_ms": paced_ms[-1],
                "burst_max_ms": burst_ms[-1],
                "lab_up_s": round(lab.up_s, 3),
                "lab_lock_wait_s": round(lab.lock_wait_s, 3),
            },
        )


def accept_only_trial(params: Mapping[str, Any]) -> TrialResult:
    with running_lab(ONE_HOP_TOPOLOGY) as lab:
        lab.suspend_queue(ONE_HOP_HUB, "Submission")
        target = (lab.address(ONE_HOP_HUB), "127.0.0.1")
        ids = _message_ids(int(params["messages"]))
        run = asyncio.run(_burst(target, "b@bench.test", ids, params))
        queued = lab.queue_count(ONE_HOP_HUB)
        if queued != len(run.accepted_at):
            raise BenchSetupError(f"{len(run.accepted_at)} acknowledged but {queued} queued")
        rate = len(run.accepted_at) / (max(run.accepted_at.values()) - run.started)
        return TrialResult(
            {"msgs_per_s": rate, "accept_msgs_per_s": rate},
            notes={"queued": queued, "lab_lock_wait_s": round(lab.lock_wait_s, 3)},
        )


def _sitemail_version() -> str:
    import sitemail

    return f"sitemail {sitemail.__version__}"


BENCHMARK = Benchmark(
    name="mail_flow",
    description=(
        "end to end Internet -> EX-NY1 -> ASA-NY -> ASA-FL -> EX-FL1 -> FL-DB1 (inspection "
        "off): delivered msgs/s and delivery latency, beside the single-hop accept rate"
    ),
    sitemail=Workload(
        "sitemail",
        sitemail_trial,
        version=_sitemail_version,
        description="two-site lab (bench/topologies/two_sites.yaml), `no inspect esmtp` on both",
    ),
    peers=[
        Workload(
            "accept-only",
            accept_only_trial,
            version=_sitemail_version,
            description="bench/smtp_accept's hub (Submission suspended), the same client and load",
        )
    ],
    parameters={
        "sessions": 20,
        "messages": 2000,
        "size": 5120,
        "paced_messages": 200,
        "paced_rate": 10.0,
        "poll_ms": 10,
    },
    metrics={
        "msgs_per_s": Metric("msg/s", higher_is_better=True),
        "accept_msgs_per_s": Metric("msg/s", higher_is_better=True),
        "p50_ms": Metric("ms", higher_is_better=False),
        "p99_ms": Metric("ms", higher_is_better=False),
        "burst_p50_ms": Metric("ms", higher_is_better=False),
        "burst_p99_ms": Metric("ms", higher_is_better=False),
    },
)
