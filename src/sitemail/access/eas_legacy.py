"""ActiveSync for Exchange 2003 mailboxes: proxied straight to the back-end (spec 8.5).

A 2010 CAS sends an Exchange 2003 mailbox's ActiveSync requests to the 2003
back-end's ``/Microsoft-Server-ActiveSync``, authenticating to it with
Integrated Windows authentication (sitemail: the CAS's server certificate
and the user it names, as between Client Access servers).  The directory
may hold no virtual directory for a 2003 server, then the decision builds the
URL from the server's FQDN (:class:`~sitemail.access.decision.AccessPolicy`);
the general CAS-to-CAS proxy only goes to virtual directory InternalUrls,
so this module checks the URL against the directory the same way (the 2003
server's FQDN with the policy's path, or an EAS virtual directory of that
server) before anything is sent, and then forwards with the same client.

If the back-end refuses (Windows authentication off there), the device gets
the proxy's error with what to turn on where (the event 1036 situation).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import web

from sitemail.access.decision import DEFAULT_POLICY, AccessPolicy
from sitemail.access.directory_view import AccessDirectory
from sitemail.access.outcomes import ErrorReason, Proxy
from sitemail.access.proxy_paths import UnsafeRequestPath, rebase_request_path
from sitemail.access.web.common import RequestContext
from sitemail.access.web.front import FrontDoor
from sitemail.access.web.proxy import ProxyFailed, ProxyIdentity, ProxyRefused, ProxyTarget
from sitemail.org.model import ExchangeVersion, Mailbox, VirtualDirectoryKind

__all__ = ["Exchange2003ActiveSyncProxy"]

log = logging.getLogger("sitemail.w3svc.eas")


class Exchange2003ActiveSyncProxy:
    """Forwards ActiveSync requests of 2003 mailboxes to their back-end server."""

    def __init__(
        self,
        *,
        address_of: Callable[[str], str],
        port: Callable[[int], int],
        policy: AccessPolicy = DEFAULT_POLICY,
    ) -> None:
        self._address_of = address_of
        self._port = port
        self._policy = policy

    def target(
        self, snapshot: AccessDirectory, outcome: Proxy, entry_path: str, request_target: str
    ) -> ProxyTarget:
        """Where to send the request; ProxyRefused unless the URL comes from the directory."""
        url = outcome.target_url
        server = snapshot.server(outcome.target_server)
        if url is None or server is None or server.version != ExchangeVersion.E2003:
            raise ProxyRefused(
                f"{outcome.target_server} is not an Exchange 2003 server of the directory"
            )
        allowed = {
            f"{self._policy.exchange2003_activesync_scheme}://{server.fqdn}"
            f"{self._policy.exchange2003_activesync_path}"
        }
        vdir = snapshot.vdir(server.name, VirtualDirectoryKind.EAS)
        if vdir is not None and vdir.internal_url:
            allowed.add(vdir.internal_url)
        if url not in allowed:
            raise ProxyRefused(f"{url} is not {server.name}'s ActiveSync URL in the directory")
        parts = urlsplit(url)
        if parts.scheme.lower() != "https" or not parts.hostname:
            raise ProxyRefused(f"{url} is not an https:// URL")
        port = parts.port if parts.port is not None else 443
        return ProxyTarget(
            server=server.name,
            vdir_url=url,
            url=rebase_request_path(url, entry_path, request_target),
            host_header=parts.hostname if port == 443 else f"{parts.hostname}:{port}",
            server_hostname=parts.hostname,
            address=self._address_of(server.name),
            port=self._port(port),
        )

    async def forward(
        self,
        door: FrontDoor,
        request: web.Request,
        ctx: RequestContext,
        outcome: Proxy,
        mailbox: Mailbox,
    ) -> web.StreamResponse:
        entry_path = (urlsplit(ctx.entry.url).path or "/").rstrip("/")
        what = (
            f"{door.server} could not proxy ActiveSync for {mailbox.alias} (Exchange 2003 "
            f"mailbox on {outcome.target_server})"
        )
        try:
            target = self.target(ctx.snapshot, outcome, entry_path, request.raw_path)
        except UnsafeRequestPath as exc:
            return web.Response(status=400, text=str(exc))
        except (ProxyRefused, LookupError) as exc:
            log.error("%s: %s", what, exc)
            return web.Response(status=500, text=f"{what}: {exc}.")
        identity = ProxyIdentity(
            alias=mailbox.alias,
            canary=secrets.token_urlsafe(16),
            trusted=False,
            client_ip=request.remote or "",
        )
        try:
            return await door.proxy.forward(
                request, target, identity, client_base=entry_path, protocol="EAS"
            )
        except ProxyFailed as exc:
            message = exc.message
            if exc.reason == ErrorReason.WINDOWS_AUTHENTICATION_DISABLED:
                # Event 1036's situation; on 2003 only a change through ESM lasts.
                message += (
                    f" On Exchange 2003, turn it on in Exchange System Manager (sitemail esm "
                    f"{outcome.target_server}), not in IIS Manager: the System Attendant puts "
                    "IIS back to what Exchange System Manager says at its next pass."
                )
            log.warning("%s: %s", what, message)
            return web.Response(status=exc.status, text=f"{what}: {message}")
