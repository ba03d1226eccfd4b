"""ClientConnection: commands to bytes, server bytes to Response events."""

from __future__ import annotations

import pytest
from tests.unit.protocols.smtp_testkit import bytewise, run_client

from sitemail.protocols.smtp import (
    AUTH_CONTINUATION,
    END_OF_DATA,
    GREETING,
    NEED_DATA,
    PAUSED,
    BadReply,
    ClientConnection,
    ClientSettings,
    ClientState,
    ConnectionClosed,
    Event,
    LocalProtocolError,
    Reply,
    Request,
    Response,
)

BANNER = b"220 mx.test Microsoft ESMTP MAIL Service ready at Fri, 5 Aug 2016 16:24:41 -0700\r\n"
EHLO_2010 = (
    b"250-EX02.contoso.com Hello [10.1.0.11]\r\n250-SIZE\r\n250-PIPELINING\r\n250-DSN\r\n"
    b"250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250-X-ANONYMOUSTLS\r\n250-AUTH NTLM\r\n"
    b"250-X-EXPS GSSAPI NTLM\r\n250-8BITMIME\r\n250-BINARYMIME\r\n250-CHUNKING\r\n"
    b"250-XEXCH50\r\n250-XRDST\r\n250 XSHADOW\r\n"
)


def request_of(event: Event) -> Request | None:
    assert isinstance(event, Response), event
    return event.request


def greeted(settings: ClientSettings | None = None) -> ClientConnection:
    conn = ClientConnection(settings)
    events = run_client(conn, [BANNER])
    assert events == [
        Response(
            reply=Reply(
                220,
                None,
                ("mx.test Microsoft ESMTP MAIL Service ready at Fri, 5 Aug 2016 16:24:41 -0700",),
            ),
            request=Request(GREETING),
        )
    ]
    return conn


def ehlo_done(settings: ClientSettings | None = None) -> ClientConnection:
    conn = greeted(settings)
    assert conn.ehlo("EX01.contoso.com") == b"EHLO EX01.contoso.com\r\n"
    run_client(conn, [EHLO_2010])
    return conn


def test_ehlo_reply_is_parsed_into_extensions() -> None:
    conn = greeted()
    conn.ehlo("EX01.contoso.com")
    for chunk in bytewise(EHLO_2010)[:-1]:
        conn.receive_data(chunk)
        assert conn.next_event() is NEED_DATA
    conn.receive_data(b"\n")
    event = conn.next_event()
    assert isinstance(event, Response)
    assert event.request == Request("EHLO", "EX01.contoso.com")
    assert len(event.reply.lines) == 15
    ext = conn.extensions
    assert ext is not None
    assert list(ext.keywords)[:3] == ["SIZE", "PIPELINING", "DSN"]
    assert ext.has("X-EXPS", "GSSAPI") and not ext.has("X-EXPS", "EXCHANGEAUTH")
    assert ext.has("X-ANONYMOUSTLS")


def test_pipelined_replies_are_matched_in_order() -> None:
    conn = ehlo_done()
    wire = (
        conn.mail("alice@contoso.com", {"SIZE": "2048"})
        + conn.rcpt("bob@contoso.com")
        + conn.rcpt("nobody@elsewhere.test")
        + conn.bdat(b"hello", last=True)
    )
    assert wire == (
        b"MAIL FROM:<alice@contoso.com> SIZE=2048\r\nRCPT TO:<bob@contoso.com>\r\n"
        b"RCPT TO:<nobody@elsewhere.test>\r\nBDAT 5 LAST\r\nhello"
    )
    assert [r.verb for r in conn.outstanding] == ["MAIL", "RCPT", "RCPT", "BDAT"]
    events = run_client(
        conn,
        [
            b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n550 5.7.1 Unable to relay\r\n"
            b"250 2.6.0 <m@EX01> [InternalId=1] Queued mail for delivery\r\n"
        ],
    )
    assert [(e.request, e.reply.code) for e in events if isinstance(e, Response)] == [
        (Request("MAIL", "alice@contoso.com"), 250),
        (Request("RCPT", "bob@contoso.com"), 250),
        (Request("RCPT", "nobody@elsewhere.test"), 550),
        (Request("BDAT", "5 LAST"), 250),
    ]
    assert conn.outstanding == ()
    assert conn.accepted_recipients == ()  # transaction over


