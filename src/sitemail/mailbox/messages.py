"""What the store learns from a message's bytes, in one streaming pass.

:class:`MessageScanner` is fed the raw RFC 5322 message in chunks of any
size and keeps only bounded state: the header blocks (capped like a receive
connector's MaxHeaderSize), the MIME boundaries that are open, and the first
few kilobytes of the first text parts for the preview and the search text.
It never holds a whole message, so a 10 MB delivery costs the same memory as
a 1 KB one.  It records where each MIME part's header and body lie in the raw
bytes, so a part is later read back as a byte range of the stored message
(:class:`TransferDecoder` undoes its Content-Transfer-Encoding in chunks).

Message text is untrusted: every header is decoded leniently (RFC 2047 and
RFC 2231 where present, raw 8-bit bytes as UTF-8 with replacement), and
malformed structure is tolerated the way mail readers tolerate it, never
raised.
"""

from __future__ import annotations

import binascii
import contextlib
import email.utils
import html.parser
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import Compat32

from sitemail.mailbox.records import Address, MimePart

#: Header bytes kept per MIME entity (Exchange 2010 MaxHeaderSize default, spec 1.2).
MAX_HEADER_BYTES = 256 * 1024
#: A line longer than this is handled in pieces (it cannot be a MIME boundary line).
MAX_LINE_BYTES = 8 * 1024
#: Encoded bytes kept of the first text/plain and the first text/html part.
TEXT_CAPTURE_BYTES = 128 * 1024
SEARCH_TEXT_CHARS = 32 * 1024
PREVIEW_CHARS = 255
#: Bounds on the MIME tree: anything deeper or wider is treated as body bytes.
MAX_PARTS = 1000
MAX_DEPTH = 32
#: Bounds on what a summary keeps of address and identifier headers.
MAX_ADDRESSES = 1000
MAX_ID_CHARS = 998


