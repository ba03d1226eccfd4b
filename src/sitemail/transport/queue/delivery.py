"""The senders' side: take a batch from a delivery queue, report what happened.

A worker (the hub-to-hub SMTP sender, the mailbox store driver) does::

    batch = store.take_batch(queue_id)          # locks the messages
    try:
        ... connect ...
        store.mark_connected(batch.lease)        # queue status Connecting -> Active
        for msg in batch.messages:
            ... send ...
            store.report(batch.lease, msg.item_id, outcomes)
    except ConnectionFailure as exc:
        store.report_connection_failure(batch.lease, last_error)
    finally:
        store.finish(batch.lease)                # unreported messages go back, Ready

Each :meth:`report` is its own transaction, so a crash after a 250 and
before the report is the only window for a duplicate delivery.  Mailbox
delivery reports a whole batch with :meth:`report_many`: the store keeps each
delivery id once, so that wider window costs no duplicate in a mailbox.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import partial

from sitemail.mailflow.dsn import DsnRecipient, local_failure, remote_failure
from sitemail.mailflow.tracking_log import TrackingEventId, TrackingSource
from sitemail.transport.retry import next_retry_time

from .core import Lease, Tx, ts
from .errors import LeaseError
from .model import (
    DeliveryBatch,
    DeliveryType,
    Outcome,
    QueueEventKind,
    QueueKind,
    QueueRef,
    RecipientOutcome,
    ReportResult,
)
from .shadow import ShadowHandoff, ShadowMixin


class DeliveryMixin(ShadowMixin):
    def due_queues(self) -> list[QueueRef]:
        """Delivery queues with a message that may be sent now (not suspended, retry time come)."""
        with self._read() as tx:
            now = tx.now_ts
            rows = tx.all(
                "SELECT * FROM queues q WHERE q.kind='delivery' AND q.suspended=0 "
                "AND (q.next_retry_time IS NULL OR q.next_retry_time<=?) "
                "AND EXISTS (SELECT 1 FROM items i WHERE i.queue_id=q.id AND i.locked=0 "
                "AND i.suspended=0 AND i.pending_remove=0 "
                "AND (i.next_attempt IS NULL OR i.next_attempt<=?)) ORDER BY q.id",
                (now, now),
            )
            return [self._queue_ref(r) for r in rows]

    def submission_backlog(self) -> int:
        """Messages waiting in Submission for the categorizer (0 when it is suspended)."""
        with self._read() as tx:
            sub = self._special_id(QueueKind.SUBMISSION)
            count = tx.scalar(
                "SELECT COUNT(*) FROM items i JOIN queues q ON q.id=i.queue_id "
                "WHERE q.id=? AND q.suspended=0 AND i.locked=0",
                (sub,),
            )
            return int(count or 0)

    def take_batch(self, queue_id: int, limit: int = 20) -> DeliveryBatch | None:
        """Lock up to ``limit`` sendable messages of a delivery queue, oldest first.

        None when the queue is suspended, waiting for its NextRetryTime, or
        has nothing to send.  Two workers never get the same message.
        """
        with self._write() as tx:
            queue = tx.one("SELECT * FROM queues WHERE id=?", (queue_id,))
            if queue is None or QueueKind(queue["kind"]) is not QueueKind.DELIVERY:
                return None
            retry_at = queue["next_retry_time"]
            if int(queue["suspended"]) or (retry_at is not None and retry_at > tx.now_ts):
                return None
            items = tx.all(
                "SELECT * FROM items WHERE queue_id=? AND locked=0 AND suspended=0 "
                "AND pending_remove=0 AND (next_attempt IS NULL OR next_attempt<=?) "
                "ORDER BY id LIMIT ?",
                (queue_id, tx.now_ts, limit),
            )
            if not items:
                return None
            lease = self._lock_items(tx, queue_id, items)
            return DeliveryBatch(
                lease=lease.id,
                queue=self._queue_ref(queue),
                messages=tuple(self._queued_message(tx, item, queue) for item in items),
            )

    def mark_connected(self, lease: int) -> None:
        """The next hop answered: the queue shows Active instead of Connecting."""
        with self._lock:
            held = self._leases.get(lease)
            if held is not None:
                held.connected = True

    def report(
        self,
        lease: int,
        item_id: int,
        outcomes: Sequence[RecipientOutcome],
        *,
        shadow: ShadowHandoff | None = None,
    ) -> ReportResult:
        """What happened to one message of a batch, per recipient, in one transaction.

        Delivered recipients leave the queue; failed ones get an NDR; deferred
        ones (a 4xx for this message) wait ``MessageRetryInterval``.  The
        message is no longer held afterwards.  A report means the connection
        worked, so the queue leaves Retry.  ``shadow``: the next hop took the
        message under XSHADOW, so the delivered recipients stay, in its shadow
        queue, until it reports delivery (:mod:`.shadow`).
        """
        with self._write() as tx:
            return self._report_in(tx, lease, item_id, outcomes, shadow)

    def report_many(
        self,
        lease: int,
        reports: Sequence[tuple[int, Sequence[RecipientOutcome]]],
        *,
        shadows: Mapping[int, ShadowHandoff] | None = None,
    ) -> list[ReportResult]:
        """:meth:`report` for several messages of a batch in one transaction
        (``shadows``: the handoff of each message the next hop took under XSHADOW).

        For mailbox delivery, whose store stores a delivery id once: a crash
        before this commit redelivers the batch, and the store answers
        "duplicate" for what it already holds, so one commit per batch costs
        no duplicate in a mailbox.
        """
        shadows = shadows or {}
        with self._write() as tx:
            return [
                self._report_in(tx, lease, item, outcomes, shadows.get(item))
                for item, outcomes in reports
            ]

    def _report_in(
        self,
        tx: Tx,
        lease: int,
        item_id: int,
        outcomes: Sequence[RecipientOutcome],
        shadow: ShadowHandoff | None,
    ) -> ReportResult:
        held = self._held_lease(lease)
        if item_id not in held.item_ids:
            raise LeaseError(f"message {item_id} is not held by lease {lease}")
        item = tx.one("SELECT * FROM items WHERE id=?", (item_id,))
        if item is None:
            raise LeaseError(f"message {item_id} is gone")
        queue = self._queue_row(tx, held.queue_id)
        msg = self._message_row(tx, int(item["message_id"]))
        rcpts = {
            int(r["id"]): r for r in tx.all("SELECT * FROM recipients WHERE item_id=?", (item_id,))
        }
        unknown = [o.recipient_id for o in outcomes if o.recipient_id not in rcpts]
        if unknown:
            raise LeaseError(f"recipients {unknown} are not in message {item_id}")
        mailbox = DeliveryType(queue["delivery_type"]) is DeliveryType.MAPI_DELIVERY
        delivered = [o for o in outcomes if o.outcome is Outcome.DELIVERED]
        failed = [o for o in outcomes if o.outcome is Outcome.FAILED]
        deferred = [o for o in outcomes if o.outcome is Outcome.DEFERRED]
        if delivered:
            if shadow is not None and not mailbox:
                ids = [o.recipient_id for o in delivered]
                self._keep_shadow(tx, int(item["message_id"]), ids, shadow)
            else:
                tx.conn.executemany(
                    "DELETE FROM recipients WHERE id=?",
                    [(o.recipient_id,) for o in delivered],
                )
            for duplicates in (False, True):
                these = [o for o in delivered if o.duplicate is duplicates]
                if not these:
                    continue
                tracking = TrackingEventId.DELIVER if mailbox else TrackingEventId.SEND
                if duplicates:
                    tracking = TrackingEventId.DUPLICATEDELIVER
                self._event(
                    tx,
                    QueueEventKind.DELIVERED,
                    msg,
                    tracking=tracking,
                    source=TrackingSource.STOREDRIVER if mailbox else TrackingSource.SMTP,
                    recipients=[str(rcpts[o.recipient_id]["address"]) for o in these],
                    statuses=[o.reply for o in these],
                    queue=queue,
                )
        dsn_id = self._fail_recipients(
            tx,
            msg,
            [(rcpts[o.recipient_id], _failure(rcpts[o.recipient_id], o)) for o in failed],
            source=TrackingSource.STOREDRIVER if mailbox else TrackingSource.SMTP,
            queue=queue,
        )
        if deferred:
            self._defer(tx, item, queue, msg, rcpts, deferred)
        self._reset_queue_retry(tx, held.queue_id)
        # Unlocking applies a Remove-Message that waited for this worker.
        self._unlock_items(tx, [item_id])
        self._settle_items(tx, [item_id])
        done = tx.one("SELECT 1 FROM items WHERE id=?", (item_id,)) is None
        return ReportResult(
            delivered=tuple(str(rcpts[o.recipient_id]["address"]) for o in delivered),
            failed=tuple(str(rcpts[o.recipient_id]["address"]) for o in failed),
            deferred=tuple(str(rcpts[o.recipient_id]["address"]) for o in deferred),
            dsn_ids=() if dsn_id is None else (dsn_id,),
            message_done=done,
        )

    def report_connection_failure(self, lease: int, last_error: str) -> datetime:
        """The next hop could not be reached: the queue goes to Retry on the ladder.

        Ends the lease (its messages go back to the queue).  Returns the new
        NextRetryTime.  ``last_error`` is the text Get-Queue shows, e.g.
        ``451 4.4.0 Primary target IP address responded with: "421 4.2.1 Unable
        to connect." Attempted failover to alternate host, ...``.
        """
        with self._write() as tx:
            held = self._held_lease(lease)
            queue = self._queue_row(tx, held.queue_id)
            failures = int(queue["retry_count"]) + 1
            mailbox = DeliveryType(queue["delivery_type"]) is DeliveryType.MAPI_DELIVERY
            retry_at = next_retry_time(self.settings, failures, tx.now, mailbox_delivery=mailbox)
            tx.execute(
                "UPDATE queues SET retry_count=?, last_error=?, last_retry_time=?, "
                "next_retry_time=?, retry_since=COALESCE(retry_since, ?) WHERE id=?",
                (failures, last_error, tx.now_ts, ts(retry_at), tx.now_ts, held.queue_id),
            )
            tx.execute(
                "UPDATE items SET retry_count=retry_count+1, last_error=? "
                "WHERE queue_id=? AND suspended=0",
                (last_error, held.queue_id),
            )
            self._unlock_items(tx, sorted(held.item_ids))
            tx.on_commit.append(partial(self._end_lease, lease))
            tx.events.append(self._queue_event(tx, QueueEventKind.QUEUE_RETRY, queue, last_error))
            return retry_at

    def finish(self, lease: int) -> None:
        """End a batch: messages not reported go back to their queue as they were."""
        with self._write() as tx:
            held = self._leases.get(lease)
            if held is None:
                return
            self._unlock_items(tx, sorted(held.item_ids))
            tx.on_commit.append(partial(self._end_lease, lease))

    # ------------------------------------------------------------------

    def _end_lease(self, lease: int) -> None:
        self._leases.pop(lease, None)

    def _held_lease(self, lease: int) -> Lease:
        held = self._leases.get(lease)
        if held is None:
            raise LeaseError(f"lease {lease} is not open (finished, or from before a restart)")
        return held

    def _defer(
        self,
        tx: Tx,
        item: sqlite3.Row,
        queue: sqlite3.Row,
        msg: sqlite3.Row,
        rcpts: dict[int, sqlite3.Row],
        deferred: Sequence[RecipientOutcome],
    ) -> None:
        reply = deferred[-1].reply
        tx.conn.executemany(
            "UPDATE recipients SET last_error=? WHERE id=?",
            [(o.reply, o.recipient_id) for o in deferred],
        )
        retry_at = tx.now + self.settings.message_retry_interval
        tx.execute(
            "UPDATE items SET retry_count=retry_count+1, last_error=?, next_attempt=? WHERE id=?",
            (reply, ts(retry_at), item["id"]),
        )
        self._event(
            tx,
            QueueEventKind.DEFERRED,
            msg,
            tracking=TrackingEventId.DEFER,
            source=TrackingSource.SMTP,
            recipients=[str(rcpts[o.recipient_id]["address"]) for o in deferred],
            statuses=[o.reply for o in deferred],
            queue=queue,
        )

    def _reset_queue_retry(self, tx: Tx, queue_id: int) -> None:
        tx.execute(
            "UPDATE queues SET retry_count=0, last_error='', next_retry_time=NULL, "
            "retry_since=NULL WHERE id=? AND (retry_count>0 OR next_retry_time IS NOT NULL)",
            (queue_id,),
        )


def _failure(recipient: sqlite3.Row, outcome: RecipientOutcome) -> DsnRecipient:
    address = str(recipient["address"])
    if outcome.remote:
        return remote_failure(
            address, outcome.reply, remote_mta=outcome.remote_mta, orcpt=recipient["orcpt"]
        )
    return local_failure(address, outcome.reply, orcpt=recipient["orcpt"])
