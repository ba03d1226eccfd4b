"""One mailbox database: a SQLite file holding the mailboxes whose homeMDB it is.

:class:`StoreDatabase` is synchronous and thread-safe (one writer
connection behind a lock); the store API calls it from worker threads.  Every
change is one ``BEGIN IMMEDIATE`` transaction in WAL mode with
``synchronous=FULL``: once a method returns, its change survives a crash,
and a crash before that leaves no trace of it.  Why message bodies live in
the database, and the rest of the layout, is explained in
:mod:`sitemail.mailbox.schema`.

Mailboxes are keyed by their alias, lower-cased (the directory's identity),
and are provisioned on first use with the well-known folders of an Exchange
2010 mailbox.  The store does not ask the directory whether a mailbox
belongs here: the store API does that before it calls in.

:class:`StoreDatabase` is assembled from :mod:`.database_core` (connection,
transactions, shared row operations), :mod:`.database_folders` and
:mod:`.database_reads` and :mod:`.database_items` (calendar items, contacts,
tasks), :mod:`.database_settings` (automatic replies, rules, delegates);
this module adds what changes messages: delivery,
APPEND, flags, moves, deletion and Mail Submission's Outbox.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Collection, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from sitemail.mailbox import folder_tree as tree
from sitemail.mailbox.database_core import FROM_MESSAGES, StoreChange
from sitemail.mailbox.database_folders import FolderOperations
from sitemail.mailbox.database_items import ItemOperations
from sitemail.mailbox.database_reads import SEARCH_FIELDS, ReadOperations
from sitemail.mailbox.database_settings import SettingsOperations
from sitemail.mailbox.errors import InvalidRequest, MessageTooLarge, StoreError
from sitemail.mailbox.folder_tree import FolderRef
from sitemail.mailbox.limits import MAX_PAGE_SIZE, MAX_UID_PAGE, check_page, delivery_key
from sitemail.mailbox.messages import ParsedMessage, parse_message
from sitemail.mailbox.records import (
    DeliveryResult,
    ExpungeResult,
    Flags,
    FlagUpdate,
    Folder,
    FolderView,
    ItemProperties,
    MessageSummary,
    Placement,
    UidEntry,
    WellKnownFolder,
)
from sitemail.mailbox.rows import (
    SUMMARY_COLUMNS,
    MailboxRow,
    addresses_json,
    rows_by_uid,
    to_flags,
    to_summary,
    to_uid_entry,
    to_us,
)
from sitemail.mailbox.sources import CHUNK_SIZE, MessageSource, opened, scan

#: Largest JSON of one message's item properties (EWS extended properties included).
MAX_PROPERTIES = 128 * 1024

__all__ = [
    "SEARCH_FIELDS",
    "FolderRef",
    "MessageSource",
    "PendingSubmission",
    "StoreChange",
    "StoreDatabase",
]


@dataclass(frozen=True)
class PendingSubmission:
    """A message waiting in a mailbox's Outbox for the Mail Submission service."""

    mailbox: str
    message: MessageSummary


