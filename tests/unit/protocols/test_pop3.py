"""The sans-I/O POP3 core, byte by byte: grammar, states, STLS, multi-line answers, properties."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sitemail.protocols import pop3
from sitemail.protocols.pop3 import (
    NEED_DATA,
    PAUSED,
    BadSyntax,
    Capa,
    Command,
    ConnectionClosed,
    Dele,
    LineTooLong,
    List,
    Noop,
    Pass,
    Pop3Server,
    Pop3State,
    Quit,
    Retr,
    Rset,
    Stat,
    Stls,
    Top,
    Uidl,
    Unknown,
    User,
)


def events(server: Pop3Server, data: bytes) -> list[object]:
    """Feed ``data``; answer every command +OK (or with its suggested -ERR)."""
    server.receive_data(data)
    out: list[object] = []
    while True:
        event = server.next_event()
        if event is NEED_DATA or event is PAUSED:
            return out
        out.append(event)
        if isinstance(event, ConnectionClosed):
            return out
        assert isinstance(event, Command)
        if event.suggested_error:
            server.send_err(event.suggested_error)
        elif isinstance(event, Retr | Top):
            server.start_message()
            server.end_message()
        else:
            server.send_ok()


def logged_in() -> Pop3Server:
    server = Pop3Server(secure=True)
    events(server, b"USER adam\r\nPASS Pa55word!\r\n")
    assert server.state is Pop3State.TRANSACTION
    return server


def test_greeting_is_exchanges() -> None:
    assert Pop3Server().greeting() == b"+OK The Microsoft Exchange POP3 service is ready.\r\n"


def test_user_and_pass_log_in_and_the_password_keeps_its_spaces() -> None:
    server = Pop3Server(secure=True)
    server.receive_data(b"user Adam\r\n")
    user = server.next_event()
    assert isinstance(user, User) and user.name == "Adam" and user.suggested_error is None
    assert server.next_event() is PAUSED  # one answer per command
    assert server.send_ok() == b"+OK\r\n"
    server.receive_data(b"PASS two words \r\n")
    password = server.next_event()
    assert isinstance(password, Pass) and password.password == "two words "
    assert password.log_text == "PASS ****"
    assert server.send_ok("User successfully logged on.") == b"+OK User successfully logged on.\r\n"
    assert server.state is Pop3State.TRANSACTION


def test_pass_without_user_and_transaction_commands_before_login_are_out_of_state() -> None:
    server = Pop3Server(secure=True)
    got = events(server, b"PASS x\r\nSTAT\r\nRETR 1\r\n")
    assert [type(e) for e in got] == [Pass, Stat, Retr]
    assert all(e.suggested_error == "Command is not valid in this state." for e in got)  # type: ignore[attr-defined]


def test_failed_pass_asks_for_user_again() -> None:
    server = Pop3Server(secure=True)
    events(server, b"USER adam\r\n")
    server.receive_data(b"PASS wrong\r\n")
    assert isinstance(server.next_event(), Pass)
    assert server.send_err("Logon failure") == b"-ERR Logon failure\r\n"
    server.receive_data(b"PASS again\r\n")
    retry = server.next_event()
    assert isinstance(retry, Pass) and retry.suggested_error == pop3.BAD_STATE


def test_transaction_commands_and_their_arguments() -> None:
    server = logged_in()
    got = events(
        server,
        b"STAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 3\r\nRETR 1\r\nTOP 1 0\r\nTOP 2 10\r\n"
        b"DELE 4\r\nNOOP\r\nRSET\r\nCAPA\r\n",
    )
    assert [type(e) for e in got] == [
        Stat, List, List, Uidl, Uidl, Retr, Top, Top, Dele, Noop, Rset, Capa
    ]  # fmt: skip
    assert [getattr(e, "msg", None) for e in got] == [
        None, None, 2, None, 3, 1, 1, 2, 4, None, None, None
    ]  # fmt: skip
    assert [e.lines for e in got if isinstance(e, Top)] == [0, 10]
    assert all(e.suggested_error is None for e in got)  # type: ignore[attr-defined]


def test_bad_arguments_and_unknown_verbs() -> None:
    server = logged_in()
    got = events(server, b"RETR\r\nRETR 0\r\nRETR x\r\nLIST 1 2\r\nTOP 1\r\nSTAT 1\r\nXYZZY\r\n")
    assert [type(e) for e in got] == [BadSyntax] * 6 + [Unknown]
    assert all(e.suggested_error for e in got)  # type: ignore[attr-defined]


def test_user_after_login_and_stls_under_tls_are_out_of_state() -> None:
    server = logged_in()
    got = events(server, b"USER bob\r\nSTLS\r\n")
    assert [e.suggested_error for e in got] == [pop3.BAD_STATE] * 2  # type: ignore[attr-defined]


def test_stls_drops_plaintext_sent_before_the_handshake() -> None:
    server = Pop3Server()
    server.receive_data(b"STLS\r\nUSER injected\r\n")
    assert isinstance(server.next_event(), Stls)
    assert server.send_ok(pop3.BEGIN_TLS) == b"+OK Begin TLS negotiation.\r\n"
    assert server.next_event() is PAUSED
    server.receive_data(b"PASS injected too\r\n")
    server.tls_established()
    assert server.secure
    server.receive_data(b"CAPA\r\n")
    assert isinstance(server.next_event(), Capa)


def test_multi_line_answers_are_dot_stuffed() -> None:
    server = logged_in()
    server.receive_data(b"CAPA\r\n")
    server.next_event()
    assert server.send_lines("", ["TOP", ".odd", "UIDL"]) == b"+OK\r\nTOP\r\n..odd\r\nUIDL\r\n.\r\n"
    server.receive_data(b"RETR 1\r\n")
    server.next_event()
    wire = server.start_message("120 octets")
    wire += server.message_data(b"Subject: x\r\n\r\n.hidden\r")
    wire += server.message_data(b"\nlast line")
    wire += server.end_message()
    assert wire == b"+OK 120 octets\r\nSubject: x\r\n\r\n..hidden\r\nlast line\r\n.\r\n"


def test_quit_in_transaction_enters_update_and_nothing_follows() -> None:
    server = logged_in()
    server.receive_data(b"QUIT\r\nNOOP\r\n")
    assert isinstance(server.next_event(), Quit)
    server.send_ok(pop3.SIGNING_OFF)
    assert server.state is Pop3State.UPDATE
    assert isinstance(server.next_event(), ConnectionClosed)
    assert server.next_event() is NEED_DATA


def test_quit_before_login_closes() -> None:
    server = Pop3Server()
    events(server, b"QUIT\r\n")
    assert server.state is Pop3State.CLOSED


def test_an_overlong_line_is_reported_once_without_being_held() -> None:
    server = Pop3Server(max_line=64)
    got = events(server, b"USER " + b"a" * 5000 + b"\r\nNOOP\r\n")
    assert isinstance(got[0], LineTooLong) and got[0].length == 5007
    assert len(got[0].line) <= 64
    assert isinstance(got[1], Noop)


def test_closing_mid_line_reports_the_close() -> None:
    server = Pop3Server()
    server.receive_data(b"USER ad")
    assert server.next_event() is NEED_DATA
    server.receive_data(b"")
    assert isinstance(server.next_event(), ConnectionClosed)


# ------------------------------------------------------------------ properties


def transcript(chunks: list[bytes]) -> list[tuple[str, str, str | None]]:
    server = Pop3Server(max_line=128)
    out: list[tuple[str, str, str | None]] = []
    for chunk in chunks:
        for e in events(server, chunk):
            if isinstance(e, Command):
                out.append((type(e).__name__, e.line, e.suggested_error))
    for e in events(server, b""):
        if isinstance(e, Command):
            out.append((type(e).__name__, e.line, e.suggested_error))
    return out


session_bytes = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b"USER adam\r\n",
                b"PASS p w\r\n",
                b"STAT\r\n",
                b"LIST 1\r\n",
                b"RETR 2\r\n",
                b"TOP 1 5\r\n",
                b"QUIT\r\n",
                b"\r\n",
                b"\n",
                b"CAPA\r\n",
                b"UIDL\r\n",
            ]
        ),
        st.binary(max_size=200),
    ),
    max_size=12,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(data=session_bytes, cuts=st.lists(st.integers(min_value=0, max_value=2400), max_size=8))
def test_no_input_crashes_the_core_and_splitting_changes_nothing(
    data: bytes, cuts: list[int]
) -> None:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    whole = transcript([data])
    assert transcript([p for p in pieces if p]) == whole
    assert transcript([bytes([b]) for b in data]) == whole
