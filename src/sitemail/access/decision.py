"""The Client Access proxy-or-redirect decision of a 2010 or 2007 CAS (spec 8), as a pure function.

:func:`decide` takes what CAS1 knows after authenticating the user (spec 8.2):
the protocol, the server that took the request, whether it arrived on an
InternalUrl or an ExternalUrl, the user's mailbox, the directory snapshot and,
for ActiveSync, the device's protocol version.  It returns exactly one
:data:`~sitemail.access.outcomes.Outcome`.

The rules, in the order they apply:

1. The receiving server must be an Exchange 2010 or 2007 Client Access server.
   A 2007 one decides as 2007 does (the seed's "Exchange 2007 to Exchange
   2007"): a 2003 mailbox as below; a 2007 mailbox of its own site is served
   locally, one of another site follows rule 7 among the 2007 Client Access
   servers there (proxying needs Integrated Windows authentication on the
   target, redirection is always the Manual page: CrossSiteRedirectType is
   2010's); a 2010 mailbox is refused, since 2007 cannot open it (spec 8.5).
2. The mailbox is located: homeMDB -> database -> server -> site and version.
3. Autodiscover is never proxied: the receiving CAS answers it (spec 8.3).
4. Exchange 2003 mailbox: OWA goes to the receiving OWA virtual directory's
   ``Exchange2003Url``; ActiveSync is proxied straight to the back-end's
   ``/Microsoft-Server-ActiveSync`` (Integrated Windows authentication needed
   there); POP3/IMAP4 are proxied to the back-end on ``ProxyTargetPort``
   (spec 8.4-8.6).  ECP/EWS/availability do not exist for 2003 mailboxes.
5. Exchange 2007 mailbox: a 2007 CAS of the mailbox's site takes over; it is
   redirected to when it has an ExternalUrl (OWA, and ActiveSync devices that
   follow 451), else proxied to (spec 8.4).
6. Exchange 2010 mailbox in the receiving CAS's site: served locally.
7. Exchange 2010 mailbox in another site: OWA/ECP/EAS are redirected to the
   ExternalUrl of the matching virtual directory of a 2010 CAS in the
   mailbox's site when it has one; everything else is proxied to that
   virtual directory's InternalUrl, which needs Windows authentication;
   POP3/IMAP4 are always proxied, over SSL on 995/993 (spec 8.3, 8.5, 8.6).

Security (DESIGN.md): every URL or host an outcome names comes from a
directory object (a virtual directory's InternalUrl/ExternalUrl/
Exchange2003Url, or a server's FQDN).  Nothing the client sends becomes a
target: the only client-supplied input is the ActiveSync version string,
which only chooses between 451 and proxying.

Choices are deterministic: among the Client Access servers of the mailbox's
site, the first by name whose virtual directory fits is taken, so the same
directory always gives the same answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal
from urllib.parse import urlsplit

from sitemail.access.directory_view import (
    AccessDirectory,
    LocationFault,
    MailboxLocation,
    locate,
    location_error,
)
from sitemail.access.outcomes import (
    ClientProtocol,
    Entry,
    Error,
    ErrorReason,
    Legacy,
    LegacyKind,
    Outcome,
    Proxy,
    Redirect,
    RedirectKind,
    ServeLocally,
)
from sitemail.org.model import (
    ExchangeVersion,
    Mailbox,
    RedirectType,
    Server,
    ServerRole,
    VirtualDirectory,
    VirtualDirectoryKind,
)

__all__ = ["DEFAULT_POLICY", "WINDOWS_AUTH_CMDLET", "AccessPolicy", "decide", "parse_eas_version"]


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """Facts the spec gives with low confidence or not at all, as settings.

    Each default is the spec's value (section named) or, where the spec is
    silent, the behaviour described next to it.
    """

    # Spec 7 and 8.6: CAS-to-CAS POP3/IMAP4 proxying uses 995/993 with SSL,
    # whatever port the client used.
    pop3_proxy_port: int = 995
    imap4_proxy_port: int = 993
    # Spec 8.5: devices speaking EAS 12.1 or later handle HTTP 451; older
    # ones (and devices that name no version) are proxied.
    eas_redirect_min_version: tuple[int, int] = (12, 1)
    # Spec 8.3 table: ECP "follows OWA" (confidence: low).
    ecp_redirects: bool = True
    # Not in the spec (general knowledge): only a request that arrived on an
    # ExternalUrl is redirected; one that arrived on an InternalUrl is proxied
    # to the target's InternalUrl, since an inside client may not reach the
    # other site's external name.
    redirect_internal_requests: bool = False
    # Spec 8.5: the ActiveSync web.config switch BlockLegacyMailboxes, default False.
    block_legacy_mailboxes: bool = False
    # Without an EAS virtual directory object of the 2003 back-end in the
    # directory, its ActiveSync endpoint is built from the server's FQDN and
    # its IIS is taken to have Windows authentication on (spec 8.5 says it
    # must); the decision itself never refuses on it (see _exchange2003_activesync).
    exchange2003_activesync_scheme: str = "https"
    exchange2003_activesync_path: str = "/Microsoft-Server-ActiveSync"
    exchange2003_windows_authentication: bool = True
    # Spec 8.6 (confidence: low): the 2003 back-end's POP3/IMAP4 ports, used
    # when the receiving CAS has no Pop/ImapSettings object to read
    # ProxyTargetPort from.
    exchange2003_pop3_port: int = 110
    exchange2003_imap4_port: int = 143


DEFAULT_POLICY = AccessPolicy()

_EAS_VERSION = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})")  # ASCII digits only


def parse_eas_version(text: str | None) -> tuple[int, int] | None:
    """``"14.1"`` -> ``(14, 1)``; None for anything that is not a plain ``major.minor``."""
    if text is None:
        return None
    m = _EAS_VERSION.fullmatch(text.strip())
    return (int(m.group(1)), int(m.group(2))) if m else None


def decide(
    directory: AccessDirectory,
    *,
    protocol: ClientProtocol,
    cas: str,
    mailbox: Mailbox,
    entry: Entry,
    eas_protocol_version: str | None = None,
    policy: AccessPolicy = DEFAULT_POLICY,
) -> Outcome:
    """What the Client Access server ``cas`` does with this user's ``protocol`` request.

    ``entry`` says whether the request arrived on an InternalUrl or an
    ExternalUrl (see :func:`sitemail.access.entry_points.resolve_host`).
    ``eas_protocol_version`` is the device's ``MS-ASProtocolVersion`` (only
    read for ActiveSync).
    """
    cas1 = directory.server(cas)
    if (
        cas1 is None
        or not cas1.has_role(ServerRole.CLIENT_ACCESS)
        or cas1.version not in _DECIDING_VERSIONS
    ):
        return Error(
            protocol=protocol,
            reason=ErrorReason.NOT_A_CLIENT_ACCESS_SERVER,
            message=(
                f"{cas} is not an Exchange 2010 or 2007 Client Access server in the directory, "
                f"so it cannot take {protocol} requests; send clients to the URL of a 2010 "
                "Client Access server."
            ),
            server=cas,
        )
    found = locate(directory, mailbox)
    if isinstance(found, LocationFault):
        return location_error(protocol, mailbox, found)
    return _Decider(directory, protocol, cas1, found, entry, eas_protocol_version, policy).run()


# The Client Access servers that take client requests (2003 has front-end servers, not CAS).
_DECIDING_VERSIONS = (ExchangeVersion.E2010, ExchangeVersion.E2007)

# Which cmdlet and switch fix a virtual directory's settings, for error messages.
WINDOWS_AUTH_CMDLET = {
    VirtualDirectoryKind.OWA: ("Set-OwaVirtualDirectory", "-WindowsAuthentication"),
    VirtualDirectoryKind.ECP: ("Set-EcpVirtualDirectory", "-WindowsAuthentication"),
    VirtualDirectoryKind.EAS: ("Set-ActiveSyncVirtualDirectory", "-WindowsAuthEnabled"),
    VirtualDirectoryKind.EWS: ("Set-WebServicesVirtualDirectory", "-WindowsAuthentication"),
    VirtualDirectoryKind.OAB: ("Set-OabVirtualDirectory", "-WindowsAuthentication"),
    VirtualDirectoryKind.AUTODISCOVER: (
        "Set-AutodiscoverVirtualDirectory",
        "-WindowsAuthentication",
    ),
}


@lru_cache(maxsize=1024)  # directory URLs, asked on every proxied request
def _endpoint(url: str) -> tuple[str, int, bool] | None:
    """host, port, ssl of a directory URL; None when it names no usable host."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    ssl = parts.scheme.lower() == "https"
    return parts.hostname, port if port is not None else (443 if ssl else 80), ssl


