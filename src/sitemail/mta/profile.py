"""What makes a plain MTA sound like itself, and where its mail goes.

- :class:`MtaProfile` is an MTA's voice and rules (its banner, EHLO, reply
  texts and relay rule).  Profiles are frozen values built from a directory
  snapshot; their checks are pure functions, tested with exact replies.
- :class:`MessageSink` is where accepted mail goes (a queue, or straight
  into a mailbox database); its ``accept`` returning is the durability
  point, and only then does the client hear 250.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sitemail.mailflow.envelope import Envelope, SpoolWriter
from sitemail.protocols.smtp import Reply


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
