"""The sans-I/O IMAP4rev1 server core (RFC 3501, with LITERAL+, UIDPLUS, IDLE, NAMESPACE).

:class:`ImapServer` turns received bytes into command events and answers
into bytes, in the style of ``h11``: no sockets, no clock, no asyncio.  The
caller feeds :meth:`~ImapServer.receive_data`, takes events from
:meth:`~ImapServer.next_event` and answers every :class:`Command` with
untagged data (:meth:`~ImapServer.send_untagged`) and exactly one
:meth:`~ImapServer.send_tagged` before the next command comes out.

What the core does:

- **framing with literals.**  A command line that ends in ``{n}`` is
  followed by n octets.  The core stops at each literal with a
  :class:`LiteralRequest`, which the caller accepts (the core gives the
  ``+`` continuation for a synchronizing literal, nothing for LITERAL+'s
  ``{n+}``) or rejects (a tagged answer; the octets of a non-synchronizing
  literal are then skipped).  ``suggested`` says whether the grammar already
  refuses it (too large, wrong state).  The message literal of APPEND is
  not held in memory: it comes as :class:`Append`, then
  :class:`AppendData` chunks, then :class:`AppendEnd`.
- **grammar.**  Commands are parsed into typed events (sequence sets,
  FETCH attributes with sections and partial ranges, STORE, SEARCH keys,
  mailbox names in modified UTF-7); a command it cannot parse is
  :class:`BadCommand`, one it does not know :class:`UnknownCommand`.
- **states.**  NOT AUTHENTICATED, AUTHENTICATED, SELECTED, LOGOUT (RFC
  3501 section 3).  A command out of its state carries ``suggested`` with
  Exchange's refusal; the state moves when the caller answers OK to LOGIN,
  AUTHENTICATE, SELECT/EXAMINE, CLOSE/UNSELECT, or LOGOUT.  STARTTLS's OK
  pauses the core until :meth:`~ImapServer.tls_established`; bytes received
  between the command and the handshake are dropped (RFC 3501 section
  6.2.1: no plaintext may be taken for TLS-protected commands).
- **continuations.**  IDLE reads one line (``DONE``) after the caller's
  ``+``; AUTHENTICATE reads one response line per ``+`` the caller sends.
- **bounds.**  Lines, literals and whole commands are bounded; a literal
  too large is refused before a byte of it is held.

The events are in :mod:`.imap_events`; the lexer and the builder of each
command's event in :mod:`.imap_commands`; the values they carry (sequence
sets, FETCH attributes, SEARCH keys) and the helpers that format answers
(:func:`~.imap_syntax.quote`, :func:`~.imap_syntax.imap_list`,
:func:`~.imap_syntax.encode_mailbox`...) in :mod:`.imap_syntax`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from enum import Enum

from sitemail.protocols.imap_commands import (
    BUILDERS,
    CommandSyntaxError,
    LiteralSegment,
    astring,
    flags_of,
    lex,
    nest_values,
)
from sitemail.protocols.imap_events import (
    Append,
    AppendData,
    AppendEnd,
    Authenticate,
    AuthenticateResponse,
    BadCommand,
    Close,
    Command,
    ConnectionClosed,
    Event,
    Idle,
    IdleDone,
    LiteralRequest,
    Login,
    Logout,
    Select,
    StartTls,
    Suggested,
    UnknownCommand,
)
from sitemail.protocols.imap_syntax import Atom, decode_mailbox, parse_date_time
from sitemail.protocols.smtp.buffer import LineOverflow, ReceiveBuffer

#: Longest line of command text (without literals), terminator included.
MAX_LINE = 64 * 1024
#: Largest literal in a command other than APPEND's message (a password, a name).
MAX_LITERAL = 64 * 1024
#: Largest command in memory: its lines and literals together.
MAX_COMMAND = 256 * 1024
#: Most literals in one command.
MAX_LITERALS = 64
#: Largest APPEND message by default (Exchange 2010's MaxMessageSize for IMAP4 is not
#: in the spec; the store's limit is the real bound).
MAX_APPEND = 32 * 1024 * 1024

# Exchange 2010's texts.  They were not read from a 2010 transcript for this
# project; they are written as Exchange 2010 is generally known to answer and
# kept here so that a verified text changes in one place.
GREETING = "The Microsoft Exchange IMAP4 service is ready."  # unverified
BAD_STATE = "Command received in Invalid state."  # unverified (the brief's text)
BAD_COMMAND = "Command Error. 10"  # unverified
BAD_ARGUMENTS = "Command Argument Error. 11"  # unverified
LOGIN_FAILED = "LOGIN failed."  # unverified (the brief's text)
AUTHENTICATE_FAILED = "AUTHENTICATE failed."  # unverified
BYE_LOGOUT = "Microsoft Exchange Server 2010 IMAP4 server signing off."  # unverified
BEGIN_TLS = "Begin TLS negotiation now."  # unverified
READY_FOR_LITERAL = "Ready for additional command text."  # unverified
IDLE_ACCEPTED = "IDLE accepted, awaiting DONE command."  # unverified
LINE_TOO_LONG = "Command line too long."  # sitemail's wording
LITERAL_TOO_LARGE = "Literal too large."  # sitemail's wording


def completed(name: str) -> str:
    """Exchange's tagged OK text: ``FETCH completed.``"""
    return f"{name} completed."


