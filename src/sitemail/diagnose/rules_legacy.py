"""ActiveSync proxying to Exchange 2003: Integrated Windows authentication and the System Attendant.

A 2010 Client Access server proxies a 2003 mailbox's ActiveSync to the 2003
server's Microsoft-Server-ActiveSync with Integrated Windows authentication
(spec 8.5); without it there the device gets the proxy's error (event 1036).
The seed's trap: turned on in IIS Manager only, it works until the System
Attendant's next pass copies the directory's setting (what Exchange System
Manager says) back over the metabase.  This rule compares the directory's
record with the server's metabase and its application log:

* off in the directory, on in the metabase: proxying works now and stops at
  the next pass (a warning);
* off in both, and the log shows the System Attendant putting it back: the
  IIS change was reverted (an error, high confidence);
* off in both: it was never turned on (an error).

The fix is the same each time: Exchange System Manager, not IIS Manager.
"""

from __future__ import annotations

import re

from sitemail.diagnose.facts import Facts, LegacyIisFact
from sitemail.diagnose.findings import (
    Confidence,
    Evidence,
    EvidenceKind,
    Finding,
    Fix,
    FixKind,
    Severity,
)
from sitemail.exchange2003.event_log import EventEntry
from sitemail.exchange2003.metabase import IisAuth, metabase_location, vdir_leaf
from sitemail.exchange2003.system_attendant import EVENT_ID_METABASE_UPDATED, EVENT_SOURCE
from sitemail.org.model import ExchangeVersion, VirtualDirectory, VirtualDirectoryKind

CAUSE = "exchange2003-activesync-windows-auth"
# The System Attendant's own description (system_attendant.MetabaseChange).
_UPDATED = re.compile(
    r"updated (?P<where>\S+) on \S+: AuthFlags was (?P<was>.+?) and is now (?P<now>.+?), as"
)


def _reverted(events: tuple[EventEntry, ...], where: str) -> list[EventEntry]:
    """The passes that took Integrated Windows authentication (AuthNTLM) away at ``where``."""
    out = []
    for e in events:
        if e.source != EVENT_SOURCE or e.event_id != EVENT_ID_METABASE_UPDATED:
            continue
        m = _UPDATED.search(e.description)
        if m is None or m["where"].casefold() != where.casefold():
            continue
        if IisAuth.from_flags(m["was"]).windows and not IisAuth.from_flags(m["now"]).windows:
            out.append(e)
    return out


def _fix(server: str) -> Fix:
    return Fix(
        FixKind.NOTE,
        (
            f"sitemail esm {server} set Microsoft-Server-ActiveSync windows on",
            f"sitemail esm {server} show Microsoft-Server-ActiveSync",
        ),
        target=server,
        comment=(
            "Use Exchange System Manager, not IIS Manager (sitemail iis): ESM writes Active "
            "Directory, which the System Attendant copies to IIS; a change made in IIS alone "
            "is overwritten at its next pass."
        ),
    )


def _finding(facts: Facts, iis: LegacyIisFact, record: VirtualDirectory) -> Finding | None:
    if record.windows_authentication:
        return None  # what the System Attendant copies is right
    leaf = vdir_leaf(record)
    where = metabase_location(leaf)
    applied = (iis.metabase or {}).get(leaf, IisAuth.of(record))
    interval = _interval(facts)
    evidence = [
        Evidence(
            EvidenceKind.CONFIG,
            "in Active Directory (Exchange System Manager): Integrated Windows authentication off",
            record.identity,
        ),
        Evidence(
            EvidenceKind.CONFIG,
            f"in {iis.server}'s IIS metabase: AuthFlags {applied.auth_flags}",
            where,
        ),
    ]
    reverted = _reverted(iis.events, where)
    evidence += [
        Evidence(
            EvidenceKind.LOG,
            f"{e.time.isoformat(timespec='seconds')} {iis.server} application log, "
            f"{e.source} event {e.event_id}: {e.description}",
        )
        for e in reverted[-3:]
    ]
    who = f"{iis.server}'s Microsoft-Server-ActiveSync"
    if applied.windows:
        title = f"Integrated Windows authentication on {who} was set in IIS Manager only"
        summary = (
            f"IIS on {iis.server} has Integrated Windows authentication on, so Client Access "
            "servers can proxy ActiveSync for its mailboxes now; but Active Directory (what "
            "Exchange System Manager set) has it off, and the System Attendant puts that back "
            f"into IIS at its next pass (every {interval}): proxying will break again."
        )
        severity = Severity.WARNING
        confidence = Confidence.HIGH
    elif reverted:
        last = reverted[-1].time.isoformat(timespec="seconds")
        title = f"The System Attendant reverted Integrated Windows authentication on {who}"
        summary = (
            f"Integrated Windows authentication was turned on for {who} in IIS Manager, and "
            f"the System Attendant put back Active Directory's setting (off) at {last}: "
            "Client Access servers can no longer proxy ActiveSync for its mailboxes (their "
            "requests get 401; event 1036 on the Client Access server)."
        )
        severity, confidence = Severity.ERROR, Confidence.HIGH
    else:
        title = f"Integrated Windows authentication is off on {who}"
        summary = (
            f"Client Access servers proxy ActiveSync for {iis.server}'s mailboxes with "
            "Integrated Windows authentication, which is off there in Active Directory and in "
            "IIS: the proxied requests get 401 (event 1036 on the Client Access server)."
        )
        severity, confidence = Severity.ERROR, Confidence.HIGH
    return Finding(
        cause=CAUSE,
        title=title,
        severity=severity,
        confidence=confidence,
        summary=summary,
        evidence=evidence,
        fixes=[_fix(iis.server)],
        subject=record.identity,
    )


def _interval(facts: Facts) -> str:
    seconds = int(facts.system_attendant_interval.total_seconds())
    return f"{seconds // 60} minutes" if seconds % 60 == 0 else f"{seconds} seconds"


def exchange2003_activesync_windows_auth(facts: Facts) -> list[Finding]:
    out = []
    legacy = {s.name.casefold() for s in facts.servers if s.version is ExchangeVersion.E2003}
    for iis in facts.legacy_iis:
        if iis.server.casefold() not in legacy:
            continue
        for record in facts.virtual_directories:
            if record.server.casefold() == iis.server.casefold() and (
                record.type is VirtualDirectoryKind.EAS
            ):
                found = _finding(facts, iis, record)
                if found is not None:
                    out.append(found)
    return out


RULES = [exchange2003_activesync_windows_auth]
