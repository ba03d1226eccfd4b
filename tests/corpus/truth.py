"""The ground truth of a generated organization, and the cause families it can hold.

``CAUSES`` are the cause ids a troubleshooter's report uses; ``VARIANTS`` the
ways the generator makes each one show in the logs.  ``VISIBILITY`` says for
each variant which logs may carry the fault: ``send`` (only the sending hubs'
SmtpSend logs), ``recv`` (only the receiving hub's SmtpReceive log) or
``both``.  The generator always keeps the fault visible in at least one of
them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Bumped whenever the generator writes different logs for the same seed (caches key on it).
GENERATOR_VERSION = 1

CAUSES: tuple[str, ...] = (
    "esmtp-inspection",
    "connector-auth-mechanism",
    "connector-permission-groups",
    "connector-captured",
    "connector-remote-ip-ranges",
    "port-25-unreachable",
    "open-relay",
    "certificate",
)

VARIANTS: dict[str, tuple[str, ...]] = {
    "esmtp-inspection": ("asa-default", "asa-clear-banner", "pix-mailguard", "stripping-proxy"),
    "connector-auth-mechanism": ("tls-integrated-basic", "tls-only", "none"),
    "connector-permission-groups": (
        "send-as",
        "submit",
        "not-authenticated",
        "not-authorized",
        "anonymous-internet",
    ),
    "connector-captured": ("one-hub", "device-relay", "several-hubs"),
    "connector-remote-ip-ranges": ("dropped", "421-dropped", "421-dropped-reason"),
    "port-25-unreachable": ("winsock-10060", "winsock-10061", "421-unable", "2007-failed"),
    "open-relay": ("default-anonymous", "external-authoritative", "widened-relay"),
    "certificate": ("unknown-credentials", "cannot-load", "logon-denied", "temporary-auth-failure"),
}

_SRB = ("send", "recv", "both")
VISIBILITY: dict[tuple[str, str], tuple[str, ...]] = {
    ("esmtp-inspection", "asa-default"): _SRB,
    ("esmtp-inspection", "asa-clear-banner"): ("send", "both"),
    ("esmtp-inspection", "pix-mailguard"): _SRB,
    ("esmtp-inspection", "stripping-proxy"): ("both", "recv"),
    **{("connector-auth-mechanism", v): _SRB for v in VARIANTS["connector-auth-mechanism"]},
    **{
        ("connector-permission-groups", v): _SRB
        for v in VARIANTS["connector-permission-groups"][:4]
    },
    ("connector-permission-groups", "anonymous-internet"): ("recv",),
    **{("connector-captured", v): ("recv", "both") for v in VARIANTS["connector-captured"]},
    **{
        ("connector-remote-ip-ranges", v): ("send", "both")
        for v in VARIANTS["connector-remote-ip-ranges"]
    },
    **{("port-25-unreachable", v): ("send", "both") for v in VARIANTS["port-25-unreachable"]},
    **{("open-relay", v): ("recv", "both") for v in VARIANTS["open-relay"]},
    ("certificate", "unknown-credentials"): _SRB,
    ("certificate", "cannot-load"): ("send", "both"),
    ("certificate", "logon-denied"): ("send", "both"),
    ("certificate", "temporary-auth-failure"): _SRB,
}


def all_variants() -> list[tuple[str, str]]:
    """Every (cause, variant), interleaved: variant 0 of every family, then variant 1 ..."""
    out: list[tuple[str, str]] = []
    for i in range(max(len(v) for v in VARIANTS.values())):
        for cause in CAUSES:
            if i < len(VARIANTS[cause]):
                out.append((cause, VARIANTS[cause][i]))
    return out


@dataclass(frozen=True)
class Truth:
    """What is wrong in one generated organization (``cause`` None: nothing)."""

    name: str
    path: Path
    healthy: bool
    cause: str | None
    variant: str
    subjects: tuple[str, ...]
    servers: tuple[str, ...]
    release: str
    seed: int = 0
    visible_in: str = ""
    """``send``, ``recv`` or ``both``: which logs carry the fault (empty when healthy)."""
    zipped: str | None = None
    fault_start: str | None = None
    notes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "healthy": self.healthy,
            "cause": self.cause,
            "variant": self.variant,
            "subjects": list(self.subjects),
            "servers": list(self.servers),
            "release": self.release,
            "seed": self.seed,
            "visible_in": self.visible_in,
            "zipped": self.zipped,
            "fault_start": self.fault_start,
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Truth:
        return cls(
            name=data["name"],
            path=Path(data["path"]),
            healthy=bool(data["healthy"]),
            cause=data["cause"],
            variant=data["variant"],
            subjects=tuple(data["subjects"]),
            servers=tuple(data["servers"]),
            release=data["release"],
            seed=int(data.get("seed", 0)),
            visible_in=data.get("visible_in", ""),
            zipped=data.get("zipped"),
            fault_start=data.get("fault_start"),
            notes=tuple(data.get("notes", ())),
        )

    @classmethod
    def load(cls, path: Path) -> Truth:
        return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
