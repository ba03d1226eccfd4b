"""``W3SVC`` of the Exchange 2003 back-end: ``/Microsoft-Server-ActiveSync`` and ``/exchange``.

The 2003 server is not Internet-facing: devices reach its mailboxes through
a 2010 Client Access server, which proxies ActiveSync here with Integrated
Windows authentication (spec 8.5; the seed: "enable IWA on the IIS Virtual
Directory Microsoft-Server-ActiveSync on the Exchange 2003 server").
sitemail stands certificates in for Kerberos, so this endpoint accepts a
request only when the TLS client certificate is that of a 2010 Client
Access server of the organization and the request names the user
(:data:`~sitemail.access.web.proxy.PROXY_USER_HEADER`) of a mailbox on this
server.  Anything else (a device with Basic credentials, an anonymous
client) gets 401, as IIS does for a virtual directory whose only method
the client cannot use.  Windows authentication is read from the server's IIS
metabase (:mod:`sitemail.exchange2003.metabase`), which the System Attendant
copies from the directory, or which ``sitemail iis`` changed since its last
pass; without a virtual directory there it is on (the decision's
:class:`~sitemail.access.decision.AccessPolicy` default).

The mailbox work is the same ActiveSync core as on 2010
(:func:`~sitemail.access.eas_serve.serve_eas`), speaking EAS 2.5 at most,
as Exchange 2003 SP2 does.  ``/exchange`` is a plain stand-in for Outlook
Web Access 2003 (Basic authentication; the Inbox's subjects), where 2010's
OWA sends 2003 users (``Exchange2003Url``).
"""

from __future__ import annotations

import asyncio
import html
import logging
import ssl

from aiohttp import web

from sitemail.access.decision import DEFAULT_POLICY
from sitemail.access.eas_commands import EasStore
from sitemail.access.eas_request import EXCHANGE2003, BadEasRequest, parse_eas_request
from sitemail.access.eas_serve import serve_eas
from sitemail.access.eas_state import SyncStates
from sitemail.access.web.logon import basic_credentials, check_password, find_mailbox
from sitemail.access.web.proxy import PROXY_USER_HEADER
from sitemail.exchange2003.metabase import Metabase, MetabaseError
from sitemail.mailbox.errors import StoreError
from sitemail.mailbox.records import Address
from sitemail.mailbox.store_client import StoreClient
from sitemail.org.lockout import AccountLockouts
from sitemail.org.model import (
    ExchangeVersion,
    Mailbox,
    MailboxDatabase,
    Server,
    ServerRole,
)
from sitemail.org.pki import PeerVerifier, ServerIdentity, ca_cert_file, server_cert_files
from sitemail.org.ports import STORE_PORT
from sitemail.server.context import ProcessContext
from sitemail.server.services import DISPLAY_NAMES

__all__ = ["Exchange2003WebService"]

log = logging.getLogger("sitemail.w3svc.e2003")

SERVICE_NAME = "W3SVC"
HTTPS_PORT = 443
EAS_PATH = "/microsoft-server-activesync"
EAS_LEAF = EAS_PATH.lstrip("/")
OWA_PATH = "/exchange"
MAX_BODY = 4 * 1024 * 1024


