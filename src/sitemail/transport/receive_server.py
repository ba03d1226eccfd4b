"""The SMTP receive side of a hub: listeners for the receive connectors, one session per client.

The grammar is the sans-I/O core (:mod:`sitemail.protocols.smtp`); what to
answer comes from the pure decisions (:mod:`.connector_selection`,
:mod:`.permissions`, :mod:`.greeting`, :mod:`.receive_policy`); this module
does the I/O: sockets, TLS, timeouts, the protocol log, and the durable
hand-off to the queue before any 250 to end of data.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import socket
import ssl
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from sitemail.clock import Clock
from sitemail.org.directory import Directory
from sitemail.org.model import (
    Mailbox,
    Organization,
    ReceiveConnector,
    Server,
    TransportSettings,
)
from sitemail.org.passwords import verify_password
from sitemail.org.pki import PeerVerifier, server_cert_files, server_ssl_context
from sitemail.protocols.smtp import (
    NEED_DATA,
    PAUSED,
    Auth,
    AuthResponse,
    BadSyntax,
    Bdat,
    BodyChunk,
    ConnectionClosed,
    Data,
    Ehlo,
    EndOfChunk,
    EndOfMessage,
    Helo,
    Help,
    LineTooLong,
    Mail,
    NeedsReply,
    Noop,
    Quit,
    Rcpt,
    Reply,
    Rset,
    ServerConnection,
    ServerSettings,
    StartTls,
    Unknown,
    Vrfy,
    XAnonymousTls,
    XExps,
    replies,
)
from sitemail.server.streams import stop_reading
from sitemail.transport import exchange_auth
from sitemail.transport.connector_selection import select_connector
from sitemail.transport.greeting import banner, ehlo_keywords, hello_text
from sitemail.transport.headers import (
    HeaderSection,
    apply_header_firewall,
    decoded_subject,
    new_message_id,
    organization_headers,
    parse_header_section,
    received_header,
)
from sitemail.transport.log_files import LogLimits
from sitemail.transport.permissions import Principal, Right, rights_text, session_rights
from sitemail.transport.protocol_log import (
    NullProtocolLog,
    NullSessionLog,
    ProtocolLog,
    SessionLog,
)
from sitemail.transport.receive_policy import (
    SessionView,
    auth_as,
    check_auth,
    check_end_of_data,
    check_mail,
    check_rcpt,
)
from sitemail.transport.submission import (
    AcceptError,
    AcceptOutcomeUnknown,
    Envelope,
    EnvelopeRecipient,
    MessageAcceptor,
    SpoolWriter,
)

log = logging.getLogger("sitemail.transport.receive")

READ_SIZE = 64 * 1024
ANY = "0.0.0.0"


@dataclass
class ReceiveConfig:
    """Everything a session reads from the directory; replaced whole on a change."""

    server: Server
    organization: Organization
    connectors: list[ReceiveConnector]


class SessionAcceptor(Protocol):
    """The durable hand-off as a session sees it: spool the body, then wait for the queue."""

    def open_spool(self) -> SpoolWriter: ...

    async def accept(self, spool: SpoolWriter, envelope: Envelope) -> int:
        """The InternalId once message and envelope are on disk; :class:`AcceptError` if not."""
        ...


# accept() blocks its thread in the group commit until its group is in (and first
# for an fsync when the body is large; transport.queue.acceptance): every session
# waiting for its 250 holds a thread.  asyncio's default pool (cores + 4 threads)
# would cap a whole hub at that many messages in flight and queue the rest behind.
ACCEPT_THREADS = 64


class ThreadedAcceptor:
    """A blocking :class:`MessageAcceptor` (the queue store) run on its own thread pool."""

    def __init__(self, acceptor: MessageAcceptor, threads: int = ACCEPT_THREADS) -> None:
        self.acceptor = acceptor
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="accept")

    def open_spool(self) -> SpoolWriter:
        return self.acceptor.open_spool()

    async def accept(self, spool: SpoolWriter, envelope: Envelope) -> int:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.acceptor.accept, spool, envelope)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class ReceiveEnvironment:
    """What the receive side needs from its process."""

    directory: Directory
    clock: Clock
    acceptor: SessionAcceptor
    pki_dir: Path
    port_offset: int
    protocol_log: ProtocolLog | NullProtocolLog
    verifier: PeerVerifier
    starttls_context: ssl.SSLContext | None
    anonymous_tls_context: ssl.SSLContext | None


def receive_log_limits(t: TransportSettings) -> LogLimits:
    return LogLimits(
        max_file_size=t.receive_protocol_log_max_file_size,
        max_directory_size=t.receive_protocol_log_max_directory_size,
        max_age=t.receive_protocol_log_max_age,
    )


def load_config(directory: Directory, server_name: str) -> ReceiveConfig:
    server = directory.require(Server, server_name)
    orgs = directory.list(Organization)
    if not orgs:
        raise LookupError("the directory holds no organization")
    connectors = [
        c for c in directory.list(ReceiveConnector) if c.server.lower() == server.name.lower()
    ]
    return ReceiveConfig(server, orgs[0], connectors)


def tls_contexts(pki_dir: Path, server: str) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """(STARTTLS context, X-ANONYMOUSTLS context) or (None, None) without a certificate."""
    files = server_cert_files(pki_dir, server)
    if not files.cert.exists():
        return None, None
    starttls = server_ssl_context(files)
    # X-ANONYMOUSTLS asks for the sender's certificate: that is how a hub proves it is a
    # server of the organization (it stands in for the Kerberos ticket of X-EXPS).
    anonymous = server_ssl_context(files, ca_file=pki_dir / "ca.pem", client_certs="optional")
    return starttls, anonymous


# ---------------------------------------------------------------------------- listeners


#: Hands an admitted connection to whoever serves it: this process or a receive worker.
#: ``release`` must be called once when the session is over (connection counts).
Dispatch = Callable[[socket.socket, ReceiveConnector, Callable[[], None]], None]

# How many connections one readiness event may accept before others get the loop.
ACCEPT_BURST = 64


class ReceiveListeners:
    """Binds what the enabled connectors ask for, admits connections, follows changes.

    Admission happens here, in the transport process, for every connection:
    the connector that takes it (spec 1.6), MaxInboundConnection and
    MaxInboundConnectionPerSource, so the counts are the server's whatever
    process then serves the session.  ``dispatch`` decides that: by default
    a session of this process; :mod:`.receive_workers` hands the socket to a
    receive worker process instead.
    """

    def __init__(
        self, env: ReceiveEnvironment, config: ReceiveConfig, dispatch: Dispatch | None = None
    ) -> None:
        self.env = env
        self.config = config
        self.dispatch: Dispatch = dispatch or self.serve_here
        self._sockets: dict[tuple[str, int], socket.socket] = {}
        self._sessions: set[asyncio.Task[None]] = set()
        self.connections: Counter[str] = Counter()  # per connector identity
        self.per_source: Counter[tuple[str, str]] = Counter()  # (connector, remote ip)

    def endpoints(self) -> set[tuple[str, int]]:
        """The (address, Exchange port) pairs to listen on."""
        out: set[tuple[str, int]] = set()
        addresses = self.config.server.addresses
        for c in self.config.connectors:
            if not c.enabled:
                continue
            for host, port in c.ports:
                if host == ANY:
                    out.update((a, port) for a in addresses)
                elif host in addresses:
                    out.add((host, port))
                else:
                    log.warning(
                        "connector %s: binding %s:%d is not an address of %s; not listening",
                        c.identity,
                        host,
                        port,
                        self.config.server.name,
                    )
        return out

    async def apply(self, config: ReceiveConfig) -> None:
        """Take a new configuration: new bindings listen, removed ones stop (spec 1.7)."""
        self.config = config
        loop = asyncio.get_running_loop()
        wanted = self.endpoints()
        for key in list(self._sockets):
            if key not in wanted:
                sock = self._sockets.pop(key)
                loop.remove_reader(sock.fileno())
                sock.close()
        for addr, port in sorted(wanted - set(self._sockets)):
            bound = port + self.env.port_offset
            sock = _listening_socket(addr, bound)
            self._sockets[(addr, port)] = sock
            loop.add_reader(sock.fileno(), self._on_readable, sock, (addr, bound))
            log.info("listening on %s:%d", addr, bound)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._sockets.values():
            loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets.clear()
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)

    def _on_readable(self, listener: socket.socket, local: tuple[str, int]) -> None:
        # Every listener is bound to one address (0.0.0.0 bindings are expanded to
        # the server's addresses), so the local end is the listener's own.
        for _ in range(ACCEPT_BURST):
            try:
                conn, remote = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of descriptors or the like: the connection waits in the backlog.
                log.warning("cannot accept on %s: %s", listener.getsockname(), exc)
                return
            try:
                self._admit(conn, local, remote)
            except OSError as exc:
                log.debug("connection lost at admission: %s", exc)
                conn.close()

    def _admit(self, conn: socket.socket, local: tuple[str, int], remote: tuple[str, int]) -> None:
        conn.setblocking(False)
        exchange_port = local[1] - self.env.port_offset
        connector = select_connector(self.config.connectors, local[0], exchange_port, remote[0])
        if connector is None:
            # Spec 1.6: a connection no connector takes is not serviced; no banner.
            conn.close()
            return
        key = connector.identity
        src = (key, remote[0])
        limit = connector.max_inbound_connection
        per_source = connector.max_inbound_connection_per_source
        too_many: Reply | None = None
        if limit is not None and self.connections[key] >= limit:
            too_many = replies.TOO_MANY_SERVER_CONNECTIONS
        elif per_source is not None and self.per_source[src] >= per_source:
            too_many = replies.TOO_MANY_CONNECTIONS_PER_SOURCE
        if too_many is not None:
            # A fresh socket's send buffer takes one line without blocking.
            with contextlib.suppress(OSError):
                conn.send(too_many.to_bytes())
            conn.close()
            return
        self.connections[key] += 1
        self.per_source[src] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.connections[key] -= 1
                self.per_source[src] -= 1

        self.dispatch(conn, connector, release)

    def serve_here(
        self, conn: socket.socket, connector: ReceiveConnector, release: Callable[[], None]
    ) -> None:
        task = asyncio.ensure_future(self._serve(conn, connector, release))
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _serve(
        self, conn: socket.socket, connector: ReceiveConnector, release: Callable[[], None]
    ) -> None:
        try:
            await serve_connection(self.env, self.config, connector, conn)
        finally:
            release()


def _listening_socket(address: str, port: int) -> socket.socket:
    # Receive connector bindings are IPv4 (parse_binding refuses anything else).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(511)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


async def accepted_streams(
    conn: socket.socket,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Streams for a socket accepted elsewhere, on the server side of TLS.

    (``asyncio.open_connection(sock=...)`` would make STARTTLS the client's
    handshake: streams are server side only when built with a connected
    callback, as ``start_server`` builds them.)
    """
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = loop.create_future()

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ready.set_result((reader, writer))

    reader = asyncio.StreamReader(limit=READ_SIZE, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, connected, loop=loop)
    await loop.connect_accepted_socket(lambda: protocol, sock=conn)
    return await ready


