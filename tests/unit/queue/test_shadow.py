"""Shadow redundancy in the queue store: copies kept after the next hop's 250,
discarded on its notification, resubmitted when it lost its queue."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from tests.unit.queue.queue_testkit import MAILBOX, Env, open_store
from tests.unit.queue.test_delivery import routed, take

from sitemail.mailflow.envelope import Envelope, EnvelopeRecipient
from sitemail.mailflow.tracking_log import TrackingEventId, TrackingSource
from sitemail.transport.queue import (
    SHADOW_PEER,
    DeliveryType,
    InvalidQueueOperationError,
    RecipientOutcome,
    ShadowHandoff,
)

HUB = "ex-fl1.contoso.com"
FIRST_DISK = "6a1c0f3e-first"
NEW_DISK = "9b2d1e4f-second"


def hand_over(env: Env, count: int, shadow_id: str = FIRST_DISK) -> list[int]:
    """``count`` messages routed to Shandong and taken by its hub under XSHADOW.

    Returns the hub's InternalIds for them (100, 101, ...)."""
    queue = routed(env, "bob@fabrikam.com", count=count)
    batch = take(env, queue)
    remote_ids = []
    for n, msg in enumerate(batch.messages):
        handoff = ShadowHandoff(HUB, shadow_id, 100 + n)
        outcomes = [RecipientOutcome.delivered(r.id) for r in msg.recipients]
        env.store.report(batch.lease, msg.item_id, outcomes, shadow=handoff)
        remote_ids.append(handoff.remote_id)
    env.store.finish(batch.lease)
    return remote_ids


def shadow_queue_count(env: Env) -> int | None:
    shown = [q for q in env.store.get_queues() if q.delivery_type is DeliveryType.SHADOW_REDUNDANCY]
    if not shown:
        return None
    [queue] = shown
    assert queue.next_hop_domain == HUB
    return queue.message_count


def test_a_message_handed_over_under_xshadow_stays_in_a_shadow_queue(env: Env) -> None:
    hand_over(env, 2)
    # Get-Queue shows the shadow queue for the next hop, with both copies ...
    assert shadow_queue_count(env) == 2
    # ... which nobody sends again and which neither expire nor get delay DSNs.
    assert env.store.due_queues() == []
    env.clock.advance(timedelta(days=3))
    env.store.sweep()
    assert env.reports() == []
    assert shadow_queue_count(env) == 2
    [peer] = env.store.shadow_peers()
    assert (peer.server, peer.shadow_ids, peer.messages) == (HUB, frozenset({FIRST_DISK}), 2)


def test_a_handover_without_xshadow_or_to_a_mailbox_keeps_nothing(env: Env) -> None:
    queue = routed(env, "bob@fabrikam.com")
    batch = take(env, queue)
    [msg] = batch.messages
    env.store.report(batch.lease, msg.item_id, [RecipientOutcome.delivered(msg.recipients[0].id)])
    env.store.finish(batch.lease)
    env.submit("carol@contoso.com")
    env.categorize(lambda _: MAILBOX)
    [ref] = env.store.due_queues()
    batch = env.store.take_batch(ref.queue_id)
    assert batch is not None
    [msg] = batch.messages
    handoff = ShadowHandoff(HUB, FIRST_DISK, 7)
    outcomes = [RecipientOutcome.delivered(msg.recipients[0].id)]
    env.store.report(batch.lease, msg.item_id, outcomes, shadow=handoff)
    assert env.store.get_messages() == []
    assert shadow_queue_count(env) is None


def test_discard_notifications_empty_the_shadow_queue(env: Env) -> None:
    first, second = hand_over(env, 2)
    # A notification from another disk of the hub is not about these copies.
    assert env.store.discard_shadows(HUB, NEW_DISK, [first]) == 0
    assert env.store.discard_shadows(HUB, FIRST_DISK, [first, 999]) == 1
    assert shadow_queue_count(env) == 1
    assert env.store.discard_shadows(HUB, FIRST_DISK, [second]) == 1
    assert shadow_queue_count(env) is None
    assert env.store.get_messages() == [] and env.store.shadow_peers() == []
    discards = [e for e in env.events if e.tracking is TrackingEventId.HADISCARD]
    assert len(discards) == 2 and discards[0].source is TrackingSource.REDUNDANCY


