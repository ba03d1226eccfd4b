"""The SMTP server side of a plain MTA: the lab's Internet host and the legacy Exchange 2003 server.

The hubs' receive side (:mod:`sitemail.transport.receive_server`) speaks
Exchange 2010 with receive connectors, permission groups and protocol logs.
The two other mail systems of a lab need far less: a greeting of their own,
a relay rule, optional STARTTLS and AUTH, and a durable hand-off before the
250.  This module holds that much, once, for both:

- :class:`MtaProfile` is what makes an MTA sound like itself and decides who
  may send what (its banner, EHLO, reply texts and relay rule).  Profiles
  are frozen values built from a directory snapshot; their checks are pure
  functions, tested with exact replies.
- :class:`MessageSink` is where accepted mail goes (a :class:`QueueStore`,
  or straight into a mailbox database); its ``accept`` returning is the
  durability point, and only then does the client hear 250.
- :class:`MtaSession` runs one connection on the sans-I/O core
  (:mod:`sitemail.protocols.smtp`); :class:`MtaListener` accepts them.

The core suggests Exchange 2010's texts for grammar and sequence errors; a
session answers them in its profile's own words instead (see
:meth:`MtaSession._translate`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sitemail.clock import SYSTEM_CLOCK, Clock
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
from sitemail.server.streams import stop_reading
from sitemail.transport.headers import (
    HeaderSection,
    decoded_subject,
    new_message_id,
    parse_header_section,
)
from sitemail.transport.submission import AcceptError, Envelope, EnvelopeRecipient, SpoolWriter

log = logging.getLogger("sitemail.lab.mta")

READ_SIZE = 64 * 1024
TLS_HANDSHAKE_TIMEOUT = 30.0
# A Message-ID longer than this is cut: it becomes part of a mailbox delivery id,
# which the store bounds (sitemail.mailbox.limits.MAX_DELIVERY_ID is 512).
MAX_MESSAGE_ID = 250
_MESSAGE_ID = re.compile(rf"<[^<>\s]{{1,{MAX_MESSAGE_ID - 2}}}>")


# ---------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What a profile's decisions may look at: the session as it stands."""

    remote_ip: str
    port: int
    """The service port the client connected to (25, 587), without the lab's offset."""
    secure: bool = False
    """TLS is up (STARTTLS succeeded)."""
    user: str | None = None
    """Who authenticated (AUTH), if anyone."""
    rcpt_count: int = 0
    """Recipients already accepted in this transaction."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on one session (every input from the network is bounded)."""

    max_message_size: int = 10_240_000
    max_recipients: int = 1000
    max_header_size: int = 256 * 1024
    max_hops: int = 50
    """Received headers beyond which a message is refused as a loop."""
    max_errors: int = 20
    """Refused commands after which the session is closed."""
    idle_timeout: float = 300.0
    session_timeout: float = 1800.0
    max_sessions: int = 100


@dataclass(frozen=True, slots=True)
class Replies:
    """The fixed replies of one MTA, in its own words."""

    hello_first: Reply
    nested_mail: Reply
    need_mail: Reply
    need_rcpt: Reply
    bad_sender: Reply
    bad_recipient: Reply
    bad_parameter: Reply
    syntax_error: Reply
    unknown_command: Reply
    line_too_long: Reply
    data_start: Reply
    reset: Reply
    noop: Reply
    vrfy: Reply
    help: Reply
    closing: Reply
    tls_ready: Reply
    tls_active: Reply
    auth_unavailable: Reply
    auth_in_transaction: Reply
    auth_already: Reply
    auth_bad_mechanism: Reply
    auth_ok: Reply
    auth_failed: Reply
    auth_cancelled: Reply
    size_exceeded: Reply
    too_many_recipients: Reply
    too_many_hops: Reply
    queue_error: Reply
    timeout: Reply
    too_many_errors: Reply
    busy: Reply


