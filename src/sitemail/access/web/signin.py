"""Forms-based sign-in of OWA and ECP: the sign-in page, its post, sign-out, single sign-on.

The endpoints (``/owa/auth/logon.aspx``, ``/owa/auth.owa``,
``/owa/logoff.owa``) belong to the web site, whatever virtual directory the
host name was given for, as the ``/owa/auth`` folder does in IIS; they serve
host names of this server's OWA and ECP virtual directories with
FormsAuthentication on.  The sign-in post checks the password
(:mod:`.logon`) under the lockout rules (:mod:`.throttle`) and opens a forms
session (:mod:`.sessions`); silent cross-site redirection lands on
``<vdir>/auth/sso.owa`` with a single sign-on token (:mod:`.sso`).

Security rules (DESIGN.md): a form post must come from a page of the host
it is posted to; after signing in the browser goes only to a path of the
host it is on (no open redirect).

Login CSRF: the sign-in post is refused when its ``Origin`` (or, without
one, its ``Referer``) names another site than the host it was addressed to
(:func:`posted_from_other_site`).  A post naming no site at all is what
Exchange 2010 accepts from monitoring scripts and load testers that post
``/owa/auth.owa`` straight away, without the sign-in page's cookie and
canary, so it signs in; browsers send ``Origin`` with every POST, so a
cross-site form cannot pass as one.  A post that carries the page's canary
(``hidcanary``) is a browser's: it must still match the page's cookie, which
tells a browser with cookies off why it cannot sign in.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from sitemail.access.directory_view import AccessDirectory
from sitemail.access.entry_points import normalize_host, resolve_host, url_host
from sitemail.access.throttle import SignInThrottle
from sitemail.access.web.common import BROWSER_APPS, RequestContext, content_security_policy
from sitemail.access.web.html import el, join
from sitemail.access.web.iis import LOGIN_TIMEOUT
from sitemail.access.web.logon import check_password, find_mailbox
from sitemail.access.web.pages import (
    BAD_CREDENTIALS,
    COOKIES_NEEDED,
    error_page,
    logon_page,
    message_page,
    nothing_here_page,
    redirect,
    signed_out_page,
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
from sitemail.access.web.sso import SsoError, SsoVerifier
from sitemail.org.directory import Directory
from sitemail.org.model import Mailbox, VirtualDirectory, VirtualDirectoryKind

__all__ = [
    "AUTH_PATH",
    "LOGOFF_PATH",
    "LOGON_PATH",
    "SSO_SUBPATH",
    "SignInPages",
    "forms_challenge",
    "posted_from_other_site",
    "same_origin",
]

log = logging.getLogger("sitemail.w3svc")

LOGON_PATH = "/owa/auth/logon.aspx"
AUTH_PATH = "/owa/auth.owa"
LOGOFF_PATH = "/owa/logoff.owa"
SSO_SUBPATH = "/auth/sso.owa"
MAX_LOGON_FORM = 64 * 1024


def same_origin(request: web.Request) -> bool:
    """A browser's POST must come from a page of this host (an Origin header, when sent)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    return origin.lower() == f"https://{request.host}".lower()


def _names_other_site(value: str, host: str) -> bool:
    """True unless ``value`` (an Origin or Referer) is an https URL of ``host`` (any port)."""
    try:
        parts = urlsplit(value.strip())
        name = normalize_host(parts.netloc) if parts.netloc else None
    except ValueError:
        return True
    return parts.scheme.lower() != "https" or name is None or name != host


def posted_from_other_site(request: web.Request, host: str) -> bool:
    """Whether a POST names another site than ``host``, the one it was addressed to.

    ``Origin`` decides when sent (``null``, from sandboxed frames and privacy
    redirects, counts as another site); without it ``Referer`` does.  A request
    naming neither (a script's) is not from another site.
    """
    origins = request.headers.getall("Origin", [])
    if origins:
        return len(origins) > 1 or _names_other_site(origins[0], host)
    referers = request.headers.getall("Referer", [])
    if referers:
        return len(referers) > 1 or _names_other_site(referers[0], host)
    return False


def forms_challenge(request: web.Request, *, server: str) -> web.Response:
    """No forms session: a page load goes to the sign-in page, anything else gets 440."""
    if request.method in ("GET", "HEAD"):
        url = f"https://{request.host}{request.path_qs}"
        query = urlencode({"replaceCurrent": "1", "url": url})
        return redirect(f"{LOGON_PATH}?{query}", status=302)
    return error_page(
        "Login Timeout",
        "Your session has ended. Sign in again.",
        status=LOGIN_TIMEOUT,
        server=server,
    )


