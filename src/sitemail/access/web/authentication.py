"""Sign-in done once for every web service: who a request is for, or the challenge to answer.

The front door calls :meth:`Authenticator.authenticate` for every request on
a virtual directory, before the service's handler (OWA, ECP, EWS,
ActiveSync, Autodiscover), and hands the handler the
:class:`~.common.AppUser` it establishes.  By the virtual directory's
authentication settings, in this order:

1. **Proxied by another Client Access server**: the TLS client certificate
   of a 2010 Client Access server of the organization, on a virtual
   directory with WindowsAuthentication on (sitemail's stand-in for the
   Kerberos ticket Exchange's proxying CAS presents), is trusted for the
   user it names (:data:`~.proxy.PROXY_USER_HEADER`).
2. **Forms** (OWA and ECP with FormsAuthentication on): the session
   cookies; without a session a page load goes to the sign-in page
   (:mod:`.signin`), anything else gets 440 Login Timeout.
3. **Basic**, where the virtual directory allows it, under the lockout rules
   (:mod:`.throttle`), the password checked against the directory's hash in
   constant time (:func:`~.logon.check_password`).
4. Otherwise the virtual directory offers only Integrated Windows
   authentication, which sitemail keeps for Client Access servers.

A request without a good sign-in gets its service's challenge: the 401 with
the ``WWW-Authenticate`` headers (and the words) that service has always
sent, an HTML page for the browser applications, plain text for the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

from aiohttp import web

from sitemail.access.throttle import SignInThrottle
from sitemail.access.web.common import BROWSER_APPS, AppUser, RequestContext, SignInMethod
from sitemail.access.web.logon import basic_credentials, check_password, find_mailbox
from sitemail.access.web.pages import error_page
from sitemail.access.web.proxy import (
    PROXY_CANARY_HEADER,
    PROXY_TRUSTED_HEADER,
    PROXY_USER_HEADER,
)
from sitemail.access.web.sessions import CADATA_COOKIE, SESSION_COOKIE, SessionStore
from sitemail.access.web.signin import forms_challenge
from sitemail.clock import Clock
from sitemail.org.directory import Directory
from sitemail.org.model import ExchangeVersion, Mailbox, ServerRole, VirtualDirectoryKind
from sitemail.org.pki import PeerVerifier, ServerIdentity

__all__ = ["Authenticator", "is_proxied"]

SIGN_IN = "Sign in with your user name and password."
# How long a good Basic header is remembered, so that a client sending it with every
# request does not pay one scrypt per request.
BASIC_CACHE_SECONDS = 300

Challenge = Callable[[RequestContext, str | None, str], web.Response]
"""A service's 401: (request context, the lockout text if any, this server) -> response."""


def is_proxied(request: web.Request, ctx: RequestContext) -> bool:
    """True when a server of the organization sent the request for a user it names."""
    return ctx.peer is not None and PROXY_USER_HEADER in request.headers


