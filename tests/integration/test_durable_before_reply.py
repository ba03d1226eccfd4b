"""On stable storage before the reply: the order of fsyncs and replies a power cut would test.

A kill -9 loses nothing the process had written, synced or not, so the crash
tests cannot tell a 250 given after an fsync from one given before it.  Here a
real hub and mailbox server (``sitemail serve``, as the lab starts it) runs
under strace, which records every write and every fsync/fdatasync of every
thread and receive worker process, and the tests read the order off the
trace, message by message:

- the hub's ``250 ... Queued mail for delivery`` goes on the client's socket
  only after the queue database's commit of that message (the write carrying
  its row) was synced; a body over 64 KiB also had its spool file synced
  after its last write, and the spool folder (its name) after it was made;
- the queue's report of a delivery (the hub forgetting the message) is written only
  after the mailbox database's commit of that message was synced (the hub delivers to
  its own database through the store of its own process, not over the store API).

The server runs once with a receive worker process (what the lab runs on a
machine with several cores) and once serving SMTP in the hub process itself.
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from tests.conftest import RunningLab, in_mailbox, lab_slot, sitemail, wait_for
from tests.integration.syscall_trace import (
    Call,
    first,
    parse,
    strace_command,
    sync_between,
)

from sitemail.lab.supervisor import probe
from sitemail.org.lab_state import LabState
from sitemail.org.ports import STORE_PORT

pytestmark = pytest.mark.lab

SERVER, DATABASE = "EX-D1", "D-DB1"
TOPOLOGY = """\
organization:
  name: Durable
  accepted_domains: [durable.test]
sites:
  - name: D
servers:
  - name: EX-D1
    site: D
    version: 2010 SP3
    roles: [Mailbox, HubTransport]
    databases: [D-DB1]
    receive_connectors:
      - name: Inbound
        bindings: ["0.0.0.0:25"]
        remote_ip_ranges: ["127.0.0.0/8"]
        auth_mechanism: [Tls]
        permission_groups: [AnonymousUsers]
        tarpit_interval: 0
users:
  - {alias: dora, display_name: Dora D, database: D-DB1, password: "Pa55word!"}
"""
# Up to 64 KiB a body is kept in the queue database itself; above, it is streamed to a
# spool file of its own.
INLINE_LIMIT = 64 * 1024
SIZES = {"small-1": 300, "large-1": 200_000, "small-2": 5_000}


@dataclass(frozen=True)
class Traced:
    calls: list[Call]
    messages: dict[str, int]  # Message-ID -> body size, in the order they were sent
    home: Path  # the server's folder
    smtp: str  # ip:port of its SMTP listener
    store: str  # ip:port of its store API


def message(mid: str, size: int) -> bytes:
    line = b"0123456789" * 7 + b"\r\n"
    return b"Message-ID: " + mid.encode() + b"\r\nSubject: durable\r\n\r\n" + line * (size // 72)


@pytest.fixture(scope="module")
def lab_folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, int]]:
    """A one-server lab, set up (directory, certificates) and stopped: the tests start the
    server themselves, under strace.  Yields (lab folder, address, port offset)."""
    folder = tmp_path_factory.mktemp("durable")
    topology = folder / "durable.yaml"
    topology.write_text(TOPOLOGY)
    lab_dir = folder / "lab"
    with lab_slot():
        sitemail("lab", "up", str(topology), "--dir", str(lab_dir))
        try:
            status = json.loads(sitemail("lab", "status", "--json", "--dir", str(lab_dir)).stdout)
        finally:
            sitemail("lab", "down", "--dir", str(lab_dir))
        [server] = [s for s in status["servers"] if s["name"] == SERVER]
        yield lab_dir, str(server["address"]), int(status["port_offset"])


@pytest.fixture(
    scope="module",
    params=[pytest.param("1", id="receive-worker"), pytest.param("0", id="hub-process")],
)
def traced(request: pytest.FixtureRequest, lab_folder: tuple[Path, str, int]) -> Traced:
    """The server run under strace while the messages are sent, one after the other, each
    delivered before the next is sent (so the store serves one delivery at a time)."""
    lab_dir, address, offset = lab_folder
    workers = str(request.param)
    trace = lab_dir.parent / f"trace-{workers}.txt"
    state = LabState.load(lab_dir)
    assert state is not None
    [record] = [r for r in state.processes if r.name == SERVER]
    command = [sys.executable, "-m", "sitemail", "serve", SERVER]
    command += ["--directory", str(lab_dir / "directory.db"), "--lab-dir", str(lab_dir)]
    env = dict(os.environ, SITEMAIL_RECEIVE_PROCESSES=workers)
    home = Path(record.home)
    with open(home / f"traced-{workers}.log", "wb") as log:
        strace = subprocess.Popen(strace_command(trace, command), env=env, stdout=log, stderr=log)
    try:
        wait_for(
            lambda: strace.poll() is not None or probe(record, lab_dir, offset),
            f"{SERVER} started under strace (see {home}/traced-{workers}.log)",
        )
        assert strace.poll() is None, (home / f"traced-{workers}.log").read_text()
        smtp_port = 25 + offset
        lab = RunningLab(lab_dir)
        # Ids of this run: the store keeps a message it has seen once (the duplicate key).
        messages = {f"<{name}.w{workers}@durable.test>": n for name, n in SIZES.items()}
        with smtplib.SMTP(address, smtp_port, timeout=30) as client:
            client.ehlo("client.durable.test")
            for mid, size in messages.items():
                client.sendmail("sender@durable.test", ["dora@durable.test"], message(mid, size))
                wait_for(partial(in_mailbox, lab, SERVER, DATABASE, mid), f"{mid} delivered")
    finally:
        stop_traced(strace)
    return Traced(
        parse(trace.read_text()),
        messages,
        home,
        f"{address}:{smtp_port}",
        f"{address}:{STORE_PORT + offset}",
    )


def stop_traced(strace: subprocess.Popen[bytes]) -> None:
    """Stop the server strace runs (its child), then strace, which ends with it."""
    children = Path(f"/proc/{strace.pid}/task/{strace.pid}/children")
    try:
        server = [int(pid) for pid in children.read_text().split()]
    except OSError:
        server = []
    for pid in server:
        os.kill(pid, signal.SIGTERM)
    try:
        strace.wait(30)
    except subprocess.TimeoutExpired:
        for pid in server:
            os.kill(pid, signal.SIGKILL)
        strace.wait(10)


# --------------------------------------------------------------------- the hub


def reply_250(t: Traced, mid: str) -> Call:
    """The write of the message's 250 on the client's connection."""
    found = first(
        t.calls,
        lambda c: (
            c.is_write
            and c.ok
            and c.tcp is not None
            and c.tcp[0] == t.smtp
            and f'"250 2.6.0 {mid} [InternalId=' in c.text
        ),
    )
    assert found is not None, f"no 250 for {mid} on {t.smtp} in the trace"
    return found


def queue_commit(t: Traced, mid: str) -> Call:
    """The first write of the message's row into the queue database (its WAL)."""
    queue = str(t.home / "queue")
    found = first(
        t.calls,
        lambda c: c.is_write and c.target.startswith(queue + "/mail.que") and f"{mid}" in c.text,
    )
    assert found is not None, f"{mid} was never written to the queue database"
    return found