def test_data_body_is_stuffed_and_normalised() -> None:
    conn = ehlo_done()
    conn.mail("a@b.test")
    conn.rcpt("c@d.test")
    assert conn.data() == b"DATA\r\n"
    with pytest.raises(LocalProtocolError):
        conn.send_body(b"too early")
    with pytest.raises(LocalProtocolError):
        conn.noop()  # DATA must be answered before anything else
    run_client(conn, [b"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"])
    events = run_client(conn, [b"354 Start mail input; end with <CRLF>.<CRLF>\r\n"])
    assert request_of(events[0]) == Request("DATA")
    assert conn.state is ClientState.BODY
    wire = (
        conn.send_body(b"Subject: x\n\n.hidden\r") + conn.send_body(b"\n.\nend") + conn.end_body()
    )
    assert wire == b"Subject: x\r\n\r\n..hidden\r\n..\r\nend\r\n.\r\n"
    events = run_client(conn, [b"250 2.6.0 <id> [InternalId=2] Queued mail for delivery\r\n"])
    assert request_of(events[0]) == Request(END_OF_DATA)
    assert conn.state is ClientState.READY


def test_refused_data_returns_to_ready() -> None:
    conn = ehlo_done()
    conn.data()
    run_client(conn, [b"503 5.5.2 Need mail command\r\n"])
    assert conn.state is ClientState.READY
    assert conn.noop() == b"NOOP\r\n"


def test_starttls_discards_injected_plaintext_and_resets() -> None:
    conn = ehlo_done()
    assert conn.starttls() == b"STARTTLS\r\n"
    with pytest.raises(LocalProtocolError):
        conn.mail("a@b.test")  # nothing may follow STARTTLS in a pipeline
    events = run_client(conn, [b"220 2.0.0 SMTP server ready\r\n250 injected reply\r\n"])
    assert [e.reply.code for e in events if isinstance(e, Response)] == [220]
    assert conn.state is ClientState.TLS_HANDSHAKE
    assert conn.discarded == len(b"250 injected reply\r\n")
    assert conn.next_event() is PAUSED
    conn.tls_established()
    assert conn.tls == "STARTTLS"
    assert conn.extensions is None
    conn.ehlo("EX01.contoso.com")
    events = run_client(conn, [b"250 EX02 Hello\r\n"])
    assert request_of(events[0]) == Request("EHLO", "EX01.contoso.com")


def test_eof_during_tls_handshake_closes() -> None:
    conn = ehlo_done()
    conn.starttls()
    run_client(conn, [b"220 2.0.0 SMTP server ready\r\n"])
    assert conn.next_event() is PAUSED
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed(in_transaction=False)


def test_x_exps_exchangeauth_flow() -> None:
    conn = ehlo_done()
    assert conn.x_anonymous_tls() == b"X-ANONYMOUSTLS\r\n"
    run_client(conn, [b"220 2.0.0 SMTP server ready\r\n"])
    conn.tls_established()
    conn.ehlo("EX01.contoso.com")
    run_client(
        conn,
        [
            b"250-EX02 Hello\r\n250-AUTH NTLM LOGIN\r\n250-X-EXPS EXCHANGEAUTH GSSAPI NTLM\r\n"
            b"250-X-EXCHANGEAUTH SHA256\r\n250 XSHADOW\r\n"
        ],
    )
    assert conn.extensions is not None and conn.extensions.has("X-EXPS", "EXCHANGEAUTH")
    wire = conn.x_exps("EXCHANGEAUTH", "SHA256", "YIIblob==")
    assert wire == b"X-EXPS EXCHANGEAUTH SHA256 YIIblob==\r\n"
    events = run_client(conn, [b"235 bXV0dWFs\r\n"])
    assert events[0] == Response(
        reply=Reply(235, None, ("bXV0dWFs",)), request=Request("X-EXPS", "EXCHANGEAUTH")
    )
    assert conn.authenticated


def test_auth_login_continuation() -> None:
    conn = ehlo_done()
    conn.auth("LOGIN")
    with pytest.raises(LocalProtocolError):
        conn.auth_response("early")
    run_client(conn, [b"334 VXNlcm5hbWU6\r\n"])
    assert conn.state is ClientState.AUTH
    with pytest.raises(LocalProtocolError):
        conn.noop()
    assert conn.auth_response("dXNlcg==") == b"dXNlcg==\r\n"
    events = run_client(conn, [b"334 UGFzc3dvcmQ6\r\n"])
    assert request_of(events[0]) == Request(AUTH_CONTINUATION)
    conn.auth_response("cGFzcw==")
    run_client(conn, [b"235 2.7.0 Authentication successful\r\n"])
    assert conn.authenticated
    assert conn.state is ClientState.READY


def test_lmtp_gives_one_response_per_accepted_recipient() -> None:
    conn = greeted(ClientSettings(lmtp=True))
    conn.lhlo("mx.test")
    run_client(conn, [b"250-mx.test\r\n250 PIPELINING\r\n"])
    conn.mail("a@b.test")
    conn.rcpt("c@d.test")
    conn.rcpt("x@d.test")
    conn.rcpt("e@d.test")
    conn.data()
    run_client(
        conn,
        [
            b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n550 5.1.1 User unknown\r\n250 2.1.5 OK\r\n"
            b"354 go ahead\r\n"
        ],
    )
    conn.send_body(b"hi")
    conn.end_body()
    events = run_client(conn, [b"250 2.0.0 delivered\r\n452 4.2.2 Mailbox full\r\n"])
    assert [(e.request, e.reply.code) for e in events if isinstance(e, Response)] == [
        (Request(END_OF_DATA, recipient="c@d.test"), 250),
        (Request(END_OF_DATA, recipient="e@d.test"), 452),
    ]
    assert conn.outstanding == ()


