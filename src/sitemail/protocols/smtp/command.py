"""SMTP command lines: split into verb and argument, and format them.

``MAIL FROM:<a@b> SIZE=10`` is verb ``MAIL``, argument ``FROM:<a@b> SIZE=10``.
Verbs are case-insensitive (RFC 5321 §2.4) and returned upper-case; the
argument keeps its case.  The firewall inspection engine and the log readers
use the same split so that all three agree on what a line "is".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .text import check_no_eol, encode_text, strip_eol

# Letters, digits and '-' (X-EXPS, X-ANONYMOUSTLS); RFC 5321 verbs are
# alphabetic, the hyphen comes from the X- extensions Exchange uses.
_VERB = re.compile(r"[A-Za-z][A-Za-z0-9-]*")


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
    return CommandLine(verb.upper(), argument.strip(" \t"))


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
