"""``sitemail troubleshoot --logs PATH...``: the causes, from log files alone.

The paths are files, folders, ``.zip`` archives or ``.gz`` files as copied
from Exchange servers (2007, 2010, 2013+ protocol logs and message tracking
logs, found by their headers); the rules (:mod:`.rules_logs`) run on the log
digest alone, so they say what the logs prove and point to the commands
that would confirm the rest.
"""

from __future__ import annotations

import dataclasses
import importlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from sitemail.diagnose.findings import Report
from sitemail.diagnose.logs.archives import ArchiveError, unpacked
from sitemail.diagnose.logscan import Progress, scan_logs

#: What the report needs and the scan does not (the rules, the organization model
#: with pydantic): imported while the workers scan the first files, not before.
_REPORT_MODULES = ("sitemail.diagnose.facts", "sitemail.diagnose.rules")

__all__ = ["ArchiveError", "troubleshoot_logs"]


def troubleshoot_logs(
    paths: Iterable[Path | str],
    symptom: int | None = None,
    *,
    progress: Progress | None = None,
    started: Callable[[], None] | None = None,
) -> Report:
    """The report for the logs at ``paths``; ``progress(done, total)`` is told bytes read."""
    given = [Path(p) for p in paths]
    missing = [str(p) for p in given if not p.exists()]
    if missing:
        raise FileNotFoundError(f"no such log file or folder: {', '.join(missing)}")
    began = time.monotonic()
    with unpacked(given) as files:
        if started is not None:
            started()
        digest = scan_logs(files.paths, progress=progress, idle=_import_report_modules)
        from sitemail.diagnose.facts import Facts
        from sitemail.diagnose.rules import build_report

        facts = Facts("logs", logs=digest)
        seconds = time.monotonic() - began
        report = build_report(facts, symptom)
        if files.labels:
            _relabel(report, files.label)
            facts.logs.files = [files.label(f) for f in facts.logs.files]
    report.stats["seconds"] = round(seconds, 3)
    if seconds > 0:
        report.stats["mb_per_s"] = round(facts.logs.bytes / 1e6 / seconds, 2)
    report.looked_at.insert(0, "log files: " + ", ".join(str(p) for p in given))
    return report


def _import_report_modules() -> None:
    for name in _REPORT_MODULES:
        importlib.import_module(name)


def _relabel(report: Report, label: Callable[[str], str]) -> None:
    """Evidence that cites an unpacked copy cites the archive member instead."""
    for finding in report.findings:
        finding.evidence = [
            dataclasses.replace(e, location=label(e.location)) if e.location else e
            for e in finding.evidence
        ]
