"""Crash recovery: in-flight messages come back; at PoisonThreshold they go to Poison.

Each crash is real: a forked child opens the store, takes messages and is
killed by SIGKILL while it holds them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from tests.unit.queue.queue_testkit import SERVER, SHANDONG, Env, crash_in_child, open_store

from sitemail.mailflow.tracking_log import TrackingEventId
from sitemail.transport.queue import (
    InvalidQueueOperationError,
    MessageStatus,
    QueueEventKind,
    QueueStatus,
    QueueStore,
)


def take_batch_and_die(store: QueueStore) -> None:
    [ref] = store.due_queues()
    assert store.take_batch(ref.queue_id) is not None


def categorize_and_die(store: QueueStore) -> None:
    assert store.take_for_categorization()


def crash(env: Env, work: Callable[[QueueStore], None]) -> QueueStore:
    env.store.close()
    crash_in_child(env.home, env.clock, work)
    env.store = open_store(env.home, env.clock, env.settings, env.events)
    return env.store


def test_a_crash_puts_in_flight_messages_back_ready(env: Env) -> None:
    env.submit("bob@fabrikam.com")
    env.categorize()
    [before] = env.store.get_messages()
    store = crash(env, take_batch_and_die)
    assert store.recovery.requeued == (int(before.identity.rsplit("\\", 1)[1]),)
    [after] = store.get_messages()
    assert (after.identity, after.status) == (before.identity, MessageStatus.READY)
    assert store.get_queue(before.queue).status is QueueStatus.READY
    assert store.take_batch(store.due_queues()[0].queue_id) is not None


def test_the_second_crash_makes_a_poison_message(env: Env) -> None:
    env.submit("bob@fabrikam.com", subject="Crasher")
    env.categorize()
    crash(env, take_batch_and_die)
    store = crash(env, take_batch_and_die)
    assert len(store.recovery.poisoned) == 1
    poison = store.get_queue(f"{SERVER}\\Poison")
    assert (poison.message_count, poison.delivery_type, poison.next_hop_domain) == (
        1,
        "Undefined",
        "Poison Message",
    )
    assert f"{SERVER}\\Poison" in [q.identity for q in store.get_queues()]
    [msg] = store.get_messages(f"{SERVER}\\Poison")
    assert (msg.status, msg.subject, msg.expiration_time) == (
        MessageStatus.SUSPENDED,
        "Crasher",
        None,
    )
    assert store.due_queues() == []
    [event] = [e for e in env.events if e.kind is QueueEventKind.POISONED]
    assert event.tracking is TrackingEventId.POISONMESSAGE


def test_a_message_that_crashes_the_categorizer_is_poison_too(env: Env) -> None:
    env.submit("bob@fabrikam.com")
    crash(env, categorize_and_die)
    assert env.store.get_messages()[0].status is MessageStatus.READY
    store = crash(env, categorize_and_die)
    assert [m.queue for m in store.get_messages()] == [f"{SERVER}\\Poison"]
    assert store.take_for_categorization() == []


def test_resuming_a_poison_message_resubmits_it(env: Env) -> None:
    env.submit("bob@fabrikam.com")
    crash(env, categorize_and_die)
    store = crash(env, categorize_and_die)
    [msg] = store.get_messages(f"{SERVER}\\Poison")
    resumed = store.resume_message(msg.identity)
    assert resumed.queue == f"{SERVER}\\Submission"
    [again] = store.take_for_categorization()
    store.route(again.item_id, {again.recipients[0].id: SHANDONG})
    assert store.get_queue(f"{SERVER}\\Poison").message_count == 0


def test_poison_messages_cannot_be_suspended_and_never_expire(env: Env) -> None:
    env.submit("bob@fabrikam.com")
    crash(env, categorize_and_die)
    store = crash(env, categorize_and_die)
    [msg] = store.get_messages(f"{SERVER}\\Poison")
    with pytest.raises(InvalidQueueOperationError, match="Poison"):
        store.suspend_message(msg.identity)
    env.clock.advance(timedelta(days=10))
    assert store.sweep().expired == ()
    assert store.remove_message(msg.identity, with_ndr=True) is None
    [ndr] = env.reports()
    assert "QUEUE.PoisonAdmin; message deleted by administrative action" in ndr.text


def test_poison_detection_can_be_turned_off(env: Env) -> None:
    env.settings.poison_message_detection_enabled = False
    env.submit("bob@fabrikam.com")
    for _ in range(3):
        crash(env, categorize_and_die)
    assert env.store.recovery.poisoned == ()
    assert env.store.get_messages()[0].queue == f"{SERVER}\\Submission"


def test_the_threshold_is_a_setting(env: Env) -> None:
    env.settings.poison_threshold = 1
    env.submit("bob@fabrikam.com")
    store = crash(env, categorize_and_die)
    assert len(store.recovery.poisoned) == 1


def test_a_clean_close_is_not_a_crash(env: Env) -> None:
    env.submit("bob@fabrikam.com")
    for _ in range(3):
        assert env.store.take_for_categorization()
        env.reopen()
    assert env.store.recovery.requeued == ()
    assert env.store.get_messages()[0].queue == f"{SERVER}\\Submission"
