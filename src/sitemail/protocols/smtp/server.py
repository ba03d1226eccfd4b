"""The server side of the SMTP/LMTP core: bytes in, events out; replies in, bytes out.

No sockets, no clock, no policy.  The caller (the receive connector, the
LMTP delivery agent) loops::

    conn.receive_data(chunk)            # b"" at EOF
    while True:
        event = conn.next_event()
        if event is NEED_DATA: break     # read more from the socket
        if event is PAUSED: ...          # answer the pending event first
        if isinstance(event, NeedsReply):
            write(conn.send_reply(decide(event)))

PIPELINING (RFC 2920) falls out of this: commands that arrived in one read
come out one at a time, each answered in order, and the caller may buffer
the reply bytes until ``next_event`` says ``NEED_DATA``.

Reading modes (:class:`ServerState`) and what moves between them::

    state          reads                          left by
    -------------  -----------------------------  ------------------------------------
    COMMAND        command lines                  354 to DATA -> DATA
                                                  BDAT line -> BDAT
                                                  334 to AUTH/X-EXPS -> AUTH
                                                  220 to STARTTLS/X-ANONYMOUSTLS
                                                      -> TLS_HANDSHAKE
                                                  221 to QUIT, any 421, EOF -> CLOSED
    AUTH           one SASL line (AuthResponse)   reply 334 -> AUTH, other -> COMMAND
    DATA           dot-terminated body            CRLF.CRLF -> COMMAND (EndOfMessage)
    BDAT           exactly <size> octets          size reached -> COMMAND (EndOf...)
    TLS_HANDSHAKE  nothing (input is discarded)   tls_established() -> COMMAND
    CLOSED         nothing                        -

Effects of a reply on the session (the pending event + the reply code)::

    HELO/EHLO/LHLO  2xx  greeted; transaction reset
    MAIL            2xx  sender set
    RCPT            2xx  recipient added
    EndOfMessage    any  (after the last LMTP reply) transaction reset
    RSET            2xx  transaction reset
    STARTTLS etc.   220  hello, auth and transaction forgotten, buffered input
                         discarded (RFC 3207 §4.2: no plaintext command injection)
    AUTH etc.       235  authenticated (any 2xx)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum, auto

from . import replies
from .address import MAIL_PARAMETERS, RCPT_PARAMETERS
from .buffer import LineOverflow, ReceiveBuffer
from .command import MAX_COMMAND_LINE, parse_command_line
from .command_events import parse_command
from .dotstuff import DotDecoder
from .errors import LocalProtocolError
from .events import (
    NEED_DATA,
    PAUSED,
    AuthResponse,
    Bdat,
    BodyChunk,
    ConnectionClosed,
    Data,
    Ehlo,
    EndOfChunk,
    EndOfMessage,
    Event,
    Helo,
    Lhlo,
    LineTooLong,
    Mail,
    NeedsReply,
    Quit,
    Rcpt,
    Rset,
    Sentinel,
    StartTls,
    XAnonymousTls,
)
from .meter import DEFAULT_MAX_HEADER_SIZE, MessageMeter
from .reply import Reply
from .text import decode_text, strip_eol_bytes

_AUTH_VERBS = frozenset({"AUTH", "X-EXPS"})
# Verbs whose acceptance depends on the session state (all need a greeting).
_STATEFUL = frozenset(
    {
        "MAIL",
        "RCPT",
        "DATA",
        "BDAT",
        "STARTTLS",
        "X-ANONYMOUSTLS",
        "AUTH",
        "X-EXPS",
        "XSHADOW",
        "XQDISCARD",
    }
)


class ServerState(Enum):
    COMMAND = auto()
    AUTH = auto()
    DATA = auto()
    BDAT = auto()
    TLS_HANDSHAKE = auto()
    CLOSED = auto()


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Bounds and dialect of one server connection."""

    lmtp: bool = False
    """Speak LMTP (RFC 2033): LHLO instead of HELO/EHLO, per-recipient end-of-data replies."""
    max_line_length: int = MAX_COMMAND_LINE
    """Command line bound in octets, CRLF included (RFC 5321 §4.5.3.1.4)."""
    max_auth_line_length: int = 12288
    """Bound for AUTH/X-EXPS lines and SASL continuation lines, which carry
    Kerberos/NTLM blobs far over 512 octets (12288 is RFC 4954 §4's figure)."""
    max_header_size: int = DEFAULT_MAX_HEADER_SIZE
    """MaxHeaderSize of the receive connector (spec §1.2)."""
    max_message_size: int | None = None
    """MaxMessageSize of the receive connector; ``None`` for no limit."""
    chunk_size: int = 65536
    """Largest :class:`BodyChunk` handed out."""
    mail_parameters: frozenset[str] = MAIL_PARAMETERS
    """MAIL parameters not flagged ``501 5.5.4 Unrecognized parameter``."""
    rcpt_parameters: frozenset[str] = RCPT_PARAMETERS
    """RCPT parameters not flagged ``501 5.5.4 Unrecognized parameter``."""

    def __post_init__(self) -> None:
        if self.max_line_length < 6 or self.max_auth_line_length < self.max_line_length:
            raise ValueError("need 6 <= max_line_length <= max_auth_line_length")
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be positive")