class _Decider:
    """One decision: the request's context, and one method per branch of the rules."""

    def __init__(
        self,
        directory: AccessDirectory,
        protocol: ClientProtocol,
        cas1: Server,
        location: MailboxLocation,
        entry: Entry,
        eas_protocol_version: str | None,
        policy: AccessPolicy,
    ) -> None:
        self.d = directory
        self.protocol = protocol
        self.cas1 = cas1
        self.loc = location
        self.entry = entry
        self.eas_version = eas_protocol_version
        self.policy = policy
        self.who = location.mailbox.alias

    # ------------------------------------------------------------------ rules

    def run(self) -> Outcome:
        if self.protocol == ClientProtocol.AUTODISCOVER:
            return ServeLocally(
                protocol=self.protocol,
                mailbox_server=self.loc.server.name,
                database=self.loc.database.name,
                why=(
                    f"Autodiscover is never proxied: {self.cas1.name} answers it with the URLs "
                    f"for {self.who}'s mailbox site {self.loc.site}."
                ),
            )
        version = self.loc.version
        if version == ExchangeVersion.E2003:
            return self._exchange2003()
        if self.cas1.version == ExchangeVersion.E2007:
            return self._from_exchange2007(version)
        if version == ExchangeVersion.E2007:
            return self._exchange2007()
        if self.loc.site.casefold() == self.cas1.site.casefold():
            return ServeLocally(
                protocol=self.protocol,
                mailbox_server=self.loc.server.name,
                database=self.loc.database.name,
                why=(
                    f"{self.who}'s mailbox is on {self.loc.server.name} in site {self.loc.site}, "
                    f"the site of {self.cas1.name}, which serves {self.protocol} itself."
                ),
            )
        return self._other_site()

    def _from_exchange2007(self, version: ExchangeVersion) -> Outcome:
        """A 2007 Client Access server's own decision: 2007 mailboxes only (the seed)."""
        if version != ExchangeVersion.E2007:
            return Error(
                protocol=self.protocol,
                reason=ErrorReason.MAILBOX_NEWER_THAN_CLIENT_ACCESS,
                message=(
                    f"{self.who}'s mailbox is on Exchange {version.product} server "
                    f"{self.loc.server.name}, which Exchange 2007 Client Access server "
                    f"{self.cas1.name} cannot open; send the user to the URL of an Exchange "
                    f"{version.product} Client Access server."
                ),
                server=self.cas1.name,
            )
        if self.protocol == ClientProtocol.ECP:
            return self._not_for_version(version)
        if self.loc.site.casefold() == self.cas1.site.casefold():
            return ServeLocally(
                protocol=self.protocol,
                mailbox_server=self.loc.server.name,
                database=self.loc.database.name,
                why=(
                    f"{self.who}'s mailbox is on {self.loc.server.name} in site {self.loc.site}, "
                    f"the site of Exchange 2007 {self.cas1.name}, which serves {self.protocol}."
                ),
            )
        return self._other_site(version)

    def _other_site(self, version: ExchangeVersion = ExchangeVersion.E2010) -> Outcome:
        """A mailbox of the receiving CAS's version in another site (spec 8.3)."""
        if self.protocol.is_pop_imap:
            return self._pop_imap_proxy(version)
        kind = self._kind()
        targets = self._targets(version, kind)
        if not targets:
            return self._no_cas(version, kind)
        if self._may_redirect():
            for server, vdir in targets:
                url = vdir.external_url
                if url is not None and _endpoint(url) is not None:
                    return self._cross_site_redirect(server, vdir, url)
        return self._http_proxy(targets, version)

    def _exchange2003(self) -> Outcome:
        """A mailbox on an Exchange 2003 back-end (spec 8.4-8.6)."""
        backend = self.loc.server
        if self.protocol == ClientProtocol.OWA:
            source = self.d.vdir(self.cas1.name, VirtualDirectoryKind.OWA)
            url = source.exchange2003_url if source is not None else None
            if source is None or url is None:
                ident = source.identity if source is not None else f"{self.cas1.name}\\owa"
                return Error(
                    protocol=self.protocol,
                    reason=ErrorReason.EXCHANGE2003_URL_NOT_SET,
                    message=(
                        f"{self.who}'s mailbox is on Exchange 2003 server {backend.name}, and "
                        f"Exchange2003Url is not set on {ident}, so Outlook Web App has nowhere "
                        f'to send the user; run Set-OwaVirtualDirectory -Identity "{ident}" '
                        "-Exchange2003Url https://<legacy name>/exchange."
                    ),
                    server=self.cas1.name,
                    vdir=source.identity if source is not None else None,
                )
            kind = self._legacy_owa_kind(source)
            return Legacy(
                protocol=self.protocol,
                kind=LegacyKind.OWA_EXCHANGE2003_URL,
                mailbox_version=ExchangeVersion.E2003,
                action=Redirect(
                    protocol=self.protocol,
                    kind=kind,
                    url=url,
                    target_server=backend.name,
                    vdir=source.identity,
                    why=f"Exchange2003Url of {source.identity}",
                ),
                why=(
                    f"{self.who}'s mailbox is on Exchange 2003 server {backend.name}: Outlook Web "
                    f"App sends the user to {source.identity}'s Exchange2003Url {url}"
                    + (" automatically." if kind == RedirectKind.OWA_SILENT else " by a page.")
                ),
            )
        if self.protocol == ClientProtocol.EAS:
            return self._exchange2003_activesync(backend)
        if self.protocol.is_pop_imap:
            settings = self.d.pop_imap(self.cas1.name, self._pop_imap_name())
            if settings is not None:
                port = settings.proxy_target_port
            elif self.protocol == ClientProtocol.POP3:
                port = self.policy.exchange2003_pop3_port
            else:
                port = self.policy.exchange2003_imap4_port
            return Proxy(
                protocol=self.protocol,
                target_server=backend.name,
                target_version=ExchangeVersion.E2003,
                host=backend.fqdn,
                port=port,
                ssl=False,
                target_url=None,
                vdir=None,
                why=(
                    f"{self.who}'s mailbox is on Exchange 2003 server {backend.name}: "
                    f"{self.cas1.name} relays {self.protocol} to it on ProxyTargetPort {port}."
                ),
            )
        return self._not_for_version(ExchangeVersion.E2003)

    def _exchange2003_activesync(self, backend: Server) -> Outcome:
        if self.policy.block_legacy_mailboxes:
            return Error(
                protocol=self.protocol,
                reason=ErrorReason.LEGACY_MAILBOX_BLOCKED,
                message=(
                    f"ActiveSync for Exchange 2003 mailboxes is blocked on {self.cas1.name} "
                    f"(BlockLegacyMailboxes is True), so {self.who}'s device cannot reach "
                    f"{backend.name}; set BlockLegacyMailboxes to False in the ActiveSync "
                    "web.config, or move the mailbox to Exchange 2010."
                ),
                server=self.cas1.name,
            )
        vdir = self.d.vdir(backend.name, VirtualDirectoryKind.EAS)
        if vdir is not None:
            url, ident = vdir.internal_url, vdir.identity
        else:
            url = (
                f"{self.policy.exchange2003_activesync_scheme}://{backend.fqdn}"
                f"{self.policy.exchange2003_activesync_path}"
            )
            ident = None
        where = ident or f"{backend.name}'s /Microsoft-Server-ActiveSync"
        endpoint = _endpoint(url) if url is not None else None
        if url is None or endpoint is None:
            return Error(
                protocol=self.protocol,
                reason=ErrorReason.NO_INTERNAL_URL,
                message=(
                    f"{self.cas1.name} cannot proxy ActiveSync for {self.who} to Exchange 2003 "
                    f"server {backend.name}: {where} has no usable InternalUrl; set one."
                ),
                server=backend.name,
                vdir=ident,
            )
        # No check of Integrated Windows authentication here: the CAS learns it by
        # trying (the back-end's 401, event 1036), since what counts is what the 2003
        # server's IIS applies (its metabase), which a change in IIS Manager makes
        # differ from the directory until the System Attendant's next pass.
        host, port, ssl = endpoint
        return Proxy(
            protocol=self.protocol,
            target_server=backend.name,
            target_version=ExchangeVersion.E2003,
            host=host,
            port=port,
            ssl=ssl,
            target_url=url,
            vdir=ident,
            why=(
                f"{self.who}'s mailbox is on Exchange 2003 server {backend.name}: "
                f"{self.cas1.name} proxies ActiveSync straight to {url}."
            ),
        )

    def _exchange2007(self) -> Outcome:
        """A mailbox on Exchange 2007: hand off to a 2007 CAS of its site (spec 8.4, 8.5)."""
        version = ExchangeVersion.E2007
        if self.protocol == ClientProtocol.ECP:
            return self._not_for_version(version)
        if self.protocol.is_pop_imap:
            inner = self._pop_imap_proxy(version)
            if isinstance(inner, Error):
                return inner
            return Legacy(
                protocol=self.protocol,
                kind=LegacyKind.EXCHANGE2007_PROXY,
                mailbox_version=version,
                action=inner,
                why=inner.why,
            )
        kind = self._kind()
        targets = self._targets(version, kind)
        if not targets:
            return self._no_cas(version, kind)
        if self._may_redirect():
            for server, vdir in targets:
                url = vdir.external_url
                if url is not None and _endpoint(url) is not None:
                    redirect = self._legacy_redirect(server, vdir, url)
                    return Legacy(
                        protocol=self.protocol,
                        kind=LegacyKind.EXCHANGE2007_REDIRECT,
                        mailbox_version=version,
                        action=redirect,
                        why=(
                            f"{self.who}'s mailbox is on Exchange 2007; {vdir.identity} has the "
                            f"ExternalUrl {url}, so the client is sent to the legacy namespace."
                        ),
                    )
        proxied = self._http_proxy(targets, version)
        if isinstance(proxied, Error):
            return proxied
        return Legacy(
            protocol=self.protocol,
            kind=LegacyKind.EXCHANGE2007_PROXY,
            mailbox_version=version,
            action=proxied,
            why=f"{self.who}'s mailbox is on Exchange 2007: {proxied.why}",
        )

    # --------------------------------------------------------------- helpers

    def _kind(self) -> VirtualDirectoryKind:
        kind = self.protocol.vdir_kind
        # POP3/IMAP4 and Autodiscover never reach here; a None would be a bug.
        assert kind is not None, self.protocol
        return kind

    def _pop_imap_name(self) -> Literal["POP3", "IMAP4"]:
        return "POP3" if self.protocol == ClientProtocol.POP3 else "IMAP4"

    def _targets(
        self, version: ExchangeVersion, kind: VirtualDirectoryKind
    ) -> list[tuple[Server, VirtualDirectory]]:
        """CAS of the mailbox's site and version that have the protocol's vdir, by name."""
        out: list[tuple[Server, VirtualDirectory]] = []
        for server in self.d.client_access_servers(version, self.loc.site):
            vdir = self.d.vdir(server.name, kind)
            if vdir is not None:
                out.append((server, vdir))
        return out

    def _device_follows_451(self) -> bool:
        parsed = parse_eas_version(self.eas_version)
        return parsed is not None and parsed >= self.policy.eas_redirect_min_version

    def _redirect_capable(self) -> bool:
        p = self.protocol
        if p == ClientProtocol.OWA:
            return True
        if p == ClientProtocol.ECP:
            return self.policy.ecp_redirects
        if p == ClientProtocol.EAS:
            return self._device_follows_451()
        return False

    def _may_redirect(self) -> bool:
        entry_ok = self.entry == Entry.EXTERNAL or self.policy.redirect_internal_requests
        return entry_ok and self._redirect_capable()

    def _why_proxied(self, version: ExchangeVersion, kind: VirtualDirectoryKind) -> str:
        p = self.protocol
        if p == ClientProtocol.EAS and not self._device_follows_451():
            have = self.eas_version or "none given"
            low = ".".join(str(n) for n in self.policy.eas_redirect_min_version)
            return (
                f"the device's ActiveSync version ({have}) cannot follow HTTP 451 "
                f"({low} or later can)"
            )
        if not self._redirect_capable():
            return f"{p} is not redirected"
        if not self._may_redirect():
            return "the request came in on an InternalUrl, and only ExternalUrl requests redirect"
        return (
            f"no Exchange {version.product} {kind} virtual directory in site {self.loc.site} "
            "has an ExternalUrl ($null)"
        )

    def _source_vdir(self, kind: VirtualDirectoryKind) -> VirtualDirectory | None:
        return self.d.vdir(self.cas1.name, kind)

    def _cross_site_redirect(self, server: Server, vdir: VirtualDirectory, url: str) -> Redirect:
        """OWA/ECP: Manual page or Silent redirect; EAS: 451 (spec 8.4, 8.5)."""
        if self.protocol == ClientProtocol.EAS:
            return Redirect(
                protocol=self.protocol,
                kind=RedirectKind.EAS_451,
                url=url,
                target_server=server.name,
                vdir=vdir.identity,
                why=(
                    f"{self.who}'s mailbox is in site {self.loc.site}, whose {vdir.identity} has "
                    f"the ExternalUrl {url}: HTTP 451 with X-MS-Location."
                ),
            )
        # Only Set-OwaVirtualDirectory has CrossSiteRedirectType, and it is read on
        # the redirecting (receiving) CAS; ECP, reached through OWA, follows it.
        owa = self._source_vdir(VirtualDirectoryKind.OWA)
        redirect_type = owa.cross_site_redirect_type if owa is not None else RedirectType.MANUAL
        if redirect_type == RedirectType.SILENT and self.cas1.version == ExchangeVersion.E2010:
            # Single sign-on needs forms-based authentication on both ends, and FBA
            # needs SSL (spec 8.4).
            source = self._source_vdir(self._kind())
            sso = (
                source is not None
                and source.forms_authentication
                and vdir.forms_authentication
                and url.lower().startswith("https://")
            )
            return Redirect(
                protocol=self.protocol,
                kind=RedirectKind.OWA_SILENT,
                url=url,
                target_server=server.name,
                vdir=vdir.identity,
                single_sign_on=sso,
                why=(
                    f"{self.who}'s mailbox is in site {self.loc.site}, whose {vdir.identity} has "
                    f"the ExternalUrl {url}; CrossSiteRedirectType is Silent"
                    + (", with forms-based single sign-on." if sso else ", without single sign-on.")
                ),
            )
        return Redirect(
            protocol=self.protocol,
            kind=RedirectKind.OWA_MANUAL,
            url=url,
            target_server=server.name,
            vdir=vdir.identity,
            why=(
                f"{self.who}'s mailbox is in site {self.loc.site}, whose {vdir.identity} has the "
                f"ExternalUrl {url}; CrossSiteRedirectType is Manual, so a page shows that URL."
            ),
        )

    def _legacy_owa_kind(self, source: VirtualDirectory | None) -> RedirectKind:
        """LegacyRedirectType applies when the 2010 OWA vdir does not use FBA (spec 8.4).

        With forms-based authentication the sign-in page forwards the user on
        its own, so the redirect is silent.
        """
        if source is None:
            return RedirectKind.OWA_MANUAL
        if source.forms_authentication or source.legacy_redirect_type == RedirectType.SILENT:
            return RedirectKind.OWA_SILENT
        return RedirectKind.OWA_MANUAL

    def _legacy_redirect(self, server: Server, vdir: VirtualDirectory, url: str) -> Redirect:
        if self.protocol == ClientProtocol.EAS:
            kind = RedirectKind.EAS_451
        else:
            kind = self._legacy_owa_kind(self._source_vdir(VirtualDirectoryKind.OWA))
        return Redirect(
            protocol=self.protocol,
            kind=kind,
            url=url,
            target_server=server.name,
            vdir=vdir.identity,
            why=f"ExternalUrl of the Exchange 2007 virtual directory {vdir.identity}",
        )

    def _http_proxy(
        self, targets: list[tuple[Server, VirtualDirectory]], version: ExchangeVersion
    ) -> Proxy | Error:
        """Proxy to the first target with an InternalUrl and Windows authentication."""
        kind = self._kind()
        because = self._why_proxied(version, kind)
        for server, vdir in targets:
            url = vdir.internal_url
            endpoint = _endpoint(url) if url is not None else None
            if url is None or endpoint is None or not vdir.windows_authentication:
                continue
            host, port, ssl = endpoint
            return Proxy(
                protocol=self.protocol,
                target_server=server.name,
                target_version=version,
                host=host,
                port=port,
                ssl=ssl,
                target_url=url,
                vdir=vdir.identity,
                why=(
                    f"{self.who}'s mailbox is in site {self.loc.site} and {because}: "
                    f"{self.cas1.name} proxies {self.protocol} to {url}."
                ),
            )
        # None fits: report what is wrong with the first one, the one that would
        # have been chosen.
        server, vdir = targets[0]
        cmdlet, switch = WINDOWS_AUTH_CMDLET[kind]
        if vdir.internal_url is None or _endpoint(vdir.internal_url) is None:
            return Error(
                protocol=self.protocol,
                reason=ErrorReason.NO_INTERNAL_URL,
                message=(
                    f"{self.cas1.name} cannot proxy {self.protocol} for {self.who} to site "
                    f"{self.loc.site}: {vdir.identity} has no InternalUrl to proxy to ({because}); "
                    f'run {cmdlet} -Identity "{vdir.identity}" -InternalUrl '
                    f"https://{server.fqdn}/..."
                ),
                server=server.name,
                vdir=vdir.identity,
            )
        return Error(
            protocol=self.protocol,
            reason=ErrorReason.WINDOWS_AUTHENTICATION_DISABLED,
            message=(
                f"{self.cas1.name} cannot proxy {self.protocol} for {self.who} to "
                f"{vdir.internal_url}: Integrated Windows authentication is off on "
                f"{vdir.identity}, and one Client Access server authenticates to another "
                f'with it; run {cmdlet} -Identity "{vdir.identity}" {switch} $true.'
            ),
            server=server.name,
            vdir=vdir.identity,
        )

    def _pop_imap_proxy(self, version: ExchangeVersion) -> Proxy | Error:
        """POP3/IMAP4 are always proxied, over SSL on 995/993 (spec 8.6)."""
        name = self._pop_imap_name()
        servers = self.d.client_access_servers(version, self.loc.site)
        if not servers:
            return self._no_cas(version, None)
        # A CAS without a settings object has setup's defaults, which are enabled.
        enabled = [s for s in servers if (p := self.d.pop_imap(s.name, name)) is None or p.enabled]
        if not enabled:
            first = servers[0].name
            cmdlet = "Set-PopSettings" if name == "POP3" else "Set-ImapSettings"
            return Error(
                protocol=self.protocol,
                reason=ErrorReason.PROTOCOL_DISABLED_IN_MAILBOX_SITE,
                message=(
                    f"No Client Access server in site {self.loc.site} has {name} enabled, so "
                    f"{self.cas1.name} cannot proxy {self.who}'s {name} session there; enable it "
                    f"on {first} ({cmdlet} -Server {first}, and start the Microsoft Exchange "
                    f"{name} service)."
                ),
                server=first,
            )
        target = enabled[0]
        port = (
            self.policy.pop3_proxy_port
            if self.protocol == ClientProtocol.POP3
            else self.policy.imap4_proxy_port
        )
        return Proxy(
            protocol=self.protocol,
            target_server=target.name,
            target_version=version,
            host=target.fqdn,
            port=port,
            ssl=True,
            target_url=None,
            vdir=None,
            why=(
                f"{self.who}'s mailbox is in site {self.loc.site}; {name} is always proxied: "
                f"{self.cas1.name} opens {target.fqdn}:{port} over SSL."
            ),
        )

    def _no_cas(self, version: ExchangeVersion, kind: VirtualDirectoryKind | None) -> Error:
        product = version.product
        # Every virtual directory kind (OWA, ECP, EAS, EWS, OAB, Autodiscover) takes "an".
        what = f" with an {kind} virtual directory" if kind else ""
        return Error(
            protocol=self.protocol,
            reason=ErrorReason.NO_CLIENT_ACCESS_SERVER_IN_MAILBOX_SITE,
            message=(
                f"No Exchange {product} Client Access server{what} was found in Active Directory "
                f"site {self.loc.site}, where {self.who}'s mailbox is (database "
                f"{self.loc.database.name} on {self.loc.server.name}); every site with Exchange "
                f"{product} Mailbox servers needs a Client Access server of the same version: "
                "install one there, or move the mailbox."
            ),
            server=self.loc.server.name,
        )

    def _not_for_version(self, version: ExchangeVersion) -> Error:
        return Error(
            protocol=self.protocol,
            reason=ErrorReason.PROTOCOL_NOT_AVAILABLE_FOR_VERSION,
            message=(
                f"{self.protocol} is not available for mailboxes on Exchange {version.product} "
                f"({self.who}'s mailbox is on {self.loc.server.name}); move the mailbox to "
                "Exchange 2010 to use it."
            ),
            server=self.loc.server.name,
        )
