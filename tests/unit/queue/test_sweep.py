"""Delay DSNs at DelayNotificationTimeout, expiry NDRs at MessageExpirationTimeout."""

from __future__ import annotations

from datetime import timedelta

from tests.unit.queue.queue_testkit import SERVER, Env

from sitemail.mailflow.tracking_log import TrackingEventId
from sitemail.transport.queue import QueueEventKind, RecipientOutcome, UnreachableRoute

HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)
ERROR = '451 4.4.0 Primary target IP address responded with: "421 4.2.1 Unable to connect."'


def stuck(env: Env, *recipients: str, **kw: object) -> str:
    """A message routed to Shandong whose queue keeps failing; returns the queue identity."""
    env.submit(*recipients, **kw)  # type: ignore[arg-type]
    env.categorize()
    [queue] = [q for q in env.store.get_queues() if q.next_hop_domain == "Shandong"]
    batch = env.store.take_batch(int(queue.identity.split("\\")[1]))
    assert batch is not None
    env.store.report_connection_failure(batch.lease, ERROR)
    return queue.identity


def delay_reports(env: Env) -> list[str]:
    return [r.subject for r in env.reports() if r.subject.startswith("Delivery delayed")]


def test_one_delay_dsn_after_four_hours(env: Env) -> None:
    stuck(env, "bob@fabrikam.com", subject="Plans")
    env.clock.advance(4 * HOUR - SECOND)
    assert env.store.sweep().delay_notified == ()
    env.clock.advance(SECOND)
    result = env.store.sweep()
    assert len(result.delay_notified) == 1 and len(result.dsn_ids) == 1
    [report] = env.reports()
    assert report.subject == "Delivery delayed:Plans"
    assert report.to == "alice@contoso.com"
    body = report.text
    assert "Delivery is delayed to these recipients or groups:" in body
    assert "bob@fabrikam.com (bob@fabrikam.com)" in body
    assert "for the next 1 days, 20 hours and 0 minutes" in body
    [recipient] = report.recipients
    assert recipient["Action"] == "delayed"
    # The queue's LastError explains the delay.
    assert recipient["Status"] == "4.4.0"
    assert recipient["Diagnostic-Code"] == f"smtp;{ERROR}"
    # Only one, however often the sweep runs.
    env.clock.advance(HOUR)
    assert env.store.sweep().delay_notified == ()
    assert len(delay_reports(env)) == 1
    [event] = [e for e in env.events if e.kind is QueueEventKind.DSN]
    assert event.tracking is TrackingEventId.DSN and event.reference.startswith("<m")


def test_no_delay_dsn_for_a_null_sender_or_notify_never(env: Env) -> None:
    stuck(env, "bob@fabrikam.com", sender="")
    env.submit("carol@fabrikam.com", notify="NEVER")
    env.submit("dave@fabrikam.com", notify="FAILURE")
    env.categorize()
    env.clock.advance(5 * HOUR)
    env.store.sweep()
    assert delay_reports(env) == []


def test_delivered_messages_get_no_delay_dsn(env: Env) -> None:
    env.submit("bob@fabrikam.com")
    env.categorize()
    [ref] = env.store.due_queues()
    batch = env.store.take_batch(ref.queue_id)
    assert batch is not None
    [msg] = batch.messages
    env.store.report(batch.lease, msg.item_id, [RecipientOutcome.delivered(msg.recipients[0].id)])
    env.store.finish(batch.lease)
    env.clock.advance(5 * HOUR)
    env.store.sweep()
    assert env.reports() == []


def test_expiry_after_two_days_with_the_4_4_7_ndr(env: Env) -> None:
    # Keep the message in its queue for the whole two days (no 12-hour resubmission).
    env.settings.max_idle_time_before_resubmit = timedelta(days=3)
    queue = stuck(env, "bob@fabrikam.com", subject="Plans")
    [msg] = env.store.get_messages(queue)
    assert msg.expiration_time == msg.date_received + timedelta(days=2)
    env.clock.advance(timedelta(days=2) - SECOND)
    assert env.store.sweep().expired == ()
    env.clock.advance(SECOND)
    result = env.store.sweep()
    assert result.expired == (msg.identity,)
    assert env.store.get_queue(queue).message_count == 0
    [ndr] = [r for r in env.reports() if r.subject.startswith("Undeliverable")]
    assert ndr.subject == "Undeliverable: Plans"
    assert "#550 4.4.7 QUEUE.Expired; message expired ##" in ndr.text
    assert "Generating server: ex01.contoso.com" in ndr.text
    [recipient] = ndr.recipients
    assert (recipient["Action"], recipient["Status"]) == ("failed", "4.4.7")
    assert "Subject: Plans" in ndr.headers
    # The delay DSN went out on the way (4 h), before the NDR (2 days).
    assert len(delay_reports(env)) == 1


