"""The clock-driven side: expiry, delay DSNs, idle queues, automatic resubmission.

The hub calls :meth:`SweepMixin.sweep` from time to time (and at
:meth:`SweepMixin.next_due_time`); tests call it after moving a ManualClock.
Nothing here sleeps.

- After ``DelayNotificationTimeout`` (4 h) without delivery the sender gets
  one delay DSN per message (RFC 3461 NOTIFY permitting).
- After ``MessageExpirationTimeout`` (2 days) the remaining recipients fail
  with ``550 4.4.7 QUEUE.Expired; message expired`` (or the Unreachable
  variant) and one NDR.  Poison messages and individually suspended
  messages do not expire; messages in a suspended queue do.
- An empty delivery queue disappears after ``QueueMaxIdleTime`` (3 min).
- A delivery queue that has been in Retry for ``MaxIdleTimeBeforeResubmit``
  (12 h) gives its messages back to the categorizer.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from sitemail.mailflow.dsn import (
    DELAYED_REPLY,
    EXPIRED_REPLY,
    SUSPENDED_QUEUE_DELAY_REPLY,
    DsnAction,
    DsnRecipient,
    delayed,
    local_failure,
    notify_allows,
    unreachable_expired_reply,
)
from sitemail.mailflow.tracking_log import TrackingSource
from sitemail.protocols.smtp.reply import reply_code

from .core import StoreCore, Tx, dt_required
from .identity import message_identity
from .model import QueueEventKind, QueueKind, SweepResult

# Messages handled per transaction: a flood of expiries commits in steps.
SWEEP_CHUNK = 100


class SweepMixin(StoreCore):
    def sweep(self) -> SweepResult:
        expired: list[str] = []
        notified: list[int] = []
        dsn_ids: list[int] = []
        while True:
            with self._write() as tx:
                more = self._expire_some(tx, expired, dsn_ids)
            if not more:
                break
        while True:
            with self._write() as tx:
                more = self._notify_some(tx, notified, dsn_ids)
            if not more:
                break
        with self._write() as tx:
            resubmitted = self._resubmit_stuck(tx)
            removed = self._remove_idle(tx)
        return SweepResult(
            expired=tuple(expired),
            delay_notified=tuple(notified),
            dsn_ids=tuple(dsn_ids),
            queues_removed=tuple(removed),
            resubmitted=tuple(resubmitted),
        )

    def next_due_time(self) -> datetime | None:
        """When something next becomes due: a send, a sweep action.  None: nothing queued."""
        s = self.settings
        with self._read() as tx:
            now = tx.now_ts
            candidates: list[float] = []
            sendable = tx.scalar(
                "SELECT MIN(MAX(COALESCE(q.next_retry_time, 0), COALESCE(i.next_attempt, 0))) "
                "FROM items i JOIN queues q ON q.id=i.queue_id WHERE q.kind='delivery' "
                "AND q.suspended=0 AND i.locked=0 AND i.suspended=0 AND i.pending_remove=0"
            )
            if sendable is not None:
                candidates.append(float(sendable))
            waiting = tx.scalar(
                "SELECT 1 FROM items i JOIN queues q ON q.id=i.queue_id "
                "WHERE q.kind='submission' AND q.suspended=0 AND i.locked=0 LIMIT 1"
            )
            if waiting:
                candidates.append(now)
            oldest_undelayed = tx.scalar(
                "SELECT MIN(m.received_at) FROM recipients r JOIN messages m ON m.id=r.message_id "
                "JOIN items i ON i.id=r.item_id JOIN queues q ON q.id=i.queue_id "
                "WHERE r.delay_notified=0 AND q.kind NOT IN "
                "('poison','shadow')"
            )
            if oldest_undelayed is not None:
                candidates.append(
                    float(oldest_undelayed) + s.delay_notification_timeout.total_seconds()
                )
            oldest = tx.scalar(
                "SELECT MIN(m.received_at) FROM items i JOIN messages m ON m.id=i.message_id "
                "JOIN queues q ON q.id=i.queue_id WHERE i.suspended=0 AND q.kind NOT IN "
                "('poison','shadow')"
            )
            if oldest is not None:
                candidates.append(float(oldest) + s.message_expiration_timeout.total_seconds())
            idle = tx.scalar(
                "SELECT MIN(idle_since) FROM queues WHERE kind='delivery' AND suspended=0 "
                "AND idle_since IS NOT NULL"
            )
            if idle is not None:
                candidates.append(float(idle) + s.queue_max_idle_time.total_seconds())
            stuck = tx.scalar(
                "SELECT MIN(retry_since) FROM queues WHERE kind='delivery' AND suspended=0 "
                "AND retry_since IS NOT NULL"
            )
            if stuck is not None:
                candidates.append(float(stuck) + s.max_idle_time_before_resubmit.total_seconds())
            if not candidates:
                return None
            return dt_required(max(now, min(candidates)))

    # ------------------------------------------------------------------

    def _expire_some(self, tx: Tx, expired: list[str], dsn_ids: list[int]) -> bool:
        cutoff = tx.now - self.settings.message_expiration_timeout
        items = tx.all(
            "SELECT i.* FROM items i JOIN messages m ON m.id=i.message_id "
            "JOIN queues q ON q.id=i.queue_id WHERE m.received_at<=? AND i.locked=0 "
            "AND i.suspended=0 AND q.kind NOT IN "
            "('poison','shadow') ORDER BY i.id LIMIT ?",
            (cutoff.timestamp(), SWEEP_CHUNK),
        )
        for item in items:
            queue = self._queue_row(tx, int(item["queue_id"]))
            msg = self._message_row(tx, int(item["message_id"]))
            unreachable = QueueKind(queue["kind"]) is QueueKind.UNREACHABLE
            failures: list[tuple[sqlite3.Row, DsnRecipient]] = []
            for r in tx.all("SELECT * FROM recipients WHERE item_id=? ORDER BY id", (item["id"],)):
                reply = (
                    unreachable_expired_reply(str(r["last_error"] or item["last_error"]))
                    if unreachable
                    else EXPIRED_REPLY
                )
                failures.append((r, local_failure(str(r["address"]), reply, orcpt=r["orcpt"])))
            expired.append(message_identity(self.server, self._queue_name(queue), int(item["id"])))
            dsn_id = self._fail_recipients(
                tx, msg, failures, source=TrackingSource.QUEUE, queue=queue
            )
            if dsn_id is not None:
                dsn_ids.append(dsn_id)
            self._settle_items(tx, [int(item["id"])])
        return len(items) == SWEEP_CHUNK

    def _notify_some(self, tx: Tx, notified: list[int], dsn_ids: list[int]) -> bool:
        cutoff = tx.now - self.settings.delay_notification_timeout
        message_ids = [
            int(r[0])
            for r in tx.all(
                "SELECT DISTINCT r.message_id FROM recipients r "
                "JOIN messages m ON m.id=r.message_id JOIN items i ON i.id=r.item_id "
                "JOIN queues q ON q.id=i.queue_id WHERE r.delay_notified=0 "
                "AND q.kind NOT IN "
                "('poison','shadow') AND m.received_at<=? ORDER BY r.message_id LIMIT ?",
                (cutoff.timestamp(), SWEEP_CHUNK),
            )
        ]
        for message_id in message_ids:
            msg = self._message_row(tx, message_id)
            rows = tx.all(
                "SELECT r.*, i.last_error AS item_error, q.suspended AS queue_suspended "
                "FROM recipients r JOIN items i ON i.id=r.item_id "
                "JOIN queues q ON q.id=i.queue_id "
                "WHERE r.message_id=? AND r.delay_notified=0 AND q.kind NOT IN "
                "('poison','shadow') ORDER BY r.id",
                (message_id,),
            )
            tx.conn.executemany(
                "UPDATE recipients SET delay_notified=1 WHERE id=?", [(r["id"],) for r in rows]
            )
            if not msg["mail_from"]:
                continue  # never a report to the null sender
            eligible = [
                delayed(str(r["address"]), _delay_reply(r), orcpt=r["orcpt"])
                for r in rows
                if notify_allows(r["notify"], DsnAction.DELAYED)
            ]
            if not eligible:
                continue
            received = dt_required(float(msg["received_at"]))
            dsn_ids.append(
                self._submit_report(
                    tx,
                    msg,
                    eligible,
                    DsnAction.DELAYED,
                    retry_until=received + self.settings.message_expiration_timeout,
                )
            )
            notified.append(message_id)
        return len(message_ids) == SWEEP_CHUNK

    def _resubmit_stuck(self, tx: Tx) -> list[str]:
        cutoff = tx.now - self.settings.max_idle_time_before_resubmit
        done = []
        for queue in tx.all(
            "SELECT * FROM queues WHERE kind='delivery' AND suspended=0 "
            "AND retry_since IS NOT NULL AND retry_since<=?",
            (cutoff.timestamp(),),
        ):
            if self._resubmit_queue(tx, queue):
                done.append(self._queue_identity(queue))
            # Count the next 12 hours from now, whatever the categorizer decides.
            tx.execute("UPDATE queues SET retry_since=? WHERE id=?", (tx.now_ts, queue["id"]))
        return done

    def _remove_idle(self, tx: Tx) -> list[str]:
        cutoff = tx.now - self.settings.queue_max_idle_time
        busy = {lease.queue_id for lease in self._leases.values()}
        removed = []
        for queue in tx.all(
            "SELECT * FROM queues q WHERE kind='delivery' AND suspended=0 "
            "AND idle_since IS NOT NULL AND idle_since<=? "
            "AND NOT EXISTS (SELECT 1 FROM items WHERE queue_id=q.id)",
            (cutoff.timestamp(),),
        ):
            if int(queue["id"]) in busy:
                continue
            tx.execute("DELETE FROM queues WHERE id=?", (queue["id"],))
            removed.append(self._queue_identity(queue))
            tx.events.append(self._queue_event(tx, QueueEventKind.CHANGED, queue, "removed"))
        return removed


def _delay_reply(row: sqlite3.Row) -> str:
    if int(row["queue_suspended"]):
        return SUSPENDED_QUEUE_DELAY_REPLY
    last = str(row["last_error"] or row["item_error"] or "")
    # Only an SMTP-shaped 4xx reads well as a delay status; anything else
    # (an Unreachable reason) gets Exchange's generic delay text.
    code = reply_code(last.split("\n", 1)[0])
    return last if code is not None and 400 <= code < 500 else DELAYED_REPLY
