"""XSHADOW and XQDISCARD in the shared SMTP grammar (2010 shadow redundancy)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.unit.protocols.smtp_testkit import accept_all, run_client, run_server
from tests.unit.protocols.test_smtp_client import ehlo_done

from sitemail.protocols.smtp import (
    BadSyntax,
    LocalProtocolError,
    Reply,
    Request,
    Response,
    ServerConnection,
    XQDiscard,
    XShadow,
    parse_command,
    replies,
    shadow,
)


def test_xshadow_and_xqdiscard_parse_to_their_events() -> None:
    assert parse_command("XSHADOW EX-NY1.contoso.com\r\n") == XShadow(
        line="XSHADOW EX-NY1.contoso.com", server="EX-NY1.contoso.com"
    )
    assert parse_command("xqdiscard 40") == XQDiscard(line="xqdiscard 40", max_ids=40)


@pytest.mark.parametrize(
    "line", ["XSHADOW", "XSHADOW not a domain", "XQDISCARD", "XQDISCARD 0", "XQDISCARD 41"]
)
def test_malformed_shadow_commands_are_syntax_errors(line: str) -> None:
    event = parse_command(line)
    assert isinstance(event, BadSyntax)
    assert event.suggested_reply == replies.UNRECOGNIZED_PARAMETER


def test_server_core_wants_a_greeting_before_xshadow() -> None:
    events = run_server([b"XSHADOW ex01.contoso.com\r\n"], ServerConnection(), accept_all)
    first = events[0]
    assert isinstance(first, XShadow)
    assert first.suggested_reply == replies.SEND_HELLO_FIRST


def test_server_core_hands_out_shadow_commands_after_ehlo() -> None:
    conn = ServerConnection()
    events = run_server(
        [b"EHLO ex01.contoso.com\r\nXSHADOW ex01.contoso.com\r\nXQDISCARD 5\r\n"],
        conn,
        accept_all,
        eof=False,
    )
    assert events[1] == XShadow(line="XSHADOW ex01.contoso.com", server="ex01.contoso.com")
    assert events[2] == XQDiscard(line="XQDISCARD 5", max_ids=5)
    assert events[1].suggested_reply is None and events[2].suggested_reply is None


def test_client_core_sends_both_and_matches_their_replies() -> None:
    conn = ehlo_done()
    assert conn.xshadow("EX01.contoso.com") == b"XSHADOW EX01.contoso.com\r\n"
    assert conn.xqdiscard(40) == b"XQDISCARD 40\r\n"
    events = run_client(conn, [b"250 5f0c3a7e-shadow\r\n250 2 17 18\r\n"])
    assert events == [
        Response(reply=Reply(250, None, ("5f0c3a7e-shadow",)), request=Request("XSHADOW")),
        Response(reply=Reply(250, None, ("2 17 18",)), request=Request("XQDISCARD")),
    ]
    assert shadow.parse_xshadow_reply(events[0].reply) == "5f0c3a7e-shadow"
    assert shadow.parse_xqdiscard_reply(events[1].reply) == [17, 18]


def test_client_core_refuses_an_out_of_range_count() -> None:
    with pytest.raises(LocalProtocolError):
        ehlo_done().xqdiscard(0)


def test_refusals_and_garbage_are_not_answers() -> None:
    assert shadow.parse_xshadow_reply(shadow.SHADOW_NOT_AUTHORIZED) is None
    assert shadow.parse_xqdiscard_reply(shadow.SHADOW_NOT_AUTHORIZED) is None
    assert shadow.parse_xqdiscard_reply(Reply(250, None, ("3 1 2",))) is None  # count lies
    assert shadow.parse_xqdiscard_reply(replies.NOOP_OK) is None
    assert shadow.parse_xqdiscard_reply(shadow.xqdiscard_reply([])) == []


@given(st.lists(st.integers(min_value=1, max_value=2**63), max_size=shadow.MAX_DISCARD_IDS))
def test_discard_reply_round_trips_and_fits_a_line(ids: list[int]) -> None:
    reply = shadow.xqdiscard_reply(ids)
    assert len(reply.to_bytes()) <= 1000
    assert shadow.parse_xqdiscard_reply(reply) == ids


def test_shadow_id_round_trips() -> None:
    reply = shadow.xshadow_reply("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
    assert reply.to_bytes() == b"250 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\r\n"
    assert shadow.parse_xshadow_reply(reply) == "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
