"""What a person reads: the text report, the JSON schema, the HTML page, the CLI's exits."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console

from sitemail.clock import ManualClock
from sitemail.diagnose import samples
from sitemail.diagnose.cli import main, probe_main, routing_main, troubleshoot_main
from sitemail.diagnose.offline import troubleshoot_logs
from sitemail.diagnose.report_html import render_html
from sitemail.diagnose.report_text import print_report
from sitemail.mailflow.protocol_log import ProtocolLog


def masked_logs(root: Path) -> Path:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    log = ProtocolLog.send(
        root / "EX-NY1" / "TransportRoles" / "Logs" / "ProtocolLogs" / "SmtpSend", clock=clock
    )
    samples.send_delivered(log)
    samples.send_masked(log)
    log.close()
    return root


def test_text_report_cites_file_and_line_and_the_fix(tmp_path: Path) -> None:
    report = troubleshoot_logs([masked_logs(tmp_path)])
    console = Console(record=True, width=160)
    print_report(report, console)
    text = console.export_text()
    assert "SMTP inspection between EX-NY1 and EX-FL1" in text
    assert "EX-NY1/SmtpSend/SEND20260302-1.LOG:" in text
    assert "no inspect esmtp" in text and "wr me" in text


def test_json_schema_is_stable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = troubleshoot_main(["--logs", str(masked_logs(tmp_path)), "--json"])
    assert code == 1  # a problem that stops mail
    data = json.loads(capsys.readouterr().out)
    assert data["schema"] == 1 and data["mode"] == "logs" and data["symptom"] is None
    (finding,) = data["findings"]
    assert set(finding) == {
        "cause",
        "title",
        "severity",
        "confidence",
        "subject",
        "summary",
        "symptoms",
        "evidence",
        "fixes",
    }
    assert {"kind", "text", "location"} == set(finding["evidence"][0])
    assert {"kind", "target", "lines", "comment"} == set(finding["fixes"][0])
    assert data["stats"]["rows"] > 0


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            assert name not in {"src", "href"} or not value, "the page must be self-contained"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_page_is_self_contained_and_escaped(tmp_path: Path) -> None:
    report = troubleshoot_logs([masked_logs(tmp_path)])
    report.findings[0].summary += " <script>alert(1)</script>"
    page = render_html(report)
    parser = _Collect()
    parser.feed(page)
    assert "script" not in parser.tags
    text = "".join(parser.text)
    assert "<script>alert(1)</script>" in text  # shown, not run
    assert "no inspect esmtp" in text and "SEND20260302-1.LOG:" in text


def test_html_file_is_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report.html"
    troubleshoot_main(["--logs", str(masked_logs(tmp_path / "logs")), "--html", str(out)])
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert "Report written" in capsys.readouterr().out


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert troubleshoot_main(["--logs", str(tmp_path / "missing")]) == 2
    assert troubleshoot_main(["--dir", str(tmp_path)]) == 2
    assert routing_main(["--dir", str(tmp_path)]) == 2
    assert probe_main(["smtp", "host:99999"]) == 2
    assert main(["nothing"]) == 2
    err = capsys.readouterr().err
    assert "no lab" in err and "not 1-65535" in err


def test_healthy_logs_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clock = ManualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    log = ProtocolLog.send(tmp_path / "SmtpSend", clock=clock)
    samples.send_delivered(log)
    log.close()
    assert troubleshoot_main(["--logs", str(tmp_path)]) == 0
    assert "No problem found in the log files" in capsys.readouterr().out
