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
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.mailbox import folder_tree as tree
from sitemail.mailbox.errors import (
    Conflict,
    FolderNotFound,
    InvalidRequest,
    MessageNotFound,
    MessageTooLarge,
    PartNotFound,
    StoreUnavailable,
)
from sitemail.mailbox.folder_tree import WELL_KNOWN_ORDER, FolderRef
from sitemail.mailbox.limits import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MAX_CHANGES,
    MAX_FOLDER_DEPTH,
    MAX_FOLDERS,
    MAX_PAGE_SIZE,
    MAX_QUERY,
    MAX_UID_PAGE,
    check_page,
    delivery_key,
    folder_name,
    mailbox_key,
    path_key,
)
from sitemail.mailbox.messages import ParsedMessage
from sitemail.mailbox.readers import PartReader, RawReader, connect
from sitemail.mailbox.records import (
    FLAG_NAMES,
    DeliveryResult,
    ExpungeResult,
    Flags,
    FlagUpdate,
    Folder,
    FolderChanges,
    FolderUids,
    MessageDetail,
    MessagePage,
    MessageSummary,
    Placement,
    UidEntry,
    WellKnownFolder,
)
from sitemail.mailbox.rows import (
    DETAIL_COLUMNS,
    SUMMARY_COLUMNS,
    MailboxRow,
    addresses_json,
    rows_by_uid,
    to_detail,
    to_flags,
    to_summary,
    to_uid_entry,
    to_us,
)
from sitemail.mailbox.schema import SCHEMA, SCHEMA_VERSION
from sitemail.mailbox.sources import CHUNK_SIZE, MessageSource, opened, scan

__all__ = [
    "SEARCH_FIELDS",
    "FolderRef",
    "MessageSource",
    "PendingSubmission",
    "StoreChange",
    "StoreDatabase",
]

SEARCH_FIELDS = frozenset({"subject", "from", "to", "text"})
_SEARCH_COLUMNS = {
    "subject": ("c.subject",),
    "from": ("c.from_json",),
    "to": ("c.to_json", "c.cc_json"),
    "text": ("c.search_text",),
}
_FROM_MESSAGES = "FROM messages m JOIN contents c ON c.id=m.content_id"


@dataclass(frozen=True)
class StoreChange:
    """Something changed in these folders of a mailbox (told to subscribers after commit)."""

    mailbox: str
    folder_ids: frozenset[int]
    modseq: int


@dataclass(frozen=True)
class PendingSubmission:
    """A message waiting in a mailbox's Outbox for the Mail Submission service."""

    mailbox: str
    message: MessageSummary


