"""The shared machinery of the queue store: transactions, rows, reports.

Threading: one SQLite connection, guarded by one re-entrant lock.  Every
public method of the store is blocking and thread-safe; each state change is
one short transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``, an fsync of the
WAL).  From asyncio call them through ``asyncio.to_thread`` (or accept that a
call blocks the loop for one fsync, a few milliseconds).  Listeners run after
the commit, outside the lock, in the thread that made the change.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from sitemail.clock import Clock
from sitemail.mailflow.dsn import (
    ADMIN_REMOVED_REPLY,
    POISON_ADMIN_REMOVED_REPLY,
    DsnAction,
    DsnRecipient,
    OriginalMessage,
    ReportOrigin,
    build_delay_dsn,
    build_ndr,
    delay_subject,
    local_failure,
    ndr_subject,
    notify_allows,
)
from sitemail.mailflow.envelope import Envelope, EnvelopeRecipient
from sitemail.mailflow.tracking_log import TrackingEventId, TrackingSource
from sitemail.org.model import TransportSettings

from .errors import QueueError
from .identity import message_identity, queue_identity
from .model import (
    POISON,
    POISON_NEXT_HOP,
    SHADOW_PEER,
    SUBMISSION,
    SUBMISSION_NEXT_HOP,
    UNREACHABLE,
    UNREACHABLE_NEXT_HOP,
    ZERO_GUID,
    DeliveryType,
    QueuedMessage,
    QueuedRecipient,
    QueueEvent,
    QueueEventKind,
    QueueKind,
    QueueRef,
)
from .spool import read_header_block, unlink_quietly, write_copy, write_spool_file

log = logging.getLogger(__name__)

# Whatever a listener returns is ignored.
Listener = Callable[[QueueEvent], object]
BatchListener = Callable[[list[QueueEvent]], object]

SPECIAL_KEYS = {
    QueueKind.SUBMISSION: "special:Submission",
    QueueKind.UNREACHABLE: "special:Unreachable",
    QueueKind.POISON: "special:Poison",
}
_SPECIAL_ROWS = {
    QueueKind.SUBMISSION: (DeliveryType.UNDEFINED, SUBMISSION_NEXT_HOP),
    QueueKind.UNREACHABLE: (DeliveryType.UNREACHABLE, UNREACHABLE_NEXT_HOP),
    QueueKind.POISON: (DeliveryType.UNDEFINED, POISON_NEXT_HOP),
}
_SPECIAL_NAMES = {
    QueueKind.SUBMISSION: SUBMISSION,
    QueueKind.UNREACHABLE: UNREACHABLE,
    QueueKind.POISON: POISON,
}
# pending_remove values
REMOVE_WITHOUT_NDR = 1
REMOVE_WITH_NDR = 2


def ts(value: datetime) -> float:
    return value.timestamp()


def dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def dt_required(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


@dataclass
class Tx:
    """One open transaction and what to do once it commits."""

    conn: sqlite3.Connection
    now: datetime
    events: list[QueueEvent] = field(default_factory=list)
    on_commit: list[Callable[[], None]] = field(default_factory=list)
    unlink_after: list[Path] = field(default_factory=list)
    created_files: list[Path] = field(default_factory=list)  # removed on rollback
    allocated: bool = False  # ids were allocated: save the counter

    @property
    def now_ts(self) -> float:
        return self.now.timestamp()

    def execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        return self.conn.execute(sql, params)

    def one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return list(self.conn.execute(sql, params).fetchall())

    def scalar(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the transaction that an exception undoes alone, database and lists alike.

        What a part asks to happen after the commit (events, on-commit actions,
        files) lives in this object's lists; they are cut back to where the part
        began, so nothing of an undone part reaches memory or the disk.
        """
        marks = (len(self.events), len(self.on_commit), len(self.unlink_after))
        created = len(self.created_files)
        self.conn.execute("SAVEPOINT part")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK TO part")
            self.conn.execute("RELEASE part")
            del self.events[marks[0] :], self.on_commit[marks[1] :], self.unlink_after[marks[2] :]
            for path in self.created_files[created:]:
                unlink_quietly(path)
            del self.created_files[created:]
            raise
        self.conn.execute("RELEASE part")


