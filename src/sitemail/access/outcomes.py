"""What the Client Access proxy-or-redirect decision can answer (spec 8.3-8.6).

Every request a 2010 CAS takes ends in exactly one of five outcomes:

- :class:`ServeLocally`: the CAS does the work itself (talks to the mailbox
  server of its own site);
- :class:`Proxy`: the CAS forwards the request or session to another server
  whose address comes from the directory;
- :class:`Redirect`: the CAS sends the client to a virtual directory's
  ExternalUrl (OWA page, OWA silent redirect, ActiveSync 451);
- :class:`Legacy`: the mailbox is on Exchange 2003 (OWA: ``Exchange2003Url``)
  or 2007 (proxy to, or redirect to, the 2007 Client Access server); it wraps
  the :class:`Proxy` or :class:`Redirect` the front end carries out;
- :class:`Error`: none of these can work; ``reason`` names the fault and
  ``message`` says it the way an administrator needs to read it.

Outcomes are plain frozen values so that the HTTPS front end, the POP3/IMAP4
front ends and the troubleshooter can ``match`` on them and compare them.
The ``why`` text explains a successful outcome for logs and the troubleshooter;
it is left out of equality so that tests compare decisions, not prose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from sitemail.org.model import ExchangeVersion, VirtualDirectoryKind


class ClientProtocol(StrEnum):
    """The client protocols a 2010 Client Access server answers (spec 8.3 table)."""

    OWA = "OWA"
    ECP = "ECP"
    EAS = "EAS"
    EWS = "EWS"
    AVAILABILITY = "Availability"
    AUTODISCOVER = "Autodiscover"
    POP3 = "POP3"
    IMAP4 = "IMAP4"

    @property
    def vdir_kind(self) -> VirtualDirectoryKind | None:
        """The virtual directory that serves the protocol; None for POP3/IMAP4.

        The availability service is part of Exchange Web Services, so it lives
        on the EWS virtual directory.
        """
        return _VDIR_KIND.get(self)

    @property
    def is_pop_imap(self) -> bool:
        return self in (ClientProtocol.POP3, ClientProtocol.IMAP4)


_VDIR_KIND = {
    ClientProtocol.OWA: VirtualDirectoryKind.OWA,
    ClientProtocol.ECP: VirtualDirectoryKind.ECP,
    ClientProtocol.EAS: VirtualDirectoryKind.EAS,
    ClientProtocol.EWS: VirtualDirectoryKind.EWS,
    ClientProtocol.AVAILABILITY: VirtualDirectoryKind.EWS,
    ClientProtocol.AUTODISCOVER: VirtualDirectoryKind.AUTODISCOVER,
}


class Entry(StrEnum):
    """Whether the request arrived on a virtual directory's InternalUrl or ExternalUrl."""

    INTERNAL = "Internal"
    EXTERNAL = "External"


class RedirectKind(StrEnum):
    """How the client is sent elsewhere (spec 8.4, 8.5)."""

    # OWA (and ECP, which is reached through OWA): a page that tells the user
    # which URL to use, with a link; following it means signing in again.
    OWA_MANUAL = "OwaManual"
    # OWA with CrossSiteRedirectType Silent (2010 SP2+): the browser is sent on
    # automatically; see Redirect.single_sign_on.
    OWA_SILENT = "OwaSilent"
    # ActiveSync: "HTTP/1.1 451" with "X-MS-Location: <url>".
    EAS_451 = "Eas451"


class LegacyKind(StrEnum):
    """Which hand-off to older Exchange versions a Legacy outcome is (spec 8.4)."""

    OWA_EXCHANGE2003_URL = "Exchange2003Url"
    EXCHANGE2007_PROXY = "Exchange2007Proxy"
    EXCHANGE2007_REDIRECT = "Exchange2007Redirect"


class ErrorReason(StrEnum):
    """Why a request can be neither served, proxied nor redirected."""

    NOT_A_CLIENT_ACCESS_SERVER = "NotAnExchange2010ClientAccessServer"
    NO_HOME_MDB = "NoHomeMdb"
    DATABASE_NOT_FOUND = "DatabaseNotFound"
    MAILBOX_SERVER_NOT_FOUND = "MailboxServerNotFound"
    NO_CLIENT_ACCESS_SERVER_IN_MAILBOX_SITE = "NoClientAccessServerInMailboxSite"
    NO_INTERNAL_URL = "NoInternalUrl"
    WINDOWS_AUTHENTICATION_DISABLED = "WindowsAuthenticationDisabledOnTarget"
    EXCHANGE2003_URL_NOT_SET = "Exchange2003UrlNotSet"
    PROTOCOL_NOT_AVAILABLE_FOR_VERSION = "ProtocolNotAvailableForMailboxVersion"
    PROTOCOL_DISABLED_IN_MAILBOX_SITE = "ProtocolDisabledInMailboxSite"
    LEGACY_MAILBOX_BLOCKED = "LegacyMailboxBlocked"
    MAILBOX_NEWER_THAN_CLIENT_ACCESS = "MailboxNewerThanClientAccessServer"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeLocally:
    """The receiving CAS serves the request itself, talking to ``mailbox_server``.

    Also the answer for Autodiscover, which is never proxied: the receiving CAS
    answers with the URLs of :func:`sitemail.access.autodiscover_urls.autodiscover_urls`.
    """

    protocol: ClientProtocol
    mailbox_server: str
    database: str
    why: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Proxy:
    """Forward the request (HTTP) or the session (POP3/IMAP4) to ``target_server``.

    ``host``/``port``/``ssl`` always say where to connect.  For HTTP protocols
    ``target_url`` is the URL to forward to: a virtual directory's InternalUrl
    from the directory (or, for an Exchange 2003 back-end, its
    ``/Microsoft-Server-ActiveSync`` built from the server's FQDN), and
    ``vdir`` names that virtual directory when the directory holds one.  For
    POP3/IMAP4 ``target_url`` and ``vdir`` are None.
    """

    protocol: ClientProtocol
    target_server: str
    target_version: ExchangeVersion
    host: str
    port: int
    ssl: bool
    target_url: str | None
    vdir: str | None
    why: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Redirect:
    """Send the client to ``url``, a virtual directory's ExternalUrl from the directory.

    ``url`` is the virtual directory URL itself; the path the client asked
    for is not carried over (the OWA page links to it, a silent redirect goes
    to it, and X-MS-Location names it, as in MS-ASHTTP's example).  Inside a
    :class:`Legacy` outcome ``url`` may instead be the ``Exchange2003Url``.
    ``single_sign_on`` is True when the user will not be asked to sign in
    again (OWA silent redirection with forms-based authentication on both
    ends over SSL).
    """

    protocol: ClientProtocol
    kind: RedirectKind
    url: str
    target_server: str
    vdir: str
    single_sign_on: bool = False
    why: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Legacy:
    """The mailbox is on an older Exchange version; ``action`` is what to do about it."""

    protocol: ClientProtocol
    kind: LegacyKind
    mailbox_version: ExchangeVersion
    action: Proxy | Redirect
    why: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Error:
    """Nothing can be done; ``message`` says what is wrong and how to fix it.

    ``server`` and ``vdir`` name the directory object at fault (when there is
    one), so that the troubleshooter can point at it.
    """

    protocol: ClientProtocol
    reason: ErrorReason
    message: str
    server: str | None = None
    vdir: str | None = None


Outcome = ServeLocally | Proxy | Redirect | Legacy | Error