class StoreDatabase:
    """The mailbox database file ``path`` (created if missing)."""

    def __init__(
        self,
        path: Path | str,
        *,
        name: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.path = Path(path)
        self.name = name or self.path.stem
        self.max_message_size = max_message_size
        self._clock = clock
        self._lock = threading.RLock()
        self._subscribers: list[Callable[[StoreChange], None]] = []
        self._pending: list[StoreChange] = []
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = connect(self.path)
            self._init_schema()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise StoreUnavailable(
                f"mailbox database {self.name} ({self.path}) cannot be opened: {exc}; "
                "check the file and its folder, or restore it from a backup"
            ) from None

    def _init_schema(self) -> None:
        with self._write() as conn:
            found = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if found > SCHEMA_VERSION:
                raise StoreUnavailable(
                    f"mailbox database {self.path} has schema version {found}, newer than "
                    f"this sitemail's ({SCHEMA_VERSION}): upgrade sitemail"
                )
            # Statement by statement: executescript() would commit the open transaction.
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('database', ?)", (self.name,)
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> StoreDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- plumbing

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; subscribers hear of its changes after it commits."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(f"mailbox database {self.name} is busy: {exc}") from None
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self._pending.clear()
                if isinstance(exc, sqlite3.OperationalError):
                    raise StoreUnavailable(
                        f"mailbox database {self.name} could not complete a change: {exc}"
                    ) from None
                raise
            changes, self._pending = self._pending, []
        for change in changes:
            for callback in list(self._subscribers):
                callback(change)

    def subscribe(self, callback: Callable[[StoreChange], None]) -> Callable[[], None]:
        """Call ``callback`` after every committed change; returns the unsubscribe function.

        The callback runs in the thread that made the change: keep it short
        (the store API hands it to its event loop with ``call_soon_threadsafe``).
        """
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def _now_us(self) -> int:
        return to_us(self._clock.now())

    def _bump(self, conn: sqlite3.Connection, box: MailboxRow, folder_ids: set[int]) -> int:
        """The next modification sequence of the mailbox, stamped on the folders it touches."""
        modseq = int(
            conn.execute(
                "UPDATE mailboxes SET modseq = modseq + 1 WHERE id=? RETURNING modseq", (box.id,)
            ).fetchone()[0]
        )
        for folder_id in folder_ids:
            conn.execute("UPDATE folders SET modseq=? WHERE id=?", (modseq, folder_id))
        self._pending.append(StoreChange(box.name, frozenset(folder_ids), modseq))
        return modseq

    def _next_uid(self, conn: sqlite3.Connection, folder_id: int) -> int:
        return int(
            conn.execute(
                "UPDATE folders SET uidnext = uidnext + 1 WHERE id=? RETURNING uidnext - 1",
                (folder_id,),
            ).fetchone()[0]
        )

    def _new_uidvalidity(self, conn: sqlite3.Connection) -> int:
        # Seconds since the epoch, as many IMAP servers do, but always above
        # any value given before: a folder deleted and created again in the
        # same second must still get a new UIDVALIDITY.
        row = conn.execute("SELECT value FROM meta WHERE key='uidvalidity'").fetchone()
        last = int(row[0]) if row else 0
        value = max(int(self._clock.now().timestamp()), last + 1) % (2**32 - 1) or 1
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('uidvalidity', ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (str(value),),
        )
        return value

    # ------------------------------------------------------------ mailboxes

    def mailboxes(self) -> list[str]:
        """The mailboxes provisioned in this database."""
        with self._lock:
            rows = self._conn.execute("SELECT name FROM mailboxes ORDER BY name").fetchall()
        return [str(r[0]) for r in rows]

    def ensure_mailbox(self, mailbox: str) -> None:
        """Provision the mailbox (its well-known folders) if it is not here yet."""
        self._mailbox(mailbox)

    def _mailbox(self, mailbox: str) -> MailboxRow:
        """The mailbox's row, provisioned on first use."""
        name = mailbox_key(mailbox)
        with self._lock:
            row = self._conn.execute("SELECT id FROM mailboxes WHERE name=?", (name,)).fetchone()
            if row is not None:
                return MailboxRow(int(row[0]), name)
            with self._write() as conn:
                cur = conn.execute(
                    "INSERT INTO mailboxes(name, modseq, created_at) VALUES (?, 1, ?)",
                    (name, self._now_us()),
                )
                assert cur.lastrowid is not None
                box = MailboxRow(cur.lastrowid, name)
                for well_known in WELL_KNOWN_ORDER:
                    self._insert_folder(conn, box, None, well_known.display_name, well_known)
                return box

    # -------------------------------------------------------------- folders

    def list_folders(self, mailbox: str) -> list[Folder]:
        """Every folder of the mailbox, parents before children."""
        box = self._mailbox(mailbox)
        with self._lock:
            return tree.all_folders(self._conn, box)

    def get_folder(self, mailbox: str, folder: FolderRef) -> Folder:
        box = self._mailbox(mailbox)
        with self._lock:
            return tree.folder_record(self._conn, tree.folder_row(self._conn, box, folder))

    def find_folder(self, mailbox: str, path: str) -> Folder:
        """The folder at ``path`` (names joined by ``/``, compared case-insensitively)."""
        wanted = path_key(path)
        for found in self.list_folders(mailbox):
            if path_key(found.path) == wanted:
                return found
        raise FolderNotFound(f"mailbox {mailbox_key(mailbox)} has no folder {path[:300]!r}")

    def create_folder(self, mailbox: str, name: str, parent: FolderRef | None = None) -> Folder:
        name = folder_name(name)
        box = self._mailbox(mailbox)
        with self._write() as conn:
            count = int(
                conn.execute(
                    "SELECT COUNT(*) FROM folders WHERE mailbox_id=?", (box.id,)
                ).fetchone()[0]
            )
            if count >= MAX_FOLDERS:
                raise Conflict(
                    f"mailbox {box.name} already has {count} folders (at most {MAX_FOLDERS}): "
                    "delete some first"
                )
            parent_id = None
            if parent is not None:
                parent_id = tree.folder_id(conn, box, parent)
                if len(tree.ancestors(conn, parent_id)) + 2 > MAX_FOLDER_DEPTH:
                    raise InvalidRequest(
                        f"folder {name!r} would be nested deeper than {MAX_FOLDER_DEPTH} levels"
                    )
            new_id = self._insert_folder(conn, box, parent_id, name, None)
            self._bump(conn, box, {new_id})
            return tree.folder_record(conn, tree.folder_row(conn, box, new_id))

    def rename_folder(self, mailbox: str, folder: FolderRef, name: str) -> Folder:
        name = folder_name(name)
        box = self._mailbox(mailbox)
        with self._write() as conn:
            row = tree.folder_row(conn, box, folder)
            tree.check_user_folder(row, "renamed")
            this = int(row["id"])
            tree.check_free(conn, box, row["parent_id"], name, exclude=this)
            conn.execute(
                "UPDATE folders SET name=?, name_key=? WHERE id=?", (name, name.casefold(), this)
            )
            self._bump(conn, box, {this})
            return tree.folder_record(conn, tree.folder_row(conn, box, this))

    def move_folder(self, mailbox: str, folder: FolderRef, parent: FolderRef | None) -> Folder:
        """Put a folder (and what it holds) under ``parent``, or at the top if ``None``."""
        box = self._mailbox(mailbox)
        with self._write() as conn:
            row = tree.folder_row(conn, box, folder)
            tree.check_user_folder(row, "moved")
            this = int(row["id"])
            parent_id = None
            if parent is not None:
                parent_id = tree.folder_id(conn, box, parent)
                chain = tree.ancestors(conn, parent_id)
                if parent_id == this or this in chain:
                    raise InvalidRequest(
                        f"folder {row['name']!r} cannot be moved into itself or its subfolders"
                    )
                if len(chain) + 1 + tree.subtree_height(conn, this) > MAX_FOLDER_DEPTH:
                    raise InvalidRequest(
                        f"folder {row['name']!r} would be nested deeper than "
                        f"{MAX_FOLDER_DEPTH} levels"
                    )
            tree.check_free(conn, box, parent_id, str(row["name"]), exclude=this)
            conn.execute(
                "UPDATE folders SET parent_id=?, parent_key=? WHERE id=?",
                (parent_id, parent_id or 0, this),
            )
            self._bump(conn, box, {this})
            return tree.folder_record(conn, tree.folder_row(conn, box, this))

    def delete_folder(self, mailbox: str, folder: FolderRef) -> list[int]:
        """Delete a user folder with its subfolders and their messages, for good.

        Returns the ids of the folders removed.  (OWA moves a folder to Deleted
        Items with :meth:`move_folder` instead.)
        """
        box = self._mailbox(mailbox)
        with self._write() as conn:
            row = tree.folder_row(conn, box, folder)
            tree.check_user_folder(row, "deleted")
            doomed = tree.subtree(conn, int(row["id"]))
            for doomed_id in doomed:
                content_ids = [
                    int(r[0])
                    for r in conn.execute(
                        "SELECT DISTINCT content_id FROM messages WHERE folder_id=?", (doomed_id,)
                    )
                ]
                conn.execute("DELETE FROM messages WHERE folder_id=?", (doomed_id,))
                conn.execute("DELETE FROM expunged WHERE folder_id=?", (doomed_id,))
                self._collect(conn, content_ids)
            # Children first, so no row ever points at a missing parent.
            for doomed_id in reversed(doomed):
                conn.execute("DELETE FROM folders WHERE id=?", (doomed_id,))
            self._bump(conn, box, set())
            return doomed

    def _insert_folder(
        self,
        conn: sqlite3.Connection,
        box: MailboxRow,
        parent_id: int | None,
        name: str,
        well_known: WellKnownFolder | None,
    ) -> int:
        tree.check_free(conn, box, parent_id, name)
        cur = conn.execute(
            "INSERT INTO folders(mailbox_id, parent_id, parent_key, name, name_key, well_known, "
            "uidvalidity, uidnext, modseq) VALUES (?,?,?,?,?,?,?,1,1)",
            (
                box.id,
                parent_id,
                parent_id or 0,
                name,
                name.casefold(),
                well_known.value if well_known else None,
                self._new_uidvalidity(conn),
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    # ------------------------------------------------------------- delivery

    def deliver(self, mailbox: str, delivery_id: str, source: MessageSource) -> DeliveryResult:
        """Store a message in the Inbox exactly once per ``delivery_id``.

        The hub passes ``"<internal message id>:<recipient>"``: if it delivers
        again after a crash or a lost reply, the message is not stored twice
        and the result says ``duplicate``.
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
                inbox = tree.folder_id(conn, box, WellKnownFolder.INBOX.value)
                placed = self._store(conn, box, inbox, stream, start, parsed, Flags(), None)
                conn.execute(
                    "INSERT INTO deliveries(mailbox_id, key, message_id, delivered_at) "
                    "VALUES (?,?,?,?)",
                    (box.id, key, placed.message_id, self._now_us()),
                )
        return DeliveryResult(
            message_id=placed.message_id,
            folder_id=placed.folder_id,
            uid=placed.uid,
            duplicate=False,
        )

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

    def _place(
        self,
        conn: sqlite3.Connection,
        box: MailboxRow,
        folder_id: int,
        content_id: int,
        flags: Flags,
        received_at: int,
    ) -> Placement:
        uid = self._next_uid(conn, folder_id)
        modseq = self._bump(conn, box, {folder_id})
        cur = conn.execute(
            "INSERT INTO messages(mailbox_id, folder_id, uid, modseq, received_at, "
            "seen, answered, flagged, deleted, draft, content_id) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                box.id,
                folder_id,
                uid,
                modseq,
                received_at,
                *(int(getattr(flags, f)) for f in FLAG_NAMES),
                content_id,
            ),
        )
        assert cur.lastrowid is not None
        return Placement(message_id=cur.lastrowid, folder_id=folder_id, uid=uid, modseq=modseq)

    # --------------------------------------------------------------- reading

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
                f"SELECT {SUMMARY_COLUMNS} {_FROM_MESSAGES} WHERE m.folder_id=? "
                f"ORDER BY m.received_at {direction}, m.id {direction} LIMIT ? OFFSET ?",
                (folder_id, limit, offset),
            ).fetchall()
        return MessagePage(total=int(total), offset=offset, items=[to_summary(r) for r in rows])

    def get_message(self, mailbox: str, message_id: int) -> MessageDetail:
        box = self._mailbox(mailbox)
        with self._lock:
            row = self._conn.execute(
                f"SELECT {DETAIL_COLUMNS} {_FROM_MESSAGES} WHERE m.id=? AND m.mailbox_id=?",
                (message_id, box.id),
            ).fetchone()
        if row is None:
            raise _no_message(box, message_id)
        return to_detail(row)

    def open_raw(
        self, mailbox: str, message_id: int, *, start: int = 0, length: int | None = None
    ) -> RawReader:
        """A reader of the message's bytes (or of ``length`` bytes from ``start``).

        Close it (it is a context manager): it holds a read transaction.
        """
        if start < 0 or (length is not None and length < 0):
            raise InvalidRequest("start and length must not be negative")
        return RawReader(self.path, mailbox_key(mailbox), message_id, start, length)

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
            total = conn.execute(f"SELECT COUNT(*) {_FROM_MESSAGES} WHERE {where}", params)
            count = int(total.fetchone()[0])
            rows = conn.execute(
                f"SELECT {SUMMARY_COLUMNS} {_FROM_MESSAGES} WHERE {where} "
                "ORDER BY m.received_at DESC, m.id DESC LIMIT :limit OFFSET :offset",
                params,
            ).fetchall()
        return MessagePage(total=count, offset=offset, items=[to_summary(r) for r in rows])

    # ---------------------------------------------------------------- changes

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

    def _write_flags(
        self, conn: sqlite3.Connection, message_id: int, flags: Flags, modseq: int
    ) -> None:
        conn.execute(
            "UPDATE messages SET seen=?, answered=?, flagged=?, deleted=?, draft=?, modseq=? "
            "WHERE id=?",
            (*(int(getattr(flags, f)) for f in FLAG_NAMES), modseq, message_id),
        )

    def move(self, mailbox: str, message_id: int, folder: FolderRef) -> Placement:
        """Move a message to another folder, where it gets a new UID (its id stays)."""
        box = self._mailbox(mailbox)
        with self._write() as conn:
            row = self._message_row(conn, box, message_id)
            return self._move(conn, box, row, tree.folder_id(conn, box, folder))

    def _move(
        self, conn: sqlite3.Connection, box: MailboxRow, row: sqlite3.Row, target: int
    ) -> Placement:
        source = int(row["folder_id"])
        if source == target:
            return Placement(
                message_id=int(row["id"]),
                folder_id=source,
                uid=int(row["uid"]),
                modseq=int(row["modseq"]),
            )
        uid = self._next_uid(conn, target)
        modseq = self._bump(conn, box, {source, target})
        self._tombstone(conn, source, int(row["uid"]), modseq)
        conn.execute(
            "UPDATE messages SET folder_id=?, uid=?, modseq=? WHERE id=?",
            (target, uid, modseq, row["id"]),
        )
        return Placement(message_id=int(row["id"]), folder_id=target, uid=uid, modseq=modseq)

    def copy(self, mailbox: str, message_id: int, folder: FolderRef) -> Placement:
        """A new message in ``folder`` with the same content, flags and received time."""
        box = self._mailbox(mailbox)
        with self._write() as conn:
            row = self._message_row(conn, box, message_id)
            target = tree.folder_id(conn, box, folder)
            return self._place(
                conn, box, target, int(row["content_id"]), to_flags(row), int(row["received_at"])
            )

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

    def _remove(self, conn: sqlite3.Connection, row: sqlite3.Row, modseq: int) -> None:
        conn.execute("DELETE FROM messages WHERE id=?", (row["id"],))
        self._tombstone(conn, int(row["folder_id"]), int(row["uid"]), modseq)
        self._collect(conn, [int(row["content_id"])])

    def _tombstone(self, conn: sqlite3.Connection, folder_id: int, uid: int, modseq: int) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO expunged(folder_id, uid, modseq) VALUES (?,?,?)",
            (folder_id, uid, modseq),
        )

    def _collect(self, conn: sqlite3.Connection, content_ids: Sequence[int]) -> None:
        """Drop contents no message refers to any more."""
        for content_id in content_ids:
            conn.execute(
                "DELETE FROM contents WHERE id=? AND NOT EXISTS "
                "(SELECT 1 FROM messages WHERE content_id=?)",
                (content_id, content_id),
            )

    # ------------------------------------------------------------------ IMAP

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

    # ------------------------------------------------------------ submission

    def submit(self, mailbox: str, message_id: int) -> Placement:
        """Move a composed message to the Outbox, where the Mail Submission service finds it."""
        return self.move(mailbox, message_id, WellKnownFolder.OUTBOX.value)

    def pending_submissions(self, limit: int = 100) -> list[PendingSubmission]:
        """Messages waiting in the Outbox of any mailbox of this database, oldest first."""
        check_page(0, limit, MAX_PAGE_SIZE)
        with self._lock:
            rows = self._conn.execute(
                f"SELECT b.name AS mailbox_name, {SUMMARY_COLUMNS} {_FROM_MESSAGES} "
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

    # --------------------------------------------------------------- helpers

    def _message_row(
        self, conn: sqlite3.Connection, box: MailboxRow, message_id: int
    ) -> sqlite3.Row:
        row = conn.execute(
            "SELECT * FROM messages WHERE id=? AND mailbox_id=?", (message_id, box.id)
        ).fetchone()
        if row is None:
            raise _no_message(box, message_id)
        assert isinstance(row, sqlite3.Row)
        return row

    def _summary_of(self, conn: sqlite3.Connection, message_id: int) -> MessageSummary:
        row = conn.execute(
            f"SELECT {SUMMARY_COLUMNS} {_FROM_MESSAGES} WHERE m.id=?", (message_id,)
        ).fetchone()
        return to_summary(row)


def _no_message(box: MailboxRow, message_id: int) -> MessageNotFound:
    return MessageNotFound(f"mailbox {box.name} has no message {message_id}")
