"""``/Autodiscover/Autodiscover.xml`` on a 2010 CAS: the URLs of the user's mailbox site.

Autodiscover is never proxied (spec 8.3 table): whichever CAS the client
reaches answers, with the URLs that
:func:`~sitemail.access.autodiscover_urls.autodiscover_urls` gives for the
user's mailbox (the mailbox site's InternalUrls; its ExternalUrls when set,
else the Internet-facing site's, so that proxying takes over).  The front
door has signed the user in (Basic, or the user another CAS proxied for:
:mod:`.web.authentication`); they may ask about their own address only; any
other gets error 500, as from Exchange.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from sitemail.access.autodiscover_pox import (
    MOBILESYNC_RESPONSE,
    BadAutodiscoverRequest,
    Urls,
    error_document,
    mobilesync_document,
    outlook_document,
    parse_request,
)
from sitemail.access.autodiscover_soap import (
    AutodiscoverFault,
    fault_document,
    parse_user_settings,
    user_settings_document,
)
from sitemail.access.autodiscover_urls import autodiscover_urls
from sitemail.access.directory_view import AccessDirectory
from sitemail.access.outcomes import ClientProtocol, Error
from sitemail.access.web.common import AppUser, RequestContext
from sitemail.access.web.front import FrontDoor
from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.org.model import Mailbox, Organization, VirtualDirectoryKind

__all__ = ["AutodiscoverHandler", "urls_for"]

_XML = "text/xml"


def _legacy_dn(organization: str, alias: str) -> str:
    # The 2010 default administrative group's legacyExchangeDN form.
    return (
        f"/o={organization}/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)"
        f"/cn=Recipients/cn={alias}"
    )


def urls_for(
    snapshot: AccessDirectory, mailbox: Mailbox, organization: str, answering_cas: str
) -> Urls | Error:
    """The answer's URLs for ``mailbox``, as ``answering_cas`` gives them."""
    found: dict[VirtualDirectoryKind, tuple[str | None, str | None]] = {}
    server: str | None = None
    for kind in (
        VirtualDirectoryKind.EWS,
        VirtualDirectoryKind.ECP,
        VirtualDirectoryKind.OAB,
        VirtualDirectoryKind.OWA,
        VirtualDirectoryKind.EAS,
    ):
        urls = autodiscover_urls(snapshot, mailbox=mailbox, kind=kind, answering_cas=answering_cas)
        if isinstance(urls, Error):
            if kind == VirtualDirectoryKind.EWS:
                return urls
            continue
        found[kind] = (urls.internal_url, urls.external_url)
        if kind == VirtualDirectoryKind.EWS and urls.internal_server:
            cas = snapshot.server(urls.internal_server)
            server = cas.fqdn if cas is not None else None

    def pick(kind: VirtualDirectoryKind, external: bool) -> str | None:
        pair = found.get(kind)
        return pair[1 if external else 0] if pair else None

    return Urls(
        display_name=mailbox.display_name,
        email=mailbox.primary_smtp_address,
        legacy_dn=_legacy_dn(organization, mailbox.alias),
        ews_internal=pick(VirtualDirectoryKind.EWS, False),
        ews_external=pick(VirtualDirectoryKind.EWS, True),
        ecp_internal=pick(VirtualDirectoryKind.ECP, False),
        ecp_external=pick(VirtualDirectoryKind.ECP, True),
        oab_internal=pick(VirtualDirectoryKind.OAB, False),
        oab_external=pick(VirtualDirectoryKind.OAB, True),
        owa_internal=pick(VirtualDirectoryKind.OWA, False),
        owa_external=pick(VirtualDirectoryKind.OWA, True),
        eas_internal=pick(VirtualDirectoryKind.EAS, False),
        eas_external=pick(VirtualDirectoryKind.EAS, True),
        server=server,
    )


class AutodiscoverHandler:
    """The Autodiscover virtual directory's handler on one 2010 Client Access server."""

    def __init__(self, door: Callable[[], FrontDoor | None], *, clock: Clock = SYSTEM_CLOCK):
        self._door = door
        self._clock = clock

    def _xml(self, body: bytes, status: int = 200) -> web.Response:
        return web.Response(body=body, status=status, content_type=_XML, charset="utf-8")

    def _error(self, code: int, message: str, schema: str | None = None) -> web.Response:
        return self._xml(error_document(code, message, now=self._clock.now(), schema=schema))

    async def __call__(
        self, request: web.Request, ctx: RequestContext, user: AppUser
    ) -> web.StreamResponse:
        door = self._door()
        if door is None:
            return web.Response(status=503, text="The web site is starting.")
        mailbox = user.mailbox
        if ctx.subpath.lower().startswith("/autodiscover.svc"):
            return await self._soap(request, ctx, user, door)
        if request.method != "POST":
            return self._error(600, "Invalid Request")
        try:
            asked = parse_request(await request.read())
        except BadAutodiscoverRequest as exc:
            return self._error(exc.code, exc.message)
        except web.HTTPRequestEntityTooLarge:
            return self._error(600, "Invalid Request")
        if asked.email.lower() not in {a.lower() for a in mailbox.all_addresses}:
            return self._error(500, "The email address can't be found.", asked.schema)
        outcome = door.decisions.decide(ctx, ClientProtocol.AUTODISCOVER, mailbox)
        if isinstance(outcome, Error):
            return self._error(500, outcome.message, asked.schema)
        org = door.directory.list(Organization)
        urls = urls_for(ctx.snapshot, mailbox, org[0].name if org else "Exchange", door.server)
        if isinstance(urls, Error):
            return self._error(500, urls.message, asked.schema)
        if asked.schema == MOBILESYNC_RESPONSE:
            return self._xml(mobilesync_document(urls))
        return self._xml(outlook_document(urls))

    async def _soap(
        self, request: web.Request, ctx: RequestContext, user: AppUser, door: FrontDoor
    ) -> web.StreamResponse:
        """SOAP Autodiscover's GetUserSettings (:mod:`.autodiscover_soap`)."""
        if request.method != "POST":
            return web.Response(status=405, headers={"Allow": "POST"}, text="POST a SOAP request.")
        try:
            asked = parse_user_settings(await request.read())
        except (AutodiscoverFault, web.HTTPRequestEntityTooLarge) as exc:
            return self._xml(fault_document(str(exc) or "The request is too large."), 500)
        mailbox = user.mailbox
        own = {a.lower() for a in mailbox.all_addresses}
        org = door.directory.list(Organization)
        organization = org[0].name if org else "Exchange"

        def answer(address: str) -> Urls | str:
            # As the POX answer: a user asks about their own addresses only.
            if address.lower() not in own:
                # SOAP Autodiscover's wording (POX says "The email address can't be found.").
                return f"Invalid user '{address[:320]}'."
            outcome = door.decisions.decide(ctx, ClientProtocol.AUTODISCOVER, mailbox)
            if isinstance(outcome, Error):
                return outcome.message
            urls = urls_for(ctx.snapshot, mailbox, organization, door.server)
            return urls.message if isinstance(urls, Error) else urls

        return self._xml(user_settings_document(asked, answer, organization))
