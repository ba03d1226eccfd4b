"""Shadow redundancy in the queue database (Exchange 2010, "Understanding Shadow Redundancy").

Both halves live here, as every 2010 hub plays both parts:

- **the hub that hands a message on** keeps it after the next hop's 250, in
  a shadow queue named for that hop (Get-Queue: DeliveryType
  ``ShadowRedundancy``, NextHopDomain the hop's FQDN), keyed by the hop's
  shadow id and its InternalId for the message.  The hop's discard
  notifications delete the copies; a hop that is lost, or that comes back
  with a new queue database (a new shadow id), gets them resubmitted:
  routed again from Submission.
- **the hub that took it** remembers, per message, which hub shadows it
  (the envelope property ``model.SHADOW_PEER``); once the message is done
  here (delivered, relayed, failed or removed) a discard notification waits
  for that hub's next XQDISCARD.

Every change is one transaction of the store (an fsync), like the rest of it.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sitemail.mailflow.tracking_log import TrackingEventId, TrackingSource

from .core import StoreCore, Tx, dt_required
from .model import ZERO_GUID, DeliveryType, QueueEventKind, QueueKind

_SHADOW_ID_KEY = "shadow_id"


@dataclass(frozen=True, slots=True)
class ShadowHandoff:
    """The next hop took a message under XSHADOW: where the primary copy now is."""

    server: str  # the next hop's FQDN
    shadow_id: str  # its XSHADOW answer
    remote_id: int  # its InternalId for the message (from the 250 to DATA/BDAT)


@dataclass(frozen=True, slots=True)
class ShadowPeer:
    """One next hop we hold shadow copies for."""

    server: str
    shadow_ids: frozenset[str]
    messages: int
    oldest: datetime


class ShadowMixin(StoreCore):
    # --------------------------------------------------------- our own id

    @property
    def shadow_id(self) -> str:
        """This queue database's shadow id (made once, with the file)."""
        with self._read() as tx:
            value = tx.scalar("SELECT value FROM store_info WHERE name=?", (_SHADOW_ID_KEY,))
        if value is not None:
            return str(value)
        with self._write() as tx:
            value = tx.scalar("SELECT value FROM store_info WHERE name=?", (_SHADOW_ID_KEY,))
            if value is None:
                value = str(uuid.uuid4())
                tx.execute(
                    "INSERT INTO store_info(name, value) VALUES(?,?)", (_SHADOW_ID_KEY, value)
                )
            return str(value)

    # ------------------------------------------- the hub that hands on

    def _keep_shadow(
        self, tx: Tx, message_id: int, recipient_ids: list[int], handoff: ShadowHandoff
    ) -> None:
        """Inside :meth:`report`: delivered recipients move to the hop's shadow queue."""
        server = handoff.server.lower()
        key = f"shadow:{server}"
        row = tx.one("SELECT id FROM queues WHERE key=?", (key,))
        if row is None:
            cur = tx.execute(
                "INSERT INTO queues(kind, key, delivery_type, next_hop_domain, "
                "next_hop_connector) VALUES(?,?,?,?,?)",
                (
                    QueueKind.SHADOW.value,
                    key,
                    DeliveryType.SHADOW_REDUNDANCY.value,
                    server,
                    ZERO_GUID,
                ),
            )
            queue_id = int(cur.lastrowid or 0)
        else:
            queue_id = int(row["id"])
        item_id = self._new_item(tx, message_id, queue_id, recipient_ids)
        tx.execute(
            "INSERT INTO shadows(item_id, server, shadow_id, remote_id, created) VALUES(?,?,?,?,?)",
            (item_id, server, handoff.shadow_id, handoff.remote_id, tx.now_ts),
        )

    def shadow_peers(self) -> list[ShadowPeer]:
        """The next hops we hold shadow copies for (the heartbeat's work list)."""
        with self._read() as tx:
            rows = tx.all(
                "SELECT server, GROUP_CONCAT(DISTINCT shadow_id) AS ids, COUNT(*) AS n, "
                "MIN(created) AS oldest FROM shadows GROUP BY server ORDER BY server"
            )
            return [
                ShadowPeer(
                    server=str(r["server"]),
                    shadow_ids=frozenset(str(r["ids"]).split(",")),
                    messages=int(r["n"]),
                    oldest=dt_required(float(r["oldest"])),
                )
                for r in rows
            ]

    def discard_shadows(self, server: str, shadow_id: str, remote_ids: list[int]) -> int:
        """The hop's discard notification: drop those copies.  Returns how many went."""
        if not remote_ids:
            return 0
        with self._write() as tx:
            rows = []
            for remote_id in remote_ids:
                rows += tx.all(
                    "SELECT i.* FROM shadows s JOIN items i ON i.id=s.item_id "
                    "WHERE s.server=? AND s.shadow_id=? AND s.remote_id=?",
                    (server.lower(), shadow_id, remote_id),
                )
            self._drop_shadows(tx, rows, TrackingEventId.HADISCARD)
            return len(rows)

    def resubmit_shadows(self, server: str, *, keep_shadow_id: str | None = None) -> int:
        """The hop lost its queue (or is gone): its shadow copies go back to Submission.

        ``keep_shadow_id``: the hop is back with this id; copies it took under
        that id are still its own.  Returns how many messages were resubmitted.
        """
        with self._write() as tx:
            rows = tx.all(
                "SELECT i.* FROM shadows s JOIN items i ON i.id=s.item_id "
                "WHERE s.server=? AND s.shadow_id!=? ORDER BY i.id",
                (server.lower(), keep_shadow_id or ""),
            )
            submission = self._special_id(QueueKind.SUBMISSION)
            sub_row = self._queue_row(tx, submission)
            for item in rows:
                tx.execute("DELETE FROM shadows WHERE item_id=?", (item["id"],))
                queue = self._queue_row(tx, int(item["queue_id"]))
                msg = self._message_row(tx, int(item["message_id"]))
                addresses = self._addresses(tx, int(item["id"]))
                self._move_item(tx, item, submission)
                self._event(
                    tx,
                    QueueEventKind.RESUBMITTED,
                    msg,
                    tracking=TrackingEventId.RESUBMIT,
                    source=TrackingSource.REDUNDANCY,
                    recipients=addresses,
                    queue=sub_row,
                    detail=f"from {self._queue_identity(queue)}",
                )
            return len(rows)

    def discard_expired_shadows(self, max_age: timedelta) -> int:
        """ShadowMessageAutoDiscardInterval: copies older than ``max_age`` are dropped."""
        with self._write() as tx:
            rows = tx.all(
                "SELECT i.* FROM shadows s JOIN items i ON i.id=s.item_id WHERE s.created<=?",
                ((tx.now - max_age).timestamp(),),
            )
            self._drop_shadows(tx, rows, TrackingEventId.HADISCARD)
            return len(rows)

    def _drop_shadows(self, tx: Tx, items: list[sqlite3.Row], tracking: TrackingEventId) -> None:
        for item in items:
            item_id = int(item["id"])
            msg = self._message_row(tx, int(item["message_id"]))
            queue = self._queue_row(tx, int(item["queue_id"]))
            addresses = self._addresses(tx, item_id)
            tx.execute("DELETE FROM shadows WHERE item_id=?", (item_id,))
            tx.execute("DELETE FROM recipients WHERE item_id=?", (item_id,))
            self._event(
                tx,
                QueueEventKind.REMOVED,
                msg,
                tracking=tracking,
                source=TrackingSource.REDUNDANCY,
                recipients=addresses,
                queue=queue,
            )
        self._settle_items(tx, [int(i["id"]) for i in items])

    def _addresses(self, tx: Tx, item_id: int) -> list[str]:
        rows = tx.all("SELECT address FROM recipients WHERE item_id=? ORDER BY id", (item_id,))
        return [str(r["address"]) for r in rows]

    # ------------------------------------------------ the hub that took it

    def take_discards(self, peer: str, limit: int) -> list[int]:
        """XQDISCARD: up to ``limit`` of ``peer``'s messages that are done here.

        They are forgotten in the same transaction: a reply lost on the way
        leaves the peer's copies to ShadowMessageAutoDiscardInterval (or to a
        resubmission, which the mailbox's duplicate detection absorbs).
        """
        with self._write() as tx:
            rows = tx.all(
                "SELECT id, remote_id FROM discards WHERE peer=? ORDER BY id LIMIT ?",
                (peer.lower(), limit),
            )
            tx.conn.executemany("DELETE FROM discards WHERE id=?", [(r["id"],) for r in rows])
            return [int(r["remote_id"]) for r in rows]
