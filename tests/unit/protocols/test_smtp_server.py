"""ServerConnection: bytes in, events out, replies in, bytes out."""

from __future__ import annotations

import pytest
from tests.unit.protocols.smtp_testkit import (
    EHLO_REPLY,
    OK,
    accept_all,
    body_of,
    bytewise,
    merge_chunks,
    run_server,
)

from sitemail.protocols.smtp import (
    NEED_DATA,
    PAUSED,
    Auth,
    AuthResponse,
    BadSyntax,
    Bdat,
    BodyChunk,
    ConnectionClosed,
    Data,
    Ehlo,
    EndOfChunk,
    EndOfMessage,
    Event,
    Helo,
    Help,
    Lhlo,
    LineTooLong,
    LocalProtocolError,
    Mail,
    NeedsReply,
    Noop,
    Quit,
    Rcpt,
    Reply,
    Rset,
    ServerConnection,
    ServerSettings,
    ServerState,
    StartTls,
    Unknown,
    Vrfy,
    XAnonymousTls,
    XExps,
    replies,
)


def suggestion(event: Event) -> Reply | None:
    assert isinstance(event, NeedsReply), event
    return event.suggested_reply


HELLO = b"EHLO client.test\r\n"
ENVELOPE = HELLO + b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n"


def test_one_command_one_event_then_paused_until_answered() -> None:
    conn = ServerConnection()
    conn.receive_data(b"EHLO client.test\r\nMAIL FROM:<a@b.test>\r\n")
    event = conn.next_event()
    assert event == Ehlo(line="EHLO client.test", domain="client.test")
    assert conn.next_event() is PAUSED
    assert conn.send_reply(EHLO_REPLY).startswith(b"250-mx.test Hello [127.0.0.1]\r\n")
    mail = conn.next_event()
    assert isinstance(mail, Mail)
    assert mail.address == "a@b.test"
    conn.send_reply(replies.SENDER_OK)
    assert conn.next_event() is NEED_DATA
    assert conn.mail_from == "a@b.test"


def test_command_waits_for_its_line_end() -> None:
    conn = ServerConnection()
    for byte in bytewise(b"NOOP\r"):
        conn.receive_data(byte)
        assert conn.next_event() is NEED_DATA
    conn.receive_data(b"\n")
    assert conn.next_event() == Noop(line="NOOP")


def test_bare_lf_ends_a_command_line() -> None:
    assert run_server([b"NOOP\nRSET\n"])[:2] == [Noop(line="NOOP"), Rset(line="RSET")]


def test_send_reply_without_pending_event_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        ServerConnection().send_reply(OK)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"MAIL FROM:<a@b.test>\r\n", replies.SEND_HELLO_FIRST),
        (b"RCPT TO:<a@b.test>\r\n", replies.SEND_HELLO_FIRST),
        (b"DATA\r\n", replies.SEND_HELLO_FIRST),
        (HELLO + b"RCPT TO:<a@b.test>\r\n", replies.NEED_MAIL_COMMAND),
        (HELLO + b"DATA\r\n", replies.NEED_MAIL_COMMAND),
        (HELLO + b"MAIL FROM:<a@b.test>\r\nDATA\r\n", replies.NEED_RCPT_COMMAND),
        (
            HELLO + b"MAIL FROM:<a@b.test>\r\nMAIL FROM:<x@y.test>\r\n",
            replies.SENDER_ALREADY_SPECIFIED,
        ),
        (b"MAILL FROM:<a@b.test>\r\n", replies.UNRECOGNIZED_COMMAND),
        (b"\r\n", replies.UNRECOGNIZED_COMMAND),
        (b"EHLO\r\n", replies.EHLO_REQUIRES_DOMAIN),
        (b"EHLO bad..domain\r\n", replies.INVALID_DOMAIN),
        (HELLO + b"MAIL FROM:<a@b.test> XFOO=1\r\n", replies.UNRECOGNIZED_PARAMETER),
        (HELLO + b"MAIL FROM:<a@b.test> SIZE=x\r\n", replies.UNRECOGNIZED_PARAMETER),
        (HELLO + b"MAIL FROM:<a@b\r\n", replies.INVALID_SENDER_ADDRESS),
        (HELLO + b"MAIL FROM:<a@b.test>\r\nRCPT TO:<>\r\n", replies.INVALID_RECIPIENT_ADDRESS),
        (HELLO + b"STARTTLS now\r\n", replies.UNRECOGNIZED_PARAMETER),
        (b"STARTTLS\r\n", replies.SEND_HELLO_FIRST),
        (b"AUTH LOGIN\r\n", replies.SEND_HELLO_FIRST),
        (b"LHLO client.test\r\n", replies.UNRECOGNIZED_COMMAND),
    ],
)
def test_suggested_replies_use_exchange_text(data: bytes, expected: Reply) -> None:
    events = [e for e in run_server([data]) if isinstance(e, NeedsReply)]
    assert events[-1].suggested_reply == expected


