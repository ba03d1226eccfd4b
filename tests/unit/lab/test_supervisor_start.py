"""`sitemail lab up` waits for each server it started: a child between fork and exec is
starting, not dead (on a busy machine that window was reported as "exited during start-up"
with an empty log)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sitemail.lab.supervisor import _starting_or_ours, _wait_ready
from sitemail.org.lab_state import ProcessRecord


def _record(pid: int) -> ProcessRecord:
    return ProcessRecord(name="EX-NY1", kind="server", site="NY", address="127.1.0.11", pid=pid)


def test_a_child_not_yet_exec_d_is_starting(tmp_path: Path) -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child stays a copy of this process, as before its exec
        os.close(write)
        os.read(read, 1)
        os._exit(0)
    os.close(read)
    try:
        assert _starting_or_ours(_record(pid), tmp_path)
    finally:
        os.write(write, b"x")
        os.close(write)
        os.waitpid(pid, 0)
    # Gone: not starting.
    assert not _starting_or_ours(_record(pid), tmp_path)


def test_another_program_or_a_dead_one_is_not_a_starting_server(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        deadline = time.monotonic() + 10
        while b"time.sleep" not in Path(f"/proc/{other.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline, "the child never exec'd"
            time.sleep(0.01)
        assert not _starting_or_ours(_record(other.pid), tmp_path)
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait()


def test_lab_up_says_how_a_process_that_did_not_start_ended(tmp_path: Path) -> None:
    # Its own children are asked of the kernel, not of /proc: one that still runs is
    # starting whatever its command line shows (here no server's), one that ended is
    # reported with its exit status or signal.
    children = {
        "ASA-NY": subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"]),
        "ASA-FL": subprocess.Popen(
            [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"]
        ),
        "ASA-TX": subprocess.Popen(["sleep", "30"]),
    }
    records = [
        ProcessRecord(name, "firewall", "", "127.0.0.1", pid=child.pid, home=str(tmp_path))
        for name, child in children.items()
    ]
    try:
        failures = _wait_ready(records, tmp_path, 0, timeout=3.0)
    finally:
        children["ASA-TX"].kill()
        children["ASA-TX"].wait()
    assert sorted(failures) == [
        "ASA-FL: exited during start-up (killed by SIGKILL): (no log)",
        "ASA-NY: exited during start-up (exit status 3): (no log)",
        "ASA-TX: not ready after 3 s: (no log)",
    ]