async def serve_connection(
    env: ReceiveEnvironment, config: ReceiveConfig, connector: ReceiveConnector, conn: socket.socket
) -> None:
    """One SMTP session on an admitted connection, in this process, to its end."""
    writer: asyncio.StreamWriter | None = None
    try:
        reader, writer = await accepted_streams(conn)
        session = ReceiveSession(env, config, connector, reader, writer)
        await session.run()
    except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
        log.debug("session ended: %s", exc)
    finally:
        if writer is not None:
            writer.close()
        else:
            conn.close()


# ---------------------------------------------------------------------------- one session


class _Closing(Exception):
    """The session ends after the reply that was just sent."""


@dataclass
class _Message:
    """A message being received: its header section in memory, the rest on disk."""

    spool: SpoolWriter
    head: bytearray = field(default_factory=bytearray)  # until the header section is complete
    section: HeaderSection | None = None  # set once the header block went to the spool
    message_id: str = ""
    subject: str = ""
    hops: int = 0
    received: int = 0  # octets of the client's message (not counting what we add)
    discarding: bool = False  # over the size limit: read on, keep nothing


class ReceiveSession:
    def __init__(
        self,
        env: ReceiveEnvironment,
        config: ReceiveConfig,
        connector: ReceiveConnector,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.env = env
        self.config = config
        self.connector = connector
        self.reader = reader
        self.writer = writer
        local = writer.get_extra_info("sockname")
        remote = writer.get_extra_info("peername")
        self.local_ip, self.remote_ip = local[0], remote[0]
        self.fqdn = connector.fqdn or config.server.fqdn
        self.conn = ServerConnection(
            ServerSettings(
                max_header_size=connector.max_header_size,
                max_message_size=None,  # checked here: rights may bypass it
            )
        )
        self.principal = Principal.ANONYMOUS
        self.auth_name: str | None = None
        self.user_addresses: frozenset[str] = frozenset()
        self.rights = session_rights(connector, Principal.ANONYMOUS)
        self.protocol_errors = 0
        self.logon_failures = 0
        self.auth_state: dict[str, str] = {}
        self.message: _Message | None = None
        self.log: SessionLog = env.protocol_log.session(
            connector.identity,
            f"{local[0]}:{local[1]}",
            f"{remote[0]}:{remote[1]}",
            level=connector.protocol_logging_level.value,
        )
        self.started = env.clock.monotonic()
        # ProtocolLoggingLevel None: skip even building the rows' text.
        self.logging = not isinstance(self.log, NullSessionLog)

    # --- helpers

    @property
    def view(self) -> SessionView:
        return SessionView(
            rights=self.rights,
            anonymous=self.principal is Principal.ANONYMOUS,
            secure=self.conn.secure,
            user_addresses=self.user_addresses,
        )

    async def send(self, reply: Reply) -> None:
        data = self.conn.send_reply(reply)
        if self.logging:
            self.log.sent(_lines(data))
        self.writer.write(data)

    async def _tarpit(self, reply: Reply) -> None:
        # Spec 1.2: TarpitInterval delays failing replies to anonymous sessions.
        if reply.code >= 400 and self.principal is Principal.ANONYMOUS:
            seconds = self.connector.tarpit_interval.total_seconds()
            if seconds > 0:
                await asyncio.sleep(seconds)

    def _set_rights(self, principal: Principal) -> None:
        self.principal = principal
        self.rights = session_rights(self.connector, principal)
        if self.logging:
            self.log.set_session_permissions(rights_text(self.rights).split())

    # --- main loop

    async def run(self) -> None:
        greeting = banner(self.connector, self.fqdn, self.env.clock.now().astimezone())
        if self.logging:
            self.log.connect()
            self.log.set_session_permissions(rights_text(self.rights).split())
            self.log.sent(greeting)
        self.writer.write(greeting.encode() + b"\r\n")
        await self.writer.drain()
        closed_by = "Remote"
        try:
            await self._loop()
        except _Closing:
            closed_by = "Local"
        finally:
            if self.message is not None:
                self.message.spool.abort()
                self.message = None
            self.log.disconnect(closed_by)
            with contextlib.suppress(OSError, ssl.SSLError):
                await self.writer.drain()

    async def _read(self) -> bytes:
        lifetime = self.connector.connection_timeout.total_seconds()
        idle = self.connector.connection_inactivity_timeout.total_seconds()
        remaining = lifetime - (self.env.clock.monotonic() - self.started)
        if remaining <= 0:
            await self._close_with(replies.CONNECTION_TIMED_OUT)
        try:
            # asyncio.timeout, not wait_for: no extra task for every read.
            async with asyncio.timeout(min(idle, remaining)):
                return await self.reader.read(READ_SIZE)
        except TimeoutError:
            if self.env.clock.monotonic() - self.started >= lifetime:
                await self._close_with(replies.CONNECTION_TIMED_OUT)
            await self._close_with(replies.TIMEOUT_WAITING_FOR_CLIENT)
        raise AssertionError("unreachable")

    async def _close_with(self, reply: Reply) -> None:
        data = self.conn.send_unsolicited(reply)
        self.log.sent(_lines(data))
        with contextlib.suppress(OSError, ssl.SSLError):
            self.writer.write(data)
            await self.writer.drain()
        raise _Closing

    async def _loop(self) -> None:
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA:
                await self.writer.drain()
                data = await self._read()
                self.conn.receive_data(data)
                continue
            if event is PAUSED:
                raise AssertionError("the session answers every event before the next")
            if isinstance(event, ConnectionClosed):
                return
            if isinstance(event, BodyChunk):
                self._body(event.data)
                continue
            if isinstance(event, Bdat):
                self.log.received(event.line)
                if self.message is None and self.conn.mail_from is not None:
                    self.message = _Message(self.env.acceptor.open_spool())
                continue
            assert isinstance(event, NeedsReply)
            if self.logging and not isinstance(event, AuthResponse) and hasattr(event, "log_text"):
                self.log.received(event.log_text)
            await self._answer(event)

    # --- answers

    async def _answer(self, event: NeedsReply) -> None:
        if isinstance(event, (Unknown, BadSyntax, LineTooLong)):
            reply = event.suggested_reply or replies.UNRECOGNIZED_COMMAND
            await self._protocol_error(reply)
            return
        if event.suggested_reply is not None and not isinstance(event, (EndOfMessage, EndOfChunk)):
            # Grammar or sequence errors the core already judged (503, 501...).
            await self._protocol_error(event.suggested_reply)
            return
        if isinstance(event, Ehlo):
            await self._hello(event.domain, ehlo=True)
        elif isinstance(event, Helo):
            await self._hello(event.domain, ehlo=False)
        elif isinstance(event, (StartTls, XAnonymousTls)):
            await self._starttls(anonymous=isinstance(event, XAnonymousTls))
        elif isinstance(event, Auth):
            await self._auth(event)
        elif isinstance(event, AuthResponse):
            await self._auth_response(event)
        elif isinstance(event, XExps):
            await self._x_exps(event)
        elif isinstance(event, Mail):
            await self._mail(event)
        elif isinstance(event, Rcpt):
            await self._rcpt(event)
        elif isinstance(event, Data):
            self.message = _Message(self.env.acceptor.open_spool())
            await self.send(replies.START_MAIL_INPUT)
        elif isinstance(event, EndOfChunk):
            await self.send(Reply.of(250, f"{event.size} bytes received", enhanced="2.6.0"))
        elif isinstance(event, EndOfMessage):
            await self._end_of_message(event)
        elif isinstance(event, Rset):
            self._drop_message()
            await self.send(replies.RESETTING)
        elif isinstance(event, Noop):
            await self.send(replies.NOOP_OK)
        elif isinstance(event, Vrfy):
            await self.send(replies.CANNOT_VRFY)
        elif isinstance(event, Help):
            await self.send(replies.HELP)
        elif isinstance(event, Quit):
            await self.send(replies.CLOSING)
            await self.writer.drain()
            raise _Closing
        else:
            await self._protocol_error(replies.UNRECOGNIZED_COMMAND)

    async def _protocol_error(self, reply: Reply) -> None:
        self.protocol_errors += 1
        limit = self.connector.max_protocol_errors
        if limit is not None and self.protocol_errors > limit:
            await self._close_with(replies.TOO_MANY_ERRORS)
        await self._tarpit(reply)
        await self.send(reply)

    async def _hello(self, domain: str, *, ehlo: bool) -> None:
        text = hello_text(self.fqdn, self.remote_ip)
        if not ehlo:
            await self.send(Reply.of(250, text))
            return
        keywords = ehlo_keywords(
            self.connector,
            secure=self.conn.secure,
            anonymous_tls=self.conn.tls == "X-ANONYMOUSTLS",
            certificate=self.env.starttls_context is not None,
            hub=self.config.server.is_hub,
            xexch50_enabled=self.config.organization.xexch50_enabled,
        )
        await self.send(Reply.of(250, text, *keywords))

    async def _starttls(self, *, anonymous: bool) -> None:
        ctx = self.env.anonymous_tls_context if anonymous else self.env.starttls_context
        if self.conn.secure:
            await self._protocol_error(replies.ONLY_ONE_STARTTLS)
            return
        advertised = ehlo_keywords(
            self.connector,
            secure=False,
            anonymous_tls=False,
            certificate=ctx is not None,
            hub=self.config.server.is_hub,
        )
        if ctx is None or ("X-ANONYMOUSTLS" if anonymous else "STARTTLS") not in advertised:
            await self._protocol_error(replies.UNRECOGNIZED_COMMAND)
            return
        stop_reading(self.writer)
        await self.send(replies.TLS_READY)
        await self.writer.drain()
        # Bytes the client sent after the command, before our 220, are plaintext that
        # must never count as commands inside TLS (RFC 3207 section 4.2).
        buffer = getattr(self.reader, "_buffer", None)
        if isinstance(buffer, bytearray):
            buffer.clear()
        try:
            await self.writer.start_tls(ctx)
        except (ssl.SSLError, OSError) as exc:
            self.log.info("", f"TLS negotiation failed with error {type(exc).__name__}")
            raise _Closing from None
        tls = self.writer.get_extra_info("ssl_object")
        version = tls.version() if isinstance(tls, ssl.SSLObject) else "TLS"
        cipher = tls.cipher() if isinstance(tls, ssl.SSLObject) else None
        self.log.info(
            "",
            f"TLS protocol {version} negotiation succeeded"
            + (f" using {cipher[0]} with strength {cipher[2]} bits" if cipher else ""),
        )
        self.conn.tls_established()

    async def _auth(self, event: Auth) -> None:
        refusal = check_auth(
            self.connector, self.view, event.mechanism, already=self.conn.authenticated
        )
        if refusal is not None:
            if refusal is replies.TEMPORARY_AUTH_FAILURE:
                self.log.info("", f"{event.mechanism} authentication is not available in sitemail")
            await self._protocol_error(refusal)
            return
        self.auth_state = {"mechanism": "LOGIN"}
        if event.initial_response is not None:
            self.auth_state["user"] = _b64(event.initial_response)
            await self.send(replies.AUTH_PASSWORD_PROMPT)
        else:
            await self.send(replies.AUTH_USERNAME_PROMPT)

    async def _auth_response(self, event: AuthResponse) -> None:
        if event.cancelled:
            self.auth_state = {}
            await self.send(Reply.of(501, "Authentication cancelled", enhanced="5.0.0"))
            return
        if "user" not in self.auth_state:
            self.auth_state["user"] = _b64(event.line)
            await self.send(replies.AUTH_PASSWORD_PROMPT)
            return
        user, password = self.auth_state.pop("user"), _b64(event.line)
        self.auth_state = {}
        mailbox = await asyncio.to_thread(self._check_login, user, password)
        if mailbox is None:
            self.logon_failures += 1
            reply = replies.AUTH_UNSUCCESSFUL
            await self._tarpit(reply)
            await self.send(reply)
            if self.logon_failures >= max(1, self.connector.max_logon_failures):
                await self._close_with(replies.TOO_MANY_ERRORS)
            return
        self.auth_name = mailbox.primary_smtp_address
        self.user_addresses = frozenset(mailbox.all_addresses)
        await self.send(replies.AUTH_SUCCESSFUL)
        self._set_rights(Principal.USER)

    def _check_login(self, user: str, password: str) -> Mailbox | None:
        name = user.strip().lower()
        if "\\" in name:
            name = name.rsplit("\\", 1)[1]
        for mailbox in self.env.directory.list(Mailbox):
            names = {mailbox.alias.lower(), *mailbox.all_addresses}
            if name in names:
                return mailbox if verify_password(password, mailbox.password_hash) else None
        return None

    async def _x_exps(self, event: XExps) -> None:
        if self.conn.authenticated:
            await self._protocol_error(replies.AUTH_ALREADY_SPECIFIED)
            return
        if event.mechanism != "EXCHANGEAUTH" or self.conn.tls != "X-ANONYMOUSTLS":
            # GSSAPI/NTLM Exchange auth needs a Windows domain (honest failure).
            self.log.info("", f"Exchange authentication {event.mechanism} is not available")
            await self.send(replies.TEMPORARY_AUTH_FAILURE)
            return
        tls = self.writer.get_extra_info("ssl_object")
        peer = self.env.verifier.identify_ssl(tls) if isinstance(tls, ssl.SSLObject) else None
        outcome = exchange_auth.check_blob(event.blob, peer, self.config.server.fqdn)
        if outcome.server is None:
            self.log.info(
                "",
                f"Inbound authentication failed with error {outcome.reason} for Receive "
                f"connector {self.connector.name}. The authentication mechanism is ExchangeAuth.",
            )
            reply = (
                replies.AUTH_UNSUCCESSFUL
                if outcome.reason.startswith("LogonDenied")
                else replies.TEMPORARY_AUTH_FAILURE
            )
            await self.send(reply)
            return
        self.auth_name = outcome.server
        await self.send(Reply.of(235, exchange_auth.make_mutual_blob(self.config.server.name)))
        self._set_rights(Principal.EXCHANGE_SERVER)

    async def _mail(self, event: Mail) -> None:
        size = event.params.get("SIZE")
        declared = int(size) if isinstance(size, str) and size.isdigit() else None
        refusal, close = check_mail(
            self.connector, self.config.organization, self.view, event.address, declared
        )
        if refusal is not None:
            await self._tarpit(refusal)
            if close:
                await self._close_with(refusal)
            await self.send(refusal)
            return
        await self.send(replies.SENDER_OK)

    async def _rcpt(self, event: Rcpt) -> None:
        refusal = check_rcpt(
            self.connector,
            self.config.organization,
            self.view,
            event.address,
            self.conn.rcpt_count,
        )
        if refusal is not None:
            await self._tarpit(refusal)
            await self.send(refusal)
            return
        await self.send(replies.RECIPIENT_OK)

    # --- the message

    def _limit(self) -> int | None:
        if Right.BypassMessageSizeLimit in self.rights:
            return None
        return self.connector.max_message_size

    def _body(self, data: bytes) -> None:
        msg = self.message
        if msg is None or msg.discarding:
            return
        msg.received += len(data)
        limit = self._limit()
        if limit is not None and msg.received > limit:
            # Over the limit: read on to the end (the 552 comes then), store nothing more.
            msg.discarding = True
            return
        if msg.section is not None:
            msg.spool.write(data)
            return
        msg.head += data
        section, rest = parse_header_section(bytes(msg.head))
        if section.complete or len(msg.head) > self.connector.max_header_size:
            self._emit_head(msg, section, rest)

    def _emit_head(self, msg: _Message, section: HeaderSection, rest: bytes) -> None:
        """The header section is complete: stamp it, filter it, and spool it before the body."""
        msg.hops = section.count("Received")
        apply_header_firewall(section, self.rights)
        message_id = section.get("Message-ID")
        added = b""
        if not message_id:
            message_id = new_message_id(self.config.server.fqdn)
            added = f"Message-ID: {message_id}\r\n".encode()
        msg.message_id, msg.subject = message_id, decoded_subject(section)
        prefix = received_header(
            self.conn.hello.domain if self.conn.hello else "",
            self.remote_ip,
            self.config.server.fqdn,
            self.local_ip,
            self.env.clock.now().astimezone(),
            tls=self.conn.secure,
        )
        if self.principal is not Principal.EXCHANGE_SERVER:
            prefix += organization_headers(self.config.server.fqdn, auth_as(self.view, False))
        msg.spool.write(prefix + section.to_bytes() + added + rest)
        msg.section = section
        msg.head = bytearray()

    def _drop_message(self) -> None:
        if self.message is not None:
            self.message.spool.abort()
            self.message = None

    async def _end_of_message(self, event: EndOfMessage) -> None:
        msg = self.message
        self.message = None
        if msg is None:
            await self.send(replies.NEED_MAIL_COMMAND)
            return
        if msg.section is None and not msg.discarding:
            section, rest = parse_header_section(bytes(msg.head))
            self._emit_head(msg, section, rest)
        refusal = check_end_of_data(
            self.connector,
            self.view,
            size=event.size,
            size_exceeded=msg.discarding,
            header_size_exceeded=event.header_size_exceeded,
            hop_count=msg.hops,
        )
        if refusal is not None:
            msg.spool.abort()
            await self._tarpit(refusal)
            await self.send(refusal)
            return
        mail_from = self.conn.mail_from or ""
        recipients = tuple(EnvelopeRecipient(r) for r in event.recipients)
        envelope = Envelope(
            mail_from=mail_from,
            recipients=recipients,
            internet_message_id=msg.message_id,
            received_at=self.env.clock.now(),
            client_ip=self.remote_ip,
            client_hostname=self.conn.hello.domain if self.conn.hello else "",
            connector_id=self.connector.identity,
            auth_as=self.auth_name,
            subject=msg.subject,
        )
        try:
            # accept() fsyncs: only after it returns may the client hear 250.
            internal_id = await self.env.acceptor.accept(msg.spool, envelope)
        except AcceptError as exc:
            log.error("cannot queue a message: %s", exc)
            msg.spool.abort()
            await self.send(replies.INSUFFICIENT_RESOURCES)
            return
        except AcceptOutcomeUnknown as exc:
            log.error("no answer from the queue (%s): closing without a reply", exc)
            self.log.info("", "Connection closed: the message's fate is unknown")
            raise _Closing from None
        await self.send(replies.queued_mail(msg.message_id, internal_id))


def _lines(data: bytes) -> list[str]:
    return [line for line in data.decode("utf-8", errors="replace").split("\r\n") if line]


def _b64(text: str) -> str:
    try:
        return base64.b64decode(text.strip(), validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""