def test_helo_domain_requirement_names_the_verb() -> None:
    events = run_server([b"HELO\r\n"])
    assert isinstance(events[0], Helo)
    assert str(events[0].suggested_reply) == "501 5.0.0 HELO requires domain address"


def test_invalid_address_is_bad_syntax_event() -> None:
    events = run_server([HELLO + b"MAIL FROM:<a@b.test>\r\nRCPT TO:<@@>\r\n"])
    bad = events[2]
    assert isinstance(bad, BadSyntax)
    assert bad.verb == "RCPT"
    assert bad.line == "RCPT TO:<@@>"
    assert bad.suggested_reply == replies.INVALID_RECIPIENT_ADDRESS


def test_mail_and_rcpt_parameters_reach_the_event() -> None:
    events = run_server(
        [
            HELLO + b"MAIL FROM:<> SIZE=2048 BODY=binarymime\r\n"
            b"RCPT TO:<c@d.test> NOTIFY=NEVER ORCPT=rfc822;c@d.test\r\n"
        ]
    )
    assert events[1] == Mail(
        line="MAIL FROM:<> SIZE=2048 BODY=binarymime",
        address="",
        params={"SIZE": "2048", "BODY": "BINARYMIME"},
    )
    assert events[2] == Rcpt(
        line="RCPT TO:<c@d.test> NOTIFY=NEVER ORCPT=rfc822;c@d.test",
        address="c@d.test",
        params={"NOTIFY": "NEVER", "ORCPT": "rfc822;c@d.test"},
    )


def test_refused_mail_does_not_open_a_transaction() -> None:
    conn = ServerConnection()
    policy = lambda e: replies.CLIENT_NOT_AUTHENTICATED if isinstance(e, Mail) else accept_all(e)  # noqa: E731
    events = run_server([ENVELOPE], conn, policy, eof=False)
    assert conn.mail_from is None
    assert suggestion(events[-1]) == replies.NEED_MAIL_COMMAND


def test_recipient_count_and_list_follow_replies() -> None:
    conn = ServerConnection()

    def policy(event: NeedsReply) -> Reply:
        if isinstance(event, Rcpt) and event.address.startswith("x"):
            return replies.UNABLE_TO_RELAY
        return accept_all(event)

    run_server(
        [
            HELLO + b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nRCPT TO:<x@y.test>\r\n"
            b"RCPT TO:<e@d.test>\r\n"
        ],
        conn,
        policy,
        eof=False,
    )
    assert conn.rcpt_count == 2
    assert conn.recipients == ("c@d.test", "e@d.test")
    run_server([b"RSET\r\n"], conn, eof=False)
    assert (conn.mail_from, conn.rcpt_count) == (None, 0)


def test_data_body_is_streamed_and_unstuffed() -> None:
    events = run_server([ENVELOPE + b"DATA\r\nSubject: x\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n"])
    kinds = [type(e) for e in merge_chunks(events)]
    assert kinds == [Ehlo, Mail, Rcpt, Data, BodyChunk, EndOfMessage, Quit, ConnectionClosed]
    assert body_of(events) == b"Subject: x\r\n\r\n.dot\r\nbody\r\n"
    end = next(e for e in events if isinstance(e, EndOfMessage))
    assert end.size == len(b"Subject: x\r\n\r\n.dot\r\nbody\r\n")
    assert end.recipients == ("c@d.test",)
    assert end.replies_expected == 1
    assert end.suggested_reply is None
    assert not end.bare_lf


def test_transaction_ends_after_message() -> None:
    conn = ServerConnection()
    run_server([ENVELOPE + b"DATA\r\nx\r\n.\r\n"], conn, eof=False)
    assert (conn.mail_from, conn.recipients, conn.state) == (None, (), ServerState.COMMAND)


