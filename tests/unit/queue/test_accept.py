"""accept(): the hand-off contract of submission.py, durability bookkeeping, group commit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.unit.queue.queue_testkit import FQDN, SERVER, Env

from sitemail.mailflow.envelope import AcceptError, Envelope, EnvelopeRecipient, MessageAcceptor
from sitemail.mailflow.tracking_log import TrackingEventId
from sitemail.transport.queue import (
    DeliveryType,
    MessageStatus,
    QueueEventKind,
    QueueStatus,
    QueueStore,
    RecipientOutcome,
    StoreLockedError,
)
from sitemail.transport.queue.spool import WRITE_BUFFER


def spool_files(env: Env) -> set[str]:
    return {p.name for p in (env.home / "queue" / "spool").iterdir()}


def test_the_store_is_a_message_acceptor(env: Env) -> None:
    acceptor: MessageAcceptor = env.store
    assert acceptor is env.store


def test_accept_queues_the_message_in_submission(env: Env) -> None:
    spool = env.store.open_spool()
    for chunk in (b"Subject: hi\r\n", b"\r\n", b"x" * 5000):
        spool.write(chunk)
    assert spool.size == 5015
    envelope = Envelope(
        mail_from="alice@contoso.com",
        recipients=(
            EnvelopeRecipient("bob@contoso.com", notify="FAILURE", orcpt="rfc822;Bob@contoso.com"),
            EnvelopeRecipient("carol@fabrikam.com"),
        ),
        internet_message_id="<1@contoso.com>",
        received_at=env.clock.now(),
        subject="hi",
        client_ip="10.1.0.11",
        connector_id="EX01\\Default EX01",
        headers={"SCL": "5"},
    )
    internal_id = env.store.accept(spool, envelope)
    info = env.store.get_message(f"{SERVER}\\Submission\\{internal_id}")
    assert info.status is MessageStatus.READY
    assert info.recipients == ("bob@contoso.com", "carol@fabrikam.com")
    assert (info.size, info.scl, info.subject, info.from_address) == (
        5015,
        5,
        "hi",
        "alice@contoso.com",
    )
    assert info.date_received == env.clock.now()
    assert env.store.export_message(info.identity) == b"Subject: hi\r\n\r\n" + b"x" * 5000
    sub = env.store.get_queue(f"{SERVER}\\Submission")
    assert (sub.message_count, sub.delivery_type, sub.next_hop_domain) == (
        1,
        DeliveryType.UNDEFINED,
        "Submission",
    )
    # The envelope comes back whole to the categorizer.
    [taken] = env.store.take_for_categorization()
    assert taken.envelope == envelope
    assert [r.orcpt for r in taken.recipients] == ["rfc822;Bob@contoso.com", None]
    received = [e for e in env.events if e.kind is QueueEventKind.RECEIVED]
    assert received[0].tracking is TrackingEventId.RECEIVE
    assert received[0].internal_id == internal_id and received[0].size == 5015


def test_ids_increase_and_are_never_reused_after_restart(env: Env) -> None:
    first = [env.submit("bob@contoso.com") for _ in range(3)]
    assert first == sorted(first) and len(set(first)) == 3
    # Deliver everything so the newest ids leave the database, then restart.
    env.categorize()
    batch = env.store.take_batch(env.store.due_queues()[0].queue_id)
    assert batch is not None
    for m in batch.messages:
        env.store.report(batch.lease, m.item_id, [RecipientOutcome.delivered(m.recipients[0].id)])
    env.store.finish(batch.lease)
    store = env.reopen()
    assert env.submit("bob@contoso.com") > max(first)
    assert store.get_messages()  # the new one is there


def test_a_message_needs_a_recipient(env: Env) -> None:
    spool = env.store.open_spool()
    spool.write(b"x")
    with pytest.raises(AcceptError, match="at least one recipient"):
        env.store.accept(spool, Envelope("a@b.c", (), "<x@y>", env.clock.now()))
    assert spool_files(env) == set()


def test_abort_removes_the_body(env: Env) -> None:
    spool = env.store.open_spool()
    spool.write(b"partial")
    spool.abort()
    assert spool_files(env) == set()


def test_a_foreign_spool_writer_is_refused(env: Env, tmp_path: Path) -> None:
    with QueueStore.open(tmp_path / "other", server="EX02", fqdn="ex02.contoso.com") as other:
        spool = other.open_spool()
        spool.write(b"x")
        with pytest.raises(AcceptError, match="not opened by this queue store"):
            env.store.accept(
                spool, Envelope("a@b.c", (EnvelopeRecipient("d@e.f"),), "<x@y>", env.clock.now())
            )
        spool.abort()


def test_concurrent_accepts_share_commits_and_lose_nothing(env: Env) -> None:
    with ThreadPoolExecutor(16) as pool:
        ids = list(
            pool.map(
                lambda i: env.submit(f"u{i}@contoso.com", body=f"n={i}\r\n".encode()), range(200)
            )
        )
    assert len(set(ids)) == 200
    messages = {m.identity: m for m in env.store.get_messages(f"{SERVER}\\Submission")}
    assert len(messages) == 200
    for i, internal_id in enumerate(ids):
        identity = f"{SERVER}\\Submission\\{internal_id}"
        assert messages[identity].recipients == (f"u{i}@contoso.com",)
        assert env.store.export_message(identity).endswith(f"n={i}\r\n".encode())


def test_messages_survive_a_restart(env: Env) -> None:
    ids = [env.submit("bob@contoso.com", subject=f"s{i}") for i in range(5)]
    store = env.reopen()
    assert [m.subject for m in store.get_messages()] == [f"s{i}" for i in range(5)]
    assert [m.identity for m in store.get_messages()] == [f"{SERVER}\\Submission\\{i}" for i in ids]
    assert store.recovery.orphan_spool_files == 0


def test_unaccepted_spool_files_are_removed_at_open(env: Env) -> None:
    env.submit("bob@contoso.com")
    dangling = env.store.open_spool()
    # Bodies go to disk once past the write buffer (smaller ones at seal()).
    dangling.write(b"half a message" * (WRITE_BUFFER // 14 + 1))
    del dangling  # the session died without accept() or abort()
    store = env.reopen()
    assert store.recovery.orphan_spool_files == 1
    # The accepted message's small body is in the database: no file needed.
    assert spool_files(env) == set() and len(store.get_messages()) == 1


def test_one_process_per_database(env: Env) -> None:
    with pytest.raises(StoreLockedError, match="in use by another process"):
        QueueStore.open(env.home, server=SERVER, fqdn=FQDN)


def test_accept_after_close_is_refused(env: Env) -> None:
    spool = env.store.open_spool()
    spool.write(b"x")
    env.store.close()
    with pytest.raises(AcceptError):
        env.store.accept(
            spool, Envelope("a@b.c", (EnvelopeRecipient("d@e.f"),), "<x@y>", env.clock.now())
        )


def test_submission_is_always_listed(env: Env) -> None:
    [only] = env.store.get_queues()
    assert (only.identity, only.status, only.message_count) == (
        f"{SERVER}\\Submission",
        QueueStatus.READY,
        0,
    )
