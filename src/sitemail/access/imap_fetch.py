"""FETCH and SEARCH over a selected folder, answered from the store API.

A message's bytes are read in ranges (a header, one MIME part) unless the
message is small or the client asks for all of it; ENVELOPE and
BODYSTRUCTURE come from the structure the store computed at delivery
(:mod:`.imap_render`).  SEARCH evaluates RFC 3501's keys: flags, sequence
numbers and UIDs from the session's view of the folder; sizes, dates and
address fields from the folder's message summaries; BODY/TEXT through the
store's full-text search; HEADER and BCC from each message's header.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date

from sitemail.access.imap_render import (
    EmbeddedMessage,
    body_structure,
    embedded_message,
    envelope,
    format_flags,
    header_end,
    header_fields,
    rfc822_parts,
)
from sitemail.mailbox.errors import MessageNotFound, PartNotFound
from sitemail.mailbox.records import MessageDetail, MessageSummary, UidEntry
from sitemail.mailbox.store_client import StoreClient
from sitemail.protocols.imap_syntax import (
    FetchAttribute,
    SearchKey,
    SequenceSet,
    format_internal_date,
    literal,
)

#: Messages this small are read whole once, whatever the items asked.
SMALL_MESSAGE = 256 * 1024
#: Summaries listed per store request.
PAGE = 1000


class MessageData:
    """One message's detail and bytes, read as the FETCH items need them."""

    def __init__(self, store: StoreClient, mailbox: str, entry: UidEntry) -> None:
        self.store = store
        self.mailbox = mailbox
        self.entry = entry
        self._detail: MessageDetail | None = None
        self._raw: bytes | None = None
        self._embedded: dict[str, EmbeddedMessage] | None = None

    async def detail(self) -> MessageDetail:
        if self._detail is None:
            self._detail = await self.store.get_message(self.mailbox, self.entry.message_id)
        return self._detail

    async def raw(self) -> bytes:
        if self._raw is None:
            self._raw = await self.store.read_raw(self.mailbox, self.entry.message_id)
        return self._raw

    async def range(self, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        if self._raw is None and (await self.detail()).size <= SMALL_MESSAGE:
            await self.raw()
        if self._raw is not None:
            return self._raw[start : start + length]
        return await self.store.read_raw(
            self.mailbox, self.entry.message_id, start=start, length=length
        )

    async def header(self) -> bytes:
        return await self.range(0, (await self.detail()).header_size)

    async def text(self) -> bytes:
        detail = await self.detail()
        return await self.range(detail.header_size, detail.size - detail.header_size)

    async def embedded(self) -> dict[str, EmbeddedMessage]:
        if self._embedded is None:
            found = {}
            for part in rfc822_parts((await self.detail()).structure):
                data = await self.range(part.body_offset, part.body_size)
                found[part.part_id] = embedded_message(data)
            self._embedded = found
        return self._embedded


async def fetch_item(data: MessageData, item: FetchAttribute) -> bytes:
    """``NAME value`` of one FETCH item."""
    name = item.response_name.encode()
    if item.name == "FLAGS":
        return name + b" " + format_flags(data.entry.flags)
    if item.name == "UID":
        return name + b" " + str(data.entry.uid).encode()
    detail = await data.detail()
    if item.name == "RFC822.SIZE":
        return name + b" " + str(detail.size).encode()
    if item.name == "INTERNALDATE":
        return name + b" " + format_internal_date(detail.received_at).encode()
    if item.name == "ENVELOPE":
        return name + b" " + envelope(await data.header())
    if item.name in ("BODYSTRUCTURE", "BODY") and item.section is None:
        extensible = item.name == "BODYSTRUCTURE"
        structure = body_structure(detail.structure, await data.embedded(), extensible=extensible)
        return name + b" " + structure
    if item.name == "RFC822":
        return name + b" " + literal(await data.raw())
    if item.name == "RFC822.HEADER":
        return name + b" " + literal(await data.header())
    if item.name == "RFC822.TEXT":
        return name + b" " + literal(await data.text())
    content = await section_bytes(data, item)
    if item.partial is not None:
        start, count = item.partial
        content = content[start : start + count]
    return name + b" " + literal(content)


async def section_bytes(data: MessageData, item: FetchAttribute) -> bytes:
    section = item.section
    assert section is not None
    detail = await data.detail()
    if not section.part:
        return await _message_section(
            data.header, data.raw, data.text, section.specifier, section.fields
        )
    part_id = ".".join(str(p) for p in section.part)
    part = detail.structure.find(part_id)
    if part is None:
        return b""
    if section.specifier == "MIME":
        return await data.range(part.header_offset, part.body_offset - part.header_offset)
    body = await data.range(part.body_offset, part.body_size)
    if not section.specifier:
        return body
    if part.content_type != "message/rfc822":
        return b""
    # HEADER/TEXT of an attached message: its own header section and body.
    end = header_end(body)

    async def head() -> bytes:
        return body[:end]

    async def whole() -> bytes:
        return body

    async def text() -> bytes:
        return body[end:]

    return await _message_section(head, whole, text, section.specifier, section.fields)


async def _message_section(
    head: Callable[[], Awaitable[bytes]],
    whole: Callable[[], Awaitable[bytes]],
    text: Callable[[], Awaitable[bytes]],
    specifier: str,
    fields: tuple[str, ...],
) -> bytes:
    if specifier == "":
        return await whole()
    if specifier == "HEADER":
        return await head()
    if specifier == "TEXT":
        return await text()
    return header_fields(await head(), fields, exclude=specifier == "HEADER.FIELDS.NOT")


async def fetch_message(
    store: StoreClient, mailbox: str, seq: int, entry: UidEntry, items: tuple[FetchAttribute, ...]
) -> bytes | None:
    """``<seq> FETCH (...)`` for one message, or None if it is gone from the store."""
    data = MessageData(store, mailbox, entry)
    try:
        parts = [await fetch_item(data, item) for item in items]
    except (MessageNotFound, PartNotFound):
        return None
    return str(seq).encode() + b" FETCH (" + b" ".join(parts) + b")"


# ------------------------------------------------------------------ SEARCH


@dataclass
class SearchContext:
    """What SEARCH keys are evaluated against, loaded only when a key needs it."""

    store: StoreClient
    mailbox: str
    folder_id: int
    uids: list[int]
    entries: dict[int, UidEntry]
    summaries: dict[int, MessageSummary] | None = None
    text_hits: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    headers: dict[int, bytes] = field(default_factory=dict)

    async def summary(self, entry: UidEntry) -> MessageSummary | None:
        if self.summaries is None:
            found: dict[int, MessageSummary] = {}
            offset = 0
            while True:
                page = await self.store.list_messages(
                    self.mailbox, self.folder_id, offset=offset, limit=PAGE, oldest_first=True
                )
                found.update((m.id, m) for m in page.items)
                offset += len(page.items)
                if not page.items or offset >= page.total:
                    break
            self.summaries = found
        return self.summaries.get(entry.message_id)

    async def text_match(self, field_name: str, query: str) -> set[int]:
        key = (field_name, query.casefold())
        if key not in self.text_hits:
            hits: set[int] = set()
            if query.strip():
                offset = 0
                while True:
                    page = await self.store.search(
                        self.mailbox,
                        query,
                        folder=self.folder_id,
                        fields=[field_name],
                        offset=offset,
                        limit=PAGE,
                    )
                    hits.update(m.id for m in page.items)
                    offset += len(page.items)
                    if not page.items or offset >= page.total:
                        break
            self.text_hits[key] = hits
        return self.text_hits[key]

    async def header(self, entry: UidEntry) -> bytes:
        if entry.message_id not in self.headers:
            data = MessageData(self.store, self.mailbox, entry)
            try:
                self.headers[entry.message_id] = await data.header()
            except MessageNotFound:
                self.headers[entry.message_id] = b""
        return self.headers[entry.message_id]


async def search(context: SearchContext, keys: tuple[SearchKey, ...]) -> list[tuple[int, int]]:
    """(sequence number, UID) of every message matching all ``keys``."""
    out = []
    for index, uid in enumerate(context.uids):
        entry = context.entries[uid]
        if all([await _matches(context, index + 1, entry, key) for key in keys]):
            out.append((index + 1, uid))
    return out


_FLAG_TESTS = {
    "ANSWERED": ("answered", True),
    "DELETED": ("deleted", True),
    "DRAFT": ("draft", True),
    "FLAGGED": ("flagged", True),
    "SEEN": ("seen", True),
    "UNANSWERED": ("answered", False),
    "UNDELETED": ("deleted", False),
    "UNDRAFT": ("draft", False),
    "UNFLAGGED": ("flagged", False),
    "UNSEEN": ("seen", False),
    "OLD": ("seen", None),  # no \Recent in sitemail: every message is old
}


async def _matches(context: SearchContext, seq: int, entry: UidEntry, key: SearchKey) -> bool:
    kind = key.kind
    if kind == "ALL":
        return True
    if kind in ("NEW", "RECENT", "KEYWORD"):
        return False  # no \Recent, no keywords are kept
    if kind == "UNKEYWORD":
        return True
    if kind in _FLAG_TESTS:
        name, wanted = _FLAG_TESTS[kind]
        return wanted is None or getattr(entry.flags, name) is wanted
    if kind == "AND":
        return all([await _matches(context, seq, entry, k) for k in key.children])
    if kind == "NOT":
        return not await _matches(context, seq, entry, key.children[0])
    if kind == "OR":
        left, right = key.children
        return await _matches(context, seq, entry, left) or await _matches(
            context, seq, entry, right
        )
    if kind in ("UID", "SEQ") and isinstance(key.value, SequenceSet):
        if kind == "UID":
            return key.value.contains(entry.uid, context.uids[-1] if context.uids else 0)
        return key.value.contains(seq, len(context.uids))
    if kind in ("BODY", "TEXT"):
        query = str(key.value)
        hits = await context.text_match("text", query)
        if kind == "TEXT" and entry.message_id not in hits:
            header = (await context.header(entry)).decode("utf-8", errors="replace")
            return query.casefold() in header.casefold()
        return entry.message_id in hits
    if kind in ("HEADER", "BCC"):
        name, query = key.value if isinstance(key.value, tuple) else ("bcc", key.value)
        fields = header_fields(await context.header(entry), [str(name)], exclude=False)
        values = [f.partition(b":")[2] for f in fields.split(b"\r\n") if f]
        text = b" ".join(values).decode("utf-8", errors="replace").casefold()
        return bool(values) and str(query).casefold() in text
    summary = await context.summary(entry)
    if summary is None:
        return False
    return _summary_matches(summary, kind, key.value)


def _summary_matches(summary: MessageSummary, kind: str, value: object) -> bool:
    if kind in ("LARGER", "SMALLER") and isinstance(value, int):
        return summary.size > value if kind == "LARGER" else summary.size < value
    if kind in ("BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"):
        moment = summary.sent_at if kind.startswith("SENT") else summary.received_at
        if moment is None or not isinstance(value, date):
            return False
        day = moment.date()
        test = kind.removeprefix("SENT")
        return day < value if test == "BEFORE" else day == value if test == "ON" else day >= value
    query = str(value).casefold()
    if kind == "SUBJECT":
        return query in summary.subject.casefold()
    addresses = {
        "FROM": [summary.from_address] if summary.from_address else [],
        "TO": summary.to,
        "CC": summary.cc,
    }.get(kind, [])
    return any(query in f"{a.name} <{a.address}>".casefold() for a in addresses)
