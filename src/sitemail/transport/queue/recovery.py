"""What opening the store does after a crash (or a clean stop).

- Messages that were in flight (taken by the categorizer or a sender) go back
  to their queue as Ready, one crash counted against each; at
  ``PoisonThreshold`` (2) crashes a message goes to the Poison queue instead,
  where it stays suspended until an administrator resumes or removes it.
- Spool files that no committed message owns are deleted: their transfer
  was refused or interrupted before the commit, so no 250 was ever given.
- Bodies the database holds (up to 64 KiB) need no file: a reader gets one
  made from the database (a half-written one is made again).
- Accepted messages whose body file is missing are reported, not dropped.

The hub may have taken a message and been killed after the next hop said
250 but before the report committed: that message is sent again (a
duplicate, never a loss).
"""

from __future__ import annotations

from sitemail.mailflow.tracking_log import TrackingEventId, TrackingSource

from .core import StoreCore
from .model import QueueEventKind, QueueKind, RecoveryReport
from .spool import spool_names, unlink_quietly


class RecoveryMixin(StoreCore):
    def _recover(self) -> RecoveryReport:
        with self._write() as tx:
            self._ensure_special_queues(tx)
            self._load_counters(tx)
            poison = self._special_id(QueueKind.POISON)
            detect = self.settings.poison_message_detection_enabled
            threshold = self.settings.poison_threshold
            requeued: list[int] = []
            poisoned: list[int] = []
            for item in tx.all("SELECT * FROM items WHERE locked=1 ORDER BY id"):
                item_id = int(item["id"])
                crashes = int(item["crash_count"]) + 1
                queue_id = int(item["queue_id"])
                if int(item["pending_remove"]):
                    # The administrator's removal was waiting for the worker: do it now.
                    tx.execute("UPDATE items SET locked=0 WHERE id=?", (item_id,))
                    self._unlock_items(tx, [item_id])
                    continue
                if detect and crashes >= threshold and queue_id != poison:
                    tx.execute(
                        "UPDATE items SET locked=0, crash_count=?, queue_id=?, suspended=0 "
                        "WHERE id=?",
                        (crashes, poison, item_id),
                    )
                    self._mark_idle_if_empty(tx, queue_id)
                    poisoned.append(item_id)
                    msg = self._message_row(tx, int(item["message_id"]))
                    addresses = [
                        str(r["address"])
                        for r in tx.all(
                            "SELECT address FROM recipients WHERE item_id=?", (item_id,)
                        )
                    ]
                    self._event(
                        tx,
                        QueueEventKind.POISONED,
                        msg,
                        tracking=TrackingEventId.POISONMESSAGE,
                        source=TrackingSource.POISONMESSAGE,
                        recipients=addresses,
                        queue=self._queue_row(tx, poison),
                        detail=f"crash count {crashes}",
                    )
                else:
                    tx.execute(
                        "UPDATE items SET locked=0, crash_count=? WHERE id=?", (crashes, item_id)
                    )
                    requeued.append(item_id)
            owned = {str(r[0]) for r in tx.all("SELECT body_file FROM messages")}
            # A body the database keeps needs no file until a reader asks for it.
            missing = tuple(
                int(r[0])
                for r in tx.all(
                    "SELECT id, body_file FROM messages "
                    "WHERE id NOT IN (SELECT message_id FROM bodies)"
                )
                if not (self.spool_dir / str(r[1])).exists()
            )
        orphans = spool_names(self.spool_dir) - owned
        for name in orphans:
            unlink_quietly(self.spool_dir / name)
        return RecoveryReport(
            orphan_spool_files=len(orphans),
            requeued=tuple(requeued),
            poisoned=tuple(poisoned),
            missing_bodies=missing,
        )
