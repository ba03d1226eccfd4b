"""One SMTP session of a hub's receive connector, on the sans-I/O core.

The grammar is the core (:mod:`sitemail.protocols.smtp`); what to answer
comes from the pure decisions (:mod:`.permissions`, :mod:`.greeting`,
:mod:`.receive_policy`); the I/O (reads, timeouts, STARTTLS) is the line
session runner's (:mod:`sitemail.server.line_session`).  This module holds
Exchange 2010's side of it: the protocol log, authentication, and the
durable hand-off to the queue before any 250 to end of data.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import ssl

from sitemail.mailflow import exchange_auth
from sitemail.mailflow.envelope import (
    AcceptError,
    AcceptOutcomeUnknown,
    Envelope,
    EnvelopeRecipient,
)
from sitemail.mailflow.protocol_log import NullSessionLog, SessionLog
from sitemail.org.lockout import AccountLockouts
from sitemail.org.model import Mailbox, ReceiveConnector
from sitemail.org.passwords import verify_password
from sitemail.org.version_facts import facts_for
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
    XQDiscard,
    XShadow,
    replies,
)
from sitemail.protocols.smtp.shadow import SHADOW_NOT_AUTHORIZED, xqdiscard_reply, xshadow_reply
from sitemail.server.line_connection import LineConnection, SessionClosing, TlsHandshakeFailed
from sitemail.server.line_session import ClosedBy, CoreSignals
from sitemail.transport.greeting import banner, ehlo_keywords, hello_text
from sitemail.transport.headers import (
    HeaderSection,
    apply_header_firewall,
    organization_headers,
    received_header,
)
from sitemail.transport.incoming_message import IncomingMessage
from sitemail.transport.permissions import Principal, Right, rights_text, session_rights
from sitemail.transport.queue.model import SHADOW_PEER
from sitemail.transport.receive_config import ReceiveConfig, ReceiveEnvironment
from sitemail.transport.receive_policy import (
    SessionView,
    auth_as,
    check_auth,
    check_end_of_data,
    check_mail,
    check_rcpt,
)

log = logging.getLogger("sitemail.transport.receive")


class ReceiveSession:
    """One client of a receive connector: Exchange 2010's answers over the SMTP core.

    Run by :func:`sitemail.server.line_session.run_session` on a
    :class:`~sitemail.server.line_connection.LineConnection`.
    """

    signals = CoreSignals(NEED_DATA, PAUSED, ConnectionClosed)

    def __init__(
        self,
        env: ReceiveEnvironment,
        config: ReceiveConfig,
        connector: ReceiveConnector,
        client: LineConnection,
    ) -> None:
        self.env = env
        self.config = config
        self.connector = connector
        self.client = client
        local = client.get_extra_info("sockname")
        remote = client.get_extra_info("peername")
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
        self.message: IncomingMessage | None = None
        # What MAIL and each RCPT asked for (BODY, RET, ENVID; NOTIFY, ORCPT), passed on
        # with the message to the next hop and used for its DSNs.
        self.mail_params: dict[str, str | None] = {}
        self.rcpts: dict[str, EnvelopeRecipient] = {}
        # The hub that keeps shadow copies of what it sends us (after its XSHADOW).
        self.shadow_peer: str | None = None
        self.log: SessionLog = env.protocol_log.session(
            connector.identity,
            f"{local[0]}:{local[1]}",
            f"{remote[0]}:{remote[1]}",
            level=connector.protocol_logging_level.value,
        )
        self.started = env.clock.monotonic()
        # ProtocolLoggingLevel None: skip even building the rows' text.
        self.logging = not isinstance(self.log, NullSessionLog)

    @property
    def core(self) -> ServerConnection:
        return self.conn

    # --- helpers

    @property
    def view(self) -> SessionView:
        return SessionView(
            rights=self.rights,
            anonymous=self.principal is Principal.ANONYMOUS,
            secure=self.conn.secure,
            user_addresses=self.user_addresses,
        )

    def _reply_bytes(self, reply: Reply) -> bytes:
        data = self.conn.send_reply(reply)
        if self.logging:
            self.log.sent(_lines(data))
        return data

    async def send(self, reply: Reply) -> None:
        self.client.write(self._reply_bytes(reply))

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

    # --- the runner's hooks (sitemail.server.line_session.LineSession)

    async def begin(self) -> None:
        greeting = banner(self.connector, self.fqdn, self.env.clock.now().astimezone())
        if self.logging:
            self.log.connect()
            self.log.set_session_permissions(rights_text(self.rights).split())
            self.log.sent(greeting)
        self.client.write(greeting.encode() + b"\r\n")

    def read_timeout(self) -> float:
        lifetime = self.connector.connection_timeout.total_seconds()
        idle = self.connector.connection_inactivity_timeout.total_seconds()
        remaining = lifetime - (self.env.clock.monotonic() - self.started)
        return min(idle, remaining)

    async def timed_out(self) -> None:
        lifetime = self.connector.connection_timeout.total_seconds()
        if self.env.clock.monotonic() - self.started >= lifetime:
            await self._close_with(replies.CONNECTION_TIMED_OUT)
        await self._close_with(replies.TIMEOUT_WAITING_FOR_CLIENT)

    async def end(self, closed_by: ClosedBy) -> None:
        self._drop_message()
        self.log.disconnect(closed_by)

    async def _close_with(self, reply: Reply) -> None:
        data = self.conn.send_unsolicited(reply)
        self.log.sent(_lines(data))
        with contextlib.suppress(OSError, ssl.SSLError):
            self.client.write(data)
            await self.client.drain()
        raise SessionClosing

    async def handle(self, event: object) -> None:
        if isinstance(event, BodyChunk):
            self._body(event.data)
            return
        if isinstance(event, Bdat):
            self.log.received(event.line)
            if self.message is None and self.conn.mail_from is not None:
                self.message = IncomingMessage(self.env.acceptor.open_spool())
            return
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
        elif isinstance(event, (XShadow, XQDiscard)):
            await self._shadow_command(event)
        elif isinstance(event, Mail):
            await self._mail(event)
        elif isinstance(event, Rcpt):
            await self._rcpt(event)
        elif isinstance(event, Data):
            self.message = IncomingMessage(self.env.acceptor.open_spool())
            await self.send(replies.START_MAIL_INPUT)
        elif isinstance(event, EndOfChunk):
            if event.suggested_reply is not None and event.suggested_reply.code == 503:
                # A chunk out of sequence (no MAIL or no RCPT yet): read and refused.  An
                # over-size message is answered at its last chunk, as for DATA.
                await self._protocol_error(event.suggested_reply)
                return
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
            await self.client.drain()
            raise SessionClosing
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
            shadow_redundancy=self._shadow_redundancy,
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
        try:
            # Plaintext the client sent after the command is dropped (RFC 3207 4.2).
            await self.client.start_tls(ctx, self._reply_bytes(replies.TLS_READY))
        except TlsHandshakeFailed as failed:
            error = type(failed.cause).__name__
            self.log.info("", f"TLS negotiation failed with error {error}")
            raise
        tls = self.client.ssl_object
        version = tls.version() if tls is not None else "TLS"
        cipher = tls.cipher() if tls is not None else None
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
        """The mailbox, if the password is right and the account is not locked out: the
        organization's lockout counts SMTP AUTH as every other protocol (org/lockout.py)."""
        name = user.strip().lower()
        if "\\" in name:
            name = name.rsplit("\\", 1)[1]
        lockouts = AccountLockouts(self.env.directory, clock=self.env.clock)
        for mailbox in self.env.directory.list(Mailbox):
            names = {mailbox.alias.lower(), *(a.lower() for a in mailbox.all_addresses)}
            if name in names:
                if lockouts.locked_for(mailbox.alias) > 0:
                    return None
                if not verify_password(password, mailbox.password_hash):
                    lockouts.failed(mailbox.alias)
                    return None
                lockouts.succeeded(mailbox.alias)
                return mailbox
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
        tls = self.client.ssl_object
        peer = self.env.verifier.identify_ssl(tls) if tls is not None else None
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

    # --- shadow redundancy (2010 hubs, Exchange-authenticated sessions only)

    @property
    def _shadow_redundancy(self) -> bool:
        return (
            self.env.shadow is not None
            and self.config.organization.shadow_redundancy_enabled
            and facts_for(self.config.server.version).shadow_redundancy
        )

    async def _shadow_command(self, event: XShadow | XQDiscard) -> None:
        desk = self.env.shadow
        if desk is None or not self._shadow_redundancy or not self.config.server.is_hub:
            # Not offered in the EHLO reply: an unknown verb, as on any other server.
            await self._protocol_error(replies.UNRECOGNIZED_COMMAND)
            return
        if self.principal is not Principal.EXCHANGE_SERVER or self.auth_name is None:
            await self.send(SHADOW_NOT_AUTHORIZED)
            return
        if isinstance(event, XShadow):
            # The authenticated server, not the argument, is who gets the discard
            # notifications: a hub cannot ask for another hub's.
            self.shadow_peer = self.auth_name
            await self.send(xshadow_reply(desk.shadow_id))
            return
        ids = await desk.take_discards(self.auth_name, event.max_ids)
        await self.send(xqdiscard_reply(ids))

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
        self.mail_params, self.rcpts = dict(event.params), {}
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
        notify, orcpt = event.params.get("NOTIFY"), event.params.get("ORCPT")
        self.rcpts[event.address] = EnvelopeRecipient(event.address, notify, orcpt)
        await self.send(replies.RECIPIENT_OK)

    # --- the message

    def _limit(self) -> int | None:
        if Right.BypassMessageSizeLimit in self.rights:
            return None
        return self.connector.max_message_size

    def _body(self, data: bytes) -> None:
        msg = self.message
        if msg is None:
            return
        head = msg.take(data, limit=self._limit(), max_header_size=self.connector.max_header_size)
        if head is not None:
            self._emit_head(msg, *head)

    def _emit_head(self, msg: IncomingMessage, section: HeaderSection, rest: bytes) -> None:
        """The header section is complete: stamp it, filter it, and spool it before the body."""
        apply_header_firewall(section, self.rights)
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
        msg.stamp_head(section, rest, stamp=prefix, fqdn=self.config.server.fqdn)

    def _drop_message(self) -> None:
        if self.message is not None:
            self.message.spool.abort()
            self.message = None

    async def _end_of_message(self, event: EndOfMessage) -> None:
        msg = self.message
        self.message = None
        sugg = event.suggested_reply
        if sugg is not None and sugg not in (replies.MESSAGE_TOO_BIG, replies.HEADER_TOO_BIG):
            # A sequence error the core judged (e.g. "BDAT 0 LAST" with no chunk).
            if msg is not None:
                msg.spool.abort()
            await self._protocol_error(sugg)
            return
        if msg is None:
            await self.send(replies.NEED_MAIL_COMMAND)
            return
        head = msg.unfinished_head()
        if head is not None:
            self._emit_head(msg, *head)
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
        recipients = tuple(self.rcpts.get(r) or EnvelopeRecipient(r) for r in event.recipients)
        body = self.mail_params.get("BODY")
        envelope = Envelope(
            mail_from=mail_from,
            recipients=recipients,
            internet_message_id=msg.message_id,
            received_at=self.env.clock.now(),
            client_ip=self.remote_ip,
            client_hostname=self.conn.hello.domain if self.conn.hello else "",
            connector_id=self.connector.identity,
            auth_as=self.auth_name,
            body_type=body.upper() if body else None,
            ret=self.mail_params.get("RET"),
            envid=self.mail_params.get("ENVID"),
            subject=msg.subject,
            headers={SHADOW_PEER: self.shadow_peer} if self.shadow_peer else {},
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
            raise SessionClosing from None
        await self.send(replies.queued_mail(msg.message_id, internal_id))


def _lines(data: bytes) -> list[str]:
    return [line for line in data.decode("utf-8", errors="replace").split("\r\n") if line]


def _b64(text: str) -> str:
    try:
        return base64.b64decode(text.strip(), validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""