@dataclass
class Authenticator:
    """Establishes the user of each request to the web site of one Client Access server."""

    server: str
    directory: Directory
    sessions: SessionStore
    throttle: SignInThrottle
    verifier: PeerVerifier
    clock: Clock
    # TLS peer certificates already identified, and good Basic headers: both bounded.
    _peers: OrderedDict[bytes, ServerIdentity | None] = field(
        default_factory=OrderedDict, init=False
    )
    _basic: OrderedDict[str, tuple[str, float]] = field(default_factory=OrderedDict, init=False)

    async def authenticate(
        self, request: web.Request, ctx: RequestContext
    ) -> AppUser | web.StreamResponse:
        """The signed-in user of this request, or the response asking to sign in."""
        if is_proxied(request, ctx):
            return self._proxied(request, ctx)
        vdir = ctx.vdir
        if vdir.type in BROWSER_APPS and vdir.forms_authentication:
            session_id, cadata = _session_cookies(request)
            session = self.sessions.find(session_id, cadata, ctx.host)
            if session is not None:
                mailbox = self.directory.get(Mailbox, session.alias)
                if mailbox is not None:
                    return AppUser(
                        mailbox=mailbox,
                        canary=session.canary,
                        trusted=session.trusted,
                        method=SignInMethod.FORMS,
                    )
            return forms_challenge(request, server=self.server)
        challenge = _CHALLENGES.get(vdir.type, _plain_challenge)
        if not vdir.basic_authentication:
            return challenge(ctx, None, self.server)
        found = await self.basic_user(request)
        if isinstance(found, Mailbox):
            return AppUser(
                mailbox=found,
                canary=self.sessions.user_canary(found.alias),
                trusted=False,
                method=SignInMethod.BASIC,
            )
        return challenge(ctx, found, self.server)

    def _proxied(self, request: web.Request, ctx: RequestContext) -> AppUser | web.Response:
        found = self.proxied_user(request, ctx)
        if isinstance(found, web.Response):
            return found
        assert ctx.peer is not None
        return AppUser(
            mailbox=found,
            canary=request.headers.get(PROXY_CANARY_HEADER, ""),
            trusted=request.headers.get(PROXY_TRUSTED_HEADER) == "1",
            method=SignInMethod.PROXIED,
            proxied_by=ctx.peer.name,
        )

    def proxied_user(self, request: web.Request, ctx: RequestContext) -> Mailbox | web.Response:
        """The user a proxied request is for, or the refusal to send back.

        Trusted only when the TLS peer is a 2010 or 2007 Client Access server of the
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
            or source.version not in (ExchangeVersion.E2010, ExchangeVersion.E2007)
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

    def peer(self, request: web.Request) -> ServerIdentity | None:
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
        if cached is not None and now - cached[1] < BASIC_CACHE_SECONDS:
            mailbox = self.directory.get(Mailbox, cached[0])
            if mailbox is not None:
                return mailbox
        given = basic_credentials(header)
        if given is None:
            return None
        name, password = given
        mailbox = find_mailbox(self.directory, name)
        account = mailbox.alias if mailbox is not None else None
        client = request.remote or ""
        throttle = self.throttle
        wait = await asyncio.to_thread(throttle.retry_after, name, client, account)
        if wait > 0:
            return f"Too many failed sign-in attempts. Try again in {int(wait // 60) + 1} minutes."
        if not await check_password(mailbox, password):
            await asyncio.to_thread(throttle.failed, name, client, account)
            return None
        assert mailbox is not None
        await asyncio.to_thread(throttle.succeeded, name, mailbox.alias)
        self._basic[key] = (mailbox.alias, now)
        while len(self._basic) > 1000:
            self._basic.popitem(last=False)
        return mailbox


# ---------------------------------------------------------------------- challenges
#
# Each service's 401, worded as it always has been: Basic when the virtual
# directory allows it (the lockout text when the user is locked out), else
# the Windows authentication schemes with what to turn on.


def _text_401(text: str, *challenges: str) -> web.Response:
    response = web.Response(status=401, text=text, content_type="text/plain")
    for scheme in challenges:
        response.headers.add("WWW-Authenticate", scheme)
    return response


def _basic_realm(ctx: RequestContext) -> str:
    return f'Basic realm="{ctx.host}"'


def _browser_challenge(ctx: RequestContext, message: str | None, server: str) -> web.Response:
    """OWA and ECP with forms off: a page, as the browser shows it."""
    if ctx.vdir.basic_authentication:
        response = error_page("Unauthorized", message or SIGN_IN, status=401, server=server)
        response.headers["WWW-Authenticate"] = _basic_realm(ctx)
        return response
    response = error_page(
        "Unauthorized",
        f"{ctx.vdir.identity} allows only Integrated Windows authentication, which browsers "
        "cannot use with sitemail; turn on forms-based or Basic authentication for it.",
        status=401,
        server=server,
    )
    response.headers["WWW-Authenticate"] = "Negotiate"
    return response


def _activesync_challenge(ctx: RequestContext, message: str | None, server: str) -> web.Response:
    """Devices speak Basic only, so ActiveSync asks for Basic even when it is off."""
    if ctx.vdir.basic_authentication:
        return _text_401(message or SIGN_IN, _basic_realm(ctx))
    return _text_401(
        f"Basic authentication is off on {ctx.vdir.identity}; turn it on with "
        f'Set-ActiveSyncVirtualDirectory -Identity "{ctx.vdir.identity}" '
        "-BasicAuthEnabled $true.",
        _basic_realm(ctx),
    )


def _ews_challenge(ctx: RequestContext, message: str | None, server: str) -> web.Response:
    """401 with the challenges the virtual directory offers (as IIS sends them)."""
    if ctx.vdir.basic_authentication:
        return _text_401(message or SIGN_IN, _basic_realm(ctx))
    return _text_401(
        f"{ctx.vdir.identity} accepts only Integrated Windows authentication, which "
        "sitemail keeps for Client Access servers; turn Basic on for clients with "
        f'Set-WebServicesVirtualDirectory -Identity "{ctx.vdir.identity}" '
        "-BasicAuthentication $true.",
        "Negotiate",
        "NTLM",
    )


def _plain_challenge(ctx: RequestContext, message: str | None, server: str) -> web.Response:
    """Autodiscover (and any other service): Basic where allowed, else Negotiate."""
    return _text_401(
        message or SIGN_IN, _basic_realm(ctx) if ctx.vdir.basic_authentication else "Negotiate"
    )


_CHALLENGES: dict[VirtualDirectoryKind, Challenge] = {
    VirtualDirectoryKind.OWA: _browser_challenge,
    VirtualDirectoryKind.ECP: _browser_challenge,
    VirtualDirectoryKind.EAS: _activesync_challenge,
    VirtualDirectoryKind.EWS: _ews_challenge,
    VirtualDirectoryKind.AUTODISCOVER: _plain_challenge,
}


def _session_cookies(request: web.Request) -> tuple[str | None, str | None]:
    """The session id and cadata cookies, as ``request.cookies`` gives them."""
    header = request.headers.get("Cookie", "")
    if _PLAIN_COOKIES.fullmatch(header) is None:
        # Anything beyond name=token pairs (quotes, blanks in values, odd characters):
        # aiohttp's parser knows the rules.
        return request.cookies.get(SESSION_COOKIE), request.cookies.get(CADATA_COOKIE)
    return _plain_session_cookies(header)


_PAIR = r"[A-Za-z0-9_.-]+=[A-Za-z0-9_.~+/-]*"
#: What browsers send OWA: name=token pairs (the session's are URL-safe base64 and hex).
_PLAIN_COOKIES = re.compile(rf"{_PAIR}(?:; ?{_PAIR})*")


@lru_cache(maxsize=256)  # a browser sends the same header with each request
def _plain_session_cookies(header: str) -> tuple[str | None, str | None]:
    found: dict[str, str] = {}
    for pair in header.split(";"):
        name, equals, value = pair.partition("=")
        name = name.strip()
        if equals and name in (SESSION_COOKIE, CADATA_COOKIE):
            found[name] = value.strip()  # the last of a name, as aiohttp's dict has it
    return found.get(SESSION_COOKIE), found.get(CADATA_COOKIE)
