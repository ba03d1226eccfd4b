"""The client side of the SMTP/LMTP core: commands in, bytes out; bytes in, replies out.

The caller (the hub sender, LMTP delivery, the path probe) asks for a
command and writes the bytes it gets; it feeds what the server sends to
``receive_data`` and takes :class:`Response` events from ``next_event``.
Each response names the :class:`Request` it answers, so with PIPELINING
(several commands written at once) the replies are matched in order::

    conn = ClientConnection()
    conn.next_event()                        # Response to GREETING (the banner)
    write(conn.ehlo("EX01.contoso.com"))
    resp = conn.next_event()                 # Response(request=Request("EHLO", ...))
    conn.extensions.has("X-EXPS", "EXCHANGEAUTH")
    write(conn.mail("a@contoso.com", {"SIZE": "2048"}) + conn.rcpt("b@contoso.com")
          + conn.bdat(message, last=True))   # pipelined; three responses follow

Commands that change what the server reads next (STARTTLS, X-ANONYMOUSTLS,
AUTH, X-EXPS, a SASL line, DATA) must be the last of a pipelined group
(RFC 2920 §3.1): until their reply arrives no other command is accepted.
After a 354 the body goes through :meth:`send_body` (dot-stuffed, line ends
normalised to CRLF) and :meth:`end_body`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, auto

from .address import format_parameters, format_path
from .buffer import LineOverflow, ReceiveBuffer
from .command import format_command, is_verb, parse_command_line
from .dotstuff import DotEncoder
from .ehlo import EhloReply, parse_ehlo_reply
from .errors import LocalProtocolError, SmtpSyntaxError
from .events import NEED_DATA, PAUSED, ConnectionClosed, Event, Sentinel
from .reply import Reply, ReplyAssembler
from .shadow import MAX_DISCARD_IDS
from .text import check_no_eol, decode_text, encode_text, strip_eol_bytes

#: ``Request.verb`` of the server greeting (the banner).
GREETING = "GREETING"
#: ``Request.verb`` of the end of a DATA body (the ``.`` line).
END_OF_DATA = "."
#: ``Request.verb`` of a SASL line sent inside AUTH/X-EXPS.
AUTH_CONTINUATION = "AUTH-CONTINUATION"

_AUTH_VERBS = frozenset({"AUTH", "X-EXPS", AUTH_CONTINUATION})
_TLS_VERBS = frozenset({"STARTTLS", "X-ANONYMOUSTLS"})


class ClientState(Enum):
    READY = auto()
    """Commands may be sent (unless one that must end a group is outstanding)."""
    AUTH = auto()
    """The server answered 334: only :meth:`ClientConnection.auth_response` is allowed."""
    BODY = auto()
    """The server answered 354: only the body and :meth:`ClientConnection.end_body`."""
    TLS_HANDSHAKE = auto()
    """The server answered 220 to STARTTLS/X-ANONYMOUSTLS: do the handshake."""
    CLOSED = auto()


@dataclass(frozen=True, slots=True)
class Request:
    """What a response answers."""

    verb: str
    """The command verb, or GREETING, END_OF_DATA, AUTH_CONTINUATION."""
    argument: str = ""
    """MAIL/RCPT: the address; BDAT: ``"<size>"`` or ``"<size> LAST"``; HELO/EHLO/LHLO:
    the domain; AUTH/X-EXPS: the mechanism; otherwise the argument sent."""
    recipient: str | None = None
    """LMTP end of message (after DATA or BDAT LAST): the recipient this reply is for."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Response(Event):
    """A complete reply from the server."""

    reply: Reply
    request: Request | None
    """The request it answers; ``None`` for a reply nobody asked for (e.g. a 421)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BadReply(Event):
    """The server sent something that is not an SMTP reply; the session is over."""

    data: bytes
    """The offending line (at most ``max_reply_line_length`` octets)."""
    reason: str


@dataclass(frozen=True, slots=True)
class ClientSettings:
    lmtp: bool = False
    """Speak LMTP: one end-of-message reply per accepted recipient."""
    max_reply_line_length: int = 4096
    """Reply lines longer than this end the session with :class:`BadReply`.
    RFC 5321 allows 512; we are lenient because long banners exist."""
    max_reply_lines: int = 1000
    """Lines in one reply before :class:`BadReply`."""


@dataclass(slots=True)
class _Outstanding:
    request: Request
    recipients: deque[str] | None = None  # LMTP end of message, filled when it reaches the head
    end_of_message: bool = False


@dataclass(slots=True)
class _Transaction:
    open: bool = False
    accepted: list[str] = field(default_factory=list)


class ClientConnection:
    """One SMTP or LMTP session, seen from the client."""

    def __init__(self, settings: ClientSettings | None = None) -> None:
        self.settings = settings or ClientSettings()
        self._buffer = ReceiveBuffer()
        self._assembler = ReplyAssembler(self.settings.max_reply_lines)
        self._state = ClientState.READY
        self._outstanding: deque[_Outstanding] = deque([_Outstanding(Request(GREETING))])
        self._barrier: str | None = None  # verb that must be answered before anything else
        self._eof = False
        self._closed: Event | None = None
        self._encoder: DotEncoder | None = None
        self._transaction = _Transaction()
        self._extensions: EhloReply | None = None
        self._tls: str | None = None
        self._authenticated = False
        self._discarded = 0

    # --- read-only view --------------------------------------------------------

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def outstanding(self) -> tuple[Request, ...]:
        """Requests written and not yet (fully) answered, oldest first."""
        return tuple(o.request for o in self._outstanding)

    @property
    def extensions(self) -> EhloReply | None:
        """The parsed reply to the last successful EHLO/LHLO (``None`` after HELO or TLS)."""
        return self._extensions

    @property
    def accepted_recipients(self) -> tuple[str, ...]:
        """Recipients of the open transaction that got a 2xx to RCPT."""
        return tuple(self._transaction.accepted)

    @property
    def tls(self) -> str | None:
        """``"STARTTLS"`` or ``"X-ANONYMOUSTLS"`` once the server said 220 to it."""
        return self._tls

    @property
    def authenticated(self) -> bool:
        return self._authenticated

    @property
    def discarded(self) -> int:
        """Octets dropped because the server sent them after its 220 to STARTTLS
        (a response-injection attempt, or a broken server)."""
        return self._discarded

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # --- commands ------------------------------------------------------------

    def helo(self, domain: str) -> bytes:
        return self._command("HELO", _word(domain, "domain"), domain)

    def ehlo(self, domain: str) -> bytes:
        return self._command("EHLO", _word(domain, "domain"), domain)

    def lhlo(self, domain: str) -> bytes:
        return self._command("LHLO", _word(domain, "domain"), domain)

    def mail(self, address: str, params: Mapping[str, str | None] | None = None) -> bytes:
        """``MAIL FROM:<address> [params]``; ``""`` is the null sender."""
        arg = "FROM:" + format_path(address, allow_null=True) + format_parameters(params)
        self._check_can_send()
        self._transaction = _Transaction(open=True)
        return self._command("MAIL", arg, address)

    def rcpt(self, address: str, params: Mapping[str, str | None] | None = None) -> bytes:
        arg = "TO:" + format_path(address) + format_parameters(params)
        return self._command("RCPT", arg, address)

    def data(self) -> bytes:
        """``DATA``; after the 354 response send :meth:`send_body` and :meth:`end_body`."""
        return self._command("DATA", "", barrier=True)

    def send_body(self, chunk: bytes) -> bytes:
        """Wire bytes for the next piece of the message (any line ends, any dots)."""
        if self._state is not ClientState.BODY or self._encoder is None:
            raise LocalProtocolError("send_body() is only allowed after a 354 reply to DATA")
        return self._encoder.encode(chunk)

    def end_body(self) -> bytes:
        """Close the body (``CRLF.CRLF``); its reply (LMTP: replies) follow."""
        if self._state is not ClientState.BODY or self._encoder is None:
            raise LocalProtocolError("end_body() is only allowed after a 354 reply to DATA")
        out = self._encoder.finish()
        self._encoder = None
        self._state = ClientState.READY
        self._outstanding.append(_Outstanding(Request(END_OF_DATA), end_of_message=True))
        return out

    def bdat(self, chunk: bytes, *, last: bool = False) -> bytes:
        """``BDAT <len> [LAST]`` followed by the chunk, sent as is (RFC 3030, BINARYMIME)."""
        arg = f"{len(chunk)} LAST" if last else str(len(chunk))
        line = self._command("BDAT", arg, arg)
        if last:
            self._outstanding[-1].end_of_message = True
        return line + bytes(chunk)

    def starttls(self) -> bytes:
        return self._command("STARTTLS", "", barrier=True)

    def x_anonymous_tls(self) -> bytes:
        return self._command("X-ANONYMOUSTLS", "", barrier=True)

    def tls_established(self) -> None:
        """The handshake after the 220 succeeded: the session starts over (EHLO again)."""
        if self._state is not ClientState.TLS_HANDSHAKE:
            raise LocalProtocolError("tls_established() without a 220 to STARTTLS")
        self._state = ClientState.READY
        self._extensions = None
        self._authenticated = False
        self._transaction = _Transaction()

    def auth(self, mechanism: str, initial_response: str | None = None) -> bytes:
        """``AUTH <mechanism> [initial-response]`` (RFC 4954)."""
        arg = _word(mechanism, "mechanism")
        if initial_response is not None:
            arg += " " + _word(initial_response, "initial response")
        return self._command("AUTH", arg, mechanism.upper(), barrier=True)

    def x_exps(self, mechanism: str, *args: str) -> bytes:
        """``X-EXPS <mechanism> [args...]``, e.g. ``x_exps("EXCHANGEAUTH", "SHA256", blob)``."""
        words = [_word(mechanism, "mechanism"), *(_word(a, "X-EXPS argument") for a in args)]
        return self._command("X-EXPS", " ".join(words), mechanism.upper(), barrier=True)

    def xshadow(self, server_fqdn: str) -> bytes:
        """``XSHADOW <own fqdn>`` after Exchange authentication (2010 shadow redundancy)."""
        return self._command("XSHADOW", _word(server_fqdn, "server FQDN"))

    def xqdiscard(self, max_ids: int) -> bytes:
        """``XQDISCARD <max>``: ask for the discard notifications held for us."""
        if not 1 <= max_ids <= MAX_DISCARD_IDS:
            raise LocalProtocolError(f"XQDISCARD takes a count from 1 to {MAX_DISCARD_IDS}")
        return self._command("XQDISCARD", str(max_ids))

    def auth_response(self, text: str) -> bytes:
        """One SASL line after a 334 (base64, or ``*`` to cancel)."""
        if self._state is not ClientState.AUTH:
            raise LocalProtocolError("auth_response() is only allowed after a 334 reply")
        check_no_eol(text, "SASL response")
        self._state = ClientState.READY
        self._outstanding.append(_Outstanding(Request(AUTH_CONTINUATION)))
        self._barrier = AUTH_CONTINUATION
        return encode_text(text) + b"\r\n"

    def rset(self) -> bytes:
        return self._command("RSET", "")

    def noop(self) -> bytes:
        return self._command("NOOP", "")

    def quit(self) -> bytes:
        return self._command("QUIT", "")

    def vrfy(self, argument: str) -> bytes:
        return self._command("VRFY", argument)

    def help(self, argument: str = "") -> bytes:
        return self._command("HELP", argument)

    def raw(self, line: str) -> bytes:
        """Any command line (e.g. ``XEXCH50 ...`` or a probe); one reply is expected."""
        cmd = parse_command_line(line)
        if not is_verb(cmd.verb):
            raise ValueError(f"not a command line: {line!r}")
        check_no_eol(line, "command line")
        barrier = cmd.verb in _TLS_VERBS or cmd.verb in _AUTH_VERBS or cmd.verb == "DATA"
        self._check_can_send()
        self._outstanding.append(_Outstanding(Request(cmd.verb, cmd.argument)))
        if barrier:
            self._barrier = cmd.verb
        return encode_text(line) + b"\r\n"

    def _command(
        self, verb: str, argument: str, request_argument: str = "", *, barrier: bool = False
    ) -> bytes:
        self._check_can_send()
        line = format_command(verb, argument)
        self._outstanding.append(_Outstanding(Request(verb, request_argument)))
        if barrier:
            self._barrier = verb
        return line

    def _check_can_send(self) -> None:
        if self._state is not ClientState.READY:
            raise LocalProtocolError(f"cannot send a command in state {self._state.name}")
        if self._barrier is not None:
            raise LocalProtocolError(f"wait for the reply to {self._barrier} before sending more")

    # --- input ---------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add octets from the server; ``b""`` means it closed its side."""
        if self._eof:
            if data:
                raise LocalProtocolError("receive_data() after EOF")
            return
        if not data:
            self._eof = True
            return
        if self._state is ClientState.CLOSED:
            return
        if self._state is ClientState.TLS_HANDSHAKE:
            self._discarded += len(data)
            return
        self._buffer.append(data)

    def next_event(self) -> Event | Sentinel:
        """The next :class:`Response`, :class:`BadReply`, :class:`ConnectionClosed`,
        ``NEED_DATA``, or ``PAUSED`` while a TLS handshake is due."""
        if self._closed is not None:
            return self._closed
        if self._state is ClientState.TLS_HANDSHAKE:
            if self._eof:
                return self._close(ConnectionClosed(in_transaction=False))
            return PAUSED
        while True:
            raw = self._buffer.read_line(self.settings.max_reply_line_length)
            if raw is None:
                if self._eof:
                    return self._close(ConnectionClosed(in_transaction=self._transaction.open))
                return NEED_DATA
            if isinstance(raw, LineOverflow):
                return self._close(
                    BadReply(
                        data=raw.prefix,
                        reason=f"reply line longer than {self.settings.max_reply_line_length}"
                        " octets",
                    )
                )
            try:
                reply = self._assembler.feed(decode_text(strip_eol_bytes(raw)))
            except SmtpSyntaxError as exc:
                return self._close(BadReply(data=raw, reason=str(exc)))
            if reply is not None:
                return self._deliver(reply)

    def _close(self, event: Event) -> Event:
        self._state = ClientState.CLOSED
        self._closed = (
            event
            if isinstance(event, ConnectionClosed)
            else ConnectionClosed(in_transaction=self._transaction.open)
        )
        self._buffer.clear()
        return event

    def _deliver(self, reply: Reply) -> Event:
        if not self._outstanding:
            if reply.code == 421:
                self._close(ConnectionClosed(in_transaction=self._transaction.open))
            return Response(reply=reply, request=None)
        head = self._outstanding[0]
        request = head.request
        if head.end_of_message and self.settings.lmtp:
            if head.recipients is None:
                # Known only now: the RCPT replies before this one decided it.
                head.recipients = deque(self._transaction.accepted or [""])
            rcpt = head.recipients.popleft()
            request = Request(request.verb, request.argument, rcpt or None)
            if head.recipients:
                return Response(reply=reply, request=request)
        self._outstanding.popleft()
        self._apply(head, reply)
        return Response(reply=reply, request=request)

    def _apply(self, head: _Outstanding, reply: Reply) -> None:
        verb = head.request.verb
        code = reply.code
        if self._barrier is not None and self._barrier == verb:
            self._barrier = None
        if code == 421 or verb == "QUIT":
            self._close(ConnectionClosed(in_transaction=self._transaction.open))
            return
        ok = reply.is_positive
        if verb in ("EHLO", "LHLO", "HELO"):
            if ok:
                self._extensions = parse_ehlo_reply(reply) if verb != "HELO" else None
                self._transaction = _Transaction()
        elif verb == "MAIL":
            if not ok:
                self._transaction.open = False
        elif verb == "RCPT":
            if ok:
                self._transaction.accepted.append(head.request.argument)
        elif verb == "DATA":
            if code == 354:
                self._state = ClientState.BODY
                self._encoder = DotEncoder()
        elif verb == "RSET":
            self._transaction = _Transaction()
        elif verb in _TLS_VERBS:
            if code == 220:
                self._state = ClientState.TLS_HANDSHAKE
                self._tls = verb
                # Anything the server sent after its 220 was sent in plaintext
                # and must not be read as the first reply inside TLS.
                self._discarded += self._buffer.clear()
        elif verb in _AUTH_VERBS:
            if code == 334:
                self._state = ClientState.AUTH
            elif ok:
                self._authenticated = True
        if head.end_of_message:
            self._transaction = _Transaction()


def _word(text: str, what: str) -> str:
    """A single protocol word: no spaces, no line breaks, not empty."""
    if not text or any(c in text for c in " \t\r\n"):
        raise ValueError(f"{what} must be one non-empty word: {text!r}")
    return text
