"""The categorizer's side: take from Submission, route recipients to next hops."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass

from sitemail.mailflow.dsn import local_failure
from sitemail.mailflow.tracking_log import TrackingSource

from .core import StoreCore, Tx
from .errors import LeaseError
from .identity import message_identity
from .model import (
    DeliveryType,
    FailRecipient,
    NextHop,
    QueuedMessage,
    QueueEventKind,
    QueueKind,
    RouteDecision,
    RouteResult,
    UnreachableRoute,
)

# Delivery types that name special queues, not next hops.
_NOT_NEXT_HOPS = (DeliveryType.UNDEFINED, DeliveryType.UNREACHABLE)


@dataclass
class _Group:
    hop: NextHop
    recipient_ids: list[int]


def raise_first_refusal(results: Mapping[int, RouteResult | LeaseError | ValueError]) -> None:
    """After :meth:`CategorizationMixin.route_many`: the routed messages are committed;
    a message that could not be routed is the categorizer's error, as with :meth:`route`."""
    for result in results.values():
        if isinstance(result, Exception):
            raise result


class CategorizationMixin(StoreCore):
    def take_for_categorization(self, limit: int = 20) -> list[QueuedMessage]:
        """Lock up to ``limit`` Submission messages for the categorizer (oldest first).

        Nothing leaves a suspended Submission queue.  Each message must then be
        passed to :meth:`route` or :meth:`release_categorization`.
        """
        # Every accepted message wakes the categorizer: see whether there is anything
        # to take before asking for the write lock the acceptance commits need.
        with self._read() as tx:
            sub = self._queue_row(tx, self._special_id(QueueKind.SUBMISSION))
            if int(sub["suspended"]) or not tx.scalar(
                "SELECT 1 FROM items WHERE queue_id=? AND locked=0 AND suspended=0 "
                "AND pending_remove=0 LIMIT 1",
                (sub["id"],),
            ):
                return []
        with self._write() as tx:
            sub = self._queue_row(tx, self._special_id(QueueKind.SUBMISSION))
            if int(sub["suspended"]):
                return []
            items = tx.all(
                "SELECT * FROM items WHERE queue_id=? AND locked=0 AND suspended=0 "
                "AND pending_remove=0 ORDER BY id LIMIT ?",
                (sub["id"], limit),
            )
            if not items:
                return []
            self._lock_items(tx, int(sub["id"]), items, auto_end=True)
            return [self._queued_message(tx, item, sub) for item in items]

    def submission_suspended(self) -> bool:
        """Whether Suspend-Queue holds the Submission queue (nothing leaves it)."""
        with self._read() as tx:
            sub = self._queue_row(tx, self._special_id(QueueKind.SUBMISSION))
            return bool(int(sub["suspended"]))

    def release_categorization(self, item_id: int) -> None:
        """Give a message back to Submission unrouted (the categorizer could not finish)."""
        with self._write() as tx:
            self._held_submission_item(tx, item_id)
            self._unlock_items(tx, [item_id])

    def route(self, item_id: int, decisions: Mapping[int, RouteDecision]) -> RouteResult:
        """Move a Submission message's recipients to their next hops, in one transaction.

        ``decisions`` maps every recipient id of the message to a
        :class:`NextHop`, an :class:`UnreachableRoute` or a :class:`FailRecipient`.
        Recipients with the same next hop key share one delivery queue (created
        when missing) and one message item there.
        """
        with self._write() as tx:
            return self._route_in(tx, item_id, decisions)

    def route_many(
        self, routes: Mapping[int, Mapping[int, RouteDecision]]
    ) -> dict[int, RouteResult | LeaseError | ValueError]:
        """:meth:`route` for several messages (item id -> decisions) in one transaction.

        Under load the categorizer takes a batch at a time; one commit (one
        fsync) for the batch instead of one per message.  Each message is routed
        in a savepoint: one that cannot be (its decisions refused) stays as it
        was, with its error in the answer, and the others are routed.
        """
        results: dict[int, RouteResult | LeaseError | ValueError] = {}
        with self._write() as tx:
            for item_id, decisions in routes.items():
                try:
                    with tx.savepoint():
                        results[item_id] = self._route_in(tx, item_id, decisions)
                except (LeaseError, ValueError) as exc:
                    results[item_id] = exc
        return results

    def _route_in(
        self, tx: Tx, item_id: int, decisions: Mapping[int, RouteDecision]
    ) -> RouteResult:
        item = self._held_submission_item(tx, item_id)
        msg = self._message_row(tx, int(item["message_id"]))
        rcpts = {
            int(r["id"]): r for r in tx.all("SELECT * FROM recipients WHERE item_id=?", (item_id,))
        }
        if set(decisions) != set(rcpts):
            missing = sorted(set(rcpts) - set(decisions))
            extra = sorted(set(decisions) - set(rcpts))
            raise LeaseError(
                f"route() needs a decision for exactly the message's recipients: "
                f"missing {missing}, unknown {extra}"
            )
        groups: dict[str, _Group] = {}
        unreachable: list[tuple[int, str]] = []
        failures = []
        for rid, decision in decisions.items():
            if isinstance(decision, NextHop):
                if decision.delivery_type in _NOT_NEXT_HOPS:
                    raise ValueError(
                        f"{decision.delivery_type.value} is not a next hop's delivery type; "
                        "use UnreachableRoute for recipients without a route"
                    )
                group = groups.setdefault(decision.queue_key, _Group(decision, []))
                group.recipient_ids.append(rid)
            elif isinstance(decision, UnreachableRoute):
                unreachable.append((rid, decision.reason))
            else:
                assert isinstance(decision, FailRecipient)
                r = rcpts[rid]
                failures.append(
                    (r, local_failure(str(r["address"]), decision.reply, orcpt=r["orcpt"]))
                )
        queued: list[tuple[str, int]] = []
        for group in groups.values():
            queue = self._ensure_delivery_queue(tx, group.hop)
            new_id = self._new_item(tx, int(msg["id"]), int(queue["id"]), group.recipient_ids)
            queued.append((self._queue_identity(queue), new_id))
            self._event(
                tx,
                QueueEventKind.ROUTED,
                msg,
                recipients=[str(rcpts[r]["address"]) for r in group.recipient_ids],
                queue=queue,
                detail=message_identity(self.server, queue["id"], new_id),
            )
        if unreachable:
            queue = self._queue_row(tx, self._special_id(QueueKind.UNREACHABLE))
            reason = unreachable[0][1]
            new_id = self._new_item(
                tx,
                int(msg["id"]),
                int(queue["id"]),
                [r for r, _ in unreachable],
                last_error=reason,
            )
            tx.conn.executemany(
                "UPDATE recipients SET last_error=? WHERE id=?",
                [(why, r) for r, why in unreachable],
            )
            queued.append((self._queue_identity(queue), new_id))
            self._event(
                tx,
                QueueEventKind.ROUTED,
                msg,
                recipients=[str(rcpts[r]["address"]) for r, _ in unreachable],
                queue=queue,
                detail=reason,
            )
        dsn_id = self._fail_recipients(
            tx,
            msg,
            failures,
            source=TrackingSource.ROUTING,
            queue=self._queue_row(tx, int(item["queue_id"])),
        )
        # Every recipient now lives elsewhere (or failed): the Submission item goes.
        self._settle_items(tx, [item_id])
        return RouteResult(
            queued=tuple(queued),
            failed=tuple(d.address for _, d in failures),
            dsn_ids=() if dsn_id is None else (dsn_id,),
        )

    # ------------------------------------------------------------------

    def _held_submission_item(self, tx: Tx, item_id: int) -> sqlite3.Row:
        item = tx.one("SELECT * FROM items WHERE id=?", (item_id,))
        if (
            item is None
            or item_id not in self._item_lease
            or int(item["queue_id"]) != self._special_id(QueueKind.SUBMISSION)
        ):
            raise LeaseError(
                f"message {item_id} is not a Submission message taken by take_for_categorization()"
            )
        return item

    def _ensure_delivery_queue(self, tx: Tx, hop: NextHop) -> sqlite3.Row:
        key = hop.queue_key
        row = tx.one("SELECT * FROM queues WHERE key=?", (key,))
        if row is None:
            cur = tx.execute(
                "INSERT INTO queues(kind, key, delivery_type, next_hop_domain, tls_domain, "
                "next_hop_connector) VALUES('delivery',?,?,?,?,?)",
                (
                    key,
                    hop.delivery_type.value,
                    hop.next_hop_domain,
                    hop.tls_domain,
                    hop.next_hop_connector,
                ),
            )
            return self._queue_row(tx, int(cur.lastrowid or 0))
        if (
            row["delivery_type"] != hop.delivery_type.value
            or row["next_hop_domain"] != hop.next_hop_domain
            or row["tls_domain"] != hop.tls_domain
            or row["next_hop_connector"] != hop.next_hop_connector
        ):
            tx.execute(
                "UPDATE queues SET delivery_type=?, next_hop_domain=?, tls_domain=?, "
                "next_hop_connector=? WHERE id=?",
                (
                    hop.delivery_type.value,
                    hop.next_hop_domain,
                    hop.tls_domain,
                    hop.next_hop_connector,
                    row["id"],
                ),
            )
            return self._queue_row(tx, int(row["id"]))
        return row
