"""What a caller gives the SMTP sender and what it gets back.

The caller names the targets (resolved and ordered), the envelope, the body
and the sending server's settings; :func:`~sitemail.mailflow.smtp_sender.send_message`
answers with a :class:`SendResult`, one :class:`RecipientResult` per recipient.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from sitemail.mailflow.envelope import Envelope, EnvelopeRecipient
from sitemail.mailflow.protocol_log import (
    INTRA_ORG_SEND_CONNECTOR_ID,
    NullProtocolLog,
    ProtocolLog,
    ProtocolLoggingLevel,
    SessionLog,
)
from sitemail.mailflow.send_decision import SendPolicy, remote_server_returned
from sitemail.org.pki import CertFiles, PeerVerifier
from sitemail.protocols.smtp import ClientSettings, Reply

READ_SIZE = 64 * 1024
# Spec 4.5 (and real 2010 send logs): the session ends with ">,QUIT," and
# "-,,Local"; the 221 is waited for, briefly, only to close politely, not logged.
QUIT_WAIT = 5.0


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


def message_body(source: Path | bytes) -> BodySource:
    """The message in memory or in a spool file (a queued message's ``source``)."""
    if isinstance(source, bytes):
        return lambda: (source,)
    return file_body(source)


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
    xshadow: bool = False
    """Ask for shadow redundancy (XSHADOW) after Exchange authentication when the
    peer offers it: the caller keeps shadow copies of what the peer takes."""

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
    shadow_id: str | None = None
    """The target's XSHADOW answer when it took the message under shadow redundancy."""

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
