"""Queue events become message tracking rows through write_tracking."""

from __future__ import annotations

from pathlib import Path

from tests.unit.queue.queue_testkit import SHANDONG, Env

from sitemail.mailflow.dsn import RECIPIENT_NOT_FOUND_REPLY
from sitemail.mailflow.tracking_log import MessageTrackingLog, read_tracking_log
from sitemail.transport.queue import (
    FailRecipient,
    QueueEvent,
    RecipientOutcome,
    write_tracking,
    write_tracking_batch,
)


def test_a_message_life_in_the_tracking_log(env: Env, tmp_path: Path) -> None:
    log = MessageTrackingLog(tmp_path / "tracking", clock=env.clock)
    env.store.add_listener(
        lambda e: write_tracking(log, e, server_hostname="EX01.contoso.com", server_ip="10.1.0.5")
    )
    internal_id = env.submit("bob@fabrikam.com", "ghost@contoso.com", message_id="<t1@contoso.com>")
    env.categorize(
        lambda a: FailRecipient(RECIPIENT_NOT_FOUND_REPLY) if a.startswith("ghost") else SHANDONG
    )
    [ref] = env.store.due_queues()
    batch = env.store.take_batch(ref.queue_id)
    assert batch is not None
    [msg] = batch.messages
    env.store.report(batch.lease, msg.item_id, [RecipientOutcome.delivered(msg.recipients[0].id)])
    env.store.finish(batch.lease)
    log.close()

    rows = list(read_tracking_log(tmp_path / "tracking"))
    assert [(r.event_id, r.source) for r in rows] == [
        ("RECEIVE", "SMTP"),
        ("FAIL", "ROUTING"),
        ("DSN", "DSN"),
        ("SEND", "SMTP"),
    ]
    receive, fail, dsn, send = rows
    assert receive.internal_message_id == str(internal_id)
    assert receive.message_id == "<t1@contoso.com>"
    assert receive.recipient_address == ("bob@fabrikam.com", "ghost@contoso.com")
    assert receive.client_ip == "10.1.0.11" and receive.server_hostname == "EX01.contoso.com"
    assert fail.recipient_status == (RECIPIENT_NOT_FOUND_REPLY,)
    assert dsn.reference == "<t1@contoso.com>" and dsn.recipient_address == ("alice@contoso.com",)
    assert send.recipient_address == ("bob@fabrikam.com",)


def test_a_batch_listener_writes_the_same_rows_one_append_per_commit(
    env: Env, tmp_path: Path
) -> None:
    single = MessageTrackingLog(tmp_path / "single", clock=env.clock)
    batched = MessageTrackingLog(tmp_path / "batched", clock=env.clock)
    commits: list[int] = []

    def batch(events: list[QueueEvent]) -> None:
        commits.append(len(events))
        write_tracking_batch(batched, events, server_hostname="EX01.contoso.com")

    env.store.add_listener(lambda e: write_tracking(single, e, server_hostname="EX01.contoso.com"))
    env.store.add_batch_listener(batch)
    env.submit("bob@fabrikam.com", message_id="<b1@contoso.com>")
    env.submit("carol@fabrikam.com", message_id="<b2@contoso.com>")
    env.categorize(lambda a: FailRecipient(RECIPIENT_NOT_FOUND_REPLY))  # FAIL, then DSN
    single.close()
    batched.close()
    assert commits and sum(commits) >= 4
    rows = [(r.event_id, r.message_id) for r in read_tracking_log(tmp_path / "single")]
    assert rows == [(r.event_id, r.message_id) for r in read_tracking_log(tmp_path / "batched")]
    assert ("RECEIVE", "<b2@contoso.com>") in rows and ("FAIL", "<b1@contoso.com>") in rows
