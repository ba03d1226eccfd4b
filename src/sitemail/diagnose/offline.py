"""``sitemail troubleshoot --logs PATH...``: the causes, from log files alone.

The paths are files or folders as copied from Exchange servers (2007, 2010,
2013+ protocol logs and message tracking logs, found by their headers); the
rules run on the log digest alone, so they say what the logs prove and
point to the commands that would confirm the rest.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from sitemail.diagnose.facts import Facts
from sitemail.diagnose.findings import Report
from sitemail.diagnose.logscan import scan_logs
from sitemail.diagnose.rules import build_report


def troubleshoot_logs(paths: Iterable[Path | str], symptom: int | None = None) -> Report:
    folders = [Path(p) for p in paths]
    missing = [str(p) for p in folders if not p.exists()]
    if missing:
        raise FileNotFoundError(f"no such log file or folder: {', '.join(missing)}")
    started = time.monotonic()
    facts = Facts("logs", logs=scan_logs(folders))
    seconds = time.monotonic() - started
    report = build_report(facts, symptom)
    report.stats["seconds"] = round(seconds, 3)
    if seconds > 0:
        report.stats["mb_per_s"] = round(facts.logs.bytes / 1e6 / seconds, 2)
    report.looked_at.insert(0, "log files: " + ", ".join(str(p) for p in folders))
    return report