class ServerConnection:
    """One SMTP or LMTP session, seen from the server."""

    def __init__(self, settings: ServerSettings | None = None) -> None:
        self.settings = settings or ServerSettings()
        self._buffer = ReceiveBuffer()
        self._state = ServerState.COMMAND
        self._eof = False
        self._closed: ConnectionClosed | None = None
        self._pending: NeedsReply | None = None
        self._pending_in_auth = False
        self._replies_owed = 0
        self._hello: Helo | Ehlo | Lhlo | None = None
        self._tls: str | None = None
        self._authenticated = False
        self._mail_from: str | None = None
        self._recipients: list[str] = []
        self._meter: MessageMeter | None = None
        self._decoder: DotDecoder | None = None
        self._bdat_remaining = 0
        self._bdat_size = 0
        self._bdat_last = False
        self._bdat_suggestion: Reply | None = None
        self._bdat_chunks = 0
        self._plaintext_discarded = 0

    # --- read-only session view --------------------------------------------

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def hello(self) -> Helo | Ehlo | Lhlo | None:
        """The accepted HELO/EHLO/LHLO of this session (``None`` before, and after TLS starts)."""
        return self._hello

    @property
    def secure(self) -> bool:
        """True after a STARTTLS or X-ANONYMOUSTLS handshake completed."""
        return self._tls is not None and self._state is not ServerState.TLS_HANDSHAKE

    @property
    def tls(self) -> str | None:
        """``"STARTTLS"`` or ``"X-ANONYMOUSTLS"``: which command started TLS, if any."""
        return self._tls

    @property
    def authenticated(self) -> bool:
        """True after a 2xx reply ended an AUTH or X-EXPS exchange."""
        return self._authenticated

    @property
    def mail_from(self) -> str | None:
        """Sender of the open transaction (``""`` for ``<>``), or ``None``."""
        return self._mail_from

    @property
    def recipients(self) -> tuple[str, ...]:
        """Recipients accepted (2xx) in the open transaction."""
        return tuple(self._recipients)

    @property
    def rcpt_count(self) -> int:
        """How many recipients were accepted; compare with MaxRecipientsPerMessage."""
        return len(self._recipients)

    @property
    def message_size(self) -> int:
        """Octets of the message received so far (0 outside a message)."""
        return self._meter.size if self._meter else 0

    @property
    def message_size_exceeded(self) -> bool:
        """The message in progress already exceeds ``max_message_size``."""
        return self._meter.size_exceeded if self._meter else False

    @property
    def header_size_exceeded(self) -> bool:
        """The message in progress already has a header section over ``max_header_size``."""
        return self._meter.header_size_exceeded if self._meter else False

    @property
    def pending(self) -> NeedsReply | None:
        """The event that awaits a reply, if any."""
        return self._pending

    @property
    def replies_owed(self) -> int:
        """Replies still due for the pending event (more than 1 only for LMTP end of data)."""
        return self._replies_owed

    @property
    def buffered(self) -> int:
        """Received octets held and not yet turned into events."""
        return len(self._buffer)

    @property
    def plaintext_discarded(self) -> int:
        """Octets thrown away because they came after STARTTLS/X-ANONYMOUSTLS in plaintext."""
        return self._plaintext_discarded

    # --- input ---------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add received octets; ``b""`` means the peer closed its side."""
        if self._eof:
            if data:
                raise LocalProtocolError("receive_data() after EOF")
            return
        if not data:
            self._eof = True
            return
        if self._state is ServerState.CLOSED:
            return
        if self._state is ServerState.TLS_HANDSHAKE:
            # Plaintext between our 220 and the handshake: never a command.
            self._plaintext_discarded += len(data)
            return
        self._buffer.append(data)

    def next_event(self) -> Event | Sentinel:
        """The next event, ``NEED_DATA``, or ``PAUSED`` while a reply is due."""
        if self._closed is not None:
            return self._closed
        if self._state is ServerState.TLS_HANDSHAKE:
            return self._no_progress() if self._eof else PAUSED
        if self._pending is not None:
            return PAUSED
        if self._state is ServerState.DATA:
            return self._next_data_event()
        if self._state is ServerState.BDAT:
            return self._next_bdat_event()
        return self._next_line_event()

    # --- output --------------------------------------------------------------

    def send_reply(self, reply: Reply) -> bytes:
        """Answer the pending event; return the bytes to write.

        Raises :class:`LocalProtocolError` if nothing awaits a reply.
        """
        event = self._pending
        if event is None:
            raise LocalProtocolError("send_reply() with no event awaiting a reply")
        if self._closed is not None:
            raise LocalProtocolError("send_reply() after the session ended")
        data = reply.to_bytes()
        self._replies_owed -= 1
        if self._replies_owed > 0:
            return data  # more LMTP per-recipient replies to come
        self._pending = None
        self._apply_reply(event, reply)
        return data

    def send_unsolicited(self, reply: Reply) -> bytes:
        """Bytes for a reply that answers no command: the 220 banner, or a 421
        (timeout, shutdown) at any time.  A 421 ends the session."""
        if self._closed is not None:
            raise LocalProtocolError("send_unsolicited() after the session ended")
        if reply.code == 421:
            self._close()
        return reply.to_bytes()

    def tls_established(self) -> None:
        """The TLS handshake after our 220 succeeded; read (decrypted) commands again."""
        if self._state is not ServerState.TLS_HANDSHAKE:
            raise LocalProtocolError("tls_established() without a STARTTLS/X-ANONYMOUSTLS 220")
        self._state = ServerState.COMMAND

    # --- reply effects ---------------------------------------------------------

    def _apply_reply(self, event: NeedsReply, reply: Reply) -> None:
        code = reply.code
        if code == 421:
            self._close()
            return
        ok = reply.is_positive
        if isinstance(event, (Helo, Ehlo, Lhlo)):
            if ok:
                self._hello = event
                self._reset_transaction()
        elif isinstance(event, Mail):
            if ok:
                self._reset_transaction()  # drops a meter left by refused BDATs
                self._mail_from = event.address
        elif isinstance(event, Rcpt):
            if ok:
                self._recipients.append(event.address)
        elif isinstance(event, Data):
            if code == 354:
                self._state = ServerState.DATA
                self._decoder = DotDecoder()
                self._meter = self._new_meter()
        elif isinstance(event, EndOfChunk):
            if ok:
                self._bdat_chunks += 1
        elif isinstance(event, EndOfMessage):
            self._reset_transaction()
        elif isinstance(event, (StartTls, XAnonymousTls)):
            if code == 220:
                self._state = ServerState.TLS_HANDSHAKE
                self._tls = "STARTTLS" if isinstance(event, StartTls) else "X-ANONYMOUSTLS"
                self._plaintext_discarded += self._buffer.clear()
                self._hello = None
                self._authenticated = False
                self._reset_transaction()
        elif isinstance(event, Rset):
            if ok:
                self._reset_transaction()
        elif isinstance(event, Quit) and code == 221:
            self._close()
            return
        if self._pending_in_auth:
            if code == 334:
                self._state = ServerState.AUTH
            else:
                self._state = ServerState.COMMAND
                if ok:
                    self._authenticated = True

    def _reset_transaction(self) -> None:
        self._mail_from = None
        self._recipients.clear()
        self._meter = None
        self._decoder = None
        self._bdat_chunks = 0

    def _new_meter(self) -> MessageMeter:
        return MessageMeter(self.settings.max_header_size, self.settings.max_message_size)

    def _close(self) -> None:
        in_transaction = self._mail_from is not None or self._state in (
            ServerState.DATA,
            ServerState.BDAT,
        )
        self._state = ServerState.CLOSED
        self._closed = ConnectionClosed(in_transaction=in_transaction)
        self._buffer.clear()

    def _hand_out(self, event: NeedsReply, *, in_auth: bool = False, count: int = 1) -> NeedsReply:
        self._pending = event
        self._pending_in_auth = in_auth
        self._replies_owed = count
        return event

    def _no_progress(self) -> ConnectionClosed | Sentinel:
        if self._eof:
            self._close()
            assert self._closed is not None
            return self._closed
        return NEED_DATA

    # --- command lines -------------------------------------------------------

    def _next_line_event(self) -> Event | Sentinel:
        s = self.settings
        raw = self._buffer.read_line(s.max_auth_line_length)
        if raw is None:
            return self._no_progress()
        in_auth = self._state is ServerState.AUTH
        if isinstance(raw, LineOverflow):
            return self._hand_out(self._too_long(raw.length, raw.prefix), in_auth=in_auth)
        if in_auth:
            # A SASL line; the AUTH line bound applies.
            return self._hand_out(
                AuthResponse(line=decode_text(strip_eol_bytes(raw))), in_auth=True
            )
        line = decode_text(strip_eol_bytes(raw))
        verb = parse_command_line(line).verb
        limit = s.max_auth_line_length if verb in _AUTH_VERBS else s.max_line_length
        if len(raw) > limit:
            return self._hand_out(self._too_long(len(raw), raw))
        return self._command_event(verb, line)

    def _too_long(self, length: int, prefix: bytes) -> LineTooLong:
        return LineTooLong(
            length=length,
            prefix=prefix[: self.settings.max_line_length],
            suggested_reply=replies.LINE_TOO_LONG,
        )

    def _command_event(self, verb: str, line: str) -> Event:
        s = self.settings
        event = parse_command(
            line,
            lmtp=s.lmtp,
            mail_parameters=s.mail_parameters,
            rcpt_parameters=s.rcpt_parameters,
            max_message_size=s.max_message_size,
        )
        # What the session state says comes first ("503 Send hello first"
        # even for a malformed address), as Exchange checks state first.
        state = self._state_check(verb)
        if state is not None:
            event = replace(event, suggested_reply=state)
        if isinstance(event, Bdat):
            self._start_bdat(event)
            return event
        return self._hand_out(event, in_auth=verb in _AUTH_VERBS)

    def _state_check(self, verb: str) -> Reply | None:
        """The 503 the session state calls for, if any, by verb."""
        if verb not in _STATEFUL:
            return None
        if self._hello is None:
            return replies.SEND_HELLO_FIRST
        if verb == "MAIL":
            return replies.SENDER_ALREADY_SPECIFIED if self._mail_from is not None else None
        if verb in ("RCPT", "DATA", "BDAT"):
            if self._mail_from is None:
                return replies.NEED_MAIL_COMMAND
            if verb != "RCPT" and not self._recipients:
                return replies.NEED_RCPT_COMMAND
            if verb == "DATA" and self._bdat_chunks:
                # RFC 3030 §2: no DATA once a BDAT chunk of this transaction was taken.
                return replies.DATA_AFTER_BDAT
            return None
        if verb in ("STARTTLS", "X-ANONYMOUSTLS"):
            return replies.ONLY_ONE_STARTTLS if self._tls is not None else None
        if verb in ("XSHADOW", "XQDISCARD"):
            # Who may use them (an Exchange-authenticated hub) is the session's policy.
            return None
        # AUTH, X-EXPS
        return replies.AUTH_ALREADY_SPECIFIED if self._authenticated else None

    # --- BDAT ----------------------------------------------------------------

    def _start_bdat(self, event: Bdat) -> None:
        if self._meter is None or self._decoder is not None:
            self._meter = self._new_meter()
            self._decoder = None
        self._state = ServerState.BDAT
        self._bdat_size = self._bdat_remaining = event.size
        self._bdat_last = event.last
        self._bdat_suggestion = event.suggested_reply
        if event.last and event.size == 0 and not self._bdat_chunks:
            # "BDAT 0 LAST" with no chunk before it: an empty message, refused.
            self._bdat_suggestion = self._bdat_suggestion or replies.BDAT_NO_MESSAGE_DATA

    def _next_bdat_event(self) -> Event | Sentinel:
        meter = self._meter
        assert meter is not None
        if self._bdat_remaining > 0:
            if not self._buffer:
                return self._no_progress()
            chunk = self._buffer.read(min(self._bdat_remaining, self.settings.chunk_size))
            self._bdat_remaining -= len(chunk)
            meter.feed(chunk)
            return BodyChunk(data=chunk)
        self._state = ServerState.COMMAND
        if self._bdat_last:
            return self._end_of_message(self._bdat_suggestion)
        sugg = self._bdat_suggestion or _size_suggestion(meter)
        return self._hand_out(EndOfChunk(size=self._bdat_size, suggested_reply=sugg))

    # --- DATA ----------------------------------------------------------------

    def _next_data_event(self) -> Event | Sentinel:
        decoder, meter = self._decoder, self._meter
        assert decoder is not None and meter is not None
        while not decoder.done:
            if not self._buffer:
                return self._no_progress()
            content, consumed = decoder.feed(self._buffer.peek(self.settings.chunk_size))
            self._buffer.consume(consumed)
            if content:
                meter.feed(content)
                return BodyChunk(data=content)
        self._state = ServerState.COMMAND
        return self._end_of_message(None)

    def _end_of_message(self, sugg: Reply | None) -> NeedsReply:
        meter = self._meter
        assert meter is not None
        meter.finish()
        sugg = sugg or _size_suggestion(meter)
        recipients = tuple(self._recipients)
        count = max(1, len(recipients)) if self.settings.lmtp else 1
        event = EndOfMessage(
            size=meter.size,
            header_size_exceeded=meter.header_size_exceeded,
            size_exceeded=meter.size_exceeded,
            bare_lf=meter.bare_lf,
            recipients=recipients,
            replies_expected=count,
            suggested_reply=sugg,
        )
        return self._hand_out(event, count=count)


def _size_suggestion(meter: MessageMeter) -> Reply | None:
    if meter.header_size_exceeded:
        return replies.HEADER_TOO_BIG
    if meter.size_exceeded:
        return replies.MESSAGE_TOO_BIG
    return None
