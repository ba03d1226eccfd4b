"""The core of a mailbox database: its connection, transactions and shared row operations.

:class:`DatabaseCore` owns the SQLite connection (one writer behind a lock),
runs every change as one ``BEGIN IMMEDIATE`` transaction and tells
subscribers after it commits, provisions mailboxes, and holds the row
operations that several kinds of change share (placing, moving and removing
a message, writing its flags).  :class:`~sitemail.mailbox.database.StoreDatabase`
builds the public operations on it.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.mailbox import folder_tree as tree
from sitemail.mailbox.errors import MessageNotFound, StoreUnavailable
from sitemail.mailbox.folder_tree import WELL_KNOWN_ORDER
from sitemail.mailbox.limits import DEFAULT_MAX_MESSAGE_SIZE, mailbox_key
from sitemail.mailbox.readers import connect
from sitemail.mailbox.records import FLAG_NAMES, Flags, MessageSummary, Placement, WellKnownFolder
from sitemail.mailbox.rows import SUMMARY_COLUMNS, MailboxRow, to_summary, to_us
from sitemail.mailbox.schema import (
    FOLDER_COLUMNS,
    FOLDER_SCHEMA,
    ITEM_SCHEMA,
    SCHEMA,
    SCHEMA_VERSION,
    SETTINGS_SCHEMA,
)
from sitemail.mailbox.system_folders import SYSTEM_FOLDERS, TOP

#: The messages of a query with their content, as every summary query reads them.
FROM_MESSAGES = "FROM messages m JOIN contents c ON c.id=m.content_id"


#: Numbers the StoreDatabase objects of this process (see version).
_INSTANCES = itertools.count(1)


@dataclass(frozen=True)
class StoreChange:
    """Something changed in these folders of a mailbox (told to subscribers after commit)."""

    mailbox: str
    folder_ids: frozenset[int]
    modseq: int


class DatabaseCore:
    """The mailbox database file ``path`` (created if missing): connection and plumbing."""

    # ------------------------------------------------------ plumbing

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
        self._boxes: dict[str, MailboxRow] = {}
        self._subscribers: list[Callable[[StoreChange], None]] = []
        self._pending: list[StoreChange] = []
        self._writes = 0  # this connection's commits (see version)
        self._instance = next(_INSTANCES)  # and which connection: another starts again at 0
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
            for statement in (*ITEM_SCHEMA, *SETTINGS_SCHEMA):
                conn.execute(statement)
            columns = {str(r[1]) for r in conn.execute("PRAGMA table_info(folders)")}
            for column, declaration in FOLDER_COLUMNS:
                if column not in columns:
                    conn.execute(f"ALTER TABLE folders ADD COLUMN {column} {declaration}")
            for statement in FOLDER_SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES ('database', ?)", (self.name,)
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()

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
                self._writes += 1
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

    def version(self) -> tuple[int, int, int]:
        """A value that differs after any commit to the file since it was last read.

        SQLite's ``data_version`` moves when another connection (another process)
        commits; this connection's own commits are counted here.  What was read
        after a version was taken may be kept under it: a later read that gets
        the same version would read the same rows.  It names this object too
        (another one on the file counts from the start again).
        """
        with self._lock:
            return self._version()

    def version_if_free(self) -> tuple[int, int, int] | None:
        """:meth:`version` when no other thread holds the database, else ``None``.

        For the event loop: a page asked again with nothing committed is answered
        from what was kept without a thread hand-off (a tenth of the store's time
        per OWA page), and never waits behind a writer's fsync.
        """
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._version()
        finally:
            self._lock.release()

    def _version(self) -> tuple[int, int, int]:
        others = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        return (self._instance, others, self._writes)

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

    # ----------------------------------------------------- mailboxes

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
        known = self._boxes.get(name)
        if known is not None:
            return known  # a mailbox's row is never deleted: its id stays
        with self._lock:
            row = self._conn.execute("SELECT id FROM mailboxes WHERE name=?", (name,)).fetchone()
            if row is not None:
                box = MailboxRow(int(row[0]), name)
                self._provision_missing(box)
            else:
                with self._write() as conn:
                    cur = conn.execute(
                        "INSERT INTO mailboxes(name, modseq, created_at) VALUES (?, 1, ?)",
                        (name, self._now_us()),
                    )
                    assert cur.lastrowid is not None
                    box = MailboxRow(cur.lastrowid, name)
                    for well_known in WELL_KNOWN_ORDER:
                        self._insert_folder(conn, box, None, well_known.display_name, well_known)
                    self._insert_system_folders(conn, box, set())
            self._boxes[name] = box
            return box

    def _provision_missing(self, box: MailboxRow) -> None:
        """Add the default folders a mailbox made by an older sitemail lacks.

        (Calendar, Contacts, Journal, Notes and Tasks came later than the mail
        folders.)  A folder of the user's at the top with a default folder's
        name becomes that default folder, as Exchange's setup adopts it.
        """
        present = {
            str(r[0])
            for r in self._conn.execute(
                "SELECT well_known FROM folders WHERE mailbox_id=? AND well_known IS NOT NULL",
                (box.id,),
            )
        }
        missing = [w for w in WELL_KNOWN_ORDER if w.value not in present]
        systems = {
            str(r[0])
            for r in self._conn.execute(
                "SELECT system FROM folders WHERE mailbox_id=? AND system IS NOT NULL", (box.id,)
            )
        }
        if not missing and systems >= {s.key for s in SYSTEM_FOLDERS}:
            return
        with self._write() as conn:
            self._insert_system_folders(conn, box, systems)
            for well_known in missing:
                same_name = conn.execute(
                    "SELECT id FROM folders WHERE mailbox_id=? AND parent_key=0 AND name_key=?",
                    (box.id, well_known.display_name.casefold()),
                ).fetchone()
                if same_name is not None:
                    conn.execute(
                        "UPDATE folders SET well_known=? WHERE id=?",
                        (well_known.value, int(same_name[0])),
                    )
                else:
                    self._insert_folder(conn, box, None, well_known.display_name, well_known)

    def _insert_system_folders(
        self, conn: sqlite3.Connection, box: MailboxRow, present: set[str]
    ) -> None:
        """Create Exchange's own folders (those not ``present``), parents first.

        In the Top of Information Store, a user's folder of the same name
        becomes the system folder, as Exchange's provisioning adopts it."""
        for system in SYSTEM_FOLDERS:
            if system.key in present:
                continue
            in_top = system.parent in (None, TOP)
            parent = None if in_top else tree.folder_id(conn, box, str(system.parent))
            parent_key = tree.ROOT_KEY if system.parent is None else parent or 0
            same_name = conn.execute(
                "SELECT id FROM folders WHERE mailbox_id=? AND parent_key=? AND name_key=?",
                (box.id, parent_key, system.name.casefold()),
            ).fetchone()
            if same_name is not None:
                conn.execute(
                    "UPDATE folders SET system=?, folder_class=? WHERE id=?",
                    (system.key, system.folder_class, int(same_name[0])),
                )
                continue
            self._insert_folder(
                conn,
                box,
                parent,
                system.name,
                None,
                system=system.key,
                folder_class=system.folder_class,
                at_root=system.parent is None,
            )

    def _insert_folder(
        self,
        conn: sqlite3.Connection,
        box: MailboxRow,
        parent_id: int | None,
        name: str,
        well_known: WellKnownFolder | None,
        *,
        system: str | None = None,
        folder_class: str = "IPF.Note",
        at_root: bool = False,
    ) -> int:
        tree.check_free(conn, box, parent_id, name, at_root=at_root)
        cur = conn.execute(
            "INSERT INTO folders(mailbox_id, parent_id, parent_key, name, name_key, well_known, "
            "uidvalidity, uidnext, modseq, system, folder_class) VALUES (?,?,?,?,?,?,?,1,1,?,?)",
            (
                box.id,
                parent_id,
                tree.ROOT_KEY if at_root else parent_id or 0,
                name,
                name.casefold(),
                well_known.value if well_known else None,
                self._new_uidvalidity(conn),
                system,
                folder_class,
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    # ---------------------------------------- rows every change uses

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

    def _write_flags(
        self, conn: sqlite3.Connection, message_id: int, flags: Flags, modseq: int
    ) -> None:
        conn.execute(
            "UPDATE messages SET seen=?, answered=?, flagged=?, deleted=?, draft=?, modseq=? "
            "WHERE id=?",
            (*(int(getattr(flags, f)) for f in FLAG_NAMES), modseq, message_id),
        )

    def _remove(self, conn: sqlite3.Connection, row: sqlite3.Row, modseq: int) -> None:
        conn.execute("DELETE FROM message_properties WHERE message_id=?", (row["id"],))
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

    def _message_row(
        self, conn: sqlite3.Connection, box: MailboxRow, message_id: int
    ) -> sqlite3.Row:
        row = conn.execute(
            "SELECT * FROM messages WHERE id=? AND mailbox_id=?", (message_id, box.id)
        ).fetchone()
        if row is None:
            raise no_message(box, message_id)
        assert isinstance(row, sqlite3.Row)
        return row

    def _summary_of(self, conn: sqlite3.Connection, message_id: int) -> MessageSummary:
        row = conn.execute(
            f"SELECT {SUMMARY_COLUMNS} {FROM_MESSAGES} WHERE m.id=?", (message_id,)
        ).fetchone()
        return to_summary(row)


def no_message(box: MailboxRow, message_id: int) -> MessageNotFound:
    return MessageNotFound(f"mailbox {box.name} has no message {message_id}")
