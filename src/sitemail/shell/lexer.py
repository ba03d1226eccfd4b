"""Character classes and literal scanning shared by the parser and the formatter.

PowerShell accepts typographic dashes and quotes wherever ASCII ones go
(administrators paste commands from blogs and Word documents, as in the
seed's ``–IntraOrgProtocolLoggingLevel``); the classes below follow it.
"""

from __future__ import annotations

import re

DASHES = "-\u2013\u2014\u2015"  # hyphen-minus, en dash, em dash, horizontal bar
SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
DOUBLE_QUOTES = '"\u201c\u201d\u201e'
NEWLINES = "\r\n"

# Characters that end an unquoted argument (besides whitespace).
ARGUMENT_ENDS = frozenset(";|,(){}`" + SINGLE_QUOTES + DOUBLE_QUOTES + NEWLINES)
# Characters that cannot start an unquoted argument without changing its meaning.
ARGUMENT_STARTS_SPECIAL = frozenset(DASHES + "$@#<" + "[")

# What a backtick followed by a letter means (anything else stands for itself).
BACKTICK_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "0": "\0",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "e": "\x1b",
}

SIZE_MULTIPLIERS = {"kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40, "pb": 1 << 50}

_DASH_CLASS = "[" + DASHES + "]"
NUMBER_RE = re.compile(
    rf"(?P<sign>{_DASH_CLASS}|\+)?"
    r"(?:0x(?P<hex>[0-9a-f]+)"
    r"|(?P<dec>(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?))"
    r"(?P<unit>kb|mb|gb|tb|pb)?",
    re.IGNORECASE,
)


def is_dash(ch: str) -> bool:
    return ch != "" and ch in DASHES


def is_space(ch: str) -> bool:
    return ch != "" and ch not in NEWLINES and ch.isspace()


def is_name_char(ch: str) -> bool:
    """Characters of variable, member and parameter names."""
    return ch != "" and (ch.isalnum() or ch == "_")


def parse_number(text: str) -> int | float | None:
    """The value of a number literal (``25``, ``-1``, ``0x10``, ``1.5GB``), or None.

    Multipliers are binary, as in PowerShell: ``1KB`` is 1024. A result that
    is a whole number is an int.
    """
    match = NUMBER_RE.fullmatch(text)
    if match is None:
        return None
    value: int | float
    if match["hex"] is not None:
        value = int(match["hex"], 16)
    else:
        dec = match["dec"]
        value = int(dec) if dec.isdigit() else float(dec)
    unit = match["unit"]
    if unit:
        value = value * SIZE_MULTIPLIERS[unit.lower()]
    if match["sign"] and match["sign"] != "+":
        value = -value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        value = int(value)
    return value


def number_prefix(text: str, start: int) -> int:
    """Length of the longest number literal at ``text[start:]`` (0 if none)."""
    match = NUMBER_RE.match(text, start)
    return 0 if match is None else match.end() - start


def is_plain_argument(value: str) -> bool:
    """True if ``value`` reads back as itself when written unquoted in argument mode."""
    if value == "" or value[0] in ARGUMENT_STARTS_SPECIAL or value[0] in "@{":
        return False
    if parse_number(value) is not None:
        return False
    return not any(is_space(ch) or ch in ARGUMENT_ENDS for ch in value)