class StoreDatabase(ItemOperations, FolderOperations, ReadOperations, SettingsOperations):
    """The mailbox database file ``path`` (created if missing)."""

    # ------------------------------------------------------- context

    def __enter__(self) -> StoreDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------ folder view

    def folder_view(
        self, mailbox: str, folder: FolderRef, *, offset: int = 0, limit: int = 50
    ) -> FolderView:
        """The folders (with their counts), ``folder`` and a page of it, newest first, in
        one read: what OWA's folder view shows, so one store call per page, not three."""
        with self._lock:  # re-entrant: the counts and the page agree
            folders = self.list_folders(mailbox)
            found = next((f for f in folders if _is_folder(f, folder)), None)
            if found is None:  # not in the tree (one of Exchange's own): asked by itself
                found = self.get_folder(mailbox, folder)
            page = self.list_messages(mailbox, found.id, offset=offset, limit=limit)
        return FolderView(folders=folders, folder=found, page=page)

    # ------------------------------------------------------ delivery

    def deliver(self, mailbox: str, delivery_id: str, source: MessageSource) -> DeliveryResult:
        """Store a message in the Inbox exactly once per ``delivery_id``.

        The hub passes Exchange's duplicate key (Message-ID, submit time and
        recipient, ``transport.headers.delivered_to_key``): if it delivers again
        after a crash or a lost reply, the message is not stored twice and the
        result says ``duplicate``.
        """
        key = delivery_key(delivery_id)
        box = self._mailbox(mailbox)
        with self._lock:
            known = self._known_delivery(self._conn, box, key)
        if known is not None:
            return known
        with opened(source) as (stream, start, size):
            self._check_size(size)
            parsed = scan(stream, start, size)  # outside the lock: parsing takes a while
            with self._write() as conn:
                known = self._known_delivery(conn, box, key)
                if known is not None:
                    return known
                return self._deliver_in(conn, box, key, stream, start, parsed)

    def deliver_many(
        self, deliveries: Sequence[tuple[str, str, MessageSource]]
    ) -> list[DeliveryResult | StoreError]:
        """:meth:`deliver` for several (mailbox, delivery id, source) in one transaction.

        A hub delivers a queue batch at a time: one commit (one fsync) for the
        batch instead of one per recipient.  The answer has one entry per
        delivery, in order: its result, or the error that refused it alone (a
        bad id, a message over the size limit); an error of the database itself
        raises and stores nothing.
        """
        answers: list[DeliveryResult | StoreError | None] = [None] * len(deliveries)
        todo: list[tuple[int, MailboxRow, str, IO[bytes], int, ParsedMessage]] = []
        parsed_by_source: dict[int, tuple[IO[bytes], int, ParsedMessage] | StoreError] = {}
        with ExitStack() as files:
            for index, (mailbox, delivery_id, source) in enumerate(deliveries):
                try:
                    key = delivery_key(delivery_id)
                    box = self._mailbox(mailbox)
                    with self._lock:
                        known = self._known_delivery(self._conn, box, key)
                    if known is not None:
                        answers[index] = known
                        continue
                    # One message to several mailboxes of the batch is read and parsed once.
                    scanned = parsed_by_source.get(id(source))
                    if scanned is None:
                        try:
                            stream, start, size = files.enter_context(opened(source))
                            self._check_size(size)
                            scanned = (stream, start, scan(stream, start, size))
                        except StoreError as exc:
                            scanned = exc
                        parsed_by_source[id(source)] = scanned
                    if isinstance(scanned, StoreError):
                        raise scanned
                    todo.append((index, box, key, *scanned))
                except StoreError as exc:
                    answers[index] = exc
            if todo:
                with self._write() as conn:
                    for index, box, key, stream, start, parsed in todo:
                        known = self._known_delivery(conn, box, key)
                        if known is None:
                            known = self._deliver_in(conn, box, key, stream, start, parsed)
                        answers[index] = known
        return [a for a in answers if a is not None]

    def _deliver_in(
        self,
        conn: sqlite3.Connection,
        box: MailboxRow,
        key: str,
        stream: IO[bytes],
        start: int,
        parsed: ParsedMessage,
    ) -> DeliveryResult:
        inbox = tree.folder_id(conn, box, WellKnownFolder.INBOX.value)
        # The mailbox's Inbox rules say where it goes (database_settings, inbox_rules).
        rules = self._rules_for(conn, box, stream, start, parsed, inbox)
        self._to_outbox(conn, box, rules.sends)
        if rules.target is None:  # PermanentDelete: only the delivery id is kept (message id 0)
            conn.execute(
                "INSERT INTO deliveries(mailbox_id, key, message_id, delivered_at) "
                "VALUES (?,?,0,?)",
                (box.id, key, self._now_us()),
            )
            return DeliveryResult(message_id=0, folder_id=None, uid=None, duplicate=False)
        if rules.content is not None:  # categories or importance a rule set
            kept = rules.content
            placed = self._store(
                conn, box, rules.target, io.BytesIO(kept), 0, parse_message(kept), rules.flags, None
            )
        else:
            placed = self._store(conn, box, rules.target, stream, start, parsed, rules.flags, None)
        reply = self._auto_reply(conn, box, stream, start, parsed)
        self._to_outbox(conn, box, () if reply is None else (reply,))
        for folder in rules.copies:
            content = conn.execute(
                "SELECT content_id, received_at FROM messages WHERE id=?", (placed.message_id,)
            ).fetchone()
            self._place(conn, box, folder, int(content[0]), rules.flags, int(content[1]))
        conn.execute(
            "INSERT INTO deliveries(mailbox_id, key, message_id, delivered_at) VALUES (?,?,?,?)",
            (box.id, key, placed.message_id, self._now_us()),
        )
        return DeliveryResult(
            message_id=placed.message_id,
            folder_id=placed.folder_id,
            uid=placed.uid,
            duplicate=False,
        )

    def _to_outbox(
        self, conn: sqlite3.Connection, box: MailboxRow, messages: Sequence[bytes]
    ) -> None:
        """Messages the store itself sends (rule forwards, automatic replies): Mail
        Submission sends them from the Outbox and, as they are flagged deleted, keeps
        no copy."""
        if not messages:
            return
        outbox = tree.folder_id(conn, box, WellKnownFolder.OUTBOX.value)
        sent = Flags(seen=True, deleted=True)
        for data in messages:
            self._store(conn, box, outbox, io.BytesIO(data), 0, parse_message(data), sent, None)

    def _known_delivery(
        self, conn: sqlite3.Connection, box: MailboxRow, key: str
    ) -> DeliveryResult | None:
        row = conn.execute(
            "SELECT d.message_id, m.folder_id, m.uid FROM deliveries d "
            "LEFT JOIN messages m ON m.id = d.message_id "
            "WHERE d.mailbox_id=? AND d.key=?",
            (box.id, key),
        ).fetchone()
        if row is None:
            return None
        return DeliveryResult(
            message_id=int(row[0]),
            folder_id=None if row[1] is None else int(row[1]),
            uid=None if row[2] is None else int(row[2]),
            duplicate=True,
        )

    def prune_deliveries(self, older_than: datetime) -> int:
        """Forget delivery ids recorded before ``older_than`` (no hub retries that long)."""
        with self._write() as conn:
            cur = conn.execute(
                "DELETE FROM deliveries WHERE delivered_at < ?", (to_us(older_than),)
            )
            return int(cur.rowcount)

    def append(
        self,
        mailbox: str,
        folder: FolderRef,
        source: MessageSource,
        *,
        flags: Flags | None = None,
        received_at: datetime | None = None,
    ) -> Placement:
        """Add a message to a folder (IMAP APPEND, OWA saving a draft or a sent item)."""
        box = self._mailbox(mailbox)
        with opened(source) as (stream, start, size):
            self._check_size(size)
            parsed = scan(stream, start, size)
            with self._write() as conn:
                target = tree.folder_id(conn, box, folder)
                return self._store(
                    conn, box, target, stream, start, parsed, flags or Flags(), received_at
                )

    def _check_size(self, size: int) -> None:
        if size > self.max_message_size:
            raise MessageTooLarge(
                f"message of {size} bytes is larger than the store's limit of "
                f"{self.max_message_size} bytes"
            )

    def _store(
        self,
        conn: sqlite3.Connection,
        box: MailboxRow,
        folder_id: int,
        stream: IO[bytes],
        start: int,
        parsed: ParsedMessage,
        flags: Flags,
        received_at: datetime | None,
    ) -> Placement:
        """Write the content (bytes in chunks into a zeroblob) and place a message on it."""
        cur = conn.execute(
            "INSERT INTO contents(size, header_size, subject, from_json, to_json, cc_json, "
            "bcc_json, reply_to_json, sent_at, internet_message_id, in_reply_to, "
            "has_attachments, preview, search_text, structure, data) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?, zeroblob(?))",
            (
                parsed.size,
                parsed.header_size,
                parsed.subject,
                addresses_json([parsed.from_address] if parsed.from_address else None),
                addresses_json(parsed.to),
                addresses_json(parsed.cc),
                addresses_json(parsed.bcc),
                addresses_json(parsed.reply_to),
                None if parsed.sent_at is None else to_us(parsed.sent_at),
                parsed.internet_message_id,
                parsed.in_reply_to,
                int(parsed.has_attachments),
                parsed.preview,
                parsed.search_text,
                parsed.structure.model_dump_json(),
                parsed.size,
            ),
        )
        content_id = cur.lastrowid
        assert content_id is not None
        stream.seek(start)
        remaining = parsed.size
        with conn.blobopen("contents", "data", content_id) as blob:
            while remaining:
                chunk = stream.read(min(CHUNK_SIZE, remaining))
                if not chunk:
                    raise InvalidRequest("the message source ended early (it changed meanwhile)")
                blob.write(chunk)
                remaining -= len(chunk)
        when = self._now_us() if received_at is None else to_us(received_at)
        return self._place(conn, box, folder_id, content_id, flags, when)

    # ------------------------------------------------------- changes

    def set_flags(self, mailbox: str, message_id: int, update: FlagUpdate) -> MessageSummary:
        box = self._mailbox(mailbox)
        with self._write() as conn:
            row = self._message_row(conn, box, message_id)
            old = to_flags(row)
            new = update.apply(old)
            if new != old:
                modseq = self._bump(conn, box, {int(row["folder_id"])})
                self._write_flags(conn, message_id, new, modseq)
            return self._summary_of(conn, message_id)

    def store_flags(
        self,
        mailbox: str,
        folder: FolderRef,
        uids: Collection[int],
        *,
        add: Collection[str] = (),
        remove: Collection[str] = (),
        replace: Collection[str] | None = None,
    ) -> list[UidEntry]:
        """IMAP STORE on many UIDs of one folder: set ``replace``, or add and remove flags.

        Returns the entries of the UIDs that exist, with their flags now.
        """
        if len(uids) > MAX_UID_PAGE:
            raise InvalidRequest(f"at most {MAX_UID_PAGE} UIDs per request")
        try:
            to_add, to_remove = Flags.of(tuple(add)).names(), Flags.of(tuple(remove)).names()
            replacement = None if replace is None else Flags.of(tuple(replace))
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        changes = dict.fromkeys(to_add, True) | dict.fromkeys(to_remove, False)
        box = self._mailbox(mailbox)
        with self._write() as conn:
            folder_id = tree.folder_id(conn, box, folder)
            rows = rows_by_uid(conn, folder_id, sorted(set(uids)))
            updates: list[tuple[int, Flags]] = []
            for row in rows:
                old = to_flags(row)
                new = replacement if replacement is not None else old.model_copy(update=changes)
                if new != old:
                    updates.append((int(row["id"]), new))
            if updates:
                modseq = self._bump(conn, box, {folder_id})
                for message_id, new in updates:
                    self._write_flags(conn, message_id, new, modseq)
            found = [int(r["uid"]) for r in rows]
            return [to_uid_entry(r) for r in rows_by_uid(conn, folder_id, found)]

    def move(self, mailbox: str, message_id: int, folder: FolderRef) -> Placement:
        """Move a message to another folder, where it gets a new UID (its id stays)."""
        box = self._mailbox(mailbox)
        with self._write() as conn:
            row = self._message_row(conn, box, message_id)
            return self._move(conn, box, row, tree.folder_id(conn, box, folder))

    def replace(self, mailbox: str, message_id: int, source: MessageSource) -> Placement:
        """Give a message new content (EWS UpdateItem re-renders a changed item's MIME).

        The message keeps its id, folder, flags and received time; in its folder it
        gets a new UID (the old one is expunged), since IMAP never changes the content
        of a UID, and the old content goes when no copy shares it.
        """
        box = self._mailbox(mailbox)
        with opened(source) as (stream, start, size):
            self._check_size(size)
            parsed = scan(stream, start, size)
            with self._write() as conn:
                row = self._message_row(conn, box, message_id)
                folder_id = int(row["folder_id"])
                placed = self._store(
                    conn, box, folder_id, stream, start, parsed, to_flags(row), None
                )
                content_id = int(
                    conn.execute(
                        "SELECT content_id FROM messages WHERE id=?", (placed.message_id,)
                    ).fetchone()[0]
                )
                # The old row takes the new content, UID and modseq; the new row goes.
                conn.execute("DELETE FROM messages WHERE id=?", (placed.message_id,))
                conn.execute(
                    "UPDATE messages SET content_id=?, uid=?, modseq=? WHERE id=?",
                    (content_id, placed.uid, placed.modseq, message_id),
                )
                self._tombstone(conn, folder_id, int(row["uid"]), placed.modseq)
                self._collect(conn, [int(row["content_id"])])
                return placed.model_copy(update={"message_id": message_id})

    def copy(self, mailbox: str, message_id: int, folder: FolderRef) -> Placement:
        """A new message in ``folder`` with the same content, flags and received time."""
        box = self._mailbox(mailbox)
        with self._write() as conn:
            row = self._message_row(conn, box, message_id)
            target = tree.folder_id(conn, box, folder)
            placed = self._place(
                conn, box, target, int(row["content_id"]), to_flags(row), int(row["received_at"])
            )
            conn.execute(
                "INSERT INTO message_properties(message_id, data) "
                "SELECT ?, data FROM message_properties WHERE message_id=?",
                (placed.message_id, message_id),
            )
            return placed

    def get_properties(self, mailbox: str, message_id: int) -> ItemProperties:
        """The properties a message has beside its content ({} when none)."""
        box = self._mailbox(mailbox)
        with self._lock:
            row = self._message_row(self._conn, box, message_id)
            found = self._conn.execute(
                "SELECT data FROM message_properties WHERE message_id=?", (message_id,)
            ).fetchone()
        data = json.loads(found[0]) if found is not None else {}
        return ItemProperties(properties=data, modseq=int(row["modseq"]))

    def set_properties(
        self, mailbox: str, message_id: int, properties: dict[str, Any]
    ) -> ItemProperties:
        """Replace a message's properties ({} removes them); the message's modseq moves."""
        text = json.dumps(properties, ensure_ascii=False, separators=(",", ":"))
        if len(text) > MAX_PROPERTIES:
            raise InvalidRequest(
                f"item properties of {len(text)} bytes are more than the store keeps "
                f"({MAX_PROPERTIES})"
            )
        box = self._mailbox(mailbox)
        with self._write() as conn:
            row = self._message_row(conn, box, message_id)
            modseq = self._bump(conn, box, {int(row["folder_id"])})
            conn.execute("UPDATE messages SET modseq=? WHERE id=?", (modseq, message_id))
            if properties:
                conn.execute(
                    "INSERT OR REPLACE INTO message_properties(message_id, data) VALUES (?,?)",
                    (message_id, text),
                )
            else:
                conn.execute("DELETE FROM message_properties WHERE message_id=?", (message_id,))
            return ItemProperties(properties=properties, modseq=modseq)

    def delete(self, mailbox: str, message_id: int, *, hard: bool = False) -> Placement | None:
        """Move to Deleted Items; delete for good if ``hard`` or already there.

        Returns the new placement, or ``None`` when the message is gone.
        """
        box = self._mailbox(mailbox)
        with self._write() as conn:
            row = self._message_row(conn, box, message_id)
            trash = tree.folder_id(conn, box, WellKnownFolder.DELETED_ITEMS.value)
            if not hard and int(row["folder_id"]) != trash:
                return self._move(conn, box, row, trash)
            self._remove(conn, row, self._bump(conn, box, {int(row["folder_id"])}))
            return None

    def expunge(
        self, mailbox: str, folder: FolderRef, uids: Collection[int] | None = None
    ) -> ExpungeResult:
        """Delete for good the messages of a folder flagged deleted (only these UIDs if given)."""
        if uids is not None and len(uids) > MAX_UID_PAGE:
            raise InvalidRequest(f"at most {MAX_UID_PAGE} UIDs per request")
        box = self._mailbox(mailbox)
        with self._write() as conn:
            folder_id = tree.folder_id(conn, box, folder)
            if uids is None:
                rows = conn.execute(
                    "SELECT * FROM messages WHERE folder_id=? AND deleted=1 ORDER BY uid",
                    (folder_id,),
                ).fetchall()
            else:
                rows = [r for r in rows_by_uid(conn, folder_id, sorted(set(uids))) if r["deleted"]]
            if rows:
                modseq = self._bump(conn, box, {folder_id})
                for row in rows:
                    self._remove(conn, row, modseq)
            return ExpungeResult(folder_id=folder_id, uids=[int(r["uid"]) for r in rows])

    # ---------------------------------------------------- submission

    def submit(self, mailbox: str, message_id: int) -> Placement:
        """Move a composed message to the Outbox, where the Mail Submission service finds it."""
        return self.move(mailbox, message_id, WellKnownFolder.OUTBOX.value)

    def pending_submissions(self, limit: int = 100) -> list[PendingSubmission]:
        """Messages waiting in the Outbox of any mailbox of this database, oldest first."""
        check_page(0, limit, MAX_PAGE_SIZE)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT b.name AS mailbox_name, {SUMMARY_COLUMNS} {FROM_MESSAGES} "
                "JOIN folders f ON f.id=m.folder_id JOIN mailboxes b ON b.id=m.mailbox_id "
                "WHERE f.well_known='outbox' ORDER BY m.modseq, m.id LIMIT ?",
                (limit,),
            ).fetchall()
        return [PendingSubmission(str(r["mailbox_name"]), to_summary(r)) for r in rows]

    def complete_submission(
        self, mailbox: str, message_id: int, *, save_copy: bool = True
    ) -> Placement | None:
        """A hub took the message: file it in Sent Items (read), or drop it.

        Safe to repeat after a crash: a message no longer in the Outbox is
        left where it is (its placement is returned), a missing one gives ``None``.
        """
        box = self._mailbox(mailbox)
        with self._write() as conn:
            row = conn.execute(
                "SELECT m.*, f.well_known FROM messages m JOIN folders f ON f.id=m.folder_id "
                "WHERE m.id=? AND m.mailbox_id=?",
                (message_id, box.id),
            ).fetchone()
            if row is None:
                return None
            if row["well_known"] != WellKnownFolder.OUTBOX.value:
                return Placement(
                    message_id=message_id,
                    folder_id=int(row["folder_id"]),
                    uid=int(row["uid"]),
                    modseq=int(row["modseq"]),
                )
            if not save_copy:
                self._remove(conn, row, self._bump(conn, box, {int(row["folder_id"])}))
                return None
            sent = tree.folder_id(conn, box, WellKnownFolder.SENT_ITEMS.value)
            placed = self._move(conn, box, row, sent)
            read = to_flags(row).model_copy(update={"seen": True})
            self._write_flags(conn, message_id, read, placed.modseq)
            return placed


def _is_folder(folder: Folder, ref: FolderRef) -> bool:
    """Whether ``ref`` (an id or a well-known name) names ``folder``."""
    if isinstance(ref, int):
        return folder.id == ref
    return folder.well_known is not None and folder.well_known.value == ref
