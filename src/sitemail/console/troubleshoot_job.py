"""The live troubleshooter as a background job of the console, with its progress.

``sitemail troubleshoot`` on a lab (:func:`sitemail.diagnose.live.troubleshoot_live`)
reads the directory, asks every hub for its queues, asks the firewalls, probes
SMTP between the sites and scans the logs: seconds to minutes.  The console
runs it on a thread of its own (not the worker thread the pages use, which
must stay free for them) and the page polls the job: the steps done so far,
each with the time it began, then the report as JSON (the same report as
``--json``).  One job at a time: asking again while one runs returns that one.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sitemail.diagnose.findings import Report

#: The steps :func:`sitemail.diagnose.live.collect` announces, in order (what the bar counts).
STEPS = 5

Runner = Callable[[Path, bool, Callable[[str], None]], Report]


def live_runner(lab_dir: Path, probes: bool, say: Callable[[str], None]) -> Report:
    from sitemail.diagnose.live import troubleshoot_live

    return troubleshoot_live(lab_dir, probes=probes, say=say)


@dataclass
class Job:
    id: str
    probes: bool
    started: float = field(default_factory=time.monotonic)
    steps: list[tuple[float, str]] = field(default_factory=list)
    state: str = "running"  # running, done, failed
    report: dict[str, Any] | None = None
    error: str | None = None
    finished: float | None = None

    def to_json(self) -> dict[str, Any]:
        end = self.finished if self.finished is not None else time.monotonic()
        total = STEPS if self.probes else STEPS - 1
        return {
            "id": self.id,
            "state": self.state,
            "probes": self.probes,
            "elapsed": round(end - self.started, 1),
            "steps": [{"at": round(at, 1), "text": text} for at, text in self.steps],
            "progress": {
                "done": len(self.steps) if self.state == "running" else total,
                "total": total,
            },
            "report": self.report,
            "error": self.error,
        }


class TroubleshootJobs:
    """The console's troubleshooter job (the latest one)."""

    def __init__(self, lab_dir: Path, runner: Runner = live_runner) -> None:
        self.lab_dir = lab_dir
        self.runner = runner
        self._lock = threading.Lock()
        self.job: Job | None = None

    def start(self, probes: bool) -> Job:
        with self._lock:
            if self.job is not None and self.job.state == "running":
                return self.job
            job = Job(secrets.token_hex(8), probes)
            self.job = job
        threading.Thread(
            target=self._run, args=(job,), name="console-troubleshoot", daemon=True
        ).start()
        return job

    def _run(self, job: Job) -> None:
        def say(text: str) -> None:
            job.steps.append((time.monotonic() - job.started, text))

        try:
            report = self.runner(self.lab_dir, job.probes, say)
        except Exception as error:  # the job reports any failure; the console goes on
            job.error = f"The troubleshooter stopped: {error}"
            job.state = "failed"
        else:
            job.report = report.to_json()
            job.state = "done"
        job.finished = time.monotonic()

    def status(self) -> dict[str, Any] | None:
        return self.job.to_json() if self.job is not None else None


__all__ = ["STEPS", "Job", "TroubleshootJobs", "live_runner"]