class MtaProfile(Protocol):
    """One MTA's voice and rules (implemented by frozen dataclasses)."""

    @property
    def hostname(self) -> str: ...

    @property
    def replies(self) -> Replies: ...

    @property
    def limits(self) -> Limits: ...

    @property
    def chunking(self) -> bool:
        """BDAT is offered and taken (RFC 3030)."""
        ...

    def banner(self, now: datetime) -> str:
        """The 220 greeting line, without CRLF."""
        ...

    def hello(self, facts: SessionFacts, *, ehlo: bool, tls_available: bool) -> Reply: ...

    def hello_syntax(self, verb: str) -> Reply:
        """The reply to a HELO/EHLO without a domain."""
        ...

    def auth_mechanisms(self, facts: SessionFacts) -> tuple[str, ...]:
        """The SASL mechanisms AUTH takes now (empty: AUTH is not available)."""
        ...

    def check_mail(self, facts: SessionFacts, sender: str) -> Reply | None:
        """A refusal of MAIL FROM, or None to accept it."""
        ...

    def check_rcpt(self, facts: SessionFacts, recipient: str) -> Reply | None:
        """A refusal of RCPT TO, or None to accept it."""
        ...

    def sender_ok(self, sender: str) -> Reply: ...

    def recipient_ok(self, recipient: str) -> Reply: ...

    def queued(self, message_id: str, queue_id: str) -> Reply:
        """The 250 after the message was made durable."""
        ...

    def received(self, facts: SessionFacts, helo: str, now: datetime) -> bytes:
        """The Received: field this MTA prepends (CRLF-terminated lines)."""
        ...

    def login(self, user: str, password: str) -> str | None:
        """The authenticated identity, or None.  Blocking (password hashing)."""
        ...


class MessageSink(Protocol):
    """Where accepted messages go."""

    def open_spool(self) -> SpoolWriter:
        """A writer for the body of one message (streamed, bounded memory)."""
        ...

    async def accept(self, spool: SpoolWriter, envelope: Envelope) -> str:
        """Make the message durable; return its queue id for the 250.

        Raises :class:`AcceptError` when it cannot; the spool is then given up.
        """
        ...


def message_id_of(value: str | None) -> str | None:
    """The ``<...>`` part of a Message-ID field, or None when it has none usable."""
    if not value:
        return None
    found = _MESSAGE_ID.search(value)
    return found.group(0) if found else None


def decode_plain(blob: str) -> tuple[str, str] | None:
    """(user, password) from an AUTH PLAIN response (RFC 4616), or None if malformed."""
    text = b64decode(blob)
    if text is None:
        return None
    parts = text.split("\0")
    if len(parts) != 3:
        return None
    _authzid, user, password = parts
    return user, password


def b64decode(blob: str) -> str | None:
    try:
        return base64.b64decode(blob.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None


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

        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.ensure_future(self._serve(reader, writer, port))
            self._sessions.add(task)
            task.add_done_callback(self._sessions.discard)

        server = await asyncio.start_server(
            accept, address, port + self.port_offset, reuse_address=True, limit=READ_SIZE
        )
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

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int
    ) -> None:
        profile = self.profile()
        try:
            # The task itself is already counted in _sessions.
            if len(self._sessions) > profile.limits.max_sessions:
                with contextlib.suppress(OSError):
                    writer.write(profile.replies.busy.to_bytes())
                    await writer.drain()
                return
            session = MtaSession(
                profile, self.sink, reader, writer, port=port, tls=self.tls, clock=self.clock
            )
            await session.run()
        except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
            log.debug("session ended: %s", exc)
        except Exception:
            log.exception("SMTP session failed")
        finally:
            writer.close()


# ---------------------------------------------------------------------------- session


class _Closing(Exception):
    """The session ends after the reply that was just sent."""


@dataclass
class _Message:
    """A message being received: its header section in memory, the rest on the spool."""

    spool: SpoolWriter
    head: bytearray = field(default_factory=bytearray)
    head_done: bool = False
    message_id: str = ""
    subject: str = ""
    hops: int = 0
    received: int = 0
    discarding: bool = False  # over the size limit: read on, keep nothing


@dataclass
class _Auth:
    mechanism: str
    user: str | None = None


