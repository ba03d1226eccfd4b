"""accept_spooled / accept_spooled_group: bodies a receive worker wrote and fsynced itself."""

from __future__ import annotations

import sqlite3

import pytest
from tests.unit.queue.queue_testkit import Env

from sitemail.mailflow.envelope import AcceptError, Envelope, EnvelopeRecipient
from sitemail.transport.queue.spool import WRITE_BUFFER, SpoolFile


def _spooled(env: Env, body: bytes = b"Subject: x\r\n\r\nhello\r\n") -> SpoolFile:
    # What a worker does: a spool file of its own in the queue's folder, sealed.
    spool = SpoolFile(env.store.spool_dir)
    spool.write(body)
    spool.seal()
    return spool


def _envelope(env: Env, n: int = 0, *recipients: str) -> Envelope:
    rcpts = recipients or ("bob@contoso.com",)
    return Envelope(
        "alice@contoso.com",
        tuple(EnvelopeRecipient(r) for r in rcpts),
        f"<s{n}@contoso.com>",
        env.clock.now(),
    )


def test_a_spooled_body_is_queued_in_submission(env: Env) -> None:
    spool = _spooled(env)
    internal_id = env.store.accept_spooled(spool.name, spool.size, _envelope(env))
    [message] = env.store.get_messages()
    assert message.identity.endswith(f"\\{internal_id}")  # EX01\Submission\<InternalId>
    assert message.size == spool.size and message.internet_message_id == "<s0@contoso.com>"
    assert spool.path.exists()


@pytest.mark.parametrize(
    "name",
    ["../mail.que", "/etc/passwd", "x.eml", "0" * 32 + ".txt", "0" * 31 + "/.eml"],
)
def test_only_spool_file_names_are_taken(env: Env, name: str) -> None:
    with pytest.raises(AcceptError, match="not the name of a spool file"):
        env.store.accept_spooled(name, 1, _envelope(env))
    assert env.store.get_messages() == []


def test_a_missing_or_short_body_is_refused_and_removed(env: Env) -> None:
    with pytest.raises(AcceptError, match="not on disk"):
        env.store.accept_spooled("a" * 32 + ".eml", 10, _envelope(env))
    spool = _spooled(env)
    with pytest.raises(AcceptError, match="bytes, not"):
        env.store.accept_spooled(spool.name, spool.size + 1, _envelope(env))
    assert not spool.path.exists()
    assert env.store.get_messages() == []


def test_a_group_commits_the_good_and_refuses_the_bad(env: Env) -> None:
    good = [_spooled(env, f"Subject: {n}\r\n\r\n.\r\n".encode()) for n in range(3)]
    empty = _spooled(env)
    items: list[tuple[str, int, Envelope, bytes | None]] = [
        (s.name, s.size, _envelope(env, n), None) for n, s in enumerate(good)
    ]
    items.insert(1, (empty.name, empty.size, Envelope("a@b.c", (), "<e@x>", env.clock.now()), None))
    items.append(("b" * 32 + ".eml", 3, _envelope(env, 9), b"abc"))
    results = env.store.accept_spooled_group(items)
    assert isinstance(results[1], AcceptError) and not empty.path.exists()
    ids = [r for r in results if isinstance(r, int)]
    assert len(ids) == 4 and len(set(ids)) == 4
    queued = {int(m.identity.rsplit("\\", 1)[1]) for m in env.store.get_messages()}
    assert queued == set(ids)
    assert all(s.path.exists() for s in good)


def test_a_small_body_is_kept_by_the_database_and_given_to_readers(env: Env) -> None:
    body = b"Subject: small\r\n\r\nhello\r\n"
    spool = env.store.open_spool()
    spool.write(body)
    internal_id = env.store.accept(spool, _envelope(env))
    assert not spool.path.exists()  # acceptance wrote the commit, nothing else
    store = env.reopen()  # a crash here loses nothing
    assert store.recovery.missing_bodies == () and store.recovery.orphan_spool_files == 0
    [message] = store.get_messages()
    assert message.identity.endswith(f"\\{internal_id}")
    assert store.export_message(message.identity) == body
    env.categorize()  # the categorizer read it too
    [queue] = store.due_queues()
    batch = store.take_batch(queue.queue_id)
    assert batch is not None
    [taken] = batch.messages
    assert taken.body_path == spool.path and spool.path.read_bytes() == body


