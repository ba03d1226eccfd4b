"""Which URLs Autodiscover hands out for a mailbox (spec 8.3 table, confidence: general knowledge).

- Internal: the InternalUrl of the matching virtual directory of a CAS in the
  mailbox's site (of the mailbox's version).
- External: that site's ExternalUrl when one is set; otherwise an
  Internet-facing site's ExternalUrl, so that the client reaches a CAS that
  proxies for it.  The answering CAS's own ExternalUrl is preferred (the
  client demonstrably reaches it), then the first 2010 CAS by site and name.
- Exchange 2003 mailboxes have no CAS of their own: the 2010 CAS fronts
  them, so the answering CAS's URLs are handed out (those of the 2010 CAS
  of the mailbox's site when no answering CAS is named).

The first CAS by name is taken, as in :func:`sitemail.access.decision.decide`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sitemail.access.directory_view import (
    AccessDirectory,
    LocationFault,
    MailboxLocation,
    locate,
    location_error,
)
from sitemail.access.outcomes import ClientProtocol, Error, ErrorReason
from sitemail.org.model import ExchangeVersion, Mailbox, VirtualDirectoryKind

__all__ = ["AutodiscoverUrls", "autodiscover_urls"]


@dataclass(frozen=True, slots=True)
class AutodiscoverUrls:
    """The URLs for one virtual directory kind; None means 'leave it out of the answer'."""

    kind: VirtualDirectoryKind
    internal_url: str | None
    internal_server: str | None
    external_url: str | None
    external_server: str | None


def autodiscover_urls(
    directory: AccessDirectory,
    *,
    mailbox: Mailbox,
    kind: VirtualDirectoryKind,
    answering_cas: str | None = None,
) -> AutodiscoverUrls | Error:
    """The Internal and External URLs of ``kind`` for ``mailbox``."""
    found = locate(directory, mailbox)
    if isinstance(found, LocationFault):
        return location_error(ClientProtocol.AUTODISCOVER, mailbox, found)
    site_vdirs = _site_vdirs(directory, found, kind, answering_cas)
    if site_vdirs is None:
        # A 2003 mailbox is fronted by 2010 Client Access servers.
        version = "2010" if found.version == ExchangeVersion.E2003 else found.version.product
        return Error(
            protocol=ClientProtocol.AUTODISCOVER,
            reason=ErrorReason.NO_CLIENT_ACCESS_SERVER_IN_MAILBOX_SITE,
            message=(
                f"No Exchange {version} Client Access server with an {kind} virtual directory "
                f"was found in Active Directory site {found.site}, where {mailbox.alias}'s "
                f"mailbox is, so Autodiscover has no {kind} URL to give; install one there, or "
                "move the mailbox."
            ),
            server=found.server.name,
        )
    internal = next(((s, v.internal_url) for s, v in site_vdirs if v.internal_url), None)
    external = next(((s, v.external_url) for s, v in site_vdirs if v.external_url), None)
    if external is None:
        external = _internet_facing(directory, kind, answering_cas)
    return AutodiscoverUrls(
        kind=kind,
        internal_url=internal[1] if internal else None,
        internal_server=internal[0] if internal else None,
        external_url=external[1] if external else None,
        external_server=external[0] if external else None,
    )


def _site_vdirs(
    directory: AccessDirectory,
    found: MailboxLocation,
    kind: VirtualDirectoryKind,
    answering_cas: str | None,
) -> list[tuple[str, _Urls]] | None:
    if found.version == ExchangeVersion.E2003 and answering_cas is not None:
        servers = [answering_cas]
    else:
        version = ExchangeVersion.E2010 if found.version == ExchangeVersion.E2003 else found.version
        servers = [s.name for s in directory.client_access_servers(version, found.site)]
    out: list[tuple[str, _Urls]] = []
    for name in servers:
        v = directory.vdir(name, kind)
        if v is not None:
            out.append((name, _Urls(v.internal_url, v.external_url)))
    return out or None


@dataclass(frozen=True, slots=True)
class _Urls:
    internal_url: str | None
    external_url: str | None


def _internet_facing(
    directory: AccessDirectory, kind: VirtualDirectoryKind, answering_cas: str | None
) -> tuple[str, str] | None:
    if answering_cas is not None:
        own = directory.vdir(answering_cas, kind)
        if own is not None and own.external_url:
            return answering_cas, own.external_url
    servers = sorted(
        directory.client_access_servers(ExchangeVersion.E2010),
        key=lambda s: (s.site.casefold(), s.name.casefold()),
    )
    for s in servers:
        v = directory.vdir(s.name, kind)
        if v is not None and v.external_url:
            return s.name, v.external_url
    return None