class MtaSession:
    def __init__(
        self,
        profile: MtaProfile,
        sink: MessageSink,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        port: int,
        tls: ssl.SSLContext | None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.profile = profile
        self.r = profile.replies
        self.sink = sink
        self.reader = reader
        self.writer = writer
        self.port = port
        self.tls = tls
        self.clock = clock
        remote = writer.get_extra_info("peername")
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
        self.message: _Message | None = None
        self.refusing_bdat = False
        self.rcpts: dict[str, EnvelopeRecipient] = {}
        self.mail_params: dict[str, str | None] = {}
        self.started = clock.monotonic()

    @property
    def facts(self) -> SessionFacts:
        return SessionFacts(
            remote_ip=self.remote_ip,
            port=self.port,
            secure=self.conn.secure,
            user=self.user,
            rcpt_count=self.conn.rcpt_count,
        )

    # --- main loop

    async def run(self) -> None:
        self.writer.write(self.profile.banner(self.clock.now()).encode() + b"\r\n")
        await self.writer.drain()
        try:
            await self._loop()
        except _Closing:
            pass
        finally:
            self._drop_message()
            with contextlib.suppress(OSError, ssl.SSLError):
                await self.writer.drain()

    async def _loop(self) -> None:
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA:
                await self.writer.drain()
                self.conn.receive_data(await self._read())
                continue
            if event is PAUSED:
                raise AssertionError("the session answers every event before the next")
            if isinstance(event, ConnectionClosed):
                return
            if isinstance(event, BodyChunk):
                self._body(event.data)
                continue
            if isinstance(event, Bdat):
                self._bdat()
                continue
            assert isinstance(event, NeedsReply)
            await self._answer(event)

    async def _read(self) -> bytes:
        limits = self.profile.limits
        remaining = limits.session_timeout - (self.clock.monotonic() - self.started)
        if remaining <= 0:
            await self._close_with(self.r.timeout)
        try:
            return await asyncio.wait_for(
                self.reader.read(READ_SIZE), min(limits.idle_timeout, remaining)
            )
        except TimeoutError:
            await self._close_with(self.r.timeout)
        raise AssertionError("unreachable")

    async def send(self, reply: Reply) -> None:
        if reply.code >= 400:
            self.errors += 1
            if self.errors > self.profile.limits.max_errors:
                await self._close_with(self.r.too_many_errors)
        self.writer.write(self.conn.send_reply(reply))

    async def _close_with(self, reply: Reply) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            self.writer.write(self.conn.send_unsolicited(reply))
            await self.writer.drain()
        raise _Closing

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
            self.message = _Message(self.sink.open_spool())
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
            await self.writer.drain()
            raise _Closing
        else:
            # X-ANONYMOUSTLS, X-EXPS and verbs no plain MTA knows.
            await self.send(self.r.unknown_command)

    async def _starttls(self) -> None:
        if self.tls is None:
            await self.send(self.r.unknown_command)
            return
        stop_reading(self.writer)
        await self.send(self.r.tls_ready)
        await self.writer.drain()
        # Bytes sent after STARTTLS in plaintext must never count as commands
        # inside TLS (RFC 3207 section 4.2): drop what the stream holds.
        buffer = getattr(self.reader, "_buffer", None)
        if isinstance(buffer, bytearray):
            buffer.clear()
        try:
            await asyncio.wait_for(self.writer.start_tls(self.tls), TLS_HANDSHAKE_TIMEOUT)
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            log.debug("TLS handshake with %s failed: %s", self.remote_ip, exc)
            raise _Closing from None
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
            self.message = _Message(self.sink.open_spool())

    def _body(self, data: bytes) -> None:
        msg = self.message
        if msg is None or msg.discarding or self.refusing_bdat:
            return
        msg.received += len(data)
        if msg.received > self.profile.limits.max_message_size:
            msg.discarding = True  # read on to the end (the 552 comes then), keep nothing
            return
        if msg.head_done:
            msg.spool.write(data)
            return
        msg.head += data
        section, rest = parse_header_section(bytes(msg.head))
        if section.complete or len(msg.head) > self.profile.limits.max_header_size:
            self._emit_head(msg, section, rest)

    def _emit_head(self, msg: _Message, section: HeaderSection, rest: bytes) -> None:
        """The header section is complete: stamp it and spool it ahead of the body."""
        msg.hops = section.count("Received")
        added = b""
        header = section.get("Message-ID")
        message_id = message_id_of(header)
        if message_id is None:
            # The id names the message in the queue and in mailbox delivery ids.  A
            # header too odd to use stays as it is (a second one would break RFC 5322).
            message_id = new_message_id(self.profile.hostname)
            if header is None:
                added = f"Message-ID: {message_id}\r\n".encode()
        msg.message_id, msg.subject = message_id, decoded_subject(section)
        helo = self.conn.hello.domain if self.conn.hello else ""
        stamp = self.profile.received(self.facts, helo, self.clock.now())
        msg.spool.write(stamp + section.to_bytes() + added + rest)
        msg.head = bytearray()
        msg.head_done = True

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
        if not msg.head_done and not msg.discarding:
            section, rest = parse_header_section(bytes(msg.head))
            self._emit_head(msg, section, rest)
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

    def _envelope(self, msg: _Message, recipients: tuple[str, ...]) -> Envelope:
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
