"""Typed items in a mailbox database: calendar items, contacts and tasks.

A typed item is a message (id, folder, UID, modseq: IMAP and EWS sync see
it like any other, and it moves, copies and goes to Deleted Items the same
way) whose content the store generates from the record
(:mod:`.item_content`) and whose record sits in ``item_records`` keyed by
that content (:mod:`.schema`).  Updating an item writes a new content and
record and gives the message a new UID in its folder (the old one is
expunged): IMAP's contents of a UID never change, while the message id,
and so the EWS ItemId, stays.

Calendar views ask :meth:`ItemOperations.calendar_items` for the items
whose span touches a window; the caller expands recurring ones
(:mod:`.recurrence`).
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Callable, Collection
from datetime import datetime

from pydantic import ValidationError

from sitemail.mailbox import folder_tree as tree
from sitemail.mailbox.database_core import DatabaseCore, no_message
from sitemail.mailbox.errors import Conflict, InvalidRequest
from sitemail.mailbox.folder_tree import FolderRef
from sitemail.mailbox.item_content import item_content
from sitemail.mailbox.item_records import (
    CalendarData,
    ContactData,
    DistributionListData,
    ItemKind,
    TaskData,
    TypedItem,
    TypedItemPage,
)
from sitemail.mailbox.limits import MAX_PAGE_SIZE, check_page
from sitemail.mailbox.messages import parse_message
from sitemail.mailbox.records import Flags, Placement
from sitemail.mailbox.recurrence import series_bounds
from sitemail.mailbox.rows import MailboxRow, from_us, to_us

__all__ = ["MAX_SPAN_ITEMS", "ItemOperations", "TypedRecord"]

TypedRecord = CalendarData | ContactData | TaskData | DistributionListData

#: Most calendar items one window query reads (each may expand to many occurrences).
MAX_SPAN_ITEMS = 5000
#: Most ids one kinds lookup takes.
MAX_KIND_IDS = 1000

_KIND_OF = {
    CalendarData: ItemKind.CALENDAR,
    ContactData: ItemKind.CONTACT,
    TaskData: ItemKind.TASK,
    DistributionListData: ItemKind.DISTRIBUTION_LIST,
}
_COLUMNS = "m.id, m.folder_id, m.uid, m.modseq, m.received_at, r.kind, r.record"
_FROM = "FROM messages m JOIN item_records r ON r.content_id = m.content_id"


def kind_of(record: TypedRecord) -> ItemKind:
    return _KIND_OF[type(record)]


def _to_item(row: sqlite3.Row) -> TypedItem:
    kind = ItemKind(row["kind"])
    field = {
        ItemKind.CALENDAR: "calendar",
        ItemKind.CONTACT: "contact",
        ItemKind.TASK: "task",
        ItemKind.DISTRIBUTION_LIST: "distribution_list",
    }
    return TypedItem.model_validate(
        {
            "id": int(row["id"]),
            "folder_id": int(row["folder_id"]),
            "uid": int(row["uid"]),
            "modseq": int(row["modseq"]),
            "kind": kind,
            "created_at": from_us(int(row["received_at"])),
            field[kind]: json.loads(row["record"]),
        }
    )


class ItemOperations(DatabaseCore):
    """Create, read, replace and list typed items (deleting and moving are messages')."""

    #: StoreDatabase._store: write a content (bytes and summary) and place a message on it.
    _store: Callable[..., Placement]

    def _write_record(
        self, conn: sqlite3.Connection, box: MailboxRow, folder_id: int, record: TypedRecord
    ) -> Placement:
        """A new content (generated) with its record, placed in ``folder_id`` as a message."""
        raw = item_content(kind_of(record), record, owner=box.name, now=self._clock.now())
        if len(raw) > self.max_message_size:
            raise InvalidRequest("the item is larger than the store's message size limit")
        placed = self._store(
            conn, box, folder_id, io.BytesIO(raw), 0, parse_message(raw), Flags(seen=True), None
        )
        content_id = int(
            conn.execute(
                "SELECT content_id FROM messages WHERE id=?", (placed.message_id,)
            ).fetchone()[0]
        )
        span_start = span_end = None
        if isinstance(record, CalendarData):
            low, high = series_bounds(record)
            span_start, span_end = to_us(low), None if high is None else to_us(high)
        conn.execute(
            "INSERT INTO item_records(content_id, kind, record, span_start, span_end) "
            "VALUES (?,?,?,?,?)",
            (content_id, kind_of(record).value, record.model_dump_json(), span_start, span_end),
        )
        return placed

    def create_typed(self, mailbox: str, folder: FolderRef, record: TypedRecord) -> TypedItem:
        """Save a calendar item, contact or task in ``folder``."""
        box = self._mailbox(mailbox)
        with self._write() as conn:
            folder_id = tree.folder_id(conn, box, folder)
            placed = self._write_record(conn, box, folder_id, record)
            return self._typed(conn, box, placed.message_id)

    def get_typed(self, mailbox: str, message_id: int) -> TypedItem:
        box = self._mailbox(mailbox)
        with self._lock:
            return self._typed(self._conn, box, message_id)

    def _typed(self, conn: sqlite3.Connection, box: MailboxRow, message_id: int) -> TypedItem:
        row = conn.execute(
            f"SELECT {_COLUMNS} {_FROM} WHERE m.id=? AND m.mailbox_id=?", (message_id, box.id)
        ).fetchone()
        if row is None:
            raise no_message(box, message_id)
        return _to_item(row)

    def replace_typed(
        self,
        mailbox: str,
        message_id: int,
        record: TypedRecord,
        *,
        expected_modseq: int | None = None,
    ) -> TypedItem:
        """Write the item's new record (same kind); refused if it changed since ``expected_modseq``.

        The message keeps its id and folder and gets a new UID there, with a
        new content; the old UID is expunged for IMAP.
        """
        box = self._mailbox(mailbox)
        with self._write() as conn:
            old = self._typed(conn, box, message_id)
            if old.kind is not kind_of(record):
                raise InvalidRequest(f"item {message_id} is a {old.kind}, not a {kind_of(record)}")
            if expected_modseq is not None and expected_modseq != old.modseq:
                raise Conflict(f"item {message_id} changed since modseq {expected_modseq}")
            row = self._message_row(conn, box, message_id)
            placed = self._write_record(conn, box, old.folder_id, record)
            new_row = self._message_row(conn, box, placed.message_id)
            # The new content goes to the old message (its id is the item's identity);
            # the message placed for it leaves without a trace but its UID.
            conn.execute("DELETE FROM messages WHERE id=?", (placed.message_id,))
            conn.execute(
                "UPDATE messages SET content_id=?, uid=?, modseq=? WHERE id=?",
                (new_row["content_id"], placed.uid, placed.modseq, message_id),
            )
            self._tombstone(conn, old.folder_id, int(row["uid"]), placed.modseq)
            self._collect(conn, [int(row["content_id"])])
            return self._typed(conn, box, message_id)

    def list_typed(
        self,
        mailbox: str,
        folder: FolderRef,
        *,
        kind: ItemKind | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> TypedItemPage:
        """The folder's typed items (of ``kind`` if given), oldest first."""
        check_page(offset, limit, MAX_PAGE_SIZE)
        box = self._mailbox(mailbox)
        where = "m.folder_id=?" + (" AND r.kind=?" if kind else "")
        with self._lock:
            folder_id = tree.folder_id(self._conn, box, folder)
            args: tuple[object, ...] = (folder_id, kind.value) if kind else (folder_id,)
            total = int(
                self._conn.execute(f"SELECT COUNT(*) {_FROM} WHERE {where}", args).fetchone()[0]
            )
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} {_FROM} WHERE {where} ORDER BY m.received_at, m.id "
                "LIMIT ? OFFSET ?",
                (*args, limit, offset),
            ).fetchall()
        return TypedItemPage(total=total, items=[_to_item(r) for r in rows])

    def calendar_items(
        self, mailbox: str, folder: FolderRef, start: datetime, end: datetime
    ) -> list[TypedItem]:
        """The calendar items of ``folder`` whose time may touch [start, end), by span.

        Recurring items are returned whole (their masters); expanding them is
        the caller's.  Refused with Conflict beyond :data:`MAX_SPAN_ITEMS`.
        """
        if end < start:
            raise InvalidRequest("the window ends before it starts")
        box = self._mailbox(mailbox)
        with self._lock:
            folder_id = tree.folder_id(self._conn, box, folder)
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} {_FROM} WHERE m.folder_id=? AND r.kind=? "
                "AND r.span_start <= ? AND (r.span_end IS NULL OR r.span_end >= ?) "
                "ORDER BY r.span_start, m.id LIMIT ?",
                (folder_id, ItemKind.CALENDAR.value, to_us(end), to_us(start), MAX_SPAN_ITEMS + 1),
            ).fetchall()
        if len(rows) > MAX_SPAN_ITEMS:
            raise Conflict(
                f"more than {MAX_SPAN_ITEMS} calendar items touch the window: ask for a shorter one"
            )
        return [_to_item(r) for r in rows]

    def typed_kinds(self, mailbox: str, message_ids: Collection[int]) -> dict[int, ItemKind]:
        """Which of these messages are typed items, and of what kind (the others are left out)."""
        if len(message_ids) > MAX_KIND_IDS:
            raise InvalidRequest(f"at most {MAX_KIND_IDS} ids per request")
        box = self._mailbox(mailbox)
        ids = sorted({int(i) for i in message_ids})
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        with self._lock:
            rows = self._conn.execute(
                f"SELECT m.id, r.kind {_FROM} WHERE m.mailbox_id=? AND m.id IN ({marks})",
                (box.id, *ids),
            ).fetchall()
        return {int(r[0]): ItemKind(r[1]) for r in rows}


def parse_record(kind: ItemKind, data: object) -> TypedRecord:
    """A record of ``kind`` from JSON data, refused with InvalidRequest if malformed."""
    classes: dict[ItemKind, type[TypedRecord]] = {
        ItemKind.CALENDAR: CalendarData,
        ItemKind.CONTACT: ContactData,
        ItemKind.TASK: TaskData,
        ItemKind.DISTRIBUTION_LIST: DistributionListData,
    }
    cls = classes[kind]
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        raise InvalidRequest(f"{kind} {where}: {first['msg']}") from None
