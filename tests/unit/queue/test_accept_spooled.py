"""accept_spooled / accept_spooled_group: bodies a receive worker wrote and fsynced itself."""

from __future__ import annotations

import pytest
from tests.unit.queue.queue_testkit import Env

from sitemail.transport.queue.spool import SpoolFile
from sitemail.transport.submission import AcceptError, Envelope, EnvelopeRecipient


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
    items = [(s.name, s.size, _envelope(env, n)) for n, s in enumerate(good)]
    items.insert(1, (empty.name, empty.size, Envelope("a@b.c", (), "<e@x>", env.clock.now())))
    results = env.store.accept_spooled_group(items)
    assert isinstance(results[1], AcceptError) and not empty.path.exists()
    ids = [r for r in results if isinstance(r, int)]
    assert len(ids) == 3 and len(set(ids)) == 3
    queued = {int(m.identity.rsplit("\\", 1)[1]) for m in env.store.get_messages()}
    assert queued == set(ids)
    assert all(s.path.exists() for s in good)
