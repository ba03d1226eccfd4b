"""The little SMTP line grammar the inspection engine needs.

Kept local on purpose: ``sitemail.protocols.smtp`` is being written at the same
time, and the firewall must not wait for it.  Everything here (end-of-line
split, command verb, reply code, last-line test, path argument of MAIL/RCPT) is
a candidate to move into that package later.

The engine works on bytes: it must never decode a line it does not understand,
and it must give back exactly as many bytes as it took.
"""

from __future__ import annotations

CR = 0x0D
LF = 0x0A
SP = 0x20
HTAB = 0x09


def split_eol(line: bytes) -> tuple[bytes, bytes]:
    """Split ``line`` into its text and its line ending (CRLF, bare LF or nothing)."""
    if line.endswith(b"\r\n"):
        return line[:-2], b"\r\n"
    if line.endswith(b"\n"):
        return line[:-1], b"\n"
    return line, b""


def command_verb(line: bytes) -> str:
    """The upper-cased first word of a command line ("" for an empty line)."""
    text, _ = split_eol(line)
    words = text.split(None, 1)
    if not words:
        return ""
    return words[0].upper().decode("latin-1")


def reply_code(line: bytes) -> int | None:
    """The three-digit code of a reply line, or None if the line has none."""
    head = line[:3]
    if len(head) == 3 and head.isdigit():
        return int(head)
    return None


def is_last_reply_line(line: bytes) -> bool:
    """A reply line is the last of its reply unless its fourth byte is ``-``."""
    return line[3:4] != b"-"


def path_argument(line: bytes, keyword: bytes) -> bytes | None:
    """The mailbox of ``MAIL FROM:<...>`` / ``RCPT TO:<...>`` without the brackets.

    ``keyword`` is ``b"FROM:"`` or ``b"TO:"``.  Returns None when the line does
    not carry that keyword.
    """
    text, _ = split_eol(line)
    upper = text.upper()
    at = upper.find(keyword)
    if at < 0:
        return None
    rest = text[at + len(keyword) :].lstrip(b" \t")
    if rest.startswith(b"<"):
        end = rest.find(b">")
        return rest[1:] if end < 0 else rest[1:end]
    end = rest.find(b" ")
    return rest if end < 0 else rest[:end]
