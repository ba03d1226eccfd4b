"""A delivery is all there or not there after the storing process is killed with SIGKILL.

A child process delivers messages in a tight loop and reports each delivery
the store acknowledged.  The test kills it (kill -9) at varying moments, most
likely in the middle of writing a message, then reopens the database and
checks: every acknowledged delivery is there, every stored message is whole
(bytes and summary), nothing is stored twice, no body is orphaned, and
delivering everything again stores each message exactly once.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sitemail.mailbox.database import StoreDatabase

CHILD = r"""
import sys
from pathlib import Path
from sitemail.mailbox.database import StoreDatabase

sys.path.insert(0, sys.argv[2])
from test_crash_safety import body_of

db = StoreDatabase(Path(sys.argv[1]))
n = 0
while True:
    db.deliver("alice", f"msg-{n}:alice@contoso.com", body_of(n))
    print(n, flush=True)
    n += 1
"""


def body_of(n: int) -> bytes:
    """Message n: sizes vary from a few bytes to ~700 KB, content derived from n."""
    size = (n * 7919) % 700_000 + 10
    seed = hashlib.sha256(str(n).encode()).digest()
    payload = (seed * (size // len(seed) + 1))[:size]
    return f"Subject: message {n}\r\nMessage-ID: <{n}@contoso.com>\r\n\r\n".encode() + payload


def run_and_kill(path: Path, acknowledged_before_kill: int, extra_delay: float) -> list[int]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acknowledged: list[int] = []
    try:
        assert child.stdout is not None
        while len(acknowledged) < acknowledged_before_kill:
            line = child.stdout.readline()
            if not line:
                assert child.stderr is not None
                raise AssertionError(f"child stopped early: {child.stderr.read()}")
            acknowledged.append(int(line))
        time.sleep(extra_delay)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        # Lines already written before the kill count as acknowledged too.
        acknowledged += [int(x) for x in child.stdout.read().split()]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    return acknowledged


@pytest.mark.parametrize(("before_kill", "delay"), [(3, 0.0), (8, 0.003), (15, 0.011), (4, 0.027)])
def test_deliveries_are_whole_or_absent_after_kill_9(
    tmp_path: Path, before_kill: int, delay: float
) -> None:
    path = tmp_path / "DB01.db"
    acknowledged = run_and_kill(path, before_kill, delay)

    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        keys = [r[0] for r in raw.execute("SELECT key FROM deliveries")]
        orphans = raw.execute(
            "SELECT COUNT(*) FROM contents WHERE id NOT IN (SELECT content_id FROM messages)"
        ).fetchone()[0]
    finally:
        raw.close()
    assert orphans == 0
    stored = sorted(int(k.split(":")[0].removeprefix("msg-")) for k in keys)
    # Acknowledged means durable; at most the one in flight may be there unacknowledged.
    assert set(acknowledged) <= set(stored)
    assert stored == list(range(len(stored)))
    assert len(stored) - len(acknowledged) in (0, 1)

    with StoreDatabase(path) as db:
        page = db.list_messages("alice", "inbox", limit=1000, oldest_first=True)
        assert [m.subject for m in page.items] == [f"message {n}" for n in stored]
        for summary in page.items:
            n = int(summary.subject.split()[1])
            assert summary.size == len(body_of(n))
            assert db.read_raw("alice", summary.id) == body_of(n)

        # The hub retries everything it is unsure of: each message ends up stored once.
        upto = len(stored) + 2
        results = [
            db.deliver("alice", f"msg-{n}:alice@contoso.com", body_of(n)) for n in range(upto)
        ]
        assert [r.duplicate for r in results] == [n in stored for n in range(upto)]
        assert db.get_folder("alice", "inbox").total == upto
