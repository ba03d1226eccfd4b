"""What the troubleshooter concludes: findings, their evidence and their fixes.

A :class:`Finding` names one cause (a stable ``cause`` id such as
``esmtp-inspection``), says how sure the troubleshooter is, cites the
evidence it rests on (log rows with ``file:line``, a queue's LastError,
connector settings, probe results) and gives the fix as exact commands, in
the order a person types them.  A :class:`Report` holds the findings of one
run and what was looked at; :meth:`Report.to_json` is the ``--json`` schema
(``schema`` 1), kept stable: fields are only ever added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sitemail.diagnose.orgmap import folder_server

SCHEMA_VERSION = 1


class Severity(StrEnum):
    """How much a finding matters: mail stopped, mail at risk, or worth knowing."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


class Confidence(StrEnum):
    """How sure the cause is: ``high`` when the evidence admits no other reading."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class EvidenceKind(StrEnum):
    LOG = "log"  # a protocol or tracking log row
    QUEUE = "queue"  # Get-Queue / Get-Message
    CONNECTOR = "connector"  # receive connector settings
    PROBE = "probe"  # what the path probe saw
    FIREWALL = "firewall"  # a firewall's state
    ROUTING = "routing"  # sites, links, the computed route
    CONFIG = "config"  # other directory settings


class FixKind(StrEnum):
    SHELL = "shell"  # Exchange Management Shell lines
    ASA = "asa"  # Cisco ASA console lines
    NOTE = "note"  # something to do by hand, said in words


# The six symptoms of the Exchange 2010 Mail Flow Troubleshooter (spec 9.1), verbatim.
SYMPTOMS: dict[int, str] = {
    1: "Users are receiving unexpected nondelivery reports when sending messages.",
    2: "Expected messages from senders are delayed or are not received by some recipients.",
    3: "Messages destined to recipients are delayed or are not received by some recipients.",
    4: "Messages are backing up in one or more queues on a server.",
    5: "Messages sent by user(s) are pending submission on their Mailbox server(s).",
    6: "You are experiencing problems with Edge Server synchronization with Active Directory.",
}


@dataclass(frozen=True, slots=True)
class Evidence:
    kind: EvidenceKind
    text: str
    location: str | None = None
    """``file:line`` for a log row, a queue identity, a connector identity, a probe target."""

    @property
    def short_location(self) -> str | None:
        """``EX-NY1/SmtpSend/SEND20261127-1.LOG:8`` for a log row of a server's folders."""
        if not self.location or self.kind is not EvidenceKind.LOG:
            return self.location
        parts = self.location.replace("\\", "/").split("/")
        # The server's folder (not V14 or Hub of an Exchange install path), then the
        # log's own folder and file.
        server = folder_server(self.location).rpartition("!")[2]
        if server and server not in parts[-2:]:
            return "/".join([server, *parts[-2:]])
        return "/".join(parts[-2:])

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "text": self.text, "location": self.location}


@dataclass(frozen=True, slots=True)
class Fix:
    kind: FixKind
    lines: tuple[str, ...]
    target: str | None = None
    """Where to type the lines: a firewall's name, a server; None for the shell."""
    comment: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "target": self.target,
            "lines": list(self.lines),
            "comment": self.comment,
        }


@dataclass(slots=True)
class Finding:
    cause: str
    title: str
    severity: Severity
    confidence: Confidence
    summary: str
    evidence: list[Evidence] = field(default_factory=list)
    fixes: list[Fix] = field(default_factory=list)
    symptoms: tuple[int, ...] = ()
    subject: str = ""
    """What it is about (``NY -> FL``, ``EX-FL1\\Default EX-FL1``): two findings of one
    cause about different subjects are different findings."""

    def to_json(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "title": self.title,
            "severity": self.severity.value,
            "confidence": self.confidence.value,
            "subject": self.subject,
            "summary": self.summary,
            "symptoms": list(self.symptoms),
            "evidence": [e.to_json() for e in self.evidence],
            "fixes": [f.to_json() for f in self.fixes],
        }


_SEVERITY_ORDER = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}
_CONFIDENCE_ORDER = {Confidence.HIGH: 0, Confidence.MEDIUM: 1, Confidence.LOW: 2}


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Errors before warnings, surer causes first, then those with mail waiting in a
    queue (what the reader came for); stable otherwise."""
    return sorted(
        findings,
        key=lambda f: (
            _SEVERITY_ORDER[f.severity],
            _CONFIDENCE_ORDER[f.confidence],
            not any(e.kind is EvidenceKind.QUEUE for e in f.evidence),
        ),
    )


@dataclass(slots=True)
class Report:
    mode: str
    """``live`` (a running lab) or ``logs`` (log files alone)."""
    findings: list[Finding]
    looked_at: list[str] = field(default_factory=list)
    """What was examined, one line each (servers, files, probes), for the reader."""
    symptom: int | None = None
    generated: datetime = field(default_factory=lambda: datetime.now(UTC))
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def causes(self) -> list[str]:
        return [f.cause for f in self.findings]

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "mode": self.mode,
            "generated": self.generated.isoformat(timespec="seconds"),
            "symptom": (
                {"number": self.symptom, "text": SYMPTOMS[self.symptom]}
                if self.symptom is not None
                else None
            ),
            "looked_at": list(self.looked_at),
            "stats": dict(self.stats),
            "findings": [f.to_json() for f in self.findings],
        }


def for_symptom(findings: list[Finding], symptom: int | None) -> list[Finding]:
    """The findings that can explain one of the six symptoms (all when None)."""
    if symptom is None:
        return list(findings)
    if symptom not in SYMPTOMS:
        raise ValueError(f"symptom must be 1-6, got {symptom}")
    return [f for f in findings if symptom in f.symptoms]
