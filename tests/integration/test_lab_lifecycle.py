"""Lab lifecycle with labs of their own (one lab at a time owns the lab address plan)."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from tests.conftest import EXAMPLES, lab_processes, lab_workers, sitemail

pytestmark = [pytest.mark.lab, pytest.mark.usefixtures("exclusive_lab")]


def test_down_leaves_no_process_behind(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    sitemail("lab", "up", str(EXAMPLES / "us-eu.yaml"), "--dir", str(lab_dir))
    assert len(lab_processes(lab_dir)) == 2
    out = sitemail("lab", "down", "--dir", str(lab_dir)).stdout
    assert "Stopped 2 processes" in out
    assert lab_processes(lab_dir) == [] and lab_workers(lab_dir) == []
    down = sitemail("lab", "status", "--json", "--dir", str(lab_dir), check=False)
    assert down.returncode == 1 and '"state": "stopped"' in down.stdout
    # Up again on the same folder resumes the same organization.
    sitemail("lab", "up", str(EXAMPLES / "us-eu.yaml"), "--dir", str(lab_dir))
    try:
        assert len(lab_processes(lab_dir)) == 2
    finally:
        sitemail("lab", "down", "--dir", str(lab_dir))
    assert lab_processes(lab_dir) == [] and lab_workers(lab_dir) == []


def test_up_after_a_crash_starts_what_is_not_running(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    sitemail("lab", "up", str(EXAMPLES / "us-eu.yaml"), "--dir", str(lab_dir))
    try:
        status = json.loads(sitemail("lab", "status", "--json", "--dir", str(lab_dir)).stdout)
        victim = status["servers"][0]
        os.kill(victim["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            after = sitemail("lab", "status", "--json", "--dir", str(lab_dir), check=False)
            if after.returncode == 1:
                break
            time.sleep(0.2)
        states = {s["name"]: s["state"] for s in json.loads(after.stdout)["servers"]}
        assert after.returncode == 1 and states[victim["name"]] == "stopped"
        up = sitemail("lab", "up", str(EXAMPLES / "us-eu.yaml"), "--dir", str(lab_dir))
        assert f"without {victim['name']}: started again" in up.stderr
        again = sitemail("lab", "status", "--json", "--dir", str(lab_dir))
        assert all(s["state"] == "running" for s in json.loads(again.stdout)["servers"])
        assert len(lab_processes(lab_dir)) == 2
    finally:
        sitemail("lab", "down", "--dir", str(lab_dir))


def test_a_process_that_cannot_start_is_reported_and_up_fails(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    # Take CASHUB2's admin port (127.2.0.11:8443) before the lab starts.
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.2.0.11", 8443))
    blocker.listen()
    try:
        proc = sitemail(
            "lab", "up", str(EXAMPLES / "us-eu.yaml"), "--dir", str(lab_dir), check=False
        )
    finally:
        blocker.close()
    assert proc.returncode == 1
    assert "CASHUB2" in proc.stderr and "address already in use" in proc.stderr.lower()
    assert lab_processes(lab_dir) == []


def test_bad_topology_is_refused_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text((EXAMPLES / "us-eu.yaml").read_text().replace("site: EU", "site: ASIA", 1))
    proc = sitemail("lab", "up", str(bad), "--dir", str(tmp_path / "lab"), check=False)
    assert proc.returncode == 2
    assert f"{bad}:" in proc.stderr and "unknown site 'ASIA'" in proc.stderr
