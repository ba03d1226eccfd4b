"""One SMTP connection of the sender: connect, EHLO, TLS, authentication, the transaction.

:func:`~sitemail.mailflow.smtp_sender.send_message` runs a :class:`SendSession`
per target.  Its choices (STARTTLS, X-EXPS, what to do with each reply) are
:mod:`.send_decision`'s; the grammar is the sans-I/O SMTP client core's; this
module does the socket, the TLS upgrade (:mod:`.tls_stream`), the timeouts and
the SmtpSend log rows.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, replace

from sitemail.mailflow.envelope import EnvelopeRecipient
from sitemail.mailflow.exchange_auth import HASH_ALGORITHM, check_mutual_blob, make_blob
from sitemail.mailflow.outbound import (
    READ_SIZE,
    BodyReadError,
    BodySource,
    OutboundMessage,
    RecipientResult,
    RecipientStatus,
    SenderSettings,
    Target,
)
from sitemail.mailflow.protocol_log import SessionLog
from sitemail.mailflow.send_decision import (
    CONNECTION_DROPPED,
    CONNECTION_TIMED_OUT,
    GSSAPI_UNAVAILABLE,
    TLS_NEGOTIATION_FAILED,
    UNABLE_TO_CONNECT,
    Action,
    SendPolicy,
    SessionState,
    Step,
    TlsKind,
    after_basic_auth,
    after_exchange_auth,
    after_hello,
    mail_parameters,
    rcpt_parameters,
    reply_text,
    use_chunking,
    use_pipelining,
)
from sitemail.mailflow.tls_log_text import certificate_thumbprint, tls_negotiated_text
from sitemail.mailflow.tls_stream import CountingReader, open_connection, start_tls
from sitemail.org.pki import ServerIdentity
from sitemail.protocols.smtp import (
    NEED_DATA,
    BadReply,
    ClientConnection,
    ClientState,
    ConnectionClosed,
    EhloReply,
    LocalProtocolError,
    Reply,
    Response,
)
from sitemail.protocols.smtp.shadow import parse_xqdiscard_reply, parse_xshadow_reply

# Replies nobody asked for that are tolerated while waiting for one (a chatty
# or hostile peer must not keep a delivery worker forever).
MAX_UNSOLICITED_REPLIES = 10


@dataclass(frozen=True, slots=True)
class Transaction:
    recipients: tuple[RecipientResult, ...]
    final_reply: Reply | None
    reply: Reply  # for the attempt record


class FailOver(Exception):
    """This target failed; try the next.  ``log``: information rows to write first."""

    def __init__(self, reply: Reply, log: Sequence[str] = ()) -> None:
        super().__init__(reply_text(reply))
        self.reply = reply
        self.log = tuple(log)

    @classmethod
    def synthetic(cls, reply: Reply, *reasons: str) -> FailOver:
        """A reply the sender makes up: logged as an information row (spec 4.5)."""
        return cls(reply, (*reasons, reply_text(reply)))


class SendSession:
    def __init__(
        self,
        target: Target,
        message: OutboundMessage,
        body: BodySource,
        settings: SenderSettings,
        policy: SendPolicy,
        anonymous_context: ssl.SSLContext | None,
        starttls_context: ssl.SSLContext,
        log: SessionLog,
        local_address: str | None,
    ) -> None:
        self.target = target
        self.message = message
        self.body = body
        self.settings = settings
        self.policy = policy
        self.anonymous_context = anonymous_context
        self.starttls_context = starttls_context
        self.log = log
        self.local_address = local_address
        self.conn = ClientConnection(settings.client)
        self.reader: CountingReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.peer_certificate: bytes | None = None
        self.broken = False  # the transport cannot carry a QUIT any more
        self.remote_closed = False
        self.transactions = 0  # messages begun over this connection
        self.exchange_authenticated = False
        self.shadow_id: str | None = None  # the peer's XSHADOW answer

    # --- the session

    async def run(self) -> Transaction | FailOver:
        """One message over a connection of its own: open, transact, close."""
        failure = await self.open()
        if failure is not None:
            return failure
        try:
            return await self.transact(self.message, self.body)
        finally:
            await self.close()

    async def open(self) -> FailOver | None:
        """Connect, greet, TLS and authentication, up to where MAIL can be sent.

        None when the session is ready for :meth:`transact`; the failure otherwise
        (the connection is closed then, and the log says why).
        """
        self.log.set_endpoints(remote=self.target.endpoint)
        self.log.info("", "attempting to connect")
        try:
            reader, writer = await asyncio.wait_for(
                open_connection(
                    self.target.address,
                    self.target.port,
                    local_addr=(self.local_address, 0) if self.local_address else None,
                    limit=READ_SIZE,
                ),
                self.settings.connect_timeout,
            )
        except ConnectionResetError:
            # The peer completed the handshake and then reset the connection before this
            # event loop saw the connect finish (a firewall that accepts and resets at
            # once).  A reset answering the SYN is ECONNREFUSED; ECONNRESET comes only
            # after the handshake.  So this is a reset while waiting for the banner, and
            # says so whichever came first here, the connect's callback or the reset.
            self.log.connect()
            self._info(FailOver.synthetic(CONNECTION_DROPPED).log)
            self.log.disconnect("Remote")
            return FailOver.synthetic(CONNECTION_DROPPED)
        except (OSError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            failure = FailOver.synthetic(UNABLE_TO_CONNECT, f"Failed to connect: {reason}")
            self._info(failure.log)
            return failure
        self.reader, self.writer = reader, writer
        sockname = writer.get_extra_info("sockname")
        if sockname:
            self.log.set_endpoints(local=f"{sockname[0]}:{sockname[1]}")
        self.log.connect()
        try:
            await self._greet()
        except FailOver as failure:
            self._info(failure.log)
            await self.close()
            return failure
        except BaseException:
            await self.close(quit=False)
            raise
        return None

    async def transact(self, message: OutboundMessage, body: BodySource) -> Transaction | FailOver:
        """One message over the open session (RSET first when it is not the first).

        A failure closes the session (the next message needs a new one); a message
        that could not be read (:class:`BodyReadError`) closes it too, and is raised.
        """
        self.message, self.body = message, body
        try:
            reset = self.transactions > 0
            self.transactions += 1
            return await self._transaction(self.conn.extensions, reset=reset)
        except FailOver as failure:
            self._info(failure.log)
            await self.close()
            return failure
        except BodyReadError:
            await self.close(quit=False)
            raise

    @property
    def is_open(self) -> bool:
        return self.writer is not None and not self.broken and not self._closed()

    async def close(self, *, quit: bool = True) -> None:
        """QUIT (if the session can carry it), log the disconnection, close the socket."""
        writer, self.writer = self.writer, None
        if writer is None:
            return
        try:
            if quit:
                self.writer = writer  # _quit writes through it
                try:
                    await self._quit()
                finally:
                    self.writer = None
            self.log.disconnect("Remote" if self.remote_closed else "Local")
        finally:
            if self.broken:
                # Nothing more can be said: drop unsent bytes instead of waiting on
                # a peer that stopped reading.
                writer.transport.abort()
            else:
                writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), self.settings.quit_timeout)

    async def _greet(self) -> None:
        banner = await self._response()
        if banner.code != 220:
            raise FailOver(banner)
        state = SessionState()
        hello = await self._hello(ehlo=True)
        while True:
            step = after_hello(hello, state, self.policy)
            if step.action is Action.SEND_HELO:
                state = replace(state, helo=True)
                hello = await self._hello(ehlo=False)
                continue
            if step.action in (Action.ANONYMOUS_TLS, Action.STARTTLS):
                kind = (
                    TlsKind.ANONYMOUS if step.action is Action.ANONYMOUS_TLS else TlsKind.STARTTLS
                )
                if not await self._start_tls(kind):
                    state = replace(state, tls_refused=True)
                    continue  # the same EHLO reply, judged without that TLS
                state = SessionState(tls=kind)
                hello = await self._hello(ehlo=True)
                continue
            if step.action is Action.EXCHANGE_AUTH:
                step = await self._exchange_auth()
                self.exchange_authenticated = step.action is Action.PROCEED
            elif step.action is Action.GSSAPI_EXCHANGE_AUTH:
                step = GSSAPI_UNAVAILABLE
            elif step.action is Action.BASIC_AUTH:
                step = await self._basic_auth()
            if step.action is Action.FAIL_OVER:
                assert step.reply is not None
                raise FailOver(step.reply, step.log)
            self._info(step.log)
            await self._xshadow()
            return  # PROCEED or CONTINUE_UNAUTHENTICATED: on to MAIL

    # --- shadow redundancy

    async def _xshadow(self) -> None:
        """XSHADOW after Exchange authentication, where offered and asked for."""
        ext = self.conn.extensions
        if not (self.settings.xshadow and self.exchange_authenticated and ext is not None):
            return
        if not ext.has("XSHADOW"):
            return
        reply = await self._command(self.conn.xshadow(self.settings.fqdn))
        # A refusal is no failure: the message goes on without a shadow copy.
        self.shadow_id = parse_xshadow_reply(reply)

    async def discards(self, limit: int) -> list[int] | None:
        """XQDISCARD: the peer's discard notifications for us (None: not available)."""
        if self.shadow_id is None or not self.is_open:
            return None
        try:
            reply = await self._command(self.conn.xqdiscard(limit))
        except FailOver:
            return None
        return parse_xqdiscard_reply(reply)

    async def _hello(self, *, ehlo: bool) -> EhloReply | Reply:
        fqdn = self.settings.fqdn
        reply = await self._command(self.conn.ehlo(fqdn) if ehlo else self.conn.helo(fqdn))
        if ehlo and reply.is_positive and self.conn.extensions is not None:
            return self.conn.extensions
        return reply

    # --- TLS

    async def _start_tls(self, kind: TlsKind) -> bool:
        """STARTTLS / X-ANONYMOUSTLS and the handshake; False if the command was refused."""
        anonymous = kind is TlsKind.ANONYMOUS
        reply = await self._command(
            self.conn.x_anonymous_tls() if anonymous else self.conn.starttls()
        )
        if reply.code != 220:
            return False
        context = self.anonymous_context if anonymous else self.starttls_context
        assert context is not None  # the decision checked the certificate
        assert self.reader is not None and self.writer is not None
        try:
            # Plaintext the peer sent after its 220 is dropped, never read as if it
            # came through TLS (RFC 3207 section 4.2): the core dropped what it held.
            await start_tls(
                self.reader,
                self.writer,
                context,
                server_hostname=self.target.host,
                timeout=self.settings.tls_timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            self.broken = True
            raise FailOver.synthetic(
                TLS_NEGOTIATION_FAILED, f"TLS negotiation failed with error {_error_name(exc)}"
            ) from None
        self.conn.tls_established()
        tls = self.writer.get_extra_info("ssl_object")
        if isinstance(tls, (ssl.SSLObject, ssl.SSLSocket)):
            self.log.info("", tls_negotiated_text(tls.version(), tls.cipher()))
            self.peer_certificate = tls.getpeercert(binary_form=True)
            if self.peer_certificate:
                self.log.info("", "Received certificate")
                self.log.info(
                    certificate_thumbprint(self.peer_certificate), "Certificate thumbprint"
                )
        return True

    # --- authentication

    async def _exchange_auth(self) -> Step:
        blob = make_blob(self.settings.server_name, self.target.host)
        reply = await self._command(self.conn.x_exps("EXCHANGEAUTH", HASH_ALGORITHM, blob))
        if reply.code == 334:
            # sitemail's EXCHANGEAUTH is one round; a challenge cannot be answered.
            await self._command(self.conn.auth_response("*"))
        return after_exchange_auth(reply, mutual_ok=reply.code == 235 and self._mutual_ok(reply))

    def _mutual_ok(self, reply: Reply) -> bool:
        expected: str | None = None
        if self.settings.verifier is not None:
            peer = self.settings.verifier.identify(self.peer_certificate)
            if not isinstance(peer, ServerIdentity):
                return False
            expected = peer.name
        return check_mutual_blob(reply.text, expected)

    async def _basic_auth(self) -> Step:
        creds = self.settings.credentials
        assert creds is not None  # checked by send_message
        reply = await self._command(self.conn.auth("LOGIN"))
        for secret in (creds.username, creds.password):
            if reply.code != 334:
                break
            reply = await self._command(self.conn.auth_response(_b64(secret)))
        if reply.code == 334:
            await self._command(self.conn.auth_response("*"))
        return after_basic_auth(reply)

    # --- the mail transaction

    async def _transaction(self, ext: EhloReply | None, *, reset: bool = False) -> Transaction:
        msg = self.message
        pipelined = self.settings.pipelining and use_pipelining(ext)
        reset_reply: Reply | None = None
        if reset and not pipelined:
            reset_reply = await self._command(self.conn.rset())
            if not reset_reply.is_positive:
                raise FailOver(reset_reply)
        # With PIPELINING the RSET between two messages goes in the same group as
        # MAIL and RCPT (RFC 2920 3.1 lets RSET appear anywhere in a group): one
        # round trip less per message through every relay on the way.
        head = [self.conn.rset()] if reset and pipelined else []
        mail = self.conn.mail(
            msg.mail_from,
            mail_parameters(
                ext, size=msg.size, body_type=msg.body_type, ret=msg.ret, envid=msg.envid
            ),
        )
        # RCPT commands are made when they are written: the core matches replies
        # to the commands it made, so none may be made and then left unsent.
        if pipelined:
            await self._write([*head, mail, *(self._rcpt(r, ext) for r in msg.recipients)])
            if head:
                reset_reply = await self._response()
            mail_reply = await self._response()
            rcpt_replies = [await self._response() for _ in msg.recipients]
            if reset_reply is not None and not reset_reply.is_positive:
                raise FailOver(reset_reply)
        else:
            mail_reply = await self._command(mail)
            rcpt_replies = []
            if mail_reply.is_positive:
                rcpt_replies = [await self._command(self._rcpt(r, ext)) for r in msg.recipients]
        if not mail_reply.is_positive:
            if mail_reply.is_permanent:
                return self._all(RecipientStatus.FAILED, mail_reply)
            raise FailOver(mail_reply)
        accepted: list[int] = []
        results: list[RecipientResult] = []
        for i, (r, reply) in enumerate(zip(msg.recipients, rcpt_replies, strict=True)):
            if reply.is_positive:
                accepted.append(i)
            status = RecipientStatus.FAILED if reply.is_permanent else RecipientStatus.DEFERRED
            results.append(RecipientResult(r.address, status, reply))
        if not accepted:
            return Transaction(tuple(results), None, rcpt_replies[-1])
        if use_chunking(ext):
            final = await self._send_bdat()
        else:
            final = await self._send_data()
        if not (final.is_positive or final.is_permanent):
            raise FailOver(final)
        status = RecipientStatus.DELIVERED if final.is_positive else RecipientStatus.FAILED
        for i in accepted:
            results[i] = RecipientResult(msg.recipients[i].address, status, final)
        return Transaction(tuple(results), final, final)

    def _rcpt(self, recipient: EnvelopeRecipient, ext: EhloReply | None) -> bytes:
        params = rcpt_parameters(ext, notify=recipient.notify, orcpt=recipient.orcpt)
        return self.conn.rcpt(recipient.address, params)

    def _all(self, status: RecipientStatus, reply: Reply) -> Transaction:
        results = tuple(RecipientResult(r.address, status, reply) for r in self.message.recipients)
        return Transaction(results, reply, reply)

    async def _chunks(self) -> AsyncIterator[bytes]:
        try:
            source = self.body()
            if isinstance(source, AsyncIterable):
                async for chunk in source:
                    yield chunk
            else:
                for chunk in source:
                    yield chunk
        except OSError as exc:
            raise BodyReadError(f"cannot read the message to send: {exc}") from exc

    async def _send_data(self) -> Reply:
        reply = await self._command(self.conn.data())
        if reply.code != 354:
            return reply
        async for chunk in self._chunks():
            await self._write_raw(self.conn.send_body(chunk))
        await self._write_raw(self.conn.end_body())
        return await self._response()

    async def _send_bdat(self) -> Reply:
        size = self.settings.bdat_chunk_size
        pending = bytearray()
        async for chunk in self._chunks():
            pending += chunk
            # A chunk goes out without LAST only when more octets are known to follow.
            while len(pending) > size:
                reply = await self._bdat(bytes(pending[:size]), last=False)
                del pending[:size]
                if not reply.is_positive:
                    return reply
        return await self._bdat(bytes(pending), last=True)

    async def _bdat(self, chunk: bytes, *, last: bool) -> Reply:
        data = self.conn.bdat(chunk, last=last)
        line_end = data.index(b"\r\n") + 2
        self.log.sent(_text(data[:line_end]))
        await self._write_raw(data)
        return await self._response()

    # --- I/O

    async def _command(self, data: bytes) -> Reply:
        await self._write([data])
        return await self._response()

    async def _write(self, commands: Sequence[bytes]) -> None:
        for data in commands:
            self.log.sent(_text(data))
        await self._write_raw(b"".join(commands))

    async def _write_raw(self, data: bytes) -> None:
        assert self.writer is not None
        try:
            self.writer.write(data)
            # asyncio.timeout, not wait_for: wait_for makes a task of every drain
            # and every read (Python 3.11), a cost paid several times per message.
            async with asyncio.timeout(self.settings.data_timeout):
                await self.writer.drain()
        except TimeoutError:
            self.broken = True
            raise FailOver.synthetic(CONNECTION_TIMED_OUT) from None
        except (OSError, ssl.SSLError):
            self.broken = self.remote_closed = True
            raise FailOver.synthetic(CONNECTION_DROPPED) from None

    async def _response(self) -> Reply:
        """The next reply to what we sent; every reply line is logged as received."""
        assert self.reader is not None
        unsolicited = 0
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA:
                try:
                    async with asyncio.timeout(self.settings.reply_timeout):
                        data = await self.reader.read(READ_SIZE)
                except TimeoutError:
                    self.broken = True
                    raise FailOver.synthetic(CONNECTION_TIMED_OUT) from None
                except (OSError, ssl.SSLError):
                    data = b""
                self.conn.receive_data(data)
                continue
            if isinstance(event, Response):
                reply = event.reply
                self.log.received(reply.wire_lines())
                if reply.code == 421:
                    # Closing the channel (RFC 5321 4.2.2), whatever it answered.
                    self.remote_closed = self.broken = True
                    raise FailOver(reply)
                if event.request is None:
                    unsolicited += 1
                    if unsolicited > MAX_UNSOLICITED_REPLIES:
                        self.broken = True
                        raise FailOver.synthetic(CONNECTION_DROPPED, "Too many unsolicited replies")
                    continue
                return reply
            if isinstance(event, BadReply):
                self.broken = True
                raise FailOver.synthetic(CONNECTION_DROPPED, f"Bad reply: {event.reason}")
            if isinstance(event, ConnectionClosed):
                self.broken = self.remote_closed = True
                raise FailOver.synthetic(CONNECTION_DROPPED)
            raise AssertionError(f"unexpected client event {event!r}")

    async def _quit(self) -> None:
        """QUIT if the session can still carry it; wait briefly for the 221, unlogged."""
        if self.broken or self.conn.state is not ClientState.READY or self.writer is None:
            return
        try:
            data = self.conn.quit()
        except LocalProtocolError:
            return  # a command still awaits its reply (a barrier): just close
        self.log.sent(_text(data))
        assert self.reader is not None
        try:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), self.settings.quit_timeout)
            async with asyncio.timeout(self.settings.quit_timeout):
                while not self._closed():
                    event = self.conn.next_event()
                    if event is NEED_DATA:
                        self.conn.receive_data(await self.reader.read(READ_SIZE))
        except (OSError, ssl.SSLError, TimeoutError):
            pass

    def _closed(self) -> bool:
        return self.conn.state is ClientState.CLOSED

    def _info(self, rows: Sequence[str]) -> None:
        for row in rows:
            self.log.info("", row)


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r\n")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _error_name(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, TimeoutError):
        return "Timeout"
    return type(exc).__name__
