"""Everything the rules look at, gathered once: from a running lab, or from logs alone.

Offline (``troubleshoot --logs``) only :attr:`Facts.logs` is filled; from a
live lab the directory snapshot, the queues and messages of every hub, the
firewalls' state and the probes between sites are there too.  The rules
read whatever is present and say less when less is known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sitemail.diagnose.logscan import LogDigest
from sitemail.diagnose.probe import ProbeResult
from sitemail.exchange2003.event_log import EventEntry
from sitemail.exchange2003.metabase import IisAuth
from sitemail.org.model import (
    Firewall,
    InternetHost,
    LabSettings,
    NetworkPath,
    Organization,
    ReceiveConnector,
    SendConnector,
    Server,
    Site,
    SiteLink,
    VirtualDirectory,
)


@dataclass(frozen=True, slots=True)
class QueueFact:
    server: str
    identity: str
    delivery_type: str
    next_hop: str
    status: str
    message_count: int
    last_error: str
    retry_count: int = 0
    next_retry_time: str | None = None

    @classmethod
    def from_api(cls, server: str, q: dict[str, Any]) -> QueueFact:
        return cls(
            server,
            str(q.get("Identity", "")),
            str(q.get("DeliveryType", "")),
            str(q.get("NextHopDomain", "")),
            str(q.get("Status", "")),
            int(q.get("MessageCount") or 0),
            str(q.get("LastError") or ""),
            int(q.get("RetryCount") or 0),
            q.get("NextRetryTime"),
        )


@dataclass(frozen=True, slots=True)
class MessageFact:
    server: str
    identity: str
    queue: str
    status: str
    last_error: str
    subject: str
    from_address: str
    date_received: datetime | None
    expiration_time: datetime | None
    retry_count: int
    recipients: tuple[str, ...]

    @classmethod
    def from_api(cls, server: str, m: dict[str, Any]) -> MessageFact:
        return cls(
            server,
            str(m.get("Identity", "")),
            str(m.get("Queue", "")),
            str(m.get("Status", "")),
            str(m.get("LastError") or ""),
            str(m.get("Subject") or ""),
            str(m.get("FromAddress") or ""),
            _when(m.get("DateReceived")),
            _when(m.get("ExpirationTime")),
            int(m.get("RetryCount") or 0),
            tuple(str(r) for r in m.get("Recipients") or ()),
        )


def _when(value: object) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class FirewallFact:
    name: str
    site: str
    reachable: bool
    esmtp: dict[str, str | None]
    """Per interface (``inside``/``outside``): the ESMTP map inspecting port 25, or None."""
    policy_lines: tuple[str, ...] = ()
    """``show running-config policy-map`` lines, for evidence."""
    error: str = ""
    access_rules: tuple[str, ...] = ()
    """``show running-config access-list`` and ``access-group`` lines."""


@dataclass(frozen=True, slots=True)
class PathProbe:
    from_site: str
    server: str
    via: str
    """``path``: the way the sending hub goes (through the firewalls); ``direct``: the
    hub's own address, bypassing them (the vantage comparison, asa-esmtp.md §8 item 8)."""
    address: str
    port: int
    source: str
    result: ProbeResult


@dataclass(frozen=True, slots=True)
class LegacyIisFact:
    """An Exchange 2003 server's IIS as its folder shows it (live only)."""

    server: str
    metabase: dict[str, IisAuth] | None
    """Virtual directory -> what IIS applies; None: the System Attendant never wrote it."""
    events: tuple[EventEntry, ...] = ()
    """The server's application log."""
    error: str = ""


@dataclass(slots=True)
class Facts:
    mode: str
    logs: LogDigest = field(default_factory=LogDigest)
    # The directory (live only).
    organization: Organization | None = None
    sites: list[Site] = field(default_factory=list)
    links: list[SiteLink] = field(default_factory=list)
    servers: list[Server] = field(default_factory=list)
    connectors: list[ReceiveConnector] = field(default_factory=list)
    send_connectors: list[SendConnector] = field(default_factory=list)
    firewall_objects: list[Firewall] = field(default_factory=list)
    internet_hosts: list[InternetHost] = field(default_factory=list)
    network_paths: list[NetworkPath] = field(default_factory=list)
    virtual_directories: list[VirtualDirectory] = field(default_factory=list)
    legacy_iis: list[LegacyIisFact] = field(default_factory=list)
    system_attendant_interval: timedelta = field(
        default_factory=lambda: LabSettings().system_attendant_interval
    )
    port_offset: int = 0
    lab_dir: str | None = None
    # Running state (live only).
    queues: list[QueueFact] = field(default_factory=list)
    messages: list[MessageFact] = field(default_factory=list)
    firewalls: list[FirewallFact] = field(default_factory=list)
    probes: list[PathProbe] = field(default_factory=list)
    unreachable_servers: dict[str, str] = field(default_factory=dict)
    """Hubs whose admin API did not answer, with the reason."""
    now: datetime | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def live(self) -> bool:
        return self.organization is not None

    def hubs(self) -> list[Server]:
        return sorted((s for s in self.servers if s.is_hub), key=lambda s: s.name.lower())

    def server(self, name: str) -> Server | None:
        low = name.lower()
        return next((s for s in self.servers if s.name.lower() == low), None)

    def connectors_of(self, server: str) -> list[ReceiveConnector]:
        low = server.lower()
        return [c for c in self.connectors if c.server.lower() == low]

    def firewall_of_site(self, site: str) -> FirewallFact | None:
        low = site.lower()
        return next((f for f in self.firewalls if f.site.lower() == low), None)

    def queues_to(self, site: str) -> list[QueueFact]:
        low = site.lower()
        return [
            q
            for q in self.queues
            if q.delivery_type == "SmtpRelayToRemoteAdSite" and q.next_hop.lower() == low
        ]
