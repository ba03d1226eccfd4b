"""SMTP replies: the value type, formatting and parsing (RFC 5321 §4.2, RFC 2034).

A reply is a three-digit code, an optional enhanced status code (RFC 3463,
``x.y.z``) and one or more text lines.  On the wire every line but the last
is ``CODE-text`` and the last is ``CODE text``; when an enhanced code is
present it starts the text of every line (RFC 2034 §4)::

    250-EX02.contoso.com Hello [10.1.0.11]
    250 XSHADOW
    550 5.7.1 Unable to relay
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import SmtpSyntaxError
from .text import check_no_eol, encode_text, strip_eol

_CODES_TEXT = {str(code): code for code in range(200, 600)}
_CODES_BYTES = {str(code).encode(): code for code in range(200, 600)}
# What may follow a code: a separator, the line end (CR only before LF), or nothing.
_AFTER_CODE = frozenset(("-", " ", "\n", "", b"-", b" ", b"\n", b""))
_CR = frozenset(("\r", b"\r"))
_LF = frozenset(("\n", b"\n"))
# RFC 3463: class "." subject "." detail, subject and detail 1-3 digits.
_ENHANCED = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})")


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete SMTP reply.

    ``lines`` hold the text only: no code, no separator, no enhanced code.
    ``Reply(250, "2.1.0", ("Sender OK",))`` is ``250 2.1.0 Sender OK``.
    """

    code: int
    enhanced: str | None
    lines: tuple[str, ...]

    def __post_init__(self) -> None:
        if not 200 <= self.code <= 599:
            raise ValueError(f"reply code must be 200-599, got {self.code}")
        if not self.lines:
            raise ValueError("a reply needs at least one line (it may be empty)")
        for line in self.lines:
            check_no_eol(line, "reply text")
        if self.enhanced is not None and not is_enhanced_status(self.enhanced, self.code):
            raise ValueError(
                f"enhanced status {self.enhanced!r} is not x.y.z with class {self.code // 100}"
            )

    @classmethod
    def of(cls, code: int, *lines: str, enhanced: str | None = None) -> Reply:
        """Shorthand: ``Reply.of(250, "Sender OK", enhanced="2.1.0")``."""
        return cls(code, enhanced, lines or ("",))

    @property
    def text(self) -> str:
        """All text lines joined with a space (handy for one-line messages)."""
        return " ".join(self.lines)

    @property
    def is_positive(self) -> bool:
        """2yz: positive completion."""
        return self.code // 100 == 2

    @property
    def is_intermediate(self) -> bool:
        """3yz: positive intermediate (354 to DATA, 334 in AUTH)."""
        return self.code // 100 == 3

    @property
    def is_transient(self) -> bool:
        """4yz: transient negative completion."""
        return self.code // 100 == 4

    @property
    def is_permanent(self) -> bool:
        """5yz: permanent negative completion."""
        return self.code // 100 == 5

    def wire_lines(self) -> list[str]:
        """The reply as wire lines without CRLF: ``["250-a", "250 b"]``."""
        prefix = f"{self.enhanced} " if self.enhanced else ""
        out: list[str] = []
        last = len(self.lines) - 1
        for i, line in enumerate(self.lines):
            body = prefix + line
            if i < last:
                out.append(f"{self.code}-{body}")
            elif body:
                out.append(f"{self.code} {body}")
            else:
                # RFC 5321 grammar: the text after the last code is optional.
                out.append(str(self.code))
        return out

    def to_bytes(self) -> bytes:
        """The reply as it goes on the wire, CRLF after every line."""
        return b"".join(encode_text(line) + b"\r\n" for line in self.wire_lines())

    def __str__(self) -> str:
        # One reply per line of text; a single-line reply reads exactly like
        # the wire ("451 5.7.3 Cannot achieve Exchange Server authentication"),
        # which is how queue LastError strings and logs quote replies.
        return "\n".join(self.wire_lines())


def format_reply(code: int, lines: Sequence[str], enhanced: str | None = None) -> bytes:
    """Wire bytes for a reply; see :class:`Reply`."""
    return Reply(code, enhanced, tuple(lines)).to_bytes()