def test_lmtp_pipelined_bdat_last_counts_recipients_when_replies_arrive() -> None:
    conn = greeted(ClientSettings(lmtp=True))
    conn.lhlo("mx.test")
    run_client(conn, [b"250 mx.test\r\n"])
    conn.mail("a@b.test")
    conn.rcpt("c@d.test")
    conn.rcpt("e@d.test")
    conn.bdat(b"body", last=True)
    conn.noop()
    events = run_client(
        conn,
        [b"250 OK\r\n250 OK\r\n250 OK\r\n250 c done\r\n250 e done\r\n250 2.0.0 OK\r\n"],
    )
    requests = [e.request for e in events if isinstance(e, Response)]
    assert requests[3:] == [
        Request("BDAT", "4 LAST", "c@d.test"),
        Request("BDAT", "4 LAST", "e@d.test"),
        Request("NOOP"),
    ]


def test_lmtp_end_of_data_without_recipients_expects_one_reply() -> None:
    conn = greeted(ClientSettings(lmtp=True))
    conn.bdat(b"", last=True)
    conn.noop()
    events = run_client(conn, [b"503 5.5.2 Need mail command\r\n250 OK\r\n"])
    assert [e.request for e in events if isinstance(e, Response)] == [
        Request("BDAT", "0 LAST"),
        Request("NOOP"),
    ]


def test_quit_and_close() -> None:
    conn = ehlo_done()
    conn.quit()
    events = run_client(conn, [b"221 2.0.0 Service closing transmission channel\r\n"])
    assert request_of(events[0]) == Request("QUIT")
    assert conn.state is ClientState.CLOSED
    assert conn.next_event() == ConnectionClosed(in_transaction=False)
    with pytest.raises(LocalProtocolError):
        conn.noop()


def test_unsolicited_421() -> None:
    conn = ehlo_done()
    events = run_client(conn, [b"421 4.4.1 Connection timed out\r\n"])
    assert events[0] == Response(reply=Reply(421, "4.4.1", ("Connection timed out",)), request=None)
    assert conn.next_event() == ConnectionClosed(in_transaction=False)


def test_eof_mid_transaction() -> None:
    conn = ehlo_done()
    conn.mail("a@b.test")
    run_client(conn, [b"250 OK\r\n"])
    assert run_client(conn, [], eof=True) == [ConnectionClosed(in_transaction=True)]


@pytest.mark.parametrize(
    "garbage",
    [b"hello there\r\n", b"250-a\r\n251 b\r\n", b"2\r\n", b"250" + b"x" * 5000 + b"\r\n"],
)
def test_garbage_from_server_is_bad_reply_then_closed(garbage: bytes) -> None:
    conn = greeted()
    conn.noop()
    events = run_client(conn, [garbage])
    assert isinstance(events[0], BadReply)
    assert len(events[0].data) <= conn.settings.max_reply_line_length
    assert conn.next_event() == ConnectionClosed(in_transaction=False)


def test_commands_refuse_injection() -> None:
    conn = ehlo_done()
    for call in (
        lambda: conn.mail("a@b.test\r\nRCPT TO:<x@y>"),
        lambda: conn.rcpt("a@b.test>\r\nDATA"),
        lambda: conn.mail("a@b.test", {"SIZE": "1 NOTIFY=NEVER"}),
        lambda: conn.ehlo("two words"),
        lambda: conn.auth("LOGIN", "a\r\nb"),
        lambda: conn.vrfy("x\ny"),
        lambda: conn.raw("NOOP\r\nQUIT"),
    ):
        with pytest.raises(ValueError):
            call()
    assert conn.outstanding == ()


def test_raw_line() -> None:
    conn = ehlo_done()
    assert conn.raw("XEXCH50 1024 2") == b"XEXCH50 1024 2\r\n"
    events = run_client(conn, [b"504 5.7.1 Not authorized\r\n"])
    assert request_of(events[0]) == Request("XEXCH50", "1024 2")


def test_null_sender_and_helo() -> None:
    conn = greeted()
    assert conn.helo("client.test") == b"HELO client.test\r\n"
    run_client(conn, [b"250 mx.test Hello [127.0.0.1]\r\n"])
    assert conn.extensions is None
    assert conn.mail("") == b"MAIL FROM:<>\r\n"
