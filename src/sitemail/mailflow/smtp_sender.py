"""The SMTP sending side of a hub: one message, relayed to the first target that takes it.

Used by the queue's delivery workers for the implicit intra-organization
send connector (hub to the hubs of another Active Directory site, with
Exchange Server authentication) and for send connectors to smart hosts::

    result = await send_message(
        [Target("EX02.contoso.com", "10.2.0.11"), Target("EX03.contoso.com", "10.2.0.12")],
        OutboundMessage("alice@contoso.com", (EnvelopeRecipient("bob@contoso.com"),), size=2048),
        file_body(spool_path),
        SenderSettings(fqdn="EX01.contoso.com", server_name="EX01",
                       cert_files=server_cert_files(pki_dir, "EX01"), verifier=verifier),
        session_logs=send_session_logs(send_log, level=intra_org_logging_level),
    )

Each target is tried in order (the caller resolved names and ordered the
hubs); a failure of the session (spec 3.2: EHLO 4xx, 451 5.7.3, a refused
X-EXPS, a dropped connection, a timeout) fails over to the next; when every
target failed, :attr:`SendResult.last_error` holds the queue's LastError in
the 2010 wrapper (spec 3.3).  Once a target took MAIL FROM, its answers are
final for this attempt: per recipient delivered (2xx), failed (5xx, for the
NDR) or deferred (4xx).

The decisions live in :mod:`.send_decision`; the grammar in the sans-I/O
SMTP core; this module does sockets, TLS, timeouts and the SmtpSend log.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path

from sitemail.mailflow.envelope import Envelope, EnvelopeRecipient
from sitemail.mailflow.exchange_auth import HASH_ALGORITHM, check_mutual_blob, make_blob
from sitemail.mailflow.protocol_log import (
    INTRA_ORG_SEND_CONNECTOR_ID,
    NullProtocolLog,
    NullSessionLog,
    ProtocolLog,
    ProtocolLoggingLevel,
    SessionLog,
)
from sitemail.mailflow.send_decision import (
    CONNECTION_DROPPED,
    CONNECTION_TIMED_OUT,
    GSSAPI_UNAVAILABLE,
    TLS_NEGOTIATION_FAILED,
    UNABLE_TO_CONNECT,
    Action,
    SendAuth,
    SendPolicy,
    SessionState,
    Step,
    TlsKind,
    after_basic_auth,
    after_exchange_auth,
    after_hello,
    last_error,
    mail_parameters,
    rcpt_parameters,
    remote_server_returned,
    reply_text,
    use_chunking,
    use_pipelining,
)
from sitemail.org.pki import (
    CertFiles,
    PeerVerifier,
    PkiError,
    ServerIdentity,
    anonymous_tls_client_context,
)
from sitemail.protocols.smtp import (
    NEED_DATA,
    BadReply,
    ClientConnection,
    ClientSettings,
    ClientState,
    ConnectionClosed,
    EhloReply,
    LocalProtocolError,
    Reply,
    Response,
)

READ_SIZE = 64 * 1024
# Replies nobody asked for that are tolerated while waiting for one (a chatty
# or hostile peer must not keep a delivery worker forever).
MAX_UNSOLICITED_REPLIES = 10
# Spec 4.5 (and real 2010 send logs): the session ends with ">,QUIT," and
# "-,,Local"; the 221 is waited for, briefly, only to close politely, not logged.
QUIT_WAIT = 5.0


# --------------------------------------------------------------------------
# What the caller gives
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """One host to try: its name, and where to connect (the caller resolved it)."""

    host: str
    """FQDN of the receiving server: the EHLO peer, the X-EXPS SPN ``SMTPSVC/<host>``, SNI."""
    address: str
    """IP address to connect to (in the lab, possibly a firewall's)."""
    port: int = 25

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """The envelope of the message to relay (MAIL FROM, RCPTs, MAIL parameters)."""

    mail_from: str
    """Reverse-path, ``""`` for the null sender ``<>``."""
    recipients: tuple[EnvelopeRecipient, ...]
    size: int | None = None
    """Octets of the body as streamed (declared with SIZE= when offered)."""
    body_type: str | None = None
    """7BIT | 8BITMIME | BINARYMIME, declared with BODY= when offered."""
    ret: str | None = None
    envid: str | None = None

    @classmethod
    def from_envelope(
        cls,
        envelope: Envelope,
        size: int | None,
        recipients: Iterable[EnvelopeRecipient] | None = None,
    ) -> OutboundMessage:
        """From a queued envelope, for all its recipients or those of one next hop."""
        return cls(
            envelope.mail_from,
            tuple(envelope.recipients if recipients is None else recipients),
            size,
            envelope.body_type,
            envelope.ret,
            envelope.envid,
        )


BodySource = Callable[[], Iterable[bytes] | AsyncIterable[bytes]]
"""Called once per target: a fresh iteration of the message octets, in chunks.

The octets go out as they are with BDAT, dot-stuffed with DATA.  A
synchronous iterable is read on the event loop: keep its chunks quick to
produce (file reads are)."""


def file_body(path: Path | str, chunk_size: int = READ_SIZE) -> BodySource:
    """The message in a spool file, read in ``chunk_size`` pieces."""

    def chunks() -> Iterable[bytes]:
        with open(path, "rb") as f:
            while chunk := f.read(chunk_size):
                yield chunk

    return chunks


@dataclass(frozen=True, slots=True)
class Credentials:
    """User name and password for a send connector with BasicAuth."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class SenderSettings:
    """The sending server and its send connector."""

    fqdn: str
    """Our FQDN, said in EHLO/HELO."""
    server_name: str
    """Our server name, named in the X-EXPS EXCHANGEAUTH blob."""
    policy: SendPolicy = field(default_factory=SendPolicy.intra_org)
    """What the connector requires (``internal_certificate`` is found out from ``cert_files``)."""
    cert_files: CertFiles | None = None
    """Our internal transport certificate (the server certificate), shown in X-ANONYMOUSTLS."""
    verifier: PeerVerifier | None = None
    """Checks that the receiver's certificate is a server of the organization, which
    the 235's mutual blob must then name; without it the blob's form alone is checked."""
    credentials: Credentials | None = None
    """For BasicAuth / BasicAuthRequireTLS connectors."""
    starttls_context: ssl.SSLContext | None = None
    """For STARTTLS; by default no certificate check (opportunistic TLS, as 2010 does)."""
    connect_timeout: float = 30.0
    reply_timeout: float = 600.0
    """Each reply; the send connector's ConnectionInactivityTimeOut (10 minutes)."""
    data_timeout: float = 600.0
    """Each write to the peer (a stalled reader)."""
    tls_timeout: float = 60.0
    quit_timeout: float = QUIT_WAIT
    bdat_chunk_size: int = 1024 * 1024
    pipelining: bool = True
    """Pipeline MAIL and RCPTs where PIPELINING is offered."""
    client: ClientSettings = field(default_factory=ClientSettings)
    """Reply bounds (line length, lines per reply)."""

    def __post_init__(self) -> None:
        if self.bdat_chunk_size < 1:
            raise ValueError("bdat_chunk_size must be positive")


SessionLogFactory = Callable[[Target], SessionLog]
"""One SmtpSend log session per connection attempt."""


def send_session_logs(
    protocol_log: ProtocolLog | NullProtocolLog,
    connector_id: str = INTRA_ORG_SEND_CONNECTOR_ID,
    level: ProtocolLoggingLevel | str = ProtocolLoggingLevel.VERBOSE,
) -> SessionLogFactory:
    """Sessions in the SmtpSend log (``level``: the connector's ProtocolLoggingLevel, or
    the server's IntraOrgConnectorProtocolLoggingLevel for hub-to-hub)."""

    def session(target: Target) -> SessionLog:
        return protocol_log.session(connector_id, "", target.endpoint, level=level)

    return session


# --------------------------------------------------------------------------
# What the caller gets
# --------------------------------------------------------------------------


class RecipientStatus(StrEnum):
    DELIVERED = "delivered"
    """The next hop took it (2xx to RCPT and to the end of data)."""
    FAILED = "failed"
    """A 5xx: NDR now, with :attr:`RecipientResult.ndr_diagnostic`."""
    DEFERRED = "deferred"
    """A 4xx for this recipient, or every target failed: retry later."""


@dataclass(frozen=True, slots=True)
class RecipientResult:
    address: str
    status: RecipientStatus
    reply: Reply
    """The reply that decided: the end-of-data reply, the RCPT's or MAIL's refusal,
    or the last target's failure when every target failed."""

    @property
    def ndr_diagnostic(self) -> str:
        """``Remote Server returned '<reply>'`` (spec 5.5)."""
        return remote_server_returned(self.reply)


@dataclass(frozen=True, slots=True)
class TargetAttempt:
    target: Target
    reply: Reply
    """Why this target failed over, or the reply that ended its transaction."""
    session_id: str
    """The SmtpSend log session of this connection."""
    failed_over: bool


@dataclass(frozen=True, slots=True)
class SendResult:
    recipients: tuple[RecipientResult, ...]
    """One per recipient of the message, in its order."""
    attempts: tuple[TargetAttempt, ...]
    """Every target tried, in order."""
    target: Target | None
    """The target that ran the transaction; ``None`` when every target failed."""
    final_reply: Reply | None
    """The remote's reply to the end of data (``250 2.6.0 <id> [InternalId=n] Queued
    mail for delivery``), or the refusal that ended the transaction earlier; ``None``
    when every target failed or no recipient was accepted."""
    last_error: str | None
    """When every target failed: the 2010 LastError (spec 3.3); otherwise ``None``."""

    @property
    def all_targets_failed(self) -> bool:
        return self.last_error is not None

    def with_status(self, status: RecipientStatus) -> tuple[RecipientResult, ...]:
        return tuple(r for r in self.recipients if r.status is status)

    @property
    def delivered(self) -> tuple[RecipientResult, ...]:
        return self.with_status(RecipientStatus.DELIVERED)

    @property
    def failed(self) -> tuple[RecipientResult, ...]:
        return self.with_status(RecipientStatus.FAILED)

    @property
    def deferred(self) -> tuple[RecipientResult, ...]:
        return self.with_status(RecipientStatus.DEFERRED)


class BodyReadError(Exception):
    """The message octets could not be read (a local spool problem, not the peer's)."""


# --------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------


async def send_message(
    targets: Sequence[Target],
    message: OutboundMessage,
    body: BodySource,
    settings: SenderSettings,
    *,
    local_address: str | None = None,
    session_logs: SessionLogFactory | None = None,
) -> SendResult:
    """Relay ``message`` to the first of ``targets`` that takes it (see the module text).

    ``local_address`` binds the connection's source address (the server's own).
    Raises :class:`BodyReadError` when ``body`` fails, ``ValueError`` for a
    call that cannot work (no target, no recipient, BasicAuth without credentials).
    """
    if not targets:
        raise ValueError("send_message needs at least one target")
    if not message.recipients:
        raise ValueError("send_message needs at least one recipient")
    policy = settings.policy
    if policy.auth in (SendAuth.BASIC_AUTH, SendAuth.BASIC_AUTH_REQUIRE_TLS) and (
        settings.credentials is None
    ):
        raise ValueError(f"a {policy.auth} send connector needs credentials")
    anonymous_context = _anonymous_context(settings.cert_files)
    if policy.auth is SendAuth.EXCHANGE_SERVER:
        policy = replace(policy, internal_certificate=anonymous_context is not None)
    starttls_context = settings.starttls_context or anonymous_tls_client_context(None)
    attempts: list[TargetAttempt] = []
    for target in targets:
        log = session_logs(target) if session_logs is not None else NullSessionLog()
        session = _Session(
            target,
            message,
            body,
            settings,
            policy,
            anonymous_context,
            starttls_context,
            log,
            local_address,
        )
        outcome = await session.run()
        if isinstance(outcome, _FailOver):
            attempts.append(TargetAttempt(target, outcome.reply, log.session_id, True))
            continue
        attempts.append(TargetAttempt(target, outcome.reply, log.session_id, False))
        return SendResult(outcome.recipients, tuple(attempts), target, outcome.final_reply, None)
    last = attempts[-1].reply
    deferred = tuple(
        RecipientResult(r.address, RecipientStatus.DEFERRED, last) for r in message.recipients
    )
    return SendResult(deferred, tuple(attempts), None, None, last_error(last))


def _anonymous_context(files: CertFiles | None) -> ssl.SSLContext | None:
    """The X-ANONYMOUSTLS context with our certificate, or None if it cannot be loaded
    (which the decision turns into "Cannot load Internal Transport Certificate")."""
    if files is None:
        return None
    try:
        return anonymous_tls_client_context(files)
    except (OSError, ssl.SSLError, PkiError):
        return None


# --------------------------------------------------------------------------
# SmtpSend log texts
# --------------------------------------------------------------------------

_SCHANNEL_PROTOCOLS = {
    "TLSv1": "SP_PROT_TLS1_0_CLIENT",
    "TLSv1.1": "SP_PROT_TLS1_1_CLIENT",
    "TLSv1.2": "SP_PROT_TLS1_2_CLIENT",
    "TLSv1.3": "SP_PROT_TLS1_3_CLIENT",
}


def tls_negotiated_text(version: str | None, cipher: tuple[str, str, int] | None) -> str:
    """The ``TLS protocol ... negotiation succeeded ...`` row of spec 4.4, from OpenSSL's view.

    Exchange writes Schannel's names (``SP_PROT_TLS1_0_CLIENT``, ``CALG_AES_256``);
    OpenSSL's cipher name is mapped onto them.  The key exchange strength is not
    reported by Python's ssl module: ECDHE is written with 256 bits (P-256 and
    X25519, what the organization's ECDSA certificates negotiate).
    """
    protocol = _SCHANNEL_PROTOCOLS.get(version or "", version or "unknown")
    if cipher is None:
        return f"TLS protocol {protocol} negotiation succeeded"
    name, _, bits = cipher
    upper = name.upper().replace("_", "-")
    if "AES256" in upper or "AES-256" in upper:
        bulk = "CALG_AES_256"
    elif "AES128" in upper or "AES-128" in upper:
        bulk = "CALG_AES_128"
    elif "CHACHA20" in upper:
        bulk = "CHACHA20_POLY1305"  # no CALG_ name exists for it
    else:
        bulk = name
    if upper.endswith("SHA384"):
        mac, mac_bits = "CALG_SHA_384", 384
    elif upper.endswith("SHA256") or "POLY1305" in upper:
        mac, mac_bits = "CALG_SHA_256", 256
    elif upper.endswith("SHA"):
        mac, mac_bits = "CALG_SHA1", 160
    else:
        mac, mac_bits = "unknown", 0
    if version == "TLSv1.3" or upper.startswith("ECDHE"):
        kx, kx_bits = "CALG_ECDHE", 256
    elif upper.startswith("DHE"):
        kx, kx_bits = "CALG_DH_EPHEM", bits
    else:
        kx, kx_bits = "CALG_RSA_KEYX", bits
    return (
        f"TLS protocol {protocol} negotiation succeeded using bulk encryption algorithm {bulk} "
        f"with strength {bits} bits, MAC hash algorithm {mac} with strength {mac_bits} bits "
        f"and key exchange algorithm {kx} with strength {kx_bits} bits"
    )


def certificate_thumbprint(der: bytes) -> str:
    """A certificate's thumbprint as Windows shows it: SHA-1, upper-case hex."""
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


# --------------------------------------------------------------------------
# One connection
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Transaction:
    recipients: tuple[RecipientResult, ...]
    final_reply: Reply | None
    reply: Reply  # for the attempt record


class _FailOver(Exception):
    """This target failed; try the next.  ``log``: information rows to write first."""

    def __init__(self, reply: Reply, log: Sequence[str] = ()) -> None:
        super().__init__(reply_text(reply))
        self.reply = reply
        self.log = tuple(log)

    @classmethod
    def synthetic(cls, reply: Reply, *reasons: str) -> _FailOver:
        """A reply the sender makes up: logged as an information row (spec 4.5)."""
        return cls(reply, (*reasons, reply_text(reply)))


class _Session:
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
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.peer_certificate: bytes | None = None
        self.broken = False  # the transport cannot carry a QUIT any more
        self.remote_closed = False

    # --- the session

    async def run(self) -> _Transaction | _FailOver:
        self.log.set_endpoints(remote=self.target.endpoint)
        self.log.info("", "attempting to connect")
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.target.address,
                    self.target.port,
                    local_addr=(self.local_address, 0) if self.local_address else None,
                    limit=READ_SIZE,
                ),
                self.settings.connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
            failure = _FailOver.synthetic(UNABLE_TO_CONNECT, f"Failed to connect: {reason}")
            self._info(failure.log)
            return failure
        self.reader, self.writer = reader, writer
        try:
            sockname = writer.get_extra_info("sockname")
            if sockname:
                self.log.set_endpoints(local=f"{sockname[0]}:{sockname[1]}")
            self.log.connect()
            outcome: _Transaction | _FailOver
            try:
                outcome = await self._converse()
            except _FailOver as failure:
                self._info(failure.log)
                outcome = failure
            except BodyReadError:
                self.log.disconnect("Local")
                raise
            await self._quit()
            self.log.disconnect("Remote" if self.remote_closed else "Local")
            return outcome
        finally:
            if self.broken:
                # Nothing more can be said: drop unsent bytes instead of waiting on
                # a peer that stopped reading.
                writer.transport.abort()
            else:
                writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), self.settings.quit_timeout)

    async def _converse(self) -> _Transaction:
        banner = await self._response()
        if banner.code != 220:
            raise _FailOver(banner)
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
            elif step.action is Action.GSSAPI_EXCHANGE_AUTH:
                step = GSSAPI_UNAVAILABLE
            elif step.action is Action.BASIC_AUTH:
                step = await self._basic_auth()
            if step.action is Action.FAIL_OVER:
                assert step.reply is not None
                raise _FailOver(step.reply, step.log)
            self._info(step.log)
            break  # PROCEED or CONTINUE_UNAUTHENTICATED: on to MAIL
        return await self._transaction(self.conn.extensions)

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
        # Plaintext the peer sent after its 220 must never be read as if it came
        # through TLS (RFC 3207 section 4.2): drop what the stream holds.
        buffered = getattr(self.reader, "_buffer", None)
        if isinstance(buffered, bytearray):
            buffered.clear()
        try:
            await asyncio.wait_for(
                self.writer.start_tls(context, server_hostname=self.target.host),
                self.settings.tls_timeout,
            )
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            self.broken = True
            raise _FailOver.synthetic(
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

    async def _transaction(self, ext: EhloReply | None) -> _Transaction:
        msg = self.message
        mail = self.conn.mail(
            msg.mail_from,
            mail_parameters(
                ext, size=msg.size, body_type=msg.body_type, ret=msg.ret, envid=msg.envid
            ),
        )
        # RCPT commands are made when they are written: the core matches replies
        # to the commands it made, so none may be made and then left unsent.
        if self.settings.pipelining and use_pipelining(ext):
            await self._write([mail, *(self._rcpt(r, ext) for r in msg.recipients)])
            mail_reply = await self._response()
            rcpt_replies = [await self._response() for _ in msg.recipients]
        else:
            mail_reply = await self._command(mail)
            rcpt_replies = []
            if mail_reply.is_positive:
                rcpt_replies = [await self._command(self._rcpt(r, ext)) for r in msg.recipients]
        if not mail_reply.is_positive:
            if mail_reply.is_permanent:
                return self._all(RecipientStatus.FAILED, mail_reply)
            raise _FailOver(mail_reply)
        accepted: list[int] = []
        results: list[RecipientResult] = []
        for i, (r, reply) in enumerate(zip(msg.recipients, rcpt_replies, strict=True)):
            if reply.is_positive:
                accepted.append(i)
            status = RecipientStatus.FAILED if reply.is_permanent else RecipientStatus.DEFERRED
            results.append(RecipientResult(r.address, status, reply))
        if not accepted:
            return _Transaction(tuple(results), None, rcpt_replies[-1])
        if use_chunking(ext):
            final = await self._send_bdat()
        else:
            final = await self._send_data()
        if not (final.is_positive or final.is_permanent):
            raise _FailOver(final)
        status = RecipientStatus.DELIVERED if final.is_positive else RecipientStatus.FAILED
        for i in accepted:
            results[i] = RecipientResult(msg.recipients[i].address, status, final)
        return _Transaction(tuple(results), final, final)

    def _rcpt(self, recipient: EnvelopeRecipient, ext: EhloReply | None) -> bytes:
        params = rcpt_parameters(ext, notify=recipient.notify, orcpt=recipient.orcpt)
        return self.conn.rcpt(recipient.address, params)

    def _all(self, status: RecipientStatus, reply: Reply) -> _Transaction:
        results = tuple(RecipientResult(r.address, status, reply) for r in self.message.recipients)
        return _Transaction(results, reply, reply)

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
            await asyncio.wait_for(self.writer.drain(), self.settings.data_timeout)
        except TimeoutError:
            self.broken = True
            raise _FailOver.synthetic(CONNECTION_TIMED_OUT) from None
        except (OSError, ssl.SSLError):
            self.broken = self.remote_closed = True
            raise _FailOver.synthetic(CONNECTION_DROPPED) from None

    async def _response(self) -> Reply:
        """The next reply to what we sent; every reply line is logged as received."""
        assert self.reader is not None
        unsolicited = 0
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA:
                try:
                    data = await asyncio.wait_for(
                        self.reader.read(READ_SIZE), self.settings.reply_timeout
                    )
                except TimeoutError:
                    self.broken = True
                    raise _FailOver.synthetic(CONNECTION_TIMED_OUT) from None
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
                    raise _FailOver(reply)
                if event.request is None:
                    unsolicited += 1
                    if unsolicited > MAX_UNSOLICITED_REPLIES:
                        self.broken = True
                        raise _FailOver.synthetic(
                            CONNECTION_DROPPED, "Too many unsolicited replies"
                        )
                    continue
                return reply
            if isinstance(event, BadReply):
                self.broken = True
                raise _FailOver.synthetic(CONNECTION_DROPPED, f"Bad reply: {event.reason}")
            if isinstance(event, ConnectionClosed):
                self.broken = self.remote_closed = True
                raise _FailOver.synthetic(CONNECTION_DROPPED)
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