def test_a_hop_with_a_new_queue_gets_its_copies_resubmitted(env: Env) -> None:
    hand_over(env, 2)
    newer = hand_over(env, 1, shadow_id=NEW_DISK)
    # The hub answers XSHADOW with its new id: what it took before is lost there.
    assert env.store.resubmit_shadows(HUB, keep_shadow_id=NEW_DISK) == 2
    assert shadow_queue_count(env) == 1
    [submission] = [q for q in env.store.get_queues() if q.identity.endswith("Submission")]
    assert submission.message_count == 2
    resubmits = [e for e in env.events if e.tracking is TrackingEventId.RESUBMIT]
    assert [e.recipients for e in resubmits] == [("bob@fabrikam.com",)] * 2
    # Routed again, they go out as new messages of the relay queue.
    env.categorize()
    assert sum(len(b.messages) for b in [take(env, routed(env, "x@fabrikam.com"))]) == 3
    assert env.store.discard_shadows(HUB, NEW_DISK, newer) == 1


def test_a_lost_hop_gets_everything_resubmitted(env: Env) -> None:
    hand_over(env, 3)
    assert env.store.resubmit_shadows(HUB) == 3
    assert shadow_queue_count(env) is None
    assert env.store.shadow_peers() == []


def test_shadow_copies_survive_a_restart(env: Env) -> None:
    hand_over(env, 2)
    shadow_id = env.store.shadow_id
    env.reopen()
    assert shadow_queue_count(env) == 2
    assert env.store.shadow_id == shadow_id


def test_a_new_queue_database_has_a_new_shadow_id(env: Env, tmp_path: Path) -> None:
    other = open_store(tmp_path / "other", env.clock, env.settings, [])
    try:
        assert other.shadow_id != env.store.shadow_id
    finally:
        other.close()


def test_auto_discard_drops_old_copies(env: Env) -> None:
    hand_over(env, 1)
    env.clock.advance(timedelta(days=1))
    hand_over(env, 1)
    env.clock.advance(timedelta(days=1))
    assert env.store.discard_expired_shadows(timedelta(days=2)) == 1
    assert shadow_queue_count(env) == 1


def received_from_shadowing_hub(env: Env, peer: str = "EX-NY1") -> int:
    spool = env.store.open_spool()
    spool.write(b"Subject: x\r\n\r\nHello.\r\n")
    envelope = Envelope(
        mail_from="alice@contoso.com",
        recipients=(EnvelopeRecipient("bob@contoso.com"),),
        internet_message_id="<x@contoso.com>",
        received_at=env.clock.now(),
        headers={SHADOW_PEER: peer},
    )
    return env.store.accept(spool, envelope)


def test_the_receiver_notifies_the_shadowing_hub_once_the_message_is_done(env: Env) -> None:
    internal_id = received_from_shadowing_hub(env)
    env.categorize(lambda _: MAILBOX)
    # Not done yet: nothing to discard.
    assert env.store.take_discards("ex-ny1", 40) == []
    [ref] = env.store.due_queues()
    batch = env.store.take_batch(ref.queue_id)
    assert batch is not None
    [msg] = batch.messages
    env.store.report(batch.lease, msg.item_id, [RecipientOutcome.delivered(msg.recipients[0].id)])
    # Delivered: the notification waits for that hub (and no other), and is told once.
    assert env.store.take_discards("EX-FL2", 40) == []
    assert env.store.take_discards("EX-NY1", 40) == [internal_id]
    assert env.store.take_discards("EX-NY1", 40) == []


def test_discards_are_given_in_bounded_batches(env: Env) -> None:
    ids = [received_from_shadowing_hub(env) for _ in range(5)]
    env.categorize(lambda _: MAILBOX)
    for info in env.store.get_messages():
        env.store.remove_message(info.identity, with_ndr=False)
    assert env.store.take_discards("ex-ny1", 3) == ids[:3]
    assert env.store.take_discards("ex-ny1", 3) == ids[3:]


def test_retry_queue_refuses_a_shadow_queue(env: Env) -> None:
    hand_over(env, 1)
    [queue] = [
        q for q in env.store.get_queues() if q.delivery_type is DeliveryType.SHADOW_REDUNDANCY
    ]
    with pytest.raises(InvalidQueueOperationError):
        env.store.retry_queue(queue.identity)


def test_remove_message_on_a_shadow_copy_sends_no_ndr_and_forgets_it(env: Env) -> None:
    hand_over(env, 1)
    [queue] = [
        q for q in env.store.get_queues() if q.delivery_type is DeliveryType.SHADOW_REDUNDANCY
    ]
    [copy] = env.store.get_messages(queue.identity)
    assert env.store.remove_message(copy.identity, with_ndr=True) is None
    assert env.reports() == [] and env.store.get_messages() == []
    assert env.store.shadow_peers() == []