def test_the_queue_commit_is_synced_before_the_250(traced: Traced) -> None:
    for mid in traced.messages:
        reply, commit = reply_250(traced, mid), queue_commit(traced, mid)
        assert commit.end < reply.start, f"{mid}: the 250 went out before the queue commit"
        synced = sync_between(traced.calls, commit.target, after=commit, before=reply)
        assert synced is not None, (
            f"{mid}: {commit.target} was written (trace line {commit.start + 1}) but not "
            f"synced before the 250 (line {reply.start + 1}): a power cut would lose an "
            "accepted message"
        )


def test_a_large_body_and_its_name_are_synced_before_the_250(traced: Traced) -> None:
    large = [mid for mid, size in traced.messages.items() if size > INLINE_LIMIT]
    assert large
    for mid in large:
        check_spooled_body(traced, mid)


def check_spooled_body(traced: Traced, mid: str) -> None:
    reply = reply_250(traced, mid)
    spool = str(traced.home / "queue" / "spool")
    before_reply = [c for c in traced.calls if c.start < reply.start]

    def body_write(c: Call) -> bool:
        return c.is_write and c.target.startswith(spool + "/") and c.target.endswith(".eml")

    opened = first(before_reply, lambda c: body_write(c) and f"Message-ID: {mid}" in c.text)
    assert opened is not None, f"{mid}: no spool file was written before the 250"
    writes = [c for c in before_reply if c.target == opened.target and c.is_write]
    assert sum(c.result for c in writes) > traced.messages[mid], "the body is not all there"
    synced = sync_between(traced.calls, opened.target, after=writes[-1], before=reply)
    assert synced is not None, (
        f"{mid}: the spool file {opened.target} was not synced after its last write "
        f"(trace line {writes[-1].end + 1}) and before the 250 (line {reply.start + 1})"
    )
    named = sync_between(traced.calls, spool, after=opened, before=reply)
    assert named is not None, (
        f"{mid}: the spool folder was not synced after {opened.target} was made and before "
        "the 250: after a power cut the queue row could name a file that is not there"
    )


# ----------------------------------------------------------------- the mailbox


def test_the_mailbox_commit_is_synced_before_the_hub_forgets_the_message(traced: Traced) -> None:
    for mid in traced.messages:
        check_delivery(traced, mid)


def check_delivery(traced: Traced, mid: str) -> None:
    """The hub delivers to its own database through the store of its own process
    (``delivery_batch.deliver_here``): what must follow the synced mailbox commit is the
    queue's report of the delivery, the next write into the queue database."""
    database = str(traced.home / "mailbox" / f"{DATABASE}.db")
    queue = str(traced.home / "queue" / "mail.que")
    commit = first(
        traced.calls, lambda c: c.is_write and c.target.startswith(database) and mid in c.text
    )
    assert commit is not None, f"{mid} was never written to {database}"
    report = first(
        (c for c in traced.calls if c.start > commit.end),
        lambda c: c.is_write and c.target.startswith(queue),
    )
    assert report is not None, f"{mid}: the queue never heard of the delivery"
    synced = sync_between(traced.calls, commit.target, after=commit, before=report)
    assert synced is not None, (
        f"{mid}: {commit.target} was written (trace line {commit.start + 1}) but not "
        f"synced before the queue reported the delivery (line {report.start + 1}): a power "
        "cut would lose a message the queue no longer holds"
    )
