"""The senders' side: batches, outcomes, the retry ladder on a queue, statuses."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.unit.queue.queue_testkit import MAILBOX, Env

from sitemail.mailflow.tracking_log import TrackingEventId
from sitemail.transport.queue import (
    DeliveryBatch,
    LeaseError,
    MessageStatus,
    QueueEventKind,
    QueueStatus,
    RecipientOutcome,
)

KB979175 = (
    '451 4.4.0 Primary target IP address responded with: "451 5.7.3 Cannot achieve Exchange '
    'Server authentication." Attempted failover to alternate host, but that did not succeed. '
    "Either there are no alternate hosts, or delivery failed to all alternate hosts."
)


def routed(env: Env, *recipients: str, count: int = 1) -> str:
    """Submit and categorize ``count`` messages to Shandong; returns the queue identity."""
    for _ in range(count):
        env.submit(*recipients)
    env.categorize()
    [queue] = [q for q in env.store.get_queues() if q.next_hop_domain == "Shandong"]
    return queue.identity


def take(env: Env, identity: str, limit: int = 20) -> DeliveryBatch:
    queue_id = int(identity.split("\\")[1])
    batch = env.store.take_batch(queue_id, limit)
    assert batch is not None
    return batch


def test_statuses_during_an_attempt(env: Env) -> None:
    queue = routed(env, "bob@fabrikam.com")
    assert env.store.get_queue(queue).status is QueueStatus.READY
    batch = take(env, queue)
    assert env.store.get_queue(queue).status is QueueStatus.CONNECTING
    [msg] = env.store.get_messages(queue)
    assert msg.status is MessageStatus.ACTIVE
    env.store.mark_connected(batch.lease)
    assert env.store.get_queue(queue).status is QueueStatus.ACTIVE
    env.store.finish(batch.lease)
    assert env.store.get_queue(queue).status is QueueStatus.READY
    assert env.store.get_messages(queue)[0].status is MessageStatus.READY


def test_two_workers_never_get_the_same_message(env: Env) -> None:
    queue = routed(env, "bob@fabrikam.com", count=5)
    first = take(env, queue, limit=3)
    second = take(env, queue, limit=3)
    ids = [m.item_id for m in first.messages] + [m.item_id for m in second.messages]
    assert len(ids) == len(set(ids)) == 5
    assert env.store.take_batch(first.queue.queue_id) is None


def test_delivered_recipients_leave_and_the_body_goes(env: Env) -> None:
    queue = routed(env, "bob@fabrikam.com", "carol@fabrikam.com")
    batch = take(env, queue)
    [msg] = batch.messages
    # A small body goes out from the queue database: no spool file is written for it.
    assert msg.source == msg.body and msg.body is not None and b"Subject:" in msg.body
    assert not msg.body_path.exists()
    bob, carol = msg.recipients
    # A report names the recipients it knows about; the others stay queued.
    result = env.store.report(batch.lease, msg.item_id, [RecipientOutcome.delivered(bob.id)])
    assert result.delivered == ("bob@fabrikam.com",) and not result.message_done
    env.store.finish(batch.lease)
    [left] = env.store.get_messages(queue)
    assert (left.recipients, left.status) == (("carol@fabrikam.com",), MessageStatus.READY)
    batch = take(env, queue)
    result = env.store.report(
        batch.lease, batch.messages[0].item_id, [RecipientOutcome.delivered(carol.id)]
    )
    assert result.message_done
    env.store.finish(batch.lease)
    assert env.store.get_messages() == []
    assert not msg.body_path.exists()
    sends = [e for e in env.events if e.kind is QueueEventKind.DELIVERED]
    assert [e.tracking for e in sends] == [TrackingEventId.SEND, TrackingEventId.SEND]
    assert [e.recipients for e in sends] == [("bob@fabrikam.com",), ("carol@fabrikam.com",)]


def test_mailbox_delivery_is_a_deliver_event(env: Env) -> None:
    env.submit("bob@contoso.com")
    env.categorize(lambda _: MAILBOX)
    [ref] = env.store.due_queues()
    batch = env.store.take_batch(ref.queue_id)
    assert batch is not None
    [msg] = batch.messages
    env.store.report(batch.lease, msg.item_id, [RecipientOutcome.delivered(msg.recipients[0].id)])
    [event] = [e for e in env.events if e.kind is QueueEventKind.DELIVERED]
    assert event.tracking is TrackingEventId.DELIVER


def test_a_5xx_fails_the_recipient_with_the_remote_reply(env: Env) -> None:
    queue = routed(env, "bob@fabrikam.com", "carol@fabrikam.com")
    batch = take(env, queue)
    [msg] = batch.messages
    bob, carol = msg.recipients
    result = env.store.report(
        batch.lease,
        msg.item_id,
        [
            RecipientOutcome.failed(bob.id, "550 5.1.1 User unknown"),
            RecipientOutcome.delivered(carol.id),
        ],
    )
    assert result.failed == ("bob@fabrikam.com",) and len(result.dsn_ids) == 1
    [ndr] = env.reports()
    assert "Remote Server returned '550 5.1.1 User unknown'" in ndr.text


def test_a_4xx_for_one_message_retries_it_after_message_retry_interval(env: Env) -> None:
    queue = routed(env, "bob@fabrikam.com", count=2)
    batch = take(env, queue)
    first, second = batch.messages
    env.store.report(
        batch.lease,
        first.item_id,
        [RecipientOutcome.deferred(first.recipients[0].id, "452 4.2.2 Mailbox full")],
    )
    env.store.report(
        batch.lease, second.item_id, [RecipientOutcome.delivered(second.recipients[0].id)]
    )
    env.store.finish(batch.lease)
    [msg] = env.store.get_messages(queue)
    assert (msg.status, msg.retry_count, msg.last_error) == (
        MessageStatus.RETRY,
        1,
        "452 4.2.2 Mailbox full",
    )
    assert env.store.get_queue(queue).status is QueueStatus.READY  # the connection was fine
    assert env.store.take_batch(batch.queue.queue_id) is None
    env.clock.advance(env.settings.message_retry_interval - timedelta(seconds=1))
    assert env.store.take_batch(batch.queue.queue_id) is None
    env.clock.advance(timedelta(seconds=1))
    assert take(env, queue).messages[0].item_id == first.item_id
    deferred = [e for e in env.events if e.kind is QueueEventKind.DEFERRED]
    assert deferred[0].tracking is TrackingEventId.DEFER


def test_connection_failures_climb_the_ladder(env: Env) -> None:
    queue = routed(env, "bob@fabrikam.com")
    waits = []
    for attempt in range(1, 13):
        batch = take(env, queue)
        failed_at = env.clock.now()
        retry_at = env.store.report_connection_failure(batch.lease, KB979175)
        info = env.store.get_queue(queue)
        assert info.status is QueueStatus.RETRY
        assert (info.retry_count, info.last_error) == (attempt, KB979175)
        assert (info.last_retry_time, info.next_retry_time) == (failed_at, retry_at)
        [msg] = env.store.get_messages(queue)
        assert (msg.status, msg.retry_count, msg.last_error) == (
            MessageStatus.RETRY,
            attempt,
            KB979175,
        )
        waits.append((retry_at - failed_at) / timedelta(minutes=1))
        # Not a second early.
        env.clock.advance(retry_at - failed_at - timedelta(seconds=1))
        assert env.store.take_batch(batch.queue.queue_id) is None
        assert env.store.due_queues() == []
        env.clock.advance(timedelta(seconds=1))
        assert [q.identity for q in env.store.due_queues()] == [queue]
    assert waits == [1] * 4 + [5] * 6 + [10] * 2


def test_success_resets_the_queue(env: Env) -> None:
    queue = routed(env, "bob@fabrikam.com")
    batch = take(env, queue)
    env.store.report_connection_failure(batch.lease, KB979175)
    env.clock.advance(timedelta(minutes=1))
    batch = take(env, queue)
    [msg] = batch.messages
    env.store.report(batch.lease, msg.item_id, [RecipientOutcome.delivered(msg.recipients[0].id)])
    env.store.finish(batch.lease)
    info = env.store.get_queue(queue)
    assert (info.status, info.retry_count, info.next_retry_time, info.last_error) == (
        QueueStatus.READY,
        0,
        None,
        "",
    )


def test_unreported_messages_go_back_ready(env: Env) -> None:
    queue = routed(env, "bob@fabrikam.com", count=2)
    batch = take(env, queue)
    env.store.finish(batch.lease)
    env.store.finish(batch.lease)  # finishing twice is harmless
    assert [m.status for m in env.store.get_messages(queue)] == [MessageStatus.READY] * 2
    assert len(take(env, queue).messages) == 2


def test_reports_must_name_held_messages_and_their_recipients(env: Env) -> None:
    queue = routed(env, "bob@fabrikam.com")
    batch = take(env, queue)
    [msg] = batch.messages
    with pytest.raises(LeaseError):
        env.store.report(batch.lease, msg.item_id, [RecipientOutcome.delivered(999999)])
    with pytest.raises(LeaseError):
        env.store.report(batch.lease + 1, msg.item_id, [])
    env.store.finish(batch.lease)
    with pytest.raises(LeaseError):
        env.store.report(batch.lease, msg.item_id, [])


def test_mailbox_queues_retry_on_their_own_interval(env: Env) -> None:
    env.submit("bob@contoso.com")
    env.categorize(lambda _: MAILBOX)
    [ref] = env.store.due_queues()
    for _ in range(4):
        batch = env.store.take_batch(ref.queue_id)
        assert batch is not None
        env.store.report_connection_failure(batch.lease, "mailbox server down")
        env.clock.advance(timedelta(minutes=1))
    batch = env.store.take_batch(ref.queue_id)
    assert batch is not None
    retry_at = env.store.report_connection_failure(batch.lease, "mailbox server down")
    assert retry_at - env.clock.now() == env.settings.mailbox_delivery_queue_retry_interval
