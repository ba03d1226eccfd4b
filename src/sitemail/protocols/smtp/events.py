"""Events of the SMTP core, and the sentinels ``NEED_DATA`` and ``PAUSED``.

Server side: :class:`ServerConnection` turns received bytes into the events
below.  Every event that is a :class:`NeedsReply` must be answered with
exactly one ``send_reply`` (an LMTP :class:`EndOfMessage` with one reply
per accepted recipient) before the next event comes out.

``suggested_reply`` is what the SMTP grammar and the session state alone
say the answer should be (``503 5.5.2 Send hello first``, ``501 5.1.7
Invalid address``...), with Exchange 2010's exact text; ``None`` means
"nothing wrong that the grammar can see, policy decides".

``line`` is the command line as received, without its line end, decoded
losslessly (see :mod:`.text`); ``log_text`` is what the protocol log should
show for it (AUTH and X-EXPS blobs redacted, spec §4.3).

Client side events (:class:`Response`, :class:`BadReply`) live in
:mod:`.client`; :class:`ConnectionClosed` is shared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .address import ParamDict
from .reply import Reply

#: What the protocol log shows instead of authentication data (spec §4.3).
AUTH_REDACTED = "<authentication information>"


class Sentinel(Enum):
    NEED_DATA = "NEED_DATA"
    """Nothing more can be parsed until more bytes are received."""
    PAUSED = "PAUSED"
    """An event awaits its reply (or a TLS handshake awaits ``tls_established``)."""


NEED_DATA = Sentinel.NEED_DATA
PAUSED = Sentinel.PAUSED


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base class of every event."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed(Event):
    """The peer closed its side (or the session ended with 221/421); nothing follows."""

    in_transaction: bool = False
    """Server: a MAIL was accepted or a message was being received and not finished.
    Client: a MAIL had been sent and its transaction was not finished."""


@dataclass(frozen=True, slots=True, kw_only=True)
class NeedsReply(Event):
    """An event the caller must answer with ``send_reply``."""

    suggested_reply: Reply | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Command(NeedsReply):
    """A command line from the client."""

    line: str

    @property
    def log_text(self) -> str:
        """The ``data`` field of the ``<`` protocol-log row for this command."""
        return self.line


@dataclass(frozen=True, slots=True, kw_only=True)
class Helo(Command):
    domain: str
    """First word of the argument; ``""`` if missing (then a 501 is suggested)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Ehlo(Command):
    domain: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Lhlo(Command):
    """LMTP's greeting (RFC 2033 §4.1); only on an LMTP connection."""

    domain: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Mail(Command):
    address: str
    """Reverse-path without brackets; ``""`` for the null sender ``<>``."""
    params: ParamDict = field(default_factory=dict)
    """ESMTP parameters, upper-case keywords; BODY/RET values upper-cased."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rcpt(Command):
    address: str
    params: ParamDict = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Data(Command):
    """DATA.  Answer 354 to receive the body; anything else refuses it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Bdat(Event):
    """BDAT (RFC 3030).  Not answered itself: its ``size`` octets follow as
    :class:`BodyChunk` events at once, then :class:`EndOfChunk` (or
    :class:`EndOfMessage` when ``last``) takes the reply.  The chunk is read
    even when it will be refused, as RFC 3030 requires."""

    line: str
    size: int
    last: bool
    suggested_reply: Reply | None = None
    """Copied to the EndOfChunk/EndOfMessage that closes this chunk."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BodyChunk(Event):
    """Message octets: DATA content after dot-unstuffing (CRLF kept, bare LF kept),
    or BDAT chunk octets as sent.  Bounded by ``ServerSettings.chunk_size``."""

    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class EndOfChunk(NeedsReply):
    """The octets of a non-LAST BDAT chunk have all been delivered."""

    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EndOfMessage(NeedsReply):
    """End of DATA (``CRLF.CRLF``) or of a ``BDAT ... LAST`` chunk.

    SMTP: one reply.  LMTP: ``replies_expected`` replies, one per accepted
    recipient in ``recipients`` order (RFC 2033 §4.2).
    """

    size: int
    """Message octets (after unstuffing), all BDAT chunks together."""
    header_size_exceeded: bool
    """The header section is longer than ``ServerSettings.max_header_size``."""
    size_exceeded: bool
    """The message is longer than ``ServerSettings.max_message_size``."""
    bare_lf: bool
    """An LF without CR occurred in the content (kept as is)."""
    recipients: tuple[str, ...]
    """Recipients whose RCPT got a 2xx reply, in order."""
    replies_expected: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTls(Command):
    """STARTTLS (RFC 3207).  After a 220 reply: TLS handshake, then ``tls_established``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class XAnonymousTls(Command):
    """X-ANONYMOUSTLS (Exchange hub-to-hub, spec §3.1); handled like STARTTLS."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Auth(Command):
    """AUTH (RFC 4954).  A 334 reply makes the next line an :class:`AuthResponse`."""

    mechanism: str
    """Upper-case mechanism name; ``""`` only on BadSyntax (never here)."""
    initial_response: str | None = None

    @property
    def log_text(self) -> str:
        # Blobs are not logged (spec §4.3); by analogy with the X-EXPS row
        # the mechanism is kept and a trailing space marks a removed blob.
        return f"AUTH {self.mechanism}" + (" " if self.initial_response is not None else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthResponse(Command):
    """One client line inside an AUTH/X-EXPS exchange (base64, or ``*`` to cancel)."""

    @property
    def cancelled(self) -> bool:
        return self.line.strip() == "*"

    @property
    def log_text(self) -> str:
        return AUTH_REDACTED


@dataclass(frozen=True, slots=True, kw_only=True)
class XExps(Command):
    """X-EXPS (Exchange Server authentication, spec §3.1).

    ``X-EXPS EXCHANGEAUTH SHA256 <blob>`` gives mechanism ``EXCHANGEAUTH``,
    hash_algorithm ``SHA256``; ``X-EXPS GSSAPI [<blob>]`` gives mechanism
    ``GSSAPI``.  A 334 reply continues the exchange like AUTH.
    """

    mechanism: str
    hash_algorithm: str | None = None
    blob: str | None = None

    @property
    def log_text(self) -> str:
        # Spec §4.3: logged as "X-EXPS EXCHANGEAUTH SHA256 " (blob removed).
        text = f"X-EXPS {self.mechanism}"
        if self.hash_algorithm is not None:
            text += f" {self.hash_algorithm}"
        return text + (" " if self.blob is not None else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class XShadow(Command):
    """``XSHADOW <server fqdn>``: a 2010 hub asks to keep shadow copies of what it sends.

    The reply names the receiver's shadow id (its queue database), see :mod:`.shadow`.
    """

    server: str


@dataclass(frozen=True, slots=True, kw_only=True)
class XQDiscard(Command):
    """``XQDISCARD <max>``: the shadowing hub asks which of its messages were delivered."""

    max_ids: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Rset(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Noop(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Quit(Command):
    """QUIT.  A 221 reply ends the session."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Vrfy(Command):
    argument: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Help(Command):
    argument: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Unknown(Command):
    """A verb this protocol does not have (e.g. ``MAILL``, ``EHLO`` on LMTP, an empty line)."""

    verb: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BadSyntax(Command):
    """A known verb whose argument does not parse; ``suggested_reply`` is always set."""

    verb: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LineTooLong(NeedsReply):
    """A line over the length bound; it was consumed to its end and not kept."""

    length: int
    """Octets of the whole line, terminator included."""
    prefix: bytes
    """Its first octets (at most ``max_line_length``), for the log."""