def test_refused_data_keeps_reading_commands() -> None:
    policy = lambda e: replies.INSUFFICIENT_RESOURCES if isinstance(e, Data) else accept_all(e)  # noqa: E731
    events = run_server([ENVELOPE + b"DATA\r\nNOOP\r\n"], policy=policy)
    assert isinstance(events[4], Noop)


@pytest.mark.parametrize("smuggle", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"])
def test_smuggled_end_of_data_stays_in_the_body(smuggle: bytes) -> None:
    injected = b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<v@d.test>\r\nDATA\r\nspoof\r\n"
    wire = ENVELOPE + b"DATA\r\nSubject: x\r\n\r\nhi" + smuggle + injected + b".\r\nQUIT\r\n"
    for chunks in ([wire], bytewise(wire)):
        events = merge_chunks(run_server(chunks))
        assert [type(e) for e in events][3:] == [
            Data,
            BodyChunk,
            EndOfMessage,
            Quit,
            ConnectionClosed,
        ]
        assert injected in body_of(events)
        assert not any(isinstance(e, Mail) and e.address == "evil@x.test" for e in events)


def test_bare_lf_in_body_is_kept_and_reported() -> None:
    events = run_server([ENVELOPE + b"DATA\r\na\nb\r\n.\r\n"])
    assert body_of(events) == b"a\nb\r\n"
    end = next(e for e in events if isinstance(e, EndOfMessage))
    assert end.bare_lf


def test_header_size_limit_suggests_552() -> None:
    conn = ServerConnection(ServerSettings(max_header_size=20))
    events = run_server(
        [ENVELOPE + b"DATA\r\nX-Long: " + b"a" * 30 + b"\r\n\r\nbody\r\n.\r\n"], conn
    )
    end = next(e for e in events if isinstance(e, EndOfMessage))
    assert end.header_size_exceeded
    assert end.suggested_reply == replies.HEADER_TOO_BIG
    assert str(end.suggested_reply) == "552 5.3.4 Header size exceeds fixed maximum size"


def test_message_size_limit_suggests_552_and_is_visible_mid_stream() -> None:
    conn = ServerConnection(ServerSettings(max_message_size=10, chunk_size=4))
    run_server([ENVELOPE + b"DATA\r\n"], conn, eof=False)
    conn.receive_data(b"Subject: 0123456789\r\n")
    seen = []
    while isinstance(conn.next_event(), BodyChunk):
        seen.append(conn.message_size_exceeded)
    assert seen[0] is False and seen[-1] is True
    events = run_server([b"\r\n.\r\n"], conn, eof=False)
    end = next(e for e in events if isinstance(e, EndOfMessage))
    assert end.size_exceeded
    assert end.suggested_reply == replies.MESSAGE_TOO_BIG


def test_declared_size_over_limit_is_flagged_at_mail() -> None:
    conn = ServerConnection(ServerSettings(max_message_size=1000))
    events = run_server([HELLO + b"MAIL FROM:<a@b.test> SIZE=1001\r\n"], conn)
    assert suggestion(events[1]) == replies.MESSAGE_TOO_BIG
    events = run_server([HELLO + b"MAIL FROM:<a@b.test> SIZE=1000\r\n"])
    assert suggestion(events[1]) is None


def test_body_chunks_respect_chunk_size() -> None:
    conn = ServerConnection(ServerSettings(chunk_size=7))
    events = run_server([ENVELOPE + b"DATA\r\n" + b"x" * 50 + b"\r\n.\r\n"], conn)
    chunks = [e.data for e in events if isinstance(e, BodyChunk)]
    assert len(chunks) > 1
    assert all(len(c) <= 7 for c in chunks)
    assert b"".join(chunks) == b"x" * 50 + b"\r\n"


def test_eof_inside_data_reports_open_transaction() -> None:
    events = run_server([ENVELOPE + b"DATA\r\npartial"])
    assert events[-1] == ConnectionClosed(in_transaction=True)


def test_eof_between_sessions_is_clean() -> None:
    assert run_server([HELLO]) == [
        Ehlo(line="EHLO client.test", domain="client.test"),
        ConnectionClosed(in_transaction=False),
    ]


def test_quit_221_closes_and_ignores_the_rest() -> None:
    conn = ServerConnection()
    events = run_server([b"QUIT\r\nNOOP\r\n"], conn, eof=False)
    assert events == [Quit(line="QUIT"), ConnectionClosed(in_transaction=False)]
    assert conn.state is ServerState.CLOSED
    conn.receive_data(b"NOOP\r\n")
    assert conn.next_event() == ConnectionClosed(in_transaction=False)


def test_unsolicited_421_ends_the_session() -> None:
    conn = ServerConnection()
    conn.receive_data(b"NOOP\r\n")
    assert (
        conn.send_unsolicited(replies.CONNECTION_TIMED_OUT) == b"421 4.4.1 Connection timed out\r\n"
    )
    assert conn.next_event() == ConnectionClosed(in_transaction=False)
    with pytest.raises(LocalProtocolError):
        conn.send_unsolicited(replies.CONNECTION_TIMED_OUT)


def test_banner_is_unsolicited_and_changes_nothing() -> None:
    conn = ServerConnection()
    banner = Reply(
        220, None, ("mx.test Microsoft ESMTP MAIL Service ready at Fri, 5 Aug 2016 16:24:41 -0700",)
    )
    assert conn.send_unsolicited(banner).startswith(
        b"220 mx.test Microsoft ESMTP MAIL Service ready at"
    )
    assert conn.state is ServerState.COMMAND


# --- BDAT (RFC 3030) --------------------------------------------------------------


def test_bdat_chunks_are_streamed_raw() -> None:
    binary = bytes(range(256)) + b"\r\n.\r\n"
    wire = ENVELOPE + b"BDAT 10\r\n" + b"0123456789" + b"BDAT %d LAST\r\n" % len(binary) + binary
    events = merge_chunks(run_server([wire]))
    assert [type(e) for e in events][3:] == [
        Bdat,
        BodyChunk,
        EndOfChunk,
        Bdat,
        BodyChunk,
        EndOfMessage,
        ConnectionClosed,
    ]
    assert events[3] == Bdat(line="BDAT 10", size=10, last=False)
    assert events[5] == EndOfChunk(size=10)
    assert events[7] == BodyChunk(data=binary)
    end = events[8]
    assert isinstance(end, EndOfMessage)
    assert end.size == 10 + len(binary)


def test_bdat_zero_last() -> None:
    events = run_server([ENVELOPE + b"BDAT 0 LAST\r\nQUIT\r\n"])
    assert [type(e) for e in events][3:] == [Bdat, EndOfMessage, Quit, ConnectionClosed]


def test_bdat_without_recipients_is_still_read() -> None:
    wire = HELLO + b"BDAT 12\r\nQUIT\r\nQUIT\r\nNOOP\r\n"
    events = run_server([wire])
    assert events[1] == Bdat(
        line="BDAT 12", size=12, last=False, suggested_reply=replies.NEED_MAIL_COMMAND
    )
    assert events[2] == BodyChunk(data=b"QUIT\r\nQUIT\r\n")
    assert events[3] == EndOfChunk(size=12, suggested_reply=replies.NEED_MAIL_COMMAND)
    assert events[4] == Noop(line="NOOP")


def test_data_after_a_bdat_chunk_is_refused() -> None:
    # RFC 3030 §2: DATA after a BDAT of the same transaction gets a 503; the
    # chunk already taken must not be dropped silently by a new DATA body.
    events = run_server([ENVELOPE + b"BDAT 5\r\n12345DATA\r\nBDAT 1 LAST\r\nx"])
    data = next(e for e in events if isinstance(e, Data))
    assert data.suggested_reply == replies.DATA_AFTER_BDAT
    end = next(e for e in events if isinstance(e, EndOfMessage))
    assert end.size == 6
    assert end.suggested_reply is None


def test_data_after_bdat_is_fine_in_the_next_transaction() -> None:
    wire = (
        ENVELOPE + b"BDAT 1 LAST\r\nx" + b"MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n"
    )
    events = run_server([wire])
    data = next(e for e in events if isinstance(e, Data))
    assert data.suggested_reply is None


def test_data_after_a_refused_bdat_chunk_is_not_a_bdat_transaction() -> None:
    def refuse_chunks(event: NeedsReply) -> Reply:
        if isinstance(event, EndOfChunk):
            return replies.MESSAGE_TOO_BIG
        return accept_all(event)

    events = run_server([ENVELOPE + b"BDAT 2\r\nxyDATA\r\n"], policy=refuse_chunks)
    data = next(e for e in events if isinstance(e, Data))
    assert data.suggested_reply is None


def test_data_after_rset_following_bdat_is_accepted() -> None:
    wire = ENVELOPE + b"BDAT 2\r\nxyRSET\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nDATA\r\n"
    events = run_server([wire])
    data = next(e for e in events if isinstance(e, Data))
    assert data.suggested_reply is None


def test_bdat_zero_last_alone_is_refused() -> None:
    events = run_server([ENVELOPE + b"BDAT 0 LAST\r\nQUIT\r\n"])
    end = next(e for e in events if isinstance(e, EndOfMessage))
    assert end.suggested_reply == replies.BDAT_NO_MESSAGE_DATA


def test_bdat_zero_last_after_a_chunk_ends_the_message() -> None:
    events = run_server([ENVELOPE + b"BDAT 3\r\nabcBDAT 0 LAST\r\nQUIT\r\n"])
    end = next(e for e in events if isinstance(e, EndOfMessage))
    assert end.suggested_reply is None
    assert end.size == 3


def test_bdat_zero_last_keeps_the_state_reply() -> None:
    events = run_server([HELLO + b"BDAT 0 LAST\r\n"])
    end = next(e for e in events if isinstance(e, EndOfMessage))
    assert end.suggested_reply == replies.NEED_MAIL_COMMAND


@pytest.mark.parametrize("arg", [b"BDAT\r\n", b"BDAT x\r\n", b"BDAT 1 FIRST\r\n", b"BDAT -1\r\n"])
def test_bdat_bad_syntax(arg: bytes) -> None:
    events = run_server([ENVELOPE + arg])
    assert isinstance(events[3], BadSyntax)
    assert events[3].suggested_reply == replies.UNRECOGNIZED_PARAMETER


def test_bdat_refused_before_mail_does_not_count_in_next_message() -> None:
    wire = (
        HELLO + b"BDAT 5\r\n12345MAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nBDAT 3 LAST\r\nabc"
    )
    events = run_server([wire])
    end = next(e for e in events if isinstance(e, EndOfMessage))
    assert end.size == 3


# --- STARTTLS / X-ANONYMOUSTLS (RFC 3207) ------------------------------------------


@pytest.mark.parametrize(
    ("verb", "cls"), [(b"STARTTLS", StartTls), (b"X-ANONYMOUSTLS", XAnonymousTls)]
)
def test_tls_discards_pipelined_plaintext_and_forgets_the_session(verb: bytes, cls: type) -> None:
    conn = ServerConnection()
    conn.receive_data(HELLO + verb + b"\r\nMAIL FROM:<injected@x.test>\r\n")
    conn.next_event()
    conn.send_reply(EHLO_REPLY)
    assert conn.hello is not None
    event = conn.next_event()
    assert isinstance(event, cls)
    assert conn.send_reply(replies.TLS_READY) == b"220 2.0.0 SMTP server ready\r\n"
    assert conn.state is ServerState.TLS_HANDSHAKE
    assert conn.plaintext_discarded == len(b"MAIL FROM:<injected@x.test>\r\n")
    assert conn.next_event() is PAUSED
    conn.receive_data(b"RSET\r\n")  # still plaintext: before the handshake finished
    assert conn.plaintext_discarded == len(b"MAIL FROM:<injected@x.test>\r\nRSET\r\n")
    conn.tls_established()
    assert conn.secure
    assert conn.tls == verb.decode()
    assert conn.hello is None
    conn.receive_data(b"MAIL FROM:<a@b.test>\r\n")
    mail = conn.next_event()
    assert isinstance(mail, Mail)
    assert mail.suggested_reply == replies.SEND_HELLO_FIRST


def test_eof_during_tls_handshake_closes() -> None:
    conn = ServerConnection()
    conn.receive_data(HELLO + b"STARTTLS\r\n")
    conn.next_event()
    conn.send_reply(EHLO_REPLY)
    conn.next_event()
    conn.send_reply(replies.TLS_READY)
    assert conn.next_event() is PAUSED
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed(in_transaction=False)


def test_second_starttls_is_flagged() -> None:
    conn = ServerConnection()
    conn.receive_data(HELLO + b"STARTTLS\r\n")
    conn.next_event()
    conn.send_reply(EHLO_REPLY)
    conn.next_event()
    conn.send_reply(replies.TLS_READY)
    conn.tls_established()
    events = run_server([HELLO + b"STARTTLS\r\n"], conn, eof=False)
    assert suggestion(events[1]) == replies.ONLY_ONE_STARTTLS


def test_refused_starttls_keeps_plaintext_session() -> None:
    events = run_server([HELLO + b"STARTTLS\r\nNOOP\r\n"])
    assert isinstance(events[2], Noop)


def test_tls_established_without_220_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        ServerConnection().tls_established()


# --- AUTH and X-EXPS ----------------------------------------------------------------------


def test_auth_login_exchange() -> None:
    conn = ServerConnection()
    script = iter(
        [
            EHLO_REPLY,
            replies.AUTH_USERNAME_PROMPT,
            replies.AUTH_PASSWORD_PROMPT,
            replies.AUTH_SUCCESSFUL,
        ]
    )
    events = run_server(
        [HELLO + b"AUTH LOGIN\r\ndXNlcg==\r\ncGFzcw==\r\nAUTH LOGIN\r\n"],
        conn,
        lambda e: next(script, None) or accept_all(e),
        eof=False,
    )
    assert events[1] == Auth(line="AUTH LOGIN", mechanism="LOGIN")
    assert events[2] == AuthResponse(line="dXNlcg==")
    assert events[3] == AuthResponse(line="cGFzcw==")
    assert events[2].log_text == "<authentication information>"
    assert conn.authenticated
    assert suggestion(events[4]) == replies.AUTH_ALREADY_SPECIFIED


def test_auth_cancel_and_failure_return_to_commands() -> None:
    conn = ServerConnection()
    script = iter([EHLO_REPLY, Reply(334, None, ("",)), Reply(501, "5.7.0", ("Cancelled",))])
    events = run_server(
        [HELLO + b"AUTH PLAIN\r\n*\r\nNOOP\r\n"],
        conn,
        lambda e: next(script, None) or accept_all(e),
        eof=False,
    )
    assert isinstance(events[2], AuthResponse) and events[2].cancelled
    assert isinstance(events[3], Noop)
    assert not conn.authenticated


def test_auth_initial_response_is_redacted_in_log_text() -> None:
    events = run_server([HELLO + b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"])
    auth = events[1]
    assert auth == Auth(
        line="AUTH PLAIN AGFsaWNlAHNlY3JldA==",
        mechanism="PLAIN",
        initial_response="AGFsaWNlAHNlY3JldA==",
    )
    assert isinstance(auth, Auth)
    assert auth.log_text == "AUTH PLAIN "


def test_x_exps_exchangeauth_with_long_blob() -> None:
    blob = "YIIGKwYJKoZIhvcSAQICAQBuggYaMIIGFqADAgEF" * 60  # ~2.4 KB, a Kerberos-sized token
    line = f"X-EXPS EXCHANGEAUTH SHA256 {blob}"
    conn = ServerConnection()
    conn.receive_data(b"EHLO ex01.contoso.com\r\nX-ANONYMOUSTLS\r\n")
    conn.next_event()
    conn.send_reply(EHLO_REPLY)
    conn.next_event()
    conn.send_reply(replies.TLS_READY)
    conn.tls_established()
    mutual = Reply(235, None, ("bXV0dWFs",))
    events = run_server(
        [b"EHLO ex01.contoso.com\r\n" + line.encode() + b"\r\n"],
        conn,
        lambda e: mutual if isinstance(e, XExps) else accept_all(e),
        eof=False,
    )
    xexps = events[1]
    assert xexps == XExps(line=line, mechanism="EXCHANGEAUTH", hash_algorithm="SHA256", blob=blob)
    assert isinstance(xexps, XExps)
    assert xexps.log_text == "X-EXPS EXCHANGEAUTH SHA256 "
    assert conn.authenticated
    assert conn.tls == "X-ANONYMOUSTLS"


def test_x_exps_gssapi_continues_like_auth() -> None:
    conn = ServerConnection()
    script = iter([EHLO_REPLY, Reply(334, None, ("Y2hhbGxlbmdl",)), Reply(235, None, ("ok",))])
    events = run_server(
        [b"EHLO h.test\r\nX-EXPS GSSAPI\r\nYWJj\r\n"],
        conn,
        lambda e: next(script, None) or accept_all(e),
        eof=False,
    )
    assert events[1] == XExps(line="X-EXPS GSSAPI", mechanism="GSSAPI")
    assert events[2] == AuthResponse(line="YWJj")
    assert conn.authenticated


@pytest.mark.parametrize(
    "line", [b"AUTH\r\n", b"AUTH A B C\r\n", b"X-EXPS\r\n", b"X-EXPS GSSAPI a b\r\n"]
)
def test_auth_bad_syntax(line: bytes) -> None:
    events = run_server([HELLO + line + b"NOOP\r\n"])
    assert isinstance(events[1], BadSyntax)
    assert isinstance(events[2], Noop)


# --- overlong lines -------------------------------------------------------------------


@pytest.mark.parametrize("length", [513, 600, 20000])
def test_overlong_command_is_one_error_event(length: int) -> None:
    long_line = b"MAIL FROM:<" + b"a" * (length - 16) + b"@b>\r\n"
    assert len(long_line) == length
    for chunks in (
        [long_line + b"NOOP\r\n"],
        [long_line[i : i + 100] for i in range(0, length, 100)] + [b"NOOP\r\n"],
    ):
        events = run_server(chunks)
        assert isinstance(events[0], LineTooLong)
        assert events[0].length == length
        assert events[0].prefix == long_line[:512]
        assert events[0].suggested_reply == replies.LINE_TOO_LONG
        assert isinstance(events[1], Noop)


def test_line_at_the_limit_is_accepted() -> None:
    line = b"NOOP " + b"x" * 505 + b"\r\n"
    assert len(line) == 512
    assert isinstance(run_server([line])[0], Noop)


def test_overlong_line_is_not_buffered() -> None:
    conn = ServerConnection()
    for _ in range(1000):
        conn.receive_data(b"A" * 1000)
        assert conn.next_event() is NEED_DATA
        assert conn.buffered <= 1000 + conn.settings.max_auth_line_length
    conn.receive_data(b"\r\nNOOP\r\n")
    event = conn.next_event()
    assert isinstance(event, LineTooLong)
    assert event.length == 1_000_002


def test_command_line_bound_is_a_setting() -> None:
    conn = ServerConnection(ServerSettings(max_line_length=1000))
    assert isinstance(run_server([b"NOOP " + b"x" * 900 + b"\r\n"], conn)[0], Noop)


# --- misc verbs --------------------------------------------------------------------------


def test_vrfy_help_noop() -> None:
    events = run_server([b"VRFY bob\r\nHELP\r\nHELP mail\r\nNOOP hello\r\n"])
    assert events[:4] == [
        Vrfy(line="VRFY bob", argument="bob"),
        Help(line="HELP", argument=""),
        Help(line="HELP mail", argument="mail"),
        Noop(line="NOOP hello"),
    ]


def test_non_utf8_bytes_survive_in_line() -> None:
    events = run_server([b"XFOO \xff\xfe\r\n"])
    assert isinstance(events[0], Unknown)
    assert events[0].verb == "XFOO"
    assert events[0].line.encode("utf-8", "surrogateescape") == b"XFOO \xff\xfe"


# --- LMTP (RFC 2033) ---------------------------------------------------------------------


def test_lmtp_lhlo_and_per_recipient_replies() -> None:
    conn = ServerConnection(ServerSettings(lmtp=True))
    out: list[bytes] = []

    def policy(event: NeedsReply) -> Reply:
        if isinstance(event, EndOfMessage):
            return Reply(250, "2.1.5", ("delivered",))
        return accept_all(event)

    conn.receive_data(
        b"LHLO mx.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\nRCPT TO:<e@d.test>\r\n"
        b"DATA\r\nhi\r\n.\r\nEHLO x\r\n"
    )
    events = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
        if isinstance(event, EndOfMessage):
            assert event.recipients == ("c@d.test", "e@d.test")
            assert event.replies_expected == 2
            out.append(conn.send_reply(policy(event)))
            assert conn.next_event() is PAUSED
            assert conn.replies_owed == 1
            out.append(conn.send_reply(policy(event)))
        elif isinstance(event, NeedsReply):
            out.append(conn.send_reply(policy(event)))
    assert isinstance(events[0], Lhlo)
    assert isinstance(events[-1], Unknown)  # EHLO is not LMTP
    assert out[-3:-1] == [b"250 2.1.5 delivered\r\n"] * 2
    assert conn.mail_from is None


def test_lmtp_bdat_last_also_gets_per_recipient_replies() -> None:
    conn = ServerConnection(ServerSettings(lmtp=True))
    events = run_server(
        [
            b"LHLO mx.test\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<c@d.test>\r\n"
            b"RCPT TO:<e@d.test>\r\nBDAT 2 LAST\r\nhi"
        ],
        conn,
    )
    end = next(e for e in events if isinstance(e, EndOfMessage))
    assert end.replies_expected == 2
