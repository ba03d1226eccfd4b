"""Get-Queue/Get-Message and the queue cmdlets of spec 5.4."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.unit.queue.queue_testkit import SERVER, SHANDONG, Env

from sitemail.transport.queue import (
    InvalidIdentityError,
    InvalidQueueOperationError,
    MessageNotFoundError,
    MessageStatus,
    QueueEventKind,
    QueueNotFoundError,
    QueueStatus,
    RecipientOutcome,
    UnreachableRoute,
)

ERROR = '451 4.4.0 Primary target IP address responded with: "421 4.2.1 Unable to connect."'


def shandong(env: Env, count: int = 1, sender: str = "alice@contoso.com") -> str:
    for _ in range(count):
        env.submit("bob@fabrikam.com", sender=sender)
    env.categorize()
    [queue] = [q for q in env.store.get_queues() if q.next_hop_domain == "Shandong"]
    return queue.identity


def queue_id(identity: str) -> int:
    return int(identity.split("\\")[1])


def into_retry(env: Env, identity: str) -> None:
    batch = env.store.take_batch(queue_id(identity))
    assert batch is not None
    env.store.report_connection_failure(batch.lease, ERROR)


# --- Get-Queue -------------------------------------------------------------


def test_get_queue_properties_in_exchange_names(env: Env) -> None:
    identity = shandong(env)
    into_retry(env, identity)
    info = env.store.get_queue(identity)
    props = dict(info.properties())
    assert list(props) == [
        "Identity",
        "DeliveryType",
        "NextHopDomain",
        "TlsDomain",
        "NextHopConnector",
        "Status",
        "MessageCount",
        "LastError",
        "RetryCount",
        "LastRetryTime",
        "NextRetryTime",
        "IsValid",
    ]
    assert props["DeliveryType"] == "SmtpRelayToRemoteAdSite"
    assert props["Status"] == "Retry"
    assert props["LastError"] == ERROR
    assert props["NextRetryTime"] == env.clock.now() + timedelta(minutes=1)


def test_get_message_properties_in_exchange_names(env: Env) -> None:
    identity = shandong(env)
    [msg] = env.store.get_messages(identity)
    props = dict(msg.properties())
    assert list(props) == [
        "Identity",
        "FromAddress",
        "Status",
        "Size",
        "SCL",
        "Queue",
        "DateReceived",
        "ExpirationTime",
        "LastError",
        "RetryCount",
        "Subject",
        "Recipients",
        "InternetMessageId",
    ]
    assert props["Queue"] == identity
    assert props["ExpirationTime"] == props["DateReceived"] + timedelta(days=2)  # type: ignore[operator]
    assert props["Recipients"] == ["bob@fabrikam.com"]


def test_empty_delivery_queues_vanish_after_queue_max_idle_time(env: Env) -> None:
    identity = shandong(env)
    batch = env.store.take_batch(queue_id(identity))
    assert batch is not None
    [msg] = batch.messages
    env.store.report(batch.lease, msg.item_id, [RecipientOutcome.delivered(msg.recipients[0].id)])
    env.store.finish(batch.lease)
    assert env.store.get_queue(identity).message_count == 0
    env.clock.advance(timedelta(minutes=3) - timedelta(seconds=1))
    env.store.sweep()
    assert identity in [q.identity for q in env.store.get_queues()]
    # New mail within the idle time keeps the same queue (and identity).
    env.submit("carol@fabrikam.com")
    env.categorize()
    assert env.store.get_queue(identity).message_count == 1
    batch = env.store.take_batch(queue_id(identity))
    assert batch is not None
    [msg] = batch.messages
    env.store.report(batch.lease, msg.item_id, [RecipientOutcome.delivered(msg.recipients[0].id)])
    env.store.finish(batch.lease)
    env.clock.advance(timedelta(minutes=3))
    assert identity not in [q.identity for q in env.store.get_queues()]
    assert env.store.sweep().queues_removed == (identity,)
    with pytest.raises(QueueNotFoundError):
        env.store.get_queue(identity)
    # The next message for Shandong gets a new queue number.
    assert shandong(env) != identity


def test_queue_max_idle_time_is_a_setting(env: Env) -> None:
    env.settings.queue_max_idle_time = timedelta(seconds=30)
    identity = shandong(env)
    env.store.remove_message(env.store.get_messages(identity)[0].identity, with_ndr=False)
    env.clock.advance(timedelta(seconds=30))
    assert identity in env.store.sweep().queues_removed


def test_poison_and_unreachable_are_listed_only_when_they_hold_messages(env: Env) -> None:
    names = [q.identity for q in env.store.get_queues()]
    assert names == [f"{SERVER}\\Submission"]
    env.submit("x@nowhere.example")
    env.categorize(lambda _: UnreachableRoute("no route"))
    assert f"{SERVER}\\Unreachable" in [q.identity for q in env.store.get_queues()]
    # Both can always be named.
    assert env.store.get_queue(f"{SERVER}\\Poison").message_count == 0


def test_identities_are_checked(env: Env) -> None:
    with pytest.raises(InvalidIdentityError, match="EX02"):
        env.store.get_queue("EX02\\Submission")
    with pytest.raises(InvalidIdentityError):
        env.store.get_queue("EX01\\Shandong")
    with pytest.raises(QueueNotFoundError, match="Get-Queue"):
        env.store.get_queue("EX01\\4242")
    with pytest.raises(MessageNotFoundError, match="Get-Message"):
        env.store.get_message("EX01\\Submission\\4242")
    with pytest.raises(InvalidIdentityError):
        env.store.get_message("EX01\\Submission")
    assert env.store.get_queue("ex01\\submission").identity == f"{SERVER}\\Submission"


# --- Retry-Queue -------------------------------------------------------------


def test_retry_queue_forces_an_immediate_attempt(env: Env) -> None:
    identity = shandong(env)
    into_retry(env, identity)
    assert env.store.take_batch(queue_id(identity)) is None
    info = env.store.retry_queue(identity)
    assert info.next_retry_time == env.clock.now()
    assert info.status is QueueStatus.RETRY  # until the attempt is made
    batch = env.store.take_batch(queue_id(identity))
    assert batch is not None
    # A failure sets a new NextRetryTime on the ladder.
    retry_at = env.store.report_connection_failure(batch.lease, ERROR)
    assert retry_at == env.clock.now() + timedelta(minutes=1)
    assert env.store.get_queue(identity).retry_count == 2
    assert any(e.kind is QueueEventKind.CHANGED for e in env.events)


def test_retry_queue_only_for_queues_in_retry(env: Env) -> None:
    identity = shandong(env)
    with pytest.raises(InvalidQueueOperationError, match="status is Ready"):
        env.store.retry_queue(identity)
    env.store.suspend_queue(identity)
    with pytest.raises(InvalidQueueOperationError, match="status is Suspended"):
        env.store.retry_queue(identity)
    for special in ("Submission", "Poison"):
        with pytest.raises(InvalidQueueOperationError):
            env.store.retry_queue(f"{SERVER}\\{special}")


def test_retry_queue_resubmit_sends_messages_back_to_the_categorizer(env: Env) -> None:
    identity = shandong(env, count=2)
    into_retry(env, identity)
    env.store.retry_queue(identity, resubmit=True)
    assert env.store.get_queue(identity).message_count == 0
    back = env.store.take_for_categorization()
    assert len(back) == 2
    assert [e.kind for e in env.events].count(QueueEventKind.RESUBMITTED) == 2


def test_unreachable_needs_resubmit(env: Env) -> None:
    env.submit("x@nowhere.example")
    env.categorize(lambda _: UnreachableRoute("no route"))
    unreachable = f"{SERVER}\\Unreachable"
    with pytest.raises(InvalidQueueOperationError, match="-Resubmit"):
        env.store.retry_queue(unreachable)
    env.store.retry_queue(unreachable, resubmit=True)
    [again] = env.store.take_for_categorization()
    assert again.recipients[0].address == "x@nowhere.example"
    env.store.route(again.item_id, {again.recipients[0].id: SHANDONG})
    assert env.store.get_queue(unreachable).message_count == 0


def test_automatic_unreachable_resubmission_stops_when_suspended(env: Env) -> None:
    env.submit("x@nowhere.example")
    env.categorize(lambda _: UnreachableRoute("no route"))
    env.store.suspend_queue(f"{SERVER}\\Unreachable")
    assert env.store.resubmit_unreachable() == 0
    env.store.resume_queue(f"{SERVER}\\Unreachable")
    assert env.store.resubmit_unreachable() == 1


# --- Suspend-Queue / Resume-Queue -------------------------------------------


def test_a_suspended_queue_takes_messages_in_but_lets_none_out(env: Env) -> None:
    identity = shandong(env)
    info = env.store.suspend_queue(identity)
    assert info.status is QueueStatus.SUSPENDED
    env.submit("carol@fabrikam.com")
    env.categorize()
    assert env.store.get_queue(identity).message_count == 2
    assert env.store.take_batch(queue_id(identity)) is None
    assert env.store.due_queues() == []
    env.clock.advance(timedelta(hours=1))
    env.store.sweep()  # a suspended queue does not vanish
    assert env.store.resume_queue(identity).status is QueueStatus.READY
    batch = env.store.take_batch(queue_id(identity))
    assert batch is not None and len(batch.messages) == 2


def test_the_poison_queue_cannot_be_suspended(env: Env) -> None:
    with pytest.raises(InvalidQueueOperationError, match="Poison"):
        env.store.suspend_queue(f"{SERVER}\\Poison")


# --- Suspend-Message / Resume-Message ----------------------------------------


def test_suspend_and_resume_a_message(env: Env) -> None:
    identity = shandong(env, count=2)
    first, second = env.store.get_messages(identity)
    assert env.store.suspend_message(first.identity).status is MessageStatus.SUSPENDED
    batch = env.store.take_batch(queue_id(identity))
    assert batch is not None
    assert [m.identity for m in batch.messages] == [second.identity]
    env.store.finish(batch.lease)
    with pytest.raises(InvalidQueueOperationError, match="status is Ready"):
        env.store.resume_message(second.identity)
    assert env.store.resume_message(first.identity).status is MessageStatus.READY


def test_a_message_in_flight_is_pending_suspend(env: Env) -> None:
    identity = shandong(env)
    batch = env.store.take_batch(queue_id(identity))
    assert batch is not None
    [msg] = batch.messages
    assert env.store.suspend_message(msg.identity).status is MessageStatus.PENDING_SUSPEND
    env.store.report_connection_failure(batch.lease, ERROR)  # delivery failed: it comes back
    assert env.store.get_message(msg.identity).status is MessageStatus.SUSPENDED


def test_submission_messages_cannot_be_suspended_or_removed(env: Env) -> None:
    internal_id = env.submit("bob@contoso.com")
    identity = f"{SERVER}\\Submission\\{internal_id}"
    with pytest.raises(InvalidQueueOperationError, match="Submission"):
        env.store.suspend_message(identity)
    with pytest.raises(InvalidQueueOperationError, match="Submission"):
        env.store.remove_message(identity)


# --- Remove-Message ----------------------------------------------------------


def test_remove_with_ndr(env: Env) -> None:
    identity = shandong(env)
    [msg] = env.store.get_messages(identity)
    assert env.store.remove_message(msg.identity, with_ndr=True) is None
    assert env.store.get_queue(identity).message_count == 0
    [ndr] = env.reports()
    assert ndr.to == "alice@contoso.com"
    assert "#550 4.3.2 QUEUE.Admin; message deleted by administrative action ##" in ndr.text


def test_remove_without_ndr(env: Env) -> None:
    identity = shandong(env)
    [msg] = env.store.get_messages(identity)
    env.store.remove_message(msg.identity, with_ndr=False)
    assert env.store.get_messages() == []
    assert list((env.home / "queue" / "spool").iterdir()) == []
    assert any(e.kind is QueueEventKind.REMOVED for e in env.events)


def test_never_an_ndr_for_a_null_sender_message(env: Env) -> None:
    identity = shandong(env, sender="")
    [msg] = env.store.get_messages(identity)
    assert msg.from_address == "<>"
    env.store.remove_message(msg.identity, with_ndr=True)
    assert env.store.get_messages() == []


def test_removing_a_message_in_flight_waits_for_the_worker(env: Env) -> None:
    identity = shandong(env, count=2)
    batch = env.store.take_batch(queue_id(identity))
    assert batch is not None
    first, second = batch.messages
    assert env.store.remove_message(first.identity) is MessageStatus.PENDING_REMOVE
    assert env.store.remove_message(second.identity, with_ndr=False) is MessageStatus.PENDING_REMOVE
    assert env.store.get_message(first.identity).status is MessageStatus.PENDING_REMOVE
    # The first was delivered anyway: nothing left to remove, no NDR.
    result = env.store.report(
        batch.lease, first.item_id, [RecipientOutcome.delivered(first.recipients[0].id)]
    )
    assert result.message_done
    # The second got a 4xx: it comes back to the queue, and the removal happens then.
    result = env.store.report(
        batch.lease,
        second.item_id,
        [RecipientOutcome.deferred(second.recipients[0].id, "451 4.3.0 Try later")],
    )
    assert result.message_done
    env.store.finish(batch.lease)
    assert env.store.get_messages() == []
    assert env.reports() == []
