"""The sans-I/O POP3 server core (RFC 1939, CAPA RFC 2449, STLS RFC 2595).

:class:`Pop3Server` turns received bytes into command events and answers
into bytes, in the style of ``h11``: no sockets, no clock, no asyncio.
The caller feeds :meth:`Pop3Server.receive_data`, takes events from
:meth:`Pop3Server.next_event` and answers every :class:`Command` with
exactly one :meth:`~Pop3Server.send_ok` / :meth:`~Pop3Server.send_err`
(or a multi-line answer: :meth:`~Pop3Server.send_lines`, or
:meth:`~Pop3Server.start_message` + :meth:`~Pop3Server.message_data` +
:meth:`~Pop3Server.end_message` for RETR/TOP) before the next event comes.

The core knows the session state (AUTHORIZATION, TRANSACTION, UPDATE) and
the grammar: a command out of its state, or with bad arguments, carries a
``suggested_error`` with the text to answer; policy (which user, which
message exists, whether plain-text logins are allowed before TLS) is the
caller's.  The state moves when the caller answers: ``+OK`` to PASS enters
TRANSACTION, ``+OK`` to QUIT ends the session, ``+OK`` to STLS pauses the
core until :meth:`~Pop3Server.tls_established` (bytes received after STLS
and before the handshake are dropped, RFC 2595 section 3.1's warning
against plaintext injected ahead of TLS).

Lines are bounded (RFC 2449 allows 255 octets per command; a longer line
becomes :class:`LineTooLong`, never held in full).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import Enum

from sitemail.protocols.smtp.buffer import LineOverflow, ReceiveBuffer
from sitemail.protocols.smtp.dotstuff import DotEncoder

__all__ = [
    "BAD_STATE",
    "MAX_LINE",
    "NEED_DATA",
    "PAUSED",
    "BadSyntax",
    "Capa",
    "Command",
    "ConnectionClosed",
    "Dele",
    "LineTooLong",
    "List",
    "Noop",
    "Pass",
    "Pop3Server",
    "Pop3State",
    "Quit",
    "Retr",
    "Rset",
    "Stat",
    "Stls",
    "Top",
    "Uidl",
    "Unknown",
    "User",
]

#: Longest command line accepted, terminator included (RFC 2449 says 255; some clients
#: send longer PASS lines).
MAX_LINE = 1024

# Exchange 2010's texts.  None was read from a 2010 transcript for this
# project: they are written as Exchange 2010 is generally known to answer,
# and kept here so that a verified text changes in one place.
GREETING = "The Microsoft Exchange POP3 service is ready."  # unverified
BAD_STATE = "Command is not valid in this state."  # unverified (the brief's text)
UNKNOWN_COMMAND = "Protocol error."  # unverified
BAD_ARGUMENTS = "Protocol error."  # unverified
LINE_TOO_LONG = "Command is too long."  # sitemail's wording
SIGNING_OFF = "Microsoft Exchange Server 2010 POP3 server signing off."  # unverified
BEGIN_TLS = "Begin TLS negotiation."  # unverified


class Sentinel(Enum):
    NEED_DATA = "NEED_DATA"
    """Nothing more can be parsed until more bytes arrive."""
    PAUSED = "PAUSED"
    """A command awaits its answer, or STLS awaits the handshake."""


NEED_DATA = Sentinel.NEED_DATA
PAUSED = Sentinel.PAUSED


class Pop3State(Enum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"
    """QUIT was answered in TRANSACTION (deletions are due); the session is over."""
    CLOSED = "CLOSED"


# ------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed(Event):
    """The client closed its side; nothing follows."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Command(Event):
    """A command line; answer it once.  ``suggested_error`` is the grammar's and
    the state's verdict (``None``: nothing wrong that they can see)."""

    line: str
    suggested_error: str | None = None

    @property
    def log_text(self) -> str:
        return self.line