def test_a_reader_gets_the_whole_body_even_after_a_crash_mid_copy(env: Env) -> None:
    body = b"Subject: x\r\n\r\n" + b"y" * 1000
    env.store.accept_spooled("c" * 32 + ".eml", len(body), _envelope(env), body)
    path = env.store.spool_dir / ("c" * 32 + ".eml")
    path.write_bytes(body[:10])  # what a power loss can leave of a copy
    store = env.reopen()
    [message] = store.get_messages()
    assert store.export_message(message.identity) == body
    assert path.read_bytes() == body


def test_a_large_body_goes_to_its_spool_file_only(env: Env) -> None:
    spool = env.store.open_spool()
    spool.write(b"Subject: big\r\n\r\n" + b"z" * (WRITE_BUFFER + 1))
    env.store.accept(spool, _envelope(env))
    assert spool.path.exists()
    spool.path.unlink()
    store = env.reopen()
    assert len(store.recovery.missing_bodies) == 1  # reported, not invented


def test_a_batch_reads_a_small_body_from_the_database_and_a_large_one_from_its_file(
    env: Env,
) -> None:
    small = b"Subject: small\r\n\r\nhi\r\n"
    env.store.accept_spooled("e" * 32 + ".eml", len(small), _envelope(env), small)
    spool = env.store.open_spool()
    large = b"Subject: big\r\n\r\n" + b"z" * (WRITE_BUFFER + 1)
    spool.write(large)
    env.store.accept(spool, _envelope(env))
    env.categorize()
    [queue] = env.store.due_queues()
    batch = env.store.take_batch(queue.queue_id)
    assert batch is not None
    first, second = batch.messages
    assert first.source == small and not (env.store.spool_dir / ("e" * 32 + ".eml")).exists()
    assert second.body is None and second.source == spool.path
    assert spool.path.read_bytes() == large


def test_the_body_leaves_the_database_with_the_message(env: Env) -> None:
    body = b"Subject: gone\r\n\r\n.\r\n"
    env.store.accept_spooled("d" * 32 + ".eml", len(body), _envelope(env), body)
    env.categorize()  # to the Shandong queue, where an administrator may remove it
    [message] = env.store.get_messages()
    env.store.remove_message(message.identity, with_ndr=False)
    assert env.store.get_messages() == []
    store = env.reopen()
    assert not (store.spool_dir / ("d" * 32 + ".eml")).exists()
    assert store.get_messages() == [] and store.recovery.missing_bodies == ()


def test_an_inline_body_must_have_the_size_announced(env: Env) -> None:
    with pytest.raises(AcceptError, match="bytes, not"):
        env.store.accept_spooled("e" * 32 + ".eml", 99, _envelope(env), b"short")


def test_a_version_1_queue_database_is_upgraded_in_place(env: Env) -> None:
    env.submit("bob@contoso.com", message_id="<old@contoso.com>")
    path = env.store.queue_dir / "mail.que"
    env.store.close()
    conn = sqlite3.connect(path, isolation_level=None)
    # What a first-session sitemail wrote: no bodies table, user_version 1.
    body = conn.execute("SELECT data FROM bodies").fetchone()[0]
    name = conn.execute("SELECT body_file FROM messages").fetchone()[0]
    (env.store.spool_dir / name).write_bytes(body)
    conn.executescript("DROP TABLE bodies; PRAGMA user_version=1;")
    conn.close()
    store = env.reopen()
    assert [m.internet_message_id for m in store.get_messages()] == ["<old@contoso.com>"]
    spool = store.open_spool()
    spool.write(b"Subject: new\r\n\r\n.\r\n")
    store.accept(spool, _envelope(env, 2))
    assert len(store.get_messages()) == 2
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    conn.close()
