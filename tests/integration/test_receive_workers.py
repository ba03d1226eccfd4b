"""Receive worker processes: sessions on every core, one queue, server-wide limits.

A one-hub lab whose hub runs two receive workers (SITEMAIL_RECEIVE_PROCESSES=2,
whatever the machine's core count): every acknowledged message is in the
queue database exactly once, the protocol log of the sessions of both workers
is one set of files with distinct session ids, MaxInboundConnectionPerSource
counts across the workers, a killed worker is replaced without losing what it
acknowledged, and `lab down` leaves no worker behind.
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.conftest import (
    RunningLab,
    lab_workers,
    lab_zygotes,
    parent_of,
    topology_lab,
    wait_for,
)

from sitemail.diagnose.logs import read_protocol_log
from sitemail.protocols.smtp import replies

pytestmark = [pytest.mark.lab]

HUB = "EX-W1"
TOPOLOGY = """\
organization:
  name: Workers
  accepted_domains: [workers.test]
sites:
  - name: W
servers:
  - name: EX-W1
    site: W
    version: 2010 SP3
    roles: [HubTransport]
    receive_connectors:
      - name: Load
        bindings: ["0.0.0.0:25"]
        remote_ip_ranges: ["127.0.0.0/8"]
        auth_mechanism: [Tls]
        permission_groups: [AnonymousUsers]
        tarpit_interval: 0
        protocol_logging_level: Verbose
        max_inbound_connection_per_source: 4
        max_inbound_connection_percentage_per_source: 100
