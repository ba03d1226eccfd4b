"""The benchmark's corpus is what it claims: 2010 protocol logs in which troubleshoot --logs
finds the inspection in exactly the sessions grep counts."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bench.troubleshoot_logs import PATTERN, make_corpus

from sitemail.diagnose.logs import LogKind
from sitemail.diagnose.logscan import Outcome, scan_logs


def test_corpus_is_found_by_both_sides_alike(tmp_path: Path) -> None:
    folder = make_corpus(tmp_path, size_mb=1, file_mb=1, failure_every=10)
    assert make_corpus(tmp_path, size_mb=1, file_mb=1, failure_every=10) == folder  # cached
    size = sum(p.stat().st_size for p in folder.rglob("*.LOG"))
    assert 1024 * 1024 <= size < 1024 * 1024 + 64 * 1024
    digest = scan_logs([folder])
    masked = digest.by_outcome(LogKind.SMTP_SEND, Outcome.MASKED)
    found = sum(g.count for _, g in masked)
    grep = subprocess.run(
        ["grep", "-c", "-r", PATTERN, str(folder)], capture_output=True, text=True
    )
    counted = sum(int(line.rsplit(":", 1)[1]) for line in grep.stdout.splitlines())
    assert found == counted > 0
    assert {k[1] for k, _ in masked} == {"EX-NY1"}
