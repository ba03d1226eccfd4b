"""Delivering a batch into mailboxes (transport/store_delivery.py): the hub's wording and
the Internet host's, one loop; what each store error does to the recipient and the queue."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, cast

from tests.unit.queue.queue_testkit import MAILBOX, Env

from sitemail.mailbox.delivery_batch import BatchMessage, DeliveryAnswer
from sitemail.mailbox.errors import (
    MailboxNotFound,
    MessageTooLarge,
    StoreError,
    StoreUnavailable,
    WrongServer,
)
from sitemail.mailbox.records import DeliveryResult
from sitemail.mailflow.tracking_log import TrackingEventId
from sitemail.transport.headers import delivered_to_key, submit_time_of
from sitemail.transport.queue import Outcome, QueueEventKind, QueueStore, RecipientOutcome
from sitemail.transport.store_delivery import StoreReplies, deliver_to_mailboxes

HUB = StoreReplies(
    delivered="250 2.0.0 Delivered to the mailbox",
    unavailable="451 4.4.0 The mailbox database is unavailable: {exc}",
    too_large="552 5.3.4 STOREDRV.Deliver; message too large",
    deferred="432 4.2.0 STOREDRV.Deliver; {exc}",
    not_found="550 5.1.1 RESOLVER.ADR.RecipNotFound; not found",
)
POSTFIX = StoreReplies(
    delivered="250 2.0.0 Ok: delivered to mailbox",
    unavailable="451 4.3.0 {exc}",
    too_large="552 5.3.4 Message size exceeds fixed limit",
    deferred="451 4.3.0 {exc}",
)


class Recording:
    """The real queue store, with what the delivery told it kept aside."""

    def __init__(self, store: QueueStore) -> None:
        self.store = store
        self.outcomes: list[RecipientOutcome] = []
        self.failures: list[str] = []
        self.connected = 0
        self.reports = 0

    def mark_connected(self, lease: Any) -> None:
        self.connected += 1
        self.store.mark_connected(lease)

    def report_many(self, lease: Any, reports: list[tuple[int, list[RecipientOutcome]]]) -> None:
        self.reports += 1
        for _, outcomes in reports:
            self.outcomes.extend(outcomes)
        self.store.report_many(lease, reports)

    def report_connection_failure(self, lease: Any, error: str) -> None:
        self.failures.append(error)
        self.store.report_connection_failure(lease, error)


ERRORS: dict[str, Exception] = {
    "big@contoso.com": MessageTooLarge("too large"),
    "gone@contoso.com": MailboxNotFound("no such mailbox"),
    "moved@contoso.com": WrongServer(
        "the mailbox moved to EX02", mailbox="moved", database="DB2", server="EX02"
    ),
}


def deliver_all(env: Env, replies: StoreReplies, *recipients: str) -> tuple[Recording, list[str]]:
    env.submit(*recipients)
    env.categorize(lambda _: MAILBOX)
    [queue] = env.store.due_queues()
    batch = env.store.take_batch(queue.queue_id, 20)
    assert batch is not None
    seen: list[str] = []

    async def deliver(messages: Sequence[BatchMessage]) -> list[DeliveryAnswer]:
        answers: list[DeliveryAnswer] = []
        for message in messages:
            assert isinstance(message.body, bytes) and b"Subject:" in message.body
            for address, delivery_id in message.recipients:
                seen.append(delivery_id)
                if address in ERRORS:
                    answers.append(cast(StoreError, ERRORS[address]))
                elif address == "down@contoso.com":
                    answers.append(StoreUnavailable("connection refused"))
                else:
                    dup = address.startswith("again")
                    answers.append(
                        DeliveryResult(message_id=1, folder_id=None, uid=None, duplicate=dup)
                    )
        return answers

    rec = Recording(env.store)
    retry = asyncio.run(deliver_to_mailboxes(cast(QueueStore, rec), batch, deliver, replies))
    env.store.finish(batch.lease)
    assert retry == bool(rec.failures)
    return rec, seen


def by_reply(rec: Recording) -> list[tuple[Outcome, str]]:
    return [(o.outcome, o.reply) for o in rec.outcomes]


def test_each_store_error_in_the_hubs_words(env: Env) -> None:
    rec, seen = deliver_all(
        env, HUB, "adam@contoso.com", "big@contoso.com", "gone@contoso.com", "moved@contoso.com"
    )
    assert by_reply(rec) == [
        (Outcome.DELIVERED, "250 2.0.0 Delivered to the mailbox"),
        (Outcome.FAILED, "552 5.3.4 STOREDRV.Deliver; message too large"),
        (Outcome.FAILED, "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"),
        (Outcome.DEFERRED, "432 4.2.0 STOREDRV.Deliver; the mailbox moved to EX02"),
    ]
    assert all(not o.remote for o in rec.outcomes if o.outcome is Outcome.FAILED)
    # One delivery id per message and recipient: a redelivery after a crash is stored once.
    assert len(set(seen)) == 4 and all(s.endswith("@contoso.com") for s in seen)
    assert rec.connected == 1
    # The whole batch is reported in one queue transaction.
    assert rec.reports == 1


def test_a_host_without_not_found_wording_defers_a_missing_mailbox(env: Env) -> None:
    rec, _ = deliver_all(env, POSTFIX, "gone@contoso.com", "adam@contoso.com")
    assert by_reply(rec) == [
        (Outcome.DEFERRED, "451 4.3.0 no such mailbox"),
        (Outcome.DELIVERED, "250 2.0.0 Ok: delivered to mailbox"),
    ]


def test_an_unavailable_store_retries_the_queue_and_reports_no_recipient(env: Env) -> None:
    rec, _ = deliver_all(env, HUB, "down@contoso.com", "adam@contoso.com")
    assert rec.failures == ["451 4.4.0 The mailbox database is unavailable: connection refused"]
    assert rec.outcomes == [] and rec.connected == 0


def test_a_duplicate_is_delivered_and_tracked_as_duplicatedeliver(env: Env) -> None:
    rec, _ = deliver_all(env, HUB, "adam@contoso.com", "again@contoso.com")
    assert [(o.outcome, o.duplicate) for o in rec.outcomes] == [
        (Outcome.DELIVERED, False),
        (Outcome.DELIVERED, True),
    ]
    tracked = [(e.tracking, e.recipients) for e in env.events if e.kind is QueueEventKind.DELIVERED]
    assert tracked == [
        (TrackingEventId.DELIVER, ("adam@contoso.com",)),
        (TrackingEventId.DUPLICATEDELIVER, ("again@contoso.com",)),
    ]


def test_the_duplicate_key_is_message_id_and_submit_time_per_mailbox() -> None:
    def key(date: bytes, mid: str = "<1@contoso.com>", to: str = "Adam@contoso.com") -> str:
        return delivered_to_key(mid, submit_time_of(b"Date: " + date + b"\r\n\r\nbody"), to)

    first = key(b"Mon, 7 Dec 2026 10:00:00 +0000")
    # One time, written twice: one message.
    assert key(b"Mon, 07 Dec 2026 11:00:00 +0100") == first
    assert key(b"Mon, 7 Dec 2026 10:00:00 +0000", to="adam@contoso.com") == first
    # Another message reusing the Message-ID (another Date): delivered too.
    assert key(b"Mon, 7 Dec 2026 10:00:01 +0000") != first
    assert key(b"Mon, 7 Dec 2026 10:00:00 +0000", mid="<2@contoso.com>") != first
    assert key(b"Mon, 7 Dec 2026 10:00:00 +0000", to="eve@contoso.com") != first
    assert len(key(b"x" * 900, mid="<" + "m" * 248 + ">")) <= 512


def test_a_batch_of_messages_goes_in_one_store_call_and_one_report(env: Env) -> None:
    env.submit("adam@contoso.com", subject="one")
    env.submit("big@contoso.com", "eve@contoso.com", subject="two")
    env.submit("again@contoso.com", subject="three")
    env.categorize(lambda _: MAILBOX)
    [queue] = env.store.due_queues()
    batch = env.store.take_batch(queue.queue_id, 20)
    assert batch is not None and len(batch.messages) == 3
    calls: list[list[tuple[str, ...]]] = []

    async def deliver(messages: Sequence[BatchMessage]) -> list[DeliveryAnswer]:
        calls.append([tuple(a for a, _ in m.recipients) for m in messages])
        return [
            cast(StoreError, ERRORS[a])
            if a in ERRORS
            else DeliveryResult(message_id=1, folder_id=None, uid=None, duplicate=a < "b")
            for m in messages
            for a, _ in m.recipients
        ]

    rec = Recording(env.store)
    assert not asyncio.run(deliver_to_mailboxes(cast(QueueStore, rec), batch, deliver, HUB))
    env.store.finish(batch.lease)
    assert calls == [
        [("adam@contoso.com",), ("big@contoso.com", "eve@contoso.com"), ("again@contoso.com",)]
    ]
    assert rec.reports == 1
    # Each outcome reached its own message: nothing is left in the queue, one NDR for big.
    assert by_reply(rec) == [
        (Outcome.DELIVERED, HUB.delivered),
        (Outcome.FAILED, HUB.too_large),
        (Outcome.DELIVERED, HUB.delivered),
        (Outcome.DELIVERED, HUB.delivered),
    ]
    assert env.store.due_queues() == []
    tracked = [(e.tracking, e.recipients) for e in env.events if e.kind is QueueEventKind.DELIVERED]
    assert tracked == [
        (TrackingEventId.DUPLICATEDELIVER, ("adam@contoso.com",)),
        (TrackingEventId.DELIVER, ("eve@contoso.com",)),
        (TrackingEventId.DUPLICATEDELIVER, ("again@contoso.com",)),
    ]