@dataclass(frozen=True, slots=True, kw_only=True)
class Capa(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class User(Command):
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Pass(Command):
    password: str = ""

    @property
    def log_text(self) -> str:
        return "PASS ****"


@dataclass(frozen=True, slots=True, kw_only=True)
class Stls(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Stat(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class List(Command):
    msg: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Uidl(Command):
    msg: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Retr(Command):
    msg: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Top(Command):
    msg: int = 0
    lines: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Dele(Command):
    msg: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class Noop(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Rset(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Quit(Command):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Unknown(Command):
    verb: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BadSyntax(Command):
    """A known command with arguments it cannot take."""

    verb: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LineTooLong(Command):
    length: int


# Which state each command belongs to (CAPA and QUIT: any).
_AUTHORIZATION_ONLY = (User, Pass, Stls)
_TRANSACTION_ONLY = (Stat, List, Uidl, Retr, Top, Dele, Noop, Rset)


class LocalProtocolError(Exception):
    """The caller used the core out of turn (a bug in the caller, not the peer)."""


# ------------------------------------------------------------------ the core


class Pop3Server:
    """One POP3 session, server side."""

    def __init__(self, *, secure: bool = False, max_line: int = MAX_LINE) -> None:
        self.state = Pop3State.AUTHORIZATION
        self.secure = secure
        """TLS is on (implicit TLS on 995, or after STLS)."""
        self.user: str | None = None
        """The name given by USER, waiting for PASS."""
        self._buffer = ReceiveBuffer()
        self._max_line = max_line
        self._pending: Command | None = None
        self._awaiting_tls = False
        self._eof = False
        self._closed_reported = False
        self._message: DotEncoder | None = None

    # -- input

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client; ``b""`` means it closed its side."""
        if not data:
            self._eof = True
            return
        if self._awaiting_tls or self.state in (Pop3State.UPDATE, Pop3State.CLOSED):
            return  # plaintext before the handshake, or after the end: never a command
        self._buffer.append(data)

    def next_event(self) -> Event | Sentinel:
        if self._pending is not None or self._awaiting_tls or self._message is not None:
            return PAUSED
        if self.state in (Pop3State.UPDATE, Pop3State.CLOSED):
            return self._closed()
        line = self._buffer.read_line(self._max_line)
        if line is None:
            return self._closed() if self._eof else NEED_DATA
        if isinstance(line, LineOverflow):
            event: Command = LineTooLong(
                line=_text(line.prefix), length=line.length, suggested_error=LINE_TOO_LONG
            )
        else:
            event = self._parse(_text(line).rstrip("\r\n"))
        self._pending = event
        return event

    def _closed(self) -> Event | Sentinel:
        if self._closed_reported:
            return NEED_DATA
        self._closed_reported = True
        return ConnectionClosed()

    def take_buffered(self) -> bytes:
        """What the client sent beyond the commands read so far (a proxy passes it on)."""
        return self._buffer.read(len(self._buffer))

    def tls_established(self) -> None:
        """The STLS handshake completed: commands are read again, over TLS."""
        if not self._awaiting_tls:
            raise LocalProtocolError("tls_established() without an answered STLS")
        self._awaiting_tls = False
        self.secure = True
        self._buffer.clear()

    # -- output

    def greeting(self, text: str = GREETING) -> bytes:
        return _line(f"+OK {text}")

    def send_ok(self, text: str = "") -> bytes:
        """``+OK`` to the pending command (and the state change it brings)."""
        command = self._take()
        if isinstance(command, Pass):
            self.state = Pop3State.TRANSACTION
            self.user = None
        elif isinstance(command, Quit):
            self.state = (
                Pop3State.UPDATE if self.state is Pop3State.TRANSACTION else Pop3State.CLOSED
            )
        elif isinstance(command, Stls):
            self._awaiting_tls = True
            self._buffer.clear()
        elif isinstance(command, User):
            self.user = command.name
        return _line(f"+OK {text}" if text else "+OK")

    def send_err(self, text: str) -> bytes:
        command = self._take()
        if isinstance(command, Pass):
            self.user = None  # RFC 1939: after a failed PASS, USER comes again
        return _line(f"-ERR {text}" if text else "-ERR")

    def send_lines(self, first: str, lines: Iterable[str]) -> bytes:
        """A multi-line ``+OK`` answer (CAPA, LIST, UIDL): dot-stuffed, ``.`` at the end."""
        self._take()
        encoder = DotEncoder()
        body = "".join(f"{line}\r\n" for line in lines).encode("utf-8", errors="replace")
        return _line(f"+OK {first}" if first else "+OK") + encoder.encode(body) + encoder.finish()

    def start_message(self, text: str = "") -> bytes:
        """``+OK`` to RETR/TOP; the message follows with :meth:`message_data`."""
        command = self._take()
        if not isinstance(command, Retr | Top):
            raise LocalProtocolError(f"a message answers RETR or TOP, not {command.line!r}")
        self._message = DotEncoder()
        return _line(f"+OK {text}" if text else "+OK")

    def message_data(self, chunk: bytes) -> bytes:
        if self._message is None:
            raise LocalProtocolError("message_data() outside a RETR/TOP answer")
        return self._message.encode(chunk)

    def end_message(self) -> bytes:
        if self._message is None:
            raise LocalProtocolError("end_message() outside a RETR/TOP answer")
        encoder, self._message = self._message, None
        return encoder.finish()

    def send_unsolicited_err(self, text: str) -> bytes:
        """``-ERR`` that ends the session without a command to answer (timeouts)."""
        self.state = Pop3State.CLOSED
        self._pending = None
        return _line(f"-ERR {text}")

    def _take(self) -> Command:
        command = self._pending
        if command is None:
            raise LocalProtocolError("no command is waiting for an answer")
        self._pending = None
        return command

    # -- grammar

    def _parse(self, line: str) -> Command:
        verb, _, rest = line.partition(" ")
        name = verb.upper()
        parser = _PARSERS.get(name)
        if parser is None:
            return Unknown(line=line, verb=verb, suggested_error=UNKNOWN_COMMAND)
        event = parser(line, rest)
        if event.suggested_error is None:
            event = self._check_state(event)
        return event

    def _check_state(self, event: Command) -> Command:
        wrong = (
            (isinstance(event, _AUTHORIZATION_ONLY) and self.state is not Pop3State.AUTHORIZATION)
            or (isinstance(event, _TRANSACTION_ONLY) and self.state is not Pop3State.TRANSACTION)
            or (isinstance(event, Pass) and self.user is None)
            or (isinstance(event, Stls) and self.secure)
        )
        return _with_error(event, BAD_STATE) if wrong else event


_Parser = Callable[[str, str], "Command"]


def _with_error(event: Command, text: str) -> Command:
    return replace(event, suggested_error=text)


def _text(data: bytes) -> str:
    # Lossless for any octets: names and passwords go through as the client sent them.
    return data.decode("utf-8", errors="surrogateescape")


def _line(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape") + b"\r\n"


def _number(word: str) -> int | None:
    # RFC 1939 message numbers are decimal, 1 or more; bounded to keep them sane.
    if not word.isascii() or not word.isdigit() or len(word) > 9:
        return None
    value = int(word)
    return value if value >= 1 else None


def _args(rest: str) -> list[str]:
    return rest.split()


def _no_args(cls: type[Command]) -> _Parser:
    def parse(line: str, rest: str) -> Command:
        if rest.strip():
            return _bad(line, BAD_ARGUMENTS)
        return cls(line=line)

    return parse


def _bad(line: str, text: str) -> Command:
    verb = line.partition(" ")[0]
    return BadSyntax(line=line, verb=verb, suggested_error=text)


def _parse_user(line: str, rest: str) -> Command:
    name = rest.strip()
    if not name:
        return _bad(line, BAD_ARGUMENTS)
    return User(line=line, name=name)


def _parse_pass(line: str, rest: str) -> Command:
    # The password is the rest of the line: it may hold spaces (RFC 1939 section 13).
    if not rest:
        return BadSyntax(line="PASS ****", verb="PASS", suggested_error=BAD_ARGUMENTS)
    return Pass(line=line, password=rest)


def _optional_msg(cls: type[List] | type[Uidl]) -> _Parser:
    def parse(line: str, rest: str) -> Command:
        args = _args(rest)
        if not args:
            return cls(line=line)
        msg = _number(args[0]) if len(args) == 1 else None
        return cls(line=line, msg=msg) if msg is not None else _bad(line, BAD_ARGUMENTS)

    return parse


def _one_msg(cls: type[Retr] | type[Dele]) -> _Parser:
    def parse(line: str, rest: str) -> Command:
        args = _args(rest)
        msg = _number(args[0]) if len(args) == 1 else None
        return cls(line=line, msg=msg) if msg is not None else _bad(line, BAD_ARGUMENTS)

    return parse


def _parse_top(line: str, rest: str) -> Command:
    args = _args(rest)
    if len(args) != 2:
        return _bad(line, BAD_ARGUMENTS)
    msg = _number(args[0])
    count = 0 if args[1] == "0" else _number(args[1])
    if msg is None or count is None:
        return _bad(line, BAD_ARGUMENTS)
    return Top(line=line, msg=msg, lines=count)


_PARSERS: dict[str, _Parser] = {
    "CAPA": _no_args(Capa),
    "USER": _parse_user,
    "PASS": _parse_pass,
    "STLS": _no_args(Stls),
    "STAT": _no_args(Stat),
    "LIST": _optional_msg(List),
    "UIDL": _optional_msg(Uidl),
    "RETR": _one_msg(Retr),
    "DELE": _one_msg(Dele),
    "TOP": _parse_top,
    "NOOP": _no_args(Noop),
    "RSET": _no_args(Rset),
    "QUIT": _no_args(Quit),
}
