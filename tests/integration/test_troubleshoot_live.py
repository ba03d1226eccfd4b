"""`troubleshoot`, `probe smtp` and `routing` against the seed lab as it starts (both ASAs
inspect ESMTP), the way a person runs them."""

from __future__ import annotations

import json
import smtplib
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import RunningLab

from sitemail.org.pki import admin_cert_files, client_ssl_context

pytestmark = pytest.mark.lab

NY1, FL1 = "127.1.0.11", "127.2.0.11"
ASA_NY_TO_FL1 = "127.1.2.11"


def diagnose(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sitemail.diagnose.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def fl_queue(lab: Path) -> dict[str, Any] | None:
    ctx = client_ssl_context(lab / "pki" / "ca.pem", files=admin_cert_files(lab / "pki"))
    ctx.check_hostname = False
    with urllib.request.urlopen(f"https://{NY1}:8443/queues", context=ctx, timeout=30) as r:
        queues = json.loads(r.read())
    return next((q for q in queues if q["NextHopDomain"] == "FL"), None)


@pytest.fixture(scope="module")
def stuck(seed_lab: RunningLab) -> RunningLab:
    """Mail from NY to FL waits in Retry behind the ASAs (story 1 step 2)."""
    with smtplib.SMTP(NY1, 587, timeout=30) as s:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s.starttls(context=ctx)
        s.login("alice", "Pa55word!")
        s.sendmail("alice@contoso.com", ["adam@contoso.com"], "Subject: t\r\n\r\nhi\r\n")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        q = fl_queue(seed_lab.dir)
        if q and q["Status"] == "Retry":
            return seed_lab
        time.sleep(0.3)
    raise AssertionError(f"the queue for FL never went to Retry: {fl_queue(seed_lab.dir)}")


def test_troubleshoot_reads_like_a_diagnosis(stuck: RunningLab, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    proc = diagnose("troubleshoot", "--dir", str(stuck.dir), "--html", str(page))
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    assert "ESMTP inspection on ASA-NY and ASA-FL masks the EHLO reply between NY and FL" in out
    assert "on ASA-NY (sitemail asa ASA-NY)" in out and "on ASA-FL (sitemail asa ASA-FL)" in out
    assert "no inspect esmtp" in out
    identity = fl_queue(stuck.dir)["Identity"]  # type: ignore[index]
    assert f"Retry-Queue -Identity {identity}" in out
    assert "XXXXXXXXXXXXXA (X-ANONYMOUSTLS)" in out
    assert "probing SMTP between the sites" in proc.stderr  # progress
    html = page.read_text()
    assert "esmtp-inspection" in html and "ASA-FL" in html


def test_symptom_filter(stuck: RunningLab) -> None:
    queues = json.loads(
        diagnose("troubleshoot", "--dir", str(stuck.dir), "--symptom", "4", "--json").stdout
    )
    assert queues["symptom"]["number"] == 4
    assert "esmtp-inspection" in [f["cause"] for f in queues["findings"]]
    pending = diagnose("troubleshoot", "--dir", str(stuck.dir), "--symptom", "5", "--no-probe")
    assert pending.returncode == 0
    assert "No problem found" in pending.stdout


def test_probe_tells_the_inspected_path_from_the_clean_one(stuck: RunningLab) -> None:
    through = diagnose("probe", "smtp", f"{ASA_NY_TO_FL1}:25", "--source", NY1, "--json")
    direct = diagnose("probe", "smtp", f"{FL1}:25", "--source", NY1, "--json")
    masked, clean = json.loads(through.stdout), json.loads(direct.stdout)
    assert (through.returncode, masked["verdict"]) == (1, "inspected")
    assert (direct.returncode, clean["verdict"]) == (0, "clean")
    assert masked["masked_keywords"][:2] == ["XXXXXXXA", "XXXXXXXXXXXXXA"]
    assert clean["exchange_server"]  # through the ASA nothing says Exchange any more
    assert masked["transcript"]["quit_sent"] and clean["transcript"]["quit_sent"]


def test_routing_view(stuck: RunningLab, tmp_path: Path) -> None:
    picture = tmp_path / "routing.svg"
    view = json.loads(
        diagnose("routing", "--dir", str(stuck.dir), "--json", "--svg", str(picture)).stdout
    )
    routes = {(r["hub"], r["to_site"]): r for r in view["routes"]}
    assert routes[("EX-NY1", "FL")]["path"] == ["NY", "FL"]
    assert routes[("EX-NY1", "FL")]["cost"] == 100
    assert {s["name"]: s["hubs"] for s in view["sites"]} == {"NY": ["EX-NY1"], "FL": ["EX-FL1"]}
    svg = picture.read_text()
    assert svg.startswith("<svg") and "NY-FL cost 100" in svg
    text = diagnose("routing", "--dir", str(stuck.dir)).stdout
    assert "EX-NY1 (NY) -> FL: NY -> FL (cost 100)" in text
