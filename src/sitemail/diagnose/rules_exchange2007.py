"""Proxying to a non-Internet-facing Exchange 2007 site: Integrated Windows authentication.

The seed's "Exchange 2007 (non-internet facing) to Exchange 2007": the
Internet-facing Client Access server proxies a user of the other 2007 site
to that site's 2007 Client Access server, which works only while Integrated
Windows authentication is on for the virtual directory there (one Client
Access server authenticates to another with it; spec 8.3).  A 2010 Client
Access server hands 2007 mailboxes to the same server, so it needs the same.

This rule reads the directory as the decision (``access/decision.py``) does:
for each protocol that proxies (OWA, ActiveSync, EWS), each site with
Exchange 2007 mailboxes whose 2007 Client Access servers are proxied to (no
ExternalUrl there; EWS is never redirected) while some Internet-facing
Client Access server could send its users there, and none of those 2007
virtual directories has Windows authentication on.
"""

from __future__ import annotations

from sitemail.access.decision import WINDOWS_AUTH_CMDLET
from sitemail.diagnose.facts import Facts
from sitemail.diagnose.findings import (
    Confidence,
    Evidence,
    EvidenceKind,
    Finding,
    Fix,
    FixKind,
    Severity,
)
from sitemail.exchange2003.metabase import vdir_leaf
from sitemail.org.model import (
    ExchangeVersion,
    Server,
    ServerRole,
    VirtualDirectory,
    VirtualDirectoryKind,
)

CAUSE = "exchange2007-proxy-windows-auth"
_PROXIED = (VirtualDirectoryKind.OWA, VirtualDirectoryKind.EAS, VirtualDirectoryKind.EWS)
_WHAT = {
    VirtualDirectoryKind.OWA: "Outlook Web Access",
    VirtualDirectoryKind.EAS: "ActiveSync",
    VirtualDirectoryKind.EWS: "Exchange Web Services",
}
_E07, _E10 = ExchangeVersion.E2007, ExchangeVersion.E2010


def _is_cas(server: Server, *versions: ExchangeVersion) -> bool:
    return server.has_role(ServerRole.CLIENT_ACCESS) and server.version in versions


def _fix(server: Server, vdir: VirtualDirectory) -> list[Fix]:
    cmdlet, switch = WINDOWS_AUTH_CMDLET[vdir.type]
    return [
        Fix(
            FixKind.NOTE,
            (
                f'sitemail iis {server.name} set config "Default Web Site/{vdir_leaf(vdir)}" '
                "-section:windowsAuthentication /enabled:true /commit:apphost",
            ),
            target=server.name,
            comment=(
                "The seed turns it on in IIS Manager on the non-Internet-facing 2007 Client "
                "Access server; the shell line below is the same setting."
            ),
        ),
        Fix(FixKind.SHELL, (f'{cmdlet} -Identity "{vdir.identity}" {switch} $true',)),
    ]


def _site_finding(
    facts: Facts, site: str, kind: VirtualDirectoryKind, vdirs: dict[str, VirtualDirectory]
) -> Finding | None:
    targets = sorted(
        (s for s in facts.servers if _is_cas(s, _E07) and s.site.casefold() == site),
        key=lambda s: s.name.casefold(),
    )
    found = [(s, vdirs[s.name.casefold()]) for s in targets if s.name.casefold() in vdirs]
    if not found:
        return None  # the decision's "no 2007 Client Access server" error, not this one
    if kind is not VirtualDirectoryKind.EWS and any(v.external_url for _, v in found):
        return None  # Internet-facing itself: its users are redirected there
    if any(v.windows_authentication and v.internal_url for _, v in found):
        return None  # the decision proxies to that one
    fronts = sorted(
        s.name
        for s in facts.servers
        if _is_cas(s, _E07, _E10)
        and (v := vdirs.get(s.name.casefold())) is not None
        and v.external_url
        # A 2010 CAS hands 2007 mailboxes to a 2007 CAS, of its own site too.
        and (s.site.casefold() != site or s.version is _E10)
    )
    if not fronts:
        return None  # nobody proxies to this site
    server, vdir = found[0]
    what = _WHAT[kind]
    return Finding(
        cause=CAUSE,
        title=f"Integrated Windows authentication is off on {vdir.identity}",
        severity=Severity.ERROR,
        confidence=Confidence.HIGH,
        summary=(
            f"{', '.join(fronts)} proxy {what} for the Exchange 2007 mailboxes of site "
            f"{server.site} to {vdir.internal_url}, since that site has no ExternalUrl; one "
            "Client Access server authenticates to another with Integrated Windows "
            f"authentication, which is off on {server.name}'s virtual directory, so those "
            "users get an error instead of their mailbox."
        ),
        evidence=[
            Evidence(
                EvidenceKind.CONFIG,
                "WindowsAuthentication False, ExternalUrl $null (not Internet-facing)",
                vdir.identity,
            )
        ],
        fixes=_fix(server, vdir),
        subject=vdir.identity,
    )


def exchange2007_proxy_windows_auth(facts: Facts) -> list[Finding]:
    sites = sorted(
        {
            s.site.casefold()
            for s in facts.servers
            if s.version is _E07 and s.has_role(ServerRole.MAILBOX)
        }
    )
    out = []
    for kind in _PROXIED:
        vdirs = {v.server.casefold(): v for v in facts.virtual_directories if v.type is kind}
        for site in sites:
            found = _site_finding(facts, site, kind, vdirs)
            if found is not None:
                out.append(found)
    return out


RULES = [exchange2007_proxy_windows_auth]
