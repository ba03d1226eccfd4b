"""The administrator's side: Get-Queue, Get-Message and the queue cmdlets (§5.4).

Rules that come from Exchange (exchange-2010.md §5.4 and the 2010 cmdlet help):

- Retry-Queue forces an immediate attempt, and only for a queue in Retry;
  ``-Resubmit $true`` sends the messages back through the categorizer, and
  is the only way to retry the Unreachable queue.
- Suspend-Queue: messages still enter the queue, none leave.
- Suspend-Message does not apply to Submission or Poison messages; a
  message in flight becomes PendingSuspend and is suspended if it comes back.
- Resume-Message applies only to Suspended messages; resuming a poison
  message resubmits it.
- Remove-Message does not apply to the Submission queue; a message in flight
  becomes PendingRemove.  No NDR is ever sent for a null-sender message.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from .core import REMOVE_WITH_NDR, REMOVE_WITHOUT_NDR, StoreCore, Tx, dt, dt_required
from .errors import InvalidQueueOperationError, MessageNotFoundError, QueueNotFoundError
from .identity import (
    QueueName,
    message_identity,
    parse_message_identity,
    parse_queue_identity,
    queue_identity,
)
from .model import (
    POISON,
    SUBMISSION,
    UNREACHABLE,
    DeliveryType,
    MessageInfo,
    MessageStatus,
    QueueEventKind,
    QueueInfo,
    QueueKind,
    QueueStatus,
)

_KIND_ORDER = {
    QueueKind.SUBMISSION: 0,
    QueueKind.DELIVERY: 1,
    QueueKind.SHADOW: 1,
    QueueKind.UNREACHABLE: 2,
    QueueKind.POISON: 3,
}


class AdminMixin(StoreCore):
    # ------------------------------------------------------------------
    # Get-Queue / Get-Message
    # ------------------------------------------------------------------

    def get_queues(self) -> list[QueueInfo]:
        """Get-Queue: Submission always; delivery queues while they exist; Unreachable
        and Poison when they hold messages (or, for Unreachable, when suspended)."""
        with self._read() as tx:
            counts = self._counts(tx)
            idle = self.settings.queue_max_idle_time.total_seconds()
            shown = []
            for row in tx.all("SELECT * FROM queues"):
                kind = QueueKind(row["kind"])
                count = counts.get(int(row["id"]), 0)
                if kind is QueueKind.POISON and not count:
                    continue
                if kind is QueueKind.UNREACHABLE and not count and not int(row["suspended"]):
                    continue
                if kind is QueueKind.SHADOW and not count:
                    continue  # a shadow queue is shown while it holds copies
                if (
                    kind is QueueKind.DELIVERY
                    and not count
                    and row["idle_since"] is not None
                    and not int(row["suspended"])
                    and float(row["idle_since"]) + idle <= tx.now_ts
                ):
                    continue  # past QueueMaxIdleTime: the next sweep deletes it
                shown.append((_KIND_ORDER[kind], int(row["id"]), self._queue_info(tx, row, count)))
            return [info for _, _, info in sorted(shown, key=lambda t: (t[0], t[1]))]

    def get_queue(self, identity: str) -> QueueInfo:
        with self._read() as tx:
            row = self._find_queue(tx, identity)
            return self._queue_info(tx, row, self._counts(tx).get(int(row["id"]), 0))

    def get_messages(self, queue: str | None = None) -> list[MessageInfo]:
        """Get-Message [-Queue <identity>]: every message, oldest first within a queue."""
        with self._read() as tx:
            if queue is None:
                queues = {int(r["id"]): r for r in tx.all("SELECT * FROM queues")}
                items = tx.all("SELECT * FROM items ORDER BY queue_id, id")
            else:
                row = self._find_queue(tx, queue)
                queues = {int(row["id"]): row}
                items = tx.all("SELECT * FROM items WHERE queue_id=? ORDER BY id", (row["id"],))
            ordered = sorted(
                items,
                key=lambda i: (
                    _KIND_ORDER[QueueKind(queues[int(i["queue_id"])]["kind"])],
                    int(i["queue_id"]),
                    int(i["id"]),
                ),
            )
            return [self._message_info(tx, i, queues[int(i["queue_id"])]) for i in ordered]

    def get_message(self, identity: str) -> MessageInfo:
        with self._read() as tx:
            item, queue = self._find_item(tx, identity)
            return self._message_info(tx, item, queue)

    def export_message(self, identity: str) -> bytes:
        """Export-Message: the message as stored (headers and body)."""
        with self._read() as tx:
            item, _ = self._find_item(tx, identity)
            return self._body_path(tx, self._message_row(tx, int(item["message_id"]))).read_bytes()

    # ------------------------------------------------------------------
    # Queue cmdlets
    # ------------------------------------------------------------------

    def retry_queue(self, identity: str, *, resubmit: bool = False) -> QueueInfo:
        """Retry-Queue [-Resubmit $true]."""
        with self._write() as tx:
            row = self._find_queue(tx, identity)
            kind = QueueKind(row["kind"])
            shown = self._queue_identity(row)
            if kind in (QueueKind.SUBMISSION, QueueKind.POISON, QueueKind.SHADOW):
                raise InvalidQueueOperationError(
                    f"Retry-Queue can't be used on {shown}: only delivery queues and the "
                    "Unreachable queue can be retried"
                )
            if kind is QueueKind.UNREACHABLE:
                if not resubmit:
                    raise InvalidQueueOperationError(
                        f"{shown} can only be retried with -Resubmit $true: its messages "
                        "need to go through the categorizer again"
                    )
                self._resubmit_queue(tx, row)
            else:
                status = self._queue_status(row)
                if status is not QueueStatus.RETRY:
                    raise InvalidQueueOperationError(
                        f"Retry-Queue can't be used on {shown} because its status is "
                        f"{status.value}; only a queue in Retry status can be retried"
                    )
                if resubmit:
                    self._resubmit_queue(tx, row)
                    tx.execute(
                        "UPDATE queues SET retry_count=0, next_retry_time=NULL, "
                        "retry_since=NULL WHERE id=?",
                        (row["id"],),
                    )
                else:
                    # The attempt is due now; if it fails, the ladder sets a new time.
                    tx.execute(
                        "UPDATE queues SET next_retry_time=? WHERE id=?", (tx.now_ts, row["id"])
                    )
            tx.events.append(self._queue_event(tx, QueueEventKind.CHANGED, row, "retry"))
            return self._fresh_queue_info(tx, int(row["id"]))

    def suspend_queue(self, identity: str) -> QueueInfo:
        """Suspend-Queue: new messages still enter, none leave."""
        return self._set_queue_suspended(identity, True)

    def resume_queue(self, identity: str) -> QueueInfo:
        return self._set_queue_suspended(identity, False)

    def resubmit_unreachable(self) -> int:
        """Send the Unreachable queue back to the categorizer (after a routing change).

        Does nothing while the Unreachable queue is suspended (§5.1).  Returns
        how many messages went back.
        """
        with self._write() as tx:
            row = self._queue_row(tx, self._special_id(QueueKind.UNREACHABLE))
            if int(row["suspended"]):
                return 0
            return len(self._resubmit_queue(tx, row))

    # ------------------------------------------------------------------
    # Message cmdlets
    # ------------------------------------------------------------------

    def suspend_message(self, identity: str) -> MessageInfo:
        with self._write() as tx:
            item, queue = self._find_item(tx, identity)
            kind = QueueKind(queue["kind"])
            if kind in (QueueKind.SUBMISSION, QueueKind.POISON):
                raise InvalidQueueOperationError(
                    f"{self._item_identity(item, queue)} can't be suspended: messages in the "
                    f"{_SHOWN[kind]} queue can't be suspended"
                )
            tx.execute("UPDATE items SET suspended=1 WHERE id=?", (item["id"],))
            tx.events.append(self._queue_event(tx, QueueEventKind.CHANGED, queue, "suspend"))
            return self._fresh_message_info(tx, int(item["id"]))

    def resume_message(self, identity: str) -> MessageInfo:
        """Resume-Message; a poison message goes back to Submission (a new identity)."""
        with self._write() as tx:
            item, queue = self._find_item(tx, identity)
            kind = QueueKind(queue["kind"])
            status = self._message_status(tx, item, queue)
            if status is not MessageStatus.SUSPENDED:
                raise InvalidQueueOperationError(
                    f"{self._item_identity(item, queue)} can't be resumed because its status "
                    f"is {status.value}; only Suspended messages can be resumed"
                )
            if kind is QueueKind.POISON:
                new_id = self._move_item(tx, item, self._special_id(QueueKind.SUBMISSION))
                msg = self._message_row(tx, int(item["message_id"]))
                self._event(
                    tx,
                    QueueEventKind.RESUBMITTED,
                    msg,
                    queue=self._queue_row(tx, self._special_id(QueueKind.SUBMISSION)),
                    detail="resumed from the Poison queue",
                )
                return self._fresh_message_info(tx, new_id)
            tx.execute("UPDATE items SET suspended=0 WHERE id=?", (item["id"],))
            tx.events.append(self._queue_event(tx, QueueEventKind.CHANGED, queue, "resume"))
            return self._fresh_message_info(tx, int(item["id"]))

    def remove_message(self, identity: str, *, with_ndr: bool = True) -> MessageStatus | None:
        """Remove-Message -WithNDR $true|$false.

        Returns None when the message is gone, or PendingRemove when it was in
        flight (it is removed when the worker gives it back, unless delivered).
        """
        with self._write() as tx:
            item, queue = self._find_item(tx, identity)
            if QueueKind(queue["kind"]) is QueueKind.SUBMISSION:
                raise InvalidQueueOperationError(
                    f"{self._item_identity(item, queue)} can't be removed: messages can't be "
                    "removed from the Submission queue"
                )
            if int(item["locked"]):
                mode = REMOVE_WITH_NDR if with_ndr else REMOVE_WITHOUT_NDR
                tx.execute("UPDATE items SET pending_remove=? WHERE id=?", (mode, item["id"]))
                return MessageStatus.PENDING_REMOVE
            # A shadow copy was delivered by the next hop: removing it sends no NDR.
            shadow = QueueKind(queue["kind"]) is QueueKind.SHADOW
            self._remove_item(tx, item, with_ndr=with_ndr and not shadow)
            return None

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------

    def _set_queue_suspended(self, identity: str, suspended: bool) -> QueueInfo:
        with self._write() as tx:
            row = self._find_queue(tx, identity)
            if QueueKind(row["kind"]) is QueueKind.POISON:
                raise InvalidQueueOperationError(
                    f"{self._queue_identity(row)} can't be suspended or resumed: poison "
                    "messages stay suspended; use Resume-Message or Remove-Message on them"
                )
            tx.execute("UPDATE queues SET suspended=? WHERE id=?", (int(suspended), row["id"]))
            tx.events.append(
                self._queue_event(
                    tx, QueueEventKind.CHANGED, row, "suspend" if suspended else "resume"
                )
            )
            return self._fresh_queue_info(tx, int(row["id"]))

    def _counts(self, tx: Tx) -> dict[int, int]:
        return {
            int(r[0]): int(r[1])
            for r in tx.all("SELECT queue_id, COUNT(*) FROM items GROUP BY queue_id")
        }

    def _find_queue(self, tx: Tx, identity: str) -> sqlite3.Row:
        name = parse_queue_identity(identity, self.server)
        row = self._queue_by_name(tx, name)
        if row is None:
            raise QueueNotFoundError(
                f"The queue {queue_identity(self.server, str(name))} doesn't exist on "
                f"{self.server}: run Get-Queue to list the queues"
            )
        return row

    def _queue_by_name(self, tx: Tx, name: QueueName) -> sqlite3.Row | None:
        if name.special is not None:
            kind = {
                SUBMISSION: QueueKind.SUBMISSION,
                UNREACHABLE: QueueKind.UNREACHABLE,
                POISON: QueueKind.POISON,
            }[name.special]
            return tx.one("SELECT * FROM queues WHERE id=?", (self._special_id(kind),))
        return tx.one(
            "SELECT * FROM queues WHERE id=? AND kind IN ('delivery','shadow')", (name.number,)
        )

    def _find_item(self, tx: Tx, identity: str) -> tuple[sqlite3.Row, sqlite3.Row]:
        name, item_id = parse_message_identity(identity, self.server)
        queue = self._queue_by_name(tx, name)
        item = tx.one("SELECT * FROM items WHERE id=?", (item_id,))
        if queue is None or item is None or int(item["queue_id"]) != int(queue["id"]):
            raise MessageNotFoundError(
                f"The message {message_identity(self.server, str(name), item_id)} doesn't "
                f"exist on {self.server}: run Get-Message to list the messages"
            )
        return item, queue

    def _item_identity(self, item: sqlite3.Row, queue: sqlite3.Row) -> str:
        return message_identity(self.server, self._queue_name(queue), int(item["id"]))

    def _queue_status(self, row: sqlite3.Row) -> QueueStatus:
        if int(row["suspended"]):
            return QueueStatus.SUSPENDED
        leases = [lease for lease in self._leases.values() if lease.queue_id == int(row["id"])]
        if leases:
            submission = QueueKind(row["kind"]) is QueueKind.SUBMISSION
            connected = submission or any(lease.connected for lease in leases)
            return QueueStatus.ACTIVE if connected else QueueStatus.CONNECTING
        if int(row["retry_count"]) > 0 and row["next_retry_time"] is not None:
            return QueueStatus.RETRY
        return QueueStatus.READY

    def _queue_info(self, tx: Tx, row: sqlite3.Row, count: int) -> QueueInfo:
        return QueueInfo(
            identity=self._queue_identity(row),
            delivery_type=DeliveryType(row["delivery_type"]),
            next_hop_domain=str(row["next_hop_domain"]),
            tls_domain=str(row["tls_domain"]),
            next_hop_connector=str(row["next_hop_connector"]),
            status=self._queue_status(row),
            message_count=count,
            last_error=str(row["last_error"]),
            retry_count=int(row["retry_count"]),
            last_retry_time=dt(row["last_retry_time"]),
            next_retry_time=dt(row["next_retry_time"]),
        )

    def _fresh_queue_info(self, tx: Tx, queue_id: int) -> QueueInfo:
        row = self._queue_row(tx, queue_id)
        count = tx.scalar("SELECT COUNT(*) FROM items WHERE queue_id=?", (queue_id,))
        return self._queue_info(tx, row, int(count or 0))

    def _message_status(self, tx: Tx, item: sqlite3.Row, queue: sqlite3.Row) -> MessageStatus:
        if QueueKind(queue["kind"]) is QueueKind.POISON:
            return MessageStatus.SUSPENDED  # poison messages are permanently suspended
        if int(item["locked"]):
            if int(item["pending_remove"]):
                return MessageStatus.PENDING_REMOVE
            if int(item["suspended"]):
                return MessageStatus.PENDING_SUSPEND
            return MessageStatus.ACTIVE
        if int(item["suspended"]):
            return MessageStatus.SUSPENDED
        next_attempt = item["next_attempt"]
        if next_attempt is not None and float(next_attempt) > tx.now_ts:
            return MessageStatus.RETRY
        if self._queue_status(queue) is QueueStatus.RETRY:
            return MessageStatus.RETRY
        return MessageStatus.READY

    def _message_info(self, tx: Tx, item: sqlite3.Row, queue: sqlite3.Row) -> MessageInfo:
        msg = self._message_row(tx, int(item["message_id"]))
        received = dt_required(float(msg["received_at"]))
        poison = QueueKind(queue["kind"]) is QueueKind.POISON
        expires: datetime | None = (
            None if poison else received + self.settings.message_expiration_timeout
        )
        rcpts = tx.all("SELECT address FROM recipients WHERE item_id=? ORDER BY id", (item["id"],))
        return MessageInfo(
            identity=self._item_identity(item, queue),
            from_address=str(msg["mail_from"]) or "<>",
            status=self._message_status(tx, item, queue),
            size=int(msg["size"]),
            scl=int(msg["scl"]),
            queue=self._queue_identity(queue),
            date_received=received,
            expiration_time=expires,
            last_error=str(item["last_error"]),
            retry_count=int(item["retry_count"]),
            subject=str(msg["subject"]),
            recipients=tuple(str(r["address"]) for r in rcpts),
            internet_message_id=str(msg["internet_message_id"]),
        )

    def _fresh_message_info(self, tx: Tx, item_id: int) -> MessageInfo:
        item = tx.one("SELECT * FROM items WHERE id=?", (item_id,))
        if item is None:
            raise MessageNotFoundError(f"message {item_id} vanished")
        return self._message_info(tx, item, self._queue_row(tx, int(item["queue_id"])))


_SHOWN = {
    QueueKind.SUBMISSION: "Submission",
    QueueKind.POISON: "Poison",
    QueueKind.UNREACHABLE: "Unreachable",
    QueueKind.DELIVERY: "delivery",
}
