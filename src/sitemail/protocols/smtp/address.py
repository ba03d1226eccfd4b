"""Paths and ESMTP parameters of MAIL and RCPT (RFC 5321 §4.1.2, RFC 3461, 1870, 6152, 3030, 4954).

``FROM:<alice@contoso.com> SIZE=2048 BODY=8BITMIME`` parses into the address
``alice@contoso.com`` and the parameters ``{"SIZE": "2048", "BODY": "8BITMIME"}``.

Leniency, chosen to match what real servers accept: a space after the colon
(``MAIL FROM: <a@b>``), an address without angle brackets, underscores in
domain labels and dots anywhere in an unquoted local part.  Source routes
(``<@relay:user@host>``) are accepted and dropped as RFC 5321 §4.1.1.3 asks.
Addresses must be ASCII: Exchange 2010 offers no SMTPUTF8.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field

from .errors import AddressSyntaxError, ParameterSyntaxError, SmtpSyntaxError
from .text import check_no_eol, decode_text, encode_text, strip_eol_bytes

ParamDict = dict[str, str | None]
"""ESMTP parameters: upper-case keyword -> value (``None`` for a bare keyword), in order."""

_ATEXT = frozenset(string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~")
_LOCAL_CHARS = _ATEXT | {"."}
# Lenient label: hostnames seen in EHLO lines include underscores (NetBIOS).
_LABEL = re.compile(r"[A-Za-z0-9_-]{1,63}")
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_XTEXT_HEX = re.compile(r"[0-9A-F]{2}")

#: Parameters of MAIL that the grammar knows: RFC 1870 SIZE, RFC 6152/3030
#: BODY, RFC 3461 RET/ENVID, RFC 4954 AUTH.
MAIL_PARAMETERS = frozenset({"SIZE", "BODY", "RET", "ENVID", "AUTH"})
#: Parameters of RCPT that the grammar knows: RFC 3461 NOTIFY/ORCPT.
RCPT_PARAMETERS = frozenset({"NOTIFY", "ORCPT"})
BODY_TYPES = frozenset({"7BIT", "8BITMIME", "BINARYMIME"})


@dataclass(frozen=True, slots=True)
class PathArgument:
    """A parsed MAIL or RCPT argument."""

    address: str
    """The mailbox without angle brackets; ``""`` for the null reverse-path ``<>``."""
    params: ParamDict = field(default_factory=dict)


# --- domains and mailboxes ---------------------------------------------------


def is_domain(text: str) -> bool:
    """True for a domain name (``mail.contoso.com``) or an address literal (``[10.0.0.1]``)."""
    if text.startswith("["):
        inner = text[1:-1]
        return (
            text.endswith("]")
            and bool(inner)
            and all(33 <= ord(c) <= 126 and c not in "[]\\" for c in inner)
        )
    if not text or len(text) > 255:
        return False
    return all(_LABEL.fullmatch(label) for label in text.split("."))


def _parse_quoted(text: str, start: int) -> int:
    """Index just after the quoted string that opens at ``text[start] == '"'``."""
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 >= len(text) or not 32 <= ord(text[i + 1]) <= 126:
                raise AddressSyntaxError("bad escape in quoted local part")
            i += 2
            continue
        if c == '"':
            return i + 1
        if not 32 <= ord(c) <= 126:
            raise AddressSyntaxError("control or non-ASCII character in quoted local part")
        i += 1
    raise AddressSyntaxError("unterminated quoted local part")


def check_mailbox(text: str, *, allow_postmaster: bool = False) -> None:
    """Raise :class:`AddressSyntaxError` unless ``text`` is ``local@domain``.

    With ``allow_postmaster`` the bare ``postmaster`` (any case) is accepted,
    as RFC 5321 §4.1.1.3 requires for RCPT.
    """
    if allow_postmaster and text.lower() == "postmaster":
        return
    if text.startswith('"'):
        at = _parse_quoted(text, 0)
    else:
        at = 0
        while at < len(text) and text[at] in _LOCAL_CHARS:
            at += 1
        if at == 0:
            raise AddressSyntaxError(f"empty or invalid local part in {text!r}")
    if at >= len(text) or text[at] != "@":
        raise AddressSyntaxError(f"expected '@' after the local part in {text!r}")
    if not is_domain(text[at + 1 :]):
        raise AddressSyntaxError(f"invalid domain in {text!r}")


def _path_end(text: str) -> int:
    """Index of the '>' closing the path that opens at ``text[0] == '<'``."""
    i = 1
    while i < len(text):
        c = text[i]
        if c == '"':
            i = _parse_quoted(text, i)
            continue
        if c == ">":
            return i
        i += 1
    raise AddressSyntaxError("path has no closing '>'")


def _drop_source_route(inner: str) -> str:
    if not inner.startswith("@"):
        return inner
    route, colon, mailbox = inner.partition(":")
    if not colon:
        raise AddressSyntaxError("source route without ':'")
    for hop in route.split(","):
        if not hop.startswith("@") or not is_domain(hop[1:]):
            raise AddressSyntaxError(f"invalid source route {route!r}")
    return mailbox


def parse_path(
    text: str, *, allow_null: bool = False, allow_postmaster: bool = False
) -> tuple[str, str]:
    """Parse a path at the start of ``text``; return ``(address, rest)``.

    ``rest`` is what follows the path (empty or starting with a space).
    ``allow_null`` accepts ``<>`` (reverse-path of MAIL); ``allow_postmaster``
    accepts ``<postmaster>`` (RCPT).
    """
    if text.startswith("<"):
        end = _path_end(text)
        inner, rest = text[1:end], text[end + 1 :]
        if inner == "":
            if not allow_null:
                raise AddressSyntaxError("the null path <> is not allowed here")
            address = ""
        else:
            address = _drop_source_route(inner)
            check_mailbox(address, allow_postmaster=allow_postmaster)
    else:
        # Lenient: a bare address ends at the first space.
        address, sep, tail = text.partition(" ")
        rest = sep + tail
        if not address:
            raise AddressSyntaxError("missing address")
        check_mailbox(address, allow_postmaster=allow_postmaster)
    if rest and not rest.startswith(" "):
        raise AddressSyntaxError(f"unexpected text after the path: {rest[:40]!r}")
    return address, rest


def format_path(address: str, *, allow_null: bool = False) -> str:
    """``<address>``, after checking that the server grammar will parse it back."""
    check_no_eol(address, "address")
    path = f"<{address}>"
    parsed, rest = parse_path(path, allow_null=allow_null, allow_postmaster=True)
    if rest or parsed != address:
        raise AddressSyntaxError(f"address does not round-trip: {address!r}")
    return path


def path_span(line: bytes) -> tuple[int, int] | None:
    """Where the mailbox of a raw MAIL or RCPT command line is: ``line[start:end]``.

    The reading of :func:`parse_mail_argument` and :func:`parse_rcpt_argument`
    (after :func:`~.command.parse_command_line`'s split), made total for a
    relay, which must look at a path without refusing the line: the argument
    starts with ``FROM:`` (MAIL) or ``TO:`` (RCPT) in any case, spaces may
    follow the colon, and the mailbox is what ``<`` and its closing ``>``
    enclose (quoted strings honoured; an unclosed ``<`` runs to the end of
    the line; a source route is kept) or a bare address up to the next space.
    None for any other verb, or an argument without its keyword.
    """
    found = _PATH_START.match(line)
    if found is None:
        return None
    start = found.end()
    if line[start : start + 1] == b"<":
        close = line.find(b">", start + 1)
        if close >= 0 and line.find(b'"', start + 1, close) < 0:
            return start + 1, close  # the common case, without copying the line
        return start + 1, _closing_bracket(strip_eol_bytes(line), start + 1)
    text = strip_eol_bytes(line)
    end = text.find(b" ", start)
    return start, len(text) if end < 0 else end


def path_mailbox(line: str) -> str:
    """The mailbox of a MAIL or RCPT command line as :func:`path_span` finds it, or ``""``."""
    raw = encode_text(line)
    span = path_span(raw)
    return "" if span is None else decode_text(raw[span[0] : span[1]])


# Verb, its SP, the blanks parse_command_line strips, the keyword, the spaces
# parse_path allows after it; IGNORECASE on bytes is ASCII-only, as verbs are.
_PATH_START = re.compile(rb"(?:MAIL [ \t]*FROM:|RCPT [ \t]*TO:) *", re.IGNORECASE)


def _closing_bracket(text: bytes, start: int) -> int:
    """Index of the ``>`` that closes a path whose inside starts at ``start`` (else the end)."""
    at = start
    while True:
        close = text.find(b">", at)
        quote = text.find(b'"', at)
        if quote < 0 or 0 <= close < quote:
            return len(text) if close < 0 else close
        at = quote + 1  # inside a quoted string: '>' is text, backslash escapes
        while at < len(text) and text[at] != 0x22:
            at += 2 if text[at] == 0x5C else 1
        at += 1
        if at >= len(text):
            return len(text)


# --- ESMTP parameters --------------------------------------------------------


def parse_parameters(text: str) -> ParamDict:
    """Parse ``" SIZE=10 BODY=8BITMIME"``; keywords are upper-cased, order kept.

    Raises :class:`ParameterSyntaxError` on a bad keyword, an empty value, a
    value with spaces, controls or non-ASCII, or a repeated keyword.
    """
    params: ParamDict = {}
    for token in text.split(" "):
        if not token:
            continue
        key, eq, value = token.partition("=")
        if not _KEYWORD.fullmatch(key):
            raise ParameterSyntaxError(f"bad parameter keyword {key[:40]!r}")
        if eq and (not value or not all(33 <= ord(c) <= 126 for c in value)):
            raise ParameterSyntaxError(f"bad value for parameter {key.upper()}")
        upper = key.upper()
        if upper in params:
            raise ParameterSyntaxError(f"parameter {upper} given twice")
        params[upper] = value if eq else None
    return params


def _require(params: ParamDict, key: str) -> str:
    value = params[key]
    if value is None:
        raise ParameterSyntaxError(f"parameter {key} needs a value")
    return value


def check_mail_parameters(params: ParamDict) -> ParamDict:
    """Validate the values of the known MAIL parameters; normalise keyword-like values.

    Unknown parameters pass through untouched: whether they are acceptable
    depends on what the server advertised, which is policy.
    """
    out = dict(params)
    if "SIZE" in out:
        size = _require(out, "SIZE")
        if not size.isascii() or not size.isdigit() or len(size) > 20:
            raise ParameterSyntaxError(f"SIZE must be a decimal number, got {size!r}")
    if "BODY" in out:
        body = _require(out, "BODY").upper()
        if body not in BODY_TYPES:
            raise ParameterSyntaxError(f"BODY must be 7BIT, 8BITMIME or BINARYMIME, got {body!r}")
        out["BODY"] = body
    if "RET" in out:
        ret = _require(out, "RET").upper()
        if ret not in ("FULL", "HDRS"):
            raise ParameterSyntaxError(f"RET must be FULL or HDRS, got {ret!r}")
        out["RET"] = ret
    if "ENVID" in out:
        xtext_decode(_require(out, "ENVID"))
    if "AUTH" in out:
        auth = _require(out, "AUTH")
        if auth != "<>":
            xtext_decode(auth)
    return out


def check_rcpt_parameters(params: ParamDict) -> ParamDict:
    """Validate NOTIFY and ORCPT (RFC 3461 §4.1, §4.2); see :func:`check_mail_parameters`."""
    out = dict(params)
    if "NOTIFY" in out:
        notify = _require(out, "NOTIFY").upper()
        items = notify.split(",")
        if notify != "NEVER" and (
            not set(items) <= {"SUCCESS", "FAILURE", "DELAY"} or len(set(items)) != len(items)
        ):
            raise ParameterSyntaxError(f"bad NOTIFY value {notify!r}")
        out["NOTIFY"] = notify
    if "ORCPT" in out:
        addr_type, semi, addr = _require(out, "ORCPT").partition(";")
        if not semi or not _KEYWORD.fullmatch(addr_type) or not addr:
            raise ParameterSyntaxError("ORCPT must be addr-type;xtext")
        xtext_decode(addr)
    return out


def parse_mail_argument(argument: str) -> PathArgument:
    """Parse the argument of MAIL: ``FROM:<path> [params]``.

    Raises :class:`AddressSyntaxError` for a bad path and
    :class:`SmtpSyntaxError`/:class:`ParameterSyntaxError` otherwise.
    """
    if argument[:5].upper() != "FROM:":
        raise SmtpSyntaxError("MAIL argument must start with FROM:")
    address, rest = parse_path(argument[5:].lstrip(" "), allow_null=True)
    return PathArgument(address, check_mail_parameters(parse_parameters(rest)))


def parse_rcpt_argument(argument: str) -> PathArgument:
    """Parse the argument of RCPT: ``TO:<path> [params]`` (``<>`` is refused)."""
    if argument[:3].upper() != "TO:":
        raise SmtpSyntaxError("RCPT argument must start with TO:")
    address, rest = parse_path(argument[3:].lstrip(" "), allow_postmaster=True)
    return PathArgument(address, check_rcpt_parameters(parse_parameters(rest)))


def format_parameters(params: Mapping[str, str | None] | None) -> str:
    """`` KEY=value KEY`` (leading space) or ``""``.

    Raises :class:`ParameterSyntaxError` (a ``ValueError``) for anything the
    receiving grammar would read differently, e.g. a value holding a space,
    which would smuggle in a second parameter.
    """
    if not params:
        return ""
    parts = []
    for key, value in params.items():
        if not _KEYWORD.fullmatch(key):
            raise ParameterSyntaxError(f"bad parameter keyword {key!r}")
        if value is None:
            parts.append(key)
            continue
        if not value or not all(33 <= ord(c) <= 126 for c in value):
            raise ParameterSyntaxError(f"bad value for parameter {key}: {value!r}")
        parts.append(f"{key}={value}")
    return " " + " ".join(parts)


# --- xtext (RFC 3461 §4) -----------------------------------------------------


def xtext_decode(text: str) -> str:
    """Decode xtext (``a+2Bb`` -> ``a+b``); raises :class:`ParameterSyntaxError`."""
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == "+":
            hexpair = text[i + 1 : i + 3]
            if not _XTEXT_HEX.fullmatch(hexpair):
                raise ParameterSyntaxError(f"bad xtext escape at {text[i : i + 3]!r}")
            out.append(int(hexpair, 16))
            i += 3
            continue
        if not 33 <= ord(c) <= 126 or c == "=":
            raise ParameterSyntaxError(f"character {c!r} is not allowed in xtext")
        out.append(ord(c))
        i += 1
    return out.decode("utf-8", "surrogateescape")


def xtext_encode(text: str) -> str:
    """Encode to xtext: ``+``, ``=`` and everything outside ``!``..``~`` become ``+HH``."""
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        if 33 <= byte <= 126 and byte not in (0x2B, 0x3D):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)