class _LenientPolicy(Compat32):
    """Compat32, except that 8-bit header bytes read as UTF-8 text (RFC 6532 style).

    Plain Compat32 wraps such values in ``Header`` objects that print as
    replacement characters and that ``get_param`` cannot parse.
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        return _raw(value)


_HEADER_PARSER = BytesHeaderParser(policy=_LenientPolicy())
_WS = re.compile(r"\s+")
_FOLD = re.compile(r"\r?\n(?=[ \t])")


@dataclass(frozen=True)
class ParsedMessage:
    """Everything the store keeps about a message besides its bytes."""

    size: int
    header_size: int
    subject: str
    from_address: Address | None
    to: list[Address]
    cc: list[Address]
    bcc: list[Address]
    reply_to: list[Address]
    sent_at: datetime | None
    internet_message_id: str | None
    in_reply_to: str | None
    has_attachments: bool
    preview: str
    search_text: str
    structure: MimePart


@dataclass
class _Entity:
    part_id: str
    header_offset: int
    depth: int
    header: bytearray = field(default_factory=bytearray)
    parsed: Message | None = None
    in_header: bool = True
    body_offset: int = -1
    body_end: int = -1
    lines: int = 0
    boundary: bytes | None = None  # set for a multipart whose boundary is open
    closed: bool = False  # its close-delimiter was seen (the rest is epilogue)
    children: list[_Entity] = field(default_factory=list)
    capture: bytearray | None = None  # encoded text kept for preview/search
    facts: _Facts | None = None  # what its header says of its content, read once


@dataclass(frozen=True, slots=True)
class _Facts:
    """A part's Content-* header values: each parse of a header parameter costs the email
    package a pass over the header, and a part needs them in two places."""

    content_type: str
    params: dict[str, str]
    charset: str | None
    disposition: str | None
    filename: str | None
    transfer_encoding: str


def _facts(header: Message) -> _Facts:
    return _Facts(
        _content_type(header),
        _params(header),
        _charset(header),
        _disposition(header),
        _filename(header),
        _transfer_encoding(header),
    )


class MessageScanner:
    """Feed a message in chunks with :meth:`feed`; :meth:`close` gives its summary."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._offset = 0  # absolute offset of self._buf[0]
        self._at_line_start = True
        self._prev_eol = 0  # length of the line ending of the previous line
        self._root = _Entity(part_id="", header_offset=0, depth=0)
        self._path: list[_Entity] = [self._root]  # root ... current entity
        self._parts = 1
        self._plain: _Entity | None = None
        self._html: _Entity | None = None
        self._closed = False

    # ------------------------------------------------------------------ input

    def feed(self, data: bytes) -> None:
        if self._closed:
            raise ValueError("scanner already closed")
        self._buf += data
        buf = self._buf
        start = 0
        while True:
            if not self._path[-1].in_header and not self._delimiter_open():
                # Body with no header to read and no delimiter to look for (a single
                # part, the usual delivery): its complete lines are counted and captured
                # at once, not one Python call each; the same result as line by line.
                end = buf.rfind(b"\n", start) + 1
                if end:
                    self._bulk_body(buf, start, end)
                    start = end
                break
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            self._line(bytes(buf[start : nl + 1]), self._offset + start)
            start = nl + 1
        if start:
            del self._buf[:start]
            self._offset += start
        if len(self._buf) > MAX_LINE_BYTES:
            # A very long line (binary content, an unfolded header): pass it on
            # in pieces; the rest of it is not at a line start.
            piece = bytes(self._buf)
            self._line(piece, self._offset, complete=False)
            self._offset += len(piece)
            self._buf.clear()

    def close(self) -> ParsedMessage:
        if self._closed:
            raise ValueError("scanner already closed")
        if self._buf:
            self._line(bytes(self._buf), self._offset, complete=False)
            self._offset += len(self._buf)
            self._buf.clear()
        self._closed = True
        size = self._offset
        for entity in self._path:
            if entity.in_header:
                self._end_header(entity, size)
            if entity.body_end < 0:
                entity.body_end = size
        root = self._root
        header = root.parsed or Message()
        structure = self._part(root)
        plain = self._text_of(self._plain)
        html_text = _html_to_text(self._text_of(self._html)) if self._html else ""
        text = _WS.sub(" ", plain or html_text).strip()
        return ParsedMessage(
            size=size,
            header_size=root.body_offset,
            subject=_unfold_text(_decoded(header.get("Subject"))),
            from_address=next(iter(_addresses(header, "From")), None),
            to=_addresses(header, "To"),
            cc=_addresses(header, "Cc"),
            bcc=_addresses(header, "Bcc"),
            reply_to=_addresses(header, "Reply-To"),
            sent_at=_date(header.get("Date")),
            internet_message_id=_identifier(header.get("Message-ID")),
            in_reply_to=_identifier(header.get("In-Reply-To")),
            has_attachments=any(_is_attachment(p) for p in structure.walk()),
            preview=text[:PREVIEW_CHARS],
            search_text=text[:SEARCH_TEXT_CHARS],
            structure=structure,
        )

    # ------------------------------------------------------------------ lines

    def _line(self, line: bytes, offset: int, *, complete: bool = True) -> None:
        at_start = self._at_line_start
        self._at_line_start = complete
        current = self._path[-1]
        if current.in_header:
            if at_start and line in (b"\r\n", b"\n"):
                self._end_header(current, offset + len(line))
                self._prev_eol = 0  # the blank line ends the header, not a body line
                return
            if at_start and not _looks_like_header(line):
                # No blank line before the body (a common defect): the body
                # starts here, and this line may already be a boundary.
                self._end_header(current, offset)
            else:
                if len(current.header) < MAX_HEADER_BYTES:
                    current.header += line[: MAX_HEADER_BYTES - len(current.header)]
                return
        if at_start and line.startswith(b"--") and self._boundary(line, offset):
            return
        self._body(self._path[-1], line, complete=complete)

    def _delimiter_open(self) -> bool:
        return any(e.boundary is not None and not e.closed for e in self._path)

    def _bulk_body(self, buf: bytearray, start: int, end: int) -> None:
        """:meth:`_body` of the complete lines ``buf[start:end]`` of the current entity."""
        entity = self._path[-1]
        if entity.boundary is None:
            entity.lines += buf.count(b"\n", start, end)
            capture = entity.capture
            if capture is not None and len(capture) < TEXT_CAPTURE_BYTES:
                capture += buf[start : min(end, start + TEXT_CAPTURE_BYTES - len(capture))]
        self._prev_eol = 2 if end - start >= 2 and buf[end - 2] == 0x0D else 1
        self._at_line_start = True

    def _body(self, entity: _Entity, line: bytes, *, complete: bool) -> None:
        if entity.boundary is None:
            if complete:
                entity.lines += 1
            if entity.capture is not None and len(entity.capture) < TEXT_CAPTURE_BYTES:
                entity.capture += line[: TEXT_CAPTURE_BYTES - len(entity.capture)]
        if complete:
            self._prev_eol = 2 if line.endswith(b"\r\n") else 1
        else:
            self._prev_eol = 0

    def _boundary(self, line: bytes, offset: int) -> bool:
        """Handle ``line`` if it is a delimiter of an open multipart; say whether it was."""
        text = line.rstrip(b"\r\n").rstrip(b" \t")
        for index in range(len(self._path) - 1, -1, -1):
            owner = self._path[index]
            if owner.boundary is None or owner.closed:
                continue
            marker = b"--" + owner.boundary
            if text == marker:
                final = False
            elif text == marker + b"--":
                final = True
            else:
                continue
            # The line break before a delimiter belongs to the delimiter (RFC 2046 5.1.1).
            for open_entity in self._path[index + 1 :]:
                if open_entity.in_header:
                    self._end_header(open_entity, offset)
                elif open_entity is self._path[-1] and self._prev_eol and open_entity.lines:
                    open_entity.lines -= 1  # its last line break went to the delimiter
                if open_entity.body_end < 0:
                    open_entity.body_end = max(open_entity.body_offset, offset - self._prev_eol)
            del self._path[index + 1 :]
            self._prev_eol = 0
            if final:
                owner.closed = True
            elif self._parts < MAX_PARTS:
                self._parts += 1
                number = len(owner.children) + 1
                part_id = f"{owner.part_id}.{number}" if owner.part_id else str(number)
                child = _Entity(
                    part_id=part_id, header_offset=offset + len(line), depth=owner.depth + 1
                )
                owner.children.append(child)
                self._path.append(child)
            else:
                # Too many parts: what follows is body of the multipart itself.
                owner.closed = True
            return True
        return False

    def _end_header(self, entity: _Entity, body_offset: int) -> None:
        entity.in_header = False
        entity.body_offset = body_offset
        parsed = _parse_header(bytes(entity.header))
        entity.parsed = parsed
        entity.header = bytearray()  # the parsed form is all that is needed now
        facts = entity.facts = _facts(parsed)
        ctype = facts.content_type
        if entity is self._root and not ctype.startswith("multipart/"):
            entity.part_id = "1"
        if ctype.startswith("multipart/") and entity.depth < MAX_DEPTH:
            boundary = _param(parsed, "boundary")
            if boundary:
                entity.boundary = boundary.encode("utf-8", "surrogateescape")
                return
        if facts.disposition != "attachment" and not facts.filename:
            if ctype == "text/plain" and self._plain is None:
                self._plain = entity
                entity.capture = bytearray()
            elif ctype == "text/html" and self._html is None:
                self._html = entity
                entity.capture = bytearray()

    # ----------------------------------------------------------------- output

    def _part(self, entity: _Entity) -> MimePart:
        parsed = entity.parsed or Message()
        facts = entity.facts or _facts(parsed)
        ctype = facts.content_type
        if entity.boundary is None and ctype.startswith("multipart/"):
            # A multipart without a usable boundary is shown as what it is: opaque text.
            ctype = "text/plain"
        return MimePart(
            part_id=entity.part_id,
            content_type=ctype,
            params=dict(facts.params),
            charset=facts.charset,
            disposition=facts.disposition,
            filename=facts.filename,
            content_id=_identifier(parsed.get("Content-ID")),
            description=_unfold(_decoded(parsed.get("Content-Description"))) or None,
            transfer_encoding=facts.transfer_encoding,
            header_offset=entity.header_offset,
            body_offset=entity.body_offset,
            body_size=max(0, entity.body_end - entity.body_offset),
            body_lines=entity.lines,
            children=[self._part(child) for child in entity.children],
        )

    def _text_of(self, entity: _Entity | None) -> str:
        if entity is None or entity.capture is None:
            return ""
        facts = entity.facts or _facts(entity.parsed or Message())
        decoder = TransferDecoder(facts.transfer_encoding)
        data = decoder.feed(bytes(entity.capture)) + decoder.flush()
        return decode_text(data, facts.charset)