def is_enhanced_status(text: str, code: int | None = None) -> bool:
    """True if ``text`` is an RFC 3463 code (``5.7.1``), of ``code``'s class if given."""
    m = _ENHANCED.fullmatch(text)
    if m is None:
        return False
    return code is None or m.group(1) == str(code // 100)


def split_enhanced(code: int, text: str) -> tuple[str | None, str]:
    """Split a leading enhanced status code off reply text.

    ``(550, "5.1.1 User unknown")`` gives ``("5.1.1", "User unknown")``.  A
    token is only taken as an enhanced code when its class matches the reply
    code (RFC 3463 §2), so ``250 5.0.0 x`` keeps its text whole.
    """
    head, _, rest = text.partition(" ")
    if is_enhanced_status(head, code):
        return head, rest
    return None, text


@dataclass(frozen=True, slots=True)
class ReplyLine:
    """One wire line of a reply: code, whether it is the last line, raw text."""

    code: int
    last: bool
    text: str


def reply_code(line: bytes | str) -> int | None:
    """The code of a reply line (raw or decoded, line end optional), or None.

    A code is three ASCII digits, the first 2 to 5 (RFC 5321 §4.2), followed
    by ``-``, a space or the end of the line: ``250-SIZE``, ``250 OK`` and a
    bare ``250`` have one; ``2500``, ``250x``, ``600 no`` and ``25`` do not.
    """
    # A table lookup, not a regex or int(): this runs on every reply line the
    # firewall relays and every reply row a log reader walks.
    if isinstance(line, bytes):
        code = _CODES_BYTES.get(line[:3])
        after: bytes | str = line[3:4]
    else:
        code = _CODES_TEXT.get(line[:3])
        after = line[3:4]
    if code is None:
        return None
    if after in _AFTER_CODE or (after in _CR and line[4:5] in _LF):
        return code
    return None


def is_last_reply_line(line: bytes | str) -> bool:
    """True unless the fourth character is ``-`` (RFC 5321 §4.2.1).

    ``250 OK`` and a bare ``250`` end their reply, ``250-SIZE`` does not.  A
    line without a code also counts as last: a reader that cannot parse a
    reply must not wait for more of it.
    """
    return line[3:4] not in (b"-", "-")


def reply_text(line: str) -> str:
    """The text of a reply line after its code and separator (``""`` for a bare code).

    Lenient, for readers of what came off the wire: when the fourth character
    is neither ``-`` nor a space it is kept (``220<TAB>***`` gives
    ``<TAB>***``), so a masked greeting is judged on every character it has.
    """
    return line[4:] if line[3:4] in ("-", " ") else line[3:]


def parse_reply_line(line: str) -> ReplyLine:
    """Parse ``250-SIZE``, ``250 OK`` or ``250`` (a CRLF or LF at the end is ignored).

    Raises :class:`SmtpSyntaxError` when the line has no :func:`reply_code`.
    """
    if line[-1:] == "\n":
        line = strip_eol(line)
    # reply_code's test, inlined for the log readers' loop (the line end is gone).
    code = _CODES_TEXT.get(line[:3])
    if code is None or line[3:4] not in _AFTER_CODE:
        raise SmtpSyntaxError(
            f"reply line does not start with a code 200-599 and '-', a space or its end: "
            f"{line[:40]!r}"
        )
    return ReplyLine(code, line[3:4] != "-", line[4:])


def reply_from_lines(lines: Sequence[ReplyLine]) -> Reply:
    """Assemble parsed lines into one :class:`Reply`.

    All lines must carry the same code and only the last may be final.  The
    enhanced code is taken from the first line; it is stripped from the
    following lines where they repeat it (RFC 2034 asks for it on each line).
    Raises :class:`SmtpSyntaxError` on inconsistent lines.
    """
    if not lines:
        raise SmtpSyntaxError("a reply needs at least one line")
    code = lines[0].code
    for i, rl in enumerate(lines):
        if rl.code != code:
            raise SmtpSyntaxError(f"multi-line reply changes code from {code} to {rl.code}")
        if rl.last != (i == len(lines) - 1):
            raise SmtpSyntaxError("only the last line of a reply may use the ' ' separator")
    enhanced, first = split_enhanced(code, lines[0].text)
    texts = [first]
    for rl in lines[1:]:
        text = rl.text
        if enhanced is not None:
            head, _, rest = text.partition(" ")
            if head == enhanced:
                text = rest
        texts.append(text)
    return Reply(code, enhanced, tuple(texts))


class ReplyAssembler:
    """Collect reply lines one at a time until a whole reply is there.

    Used by the client connection and handy for log readers, which see the
    lines of a multi-line reply as separate rows.
    """

    def __init__(self, max_lines: int = 1000) -> None:
        self._lines: list[ReplyLine] = []
        self._max_lines = max_lines

    @property
    def pending(self) -> int:
        """Lines of an unfinished reply held so far."""
        return len(self._lines)

    def feed(self, line: str) -> Reply | None:
        """Add one wire line; return the reply when its last line arrived.

        Raises :class:`SmtpSyntaxError` on a malformed line, a code change
        inside a reply or more than ``max_lines`` lines; the partial reply is
        dropped then.
        """
        try:
            rl = parse_reply_line(line)
            if self._lines and rl.code != self._lines[0].code:
                raise SmtpSyntaxError(
                    f"multi-line reply changes code from {self._lines[0].code} to {rl.code}"
                )
            if len(self._lines) >= self._max_lines:
                raise SmtpSyntaxError(f"reply has more than {self._max_lines} lines")
        except SmtpSyntaxError:
            self._lines.clear()
            raise
        self._lines.append(rl)
        if not rl.last:
            return None
        lines, self._lines = self._lines, []
        return reply_from_lines(lines)
