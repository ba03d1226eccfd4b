"""The SMTP server of a plain MTA: the lab's Internet host and Exchange 2003's SMTP service.

The hubs' receive side (:mod:`sitemail.transport.receive_session`) speaks
Exchange 2010 with receive connectors, permission groups and protocol logs.
The two other mail systems of a lab need far less: a greeting of their own,
a relay rule, optional STARTTLS and AUTH, and a durable hand-off before the
250.  This module holds that much, once, for both: :class:`MtaSession`
answers one connection in its :class:`~.profile.MtaProfile`'s words over the
sans-I/O core (:mod:`sitemail.protocols.smtp`), run by the line session
runner (:mod:`sitemail.server.line_session`); :class:`MtaListener` accepts
the connections.

The core suggests Exchange 2010's texts for grammar and sequence errors; a
session answers them in its profile's own words instead (see
:meth:`MtaSession._translate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.mailflow.envelope import AcceptError, Envelope, EnvelopeRecipient
from sitemail.mta.profile import (
    MessageSink,
    MtaProfile,
    SessionFacts,
    b64decode,
    decode_plain,
)
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
    Vrfy,
    replies,
)
from sitemail.server.line_connection import LineConnection, SessionClosing, listen
from sitemail.server.line_session import ClosedBy, CoreSignals, run_session
from sitemail.transport.headers import HeaderSection
from sitemail.transport.incoming_message import IncomingMessage

# The logger keeps the name it had under sitemail.lab: log lines stay as they were.
log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- listener


class MtaListener:
    """Accepts connections on (address, port) pairs and runs one session for each."""

    def __init__(
        self,
        profile: Callable[[], MtaProfile],
        sink: MessageSink,
        *,
        tls: ssl.SSLContext | None,
        port_offset: int = 0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        # A fresh profile per connection: directory changes (users, mailboxes)
        # apply to the next session without a restart.
        self.profile = profile
        self.sink = sink
        self.tls = tls
        self.port_offset = port_offset
        self.clock = clock
        self._servers: list[asyncio.AbstractServer] = []
        self._sessions: set[asyncio.Task[None]] = set()

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    async def listen(self, address: str, port: int) -> int:
        """Listen for the service ``port`` (the lab's offset added); returns the bound port."""

        def accept(conn: LineConnection) -> None:
            task = asyncio.ensure_future(self._serve(conn, port))
            self._sessions.add(task)
            task.add_done_callback(self._sessions.discard)

        server = await listen(address, port + self.port_offset, accept)
        self._servers.append(server)
        bound: int = server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        self._servers.clear()

    async def _serve(self, conn: LineConnection, port: int) -> None:
        profile = self.profile()
        try:
            # The task itself is already counted in _sessions.
            if len(self._sessions) > profile.limits.max_sessions:
                with contextlib.suppress(OSError):
                    conn.write(profile.replies.busy.to_bytes())
                    await conn.drain()
                return
            session = MtaSession(
                profile, self.sink, conn, port=port, tls=self.tls, clock=self.clock
            )
            await run_session(conn, session)
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            log.debug("session ended: %s", exc)
        except Exception:
            log.exception("SMTP session failed")
        finally:
            conn.close()


# ---------------------------------------------------------------------------- session


@dataclass
class _Auth:
    mechanism: str
    user: str | None = None


class MtaSession:
    """One connection of a plain MTA, in its profile's words (see the module's docstring)."""

    signals = CoreSignals(NEED_DATA, PAUSED, ConnectionClosed)

    def __init__(
        self,
        profile: MtaProfile,
        sink: MessageSink,
        client: LineConnection,
        *,
        port: int,
        tls: ssl.SSLContext | None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.profile = profile
        self.r = profile.replies
        self.sink = sink
        self.client = client
        self.port = port
        self.tls = tls
        self.clock = clock
        remote = client.peer
        self.remote_ip: str = remote[0] if remote else ""
        limits = profile.limits
        self.conn = ServerConnection(
            ServerSettings(
                max_header_size=limits.max_header_size,
                max_message_size=limits.max_message_size,
            )
        )
        self.user: str | None = None
        self.auth: _Auth | None = None
        self.errors = 0
        self.message: IncomingMessage | None = None
        self.refusing_bdat = False
        self.rcpts: dict[str, EnvelopeRecipient] = {}
        self.mail_params: dict[str, str | None] = {}
        self.started = clock.monotonic()

    @property
    def core(self) -> ServerConnection:
        return self.conn

    @property
    def facts(self) -> SessionFacts:
        return SessionFacts(
            remote_ip=self.remote_ip,
            port=self.port,
            secure=self.conn.secure,
            user=self.user,
            rcpt_count=self.conn.rcpt_count,
        )

    # --- the runner's hooks (sitemail.server.line_session.LineSession)

    async def begin(self) -> None:
        self.client.write(self.profile.banner(self.clock.now()).encode() + b"\r\n")

    def read_timeout(self) -> float:
        limits = self.profile.limits
        remaining = limits.session_timeout - (self.clock.monotonic() - self.started)
        return min(limits.idle_timeout, remaining)

    async def timed_out(self) -> None:
        await self._close_with(self.r.timeout)

    async def end(self, closed_by: ClosedBy) -> None:
        self._drop_message()

    async def handle(self, event: object) -> None:
        if isinstance(event, BodyChunk):
            self._body(event.data)
        elif isinstance(event, Bdat):
            self._bdat()
        else:
            assert isinstance(event, NeedsReply)
            await self._answer(event)

    async def send(self, reply: Reply) -> None:
        if reply.code >= 400:
            self.errors += 1
            if self.errors > self.profile.limits.max_errors:
                await self._close_with(self.r.too_many_errors)
        self.client.write(self.conn.send_reply(reply))

    async def _close_with(self, reply: Reply) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            self.client.write(self.conn.send_unsolicited(reply))
            await self.client.drain()
        raise SessionClosing

    # --- answers

    def _translate(self, event: NeedsReply, suggested: Reply) -> Reply:
        """The profile's words for what the core's grammar and state checks found."""
        r = self.r
        table = {
            replies.SEND_HELLO_FIRST: r.hello_first,
            replies.SENDER_ALREADY_SPECIFIED: r.nested_mail,
            replies.NEED_MAIL_COMMAND: r.need_mail,
            replies.NEED_RCPT_COMMAND: r.need_rcpt,
            replies.ONLY_ONE_STARTTLS: r.tls_active,
            replies.AUTH_ALREADY_SPECIFIED: r.auth_already,
            replies.INVALID_SENDER_ADDRESS: r.bad_sender,
            replies.INVALID_RECIPIENT_ADDRESS: r.bad_recipient,
            replies.UNRECOGNIZED_PARAMETER: r.bad_parameter,
            replies.UNRECOGNIZED_COMMAND: r.unknown_command,
            replies.LINE_TOO_LONG: r.line_too_long,
            replies.MESSAGE_TOO_BIG: r.size_exceeded,
            replies.HEADER_TOO_BIG: r.size_exceeded,
        }
        found = table.get(suggested)
        if found is not None:
            return found
        if isinstance(event, (Helo, Ehlo)):
            return self.profile.hello_syntax("EHLO" if isinstance(event, Ehlo) else "HELO")
        return r.syntax_error

    async def _answer(self, event: NeedsReply) -> None:
        sugg = event.suggested_reply
        if isinstance(event, (Helo, Ehlo)) and sugg == replies.INVALID_DOMAIN:
            # Plain MTAs take any word after HELO; only a missing one is an error.
            sugg = None
        if isinstance(event, (EndOfMessage, EndOfChunk)):
            await self._end_of_chunk(event)
            return
        if isinstance(event, (BadSyntax, LineTooLong)) or (
            sugg is not None and not isinstance(event, AuthResponse)
        ):
            await self.send(self._translate(event, sugg or replies.UNRECOGNIZED_COMMAND))
            return
        if isinstance(event, (Helo, Ehlo)):
            await self.send(
                self.profile.hello(
                    self.facts, ehlo=isinstance(event, Ehlo), tls_available=self.tls is not None
                )
            )
        elif isinstance(event, StartTls):
            await self._starttls()
        elif isinstance(event, Auth):
            await self._auth(event)
        elif isinstance(event, AuthResponse):
            await self._auth_response(event)
        elif isinstance(event, Mail):
            await self._mail(event)
        elif isinstance(event, Rcpt):
            await self._rcpt(event)
        elif isinstance(event, Data):
            self.message = IncomingMessage(self.sink.open_spool())
            await self.send(self.r.data_start)
        elif isinstance(event, Rset):
            self._reset()
            await self.send(self.r.reset)
        elif isinstance(event, Noop):
            await self.send(self.r.noop)
        elif isinstance(event, Vrfy):
            await self.send(self.r.vrfy)
        elif isinstance(event, Help):
            await self.send(self.r.help)
        elif isinstance(event, Quit):
            await self.send(self.r.closing)
            await self.client.drain()
            raise SessionClosing
        else:
            # X-ANONYMOUSTLS, X-EXPS and verbs no plain MTA knows.
            await self.send(self.r.unknown_command)

    async def _starttls(self) -> None:
        if self.tls is None:
            await self.send(self.r.unknown_command)
            return
        # Plaintext the client sent after the command is dropped (RFC 3207 4.2).
        await self.client.start_tls(self.tls, self.conn.send_reply(self.r.tls_ready))
        self.conn.tls_established()
        self.auth = None  # RFC 3207: everything learnt before TLS is forgotten
        self.user = None

    # --- AUTH

    async def _auth(self, event: Auth) -> None:
        mechanisms = self.profile.auth_mechanisms(self.facts)
        if not mechanisms:
            await self.send(self.r.auth_unavailable)
            return
        if self.conn.mail_from is not None:
            await self.send(self.r.auth_in_transaction)
            return
        if event.mechanism not in mechanisms:
            await self.send(self.r.auth_bad_mechanism)
            return
        if event.mechanism == "PLAIN":
            if event.initial_response is None:
                self.auth = _Auth("PLAIN")
                await self.send(Reply.of(334, ""))
                return
            await self._login(decode_plain(event.initial_response))
            return
        # LOGIN
        if event.initial_response is None:
            self.auth = _Auth("LOGIN")
            await self.send(replies.AUTH_USERNAME_PROMPT)
            return
        self.auth = _Auth("LOGIN", b64decode(event.initial_response) or "")
        await self.send(replies.AUTH_PASSWORD_PROMPT)

    async def _auth_response(self, event: AuthResponse) -> None:
        state, self.auth = self.auth, None
        if event.cancelled or state is None:
            await self.send(self.r.auth_cancelled)
            return
        if state.mechanism == "PLAIN":
            await self._login(decode_plain(event.line))
            return
        if state.user is None:
            self.auth = _Auth("LOGIN", b64decode(event.line) or "")
            await self.send(replies.AUTH_PASSWORD_PROMPT)
            return
        password = b64decode(event.line)
        await self._login(None if password is None else (state.user, password))

    async def _login(self, credentials: tuple[str, str] | None) -> None:
        user = None
        if credentials is not None:
            user = await asyncio.to_thread(self.profile.login, *credentials)
        if user is None:
            await self.send(self.r.auth_failed)
            return
        self.user = user
        await self.send(self.r.auth_ok)

    # --- the transaction

    async def _mail(self, event: Mail) -> None:
        refusal = self.profile.check_mail(self.facts, event.address)
        if refusal is not None:
            await self.send(refusal)
            return
        self._reset()
        self.mail_params = dict(event.params)
        await self.send(self.profile.sender_ok(event.address))

    async def _rcpt(self, event: Rcpt) -> None:
        refusal = self.profile.check_rcpt(self.facts, event.address)
        if refusal is not None:
            await self.send(refusal)
            return
        notify, orcpt = event.params.get("NOTIFY"), event.params.get("ORCPT")
        self.rcpts[event.address] = EnvelopeRecipient(event.address, notify, orcpt)
        await self.send(self.profile.recipient_ok(event.address))

    def _bdat(self) -> None:
        if not self.profile.chunking:
            self.refusing_bdat = True  # the chunk is read (RFC 3030) and thrown away
            return
        if self.message is None and self.conn.mail_from is not None:
            self.message = IncomingMessage(self.sink.open_spool())

    def _body(self, data: bytes) -> None:
        msg = self.message
        if msg is None or self.refusing_bdat:
            return
        limits = self.profile.limits
        head = msg.take(data, limit=limits.max_message_size, max_header_size=limits.max_header_size)
        if head is not None:
            self._emit_head(msg, *head)

    def _emit_head(self, msg: IncomingMessage, section: HeaderSection, rest: bytes) -> None:
        """The header section is complete: stamp it and spool it ahead of the body."""
        helo = self.conn.hello.domain if self.conn.hello else ""
        stamp = self.profile.received(self.facts, helo, self.clock.now())
        msg.stamp_head(section, rest, stamp=stamp, fqdn=self.profile.hostname)

    async def _end_of_chunk(self, event: EndOfMessage | EndOfChunk) -> None:
        if self.refusing_bdat:
            # Each BDAT sets it again; a DATA that follows must keep its body.
            self.refusing_bdat = False
            if isinstance(event, EndOfMessage):
                self._drop_message()
            await self.send(self.r.unknown_command)
            return
        if isinstance(event, EndOfChunk):
            if event.suggested_reply is not None:
                await self.send(self._translate(event, event.suggested_reply))
            else:
                await self.send(Reply.of(250, f"{event.size} bytes received", enhanced="2.6.0"))
            return
        msg, self.message = self.message, None
        sugg = event.suggested_reply
        if msg is None or (sugg is not None and sugg not in _SIZE_REPLIES):
            if msg is not None:
                msg.spool.abort()
            await self.send(self._translate(event, sugg or replies.NEED_MAIL_COMMAND))
            return
        head = msg.unfinished_head()
        if head is not None:
            self._emit_head(msg, *head)
        refusal = None
        if msg.discarding or event.size_exceeded or event.header_size_exceeded:
            refusal = self.r.size_exceeded
        elif msg.hops > self.profile.limits.max_hops:
            refusal = self.r.too_many_hops
        if refusal is not None:
            msg.spool.abort()
            await self.send(refusal)
            return
        envelope = self._envelope(msg, event.recipients)
        try:
            queue_id = await self.sink.accept(msg.spool, envelope)
        except AcceptError as exc:
            log.error("cannot take a message from %s: %s", self.remote_ip, exc)
            msg.spool.abort()
            await self.send(self.r.queue_error)
            return
        log.info(
            "accepted %s from <%s> for %s as %s",
            msg.message_id,
            envelope.mail_from,
            ", ".join(r.address for r in envelope.recipients),
            queue_id,
        )
        await self.send(self.profile.queued(msg.message_id, queue_id))

    def _envelope(self, msg: IncomingMessage, recipients: tuple[str, ...]) -> Envelope:
        params = self.mail_params
        body = params.get("BODY")
        return Envelope(
            mail_from=self.conn.mail_from or "",
            recipients=tuple(self.rcpts.get(r) or EnvelopeRecipient(r) for r in recipients),
            internet_message_id=msg.message_id,
            received_at=self.clock.now(),
            client_ip=self.remote_ip,
            client_hostname=self.conn.hello.domain if self.conn.hello else "",
            auth_as=self.user,
            body_type=body.upper() if body else None,
            ret=params.get("RET"),
            envid=params.get("ENVID"),
            subject=msg.subject,
        )

    def _reset(self) -> None:
        self._drop_message()
        self.rcpts = {}
        self.mail_params = {}

    def _drop_message(self) -> None:
        if self.message is not None:
            self.message.spool.abort()
            self.message = None


_SIZE_REPLIES = (replies.MESSAGE_TOO_BIG, replies.HEADER_TOO_BIG)
