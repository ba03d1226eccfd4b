"""Properties of the SMTP core: no crash, split-independence, round trips, bounded memory."""

from __future__ import annotations

import contextlib
import random
import tracemalloc

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.protocols.smtp_testkit import (
    Policy,
    accept_all,
    body_of,
    bytewise,
    drain_server,
    merge_chunks,
    run_client,
    run_server,
)

from sitemail.protocols.smtp import (
    NEED_DATA,
    PAUSED,
    Auth,
    AuthResponse,
    BadReply,
    BadSyntax,
    Bdat,
    BodyChunk,
    ClientConnection,
    ClientSettings,
    ConnectionClosed,
    Data,
    EndOfChunk,
    EndOfMessage,
    Event,
    LineTooLong,
    LocalProtocolError,
    Mail,
    NeedsReply,
    Rcpt,
    Reply,
    Response,
    ServerConnection,
    ServerSettings,
    StartTls,
    XAnonymousTls,
    XExps,
    replies,
)

FAST = settings(max_examples=120, deadline=None)

_session_token = st.one_of(
    st.sampled_from(
        [
            b"EHLO a.test\r\n",
            b"HELO a.test\r\n",
            b"LHLO a.test\r\n",
            b"MAIL FROM:<a@b.test>\r\n",
            b"MAIL FROM:<> SIZE=10 BODY=8BITMIME\r\n",
            b"MAIL FROM:<a@b\r\n",
            b"RCPT TO:<c@d.test>\r\n",
            b"RCPT TO:<c@d.test> NOTIFY=NEVER\r\n",
            b"DATA\r\n",
            b"Subject: x\r\n",
            b"hello\r\n",
            b".\r\n",
            b"..x\r\n",
            b"\r\n.\r\n",
            b"\n.\n",
            b"\r.\r",
            b"\r",
            b"\n",
            b".",
            b"BDAT 5\r\n",
            b"BDAT 3 LAST\r\n",
            b"BDAT 0 LAST\r\n",
            b"12345",
            b"RSET\r\n",
            b"NOOP\r\n",
            b"AUTH LOGIN\r\n",
            b"AUTH PLAIN AGEAYg==\r\n",
            b"dXNlcg==\r\n",
            b"*\r\n",
            b"X-EXPS GSSAPI\r\n",
            b"X-EXPS EXCHANGEAUTH SHA256 " + b"Q" * 700 + b"\r\n",
            b"STARTTLS\r\n",
            b"X-ANONYMOUSTLS\r\n",
            b"VRFY x\r\n",
            b"HELP\r\n",
            b"QUIT\r\n",
            b"A" * 600 + b"\r\n",
            b"B" * 300,
            b"\xff\xfe\x00",
        ]
    ),
    st.binary(max_size=8),
)
_session = st.lists(_session_token, max_size=30).map(b"".join)