"""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    env = {"SITEMAIL_RECEIVE_PROCESSES": "2"}
    with topology_lab(tmp_path_factory, "workers", TOPOLOGY, env) as running:
        # Submission stays put: the queue database then shows what was accepted.
        running.run("shell", "-c", f"Suspend-Queue -Identity {HUB}\\Submission")
        yield running


def _address(lab: RunningLab) -> tuple[str, int]:
    status = lab.status()
    [server] = [s for s in status["servers"] if s["name"] == HUB]
    return str(server["address"]), 25 + int(status["port_offset"])


def _hub_pid(lab: RunningLab) -> int:
    [server] = [s for s in lab.status()["servers"] if s["name"] == HUB]
    return int(server["pid"])


def _send(address: tuple[str, int], n: int) -> str:
    with smtplib.SMTP(*address, timeout=30) as client:
        client.ehlo("client.workers.test")
        msg = (
            f"From: a@workers.test\r\nTo: b@workers.test\r\nMessage-ID: <w{n}@test>\r\n"
            f"\r\nbody {n}\r\n"
        )
        client.mail("a@workers.test")
        client.rcpt("b@workers.test")
        code, reply = client.data(msg.encode())
        assert code == 250, reply
        return reply.decode()


def _queued_ids(lab: RunningLab) -> list[str]:
    path = lab.dir / "servers" / HUB / "queue" / "mail.que"
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [row[0] for row in conn.execute("SELECT internet_message_id FROM messages")]
    finally:
        conn.close()


def test_the_hub_serves_sessions_in_two_workers_it_forked_itself(lab: RunningLab) -> None:
    workers = lab_workers(lab.dir)
    assert len(workers) == 2
    assert lab_zygotes(lab.dir) == []  # none waits until a worker must be replaced
    assert {parent_of(pid) for pid in workers} == {_hub_pid(lab)}
    # Forked after the imports: most of each worker's memory is the hub's pages.
    assert all(_shared_kib(pid) > _private_kib(pid) for pid in workers)


def _smaps(pid: int) -> dict[str, int]:
    rows = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
    return {name.rstrip(":"): int(value) for name, value, *_ in (row.split() for row in rows)}


def _shared_kib(pid: int) -> int:
    m = _smaps(pid)
    return m["Shared_Clean"] + m["Shared_Dirty"]


def _private_kib(pid: int) -> int:
    m = _smaps(pid)
    return m["Private_Clean"] + m["Private_Dirty"]


def test_every_acknowledged_message_is_queued_once(lab: RunningLab) -> None:
    address = _address(lab)
    before = len(_queued_ids(lab))
    # Two at a time, under the per-source limit of 4: a session counts until the server
    # has closed it, a moment after the client read the reply to QUIT, so a client that
    # reconnects at once may briefly count twice.
    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda n: _send(address, n), range(60)))
    internal_ids = [r.split("[InternalId=")[1].split("]")[0] for r in replies]
    assert len(set(internal_ids)) == 60
    ids = _queued_ids(lab)
    assert len(ids) == before + 60
    assert sorted(i for i in ids if i.startswith("<w")) == sorted(f"<w{n}@test>" for n in range(60))


def test_one_protocol_log_with_distinct_session_ids(lab: RunningLab) -> None:
    address = _address(lab)
    for n in range(100, 110):
        _send(address, n)
    folder = lab.dir / "servers" / HUB / "TransportRoles" / "Logs" / "ProtocolLogs" / "SmtpReceive"
    rows = list(read_protocol_log(folder))
    sessions: dict[str, list[int | None]] = {}
    for row in rows:
        sessions.setdefault(row.session_id, []).append(row.sequence_number)
    connects = [row.session_id for row in rows if row.event == "+"]
    assert len(connects) == len(set(connects)) >= 10  # no id was handed out twice
    for numbers in sessions.values():
        assert numbers == list(range(len(numbers)))  # each session's rows in order, from 0
    assert all(row.connector_id == f"{HUB}\\Load" for row in rows)


def _banner(address: tuple[str, int]) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(address, timeout=10)
    return sock, sock.recv(512)


def test_the_per_source_limit_counts_across_workers(lab: RunningLab) -> None:
    address = _address(lab)
    held = [_banner(address) for _ in range(4)]
    try:
        assert all(banner.startswith(b"220 ") for _, banner in held)
        extra, reply = _banner(address)
        extra.close()
        assert reply == replies.TOO_MANY_CONNECTIONS_PER_SOURCE.to_bytes()
    finally:
        for sock, _ in held:
            sock.close()
    # Closed sessions are counted down, whichever worker served them.
    deadline = time.monotonic() + 10
    while True:
        sock, banner = _banner(address)
        sock.close()
        if banner.startswith(b"220 ") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert banner.startswith(b"220 ")


def test_a_killed_worker_is_replaced_and_loses_nothing_acknowledged(lab: RunningLab) -> None:
    address = _address(lab)
    acknowledged = [_send(address, n) for n in range(200, 205)]
    victim = lab_workers(lab.dir)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        workers = lab_workers(lab.dir)
        if len(workers) == 2 and victim not in workers:
            break
        time.sleep(0.2)
    assert len(workers) == 2 and victim not in workers
    for n in range(205, 215):  # mail flows on both workers again, counts did not leak
        acknowledged.append(_send(address, n))
    ids = set(_queued_ids(lab))
    assert {f"<w{n}@test>" for n in range(200, 215)} <= ids
    status = json.loads(lab.run("lab", "status", "--json").stdout)
    assert all(s["state"] == "running" for s in status["servers"])


def test_a_killed_zygote_is_replaced_with_its_workers(lab: RunningLab) -> None:
    if not lab_zygotes(lab.dir):
        # The hub forked its first workers itself and cannot fork again once its event
        # loop runs: replacing one starts a zygote, which forks the new worker.
        victim = lab_workers(lab.dir)[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: (
                len(lab_zygotes(lab.dir)) == 1
                and len(workers := lab_workers(lab.dir)) == 2
                and victim not in workers
            ),
            "a zygote and the worker it forked in place of the killed one",
        )
    [zygote] = lab_zygotes(lab.dir)
    assert parent_of(zygote) == _hub_pid(lab)
    its_workers = {pid for pid in lab_workers(lab.dir) if parent_of(pid) == zygote}
    assert its_workers
    os.kill(zygote, signal.SIGKILL)  # its workers die with it (PR_SET_PDEATHSIG)
    wait_for(
        lambda: (
            len(zygotes := lab_zygotes(lab.dir)) == 1
            and zygote not in zygotes
            and len(workers := set(lab_workers(lab.dir))) == 2
            and not workers & its_workers
        ),
        "a new zygote and two workers none of which the killed zygote forked",
    )
    ids = {_send(_address(lab), n) for n in range(300, 304)}
    assert len(ids) == 4
    assert {f"<w{n}@test>" for n in range(300, 304)} <= set(_queued_ids(lab))


def test_a_smaller_log_file_size_applies_to_the_workers_at_once(lab: RunningLab) -> None:
    folder = lab.dir / "servers" / HUB / "TransportRoles" / "Logs" / "ProtocolLogs" / "SmtpReceive"
    before = {p.name for p in folder.glob("RECV*.LOG")}
    lab.run("shell", "-c", f"Set-TransportServer {HUB} -ReceiveProtocolLogMaxFileSize 4KB")
    time.sleep(2)  # the directory watcher's round
    address = _address(lab)
    for n in range(300, 310):
        _send(address, n)
    files = sorted(folder.glob("RECV*.LOG"))
    new = [p for p in files if p.name not in before]
    assert len(new) >= 3  # about 3.5 KB a session: the workers roll files over at 4 KB
    assert all(p.stat().st_size <= 4096 + 1024 for p in new)  # a row may tip a file over
    numbers = [int(p.stem.rsplit("-", 1)[1]) for p in files]
    assert len(numbers) == len(set(numbers))
