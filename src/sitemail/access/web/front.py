"""The HTTPS front door of a Client Access server: host names, sign-in, proxy or redirect.

Every request goes through the same steps:

1. **Which virtual directory.**  The ``Host`` header and the first path
   segment name a virtual directory of *this* server through its InternalUrl
   or ExternalUrl (:func:`~sitemail.access.entry_points.resolve_host`); a host
   name the directory does not give this server gets a 404 page, never a
   redirect elsewhere.
2. **Who.**  A request proxied by another Client Access server (TLS client
   certificate of a server of the organization, on a virtual directory with
   WindowsAuthentication on) is for the user it names; a browser has the
   forms-based session cookies, or Basic credentials where the virtual
   directory allows them; anyone else is sent to ``/owa/auth/logon.aspx``.
3. **Where.**  :func:`~sitemail.access.decision.decide` says whether this
   server serves the mailbox, proxies to the mailbox site's InternalUrl, or
   redirects to its ExternalUrl (Manual page, or Silent with single sign-on);
   an Error outcome becomes a page naming the problem.

The sign-in endpoints (``/owa/auth/logon.aspx``, ``/owa/auth.owa``,
``/owa/logoff.owa``) and the style sheet (``/owa/static/``) belong to the
web site, whatever virtual directory the host name was given for, as the
``/owa/auth`` folder does in IIS.

Security rules (DESIGN.md): redirects go only to directory URLs or to a
path on the host the browser is on; the proxy goes only to directory
InternalUrls (:mod:`.proxy`); no value from the request becomes a host
or URL of an outgoing connection.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from multidict import CIMultiDict

from sitemail.access.decision import decide
from sitemail.access.directory_view import AccessDirectory
from sitemail.access.entry_points import EntryPoint, normalize_host, resolve_host
from sitemail.access.outcomes import (
    ClientProtocol,
    Entry,
    Error,
    Legacy,
    Outcome,
    Proxy,
    Redirect,
    RedirectKind,
    ServeLocally,
)
from sitemail.access.proxy_paths import UnsafeRequestPath
from sitemail.access.web.common import (
    MAX_FORM,
    AppUser,
    MailStore,
    content_security_policy,
    security_headers,
)
from sitemail.access.web.ecp import EcpApp
from sitemail.access.web.html import el, join
from sitemail.access.web.logon import check_password, find_mailbox
from sitemail.access.web.logs import AccessLogs
from sitemail.access.web.owa import OwaApp
from sitemail.access.web.pages import (
    BAD_CREDENTIALS,
    COOKIES_NEEDED,
    error_page,
    logon_page,
    manual_redirect_page,
    message_page,
    signed_out_page,
)
from sitemail.access.web.proxy import (
    PROXY_CANARY_HEADER,
    PROXY_HEADERS,
    PROXY_TRUSTED_HEADER,
    PROXY_USER_HEADER,
    ProxyClient,
    ProxyFailed,
    ProxyIdentity,
    ProxyRefused,
)
from sitemail.access.web.sessions import (
    CADATA_COOKIE,
    CANARY_FIELD,
    LOGON_COOKIE,
    SESSION_COOKIE,
    Cookie,
    SessionStore,
    canary_matches,
)
from sitemail.access.web.sso import SsoError, SsoIssuer, SsoVerifier
from sitemail.access.web.throttle import SignInThrottle
from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.org.directory import Directory
from sitemail.org.model import (
    ExchangeVersion,
    Mailbox,
    ServerRole,
    VirtualDirectory,
    VirtualDirectoryKind,
)
from sitemail.org.pki import PeerVerifier, ServerIdentity

__all__ = ["LOGON_PATH", "FrontDoor", "ProtocolHandler", "RequestContext"]

log = logging.getLogger("sitemail.w3svc")

LOGON_PATH = "/owa/auth/logon.aspx"
AUTH_PATH = "/owa/auth.owa"
LOGOFF_PATH = "/owa/logoff.owa"
STATIC_PREFIX = "/owa/static/"
SSO_SUBPATH = "/auth/sso.owa"

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
_PROTOCOL = {
    VirtualDirectoryKind.OWA: ClientProtocol.OWA,
    VirtualDirectoryKind.ECP: ClientProtocol.ECP,
}
_STATIC_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}\.(css|png|ico)")
_STATIC_TYPES = {"css": "text/css", "png": "image/png", "ico": "image/x-icon"}
# Exchange answers 440 "Login Timeout" to a request its forms session cannot serve.
LOGIN_TIMEOUT = 440
MAX_LOGON_FORM = 64 * 1024


@dataclass(frozen=True)
class RequestContext:
    """What the front door knows about a request on a virtual directory."""

    host: str  # normalized host name the browser used
    entry: EntryPoint
    vdir: VirtualDirectory
    subpath: str  # the path below the virtual directory, starting with '/'
    snapshot: AccessDirectory
    peer: ServerIdentity | None  # the server that proxied the request, if one did


ProtocolHandler = Callable[[web.Request, RequestContext], Awaitable[web.StreamResponse]]
"""A handler for another virtual directory kind (EAS, EWS, Autodiscover, OAB)."""


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
    ) -> None:
        self.server = server
        self.directory = directory
        self.proxy = proxy
        self.verifier = verifier
        self.sso_issuer = sso_issuer
        self.sso_verifier = sso_verifier
        self.sessions = sessions or SessionStore(clock=clock)
        self.throttle = throttle or SignInThrottle(clock=clock)
        self.logs = logs
        self.clock = clock
        self.owa = OwaApp(store, clock=clock)
        self.ecp = EcpApp(directory)
        self.handlers: dict[VirtualDirectoryKind, ProtocolHandler] = {}
        self._secret = secrets.token_bytes(32)
        self._counter = -1
        self._snapshot = AccessDirectory((), (), ())
        self._peers: OrderedDict[bytes, ServerIdentity | None] = OrderedDict()
        self._basic: OrderedDict[str, tuple[str, float]] = OrderedDict()

    # ------------------------------------------------------------------ setup

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_FORM)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_response_prepare.append(self._on_prepare)
        return app

    def register(self, kind: VirtualDirectoryKind, handler: ProtocolHandler) -> None:
        """Serve another virtual directory kind (EAS, EWS, Autodiscover) through this front door.

        The handler gets the request (a browser's copies of the proxy headers
        removed) and its :class:`RequestContext`.  It authenticates with
        :meth:`basic_user` (or :meth:`proxied_user` when ``ctx.peer`` is set),
        asks :meth:`decide_for`, and carries out a Proxy with :meth:`proxy_for`,
        which goes only to the directory's InternalUrls.
        """
        self.handlers[kind] = handler

    def decide_for(
        self,
        ctx: RequestContext,
        protocol: ClientProtocol,
        mailbox: Mailbox,
        *,
        eas_protocol_version: str | None = None,
    ) -> Outcome:
        """The proxy-or-redirect decision for this request, written to the decision log."""
        outcome = decide(
            ctx.snapshot,
            protocol=protocol,
            cas=self.server,
            mailbox=mailbox,
            entry=ctx.entry.entry,
            eas_protocol_version=eas_protocol_version,
        )
        self._log_decision(protocol, mailbox.alias, ctx, outcome)
        return outcome

    async def proxy_for(
        self, request: web.Request, ctx: RequestContext, outcome: Proxy, mailbox: Mailbox
    ) -> web.StreamResponse:
        """Forward a plug-in's request to the outcome's InternalUrl (body streamed)."""
        user = AppUser(mailbox=mailbox, canary=secrets.token_urlsafe(16), trusted=False)
        return await self._proxy(request, ctx, outcome, user)

    def snapshot(self) -> AccessDirectory:
        """The directory as the decision reads it, re-read whenever the directory changed.

        One change-counter read per request: Set-OwaVirtualDirectory takes effect
        on the next request, without restarting anything (spec 1.7).
        """
        counter = self.directory.change_counter()
        if counter != self._counter:
            self._snapshot = AccessDirectory.read(self.directory)
            self._counter = counter
        return self._snapshot

    async def _on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        security_headers(response, cacheable=request.path.startswith(STATIC_PREFIX))

    # ------------------------------------------------------------------ entry

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        user: list[str] = []
        status = 500
        try:
            response = await self._dispatch(request, user)
            status = response.status
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
            return self._logon_form(request, host, snap)
        if lowered == AUTH_PATH:
            return await self._logon_post(request, host, snap, user)
        if lowered == LOGOFF_PATH:
            return await self._logoff(request, host)
        segment = lowered.split("/", 2)[1]
        kind = _KIND_BY_SEGMENT.get(segment)
        entry = resolve_host(snap, host, kind=kind, server=self.server) if kind else None
        if entry is None:
            return self._not_here(host, path)
        base = (urlsplit(entry.url).path or "/").rstrip("/")
        if not (lowered == base.lower() or lowered.startswith(base.lower() + "/")):
            return self._not_here(host, path)
        if lowered == base.lower() and kind in _PROTOCOL:
            # IIS answers a folder without its slash with a redirect to the folder.
            location = base + "/" + (f"?{request.query_string}" if request.query_string else "")
            return _redirect(location, status=301)
        vdir = next(
            (
                v
                for v in snap.virtual_directories
                if v.identity == entry.vdir and v.type == entry.kind
            ),
            None,
        )
        if vdir is None:
            return self._not_here(host, path)
        ctx = RequestContext(
            host=host,
            entry=entry,
            vdir=vdir,
            subpath=path[len(base) :] or "/",
            snapshot=snap,
            peer=self._peer(request),
        )
        if kind not in _PROTOCOL:
            handler = self.handlers.get(vdir.type)
            if handler is None:
                return error_page(
                    "Not available",
                    f"{vdir.identity} is in the directory, but {self.server} does not serve "
                    f"{vdir.type} yet.",
                    status=404,
                    server=self.server,
                )
            return await handler(_without_proxy_headers(request, ctx.peer), ctx)
        return await self._owa_or_ecp(request, ctx, user)

    # ------------------------------------------------------------------ OWA/ECP

    async def _owa_or_ecp(
        self, request: web.Request, ctx: RequestContext, user: list[str]
    ) -> web.StreamResponse:
        protocol = _PROTOCOL[ctx.vdir.type]
        if ctx.peer is not None and PROXY_USER_HEADER in request.headers:
            return await self._serve_proxied(request, ctx, protocol, user)
        if ctx.subpath.lower() == SSO_SUBPATH:
            return await self._sso_landing(request, ctx, user)
        if request.method not in ("GET", "HEAD") and not self._same_origin(request):
            return error_page(
                "Request refused",
                "The form was posted from another web site, so it was not taken.",
                status=403,
                server=self.server,
            )
        auth = await self._authenticate(request, ctx)
        if isinstance(auth, web.StreamResponse):
            return auth
        session_user, canary, trusted = auth
        user.append(session_user.alias)
        mailbox = self.directory.get(Mailbox, session_user.alias)
        if mailbox is None:
            return error_page(
                "Mailbox not found",
                f"There is no mailbox for {session_user.alias} in the directory any more.",
                status=403,
                server=self.server,
            )
        outcome = self.decide_for(ctx, protocol, mailbox)
        app_user = AppUser(mailbox=mailbox, canary=canary, trusted=trusted)
        return await self._carry_out(request, ctx, outcome, app_user)

    async def _carry_out(
        self, request: web.Request, ctx: RequestContext, outcome: Outcome, user: AppUser
    ) -> web.StreamResponse:
        match outcome:
            case ServeLocally():
                if outcome.mailbox_server and not self._in_my_site(
                    ctx.snapshot, outcome.mailbox_server
                ):
                    return error_page(
                        "Mailbox in another site",
                        f"{self.server} reads mailboxes only through the Mailbox servers of its "
                        "own site.",
                        status=500,
                        server=self.server,
                    )
                app = self.owa if ctx.vdir.type == VirtualDirectoryKind.OWA else self.ecp
                return await app.handle(request, user, ctx.subpath)
            case Proxy():
                return await self._proxy(request, ctx, outcome, user)
            case Redirect():
                return self._redirect(ctx, outcome, user)
            case Legacy():
                return await self._carry_out(request, ctx, outcome.action, user)
            case Error():
                return self._decision_error(outcome)
        raise AssertionError(f"unknown outcome {outcome!r}")

    async def _proxy(
        self, request: web.Request, ctx: RequestContext, outcome: Proxy, user: AppUser
    ) -> web.StreamResponse:
        entry_path = (urlsplit(ctx.entry.url).path or "/").rstrip("/")
        try:
            target = self.proxy.target(outcome, entry_path, request.raw_path)
        except UnsafeRequestPath as exc:
            return error_page("Bad Request", str(exc), status=400, server=self.server)
        except ProxyRefused as exc:
            log.error("proxy refused: %s", exc)
            return error_page("Proxy refused", str(exc), status=500, server=self.server)
        except ProxyFailed as exc:
            return self._proxy_error(ctx, outcome, exc)
        identity = ProxyIdentity(
            alias=user.alias,
            canary=user.canary,
            trusted=user.trusted,
            client_ip=request.remote or "",
        )
        try:
            return await self.proxy.forward(
                request, target, identity, client_base=entry_path, protocol=str(outcome.protocol)
            )
        except ProxyFailed as exc:
            return self._proxy_error(ctx, outcome, exc)

    def _proxy_error(self, ctx: RequestContext, outcome: Proxy, exc: ProxyFailed) -> web.Response:
        self._decision_record(
            {
                "protocol": str(outcome.protocol),
                "server": self.server,
                "host": ctx.host,
                "outcome": "ProxyFailed",
                "reason": exc.reason,
                "target": outcome.target_url,
                "target_server": outcome.target_server,
                "message": exc.message,
            }
        )
        heading = (
            "Outlook Web App couldn't connect to your mailbox"
            if outcome.protocol in (ClientProtocol.OWA, ClientProtocol.ECP)
            else f"The Client Access server couldn't proxy {outcome.protocol}"
        )
        return error_page(
            heading,
            exc.message,
            status=exc.status,
            details=[
                ("Reason", exc.reason),
                ("Proxied from", self.server),
                ("Proxy target", outcome.target_url or outcome.target_server),
            ],
            server=self.server,
        )

    def _decision_error(self, outcome: Error) -> web.Response:
        details = [("Reason", str(outcome.reason))]
        if outcome.server:
            details.append(("Server", outcome.server))
        if outcome.vdir:
            details.append(("Virtual directory", outcome.vdir))
        return error_page(
            "Outlook Web App can't open your mailbox",
            outcome.message,
            status=500,
            details=details,
            server=self.server,
        )

    def _redirect(
        self, ctx: RequestContext, outcome: Redirect, user: AppUser
    ) -> web.StreamResponse:
        if not _directory_url(ctx.snapshot, outcome.url):
            # Cannot happen with decide(); kept so that no other value can become a redirect.
            return error_page(
                "Redirect refused",
                f"{outcome.url} is not a URL of the directory.",
                status=500,
                server=self.server,
            )
        if outcome.kind == RedirectKind.OWA_MANUAL:
            return manual_redirect_page(
                outcome.url, display_name=user.mailbox.display_name, server=self.server
            )
        if outcome.kind == RedirectKind.OWA_SILENT:
            location = outcome.url
            if outcome.single_sign_on and self.sso_issuer is not None:
                token = self.sso_issuer.issue(
                    alias=user.alias,
                    audience=outcome.target_server,
                    vdir=outcome.vdir,
                    url=outcome.url,
                    trusted=user.trusted,
                )
                location = outcome.url.rstrip("/") + SSO_SUBPATH + "?" + urlencode({"t": token})
            return _redirect(location, status=302)
        # HTTP 451 with X-MS-Location (ActiveSync, spec 8.5).
        response = web.Response(status=451, headers={"X-MS-Location": outcome.url})
        return response

    # ------------------------------------------------------------------ proxied in

    async def _serve_proxied(
        self, request: web.Request, ctx: RequestContext, protocol: ClientProtocol, user: list[str]
    ) -> web.StreamResponse:
        """A request another CAS proxied: served here for its user, or refused."""
        found = self.proxied_user(request, ctx)
        if isinstance(found, web.StreamResponse):
            return found
        mailbox = found
        peer = ctx.peer
        assert peer is not None
        user.append(f"{mailbox.alias} (via {peer.name})")
        outcome = decide(
            ctx.snapshot, protocol=protocol, cas=self.server, mailbox=mailbox, entry=Entry.INTERNAL
        )
        if not isinstance(outcome, ServeLocally):
            # A proxied request is served here or not at all: no proxy chains.
            return error_page(
                "Misdirected Request",
                f"{self.server} does not serve {mailbox.alias}'s mailbox, so it cannot take a "
                f"request proxied by {peer.name}.",
                status=421,
                server=self.server,
            )
        canary = request.headers.get(PROXY_CANARY_HEADER, "")
        trusted = request.headers.get(PROXY_TRUSTED_HEADER) == "1"
        app_user = AppUser(mailbox=mailbox, canary=canary, trusted=trusted, proxied_by=peer.name)
        return await self._carry_out(request, ctx, outcome, app_user)

    def proxied_user(self, request: web.Request, ctx: RequestContext) -> Mailbox | web.Response:
        """The user a proxied request is for, or the refusal to send back.

        Trusted only when the TLS peer is a 2010 Client Access server of the
        organization and this virtual directory has WindowsAuthentication on
        (the stand-in for the Kerberos ticket Exchange's proxying CAS presents).
        """
        peer = ctx.peer
        if peer is None or PROXY_USER_HEADER not in request.headers:
            return error_page(
                "Forbidden", "The request is not a proxied one.", status=403, server=self.server
            )
        source = ctx.snapshot.server(peer.name)
        if (
            source is None
            or not source.has_role(ServerRole.CLIENT_ACCESS)
            or source.version != ExchangeVersion.E2010
        ):
            return error_page(
                "Forbidden",
                f"{peer.name} is not a Client Access server of this organization.",
                status=403,
                server=self.server,
            )
        if not ctx.vdir.windows_authentication:
            # What Exchange's target does without Integrated Windows authentication:
            # it cannot take the proxying server's Kerberos ticket.
            response = error_page(
                "Unauthorized",
                f"Integrated Windows authentication is off on {ctx.vdir.identity}, so "
                f"{self.server} cannot accept requests that {peer.name} proxies.",
                status=401,
                server=self.server,
            )
            response.headers["WWW-Authenticate"] = "Negotiate"
            return response
        alias = request.headers.get(PROXY_USER_HEADER, "")
        mailbox = self.directory.get(Mailbox, alias) if alias else None
        if mailbox is None or not request.headers.get(PROXY_CANARY_HEADER):
            return error_page(
                "Forbidden",
                "The proxied request names no known user.",
                status=403,
                server=self.server,
            )
        return mailbox

    def _peer(self, request: web.Request) -> ServerIdentity | None:
        """The server of the organization at the other end of the TLS connection, if any."""
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is None:
            return None
        der = ssl_object.getpeercert(binary_form=True)
        if not der:
            return None
        if der in self._peers:
            self._peers.move_to_end(der)
            return self._peers[der]
        identity = self.verifier.identify(der)
        found = identity if isinstance(identity, ServerIdentity) else None
        self._peers[der] = found
        while len(self._peers) > 256:
            self._peers.popitem(last=False)
        return found

    # ------------------------------------------------------------------ authentication

    async def _authenticate(
        self, request: web.Request, ctx: RequestContext
    ) -> tuple[Mailbox, str, bool] | web.StreamResponse:
        """(mailbox, canary, trusted) of the signed-in user, or the response asking to sign in."""
        vdir = ctx.vdir
        if vdir.forms_authentication:
            session = self.sessions.find(
                request.cookies.get(SESSION_COOKIE), request.cookies.get(CADATA_COOKIE), ctx.host
            )
            if session is not None:
                mailbox = self.directory.get(Mailbox, session.alias)
                if mailbox is not None:
                    return mailbox, session.canary, session.trusted
            if request.method in ("GET", "HEAD"):
                url = f"https://{request.host}{request.path_qs}"
                query = urlencode({"replaceCurrent": "1", "url": url})
                return _redirect(f"{LOGON_PATH}?{query}", status=302)
            return error_page(
                "Login Timeout",
                "Your session has ended. Sign in again.",
                status=LOGIN_TIMEOUT,
                server=self.server,
            )
        if vdir.basic_authentication:
            found = await self.basic_user(request)
            if isinstance(found, Mailbox):
                return found, self._basic_canary(found.alias), False
            response = error_page(
                "Unauthorized",
                found or "Sign in with your user name and password.",
                status=401,
                server=self.server,
            )
            response.headers["WWW-Authenticate"] = f'Basic realm="{ctx.host}"'
            return response
        response = error_page(
            "Unauthorized",
            f"{vdir.identity} allows only Integrated Windows authentication, which browsers "
            "cannot use with sitemail; turn on forms-based or Basic authentication for it.",
            status=401,
            server=self.server,
        )
        response.headers["WWW-Authenticate"] = "Negotiate"
        return response

    def _basic_canary(self, alias: str) -> str:
        return hmac.new(
            self._secret, b"basic\n" + alias.casefold().encode(), hashlib.sha256
        ).hexdigest()

    async def basic_user(self, request: web.Request) -> Mailbox | str | None:
        """The mailbox whose Basic credentials the request carries (throttled).

        None when there are none or they are wrong; a string when the user or
        client is locked out for now (the text says for how long).
        """
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None
        key = hashlib.sha256(header.encode()).hexdigest()
        now = self.clock.monotonic()
        cached = self._basic.get(key)
        if cached is not None and now - cached[1] < 300:
            mailbox = self.directory.get(Mailbox, cached[0])
            if mailbox is not None:
                return mailbox
        import base64
        import binascii

        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        name, sep, password = decoded.partition(":")
        if not sep:
            return None
        mailbox = find_mailbox(self.directory, name)
        key_user = mailbox.alias if mailbox is not None else name
        client = request.remote or ""
        wait = self.throttle.retry_after(key_user, client)
        if wait > 0:
            return f"Too many failed sign-in attempts. Try again in {int(wait // 60) + 1} minutes."
        if not await check_password(mailbox, password):
            self.throttle.failed(key_user, client)
            return None
        assert mailbox is not None
        self.throttle.succeeded(key_user)
        self._basic[key] = (mailbox.alias, now)
        while len(self._basic) > 1000:
            self._basic.popitem(last=False)
        return mailbox

    def _same_origin(self, request: web.Request) -> bool:
        """A browser's POST must come from a page of this host (an Origin header, when sent)."""
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        return origin.lower() == f"https://{request.host}".lower()

    # ------------------------------------------------------------------ sign-in pages

    def _forms_host(self, snap: AccessDirectory, host: str) -> list[VirtualDirectory]:
        """This server's OWA/ECP virtual directories with FBA whose URLs use ``host``."""
        out = []
        for v in snap.virtual_directories:
            if v.server.casefold() != self.server.casefold() or v.type not in _PROTOCOL:
                continue
            if not v.forms_authentication:
                continue
            if host in (_url_host(v.internal_url), _url_host(v.external_url)):
                out.append(v)
        return out

    def _default_destination(self, snap: AccessDirectory, host: str) -> str:
        entry = resolve_host(snap, host, kind=VirtualDirectoryKind.OWA, server=self.server)
        if entry is None:
            entry = resolve_host(snap, host, kind=VirtualDirectoryKind.ECP, server=self.server)
        if entry is None:
            return "/"
        return (urlsplit(entry.url).path or "").rstrip("/") + "/"

    def _safe_destination(self, snap: AccessDirectory, host: str, destination: str) -> str:
        """Where to go after signing in: a path of this host under one of its vdirs, else OWA.

        Only a path is ever returned (no scheme, no host), so the browser stays on
        the host it signed in on: no open redirect.
        """
        fallback = self._default_destination(snap, host)
        text = destination.strip()
        if not text or len(text) > 2048 or any(ord(c) < 0x21 for c in text) or "\\" in text:
            return fallback
        try:
            parts = urlsplit(text)
        except ValueError:
            return fallback
        if parts.scheme and parts.scheme.lower() != "https":
            return fallback
        if parts.netloc and normalize_host(parts.netloc) != host:
            return fallback
        path = parts.path or "/"
        if not path.startswith("/") or path.startswith("//"):
            return fallback
        if any(seg in (".", "..") for seg in path.split("/")):
            return fallback
        lowered = path.lower()
        for v in self._forms_host(snap, host):
            for url in (v.internal_url, v.external_url):
                if _url_host(url) != host or url is None:
                    continue
                base = (urlsplit(url).path or "/").rstrip("/").lower()
                if lowered == base or lowered.startswith(base + "/"):
                    return path + (f"?{parts.query}" if parts.query else "")
        return fallback

    def _logon_form(
        self,
        request: web.Request,
        host: str,
        snap: AccessDirectory,
        *,
        message: str | None = None,
        status: int = 200,
    ) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD", "POST"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
        if not self._forms_host(snap, host):
            return self._not_here(host, request.path)
        destination = self._safe_destination(snap, host, request.query.get("url", ""))
        if request.query.get("reason") == "2" and message is None:
            message = BAD_CREDENTIALS
        pback = request.cookies.get(LOGON_COOKIE)
        cookie: Cookie | None = None
        if not pback or len(pback) > 100:
            cookie = self.sessions.new_pback()
            pback = cookie.value
        response = logon_page(
            destination=destination,
            canary=self.sessions.logon_canary(pback),
            server=self.server,
            message=message,
            status=status,
        )
        response.headers["Content-Security-Policy"] = content_security_policy(
            _redirect_origins(snap)
        )
        if cookie is not None:
            response.headers.add("Set-Cookie", cookie.header())
        return response

    async def _logon_post(
        self, request: web.Request, host: str, snap: AccessDirectory, user: list[str]
    ) -> web.StreamResponse:
        if request.method != "POST":
            return _redirect(LOGON_PATH, status=302)
        if not self._forms_host(snap, host):
            return self._not_here(host, request.path)
        if request.content_length is not None and request.content_length > MAX_LOGON_FORM:
            return error_page("Bad Request", "The sign-in form is too large.", status=413)
        if not self._same_origin(request):
            return error_page(
                "Request refused",
                "The sign-in form was posted from another web site.",
                status=403,
                server=self.server,
            )
        form = await request.post()

        def text(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        destination = self._safe_destination(snap, host, text("destination"))
        if not self.sessions.logon_canary_ok(request.cookies.get(LOGON_COOKIE), text(CANARY_FIELD)):
            body = join(
                [
                    el("p", {}, COOKIES_NEEDED),
                    el(
                        "p",
                        {},
                        el(
                            "a",
                            {
                                "href": LOGON_PATH
                                + "?"
                                + urlencode({"replaceCurrent": "1", "url": destination})
                            },
                            "Sign in",
                        ),
                    ),
                ]
            )
            return message_page(
                "Outlook Web App", "Sign-in page expired", body, status=400, kind="failure"
            )
        name = text("username")
        password = text("password")
        # OWA's page script copies the radio button into "flags"; without the script
        # (and from programs that only send flags) either one says "private computer".
        trusted = text("trusted") == "4" if "trusted" in form else text("flags") in ("4", "5")
        mailbox = find_mailbox(self.directory, name)
        key = mailbox.alias if mailbox is not None else name
        client = request.remote or ""
        wait = self.throttle.retry_after(key, client)
        if wait > 0:
            minutes = int(wait // 60) + 1
            response = self._logon_form(
                request,
                host,
                snap,
                message=f"Too many failed sign-in attempts. Try again in {minutes} minutes.",
                status=429,
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        if not await check_password(mailbox, password):
            self.throttle.failed(key, client)
            query = urlencode({"replaceCurrent": "1", "reason": "2", "url": destination})
            return _redirect(f"{LOGON_PATH}?{query}", status=302)
        assert mailbox is not None
        self.throttle.succeeded(key)
        user.append(mailbox.alias)
        _, cookies = self.sessions.create(mailbox.alias, host, trusted=trusted)
        response = _redirect(destination, status=302)
        for cookie in cookies:
            response.headers.add("Set-Cookie", cookie.header())
        return response

    async def _logoff(self, request: web.Request, host: str) -> web.StreamResponse:
        session_id = request.cookies.get(SESSION_COOKIE)
        session = self.sessions.find(session_id, request.cookies.get(CADATA_COOKIE), host)
        if request.method == "POST":
            form = await request.post()
            given = form.get(CANARY_FIELD)
            if session is not None and not canary_matches(
                session.canary, given if isinstance(given, str) else None
            ):
                return error_page(
                    "Request refused",
                    "The sign-out request did not come from this session's pages.",
                    status=403,
                    server=self.server,
                )
            self.sessions.end(session_id)
            response = signed_out_page(LOGON_PATH, server=self.server)
            for cookie in SessionStore.clearing_cookies():
                response.headers.add("Set-Cookie", cookie.header())
            return response
        if session is None:
            return signed_out_page(LOGON_PATH, server=self.server)
        # A GET must not sign out (another site could link to it): offer the button.
        form_html = el(
            "form",
            {"method": "post", "action": LOGOFF_PATH},
            el("input", {"type": "hidden", "name": CANARY_FIELD, "value": session.canary}),
            el("button", {"type": "submit", "class": "button primary"}, "Sign out"),
        )
        return message_page("Outlook Web App", "Sign out", form_html)

    async def _sso_landing(
        self, request: web.Request, ctx: RequestContext, user: list[str]
    ) -> web.StreamResponse:
        """Silent cross-site redirection: sign the user in from the other CAS's token."""
        base = (urlsplit(ctx.entry.url).path or "").rstrip("/") + "/"
        try:
            claims = self.sso_verifier.accept(request.query.get("t", ""))
        except SsoError as exc:
            log.warning("single sign-on token refused: %s", exc)
            return _redirect(
                f"{LOGON_PATH}?"
                + urlencode({"replaceCurrent": "1", "url": f"https://{request.host}{base}"}),
                status=302,
            )
        mailbox = self.directory.get(Mailbox, claims.alias)
        if (
            claims.vdir.casefold() != ctx.vdir.identity.casefold()
            or claims.url != ctx.vdir.external_url
            or not ctx.vdir.forms_authentication
            or mailbox is None
        ):
            log.warning(
                "single sign-on token for %s does not fit %s", claims.vdir, ctx.vdir.identity
            )
            return _redirect(
                f"{LOGON_PATH}?"
                + urlencode({"replaceCurrent": "1", "url": f"https://{request.host}{base}"}),
                status=302,
            )
        user.append(mailbox.alias)
        _, cookies = self.sessions.create(mailbox.alias, ctx.host, trusted=claims.trusted)
        response = _redirect(base, status=302)
        for cookie in cookies:
            response.headers.add("Set-Cookie", cookie.header())
        return response

    # ------------------------------------------------------------------ misc pages

    def _root(self, snap: AccessDirectory, host: str) -> web.StreamResponse:
        destination = self._default_destination(snap, host)
        if destination == "/":
            return self._not_here(host, "/")
        return _redirect(destination, status=302)

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

    def _not_here(self, host: str, path: str) -> web.Response:
        return error_page(
            "Not Found",
            f"There is nothing at {path[:200]} on {host}.",
            status=404,
            server=self.server,
        )

    def _in_my_site(self, snap: AccessDirectory, server: str) -> bool:
        me = snap.server(self.server)
        other = snap.server(server)
        return me is not None and other is not None and me.site.casefold() == other.site.casefold()

    # ------------------------------------------------------------------ decision log

    def _log_decision(
        self, protocol: ClientProtocol, alias: str, ctx: RequestContext, outcome: Outcome
    ) -> None:
        record: dict[str, Any] = {
            "protocol": str(protocol),
            "server": self.server,
            "user": alias,
            "host": ctx.host,
            "entry": str(ctx.entry.entry),
            "vdir": ctx.vdir.identity,
            "outcome": type(outcome).__name__,
        }
        action = outcome.action if isinstance(outcome, Legacy) else outcome
        if isinstance(action, Proxy):
            record.update(target=action.target_url, target_server=action.target_server)
        elif isinstance(action, Redirect):
            record.update(
                kind=str(action.kind), target=action.url, target_server=action.target_server
            )
        elif isinstance(action, Error):
            record.update(
                reason=str(action.reason),
                message=action.message,
                target_server=action.server,
                target_vdir=action.vdir,
            )
        if isinstance(outcome, Legacy):
            record["legacy"] = str(outcome.kind)
        self._decision_record(record)

    def _decision_record(self, record: dict[str, Any]) -> None:
        if self.logs is None:
            return
        try:
            self.logs.decision(self.clock.now(), record)
        except OSError as exc:
            log.warning("cannot write the decision log: %s", exc)


# ---------------------------------------------------------------------- helpers


def _url_host(url: str | None) -> str | None:
    if url is None:
        return None
    try:
        name = urlsplit(url).hostname
    except ValueError:
        return None
    return name.rstrip(".").lower() if name else None


def _directory_url(snap: AccessDirectory, url: str) -> bool:
    """True when ``url`` is an ExternalUrl, InternalUrl or Exchange2003Url of the directory."""
    return any(
        url in (v.external_url, v.internal_url, v.exchange2003_url)
        for v in snap.virtual_directories
    )


def _redirect_origins(snap: AccessDirectory) -> set[str]:
    """Origins of the directory URLs a signed-in user may be redirected to (OWA/ECP)."""
    out = set()
    for v in snap.virtual_directories:
        if v.type not in _PROTOCOL:
            continue
        for url in (v.external_url, v.exchange2003_url):
            parts = urlsplit(url) if url else None
            # CSP source expressions: scheme://host[:port] from the directory, nothing else.
            if (
                parts is not None
                and parts.scheme in ("https", "http")
                and re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?", parts.netloc)
            ):
                out.add(f"{parts.scheme}://{parts.netloc.lower()}")
    return out


def _redirect(location: str, *, status: int) -> web.Response:
    response = web.Response(status=status, headers={"Location": location})
    security_headers(response)
    return response


def _without_proxy_headers(request: web.Request, peer: ServerIdentity | None) -> web.Request:
    """A browser's copies of our proxy headers are removed before a plug-in sees them."""
    if peer is not None or not any(h in request.headers for h in PROXY_HEADERS):
        return request
    headers = CIMultiDict(request.headers)
    for name in PROXY_HEADERS:
        headers.popall(name, None)
    return request.clone(headers=headers)
