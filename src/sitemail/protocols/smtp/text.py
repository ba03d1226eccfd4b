"""Bytes <-> text for SMTP lines.

SMTP lines are ASCII in practice, but the network may send anything.  We
decode as UTF-8 with ``surrogateescape`` so that decoding never fails and
:func:`encode_text` gives back the very same bytes: a relay or a log reader
never loses or alters an octet it did not understand.
"""

from __future__ import annotations

CRLF = b"\r\n"


def decode_text(data: bytes) -> str:
    """Decode wire bytes to ``str`` without loss (see module docstring)."""
    return data.decode("utf-8", "surrogateescape")


def encode_text(text: str) -> bytes:
    """Inverse of :func:`decode_text`."""
    return text.encode("utf-8", "surrogateescape")


def strip_eol(line: str) -> str:
    """Remove one line terminator (CRLF or a bare LF) from the end of ``line``."""
    if line.endswith("\r\n"):
        return line[:-2]
    if line.endswith("\n"):
        return line[:-1]
    return line


def check_no_eol(text: str, what: str) -> None:
    """Refuse CR or LF inside text that will become one protocol line.

    This is the guard against command and reply injection: a caller that
    passes an address or a reply text with a line break would otherwise make
    us write two protocol lines where it meant one.
    """
    if "\r" in text or "\n" in text:
        raise ValueError(f"{what} must not contain CR or LF: {text!r}")


def strip_eol_bytes(raw: bytes) -> bytes:
    """Remove one CRLF or bare LF terminator from a raw line."""
    if raw.endswith(b"\r\n"):
        return raw[:-2]
    if raw.endswith(b"\n"):
        return raw[:-1]
    return raw


def split_eol_bytes(raw: bytes) -> tuple[bytes, bytes]:
    """Split a raw line into its text and its terminator (CRLF, a bare LF or nothing).

    A relay that rewrites a line in place needs the terminator back as it came.
    """
    text = strip_eol_bytes(raw)
    return text, raw[len(text) :]


def ascii_upper(text: str) -> str:
    """Upper-case the ASCII letters only.

    SMTP verbs and keywords are ASCII and compared without regard to ASCII
    case (RFC 5321 §2.4); ``str.upper`` would also map ``ı`` to ``I`` and
    ``ſ`` to ``S``, making ``MAıL`` a MAIL on one side and garbage on a
    byte-oriented one.
    """
    if text.isascii():
        return text.upper()
    return text.translate(_ASCII_UPPER)


_ASCII_UPPER = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}
