"""Facts from a running lab: the directory, every hub's queues, the firewalls, probes, logs.

What ``sitemail troubleshoot`` reads, in the order a person would look:

1. the directory (sites, links, servers, connectors), as the servers read it;
2. each 2010 hub's admin API: ``GET /queues`` and ``GET /messages``
   (Get-Queue / Get-Message), with the lab's admin certificate;
3. each firewall's console: ``health`` (ESMTP inspection per interface),
   ``show running-config policy-map``, ``access-list`` and ``access-group``;
4. a probe from every site to every hub of another site, the way the hubs
   connect (through the firewalls, from the sending hub's address), and the
   same hub at its own address (the vantage comparison);
5. the protocol and tracking logs of every server.

Anything that does not answer is noted and the rest goes on: a stopped
firewall or server is itself evidence.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sitemail.diagnose.facts import (
    Facts,
    FirewallFact,
    LegacyIisFact,
    MessageFact,
    PathProbe,
    QueueFact,
)
from sitemail.diagnose.findings import Report
from sitemail.diagnose.logscan import scan_logs
from sitemail.diagnose.probe_run import ProbeSettings, probe
from sitemail.diagnose.rules import build_report
from sitemail.exchange2003.event_log import EventLog
from sitemail.exchange2003.metabase import Metabase, MetabaseError
from sitemail.org.directory import DirectoryError, open_directory
from sitemail.org.lab_state import LabState, lab_directory_url
from sitemail.org.model import (
    ExchangeVersion,
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
from sitemail.org.pki import admin_cert_files, client_ssl_context
from sitemail.org.ports import ADMIN_PORT
from sitemail.server.console import ConsoleClient, ConsoleError

Say = Callable[[str], None]
API_TIMEOUT = 10.0


class LabNotFound(Exception):
    pass


def _quiet(_: str) -> None:
    pass


def collect(
    lab_dir: Path,
    *,
    probes: bool = True,
    say: Say = _quiet,
    probe_settings: ProbeSettings | None = None,
) -> Facts:
    lab_dir = lab_dir.resolve()
    url = lab_directory_url(lab_dir)
    if url is None:
        raise LabNotFound(
            f"no lab in {lab_dir} (no lab.json or directory.db); start one with "
            "`sitemail lab up` or pass --dir, or read log files with --logs PATH"
        )
    facts = Facts("live", lab_dir=str(lab_dir), now=datetime.now(UTC))
    say("reading the directory")
    _read_directory(facts, url)
    state = LabState.load(lab_dir)
    homes = {p.name: Path(p.home) for p in state.processes} if state else {}
    say("asking every hub for its queues and messages")
    _read_queues(facts, lab_dir)
    say("asking the firewalls for their ESMTP inspection")
    _read_firewalls(facts, lab_dir, homes)
    if probes:
        say("probing SMTP between the sites")
        facts.probes = asyncio.run(_probe_paths(facts, probe_settings))
    say("reading the Exchange 2003 servers' IIS metabase and application log")
    _read_legacy_iis(facts, lab_dir, homes)
    say("reading the protocol and tracking logs")
    folders = [homes.get(s.name, lab_dir / "servers" / s.name) for s in facts.servers]
    facts.logs = scan_logs([f for f in folders if f.exists()])
    return facts


def _read_directory(facts: Facts, url: str) -> None:
    try:
        d = open_directory(url)
    except DirectoryError as exc:
        raise LabNotFound(str(exc)) from None
    try:
        orgs = d.list(Organization)
        facts.organization = orgs[0] if orgs else None
        facts.sites = d.list(Site)
        facts.links = d.list(SiteLink)
        facts.servers = d.list(Server)
        facts.connectors = d.list(ReceiveConnector)
        facts.send_connectors = d.list(SendConnector)
        facts.firewall_objects = d.list(Firewall)
        facts.internet_hosts = d.list(InternetHost)
        facts.network_paths = d.list(NetworkPath)
        facts.virtual_directories = d.list(VirtualDirectory)
        settings = d.get(LabSettings, "lab")
        facts.port_offset = settings.port_offset if settings else 0
        if settings is not None:
            facts.system_attendant_interval = settings.system_attendant_interval
    finally:
        d.close()
    if facts.organization is None:
        raise LabNotFound(f"the directory {url} holds no organization")


def _read_legacy_iis(facts: Facts, lab_dir: Path, homes: dict[str, Path]) -> None:
    """Each 2003 server's metabase and application log, from its folder (as an
    administrator opens IIS Manager and Event Viewer there)."""
    for server in facts.servers:
        if server.version is not ExchangeVersion.E2003:
            continue
        home = homes.get(server.name, lab_dir / "servers" / server.name)
        try:
            metabase = Metabase(home).read()
        except MetabaseError as exc:
            facts.legacy_iis.append(LegacyIisFact(server.name, None, error=str(exc)))
            continue
        events = tuple(EventLog(home).read())
        facts.legacy_iis.append(LegacyIisFact(server.name, metabase, events))


def _admin_context(lab_dir: Path) -> ssl.SSLContext:
    pki = lab_dir / "pki"
    ctx = client_ssl_context(pki / "ca.pem", files=admin_cert_files(pki))
    ctx.check_hostname = False  # reached by address; the chain is still checked
    return ctx


def _get(ctx: ssl.SSLContext, address: str, path: str, port_offset: int = 0) -> Any:
    url = f"https://{address}:{ADMIN_PORT + port_offset}{path}"
    with urllib.request.urlopen(url, context=ctx, timeout=API_TIMEOUT) as resp:
        return json.loads(resp.read())


def _read_queues(facts: Facts, lab_dir: Path) -> None:
    try:
        ctx = _admin_context(lab_dir)
    except (OSError, ValueError, ssl.SSLError) as exc:
        facts.notes.append(f"no admin certificate in {lab_dir / 'pki'}: {exc}")
        return
    for hub in facts.hubs():
        if not hub.address:
            continue
        try:
            queues = _get(ctx, hub.address, "/queues", facts.port_offset)
            messages = _get(ctx, hub.address, "/messages", facts.port_offset)
        except (OSError, ValueError, urllib.error.URLError) as exc:
            facts.unreachable_servers[hub.name] = str(exc)
            facts.notes.append(f"{hub.name}'s admin API did not answer: {exc}")
            continue
        facts.queues += [QueueFact.from_api(hub.name, q) for q in queues]
        facts.messages += [MessageFact.from_api(hub.name, m) for m in messages]


def _read_firewalls(facts: Facts, lab_dir: Path, homes: dict[str, Path]) -> None:
    for fw in facts.firewall_objects:
        home = homes.get(fw.name, lab_dir / "firewalls" / fw.name)
        try:
            with ConsoleClient(home / "console.sock", timeout=5.0) as console:
                health = console.call("health")
                shown = console.call("show", what="running-config policy-map")
                rules = [
                    console.call("show", what=f"running-config {what}")
                    for what in ("access-list", "access-group")
                ]
        except (ConsoleError, OSError, ValueError) as exc:
            facts.firewalls.append(FirewallFact(fw.name, fw.site, False, {}, (), str(exc)))
            continue
        esmtp = health.get("esmtp_inspection") or {}
        facts.firewalls.append(
            FirewallFact(
                fw.name,
                fw.site,
                True,
                {str(k): (str(v) if v else None) for k, v in esmtp.items()},
                _lines(shown),
                access_rules=tuple(line for r in rules for line in _lines(r)),
            )
        )


def _lines(shown: dict[str, Any]) -> tuple[str, ...]:
    """The non-empty lines of a console ``show`` answer."""
    return tuple(
        line.rstrip() for line in str(shown.get("output", "")).splitlines() if line.strip()
    )


async def _probe_paths(facts: Facts, settings: ProbeSettings | None) -> list[PathProbe]:
    base = settings or ProbeSettings(total_timeout=30.0, reply_timeout=8.0, connect_timeout=5.0)
    paths = {(p.from_site, p.server): p for p in facts.network_paths}
    port = 25 + facts.port_offset
    jobs: list[tuple[str, str, str, str, str]] = []
    for source_hub in facts.hubs():
        for target in facts.hubs():
            if target.site == source_hub.site or not target.address or not source_hub.address:
                continue
            if any(j[0] == source_hub.site and j[1] == target.name for j in jobs):
                continue  # one probe per (site, target) is enough
            path = paths.get((source_hub.site, target.name))
            address = path.address if path else target.address
            jobs.append((source_hub.site, target.name, "path", address, source_hub.address))
            if address != target.address:
                jobs.append(
                    (source_hub.site, target.name, "direct", target.address, source_hub.address)
                )

    async def one(job: tuple[str, str, str, str, str]) -> PathProbe:
        site, server, via, address, source = job
        result = await probe(address, port, replace(base, source=source))
        return PathProbe(site, server, via, address, port, source, result)

    return list(await asyncio.gather(*(one(j) for j in jobs)))


def troubleshoot_live(
    lab_dir: Path,
    symptom: int | None = None,
    *,
    probes: bool = True,
    say: Say = _quiet,
) -> Report:
    """Collect from the running lab and judge."""
    facts = collect(lab_dir, probes=probes, say=say)
    report = build_report(facts, symptom)
    report.looked_at.insert(0, f"lab: {lab_dir}")
    report.looked_at += facts.notes
    return report
