"""The read-only queries of a mailbox database: pages, messages, bytes, search, UID lists."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sitemail.mailbox import folder_tree as tree
from sitemail.mailbox.database_core import FROM_MESSAGES, DatabaseCore, no_message
from sitemail.mailbox.errors import Conflict, InvalidRequest, MessageNotFound, PartNotFound
from sitemail.mailbox.folder_tree import FolderRef
from sitemail.mailbox.limits import (
    MAX_CHANGES,
    MAX_PAGE_SIZE,
    MAX_QUERY,
    MAX_UID_PAGE,
    check_page,
    mailbox_key,
)
from sitemail.mailbox.readers import PartReader, RawReader
from sitemail.mailbox.records import (
    FolderChanges,
    FolderUids,
    MessageDetail,
    MessagePage,
    MimePart,
)
from sitemail.mailbox.rows import (
    DETAIL_COLUMNS,
    SUMMARY_COLUMNS,
    to_detail,
    to_summary,
    to_uid_entry,
)

SEARCH_FIELDS = frozenset({"subject", "from", "to", "text"})
_SEARCH_COLUMNS = {
    "subject": ("c.subject",),
    "from": ("c.from_json",),
    "to": ("c.to_json", "c.cc_json"),
    "text": ("c.search_text",),
}


class ReadOperations(DatabaseCore):
    """What OWA, EWS, POP3 and IMAP read: nothing here writes."""

    # ------------------------------------------------------- reading

    def list_messages(
        self,
        mailbox: str,
        folder: FolderRef,
        *,
        offset: int = 0,
        limit: int = 50,
        oldest_first: bool = False,
    ) -> MessagePage:
        """One page of a folder, newest received first (or oldest first)."""
        check_page(offset, limit, MAX_PAGE_SIZE)
        box = self._mailbox(mailbox)
        direction = "ASC" if oldest_first else "DESC"
        with self._lock:
            conn = self._conn
            folder_id = tree.folder_id(conn, box, folder)
            total = conn.execute(
                "SELECT COUNT(*) FROM messages WHERE folder_id=?", (folder_id,)
            ).fetchone()[0]
            rows = conn.execute(
                f"SELECT {SUMMARY_COLUMNS} {FROM_MESSAGES} WHERE m.folder_id=? "
                f"ORDER BY m.received_at {direction}, m.id {direction} LIMIT ? OFFSET ?",
                (folder_id, limit, offset),
            ).fetchall()
        return MessagePage(total=int(total), offset=offset, items=[to_summary(r) for r in rows])

    def get_message(self, mailbox: str, message_id: int) -> MessageDetail:
        box = self._mailbox(mailbox)
        with self._lock:
            row = self._conn.execute(
                f"SELECT {DETAIL_COLUMNS} {FROM_MESSAGES} WHERE m.id=? AND m.mailbox_id=?",
                (message_id, box.id),
            ).fetchone()
        if row is None:
            raise no_message(box, message_id)
        return to_detail(row)

    def structure(self, mailbox: str, message_id: int) -> MimePart:
        """The message's MIME structure alone (no addresses or preview decoded)."""
        box = self._mailbox(mailbox)
        with self._lock:
            row = self._conn.execute(
                f"SELECT c.structure {FROM_MESSAGES} WHERE m.id=? AND m.mailbox_id=?",
                (message_id, box.id),
            ).fetchone()
        if row is None:
            raise no_message(box, message_id)
        return MimePart.model_validate_json(row[0])

    def open_raw(
        self, mailbox: str, message_id: int, *, start: int = 0, length: int | None = None
    ) -> RawReader:
        """A reader of the message's bytes (or of ``length`` bytes from ``start``).

        Close it (it is a context manager): it holds a read transaction.
        """
        if start < 0 or (length is not None and length < 0):
            raise InvalidRequest("start and length must not be negative")
        return RawReader(self.path, mailbox_key(mailbox), message_id, start, length)

    def read_range(
        self, mailbox: str, message_id: int, start: int, length: int
    ) -> tuple[int, bytes]:
        """The message's size and ``length`` of its bytes from ``start``, read at once.

        For short ranges (a message's header, for EWS and IMAP): one read needs no
        reader and connection of its own (opening one cost more than the read).
        """
        if start < 0 or length < 0:
            raise InvalidRequest("start and length must not be negative")
        box = self._mailbox(mailbox)
        with self._lock:
            row = self._conn.execute(
                "SELECT m.content_id, c.size FROM messages m JOIN contents c ON c.id=m.content_id "
                "WHERE m.id=? AND m.mailbox_id=?",
                (message_id, box.id),
            ).fetchone()
            if row is None:
                raise MessageNotFound(f"mailbox {box.name} has no message {message_id}")
            total = int(row[1])
            begin = min(start, total)
            with self._conn.blobopen("contents", "data", int(row[0]), readonly=True) as blob:
                blob.seek(begin)
                data = blob.read(min(total, begin + length) - begin)
        return total, data

    def read_raw(self, mailbox: str, message_id: int) -> bytes:
        """The whole message in memory (for small messages and tests)."""
        with self.open_raw(mailbox, message_id) as reader:
            return b"".join(iter(reader.read, b""))

    def open_part(self, mailbox: str, message_id: int, part_id: str) -> PartReader:
        """A reader of one MIME part's body, with its transfer encoding undone."""
        detail = self.get_message(mailbox, message_id)
        part = detail.structure.find(part_id)
        if part is None or part.is_multipart:
            raise PartNotFound(
                f"message {message_id} has no single part {part_id[:40]!r}: "
                "see its structure for the part numbers"
            )
        raw = self.open_raw(mailbox, message_id, start=part.body_offset, length=part.body_size)
        return PartReader(part, raw)

    def search(
        self,
        mailbox: str,
        query: str,
        *,
        folder: FolderRef | None = None,
        fields: Collection[str] = SEARCH_FIELDS,
        offset: int = 0,
        limit: int = 50,
    ) -> MessagePage:
        """Messages whose subject, sender, recipients or text contain ``query`` (any case)."""
        needle = query.strip().casefold()
        if not needle or len(needle) > MAX_QUERY:
            raise InvalidRequest(f"search text must be 1 to {MAX_QUERY} characters")
        if not fields or set(fields) - SEARCH_FIELDS:
            raise InvalidRequest(
                f"search fields must be among {', '.join(sorted(SEARCH_FIELDS))}, "
                f"got {', '.join(sorted(fields)) or 'none'}"
            )
        check_page(offset, limit, MAX_PAGE_SIZE)
        box = self._mailbox(mailbox)
        tests = [f"sm_contains({c}, :q)" for f in sorted(fields) for c in _SEARCH_COLUMNS[f]]
        where = f"m.mailbox_id=:mb AND ({' OR '.join(tests)})"
        params: dict[str, Any] = {"q": needle, "mb": box.id, "limit": limit, "offset": offset}
        with self._lock:
            conn = self._conn
            if folder is not None:
                params["folder"] = tree.folder_id(conn, box, folder)
                where += " AND m.folder_id=:folder"
            else:  # the mailbox is its IPM subtree: the dumpster's items are not found
                hidden = [f.id for f in tree.all_folders(conn, box, everything=True) if not f.ipm]
                where += f" AND m.folder_id NOT IN ({','.join(str(i) for i in hidden) or '0'})"
            total = conn.execute(f"SELECT COUNT(*) {FROM_MESSAGES} WHERE {where}", params)
            count = int(total.fetchone()[0])
            rows = conn.execute(
                f"SELECT {SUMMARY_COLUMNS} {FROM_MESSAGES} WHERE {where} "
                "ORDER BY m.received_at DESC, m.id DESC LIMIT :limit OFFSET :offset",
                params,
            ).fetchall()
        return MessagePage(total=count, offset=offset, items=[to_summary(r) for r in rows])

    # ---------------------------------------------------------- IMAP

    def uids(
        self, mailbox: str, folder: FolderRef, *, since: int = 0, limit: int = MAX_UID_PAGE
    ) -> FolderUids:
        """The folder's UIDs above ``since`` in UID order (at most ``limit``), with its state."""
        check_page(since, limit, MAX_UID_PAGE, what="since")
        box = self._mailbox(mailbox)
        with self._lock:
            conn = self._conn
            row = tree.folder_row(conn, box, folder)
            rows = conn.execute(
                "SELECT id, uid, modseq, seen, answered, flagged, deleted, draft FROM messages "
                "WHERE folder_id=? AND uid>? ORDER BY uid LIMIT ?",
                (row["id"], since, limit + 1),
            ).fetchall()
        return FolderUids(
            folder_id=int(row["id"]),
            uidvalidity=int(row["uidvalidity"]),
            uidnext=int(row["uidnext"]),
            modseq=int(row["modseq"]),
            entries=[to_uid_entry(r) for r in rows[:limit]],
            more=len(rows) > limit,
        )

    def changes(self, mailbox: str, folder: FolderRef, since_modseq: int) -> FolderChanges:
        """What was added, re-flagged or removed in the folder after ``since_modseq``."""
        if since_modseq < 0:
            raise InvalidRequest("modseq must not be negative")
        box = self._mailbox(mailbox)
        with self._lock:
            conn = self._conn
            row = tree.folder_row(conn, box, folder)
            rows = conn.execute(
                "SELECT id, uid, modseq, seen, answered, flagged, deleted, draft FROM messages "
                "WHERE folder_id=? AND modseq>? ORDER BY uid LIMIT ?",
                (row["id"], since_modseq, MAX_CHANGES + 1),
            ).fetchall()
            vanished = conn.execute(
                "SELECT uid FROM expunged WHERE folder_id=? AND modseq>? ORDER BY uid LIMIT ?",
                (row["id"], since_modseq, MAX_CHANGES + 1),
            ).fetchall()
        if len(rows) > MAX_CHANGES or len(vanished) > MAX_CHANGES:
            raise Conflict(
                f"more than {MAX_CHANGES} changes since modseq {since_modseq}: "
                "resynchronise the folder from its UID list"
            )
        return FolderChanges(
            folder_id=int(row["id"]),
            uidvalidity=int(row["uidvalidity"]),
            uidnext=int(row["uidnext"]),
            modseq=int(row["modseq"]),
            changed=[to_uid_entry(r) for r in rows],
            vanished=[int(r[0]) for r in vanished],
        )
