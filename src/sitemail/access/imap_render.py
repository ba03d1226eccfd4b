"""IMAP4 FETCH data from the store's records: ENVELOPE, BODY/BODYSTRUCTURE, header fields, flags.

Pure functions (RFC 3501 section 7.4.2).  The MIME structure is the one the
store computed when the message arrived (:class:`~sitemail.mailbox.records.MimePart`,
with byte offsets into the raw message); an attached message
(``message/rfc822``), which the store keeps as one leaf, is parsed here from
its bytes with the store's own scanner (:func:`embedded_message`), so that
BODYSTRUCTURE can describe it as RFC 3501 asks (its envelope and body).
ENVELOPE strings are the header fields as sent (encoded words are left to
the client, as the RFC says).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses

from sitemail.mailbox.messages import MessageScanner
from sitemail.mailbox.records import FLAG_NAMES, Flags, MimePart
from sitemail.protocols.imap_syntax import imap_list, nstring, quote

#: How deep attached messages inside attached messages are described.
MAX_EMBEDDED_DEPTH = 3

_SYSTEM_FLAGS = {name: "\\" + name.title() for name in FLAG_NAMES}
_FLAG_NAMES = {v.casefold(): k for k, v in _SYSTEM_FLAGS.items()}


# ------------------------------------------------------------------ flags


def format_flags(flags: Flags) -> bytes:
    """``(\\Seen \\Flagged)``."""
    return imap_list([_SYSTEM_FLAGS[name] for name in flags.names()])


def store_flag_names(imap_flags: Sequence[str]) -> list[str]:
    """The store's names of the system flags among ``imap_flags`` (keywords and \\Recent
    are not kept: PERMANENTFLAGS does not offer them)."""
    out = []
    for flag in imap_flags:
        name = _FLAG_NAMES.get(flag.casefold())
        if name is not None and name not in out:
            out.append(name)
    return out


ALL_FLAGS = b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft)"


# ------------------------------------------------------------------ headers


def header_end(data: bytes) -> int:
    """Offset after the empty line ending the header section (or the length of ``data``)."""
    offset = 0
    while offset < len(data):
        lf = data.find(b"\n", offset)
        if lf < 0:
            return len(data)
        line = data[offset : lf + 1]
        offset = lf + 1
        if line in (b"\r\n", b"\n"):
            return offset
    return len(data)


def _fields(header: bytes) -> list[bytes]:
    fields: list[bytes] = []
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line
        else:
            fields.append(line)
    return fields


def header_fields(header: bytes, names: Sequence[str], *, exclude: bool) -> bytes:
    """BODY[HEADER.FIELDS (...)] / [HEADER.FIELDS.NOT (...)]: the fields, then an empty line."""
    wanted = {n.casefold() for n in names}
    kept = []
    for f in _fields(header):
        name = f.partition(b":")[0].strip().decode("ascii", errors="replace").casefold()
        if (name in wanted) != exclude:
            kept.append(f if f.endswith(b"\n") else f + b"\r\n")
    return b"".join(kept) + b"\r\n"


# ------------------------------------------------------------------ envelope


def _parse_header(header: bytes) -> Message:
    return BytesHeaderParser(policy=policy.compat32).parsebytes(header)


def _raw(msg: Message, name: str) -> bytes | None:
    value = msg.get(name)
    if value is None:
        return None
    text = str(value)
    return " ".join(text.split()).encode("utf-8", errors="surrogateescape")


def _address_list(msg: Message, name: str) -> bytes:
    values = msg.get_all(name)
    if not values:
        return b"NIL"
    items = []
    for display, address in getaddresses([str(v) for v in values]):
        if not address and not display:
            continue
        mailbox, at, host = address.rpartition("@")
        if not at:
            mailbox, host = address, ""
        items.append(
            imap_list(
                [
                    nstring(_encode(display) if display else None),
                    b"NIL",
                    nstring(_encode(mailbox) if mailbox else None),
                    nstring(_encode(host) if host else None),
                ]
            )
        )
    return b"(" + b"".join(items) + b")" if items else b"NIL"


def _encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def envelope(header: bytes) -> bytes:
    """ENVELOPE of a message whose header section is ``header``."""
    msg = _parse_header(header)
    sender_field = "Sender" if msg.get("Sender") else "From"
    reply_field = "Reply-To" if msg.get("Reply-To") else "From"
    return imap_list(
        [
            nstring(_raw(msg, "Date")),
            nstring(_raw(msg, "Subject")),
            _address_list(msg, "From"),
            _address_list(msg, sender_field),
            _address_list(msg, reply_field),
            _address_list(msg, "To"),
            _address_list(msg, "Cc"),
            _address_list(msg, "Bcc"),
            nstring(_raw(msg, "In-Reply-To")),
            nstring(_raw(msg, "Message-ID")),
        ]
    )


# ------------------------------------------------------------------ body structure


@dataclass(frozen=True)
class EmbeddedMessage:
    """An attached message: its header section, its structure, and the messages it attaches."""

    header: bytes
    structure: MimePart
    size: int
    children: dict[str, EmbeddedMessage] = field(default_factory=dict)


def rfc822_parts(structure: MimePart) -> list[MimePart]:
    return [p for p in structure.walk() if p.content_type == "message/rfc822" and not p.children]


def embedded_message(data: bytes, depth: int = 1) -> EmbeddedMessage:
    """Parse an attached message's bytes (and those it attaches, to a bounded depth)."""
    scanner = MessageScanner()
    scanner.feed(data)
    parsed = scanner.close()
    children: dict[str, EmbeddedMessage] = {}
    if depth < MAX_EMBEDDED_DEPTH:
        for part in rfc822_parts(parsed.structure):
            inner = data[part.body_offset : part.body_offset + part.body_size]
            children[part.part_id] = embedded_message(inner, depth + 1)
    return EmbeddedMessage(data[: parsed.header_size], parsed.structure, len(data), children)