@dataclass
class Lease:
    """Items a worker holds: a categorizer take or a delivery batch."""

    id: int
    queue_id: int
    item_ids: set[int]
    connected: bool = False
    # Categorizer takes end by themselves when their last message is routed;
    # delivery batches end with finish() (the connection outlives the reports).
    auto_end: bool = False


class StoreCore:
    """State and helpers shared by the parts of :class:`QueueStore`."""

    def __init__(
        self,
        *,
        conn: sqlite3.Connection,
        queue_dir: Path,
        server: str,
        fqdn: str,
        clock: Clock,
        settings: TransportSettings,
        dsn_from: str,
        listeners: Iterable[Listener] = (),
    ) -> None:
        self.server = server
        self.fqdn = fqdn
        self.clock = clock
        # Replace (or mutate) at run time: Set-TransportServer takes effect at once.
        self.settings = settings
        self.dsn_from = dsn_from
        self.queue_dir = queue_dir
        self.spool_dir = queue_dir / "spool"
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.RLock()
        self._listeners: list[Listener] = list(listeners)
        self._batch_listeners: list[BatchListener] = []
        self._leases: dict[int, Lease] = {}
        self._item_lease: dict[int, int] = {}
        self._next_lease = 1
        self._special: dict[QueueKind, int] = {}
        self._next_id = 1

    # ------------------------------------------------------------------
    # Listeners and transactions
    # ------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every :class:`QueueEvent`, after its commit."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.remove(listener)

    def add_batch_listener(self, listener: BatchListener) -> None:
        """Call ``listener`` with the events of each commit together (one log append)."""
        with self._lock:
            self._batch_listeners.append(listener)

    def _dispatch(self, events: list[QueueEvent]) -> None:
        if not events:
            return
        with self._lock:
            listeners = list(self._listeners)
            batch_listeners = list(self._batch_listeners)
        for batch_listener in batch_listeners:
            try:
                batch_listener(events)
            except Exception:
                log.exception("queue event listener failed on %d events", len(events))
        for event in events:
            for listener in listeners:
                try:
                    listener(event)
                except Exception:
                    # A broken listener (a full log disk) must not undo a commit
                    # or stop the others.
                    log.exception("queue event listener failed on %s", event.kind)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise QueueError("the queue store is closed")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[Tx]:
        """One transaction under the store lock; events go out after the commit."""
        with self._lock:
            conn = self._db()
            tx = Tx(conn, self.clock.now())
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield tx
                if tx.allocated:
                    self._save_counter(tx)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                for path in tx.created_files:
                    unlink_quietly(path)
                raise
            for action in tx.on_commit:
                action()
            for path in tx.unlink_after:
                # After the commit: a crash before this leaves an orphan that
                # recovery removes, never a message row without its body.
                unlink_quietly(path)
        self._dispatch(tx.events)

    @contextmanager
    def _read(self) -> Iterator[Tx]:
        with self._lock:
            yield Tx(self._db(), self.clock.now())

    def _alloc_id(self, tx: Tx) -> int:
        # Ids are never reused, even after the newest messages left and the
        # process restarted: the high-water mark is saved with the transaction.
        new_id = self._next_id
        self._next_id += 1
        tx.allocated = True
        return new_id

    def _save_counter(self, tx: Tx) -> None:
        tx.execute(
            "INSERT INTO counters(name, value) VALUES('next_id', ?) "
            "ON CONFLICT(name) DO UPDATE SET value=excluded.value",
            (self._next_id,),
        )

    def _load_counters(self, tx: Tx) -> None:
        stored = tx.scalar("SELECT value FROM counters WHERE name='next_id'") or 1
        top_item = tx.scalar("SELECT MAX(id) FROM items") or 0
        top_msg = tx.scalar("SELECT MAX(id) FROM messages") or 0
        self._next_id = max(int(stored), int(top_item) + 1, int(top_msg) + 1)

    # ------------------------------------------------------------------
    # Queues
    # ------------------------------------------------------------------

    def _ensure_special_queues(self, tx: Tx) -> None:
        for kind, key in SPECIAL_KEYS.items():
            row = tx.one("SELECT id FROM queues WHERE key=?", (key,))
            if row is None:
                delivery_type, next_hop = _SPECIAL_ROWS[kind]
                cur = tx.execute(
                    "INSERT INTO queues(kind, key, delivery_type, next_hop_domain, "
                    "next_hop_connector) VALUES(?,?,?,?,?)",
                    (kind.value, key, delivery_type.value, next_hop, ZERO_GUID),
                )
                self._special[kind] = int(cur.lastrowid or 0)
            else:
                self._special[kind] = int(row["id"])

    def _special_id(self, kind: QueueKind) -> int:
        return self._special[kind]

    def _queue_name(self, row: sqlite3.Row) -> str:
        kind = QueueKind(row["kind"])
        return _SPECIAL_NAMES[kind] if kind in _SPECIAL_NAMES else str(row["id"])

    def _queue_identity(self, row: sqlite3.Row) -> str:
        return queue_identity(self.server, self._queue_name(row))

    def _queue_ref(self, row: sqlite3.Row) -> QueueRef:
        return QueueRef(
            queue_id=int(row["id"]),
            identity=self._queue_identity(row),
            kind=QueueKind(row["kind"]),
            delivery_type=DeliveryType(row["delivery_type"]),
            next_hop_domain=str(row["next_hop_domain"]),
            key=str(row["key"]),
            tls_domain=str(row["tls_domain"]),
            next_hop_connector=str(row["next_hop_connector"]),
        )

    def _queue_row(self, tx: Tx, queue_id: int) -> sqlite3.Row:
        row = tx.one("SELECT * FROM queues WHERE id=?", (queue_id,))
        if row is None:
            raise QueueError(f"queue {queue_id} vanished while in use")
        return row

    def _mark_idle_if_empty(self, tx: Tx, queue_id: int) -> None:
        tx.execute(
            "UPDATE queues SET idle_since=? WHERE id=? AND kind='delivery' AND idle_since IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM items WHERE queue_id=?)",
            (tx.now_ts, queue_id, queue_id),
        )

    # ------------------------------------------------------------------
    # Messages and items
    # ------------------------------------------------------------------

    def _body_path(self, tx: Tx, msg: sqlite3.Row) -> Path:
        """The message's spool file, for a reader (delivery, a report, Export-Message).

        A body the database keeps (up to 64 KiB) gets its file when a reader
        first needs one: acceptance writes nothing but the commit.  The file is
        written aside and renamed, and one of the wrong size (a crash in the
        middle) is written again, so a reader never sees half a body.
        """
        path = self.spool_dir / str(msg["body_file"])
        try:
            if path.stat().st_size == int(msg["size"]):
                return path
        except FileNotFoundError:
            pass
        data = tx.scalar("SELECT data FROM bodies WHERE message_id=?", (msg["id"],))
        if data is not None:
            write_copy(path, bytes(data))
        return path

    def _insert_message(self, tx: Tx, envelope: Envelope, body_file: str, size: int) -> int:
        """Record an accepted message with one item in the Submission queue."""
        message_id = self._alloc_id(tx)
        scl = _scl(envelope.headers)
        tx.execute(
            "INSERT INTO messages(id, mail_from, internet_message_id, subject, size, body_file, "
            "received_at, client_ip, client_hostname, connector_id, auth_as, body_type, ret, "
            "envid, source, headers, scl) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                message_id,
                envelope.mail_from,
                envelope.internet_message_id,
                envelope.subject,
                size,
                body_file,
                ts(envelope.received_at),
                envelope.client_ip,
                envelope.client_hostname,
                envelope.connector_id,
                envelope.auth_as,
                envelope.body_type,
                envelope.ret,
                envelope.envid,
                envelope.source,
                json.dumps(envelope.headers, sort_keys=True),
                scl,
            ),
        )
        # The Submission item shares the message's id: <SERVER>\Submission\<InternalId>.
        tx.execute(
            "INSERT INTO items(id, message_id, queue_id) VALUES(?,?,?)",
            (message_id, message_id, self._special_id(QueueKind.SUBMISSION)),
        )
        tx.conn.executemany(
            "INSERT INTO recipients(message_id, item_id, address, notify, orcpt) VALUES(?,?,?,?,?)",
            [(message_id, message_id, r.address, r.notify, r.orcpt) for r in envelope.recipients],
        )
        return message_id

    def _new_item(
        self,
        tx: Tx,
        message_id: int,
        queue_id: int,
        recipient_ids: Sequence[int],
        *,
        last_error: str = "",
        crash_count: int = 0,
    ) -> int:
        item_id = self._alloc_id(tx)
        tx.execute(
            "INSERT INTO items(id, message_id, queue_id, last_error, crash_count) "
            "VALUES(?,?,?,?,?)",
            (item_id, message_id, queue_id, last_error, crash_count),
        )
        tx.conn.executemany(
            "UPDATE recipients SET item_id=? WHERE id=?", [(item_id, r) for r in recipient_ids]
        )
        tx.execute("UPDATE queues SET idle_since=NULL WHERE id=?", (queue_id,))
        return item_id

    def _move_item(self, tx: Tx, item: sqlite3.Row, queue_id: int, *, crash_count: int = 0) -> int:
        """Move an item's recipients into a new item of another queue (a new identity)."""
        rids = [
            int(r["id"]) for r in tx.all("SELECT id FROM recipients WHERE item_id=?", (item["id"],))
        ]
        new_id = self._new_item(
            tx, int(item["message_id"]), queue_id, rids, crash_count=crash_count
        )
        self._drop_item(tx, item)
        return new_id

    def _resubmit_queue(self, tx: Tx, row: sqlite3.Row) -> list[int]:
        """Everything of a queue that is not in flight or suspended goes back to Submission."""
        submission = self._special_id(QueueKind.SUBMISSION)
        sub_row = self._queue_row(tx, submission)
        moved = []
        for item in tx.all(
            "SELECT * FROM items WHERE queue_id=? AND locked=0 AND suspended=0 ORDER BY id",
            (row["id"],),
        ):
            moved.append(self._move_item(tx, item, submission))
            msg = self._message_row(tx, int(item["message_id"]))
            self._event(
                tx,
                QueueEventKind.RESUBMITTED,
                msg,
                queue=sub_row,
                detail=f"from {self._queue_identity(row)}",
            )
        return moved

    def _drop_item(self, tx: Tx, item: sqlite3.Row) -> None:
        item_id = int(item["id"])
        tx.execute("DELETE FROM items WHERE id=?", (item_id,))
        tx.execute("DELETE FROM shadows WHERE item_id=?", (item_id,))  # a shadow copy's key
        tx.on_commit.append(lambda: self._forget_item(item_id))
        self._mark_idle_if_empty(tx, int(item["queue_id"]))

    def _forget_item(self, item_id: int) -> None:
        lease_id = self._item_lease.pop(item_id, None)
        if lease_id is not None:
            lease = self._leases.get(lease_id)
            if lease is not None:
                lease.item_ids.discard(item_id)
                if lease.auto_end and not lease.item_ids:
                    del self._leases[lease.id]

    def _settle_items(self, tx: Tx, item_ids: Iterable[int]) -> set[int]:
        """Drop items left without recipients and messages left without items.

        Returns the ids of the items that are gone.
        """
        gone: set[int] = set()
        messages: set[int] = set()
        for item_id in set(item_ids):
            item = tx.one("SELECT * FROM items WHERE id=?", (item_id,))
            if item is None:
                continue
            if tx.scalar("SELECT 1 FROM recipients WHERE item_id=? LIMIT 1", (item_id,)) is None:
                self._drop_item(tx, item)
                gone.add(item_id)
                messages.add(int(item["message_id"]))
        for message_id in messages:
            if tx.scalar("SELECT 1 FROM items WHERE message_id=? LIMIT 1", (message_id,)):
                continue
            row = tx.one("SELECT body_file, headers FROM messages WHERE id=?", (message_id,))
            body = row["body_file"] if row is not None else None
            peer = json.loads(str(row["headers"])).get(SHADOW_PEER) if row is not None else None
            if peer:
                # Done here: the hub that shadows it may drop its copy (next XQDISCARD).
                tx.execute(
                    "INSERT INTO discards(peer, remote_id, created) VALUES(?,?,?)",
                    (str(peer).lower(), message_id, tx.now_ts),
                )
            tx.execute("DELETE FROM recipients WHERE message_id=?", (message_id,))
            tx.execute("DELETE FROM messages WHERE id=?", (message_id,))
            tx.execute("DELETE FROM bodies WHERE message_id=?", (message_id,))
            if body:
                tx.unlink_after.append(self.spool_dir / str(body))
        return gone

    def _message_row(self, tx: Tx, message_id: int) -> sqlite3.Row:
        row = tx.one("SELECT * FROM messages WHERE id=?", (message_id,))
        if row is None:
            raise QueueError(f"message {message_id} has items but no message row")
        return row

    def _envelope(self, msg: sqlite3.Row, recipients: Sequence[sqlite3.Row]) -> Envelope:
        return Envelope(
            mail_from=str(msg["mail_from"]),
            recipients=tuple(
                EnvelopeRecipient(str(r["address"]), r["notify"], r["orcpt"]) for r in recipients
            ),
            internet_message_id=str(msg["internet_message_id"]),
            received_at=dt_required(float(msg["received_at"])),
            client_ip=str(msg["client_ip"]),
            client_hostname=str(msg["client_hostname"]),
            connector_id=str(msg["connector_id"]),
            auth_as=msg["auth_as"],
            body_type=msg["body_type"],
            ret=msg["ret"],
            envid=msg["envid"],
            subject=str(msg["subject"]),
            source=str(msg["source"]),
            headers=dict(json.loads(str(msg["headers"]))),
        )

    def _queued_message(self, tx: Tx, item: sqlite3.Row, queue_row: sqlite3.Row) -> QueuedMessage:
        msg = self._message_row(tx, int(item["message_id"]))
        rcpts = tx.all("SELECT * FROM recipients WHERE item_id=? ORDER BY id", (item["id"],))
        # A body the database keeps goes out from memory: no spool file is written for
        # it (and read, and unlinked) on its way through the queue.
        data = tx.scalar("SELECT data FROM bodies WHERE message_id=?", (msg["id"],))
        body = None if data is None else bytes(data)
        return QueuedMessage(
            item_id=int(item["id"]),
            identity=message_identity(self.server, self._queue_name(queue_row), int(item["id"])),
            internal_id=int(msg["id"]),
            envelope=self._envelope(msg, rcpts),
            recipients=tuple(
                QueuedRecipient(int(r["id"]), str(r["address"]), r["notify"], r["orcpt"])
                for r in rcpts
            ),
            size=int(msg["size"]),
            body_path=self.spool_dir / str(msg["body_file"])
            if body is not None
            else self._body_path(tx, msg),
            retry_count=int(item["retry_count"]),
            last_error=str(item["last_error"]),
            body=body,
        )

    # ------------------------------------------------------------------
    # Leases
    # ------------------------------------------------------------------

    def _lock_items(
        self, tx: Tx, queue_id: int, items: Sequence[sqlite3.Row], *, auto_end: bool = False
    ) -> Lease:
        """Mark items in flight (durably: a crash now counts towards poison)."""
        lease = Lease(self._next_lease, queue_id, {int(i["id"]) for i in items}, auto_end=auto_end)
        self._next_lease += 1
        tx.conn.executemany("UPDATE items SET locked=1 WHERE id=?", [(i,) for i in lease.item_ids])

        def register() -> None:
            self._leases[lease.id] = lease
            for item_id in lease.item_ids:
                self._item_lease[item_id] = lease.id

        tx.on_commit.append(register)
        return lease

    def _unlock_items(self, tx: Tx, item_ids: Iterable[int]) -> None:
        """Give items back to their queue; apply a removal asked for while in flight."""
        ids = list(item_ids)
        if not ids:
            return
        tx.conn.executemany("UPDATE items SET locked=0 WHERE id=?", [(i,) for i in ids])
        for item_id in ids:
            tx.on_commit.append(partial(self._forget_item, item_id))
            item = tx.one("SELECT * FROM items WHERE id=?", (item_id,))
            if item is not None and int(item["pending_remove"]):
                self._remove_item(tx, item, with_ndr=int(item["pending_remove"]) == REMOVE_WITH_NDR)

    def _remove_item(self, tx: Tx, item: sqlite3.Row, *, with_ndr: bool) -> None:
        """Remove-Message: the item's recipients leave the queue, NDR'd or silently."""
        queue = self._queue_row(tx, int(item["queue_id"]))
        msg = self._message_row(tx, int(item["message_id"]))
        rcpts = tx.all("SELECT * FROM recipients WHERE item_id=? ORDER BY id", (item["id"],))
        if with_ndr:
            reply = (
                POISON_ADMIN_REMOVED_REPLY
                if QueueKind(queue["kind"]) is QueueKind.POISON
                else ADMIN_REMOVED_REPLY
            )
            self._fail_recipients(
                tx,
                msg,
                [(r, local_failure(str(r["address"]), reply, orcpt=r["orcpt"])) for r in rcpts],
                source=TrackingSource.QUEUE,
                queue=queue,
            )
        else:
            tx.execute("DELETE FROM recipients WHERE item_id=?", (item["id"],))
            self._event(
                tx,
                QueueEventKind.REMOVED,
                msg,
                tracking=TrackingEventId.FAIL,
                source=TrackingSource.QUEUE,
                recipients=[str(r["address"]) for r in rcpts],
                queue=queue,
                detail="removed by administrator without NDR",
            )
        self._settle_items(tx, [int(item["id"])])

    # ------------------------------------------------------------------
    # Failures and reports
    # ------------------------------------------------------------------

    def _fail_recipients(
        self,
        tx: Tx,
        msg: sqlite3.Row,
        failures: Sequence[tuple[sqlite3.Row, DsnRecipient]],
        *,
        source: TrackingSource,
        queue: sqlite3.Row,
    ) -> int | None:
        """Fail recipients for good: one NDR for those who may get one, rows deleted.

        The caller settles the items afterwards.  No NDR ever goes to the null
        sender (that is how a report about a report is avoided).
        """
        if not failures:
            return None
        sender = str(msg["mail_from"])
        reportable = [
            d for r, d in failures if sender and notify_allows(r["notify"], DsnAction.FAILED)
        ]
        tx.conn.executemany(
            "DELETE FROM recipients WHERE id=?", [(int(r["id"]),) for r, _ in failures]
        )
        self._event(
            tx,
            QueueEventKind.FAILED,
            msg,
            tracking=TrackingEventId.FAIL,
            source=source,
            recipients=[d.address for _, d in failures],
            statuses=[d.reply for _, d in failures],
            queue=queue,
        )
        if not reportable:
            return None
        return self._submit_report(tx, msg, reportable, DsnAction.FAILED)

    def _submit_report(
        self,
        tx: Tx,
        msg: sqlite3.Row,
        recipients: Sequence[DsnRecipient],
        action: DsnAction,
        *,
        retry_until: datetime | None = None,
    ) -> int:
        """Build a report about ``msg`` and submit it as a new message from ``<>``."""
        original = OriginalMessage(
            sender=str(msg["mail_from"]),
            internet_message_id=str(msg["internet_message_id"]),
            subject=str(msg["subject"]),
            headers=read_header_block(self._body_path(tx, msg)),
            received_at=dt_required(float(msg["received_at"])),
            envid=msg["envid"],
        )
        report_id = f"<{uuid.uuid4().hex}@{self.fqdn}>"
        origin = ReportOrigin(self.fqdn, self.dsn_from, tx.now, report_id)
        if action is DsnAction.FAILED:
            body = build_ndr(original, recipients, origin)
            subject = ndr_subject(original.subject)
        else:
            assert retry_until is not None
            body = build_delay_dsn(original, recipients, origin, retry_until=retry_until)
            subject = delay_subject(original.subject)
        path = write_spool_file(self.spool_dir, body)
        tx.created_files.append(path)
        envelope = Envelope(
            mail_from="",
            recipients=(EnvelopeRecipient(original.sender),),
            internet_message_id=report_id,
            received_at=tx.now,
            subject=subject,
            source="DSN",
            client_hostname=self.fqdn,
        )
        new_id = self._insert_message(tx, envelope, path.name, len(body))
        tx.events.append(
            QueueEvent(
                kind=QueueEventKind.DSN,
                time=tx.now,
                tracking=TrackingEventId.DSN,
                source=TrackingSource.DSN,
                internal_id=new_id,
                internet_message_id=report_id,
                sender="",
                recipients=(original.sender,),
                size=len(body),
                subject=subject,
                queue=queue_identity(self.server, SUBMISSION),
                reference=original.internet_message_id,
                detail=action.value,
            )
        )
        return new_id

    def _queue_event(
        self, tx: Tx, kind: QueueEventKind, queue: sqlite3.Row, detail: str = ""
    ) -> QueueEvent:
        return QueueEvent(
            kind=kind,
            time=tx.now,
            queue=self._queue_identity(queue),
            delivery_type=DeliveryType(queue["delivery_type"]),
            next_hop_domain=str(queue["next_hop_domain"]),
            detail=detail,
        )

    def _event(
        self,
        tx: Tx,
        kind: QueueEventKind,
        msg: sqlite3.Row,
        *,
        tracking: TrackingEventId | None = None,
        source: TrackingSource | None = None,
        recipients: Sequence[str] = (),
        statuses: Sequence[str] = (),
        queue: sqlite3.Row | None = None,
        detail: str = "",
    ) -> None:
        tx.events.append(
            QueueEvent(
                kind=kind,
                time=tx.now,
                tracking=tracking,
                source=source,
                internal_id=int(msg["id"]),
                internet_message_id=str(msg["internet_message_id"]),
                sender=str(msg["mail_from"]),
                recipients=tuple(recipients),
                statuses=tuple(statuses),
                size=int(msg["size"]),
                subject=str(msg["subject"]),
                queue="" if queue is None else self._queue_identity(queue),
                delivery_type=None if queue is None else DeliveryType(queue["delivery_type"]),
                next_hop_domain="" if queue is None else str(queue["next_hop_domain"]),
                client_ip=str(msg["client_ip"]),
                client_hostname=str(msg["client_hostname"]),
                connector_id=str(msg["connector_id"]),
                detail=detail,
            )
        )


def _scl(headers: dict[str, str]) -> int:
    # The receive side may put the spam confidence level among the transport
    # properties; -1 (trusted) is what authenticated and internal mail gets.
    for key, value in headers.items():
        if key.casefold() in ("scl", "x-ms-exchange-organization-scl"):
            try:
                return int(value)
            except ValueError:
                return -1
    return -1