# --------------------------------------------------------------------- decoding


class TransferDecoder:
    """Undo a Content-Transfer-Encoding on a stream of chunks, in bounded memory.

    Base64 is decoded four significant characters at a time (garbage
    characters are skipped, as readers do); quoted-printable a whole line at a
    time, since a soft line break joins a line to the next.  Other encodings
    (7bit, 8bit, binary, unknown ones) pass through unchanged.
    """

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding.strip().lower()
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        if self.encoding == "base64":
            clean = self._pending + _BASE64_JUNK.sub(b"", data)
            cut = len(clean) - len(clean) % 4
            self._pending = clean[cut:]
            return _b64(clean[:cut])
        if self.encoding == "quoted-printable":
            data = self._pending + data
            cut = data.rfind(b"\n") + 1
            self._pending = data[cut:]
            return binascii.a2b_qp(data[:cut])
        return data

    def flush(self) -> bytes:
        pending, self._pending = self._pending, b""
        if self.encoding == "base64":
            # A truncated final group: pad it so the bytes it does carry decode.
            return _b64(pending + b"=" * (-len(pending) % 4)) if len(pending) > 1 else b""
        if self.encoding == "quoted-printable":
            return binascii.a2b_qp(pending)
        return pending


_BASE64_JUNK = re.compile(rb"[^A-Za-z0-9+/]")


