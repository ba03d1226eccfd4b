"""Drivers shared by the SMTP core tests: a scripted policy and event collection."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sitemail.protocols.smtp import (
    NEED_DATA,
    PAUSED,
    Auth,
    AuthResponse,
    BodyChunk,
    ClientConnection,
    ConnectionClosed,
    Data,
    Ehlo,
    EndOfMessage,
    Event,
    Lhlo,
    NeedsReply,
    Quit,
    Reply,
    ServerConnection,
    StartTls,
    XAnonymousTls,
    XExps,
    replies,
)

EHLO_REPLY = Reply(
    250, None, ("mx.test Hello [127.0.0.1]", "SIZE", "PIPELINING", "CHUNKING", "AUTH LOGIN")
)
OK = Reply(250, "2.0.0", ("OK",))
TLS_REFUSED = Reply(454, "4.7.0", ("TLS not available",))

Policy = Callable[[NeedsReply], Reply]


def accept_all(event: NeedsReply) -> Reply:
    """Follow the core's suggestions, otherwise say yes; never start TLS.

    TLS is refused because plaintext after a STARTTLS 220 is discarded by
    design, which would make the result depend on how input was split.
    """
    if event.suggested_reply is not None:
        return event.suggested_reply
    if isinstance(event, (Ehlo, Lhlo)):
        return EHLO_REPLY
    if isinstance(event, Data):
        return replies.START_MAIL_INPUT
    if isinstance(event, (StartTls, XAnonymousTls)):
        return TLS_REFUSED
    if isinstance(event, Quit):
        return replies.CLOSING
    if isinstance(event, (Auth, XExps)):
        return Reply(334, None, ("VXNlcm5hbWU6",))
    if isinstance(event, AuthResponse):
        return replies.AUTH_SUCCESSFUL
    return OK


def drain_server(
    conn: ServerConnection, policy: Policy = accept_all, out: list[bytes] | None = None
) -> list[Event]:
    """Take events until NEED_DATA or the end, answering each with ``policy``."""
    events: list[Event] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return events
        assert event is not PAUSED, "driver answers every event, so never paused"
        assert isinstance(event, Event)
        events.append(event)
        if isinstance(event, ConnectionClosed):
            return events
        if isinstance(event, NeedsReply):
            count = event.replies_expected if isinstance(event, EndOfMessage) else 1
            for _ in range(count):
                data = conn.send_reply(policy(event))
                if out is not None:
                    out.append(data)


def run_server(
    chunks: Iterable[bytes],
    conn: ServerConnection | None = None,
    policy: Policy = accept_all,
    *,
    eof: bool = True,
) -> list[Event]:
    """Feed ``chunks`` one by one (then EOF), collecting every event."""
    conn = conn or ServerConnection()
    events: list[Event] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        events += drain_server(conn, policy)
        if events and isinstance(events[-1], ConnectionClosed):
            return events
    if eof:
        conn.receive_data(b"")
        events += drain_server(conn, policy)
    return events


def merge_chunks(events: list[Event]) -> list[Event]:
    """Join consecutive BodyChunk events: chunk borders depend on how input arrived."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, BodyChunk) and out and isinstance(out[-1], BodyChunk):
            out[-1] = BodyChunk(data=out[-1].data + event.data)
        else:
            out.append(event)
    return out


def body_of(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, BodyChunk))


def run_client(
    conn: ClientConnection, chunks: Iterable[bytes], *, eof: bool = False
) -> list[Event]:
    """Feed server bytes, collecting events until NEED_DATA, PAUSED (TLS) or the end."""
    events: list[Event] = []
    for chunk in [*chunks, *([b""] if eof else [])]:
        conn.receive_data(chunk)
        while (event := conn.next_event()) not in (NEED_DATA, PAUSED):
            assert isinstance(event, Event), event
            events.append(event)
            if isinstance(event, ConnectionClosed):
                return events
    return events


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]
