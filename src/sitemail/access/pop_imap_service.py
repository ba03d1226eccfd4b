"""What the MSExchangePOP3 and MSExchangeIMAP4 services of a 2010 CAS share.

Each service listens on its ``Get-PopSettings`` / ``Get-ImapSettings``
bindings (110/995 and 143/993 on every address of the server by default;
the lab shifts ports by its offset): ``UnencryptedOrTLSBindings`` start in
clear text and offer STLS/STARTTLS, ``SSLBindings`` start TLS at once.
Both present the server's certificate.  A session, once its user is
authenticated against the directory, asks the Client Access decision
(:func:`sitemail.access.decision.decide`) what to do:

- :class:`~sitemail.access.outcomes.ServeLocally`: serve the mailbox through
  the store API of the mailbox server of this site;
- :class:`~sitemail.access.outcomes.Proxy` (or a :class:`Legacy` wrapping
  one): relay the session to the server the outcome names
  (:mod:`.pop_imap_proxy`);
- :class:`~sitemail.access.outcomes.Error`: refuse, and log the reason.

Changes to the settings take effect when the service restarts, as with
``Restart-Service MSExchangePOP3`` in Exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from sitemail.access.decision import decide
from sitemail.access.directory_view import AccessDirectory
from sitemail.access.mail_logon import check_logon
from sitemail.access.outcomes import ClientProtocol, Entry, Legacy, Outcome, Proxy
from sitemail.access.pop_imap_proxy import Backend, open_backend
from sitemail.mailbox.store_client import StoreClient
from sitemail.org.defaults import default_pop_imap_settings
from sitemail.org.model import LoginType, Mailbox, PopImapSettings, Server
from sitemail.org.pki import client_ssl_context, server_cert_files, server_ssl_context
from sitemail.org.ports import STORE_PORT
from sitemail.server.context import ProcessContext
from sitemail.server.line_connection import LineConnection, listen

log = logging.getLogger("sitemail.access.popimap")

ProtocolName = Literal["POP3", "IMAP4"]

#: Set-PopSettings/Set-ImapSettings -PreAuthenticatedConnectionTimeout (Exchange 2010: 60 s).
PRE_AUTH_TIMEOUT = 60.0
#: -AuthenticatedConnectionTimeout (Exchange 2010: 1800 s).
AUTH_TIMEOUT = 1800.0
#: -MaxConnections (Exchange 2010: 2000).
MAX_CONNECTIONS = 2000

SessionRunner = Callable[["FrontEnd", LineConnection, bool], Awaitable[None]]
"""``run(front, connection, implicit_tls)``: one client session."""


@dataclass
class FrontEnd:
    """Everything a session of one service needs from its server process."""

    ctx: ProcessContext
    server: Server
    protocol: ClientProtocol
    settings: PopImapSettings
    tls: ssl.SSLContext | None
    proxy_tls: ssl.SSLContext
    store: StoreClient

    def plaintext_login_allowed(self, secure: bool) -> bool:
        """LoginType: SecureLogin (the default) takes clear-text credentials only over TLS."""
        return secure or self.settings.login_type is not LoginType.SECURE_LOGIN

    async def logon(self, name: str, password: str) -> Mailbox | None:
        # scrypt takes tens of milliseconds: off the loop.
        return await asyncio.to_thread(check_logon, self.ctx.directory, name, password)

    async def decide(self, mailbox: Mailbox) -> Outcome:
        def run() -> Outcome:
            view = AccessDirectory.read(self.ctx.directory)
            # POP3/IMAP4 have no URLs: the entry point does not matter to the decision.
            return decide(
                view,
                protocol=self.protocol,
                cas=self.server.name,
                mailbox=mailbox,
                entry=Entry.INTERNAL,
            )

        return await asyncio.to_thread(run)

    async def open_backend(self, outcome: Proxy) -> Backend:
        """Connect to the server a Proxy outcome names, as this server reaches it."""
        address = await asyncio.to_thread(self.ctx.address_of, outcome.target_server)
        return await open_backend(
            address,
            self.ctx.port(outcome.port),
            use_ssl=outcome.ssl,
            server_hostname=outcome.host,
            context=self.proxy_tls,
            local_address=self.ctx.address,
        )


def proxy_of(outcome: Outcome) -> Proxy | None:
    """The proxy to carry out, if the outcome is one (directly or for a legacy mailbox)."""
    if isinstance(outcome, Proxy):
        return outcome
    if isinstance(outcome, Legacy) and isinstance(outcome.action, Proxy):
        return outcome.action
    return None


def settings_for(ctx: ProcessContext, server: Server, protocol: ProtocolName) -> PopImapSettings:
    for s in ctx.directory.list(PopImapSettings):
        if s.server.casefold() == server.name.casefold() and s.protocol == protocol:
            return s
    # A CAS without a settings object has setup's defaults.
    return next(s for s in default_pop_imap_settings(server) if s.protocol == protocol)


def _bindings(server: Server, bindings: list[str], offset: int) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for binding in bindings:
        host, _, port_text = binding.rpartition(":")
        host = host.strip("[]")
        if not port_text.isdigit():
            log.warning("%s: binding %r is not address:port; ignored", server.name, binding)
            continue
        port = int(port_text) + offset
        if host in ("0.0.0.0", "", "::"):
            out.extend((a, port) for a in server.addresses)
        elif host in server.addresses:
            out.append((host, port))
        else:
            log.warning(
                "%s: binding %s is not an address of the server; ignored", server.name, binding
            )
    return sorted(set(out))


class PopImapService:
    """MSExchangePOP3 or MSExchangeIMAP4: listeners, and one task per client session."""

    def __init__(
        self,
        name: str,
        display_name: str,
        protocol: ClientProtocol,
        ctx: ProcessContext,
        server: Server,
        run_session: SessionRunner,
    ) -> None:
        self.name = name
        self.display_name = display_name
        self.protocol = protocol
        self.ctx = ctx
        self.server = server
        self._run_session = run_session
        self.front: FrontEnd | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._sessions: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self.front is not None:
            return
        ctx, server = self.ctx, self.server
        protocol: ProtocolName = "POP3" if self.protocol is ClientProtocol.POP3 else "IMAP4"
        settings = await asyncio.to_thread(settings_for, ctx, server, protocol)
        files = server_cert_files(ctx.pki_dir, server.name)
        ca_file = ctx.pki_dir / "ca.pem"
        tls = server_ssl_context(files) if files.cert.exists() else None
        store = StoreClient(
            ctx.directory,
            lambda name: (ctx.address_of(name), ctx.port(STORE_PORT)),
            ca_file=ca_file,
            cert_files=files,
        )
        front = FrontEnd(
            ctx, server, self.protocol, settings, tls, client_ssl_context(ca_file), store
        )
        self.front = front
        if not settings.enabled:
            log.info("%s is disabled on %s (%s)", protocol, server.name, settings.identity)
            return
        offset = ctx.port_offset
        endpoints = [
            (a, p, False)
            for a, p in _bindings(server, settings.unencrypted_or_tls_bindings, offset)
        ]
        if tls is not None:
            endpoints += [(a, p, True) for a, p in _bindings(server, settings.ssl_bindings, offset)]
        try:
            for address, port, implicit in endpoints:
                listener = await listen(
                    address, port, self._accepter(implicit), tls=tls if implicit else None
                )
                self._servers.append(listener)
                log.info(
                    "%s listening on %s:%d%s", protocol, address, port, " (SSL)" if implicit else ""
                )
        except BaseException:
            await self.stop()
            raise

    def _accepter(self, implicit_tls: bool) -> Callable[[LineConnection], None]:
        def accept(conn: LineConnection) -> None:
            if len(self._sessions) >= MAX_CONNECTIONS or self.front is None:
                conn.close()
                return
            task = asyncio.ensure_future(self._serve(conn, implicit_tls))
            self._sessions.add(task)
            task.add_done_callback(self._sessions.discard)

        return accept

    async def _serve(self, conn: LineConnection, implicit_tls: bool) -> None:
        front = self.front
        assert front is not None
        try:
            await self._run_session(front, conn, implicit_tls)
        except (ConnectionError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.debug("%s session ended: %s", self.protocol, exc)
        except Exception:
            log.exception("%s session failed", self.protocol)
        finally:
            conn.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(conn.wait_closed(), 2.0)

    async def stop(self) -> None:
        for listener in self._servers:
            listener.close()
        self._servers.clear()
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        front, self.front = self.front, None
        if front is not None:
            await front.store.close()
