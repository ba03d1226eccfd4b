"""SMTP command lines: split into verb and argument, and format them.

``MAIL FROM:<a@b> SIZE=10`` is verb ``MAIL``, argument ``FROM:<a@b> SIZE=10``.
The receive side, the firewall's inspection engine and the log readers use
this one split, so that all of them agree on what a line "is":

- the verb runs from the first octet of the line to the first SP (RFC 5321
  §4.1.1: ``verb SP argument``).  A TAB is not a separator, and neither is a
  leading blank: ``MAIL<TAB>FROM:<a@b>`` and `` MAIL FROM:<a@b>`` have no
  known verb, so Exchange answers them as unrecognized commands and the ASA
  masks them rather than pass what the server will not take as MAIL;
- verbs are compared without regard to ASCII case (§2.4) and returned with
  their ASCII letters upper-cased; the argument keeps its case;
- :func:`parse_command_line` takes decoded text, :func:`command_verb` and
  :func:`leading_verb` raw bytes, for a relay that must not decode what it
  forwards (tests hold the two forms to the same answers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .text import ascii_upper, check_no_eol, decode_text, encode_text, strip_eol

# Letters, digits and '-' (X-EXPS, X-ANONYMOUSTLS); RFC 5321 verbs are
# alphabetic, the hyphen comes from the X- extensions Exchange uses.
_VERB = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_VERB_END = re.compile(rb"[ \r\n]")

#: Longest command line in octets, CRLF included (RFC 5321 §4.5.3.1.4); the
#: receive side's default bound and the ASA's ``cmd line length gt 512``.
MAX_COMMAND_LINE = 512


@dataclass(frozen=True, slots=True)
class CommandLine:
    """A command line split at its first space."""

    verb: str
    """Upper-case verb; may be empty or odd for garbage lines (see :func:`is_verb`)."""
    argument: str
    """Everything after the first space, with surrounding spaces and tabs removed."""


def parse_command_line(line: str) -> CommandLine:
    """Split a command line (its CRLF or LF, if any, is ignored).

    Never raises: whether the verb is known is for the caller to decide.
    Leading and trailing blanks of the argument are dropped because real
    clients send ``MAIL FROM: <a@b>`` and ``DATA `` and the meaning is clear.
    """
    verb, _, argument = strip_eol(line).partition(" ")
    return CommandLine(ascii_upper(verb), argument.strip(" \t"))


def command_verb(line: bytes) -> str:
    """The verb of a raw command line, as :func:`parse_command_line` gives it.

    The bytes form for a relay; its line end, if any, is ignored.
    """
    end = line.find(b" ")
    if end < 0:
        end = len(line)
        if line[-1:] == b"\n":
            end -= 2 if line[-2:-1] == b"\r" else 1
    return _verb_text(line[:end])


def leading_verb(fragment: bytes) -> str | None:
    """The verb at the start of a partial line, once an octet shows where it ends.

    That octet is SP, or the CR or LF of the line end; until one arrives the
    verb may still be growing and the answer is None.  The ASA judges a
    segment without a line end by this (asa-esmtp.md §7.3: "a whole allowed
    verb followed by SP/CRLF").
    """
    found = _VERB_END.search(fragment)
    if found is None:
        return None
    return _verb_text(fragment[: found.start()])


def _verb_text(head: bytes) -> str:
    # ASCII is the rule and decodes fastest without an error handler; bytes
    # upper() touches ASCII letters only, as verbs compare (module docstring).
    if head.isascii():
        return head.upper().decode("ascii")
    return decode_text(head.upper())


def is_verb(text: str) -> bool:
    """True if ``text`` has the shape of a verb (letters, digits, '-')."""
    return _VERB.fullmatch(text) is not None


def format_command(verb: str, argument: str = "") -> bytes:
    """Wire bytes for one command line, CRLF-terminated.

    Raises ``ValueError`` if the verb is not verb-shaped or either part holds
    CR or LF (which would inject a second command).
    """
    if not is_verb(verb):
        raise ValueError(f"not an SMTP verb: {verb!r}")
    check_no_eol(argument, "command argument")
    line = f"{verb} {argument}" if argument else verb
    return encode_text(line) + b"\r\n"