class Sentinel(Enum):
    NEED_DATA = "NEED_DATA"
    PAUSED = "PAUSED"


NEED_DATA = Sentinel.NEED_DATA
PAUSED = Sentinel.PAUSED


class ImapState(Enum):
    NOT_AUTHENTICATED = "NotAuthenticated"
    AUTHENTICATED = "Authenticated"
    SELECTED = "Selected"
    LOGOUT = "Logout"


class LocalProtocolError(Exception):
    """The caller used the core out of turn (its bug, not the client's)."""


_LITERAL_AT_END = re.compile(rb"\{([0-9]{1,10})(\+?)\}\r?\n?$")


# ============================================================== the core


class _Mode(Enum):
    LINE = "line"
    LITERAL_WAIT = "literal-wait"  # a LiteralRequest/Append awaits accept or reject
    LITERAL = "literal"  # reading a literal into the command
    APPEND_DATA = "append-data"  # streaming APPEND's message
    APPEND_TAIL = "append-tail"  # the line end after APPEND's message
    SKIP = "skip"  # throwing away a rejected non-synchronizing literal
    SKIP_LINE = "skip-line"  # then the rest of the refused command
    TLS = "tls"  # STARTTLS answered, handshake pending
    IDLE = "idle"  # waiting for DONE
    AUTH = "auth"  # waiting for an AUTHENTICATE response line


