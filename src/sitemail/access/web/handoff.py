"""Carrying out the decision: serve OWA/ECP here, proxy to the mailbox's site, or redirect there.

:class:`Handoff` does what an outcome says for any web service: a
:class:`~sitemail.access.outcomes.Proxy` goes through the
:class:`~.proxy.ProxyClient` to the target's InternalUrl (never a URL from
the request), with an error page in the words of Exchange's proxy events
when it fails; a :class:`~sitemail.access.outcomes.Redirect` becomes the
Manual page, a silent 302 (with a single sign-on token, :mod:`.sso`), or
ActiveSync's 451, and only ever to a URL of the directory.

:class:`BrowserApps` is the handler of the OWA and ECP virtual directories:
it decides for the signed-in user and serves the request with the
application when the mailbox is in this server's site.  A request another
Client Access server proxied is served here or not at all (no proxy chains).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from sitemail.access.directory_view import AccessDirectory
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
from sitemail.access.web.common import BROWSER_APPS, AppUser, RequestContext, SignInMethod
from sitemail.access.web.decision_log import DecisionLog, decided
from sitemail.access.web.ecp import EcpApp
from sitemail.access.web.iis import activesync_redirect
from sitemail.access.web.owa import OwaApp
from sitemail.access.web.pages import error_page, manual_redirect_page, redirect
from sitemail.access.web.proxy import (
    ProxyClient,
    ProxyFailed,
    ProxyIdentity,
    ProxyRefused,
)
from sitemail.access.web.signin import SSO_SUBPATH
from sitemail.access.web.sso import SsoIssuer
from sitemail.org.model import VirtualDirectoryKind

__all__ = ["BrowserApps", "Handoff"]

log = logging.getLogger("sitemail.w3svc")


@dataclass
class Handoff:
    """Proxy and redirect to the mailbox's site, for one Client Access server (``server``)."""

    server: str
    proxy: ProxyClient
    sso_issuer: SsoIssuer | None
    decisions: DecisionLog

    async def forward(
        self,
        request: web.Request,
        ctx: RequestContext,
        outcome: Proxy,
        user: AppUser,
        *,
        cookies: Mapping[str, str] | None = None,
    ) -> web.StreamResponse:
        """Proxy to the outcome's InternalUrl (body streamed both ways); ``cookies`` are
        this server's own for the answer."""
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
                request,
                target,
                identity,
                client_base=entry_path,
                protocol=str(outcome.protocol),
                cookies=cookies,
            )
        except ProxyFailed as exc:
            return self._proxy_error(ctx, outcome, exc)

    async def forward_service(
        self,
        request: web.Request,
        ctx: RequestContext,
        outcome: Proxy,
        user: AppUser,
        *,
        cookies: Mapping[str, str] | None = None,
    ) -> web.StreamResponse:
        """Proxy a request of a service without forms sessions (EWS, ActiveSync)."""
        # Such a service has no session canary; the target only needs one to be present.
        fresh = replace(user, canary=secrets.token_urlsafe(16), trusted=False)
        return await self.forward(request, ctx, outcome, fresh, cookies=cookies)

    def _proxy_error(self, ctx: RequestContext, outcome: Proxy, exc: ProxyFailed) -> web.Response:
        self.decisions.proxy_failed(ctx, outcome, exc)
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

    def decision_error(self, outcome: Error) -> web.Response:
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

    def redirect(self, ctx: RequestContext, outcome: Redirect, user: AppUser) -> web.StreamResponse:
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
            return redirect(location, status=302)
        # HTTP 451 with X-MS-Location (ActiveSync, spec 8.5).
        return activesync_redirect(outcome.url)


@dataclass
class BrowserApps:
    """The handler of the OWA and ECP virtual directories of one Client Access server."""

    server: str
    owa: OwaApp
    ecp: EcpApp
    handoff: Handoff

    async def __call__(
        self, request: web.Request, ctx: RequestContext, user: AppUser
    ) -> web.StreamResponse:
        protocol = BROWSER_APPS[ctx.vdir.type]
        if user.method is SignInMethod.PROXIED:
            return await self._serve_proxied(request, ctx, protocol, user)
        # The sign-in step has just read the mailbox from the directory.
        outcome = self.handoff.decisions.decide(ctx, protocol, user.mailbox)
        return await self._carry_out(request, ctx, outcome, user)

    async def _serve_proxied(
        self, request: web.Request, ctx: RequestContext, protocol: ClientProtocol, user: AppUser
    ) -> web.StreamResponse:
        """A request another CAS proxied: served here for its user, or refused."""
        outcome = decided(
            ctx.snapshot,
            protocol=protocol,
            cas=self.server,
            mailbox=user.mailbox,
            entry=Entry.INTERNAL,
        )
        if not isinstance(outcome, ServeLocally):
            # A proxied request is served here or not at all: no proxy chains.
            return error_page(
                "Misdirected Request",
                f"{self.server} does not serve {user.alias}'s mailbox, so it cannot take a "
                f"request proxied by {user.proxied_by}.",
                status=421,
                server=self.server,
            )
        return await self._carry_out(request, ctx, outcome, user)

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
                return await app.handle(request, user, ctx.subpath, ctx)
            case Proxy():
                return await self.handoff.forward(request, ctx, outcome, user)
            case Redirect():
                return self.handoff.redirect(ctx, outcome, user)
            case Legacy():
                return await self._carry_out(request, ctx, outcome.action, user)
            case Error():
                return self.handoff.decision_error(outcome)
        raise AssertionError(f"unknown outcome {outcome!r}")

    def _in_my_site(self, snap: AccessDirectory, server: str) -> bool:
        me = snap.server(self.server)
        other = snap.server(server)
        return me is not None and other is not None and me.site.casefold() == other.site.casefold()


def _directory_url(snap: AccessDirectory, url: str) -> bool:
    """True when ``url`` is an ExternalUrl, InternalUrl or Exchange2003Url of the directory."""
    return any(
        url in (v.external_url, v.internal_url, v.exchange2003_url)
        for v in snap.virtual_directories
    )