def body_structure(
    part: MimePart,
    embedded: dict[str, EmbeddedMessage] | None = None,
    *,
    extensible: bool = True,
) -> bytes:
    """BODYSTRUCTURE (``extensible``) or BODY of a part; ``embedded``: attached messages by
    part id, as :func:`embedded_message` parsed them."""
    embedded = embedded or {}
    if part.children or part.is_multipart:
        children = part.children or [_EMPTY_TEXT]
        inner = b"".join(body_structure(c, embedded, extensible=extensible) for c in children)
        items = [inner, quote(_subtype(part).upper())]
        if extensible:
            items += [_params(part, with_charset=False), _disposition(part), b"NIL", b"NIL"]
        return b"(" + b" ".join(items) + b")"
    maintype, subtype = _types(part)
    items = [
        quote(maintype.upper()),
        quote(subtype.upper()),
        _params(part, with_charset=maintype == "text"),
        nstring(part.content_id),
        nstring(part.description),
        quote(part.transfer_encoding.upper()),
        str(part.body_size).encode(),
    ]
    attached = embedded.get(part.part_id)
    if part.content_type == "message/rfc822" and attached is not None:
        items += [
            envelope(attached.header),
            body_structure(attached.structure, attached.children, extensible=extensible),
            str(part.body_lines).encode(),
        ]
    elif maintype == "text":
        items.append(str(part.body_lines).encode())
    if extensible:
        items += [b"NIL", _disposition(part), b"NIL", b"NIL"]
    return imap_list(items)


_EMPTY_TEXT = MimePart(
    part_id="1",
    content_type="text/plain",
    header_offset=0,
    body_offset=0,
    body_size=0,
    body_lines=0,
)


def _types(part: MimePart) -> tuple[str, str]:
    maintype, _, subtype = part.content_type.partition("/")
    return (maintype or "text"), (subtype or "plain")


def _subtype(part: MimePart) -> str:
    return part.content_type.partition("/")[2] or "mixed"


def _params(part: MimePart, *, with_charset: bool) -> bytes:
    params = dict(part.params)
    if with_charset and "charset" not in params:
        params["charset"] = part.charset or "us-ascii"
    if not params:
        return b"NIL"
    return imap_list([b" ".join((quote(k.upper()), quote(v))) for k, v in params.items()])


def _disposition(part: MimePart) -> bytes:
    if not part.disposition:
        return b"NIL"
    params = imap_list([quote("FILENAME"), quote(part.filename)]) if part.filename else b"NIL"
    return imap_list([quote(part.disposition.upper()), params])
