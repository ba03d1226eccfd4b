"""``/Microsoft-Server-ActiveSync`` on a 2010 or 2007 CAS: serve, proxy, or redirect (HTTP 451).

For every request (OPTIONS included) the front door has signed the user in
(Basic, as ``BasicAuthEnabled`` allows, or as the user another CAS proxied
for: :mod:`.web.authentication`); the handler asks the decision with the
device's ``MS-ASProtocolVersion`` (spec 8.5):

- the mailbox's site is this server's: served here (:func:`.eas_serve.serve_eas`);
- another site whose EAS virtual directory has an ExternalUrl, and a device
  speaking 12.1 or later: ``HTTP/1.1 451`` with ``X-MS-Location: <ExternalUrl>``;
- otherwise proxied to the EAS InternalUrl of a CAS of the mailbox's site
  (Windows authentication needed there);
- an Exchange 2003 mailbox: proxied to the back-end's
  ``/Microsoft-Server-ActiveSync`` (:mod:`.eas_legacy`).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from sitemail.access.eas_commands import EasStore
from sitemail.access.eas_legacy import Exchange2003ActiveSyncProxy
from sitemail.access.eas_request import (
    BadEasRequest,
    EasBanner,
    EasRequest,
    banner_for,
    parse_eas_request,
)
from sitemail.access.eas_serve import serve_eas
from sitemail.access.eas_state import SyncStates
from sitemail.access.outcomes import (
    ClientProtocol,
    Error,
    ErrorReason,
    Legacy,
    Outcome,
    Proxy,
    Redirect,
    RedirectKind,
    ServeLocally,
)
from sitemail.access.web.common import AppUser, RequestContext, SignInMethod
from sitemail.access.web.front import FrontDoor
from sitemail.access.web.iis import activesync_redirect
from sitemail.mailbox.records import Address
from sitemail.org.model import ExchangeVersion

__all__ = ["EasHandler"]


class EasHandler:
    """The ActiveSync virtual directory's handler on one 2010 (or 2007) Client Access server."""

    def __init__(
        self,
        door: Callable[[], FrontDoor | None],
        store: Callable[[], EasStore | None],
        legacy: Exchange2003ActiveSyncProxy,
        *,
        banner: EasBanner | None = None,
        states: SyncStates | None = None,
    ) -> None:
        self._door = door
        self._store = store
        self._legacy = legacy
        # None: the banner of the server's version (its front door's).
        self._banner = banner
        self.states = states or SyncStates()

    def _banner_of(self, door: FrontDoor) -> EasBanner:
        return self._banner if self._banner is not None else banner_for(door.version)

    async def __call__(
        self, request: web.Request, ctx: RequestContext, user: AppUser
    ) -> web.StreamResponse:
        door = self._door()
        if door is None:
            return web.Response(status=503, text="The web site is starting.")
        proxied = user.method is SignInMethod.PROXIED
        mailbox = user.mailbox
        try:
            headers = {k.lower(): v for k, v in request.headers.items()}
            parsed = parse_eas_request(request.method, request.query_string, headers)
        except BadEasRequest as exc:
            return web.Response(status=400, text=f"Bad ActiveSync request: {exc}.")
        outcome = door.decisions.decide(
            ctx, ClientProtocol.EAS, mailbox, eas_protocol_version=parsed.version
        )
        if proxied and not isinstance(outcome, ServeLocally):
            # A proxied request is served here or not at all: no proxy chains.
            return web.Response(
                status=421,
                text=f"{door.server} does not serve {mailbox.alias}'s mailbox, so it cannot take "
                "an ActiveSync request another Client Access server proxied.",
            )
        return await self._carry_out(door, request, ctx, outcome, user, parsed)

    async def _carry_out(
        self,
        door: FrontDoor,
        request: web.Request,
        ctx: RequestContext,
        outcome: Outcome,
        user: AppUser,
        parsed: EasRequest,
    ) -> web.StreamResponse:
        mailbox = user.mailbox
        match outcome:
            case ServeLocally():
                store = self._store()
                if store is None:
                    return web.Response(status=503, text="The mailbox store is not available.")
                owner = Address(name=mailbox.display_name, address=mailbox.primary_smtp_address)
                return await serve_eas(
                    request,
                    parsed,
                    mailbox.alias,
                    store,
                    self.states,
                    self._banner_of(door),
                    owner,
                )
            case Redirect(kind=RedirectKind.EAS_451):
                # MS-ASHTTP 3.1.5.2.2: the device goes to X-MS-Location from now on.
                return activesync_redirect(outcome.url)
            case Proxy() if outcome.target_version == ExchangeVersion.E2003:
                # An Exchange 2003 mailbox: straight to the back-end (spec 8.5).
                return await self._legacy.forward(door, request, ctx, outcome, mailbox)
            case Proxy():
                return await door.handoff.forward_service(request, ctx, outcome, user)
            case Legacy(action=action):
                return await self._carry_out(door, request, ctx, action, user, parsed)
            case Error(reason=ErrorReason.MAILBOX_NEWER_THAN_CLIENT_ACCESS):
                # A 2007 CAS facing a 2010 mailbox answers 403 (spec 8.5).
                return web.Response(status=403, text=outcome.message)
            case Error():
                return web.Response(status=500, text=outcome.message)
            case Redirect():
                return web.Response(status=500, text=f"{outcome.kind} is not an ActiveSync answer.")
        raise AssertionError(f"unknown outcome {outcome!r}")