class Exchange2003WebService:
    """The IIS web site of an Exchange 2003 server (ActiveSync and OWA 2003)."""

    name = SERVICE_NAME
    display_name = DISPLAY_NAMES[SERVICE_NAME]

    def __init__(
        self,
        ctx: ProcessContext,
        *,
        port: int = HTTPS_PORT,
        windows_authentication: bool | None = None,
        store: EasStore | None = None,
    ) -> None:
        self.ctx = ctx
        self._requested_port = ctx.port(port)
        self.port = self._requested_port
        self.states = SyncStates()
        # None: read it from the directory on every request (see the module doc).
        self._windows_authentication = windows_authentication
        self._metabase = Metabase(ctx.home)
        self._runner: web.AppRunner | None = None
        # A given store is used as it is (tests); else the store API of this server.
        self._given_store = store
        self._store: EasStore | None = None
        self._client: StoreClient | None = None
        self._verifier: PeerVerifier | None = None

    # ------------------------------------------------------------ service

    def _tls(self) -> ssl.SSLContext:
        files = server_cert_files(self.ctx.pki_dir, self.ctx.name)
        ca = ca_cert_file(self.ctx.pki_dir)
        chain = self.ctx.home / "inetpub" / "ssl" / f"{self.ctx.name}-chain.pem"
        chain.parent.mkdir(parents=True, exist_ok=True)
        chain.write_bytes(files.cert.read_bytes() + ca.read_bytes())
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.load_cert_chain(chain, files.key)
        # A proxying Client Access server presents its certificate; nobody else has one.
        tls.load_verify_locations(cafile=ca)
        tls.verify_mode = ssl.CERT_OPTIONAL
        return tls

    def _resolve_store(self, server: str) -> tuple[str, int]:
        if server.casefold() != self.ctx.name.casefold():
            raise LookupError(f"{server} is not this server ({self.ctx.name})")
        return self.ctx.address, self.ctx.port(STORE_PORT)

    async def start(self) -> None:
        if self._runner is not None:
            return
        ctx = self.ctx
        tls = await asyncio.to_thread(self._tls)
        ca = ca_cert_file(ctx.pki_dir)
        self._verifier = PeerVerifier.from_file(ca, clock=ctx.clock)
        client = (
            StoreClient(
                ctx.directory,
                self._resolve_store,
                ca_file=ca,
                cert_files=server_cert_files(ctx.pki_dir, ctx.name),
            )
            if self._given_store is None
            else None
        )
        store: EasStore | None = client if client is not None else self._given_store
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, ctx.address, self._requested_port, ssl_context=tls)
            await site.start()
        except BaseException:
            await runner.cleanup()
            if client is not None:
                await client.close()
            raise
        bound = runner.addresses[0] if runner.addresses else None
        if isinstance(bound, tuple) and len(bound) >= 2:
            self.port = int(bound[1])
        self._runner, self._store, self._client = runner, store, client
        log.info("%s: W3SVC (Exchange 2003) on https://%s:%d", ctx.name, ctx.address, self.port)

    async def stop(self) -> None:
        runner, client = self._runner, self._client
        self._runner = self._store = self._client = None
        if runner is not None:
            await runner.cleanup()
        if client is not None:
            await client.close()

    # ------------------------------------------------------------ requests

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path.lower().rstrip("/")
        if path == EAS_PATH:
            return await self._activesync(request)
        if path == OWA_PATH or path.startswith(OWA_PATH + "/"):
            return await self._owa(request)
        return web.Response(status=404, text=f"There is nothing at {request.path[:200]}.")

    def _mine(self, mailbox: Mailbox) -> bool:
        database = self.ctx.directory.get(MailboxDatabase, mailbox.database)
        return database is not None and database.server.casefold() == self.ctx.name.casefold()

    def _windows_auth_on(self) -> bool:
        """Integrated Windows authentication as IIS applies it: the metabase's, not the
        directory's (they differ between a change in IIS Manager and the System
        Attendant's next pass)."""
        if self._windows_authentication is not None:
            return self._windows_authentication
        try:
            iis = self._metabase.effective(self.ctx.directory, self.ctx.name)
        except MetabaseError as exc:
            log.warning("%s: %s", self.ctx.name, exc)
            iis = {}
        found = next((a for leaf, a in iis.items() if leaf.casefold() == EAS_LEAF), None)
        if found is not None:
            return found.windows
        return DEFAULT_POLICY.exchange2003_windows_authentication

    def _proxying_cas(self, request: web.Request) -> str | None:
        """The 2010 or 2007 Client Access server at the other end of the TLS connection, if any."""
        transport = request.transport
        tls = transport.get_extra_info("ssl_object") if transport is not None else None
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        if not der or self._verifier is None:
            return None
        identity = self._verifier.identify(der)
        if not isinstance(identity, ServerIdentity):
            return None
        server = self.ctx.directory.get(Server, identity.name)
        if (
            server is None
            or server.version not in (ExchangeVersion.E2010, ExchangeVersion.E2007)
            or not server.has_role(ServerRole.CLIENT_ACCESS)
        ):
            return None
        return server.name

    def _unauthorized(self, text: str) -> web.Response:
        response = web.Response(status=401, text=text, content_type="text/plain")
        if self._windows_auth_on():
            response.headers.add("WWW-Authenticate", "Negotiate")
            response.headers.add("WWW-Authenticate", "NTLM")
        else:
            response.headers.add("WWW-Authenticate", f'Basic realm="{request_host(self.ctx)}"')
        return response

    async def _activesync(self, request: web.Request) -> web.StreamResponse:
        cas = self._proxying_cas(request)
        alias = request.headers.get(PROXY_USER_HEADER, "")
        if not self._windows_auth_on():
            return self._unauthorized(
                f"Integrated Windows authentication is off on {self.ctx.name}'s "
                "Microsoft-Server-ActiveSync, so Client Access servers cannot proxy to it; "
                "turn it on for that virtual directory (through Exchange System Manager, not IIS "
                "Manager, which the System Attendant overwrites)."
            )
        if cas is None or not alias:
            return self._unauthorized(
                f"{self.ctx.name}'s Microsoft-Server-ActiveSync takes only requests that a 2010 "
                "Client Access server proxies with Integrated Windows authentication; connect "
                "your device to the Client Access server's URL."
            )
        mailbox = self.ctx.directory.get(Mailbox, alias)
        if mailbox is None or not self._mine(mailbox):
            return web.Response(status=403, text=f"{alias} has no mailbox on {self.ctx.name}.")
        try:
            headers = {k.lower(): v for k, v in request.headers.items()}
            parsed = parse_eas_request(request.method, request.query_string, headers)
        except BadEasRequest as exc:
            return web.Response(status=400, text=f"Bad ActiveSync request: {exc}.")
        store = self._store
        if store is None:
            return web.Response(status=503, text="The web site is stopping.")
        command = parsed.command or "OPTIONS"
        log.info("%s: ActiveSync %s for %s, proxied by %s", self.ctx.name, command, alias, cas)
        return await serve_eas(request, parsed, mailbox.alias, store, self.states, EXCHANGE2003)

    async def _password_ok(self, mailbox: Mailbox, password: str) -> bool:
        """The password is ``mailbox``'s and the account is not locked out (the
        organization's lockout counts this server's sign-ins too)."""
        lockouts = AccountLockouts(self.ctx.directory, clock=self.ctx.clock)
        if await asyncio.to_thread(lockouts.locked_for, mailbox.alias) > 0:
            return False
        if not await check_password(mailbox, password):
            await asyncio.to_thread(lockouts.failed, mailbox.alias)
            return False
        await asyncio.to_thread(lockouts.succeeded, mailbox.alias)
        return True

    async def _owa(self, request: web.Request) -> web.StreamResponse:
        given = basic_credentials(request.headers.get("Authorization", ""))
        mailbox = find_mailbox(self.ctx.directory, given[0]) if given else None
        if mailbox is None or not await self._password_ok(mailbox, given[1] if given else ""):
            response = web.Response(status=401, text="Sign in to Outlook Web Access.")
            response.headers["WWW-Authenticate"] = f'Basic realm="{request_host(self.ctx)}"'
            return response
        if not self._mine(mailbox):
            return web.Response(
                status=403, text=f"{mailbox.alias} has no mailbox on {self.ctx.name}."
            )
        store = self._store
        if store is None:
            return web.Response(status=503, text="The web site is stopping.")
        try:
            page = await store.list_messages(mailbox.alias, "inbox", limit=50)
        except StoreError as exc:
            return web.Response(status=503, text=f"The mailbox store is not available: {exc}")
        rows = "".join(
            f"<tr><td>{html.escape(_sender(m.from_address))}</td>"
            f"<td>{html.escape(m.subject)}</td></tr>"
            for m in page.items
        )
        body = (
            '<!DOCTYPE html><html><head><meta charset="utf-8"><title>Microsoft Outlook Web '
            "Access</title></head><body><h1>Microsoft Outlook Web Access</h1>"
            f"<p>{html.escape(mailbox.display_name)} &mdash; Inbox ({page.total})</p>"
            f"<table>{rows}</table>"
            f"<p>Microsoft Exchange Server 2003 ({html.escape(self.ctx.name)})</p>"
            "</body></html>"
        )
        return web.Response(text=body, content_type="text/html", charset="utf-8")


def _sender(address: Address | None) -> str:
    return (address.name or address.address) if address is not None else ""


def request_host(ctx: ProcessContext) -> str:
    server = ctx.directory.get(Server, ctx.name)
    return server.fqdn if server is not None else ctx.name
