"""What the MSExchangePOP3 and MSExchangeIMAP4 services of a 2010 (or 2007) CAS share.

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

Connections are counted against the settings' MaxConnections,
MaxConnectionFromSingleIP and MaxConnectionsPerUser
(:mod:`.connection_limits`); a client has PreAuthenticatedConnectionTimeout
from its connection to sign in, whatever it sends meanwhile, and a signed-in
one AuthenticatedConnectionTimeout of silence.  Passwords are checked under
the organization's account lockout (:mod:`sitemail.access.throttle`), and
a connection that fails :data:`MAX_LOGON_FAILURES` times is closed, each
failure answered after a growing delay, as SMTP AUTH's tarpit does.

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

from sitemail.access.connection_limits import ConnectionTable, Limits, Refusal, Slot
from sitemail.access.decision import decide
from sitemail.access.directory_view import AccessDirectory
from sitemail.access.folder_watch import FolderWatches
from sitemail.access.mail_logon import MAX_CREDENTIAL, find_mailbox
from sitemail.access.outcomes import ClientProtocol, Entry, Legacy, Outcome, Proxy
from sitemail.access.pop_imap_proxy import Backend, open_backend
from sitemail.access.throttle import SignInThrottle
from sitemail.mailbox.store_client import StoreClient
from sitemail.org.defaults import default_pop_imap_settings
from sitemail.org.lockout import AccountLockouts
from sitemail.org.model import LoginType, Mailbox, PopImapSettings, Server
from sitemail.org.passwords import verify_password
from sitemail.org.pki import client_ssl_context, server_cert_files, server_ssl_context
from sitemail.org.ports import STORE_PORT
from sitemail.server.context import ProcessContext
from sitemail.server.line_connection import LineConnection, listen

log = logging.getLogger("sitemail.access.popimap")

ProtocolName = Literal["POP3", "IMAP4"]

#: Wrong passwords after which a connection is closed (SMTP's MaxLogonFailures default).
MAX_LOGON_FAILURES = 3
#: Seconds the answer to the n-th wrong password of a connection waits: n times this
#: (SMTP's TarpitInterval is 5 s), so guessing over one connection gets slower.
LOGON_FAILURE_DELAY = 1.0

#: Said to a client the server refuses at connection time, or at sign-in when the user
#: has MaxConnectionsPerUser already (sitemail's wording; Exchange's is unverified).
TOO_MANY_CONNECTIONS = "Too many connections. Connection is closed."
USER_CONNECTIONS_EXCEEDED = "Too many connections for this user."

SessionRunner = Callable[["FrontEnd", LineConnection, bool, Slot], Awaitable[None]]
"""``run(front, connection, implicit_tls, slot)``: one client session."""


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
    throttle: SignInThrottle
    watches: FolderWatches

    @property
    def pre_auth_timeout(self) -> float:
        """Seconds from connecting to signing in (PreAuthenticatedConnectionTimeout)."""
        return self.settings.pre_authenticated_connection_timeout.total_seconds()

    @property
    def auth_timeout(self) -> float:
        """Seconds a signed-in client may stay silent (AuthenticatedConnectionTimeout)."""
        return self.settings.authenticated_connection_timeout.total_seconds()

    def plaintext_login_allowed(self, secure: bool) -> bool:
        """LoginType: SecureLogin (the default) takes clear-text credentials only over TLS."""
        return secure or self.settings.login_type is not LoginType.SECURE_LOGIN

    async def logon(self, name: str, password: str, client: str) -> Mailbox | None:
        """The mailbox if ``password`` is its password and the account is not locked out.

        None for every failure alike (unknown name, wrong password, locked out),
        as Exchange answers them.  scrypt and the directory's writes take
        milliseconds: off the loop.
        """
        return await asyncio.to_thread(self._logon, name, password, client)

    def _logon(self, name: str, password: str, client: str) -> Mailbox | None:
        mailbox = find_mailbox(self.ctx.directory, name)  # None for an over-long name
        account = mailbox.alias if mailbox is not None else None
        if self.throttle.retry_after(name, client, account) > 0:
            return None
        if (
            mailbox is None
            or len(password) > MAX_CREDENTIAL
            or not verify_password(password, mailbox.password_hash)
        ):
            self.throttle.failed(name, client, account)
            return None
        self.throttle.succeeded(name, mailbox.alias)
        return mailbox

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


def _server_addresses(ctx: ProcessContext) -> frozenset[str]:
    """The addresses of the organization's servers (a proxying CAS connects from one)."""
    return frozenset(a for s in ctx.directory.list(Server) for a in s.addresses)


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
        self.connections = ConnectionTable(Limits())
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
        throttle = SignInThrottle(
            clock=ctx.clock, accounts=AccountLockouts(ctx.directory, clock=ctx.clock)
        )
        # IDLE's long polls have a pool of their own: they never hold up other requests.
        notifications = StoreClient(
            ctx.directory,
            lambda name: (ctx.address_of(name), ctx.port(STORE_PORT)),
            ca_file=ca_file,
            cert_files=files,
        )
        front = FrontEnd(
            ctx,
            server,
            self.protocol,
            settings,
            tls,
            client_ssl_context(ca_file),
            store,
            throttle,
            FolderWatches(notifications),
        )
        self.front = front
        servers = await asyncio.to_thread(_server_addresses, ctx)
        self.connections = ConnectionTable(Limits.of(settings), trusted=servers.__contains__)
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
            if self.front is None:
                conn.close()
                return
            peer = conn.peer
            slot = self.connections.open(peer[0] if peer else "")
            if isinstance(slot, Refusal):
                log.warning(
                    "%s: connection from %s refused: %s reached",
                    self.protocol,
                    peer[0] if peer else "?",
                    slot.value,
                )
                conn.write(self._refusal(slot))
                conn.close()
                return
            task = asyncio.ensure_future(self._serve(conn, implicit_tls, slot))
            self._sessions.add(task)
            task.add_done_callback(self._sessions.discard)

        return accept

    def _refusal(self, why: Refusal) -> bytes:
        """What a client refused at connection time reads before the close."""
        if self.protocol is ClientProtocol.IMAP4:
            return f"* BYE {TOO_MANY_CONNECTIONS}\r\n".encode()
        return f"-ERR {TOO_MANY_CONNECTIONS}\r\n".encode()

    async def _serve(self, conn: LineConnection, implicit_tls: bool, slot: Slot) -> None:
        front = self.front
        assert front is not None
        try:
            await self._run_session(front, conn, implicit_tls, slot)
        except (ConnectionError, ssl.SSLError, TimeoutError, asyncio.IncompleteReadError) as exc:
            log.debug("%s session ended: %s", self.protocol, exc)
        except Exception:
            log.exception("%s session failed", self.protocol)
        finally:
            slot.close()
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
            await front.watches.close()
            await front.watches.store.close()
            await front.store.close()


async def pause_after_logon_failure(failures: int) -> bool:
    """Wait before answering a connection's ``failures``-th wrong password; True when the
    connection must then be closed (it has had :data:`MAX_LOGON_FAILURES`)."""
    await asyncio.sleep(LOGON_FAILURE_DELAY * failures)
    return failures >= MAX_LOGON_FAILURES


def sign_in_deadline(front: FrontEnd) -> float:
    """When (loop time) a connection opened now must have signed in: data does not extend it."""
    return asyncio.get_running_loop().time() + front.pre_auth_timeout


def time_left(deadline: float) -> float:
    return deadline - asyncio.get_running_loop().time()