_ANY_STATE = frozenset({"CAPABILITY", "NOOP", "LOGOUT"})
_NOT_AUTHENTICATED = frozenset({"STARTTLS", "LOGIN", "AUTHENTICATE"})
_AUTHENTICATED = frozenset(
    {
        "SELECT",
        "EXAMINE",
        "CREATE",
        "DELETE",
        "RENAME",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "LIST",
        "LSUB",
        "STATUS",
        "APPEND",
        "NAMESPACE",
        "IDLE",
    }
)
_SELECTED = frozenset(
    {"CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "UID"}
)
_TAG_BAD = frozenset(b'+(){ %*"\\]')


class ImapServer:
    """One IMAP4rev1 session, server side."""

    def __init__(
        self,
        *,
        secure: bool = False,
        max_line: int = MAX_LINE,
        max_literal: int = MAX_LITERAL,
        max_append: int = MAX_APPEND,
    ) -> None:
        self.state = ImapState.NOT_AUTHENTICATED
        self.secure = secure
        self.readonly = False
        self._buffer = ReceiveBuffer()
        self._max_line = max_line
        self._max_literal = max_literal
        self._max_append = max_append
        self._mode = _Mode.LINE
        self._segments: list[bytes | LiteralSegment] = []
        self._held = 0  # octets of the command being assembled
        self._literal_left = 0
        self._literal_sync = False
        self._literal_tag = ""
        self._literal_event: LiteralRequest | Append | None = None
        self._literal_parts: list[bytes] = []
        self._append: Append | None = None  # accepted, its message arriving
        self._pending: Command | None = None
        self._idle_tag = ""
        self._auth_tag = ""
        self._eof = False
        self._closed_reported = False

    # ---------------------------------------------------------------- input

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client; ``b""`` means it closed its side."""
        if not data:
            self._eof = True
            return
        if self._mode is _Mode.TLS or self.state is ImapState.LOGOUT:
            return  # plaintext before the handshake, or after LOGOUT: never a command
        self._buffer.append(data)

    def take_buffered(self) -> bytes:
        """What the client sent beyond the commands read so far (a proxy passes it on)."""
        return self._buffer.read(len(self._buffer))

    def tls_established(self) -> None:
        if self._mode is not _Mode.TLS:
            raise LocalProtocolError("tls_established() without an answered STARTTLS")
        self._mode = _Mode.LINE
        self.secure = True
        self._buffer.clear()

    def next_event(self) -> Event | Sentinel:
        while True:
            reading_for_pending = self._mode in (_Mode.IDLE, _Mode.AUTH)
            if (self._pending is not None and not reading_for_pending) or self._mode in (
                _Mode.LITERAL_WAIT,
                _Mode.TLS,
            ):
                return PAUSED
            if self.state is ImapState.LOGOUT:
                return self._closed()
            event = self._step()
            if event is None:
                continue
            if event is NEED_DATA and self._eof:
                return self._closed()
            if isinstance(event, Command) and not isinstance(event, Append):
                self._pending = event  # (an APPEND is pending from its AppendEnd on)
            return event

    def _closed(self) -> Event | Sentinel:
        if self._closed_reported:
            return NEED_DATA
        self._closed_reported = True
        return ConnectionClosed()

    def _step(self) -> Event | Sentinel | None:
        """One step of the reader: an event, NEED_DATA, or None to go on."""
        mode = self._mode
        if mode in (_Mode.LITERAL, _Mode.SKIP, _Mode.APPEND_DATA):
            return self._read_literal()
        line = self._buffer.read_line(self._max_line)
        if line is None:
            return NEED_DATA
        if mode is _Mode.IDLE:
            self._mode = _Mode.LINE
            return self._idle_line(line)
        if mode is _Mode.AUTH:
            self._mode = _Mode.LINE
            data = b"" if isinstance(line, LineOverflow) else line.rstrip(b"\r\n")
            return AuthenticateResponse(tag=self._auth_tag, data=data)
        if mode is _Mode.APPEND_TAIL:
            self._mode = _Mode.LINE
            return self._append_tail(line)
        if mode is _Mode.SKIP_LINE:
            self._skip_line(line)
            return None
        return self._command_line(line)

    def _idle_line(self, line: bytes | LineOverflow) -> Event:
        tag = self._idle_tag
        if isinstance(line, bytes) and line.rstrip(b"\r\n").upper() == b"DONE":
            return IdleDone(tag=tag)
        return IdleDone(tag=tag, suggested=Suggested("BAD", BAD_ARGUMENTS))

    def _append_tail(self, line: bytes | LineOverflow) -> Event:
        # The APPEND is answered now: it is the pending command from here on.
        self._pending, self._append = self._append, None
        tag = self._literal_tag
        if isinstance(line, bytes) and not line.strip():
            return AppendEnd(tag=tag)
        return AppendEnd(tag=tag, suggested=Suggested("BAD", BAD_ARGUMENTS))

    def _skip_line(self, line: bytes | LineOverflow) -> None:
        m = _LITERAL_AT_END.search(line) if isinstance(line, bytes) else None
        # A further literal of the refused command: skip it unless the client waits
        # for a continuation (then it sends nothing more).
        if m is not None and m.group(2):
            self._literal_left = int(m.group(1))
            self._mode = _Mode.SKIP
        else:
            self._mode = _Mode.LINE

    def _command_line(self, line: bytes | LineOverflow) -> Event | None:
        if isinstance(line, LineOverflow):
            tag = self._segment_tag(line.prefix) if not self._segments else self._literal_tag
            self._reset_command()
            return BadCommand(
                tag=tag or "*",
                name="",
                suggested=Suggested("BAD", LINE_TOO_LONG),
                log_text=_text(line.prefix[:80]),
            )
        body = line.rstrip(b"\r\n")
        m = _LITERAL_AT_END.search(line)
        self._held += len(line)
        if m is not None:
            self._segments.append(body[: m.start()])
            return self._literal_announced(int(m.group(1)), not m.group(2))
        self._segments.append(body)
        segments = self._segments
        self._reset_command()
        if self._held_over(segments):
            return BadCommand(tag="*", name="", suggested=Suggested("BAD", LINE_TOO_LONG))
        return self._parse(segments)

    def _held_over(self, segments: Sequence[bytes | LiteralSegment]) -> bool:
        size = sum(len(s.data) if isinstance(s, LiteralSegment) else len(s) for s in segments)
        return size > MAX_COMMAND

    def _reset_command(self) -> None:
        self._segments = []
        self._held = 0

    def _segment_tag(self, first: bytes) -> str | None:
        word = first.split(b" ", 1)[0]
        if word and not any(c in _TAG_BAD or c < 0x21 or c > 0x7E for c in word):
            return word.decode("ascii")
        return None

    def _literal_announced(self, size: int, synchronizing: bool) -> Event:
        first = self._segments[0] if self._segments else b""
        tag = self._segment_tag(first) if isinstance(first, bytes) else None
        self._literal_tag = tag or "*"
        self._literal_sync = synchronizing
        self._literal_left = size
        append = self._append_header()
        suggested: Suggested | None = None
        if tag is None:
            suggested = Suggested("BAD", BAD_COMMAND)
        elif append is not None:
            if append.suggested is not None:
                suggested = append.suggested
            elif size > self._max_append:
                suggested = Suggested("NO", LITERAL_TOO_LARGE)
            else:
                event: LiteralRequest | Append = replace(
                    append, size=size, synchronizing=synchronizing
                )
                self._literal_event = event
                self._mode = _Mode.LITERAL_WAIT
                return event
        elif size > self._max_literal or self._held + size > MAX_COMMAND:
            suggested = Suggested("BAD", LITERAL_TOO_LARGE)
        elif sum(isinstance(s, LiteralSegment) for s in self._segments) >= MAX_LITERALS:
            suggested = Suggested("BAD", BAD_ARGUMENTS)
        request = LiteralRequest(
            tag=self._literal_tag, size=size, synchronizing=synchronizing, suggested=suggested
        )
        self._literal_event = request
        self._mode = _Mode.LITERAL_WAIT
        return request

    def _append_header(self) -> Append | None:
        """The APPEND this literal carries the message of, if it is one."""
        try:
            values = nest_values(lex(self._segments))
        except CommandSyntaxError:
            return None
        if len(values) < 3 or not all(isinstance(v, Atom) for v in values[:2]):
            return None
        tag, name = values[0], values[1]
        assert isinstance(tag, Atom) and isinstance(name, Atom)
        if name.text.upper() != "APPEND":
            return None
        args = values[2:]
        mailbox = astring(args[0])
        flags: tuple[str, ...] = ()
        when: datetime | None = None
        rest = args[1:]
        suggested = self._state_error("APPEND")
        if rest and isinstance(rest[0], list):
            flag_list = flags_of(rest[0])
            if flag_list is None:
                suggested = suggested or Suggested("BAD", BAD_ARGUMENTS)
            flags = flag_list or ()
            rest = rest[1:]
        if rest and isinstance(rest[0], bytes):
            when = parse_date_time(rest[0].decode("ascii", errors="replace"))
            if when is None:
                suggested = suggested or Suggested("BAD", BAD_ARGUMENTS)
            rest = rest[1:]
        if mailbox is None or rest:
            return None  # not the message literal: an ordinary literal of a bad APPEND
        return Append(
            tag=tag.text,
            name="APPEND",
            mailbox=decode_mailbox(mailbox),
            flags=flags,
            internal_date=when,
            suggested=suggested,
            log_text=f"{tag.text} APPEND {mailbox}",
        )

    def _read_literal(self) -> Event | Sentinel | None:
        if self._literal_left == 0:
            return self._literal_done()
        chunk = self._buffer.read(self._literal_left)
        if not chunk:
            return NEED_DATA
        self._literal_left -= len(chunk)
        if self._mode is _Mode.APPEND_DATA:
            return AppendData(data=chunk)
        if self._mode is _Mode.LITERAL:
            self._literal_parts.append(chunk)
        return None

    def _literal_done(self) -> Event | None:
        mode = self._mode
        if mode is _Mode.APPEND_DATA:
            self._mode = _Mode.APPEND_TAIL
            self._reset_command()
            return None
        if mode is _Mode.SKIP:
            self._mode = _Mode.SKIP_LINE
            return None
        data = b"".join(self._literal_parts)
        self._literal_parts = []
        self._held += len(data)
        self._segments.append(LiteralSegment(data))
        self._mode = _Mode.LINE
        return None

    # ---------------------------------------------------------------- literal answers

    def accept_literal(self) -> bytes:
        """Take the announced literal: the ``+`` continuation, or b"" for ``{n+}``."""
        event = self._literal_event
        if self._mode is not _Mode.LITERAL_WAIT or event is None:
            raise LocalProtocolError("no literal is waiting")
        self._literal_event = None
        if isinstance(event, Append):
            self._append = event  # answered after AppendEnd
            self._mode = _Mode.APPEND_DATA
        else:
            self._mode = _Mode.LITERAL
        return self._continuation(READY_FOR_LITERAL) if self._literal_sync else b""

    def reject_literal(self, status: str, text: str) -> bytes:
        """Refuse the command that announced the literal (its octets are skipped if sent)."""
        if self._mode is not _Mode.LITERAL_WAIT or self._literal_event is None:
            raise LocalProtocolError("no literal is waiting")
        self._literal_event = None
        tag = self._literal_tag
        self._reset_command()
        self._literal_parts = []
        # A client that waits for "+" sends no octets and no rest of line.
        self._mode = _Mode.LINE if self._literal_sync else _Mode.SKIP
        return _line(f"{tag} {status} {text}")

    # ---------------------------------------------------------------- output

    def greeting(self, text: str = GREETING) -> bytes:
        return _line(f"* OK {text}")

    def send_untagged(self, data: bytes | str) -> bytes:
        """``* <data>`` (``data`` may hold literals; the line end is added)."""
        raw = data.encode("utf-8") if isinstance(data, str) else data
        return b"* " + raw + b"\r\n"

    def send_continuation(self, text: str = "") -> bytes:
        """``+ <text>`` for the pending IDLE or AUTHENTICATE (the core then reads its line)."""
        command = self._pending
        if isinstance(command, Idle):
            self._mode = _Mode.IDLE
            self._idle_tag = command.tag
        elif isinstance(command, Authenticate):
            self._mode = _Mode.AUTH
            self._auth_tag = command.tag
        else:
            raise LocalProtocolError("a continuation answers only IDLE or AUTHENTICATE")
        return self._continuation(text)

    def send_tagged(self, status: str, text: str, code: str | None = None) -> bytes:
        """The tagged answer to the pending command (``status``: OK, NO or BAD)."""
        command = self._pending
        if command is None:
            raise LocalProtocolError("no command is waiting for its answer")
        if self._mode in (_Mode.IDLE, _Mode.AUTH):
            self._mode = _Mode.LINE  # answered without waiting for the client's line
        self._pending = None
        self._after_tagged(command, status)
        shown = f"[{code}] {text}" if code else text
        return _line(f"{command.tag} {status} {shown}")

    def send_bye(self, text: str) -> bytes:
        """``* BYE``: the server ends the session (LOGOUT's, or an autologout)."""
        self.state = ImapState.LOGOUT
        return _line(f"* BYE {text}")

    def _continuation(self, text: str) -> bytes:
        return _line(f"+ {text}" if text else "+ ")

    def _after_tagged(self, command: Command, status: str) -> None:
        ok = status == "OK"
        if isinstance(command, Login | Authenticate) and ok:
            self.state = ImapState.AUTHENTICATED
        elif isinstance(command, Select):
            if ok:
                self.state = ImapState.SELECTED
                self.readonly = command.readonly
            elif self.state is ImapState.SELECTED:
                self.state = ImapState.AUTHENTICATED  # RFC 3501 6.3.1: a failed SELECT deselects
        elif isinstance(command, Close) and ok:
            self.state = ImapState.AUTHENTICATED
        elif isinstance(command, Logout):
            self.state = ImapState.LOGOUT
        elif isinstance(command, StartTls) and ok:
            self._mode = _Mode.TLS
            self._buffer.clear()

    # ---------------------------------------------------------------- parsing

    def _state_error(self, name: str) -> Suggested | None:
        state = self.state
        allowed = (
            name in _ANY_STATE
            or (name in _NOT_AUTHENTICATED and state is ImapState.NOT_AUTHENTICATED)
            or (name in _AUTHENTICATED and state in (ImapState.AUTHENTICATED, ImapState.SELECTED))
            or (name in _SELECTED and state is ImapState.SELECTED)
        )
        if name == "STARTTLS" and self.secure:
            allowed = False
        return None if allowed else Suggested("BAD", BAD_STATE)

    def _parse(self, segments: list[bytes | LiteralSegment]) -> Event:
        first = segments[0]
        assert isinstance(first, bytes)
        tag = self._segment_tag(first)
        log = _text(first[:200])
        if tag is None:
            return BadCommand(
                tag="*", name="", suggested=Suggested("BAD", BAD_COMMAND), log_text=log
            )
        try:
            values = nest_values(lex(segments))
        except CommandSyntaxError:
            values = []
        if len(values) < 2 or not isinstance(values[1], Atom):
            return BadCommand(
                tag=tag, name="", suggested=Suggested("BAD", BAD_COMMAND), log_text=log
            )
        name = values[1].text.upper()
        args = values[2:]
        builder = BUILDERS.get(name)
        event: Command
        if builder is None:
            event = UnknownCommand(
                tag=tag, name=name, suggested=Suggested("BAD", BAD_COMMAND), log_text=log
            )
        else:
            try:
                event = builder(tag, name, args)
            except CommandSyntaxError:
                event = BadCommand(
                    tag=tag, name=name, suggested=Suggested("BAD", BAD_ARGUMENTS), log_text=log
                )
            else:
                if isinstance(event, Login):
                    log = f"{tag} LOGIN {event.user} ****"
                elif isinstance(event, Authenticate):
                    log = f"{tag} AUTHENTICATE {event.mechanism}"
                event = replace(event, log_text=log)
            state_error = self._state_error(name)
            if state_error is not None:
                event = replace(event, suggested=state_error)
        return event


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _line(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape") + b"\r\n"
