"""Lab lifecycle with labs of their own (one lab at a time owns the lab address plan)."""

from __future__ import annotations

import socket
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
    status = sitemail("lab", "status", "--json", "--dir", str(lab_dir)).stdout
    assert '"state": "stopped"' in status
    # Up again on the same folder resumes the same organization.
    sitemail("lab", "up", str(EXAMPLES / "us-eu.yaml"), "--dir", str(lab_dir))
    try:
        assert len(lab_processes(lab_dir)) == 2
    finally:
        sitemail("lab", "down", "--dir", str(lab_dir))
    assert lab_processes(lab_dir) == [] and lab_workers(lab_dir) == []


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