def test_unreachable_expiry_gives_the_reason(env: Env) -> None:
    env.submit("x@nowhere.example")
    env.categorize(lambda _: UnreachableRoute("no connector for nowhere.example"))
    env.clock.advance(timedelta(days=2))
    env.store.sweep()
    [ndr] = [r for r in env.reports() if r.subject.startswith("Undeliverable")]
    assert (
        "#550 4.4.7 QUEUE.Expired; message expired in unreachable destination queue. "
        "Reason: no connector for nowhere.example ##"
    ) in ndr.text


def test_suspended_messages_do_not_expire_but_suspended_queues_do(env: Env) -> None:
    queue = stuck(env, "bob@fabrikam.com")
    env.submit("carol@fabrikam.com")
    env.categorize()
    first, second = env.store.get_messages(queue)
    env.store.suspend_message(first.identity)
    env.store.suspend_queue(queue)
    env.clock.advance(timedelta(days=3))
    assert env.store.sweep().expired == (second.identity,)
    assert [m.identity for m in env.store.get_messages(queue)] == [first.identity]
    env.store.resume_message(first.identity)
    assert env.store.sweep().expired == (first.identity,)


def test_a_suspended_queue_explains_the_delay(env: Env) -> None:
    queue = stuck(env, "bob@fabrikam.com")
    env.store.suspend_queue(queue)
    env.clock.advance(4 * HOUR)
    env.store.sweep()
    [report] = env.reports()
    [recipient] = report.recipients
    assert recipient["Diagnostic-Code"] == (
        "smtp;400 4.0.0 Message delivery delayed due to a suspended delivery queue"
    )


def test_no_ndr_when_an_ndr_expires(env: Env) -> None:
    stuck(env, "bob@fabrikam.com", sender="")
    env.clock.advance(timedelta(days=2))
    assert len(env.store.sweep().expired) == 1
    assert env.reports() == []
    assert env.store.get_messages() == []


def test_timers_are_settings(env: Env) -> None:
    env.settings.delay_notification_timeout = timedelta(minutes=10)
    env.settings.message_expiration_timeout = timedelta(minutes=30)
    queue = stuck(env, "bob@fabrikam.com")
    env.clock.advance(timedelta(minutes=10))
    assert len(env.store.sweep().delay_notified) == 1
    env.clock.advance(timedelta(minutes=20))
    assert len(env.store.sweep().expired) == 1
    assert env.store.get_queue(queue).message_count == 0


def test_a_queue_stuck_in_retry_is_resubmitted_after_twelve_hours(env: Env) -> None:
    queue = stuck(env, "bob@fabrikam.com")
    queue_id = int(queue.split("\\")[1])
    started = env.clock.now()
    while env.clock.now() - started < timedelta(hours=12):  # fail at every retry time
        assert env.store.sweep().resubmitted == ()
        next_retry = env.store.get_queue(queue).next_retry_time
        assert next_retry is not None
        env.clock.advance(next_retry - env.clock.now())
        batch = env.store.take_batch(queue_id)
        assert batch is not None
        env.store.report_connection_failure(batch.lease, ERROR)
    result = env.store.sweep()
    assert result.resubmitted == (queue,)
    assert env.store.get_queue(f"{SERVER}\\Submission").message_count >= 1


def test_next_due_time_follows_the_timers(env: Env) -> None:
    assert env.store.next_due_time() is None
    env.submit("bob@fabrikam.com")
    assert env.store.next_due_time() == env.clock.now()  # the categorizer has work
    env.categorize()
    [ref] = env.store.due_queues()
    batch = env.store.take_batch(ref.queue_id)
    assert batch is not None
    retry_at = env.store.report_connection_failure(batch.lease, ERROR)
    assert env.store.next_due_time() == retry_at
