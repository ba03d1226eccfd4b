"""The HTTPS front door of a Client Access server: which virtual directory, which service.

Every request goes through the same steps:

1. **Which virtual directory.**  The ``Host`` header and the first path
   segment name a virtual directory of *this* server through its InternalUrl
   or ExternalUrl (:func:`~sitemail.access.entry_points.resolve_host`); a host
   name the directory does not give this server gets a 404 page, never a
   redirect elsewhere.
2. **Who.**  One sign-in step for every service
   (:class:`~.authentication.Authenticator`): the user another Client Access
   server proxied for, the forms-based session, or Basic credentials, by the
   virtual directory's authentication settings; without one, the service's
   challenge (a 401, or the way to ``/owa/auth/logon.aspx``).
3. **Which service.**  The virtual directory's handler gets the request and
   the signed-in :class:`~.common.AppUser`: OWA and ECP
   (:class:`~.handoff.BrowserApps`), or a service plugged in with
   :meth:`FrontDoor.register` (EWS, ActiveSync, Autodiscover).  Each asks
   the decision (:class:`~.decision_log.DecisionLog`) whether this server
   serves the mailbox, proxies to the mailbox site's InternalUrl, or
   redirects to its ExternalUrl, and carries that out (:mod:`.handoff`).

The sign-in endpoints (``/owa/auth/logon.aspx``, ``/owa/auth.owa``,
``/owa/logoff.owa``, :mod:`.signin`) and the style sheet
(``/owa/static/``) belong to the web site, whatever virtual directory the
host name was given for, as the ``/owa/auth`` folder does in IIS.

Security rules (DESIGN.md): redirects go only to directory URLs or to a
path on the host the browser is on; the proxy goes only to directory
InternalUrls (:mod:`.proxy`); no value from the request becomes a host
or URL of an outgoing connection.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from importlib import resources
from urllib.parse import urlsplit

from aiohttp import web
from multidict import CIMultiDict

from sitemail.access.directory_view import AccessDirectory
from sitemail.access.entry_points import normalize_host, resolve_host
from sitemail.access.proxy_paths import application_path
from sitemail.access.throttle import SignInThrottle
from sitemail.access.web import iis
from sitemail.access.web.authentication import Authenticator, is_proxied
from sitemail.access.web.common import (
    BROWSER_APPS,
    MAX_FORM,
    MailStore,
    ProtocolHandler,
    RequestContext,
    security_headers,
)
from sitemail.access.web.decision_log import DecisionLog
from sitemail.access.web.ecp import EcpApp
from sitemail.access.web.handoff import BrowserApps, Handoff
from sitemail.access.web.logs import AccessLogs
from sitemail.access.web.owa import OwaApp
from sitemail.access.web.pages import error_page, nothing_here_page, redirect
from sitemail.access.web.proxy import PROXY_HEADERS, ProxyClient
from sitemail.access.web.sessions import SessionStore
from sitemail.access.web.signin import (
    AUTH_PATH,
    LOGOFF_PATH,
    LOGON_PATH,
    SSO_SUBPATH,
    SignInPages,
    same_origin,
)
from sitemail.access.web.sso import SsoIssuer, SsoVerifier
from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.org.directory import Directory
from sitemail.org.lockout import AccountLockouts
from sitemail.org.model import ExchangeVersion, VirtualDirectoryKind
from sitemail.org.pki import PeerVerifier, ServerIdentity
from sitemail.org.version_facts import facts_for

__all__ = ["FrontDoor"]

log = logging.getLogger("sitemail.w3svc")

STATIC_PREFIX = "/owa/static/"

# The first path segment -> the virtual directory kind it belongs to (IIS paths
# compare case-insensitively).
_KIND_BY_SEGMENT = {
    "owa": VirtualDirectoryKind.OWA,
    "ecp": VirtualDirectoryKind.ECP,
    "microsoft-server-activesync": VirtualDirectoryKind.EAS,
    "ews": VirtualDirectoryKind.EWS,
    "oab": VirtualDirectoryKind.OAB,
    "autodiscover": VirtualDirectoryKind.AUTODISCOVER,
}
_STATIC_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\.(css|png|ico)")
_STATIC_TYPES = {"css": "text/css", "png": "image/png", "ico": "image/x-icon"}


class FrontDoor:
    """The web site of one Client Access server (``server``)."""

    def __init__(
        self,
        server: str,
        *,
        directory: Directory,
        store: MailStore,
        proxy: ProxyClient,
        verifier: PeerVerifier,
        sso_issuer: SsoIssuer | None,
        sso_verifier: SsoVerifier,
        sessions: SessionStore | None = None,
        throttle: SignInThrottle | None = None,
        logs: AccessLogs | None = None,
        clock: Clock = SYSTEM_CLOCK,
        version: ExchangeVersion = ExchangeVersion.E2010,
    ) -> None:
        self.server = server
        # 2007 and 2010 run this same web site; what differs is data (org/version_facts.py).
        self.version = version
        product = facts_for(version).owa_product
        self.directory = directory
        self.proxy = proxy
        # An empty store is falsy (it has a length): compare with None.
        self.sessions = sessions if sessions is not None else SessionStore(clock=clock)
        self.throttle = (
            throttle
            if throttle is not None
            else SignInThrottle(clock=clock, accounts=AccountLockouts(directory, clock=clock))
        )
        self.logs = logs
        self.clock = clock
        self.owa = OwaApp(store, clock=clock, product=product)
        self.ecp = EcpApp(directory)
        self.decisions = DecisionLog(server, logs, clock)
        self.auth = Authenticator(server, directory, self.sessions, self.throttle, verifier, clock)
        self.sign_in = SignInPages(
            server, directory, self.sessions, self.throttle, sso_verifier, product
        )
        self.handoff = Handoff(server, proxy, sso_issuer, self.decisions)
        browser = BrowserApps(server, self.owa, self.ecp, self.handoff)
        self.handlers: dict[VirtualDirectoryKind, ProtocolHandler] = dict.fromkeys(
            BROWSER_APPS, browser
        )
        self._counter = -1
        self._snapshot = AccessDirectory((), (), ())
        self._read_in: asyncio.AbstractEventLoop | None = None  # see snapshot

    # ------------------------------------------------------------------ setup

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_FORM)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_response_prepare.append(self._on_prepare)
        return app

    def register(self, kind: VirtualDirectoryKind, handler: ProtocolHandler) -> None:
        """Serve another virtual directory kind (EAS, EWS, Autodiscover) through this front door.

        The handler gets the request (a browser's copies of the proxy headers
        removed), its :class:`~.common.RequestContext` and the user the front
        door signed in (:mod:`.authentication`; ``user.method`` says how).  It
        asks ``decisions.decide`` (:mod:`.decision_log`), and carries out a
        Proxy with ``handoff.forward_service`` (:mod:`.handoff`), which goes only
        to the directory's InternalUrls.
        """
        self.handlers[kind] = handler

    def snapshot(self) -> AccessDirectory:
        """The directory as the decision reads it, re-read whenever the directory changed.

        One change-counter read per turn of the event loop: Set-OwaVirtualDirectory
        takes effect on the next request, without restarting anything (spec 1.7).
        A counter read in one turn serves only callbacks queued before that turn
        ended (:meth:`_turn_over` is queued behind them); those are for requests
        whose bytes had arrived before it was read, so every request sent after a
        change was committed sees it.  (Under load a turn serves several requests:
        in the LDAP directory each read is a search.)
        """
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None and self._read_in is loop:
            return self._snapshot
        counter = self.directory.change_counter()
        if counter != self._counter:
            self._snapshot = AccessDirectory.read(self.directory)
            self._counter = counter
        if loop is not None:
            self._read_in = loop
            loop.call_soon(self._turn_over)
        return self._snapshot

    def _turn_over(self) -> None:
        self._read_in = None

    async def _on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        security_headers(response, cacheable=request.path.startswith(STATIC_PREFIX))
        iis.identify(request.path, response)

    # ------------------------------------------------------------------ entry

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        user: list[str] = []
        status = 500
        try:
            response = await self._dispatch(request, user)
            status = response.status
            reason = iis.status_reason(status)
            if reason is not None and not response.prepared:
                # Exchange's phrase ("451 Redirect"), not HTTP's; a proxied answer
                # (already sent) keeps the one the other server gave.
                response.set_status(status, reason)
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            if self.logs is not None:
                self._log_request(request, user[0] if user else None, status, started)

    def _log_request(
        self, request: web.Request, user: str | None, status: int, started: float
    ) -> None:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        server_ip, port = (sockname[0], sockname[1]) if sockname else ("-", 443)
        assert self.logs is not None
        try:
            self.logs.request(
                self.clock.now(),
                server_ip=server_ip,
                method=request.method,
                path=request.path,
                query=request.query_string,
                port=port,
                user=user,
                client_ip=request.remote or "-",
                user_agent=request.headers.get("User-Agent", ""),
                status=status,
                millis=int((time.monotonic() - started) * 1000),
            )
        except OSError as exc:  # a full disk must not take the web site down
            log.warning("cannot write the IIS log: %s", exc)

    async def _dispatch(self, request: web.Request, user: list[str]) -> web.StreamResponse:
        host = normalize_host(request.host or "")
        if host is None:
            return error_page("Bad Request", "The request has no valid host name.", status=400)
        snap = self.snapshot()
        site = resolve_host(snap, host, server=self.server)
        if site is None:
            return self._unknown_host(host)
        path = request.path
        lowered = path.lower()
        if lowered == "/":
            return self._root(snap, host)
        if lowered.startswith(STATIC_PREFIX):
            return self._static(path[len(STATIC_PREFIX) :])
        if lowered == LOGON_PATH:
            return self.sign_in.logon_form(request, host, snap)
        if lowered == AUTH_PATH:
            return await self.sign_in.logon_post(request, host, snap, user)
        if lowered == LOGOFF_PATH:
            return await self.sign_in.logoff(request, host)
        segment = lowered.split("/", 2)[1]
        kind = _KIND_BY_SEGMENT.get(segment)
        entry = resolve_host(snap, host, kind=kind, server=self.server) if kind else None
        if entry is None:
            return nothing_here_page(host, path, server=self.server)
        # /EWS/Exchange.asmx names a file: the virtual directory is its folder (IIS's).
        base = application_path(urlsplit(entry.url).path or "/")
        if not (lowered == base.lower() or lowered.startswith(base.lower() + "/")):
            return nothing_here_page(host, path, server=self.server)
        if lowered == base.lower() and kind in BROWSER_APPS:
            # IIS answers a folder without its slash with a redirect to the folder.
            location = base + "/" + (f"?{request.query_string}" if request.query_string else "")
            return redirect(location, status=301)
        vdir = next(
            (
                v
                for v in snap.virtual_directories
                if v.identity == entry.vdir and v.type == entry.kind
            ),
            None,
        )
        if vdir is None:
            return nothing_here_page(host, path, server=self.server)
        ctx = RequestContext(
            host=host,
            entry=entry,
            vdir=vdir,
            subpath=path[len(base) :] or "/",
            snapshot=snap,
            peer=self.auth.peer(request),
        )
        handler = self.handlers.get(vdir.type)
        if handler is None:
            return error_page(
                "Not available",
                f"{vdir.identity} is in the directory, but {self.server} does not serve "
                f"{vdir.type} yet.",
                status=404,
                server=self.server,
            )
        request = _without_proxy_headers(request, ctx.peer)
        if vdir.type in BROWSER_APPS and not is_proxied(request, ctx):
            if ctx.subpath.lower() == SSO_SUBPATH:
                return await self.sign_in.sso_landing(request, ctx, user)
            if request.method not in ("GET", "HEAD") and not same_origin(request):
                return error_page(
                    "Request refused",
                    "The form was posted from another web site, so it was not taken.",
                    status=403,
                    server=self.server,
                )
        signed_in = await self.auth.authenticate(request, ctx)
        if isinstance(signed_in, web.StreamResponse):
            return signed_in
        if vdir.type in BROWSER_APPS:
            # The request log has named the user of OWA and ECP requests only; the
            # other services' lines stay as they were.
            user.append(signed_in.log_name)
        return await handler(request, ctx, signed_in)

    # ------------------------------------------------------------------ misc pages

    def _root(self, snap: AccessDirectory, host: str) -> web.StreamResponse:
        destination = self.sign_in.default_destination(snap, host)
        if destination == "/":
            return nothing_here_page(host, "/", server=self.server)
        return redirect(destination, status=302)

    def _static(self, name: str) -> web.StreamResponse:
        match = _STATIC_NAME.fullmatch(name)
        if match is None:
            raise web.HTTPNotFound()
        resource = resources.files("sitemail.access").joinpath("static", name)
        if not resource.is_file():
            raise web.HTTPNotFound()
        response = web.Response(
            body=resource.read_bytes(), content_type=_STATIC_TYPES[match.group(1)]
        )
        response.headers["Cache-Control"] = "public, max-age=86400"
        return response

    def _unknown_host(self, host: str) -> web.Response:
        return error_page(
            "Not Found",
            f"{host} is not a URL of a virtual directory on {self.server}.",
            status=404,
            server=self.server,
        )


def _without_proxy_headers(request: web.Request, peer: ServerIdentity | None) -> web.Request:
    """A browser's copies of our proxy headers are removed before a service sees them."""
    if peer is not None or not any(h in request.headers for h in PROXY_HEADERS):
        return request
    headers = CIMultiDict(request.headers)
    for name in PROXY_HEADERS:
        headers.popall(name, None)
    return request.clone(headers=headers)