def split(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos = [], 0
    for size in sizes:
        if pos >= len(data):
            break
        out.append(data[pos : pos + size])
        pos += size
    if pos < len(data):
        out.append(data[pos:])
    return out


# --- the server ----------------------------------------------------------------


def random_policy(rng: random.Random) -> Policy:
    """Answer with anything at all, including TLS starts and 421s."""

    def policy(event: NeedsReply) -> Reply:
        return rng.choice(
            [
                event.suggested_reply or replies.NOOP_OK,
                replies.NOOP_OK,
                replies.START_MAIL_INPUT,
                Reply(334, None, ("",)),
                replies.TLS_READY,
                replies.CLOSING,
                replies.CONNECTION_DROPPED,
                replies.UNRECOGNIZED_COMMAND,
                replies.AUTH_SUCCESSFUL,
            ]
        )

    return policy


_SERVER_EVENTS = (NeedsReply, Bdat, BodyChunk, ConnectionClosed)


@given(session=_session, sizes=st.lists(st.integers(1, 20), max_size=40), rng=st.randoms())
@FAST
def test_server_never_crashes_whatever_it_receives_or_answers(
    session: bytes, sizes: list[int], rng: random.Random
) -> None:
    conn = ServerConnection(ServerSettings(lmtp=rng.random() < 0.3, max_header_size=20))
    policy = random_policy(rng)
    for chunk in [*split(session, sizes), b""]:
        conn.receive_data(chunk)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            if event is PAUSED:
                # Only a TLS handshake can leave us paused: our policy answers everything.
                conn.tls_established()
                continue
            assert isinstance(event, _SERVER_EVENTS), event
            if isinstance(event, ConnectionClosed):
                return
            if isinstance(event, NeedsReply):
                conn.send_reply(policy(event))
    raise AssertionError("EOF must end in ConnectionClosed")


@given(session=_session, sizes=st.lists(st.integers(1, 20), max_size=40))
@FAST
def test_server_events_do_not_depend_on_how_input_is_split(
    session: bytes, sizes: list[int]
) -> None:
    whole = merge_chunks(run_server([session]))
    assert merge_chunks(run_server(bytewise(session))) == whole
    assert merge_chunks(run_server(split(session, sizes))) == whole
    lmtp = ServerSettings(lmtp=True, max_header_size=10, max_message_size=20, chunk_size=3)
    assert merge_chunks(run_server(split(session, sizes), ServerConnection(lmtp))) == merge_chunks(
        run_server([session], ServerConnection(lmtp))
    )


@given(
    pipelined=st.lists(
        st.sampled_from(
            [b"NOOP\r\n", b"RSET\r\n", b"MAIL FROM:<a@b.test>\r\n", b"RCPT TO:<c@d.test>\r\n"]
        ),
        min_size=1,
        max_size=10,
    )
)
@FAST
def test_pipelined_commands_come_out_one_by_one_in_order(pipelined: list[bytes]) -> None:
    conn = ServerConnection()
    conn.receive_data(b"EHLO a.test\r\n" + b"".join(pipelined))
    lines = []
    while (event := conn.next_event()) is not NEED_DATA:
        assert isinstance(event, NeedsReply)
        assert conn.next_event() is PAUSED  # the next one waits for this answer
        lines.append(getattr(event, "line", ""))
        conn.send_reply(accept_all(event))
    assert lines[1:] == [p[:-2].decode() for p in pipelined]


# --- the client ------------------------------------------------------------------

_reply_token = st.one_of(
    st.sampled_from(
        [
            b"220 mx.test ready\r\n",
            b"250-mx.test\r\n",
            b"250 OK\r\n",
            b"250 2.1.0 Sender OK\r\n",
            b"354 go\r\n",
            b"334 VXNlcm5hbWU6\r\n",
            b"235 2.7.0 ok\r\n",
            b"421 4.4.1 bye\r\n",
            b"550 5.7.1 no\r\n",
            b"220 2.0.0 SMTP server ready\r\n",
            b"\r\n",
            b"25",
            b"0 x\r\n",
        ]
    ),
    st.binary(min_size=1, max_size=6),  # b"" would mean EOF
)

_client_call = st.sampled_from(
    ["ehlo", "mail", "rcpt", "data", "body", "end", "bdat", "starttls", "auth", "resp", "quit"]
)


def call_client(conn: ClientConnection, name: str) -> bytes:
    calls = {
        "ehlo": lambda: conn.ehlo("a.test"),
        "mail": lambda: conn.mail("a@b.test"),
        "rcpt": lambda: conn.rcpt("c@d.test"),
        "data": conn.data,
        "body": lambda: conn.send_body(b".x\n"),
        "end": conn.end_body,
        "bdat": lambda: conn.bdat(b"xyz", last=True),
        "starttls": conn.starttls,
        "auth": lambda: conn.auth("LOGIN"),
        "resp": lambda: conn.auth_response("dXNlcg=="),
        "quit": conn.quit,
    }
    return calls[name]()


@given(
    steps=st.lists(st.tuples(_client_call, st.lists(_reply_token, max_size=4)), max_size=20),
    lmtp=st.booleans(),
)
@FAST
def test_client_never_crashes_whatever_the_server_sends(
    steps: list[tuple[str, list[bytes]]], lmtp: bool
) -> None:
    conn = ClientConnection(ClientSettings(lmtp=lmtp, max_reply_line_length=64))
    for name, server_bytes in steps:
        with contextlib.suppress(LocalProtocolError):
            call_client(conn, name)  # calling out of turn is refused, never half-done
        for event in run_client(conn, server_bytes):
            assert isinstance(event, (Response, BadReply, ConnectionClosed))
        if conn.next_event() is PAUSED:
            conn.tls_established()
    events = run_client(conn, [], eof=True)
    assert events in ([], [ConnectionClosed(in_transaction=False)]) or isinstance(
        events[-1], ConnectionClosed
    )


@given(
    replies_wire=st.lists(_reply_token.filter(lambda t: b"220 2.0.0" not in t), max_size=20),
    sizes=st.lists(st.integers(1, 10), max_size=30),
)
@FAST
def test_client_responses_do_not_depend_on_how_input_is_split(
    replies_wire: list[bytes], sizes: list[int]
) -> None:
    def run(chunks: list[bytes]) -> list[Event]:
        conn = ClientConnection()
        conn.ehlo("a.test")
        conn.mail("a@b.test")
        conn.rcpt("c@d.test")
        conn.bdat(b"abc", last=True)
        conn.noop()
        return run_client(conn, chunks, eof=True)

    data = b"".join(replies_wire)
    whole = run([data])
    assert run(bytewise(data)) == whole
    assert run(split(data, sizes)) == whole


# --- client and server together -----------------------------------------------------


class Pair:
    """A client and a server wired back to back, the server answering with accept_all."""

    def __init__(self, sizes: list[int], lmtp: bool = False) -> None:
        self.client = ClientConnection(ClientSettings(lmtp=lmtp))
        self.server = ServerConnection(ServerSettings(lmtp=lmtp))
        self.sizes = sizes or [1 << 20]
        self.server_events: list[Event] = []
        self.responses: list[Response] = []
        self.exchange(Reply(220, None, ("mx.test ready",)).to_bytes(), to_client=True)

    def exchange(self, data: bytes, *, to_client: bool = False) -> None:
        if not to_client:
            out: list[bytes] = []
            for chunk in split(data, self.sizes):
                self.server.receive_data(chunk)
                self.server_events += drain_server(self.server, accept_all, out)
            data = b"".join(out)
        for event in run_client(self.client, split(data, self.sizes)):
            if isinstance(event, ConnectionClosed):  # after QUIT
                continue
            assert isinstance(event, Response), event
            self.responses.append(event)


_address = st.builds(
    lambda lp, dom: f"{lp}@{dom}.test",
    st.text(alphabet="abc.+-_=", min_size=1, max_size=8).filter(lambda s: s.strip(".")),
    st.text(alphabet="xyz09-", min_size=1, max_size=6),
)
_body = st.lists(
    st.sampled_from([b"line", b".", b"..", b"\r\n", b"\n", b"\r", b" ", b"\x00\xff", b"From "]),
    max_size=40,
).map(b"".join)


def normalise(body: bytes) -> bytes:
    text = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return text if not text or text.endswith(b"\r\n") else text + b"\r\n"


@given(
    sender=_address | st.just(""),
    rcpts=st.lists(_address, min_size=1, max_size=4),
    size=st.integers(0, 10**9),
    body=_body,
    body_sizes=st.lists(st.integers(1, 7), max_size=10),
    sizes=st.lists(st.integers(1, 30), max_size=20),
)
@FAST
def test_what_the_client_writes_the_server_reads_back_with_data(
    sender: str,
    rcpts: list[str],
    size: int,
    body: bytes,
    body_sizes: list[int],
    sizes: list[int],
) -> None:
    pair = Pair(sizes)
    c = pair.client
    pair.exchange(c.ehlo("client.test"))
    wire = c.mail(sender, {"SIZE": str(size), "BODY": "8BITMIME"})
    wire += b"".join(c.rcpt(r, {"NOTIFY": "SUCCESS,DELAY"}) for r in rcpts)
    pair.exchange(wire + c.data())
    wire = b"".join(c.send_body(piece) for piece in split(body, body_sizes)) + c.end_body()
    pair.exchange(wire + c.quit())

    events = merge_chunks(pair.server_events)
    mail = next(e for e in events if isinstance(e, Mail))
    assert (mail.address, mail.params) == (sender, {"SIZE": str(size), "BODY": "8BITMIME"})
    assert [e.address for e in events if isinstance(e, Rcpt)] == rcpts
    assert body_of(events) == normalise(body)
    end = next(e for e in events if isinstance(e, EndOfMessage))
    assert end.recipients == tuple(rcpts)
    assert [r.request.verb for r in pair.responses if r.request] == (
        ["GREETING", "EHLO", "MAIL"] + ["RCPT"] * len(rcpts) + ["DATA", ".", "QUIT"]
    )
    assert isinstance(events[-1], ConnectionClosed)


@given(
    chunks=st.lists(st.binary(max_size=40), min_size=1, max_size=5),
    sizes=st.lists(st.integers(1, 30), max_size=20),
    lmtp=st.booleans(),
    rcpts=st.lists(_address, min_size=1, max_size=3),
)
@FAST
def test_binary_bdat_chunks_arrive_unchanged(
    chunks: list[bytes], sizes: list[int], lmtp: bool, rcpts: list[str]
) -> None:
    pair = Pair(sizes, lmtp=lmtp)
    c = pair.client
    pair.exchange(c.lhlo("c.test") if lmtp else c.ehlo("c.test"))
    wire = c.mail("a@b.test", {"BODY": "BINARYMIME"}) + b"".join(c.rcpt(r) for r in rcpts)
    for i, chunk in enumerate(chunks):
        wire += c.bdat(chunk, last=i == len(chunks) - 1)
    pair.exchange(wire)
    events = merge_chunks(pair.server_events)
    assert [e.size for e in events if isinstance(e, Bdat)] == [len(ch) for ch in chunks]
    assert body_of(events) == b"".join(chunks)
    assert sum(isinstance(e, EndOfChunk) for e in events) == len(chunks) - 1
    end_replies = [r for r in pair.responses if r.request and r.request.argument.endswith("LAST")]
    assert len(end_replies) == (len(rcpts) if lmtp else 1)
    if lmtp:
        assert [r.request.recipient for r in end_replies if r.request] == rcpts
    assert c.outstanding == ()


def test_auth_and_x_exps_round_trip() -> None:
    pair = Pair([5])
    c = pair.client
    pair.exchange(c.ehlo("ex01.contoso.com"))
    pair.exchange(c.auth("LOGIN"))
    pair.exchange(c.auth_response("dXNlcg=="))
    assert c.authenticated and pair.server.authenticated
    events = pair.server_events
    assert isinstance(events[1], Auth) and isinstance(events[2], AuthResponse)
    pair2 = Pair([7])
    pair2.exchange(pair2.client.ehlo("ex01.contoso.com"))
    pair2.exchange(pair2.client.x_exps("EXCHANGEAUTH", "SHA256", "QUJD" * 900))
    xexps = pair2.server_events[1]
    assert isinstance(xexps, XExps)
    assert xexps.blob == "QUJD" * 900


def test_tls_commands_round_trip_with_handshake() -> None:
    for verb, method in (("STARTTLS", "starttls"), ("X-ANONYMOUSTLS", "x_anonymous_tls")):
        client, server = ClientConnection(), ServerConnection()
        client.receive_data(b"220 mx ready\r\n")
        client.next_event()
        server.receive_data(getattr(client, method)())
        event = server.next_event()
        assert isinstance(event, (StartTls, XAnonymousTls))
        client.receive_data(server.send_reply(replies.TLS_READY))
        response = client.next_event()
        assert isinstance(response, Response) and response.request is not None
        assert response.request.verb == verb
        server.tls_established()
        client.tls_established()
        assert server.tls == client.tls == verb


# --- bounded memory ---------------------------------------------------------------


def stream(conn: ServerConnection, data_chunks: list[bytes], read_size: int) -> list[Event]:
    """Feed like a socket would (``read_size`` at a time), checking the held buffer."""
    events: list[Event] = []
    for chunk in data_chunks:
        for i in range(0, len(chunk), read_size):
            conn.receive_data(chunk[i : i + read_size])
            for event in drain_server(conn):
                if isinstance(event, BodyChunk):
                    assert len(event.data) <= conn.settings.chunk_size
                    events.append(BodyChunk(data=b""))  # count, don't keep
                else:
                    events.append(event)
            assert conn.buffered < read_size + conn.settings.max_auth_line_length
    return events


def test_huge_data_body_is_streamed_in_bounded_memory() -> None:
    line = b"0123456789" * 9 + b"\r\n"  # 92 octets
    lines_per_read = 65536 // len(line)
    body_read = line * lines_per_read
    reads = 80  # ~5 MB
    conn = ServerConnection()
    head = b"EHLO a.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n"
    stream(conn, [head], 65536)
    tracemalloc.start()
    try:
        events = stream(conn, [body_read] * reads, 65536)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    events += stream(conn, [b".\r\n"], 65536)
    end = next(e for e in events if isinstance(e, EndOfMessage))
    assert end.size == len(body_read) * reads
    assert peak < 1_000_000  # a handful of 64 KiB slices, never the message


def test_huge_bdat_chunk_is_streamed_in_bounded_memory() -> None:
    total = 4 * 1024 * 1024
    conn = ServerConnection()
    head = b"EHLO a.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n"
    stream(conn, [head + b"BDAT %d LAST\r\n" % total], 65536)
    block = bytes(range(256)) * 256
    tracemalloc.start()
    try:
        events = stream(conn, [block] * (total // len(block)), 65536)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    end = next(e for e in events if isinstance(e, EndOfMessage))
    assert end.size == total
    assert peak < 1_000_000


def test_overlong_lines_and_endless_garbage_stay_bounded() -> None:
    conn = ServerConnection()
    events = stream(conn, [b"X" * 3_000_000 + b"\r\n" + b"NOOP\r\n"], 4096)
    assert isinstance(events[0], LineTooLong)
    assert events[0].length == 3_000_002
    assert len(events[0].prefix) == 512


def test_bad_syntax_events_always_carry_a_suggestion() -> None:
    lines = [b"MAIL\r\n", b"RCPT x\r\n", b"BDAT\r\n", b"AUTH\r\n", b"X-EXPS\r\n"]
    lines.append(b"MAIL FROM:<>x\r\n")
    events = run_server([b"EHLO a.test\r\n" + b"".join(lines)])
    bad = [e for e in events if isinstance(e, BadSyntax)]
    assert len(bad) == len(lines)
    # RCPT and BDAT after a refused MAIL get the state error first (503).
    codes = [e.suggested_reply.code if e.suggested_reply else None for e in bad]
    assert codes == [501, 503, 503, 501, 501, 501]


def test_data_refusal_by_policy_is_respected() -> None:
    conn = ServerConnection()
    policy = lambda e: replies.MESSAGE_TOO_BIG if isinstance(e, Data) else accept_all(e)  # noqa: E731
    wire = b"EHLO a\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n.\r\n"
    events = run_server([wire], conn, policy)
    assert not any(isinstance(e, (BodyChunk, EndOfMessage)) for e in events)