@dataclass
class SignInPages:
    """The forms-based sign-in pages of one Client Access server (``server``)."""

    server: str
    directory: Directory
    sessions: SessionStore
    throttle: SignInThrottle
    sso_verifier: SsoVerifier
    # What the page is called: 2007's Outlook Web Access or 2010's Outlook Web App.
    product: str = "Outlook Web App"

    # ------------------------------------------------------------------ where to

    def forms_host(self, snap: AccessDirectory, host: str) -> list[VirtualDirectory]:
        """This server's OWA/ECP virtual directories with FBA whose URLs use ``host``."""
        out = []
        for v in snap.virtual_directories:
            if v.server.casefold() != self.server.casefold() or v.type not in BROWSER_APPS:
                continue
            if not v.forms_authentication:
                continue
            if host in (url_host(v.internal_url), url_host(v.external_url)):
                out.append(v)
        return out

    def default_destination(self, snap: AccessDirectory, host: str) -> str:
        entry = resolve_host(snap, host, kind=VirtualDirectoryKind.OWA, server=self.server)
        if entry is None:
            entry = resolve_host(snap, host, kind=VirtualDirectoryKind.ECP, server=self.server)
        if entry is None:
            return "/"
        return (urlsplit(entry.url).path or "").rstrip("/") + "/"

    def safe_destination(self, snap: AccessDirectory, host: str, destination: str) -> str:
        """Where to go after signing in: a path of this host under one of its vdirs, else OWA.

        Only a path is ever returned (no scheme, no host), so the browser stays on
        the host it signed in on: no open redirect.
        """
        fallback = self.default_destination(snap, host)
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
        for v in self.forms_host(snap, host):
            for url in (v.internal_url, v.external_url):
                if url_host(url) != host or url is None:
                    continue
                base = (urlsplit(url).path or "/").rstrip("/").lower()
                if lowered == base or lowered.startswith(base + "/"):
                    return path + (f"?{parts.query}" if parts.query else "")
        return fallback

    # ------------------------------------------------------------------ pages

    def logon_form(
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
        if not self.forms_host(snap, host):
            return nothing_here_page(host, request.path, server=self.server)
        destination = self.safe_destination(snap, host, request.query.get("url", ""))
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
            product=self.product,
        )
        response.headers["Content-Security-Policy"] = content_security_policy(
            redirect_origins(snap)
        )
        if cookie is not None:
            response.headers.add("Set-Cookie", cookie.header())
        return response

    async def logon_post(
        self, request: web.Request, host: str, snap: AccessDirectory, user: list[str]
    ) -> web.StreamResponse:
        if request.method != "POST":
            return redirect(LOGON_PATH, status=302)
        if not self.forms_host(snap, host):
            return nothing_here_page(host, request.path, server=self.server)
        if request.content_length is not None and request.content_length > MAX_LOGON_FORM:
            return error_page("Bad Request", "The sign-in form is too large.", status=413)
        if posted_from_other_site(request, host):
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

        destination = self.safe_destination(snap, host, text("destination"))
        # A script posts no canary (see the module's docstring); a browser's page does.
        if CANARY_FIELD in form and not self.sessions.logon_canary_ok(
            request.cookies.get(LOGON_COOKIE), text(CANARY_FIELD)
        ):
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
        account = mailbox.alias if mailbox is not None else None
        client = request.remote or ""
        throttle = self.throttle
        wait = await asyncio.to_thread(throttle.retry_after, name, client, account)
        if wait > 0:
            minutes = int(wait // 60) + 1
            response = self.logon_form(
                request,
                host,
                snap,
                message=f"Too many failed sign-in attempts. Try again in {minutes} minutes.",
                status=429,
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        if not await check_password(mailbox, password):
            await asyncio.to_thread(throttle.failed, name, client, account)
            query = urlencode({"replaceCurrent": "1", "reason": "2", "url": destination})
            return redirect(f"{LOGON_PATH}?{query}", status=302)
        assert mailbox is not None
        await asyncio.to_thread(throttle.succeeded, name, mailbox.alias)
        user.append(mailbox.alias)
        _, cookies = self.sessions.create(mailbox.alias, host, trusted=trusted)
        response = redirect(destination, status=302)
        for cookie in cookies:
            response.headers.add("Set-Cookie", cookie.header())
        return response

    async def logoff(self, request: web.Request, host: str) -> web.StreamResponse:
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

    async def sso_landing(
        self, request: web.Request, ctx: RequestContext, user: list[str]
    ) -> web.StreamResponse:
        """Silent cross-site redirection: sign the user in from the other CAS's token."""
        base = (urlsplit(ctx.entry.url).path or "").rstrip("/") + "/"
        try:
            claims = self.sso_verifier.accept(request.query.get("t", ""))
        except SsoError as exc:
            log.warning("single sign-on token refused: %s", exc)
            return redirect(
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
            return redirect(
                f"{LOGON_PATH}?"
                + urlencode({"replaceCurrent": "1", "url": f"https://{request.host}{base}"}),
                status=302,
            )
        user.append(mailbox.alias)
        _, cookies = self.sessions.create(mailbox.alias, ctx.host, trusted=claims.trusted)
        response = redirect(base, status=302)
        for cookie in cookies:
            response.headers.add("Set-Cookie", cookie.header())
        return response


def redirect_origins(snap: AccessDirectory) -> set[str]:
    """Origins of the directory URLs a signed-in user may be redirected to (OWA/ECP)."""
    out = set()
    for v in snap.virtual_directories:
        if v.type not in BROWSER_APPS:
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