def _b64(data: bytes) -> bytes:
    out = bytearray()
    # Padding inside the stream (concatenated base64 blocks) is dropped by the
    # junk filter, so every group of four decodes on its own.
    for start in range(0, len(data), 64 * 1024):
        chunk = data[start : start + 64 * 1024]
        try:
            out += binascii.a2b_base64(chunk)
        except binascii.Error:
            break
    return bytes(out)


def decode_text(data: bytes, charset: str | None) -> str:
    """Bytes of a text part as text: its charset if Python knows it, else UTF-8; never raises."""
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            return data.decode(candidate, "replace")
        except LookupError:
            continue
    return data.decode("utf-8", "replace")


class _HtmlText(html.parser.HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag in ("br", "p", "div", "tr", "li"):
            self.out.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.out.append(data)


def _html_to_text(markup: str) -> str:
    parser = _HtmlText()
    with contextlib.suppress(Exception):  # html.parser is lenient, but the input is hostile
        parser.feed(markup)
        parser.close()
    return "".join(parser.out)


# ---------------------------------------------------------------------- headers


def _looks_like_header(line: bytes) -> bool:
    if line[:1] in (b" ", b"\t"):
        return True  # a folded continuation
    name, colon, _ = line.partition(b":")
    return bool(colon) and bool(name) and all(33 <= c <= 126 for c in name)


def _parse_header(data: bytes) -> Message:
    try:
        return _HEADER_PARSER.parsebytes(data)
    except Exception:  # the email package raises odd things on hostile input
        return Message()


def _raw(value: object) -> str:
    """A header value as text: 8-bit bytes read as UTF-8, never surrogates."""
    if value is None:
        return ""
    text = str(value)
    try:
        return text.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8", "replace")


def _decoded(value: object) -> str:
    """A header value with RFC 2047 encoded words decoded."""
    text = _raw(value)
    if "=?" not in text:
        return text
    try:
        return _raw(str(make_header(decode_header(text))))
    except Exception:
        return text


def _unfold_text(text: str) -> str:
    """RFC 5322 unfolding only (a line break before white space goes): a subject keeps
    the spaces it was written with, as Exchange's does."""
    return _FOLD.sub("", text).replace("\r", "").replace("\n", "").strip()


def _unfold(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _addresses(header: Message, name: str) -> list[Address]:
    values = [_raw(v) for v in header.get_all(name, [])]
    if not values:
        return []
    try:
        pairs = email.utils.getaddresses(values)
    except Exception:
        return []
    out: list[Address] = []
    for display, address in pairs[:MAX_ADDRESSES]:
        display = _unfold(_decoded(display))[:MAX_ID_CHARS]
        address = address.strip()[:MAX_ID_CHARS]
        if display or address:
            out.append(Address(name=display, address=address))
    return out


def _date(value: object) -> datetime | None:
    text = _raw(value).strip()
    if not text:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _identifier(value: object) -> str | None:
    text = _unfold(_raw(value))
    if not text:
        return None
    match = re.search(r"<[^<>\s]*>", text)
    return (match.group(0) if match else text)[:MAX_ID_CHARS]


def _content_type(header: Message) -> str:
    try:
        return _raw(header.get_content_type()).lower()
    except Exception:
        return "text/plain"


def _param(header: Message, name: str) -> str | None:
    try:
        value = header.get_param(name)
    except Exception:
        return None
    if value is None:
        return None
    if isinstance(value, tuple):
        value = email.utils.collapse_rfc2231_value(value)
    return _raw(value)


def _params(header: Message) -> dict[str, str]:
    try:
        pairs = header.get_params() or []
    except Exception:
        return {}
    out: dict[str, str] = {}
    for key, value in pairs[1:][:64]:  # the first pair is the type itself
        if isinstance(value, tuple):
            value = email.utils.collapse_rfc2231_value(value)
        out[_raw(key).lower()[:256]] = _raw(value)[:MAX_ID_CHARS]
    return out


def _charset(header: Message) -> str | None:
    value = _param(header, "charset")
    return value.strip().lower()[:64] or None if value else None


def _disposition(header: Message) -> str | None:
    try:
        value = header.get_content_disposition()
    except Exception:
        return None
    return _raw(value).lower()[:64] if value else None


def _filename(header: Message) -> str | None:
    try:
        value = header.get_filename() or header.get_param("name")
    except Exception:
        return None
    if value is None:
        return None
    if isinstance(value, tuple):
        value = email.utils.collapse_rfc2231_value(value)
    name = _unfold(_decoded(value))
    return name[:1024] or None


def _transfer_encoding(header: Message) -> str:
    value = _raw(header.get("Content-Transfer-Encoding")).strip().lower()
    return value[:64] or "7bit"


def _is_attachment(part: MimePart) -> bool:
    if part.children or part.is_multipart:
        return False
    if part.disposition == "attachment" or part.content_type == "message/rfc822":
        return True
    # A named part that is not explicitly inline (inline images of an HTML
    # message carry Content-Disposition: inline or a Content-ID).
    return part.filename is not None and part.disposition != "inline" and not part.content_id


def parse_message(data: bytes) -> ParsedMessage:
    """Parse a whole message held in memory (tests, small messages)."""
    scanner = MessageScanner()
    scanner.feed(data)
    return scanner.close()
