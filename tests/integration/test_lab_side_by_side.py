"""Two labs of the seed, side by side on the same loopback addresses, apart by port offset.

Every port a lab uses follows its ``--port-offset``: the services (SMTP, HTTPS, POP3,
IMAP4), the admin API (8443) and the store API (8444).  So two labs with different
offsets and different folders run at the same time, each with its own mail flow.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from tests.conftest import EXAMPLES, RunningLab, in_mailbox, lab_slot, sitemail, submit_as

from sitemail.mailbox.store_client import StoreClient
from sitemail.org.directory import open_directory
from sitemail.org.pki import server_cert_files

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("exclusive_lab")]

T = TypeVar("T")

NY1 = "127.1.0.11"
PASSWORD = "Pa55word!"
# 10000 apart: no shifted port of one lab is a shifted port of the other, and every port
# (22000 + 8444 at most) stays below Linux's ephemeral range.
OFFSETS = (12000, 22000)
ADMIN, STORE = 8443, 8444


@contextmanager
def labs_side_by_side(dirs: list[Path], offsets: tuple[int, ...]) -> Iterator[list[RunningLab]]:
    """Start one seed lab per (folder, offset), all at once; stop them all afterwards.

    It takes the lab slot itself, as any lab fixture does, inside the test's own
    ``exclusive_lab``: the slot must let the same test take it again."""
    up = [sys.executable, "-m", "sitemail", "lab", "up", str(EXAMPLES / "seed.yaml")]
    with lab_slot():
        ups = [
            subprocess.Popen(
                [*up, "--dir", str(d), "--port-offset", str(offset)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for d, offset in zip(dirs, offsets, strict=True)
        ]
        try:
            for d, proc in zip(dirs, ups, strict=True):
                out, err = proc.communicate(timeout=120)
                assert proc.returncode == 0, (
                    f"lab up --dir {d} exited {proc.returncode}\n{out}{err}"
                )
            yield [RunningLab(d) for d in dirs]
        finally:
            for proc in ups:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            for d in dirs:
                sitemail("lab", "down", "--dir", str(d), check=False)


def wait_for(predicate: Callable[[], T], timeout: float = 30.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.25)


def delivered(lab: RunningLab, message_id: str) -> list[dict[str, Any]]:
    """The DELIVER events of a message, as the lab's shell finds them (over the admin API)."""
    line = f"Get-MessageTrackingLog -MessageId {message_id} -EventId DELIVER"
    result = sitemail("shell", "-c", line, "--json", "--dir", str(lab.dir), check=False)
    assert result.returncode == 0, (result.stdout, result.stderr)
    if not result.stdout.strip():
        return []
    data = json.loads(result.stdout)
    return data if isinstance(data, list) else [data]


async def inbox_ids(lab: RunningLab, port: int) -> set[str]:
    """The Message-IDs in bob's Inbox, read through EX-NY1's store API on ``port``."""
    pki = lab.dir / "pki"
    directory = open_directory(str(lab.dir / "directory.db"))
    try:
        async with StoreClient(
            directory,
            lambda server: (NY1, port),
            ca_file=pki / "ca.pem",
            cert_files=server_cert_files(pki, "EX-NY1"),
        ) as store:
            page = await store.list_messages("bob", "inbox", limit=100)
    finally:
        directory.close()
    return {(m.internet_message_id or "").strip("<>") for m in page.items}


def refuses(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((address, port)) != 0


def test_two_seed_labs_with_different_offsets_run_side_by_side(tmp_path: Path) -> None:
    dirs = [tmp_path / "lab-a", tmp_path / "lab-b"]
    with labs_side_by_side(dirs, OFFSETS) as labs:
        # Both report every process running, with every port shifted by their own offset.
        for lab, offset in zip(labs, OFFSETS, strict=True):
            status = lab.status()
            assert status["running"] and status["port_offset"] == offset
            for entry in [*status["servers"], *status["firewalls"]]:
                assert entry["state"] == "running", (lab.dir, entry)
            ny1 = next(s for s in status["servers"] if s["name"] == "EX-NY1")
            assert ny1["address"] == NY1
            endpoints = ny1["endpoints"]
            assert endpoints["admin"] == f"https://{NY1}:{ADMIN + offset}"
            assert endpoints["store"] == f"https://{NY1}:{STORE + offset}"
            assert endpoints["https"] == f"{NY1}:{443 + offset}"
            assert f"{NY1}:{587 + offset}" in endpoints["smtp (Client EX-NY1)"]
        # Nobody listens on an unshifted port of the shared addresses.
        for port in (25, 587, 443, 995, ADMIN, STORE):
            assert refuses(NY1, port), f"something listens on {NY1}:{port}"

        # One message into each lab, on that lab's own submission port.
        ids = [f"side-by-side-{offset}@test" for offset in OFFSETS]
        for offset, message_id in zip(OFFSETS, ids, strict=True):
            # alice to bob, both on EX-NY1, on this lab's own submission port.
            submit_as("alice", ["bob@contoso.com"], message_id, port=587 + offset)

        for lab, offset, message_id, other in zip(labs, OFFSETS, ids, reversed(ids), strict=True):
            # Delivered to bob's mailbox on EX-NY1, as that lab's tracking log says ...
            (event,) = wait_for(lambda lab=lab, m=message_id: delivered(lab, m), 30)
            assert event["Recipients"] == ["bob@contoso.com"]
            assert str(event["ServerHostname"]).split(".")[0].upper() == "EX-NY1"
            # ... and as that lab's store API says, on that lab's own shifted port.
            inbox = asyncio.run(inbox_ids(lab, STORE + offset))
            assert message_id in inbox
            # The other lab's message never came here.
            assert other not in inbox
            assert in_mailbox(lab, "EX-NY1", "NY-DB1", other) == 0
    for d in dirs:
        assert not RunningLab(d).status()["running"]
