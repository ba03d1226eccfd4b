"""The pieces of the receive workers that need no process: wire format, counts, session ids."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sitemail.clock import ManualClock
from sitemail.mailflow.envelope import AcceptOutcomeUnknown, Envelope, EnvelopeRecipient
from sitemail.mailflow.protocol_log import SessionIdSource
from sitemail.transport import receive_worker
from sitemail.transport.receive_workers import receive_worker_count
from sitemail.transport.worker_ipc import (
    IpcError,
    envelope_from_wire,
    envelope_to_wire,
    frame,
    read_frame,
    receive_handoff,
    send_handoff,
)

text = st.text(max_size=40)
optional = st.none() | text


@given(
    mail_from=text,
    recipients=st.lists(st.tuples(text, optional, optional), min_size=1, max_size=5),
    subject=text,
    auth_as=optional,
    headers=st.dictionaries(text, text, max_size=3),
)
def test_an_envelope_crosses_the_wire_unchanged(
    mail_from: str,
    recipients: list[tuple[str, str | None, str | None]],
    subject: str,
    auth_as: str | None,
    headers: dict[str, str],
) -> None:
    envelope = Envelope(
        mail_from,
        tuple(EnvelopeRecipient(*r) for r in recipients),
        "<id@x>",
        datetime(2026, 11, 27, 23, 5, 1, 123456, tzinfo=UTC),
        client_ip="127.1.0.12",
        connector_id="EX01\\Default EX01",
        auth_as=auth_as,
        subject=subject,
        headers=headers,
    )
    assert envelope_from_wire(envelope_to_wire(envelope)) == envelope


@pytest.mark.parametrize("wire", [None, (), ("a", "b"), ((1,), (), "not a date", None)])
def test_a_broken_envelope_is_an_ipc_error(wire: object) -> None:
    with pytest.raises(IpcError):
        envelope_from_wire(wire)


def test_frames_round_trip_and_end_cleanly() -> None:
    async def scenario() -> list[object]:
        reader = asyncio.StreamReader()
        reader.feed_data(frame(("accept", 1, "x.eml", 5, None)) + frame(("closed", 7)))
        reader.feed_eof()
        return [await read_frame(reader) for _ in range(3)]

    assert asyncio.run(scenario()) == [("accept", 1, "x.eml", 5, None), ("closed", 7), None]


def test_an_oversized_frame_is_refused() -> None:
    async def scenario() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data((1 << 30).to_bytes(4, "big"))
        await read_frame(reader)

    with pytest.raises(IpcError, match="exceeds"):
        asyncio.run(scenario())


def test_a_descriptor_travels_with_its_message() -> None:
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    a, b = socket.socketpair()
    try:
        send_handoff(parent, ("session", 3, "EX01\\Default EX01", 0), a.fileno())
        send_handoff(parent, ("config", 1))
        packet = receive_handoff(child)
        assert packet is not None
        message, [fd] = packet
        assert message == ("session", 3, "EX01\\Default EX01", 0)
        with socket.socket(fileno=fd) as passed:
            passed.sendall(b"220 ")
            assert b.recv(4) == b"220 "
        assert receive_handoff(child) == (("config", 1), [])
        parent.close()
        assert receive_handoff(child) is None  # the transport process is gone
    finally:
        for s in (parent, child, a, b):
            s.close()


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("2", 2), (" 3 ", 3)])
def test_the_variable_sets_the_worker_count(value: str, expected: int) -> None:
    assert receive_worker_count({"SITEMAIL_RECEIVE_PROCESSES": value}) == expected


@pytest.mark.parametrize("value", ["two", "-1", "65"])
def test_a_bad_worker_count_is_a_clear_error(value: str) -> None:
    with pytest.raises(ValueError, match="SITEMAIL_RECEIVE_PROCESSES"):
        receive_worker_count({"SITEMAIL_RECEIVE_PROCESSES": value})


def test_the_automatic_count_follows_the_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0})
    assert receive_worker_count({}) == 0  # one CPU: the transport process serves
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(16)))
    assert receive_worker_count({}) == 4


def test_processes_sharing_a_log_never_hand_out_the_same_session_id() -> None:
    clock = ManualClock(datetime(2026, 11, 27, tzinfo=UTC))
    sources = [SessionIdSource() for _ in range(3)]
    seen: set[str] = set()
    for index, source in enumerate(sources):
        source.share(index, 3)
        clock.advance(0.0000013 * index)  # started at different ticks
        ids = [source.next_id(clock) for _ in range(1000)]
        assert all(len(i) == 16 for i in ids)
        assert not seen & set(ids)
        seen.update(ids)
    with pytest.raises(ValueError):
        SessionIdSource().share(3, 3)


def test_an_acceptance_the_transport_process_never_answers_is_an_unknown_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No answer in ANSWER_TIMEOUT: the session is told the outcome is unknown (no reply at
    all, never a 4xx), and a late answer is ignored."""
    monkeypatch.setattr(receive_worker, "ANSWER_TIMEOUT", 0.01)
    envelope = Envelope("a@x", (EnvelopeRecipient("b@x"),), "<id@x>", datetime.now(UTC))

    async def go() -> list[bytes]:
        parent, child = socket.socketpair()
        _, writer = await asyncio.open_unix_connection(sock=child)
        acceptor = receive_worker.RemoteAcceptor(tmp_path, writer, "shadow")
        spool = acceptor.open_spool()
        spool.write(b"Subject: x\r\n\r\nbody\r\n")
        try:
            with pytest.raises(AcceptOutcomeUnknown, match="did not answer in time"):
                await acceptor.accept(spool, envelope)
            acceptor.answered(("accepted", 1, 42))  # too late: nobody waits for it
            parent.setblocking(False)
            return [parent.recv(65536)]
        finally:
            acceptor.close()
            writer.close()
            parent.close()

    [sent] = asyncio.run(go())
    assert b"accept" in sent  # the request went out; its answer never came


def test_what_a_worker_sends_in_one_turn_of_the_loop_leaves_in_one_write(tmp_path: Path) -> None:
    async def go() -> tuple[list[bytes], list[tuple[object, ...]]]:
        parent, child = socket.socketpair()
        _, writer = await asyncio.open_unix_connection(sock=child)
        writes: list[bytes] = []
        real_write = writer.write

        def recording(data: bytes) -> None:
            writes.append(data)
            real_write(data)

        writer.write = recording  # type: ignore[method-assign]
        acceptor = receive_worker.RemoteAcceptor(tmp_path, writer, "shadow")
        reader, parent_writer = await asyncio.open_unix_connection(sock=parent)
        try:
            acceptor.send(("closed", 1))
            acceptor.send(("closed", 2))
            assert writes == []  # nothing before the turn ends
            got = [await read_frame(reader), await read_frame(reader)]
            acceptor.send(("closed", 3))
            got.append(await read_frame(reader))
            return writes, [m for m in got if m is not None]
        finally:
            acceptor.close()
            writer.close()
            parent_writer.close()

    writes, got = asyncio.run(go())
    assert got == [("closed", 1), ("closed", 2), ("closed", 3)]  # in order, each whole
    assert writes == [frame(("closed", 1)) + frame(("closed", 2)), frame(("closed", 3))]
