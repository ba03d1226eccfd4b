"""SmtpReceive / SmtpSend protocol logs: rows, sessions, redaction, levels."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sitemail.clock import ManualClock
from sitemail.mailflow.protocol_log import (
    INTRA_ORG_SEND_CONNECTOR_ID,
    AuthRedactor,
    Direction,
    NullProtocolLog,
    NullSessionLog,
    ProtocolLog,
    ProtocolLoggingLevel,
    SessionIdSource,
    dotnet_ticks,
    receive_log_dir,
    send_log_dir,
)

START = datetime(2019, 1, 25, 0, 3, 58, 478_000, tzinfo=UTC)
HEADER = (
    "#Software: Microsoft Exchange Server\r\n"
    "#Version: 14.0.0.0\r\n"
    "#Log-type: {kind} Protocol Log\r\n"
    "#Date: 2019-01-25T00:03:58.478Z\r\n"
    "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,"
    "remote-endpoint,event,data,context\r\n"
)


def only_file(folder: Path) -> Path:
    (path,) = folder.iterdir()
    return path


def rows(folder: Path) -> list[str]:
    text = only_file(folder).read_bytes().decode()
    return [line for line in text.split("\r\n") if line and not line.startswith("#")]


def tail(row: str) -> str:
    """``event,data,context`` of a row whose earlier fields hold no comma."""
    return row.split(",", 6)[6]


def test_receive_session_start_matches_the_real_2010_lines_byte_for_byte(
    tmp_path: Path,
) -> None:
    log = ProtocolLog.receive(tmp_path, clock=ManualClock(START))
    session = log.session(
        "TAIL-EXCH-1\\Internet Mail",
        "10.0.0.6:25",
        "185.234.217.220:61061",
        session_id="08D675E58CA1DA38",
    )
    session.connect()
    session.set_session_permissions(
        [
            "SMTPSubmit",
            "SMTPAcceptAnySender",
            "SMTPAcceptAuthoritativeDomainSender",
            "AcceptRoutingHeaders",
        ]
    )
    log.close()
    path = only_file(tmp_path)
    assert path.name == "RECV20190125-1.LOG"
    prefix = "2019-01-25T00:03:58.478Z,TAIL-EXCH-1\\Internet Mail,08D675E58CA1DA38"
    assert path.read_bytes().decode() == (
        HEADER.format(kind="SMTP Receive")
        + f"{prefix},0,10.0.0.6:25,185.234.217.220:61061,+,,\r\n"
        + f"{prefix},1,10.0.0.6:25,185.234.217.220:61061,*,SMTPSubmit SMTPAcceptAnySender "
        "SMTPAcceptAuthoritativeDomainSender AcceptRoutingHeaders,Set Session Permissions\r\n"
    )


def test_send_log_has_its_own_prefix_and_log_type(tmp_path: Path) -> None:
    log = ProtocolLog.send(tmp_path, clock=ManualClock(START))
    session = log.session(INTRA_ORG_SEND_CONNECTOR_ID, "", "10.2.0.11:25")
    session.info("", "attempting to connect")
    session.set_endpoints(local="10.1.0.11:41234")
    session.connect()
    log.close()
    path = only_file(tmp_path)
    assert path.name == "SEND20190125-1.LOG"
    assert path.read_bytes().decode().startswith(HEADER.format(kind="SMTP Send"))
    first, second = rows(tmp_path)
    assert first.split(",")[1:] == [
        INTRA_ORG_SEND_CONNECTOR_ID,
        first.split(",")[2],
        "0",
        "",
        "10.2.0.11:25",
        "*",
        "",
        "attempting to connect",
    ]
    assert second.split(",")[3:] == ["1", "10.1.0.11:41234", "10.2.0.11:25", "+", "", ""]


def test_multi_line_reply_is_one_row_per_line_with_consecutive_numbers(tmp_path: Path) -> None:
    log = ProtocolLog.receive(tmp_path, clock=ManualClock(START))
    session = log.session("EX02\\Default EX02", "10.2.0.11:25", "10.1.0.11:41234")
    session.sent(
        "220 EX02.contoso.com Microsoft ESMTP MAIL Service ready at "
        "Tue, 1 Mar 2011 10:00:00 +0000\r\n"
    )
    session.received("EHLO EX01.contoso.com")
    session.sent("250-EX02.contoso.com Hello [10.1.0.11]\r\n250-SIZE\r\n250 XSHADOW\r\n")
    session.sent(["250-PIPELINING", "250 CHUNKING"])
    session.disconnect("Remote")
    log.close()
    written = rows(tmp_path)
    assert [r.split(",")[3] for r in written] == [str(i) for i in range(8)]
    assert [tail(r) for r in written] == [
        '>,"220 EX02.contoso.com Microsoft ESMTP MAIL Service ready at '
        'Tue, 1 Mar 2011 10:00:00 +0000",',
        "<,EHLO EX01.contoso.com,",
        ">,250-EX02.contoso.com Hello [10.1.0.11],",
        ">,250-SIZE,",
        ">,250 XSHADOW,",
        ">,250-PIPELINING,",
        ">,250 CHUNKING,",
        "-,,Remote",
    ]


def test_exchange_auth_blobs_are_not_logged_on_the_send_side(tmp_path: Path) -> None:
    log = ProtocolLog.send(tmp_path, clock=ManualClock(START))
    session = log.session(INTRA_ORG_SEND_CONNECTOR_ID, "10.1.0.11:41234", "10.2.0.11:25")
    session.sent("X-EXPS EXCHANGEAUTH SHA256 c2VjcmV0LWJsb2I=")
    session.received("235 c2VydmVyLWJsb2I=")
    session.sent("MAIL FROM:<alice@contoso.com> SIZE=2048")
    session.received("250 2.1.0 Sender OK")
    log.close()
    assert [tail(r) for r in rows(tmp_path)] == [
        ">,X-EXPS EXCHANGEAUTH SHA256 ,",
        "<,235 <authentication information>,",
        ">,MAIL FROM:<alice@contoso.com> SIZE=2048,",
        "<,250 2.1.0 Sender OK,",
    ]
    assert "c2Vj" not in only_file(tmp_path).read_text()


def test_auth_login_credentials_never_reach_the_receive_log(tmp_path: Path) -> None:
    log = ProtocolLog.receive(tmp_path, clock=ManualClock(START))
    session = log.session("EX02\\Client EX02", "10.2.0.11:587", "10.9.0.5:50000")
    session.received("AUTH LOGIN")
    session.sent("334 VXNlcm5hbWU6")
    session.received("YWxpY2VAY29udG9zby5jb20=")
    session.sent("334 UGFzc3dvcmQ6")
    session.received("UEBzc3cwcmQ=")
    session.sent("235 2.7.0 Authentication successful")
    session.received("MAIL FROM:<alice@contoso.com>")
    log.close()
    assert [tail(r) for r in rows(tmp_path)] == [
        "<,AUTH LOGIN,",
        ">,334 <authentication information>,",
        ">,334 <authentication information>,",
        ">,235 2.7.0 Authentication successful,",
        "<,MAIL FROM:<alice@contoso.com>,",
    ]
    text = only_file(tmp_path).read_text()
    assert "YWxpY2" not in text and "UEBzc3" not in text


def test_auth_with_an_initial_response_keeps_only_the_mechanism() -> None:
    redactor = AuthRedactor()
    assert redactor.command("AUTH PLAIN AGFsaWNlAHNlY3JldA==") == "AUTH PLAIN "
    assert redactor.reply("535 5.7.3 Authentication unsuccessful") == (
        "535 5.7.3 Authentication unsuccessful"
    )
    assert redactor.command("QUIT") == "QUIT"  # the failed exchange is over


def test_level_none_gives_a_null_session_that_writes_nothing(tmp_path: Path) -> None:
    log = ProtocolLog.receive(tmp_path, clock=ManualClock(START))
    session = log.session("EX02\\Default EX02", "a:25", "b:1", level=ProtocolLoggingLevel.NONE)
    assert isinstance(session, NullSessionLog)
    session.connect()
    session.sent("220 ready")
    session.received("QUIT")
    session.set_session_permissions(["SMTPSubmit"])
    session.disconnect()
    log.close()
    assert list(tmp_path.iterdir()) == []
    assert len(session.session_id) == 16


def test_level_accepts_the_cmdlet_strings(tmp_path: Path) -> None:
    log = ProtocolLog.receive(tmp_path, clock=ManualClock(START))
    assert isinstance(log.session("c", level="None"), NullSessionLog)
    assert not isinstance(log.session("c", level="Verbose"), NullSessionLog)
    with pytest.raises(ValueError):
        log.session("c", level="Medium")


def test_null_protocol_log_for_a_null_path() -> None:
    session = NullProtocolLog(ManualClock(START)).session("c", "a", "b")
    assert isinstance(session, NullSessionLog)


def test_session_ids_are_16_hex_digits_from_net_ticks_and_consecutive() -> None:
    ids = SessionIdSource()
    clock = ManualClock(START)
    first, second = ids.next_id(clock), ids.next_id(clock)
    assert first == f"{dotnet_ticks(START):016X}"
    assert first.startswith("08D6")  # a 2019 tick count, like 08D675E58CA1DA38
    assert int(second, 16) == int(first, 16) + 1


def test_sessions_of_one_log_get_distinct_ids(tmp_path: Path) -> None:
    log = ProtocolLog.receive(tmp_path, clock=ManualClock(START))
    assert len({log.session("c").session_id for _ in range(50)}) == 50


def test_lab_folders_follow_the_design_layout(tmp_path: Path) -> None:
    assert receive_log_dir(tmp_path) == (
        tmp_path / "TransportRoles" / "Logs" / "ProtocolLogs" / "SmtpReceive"
    )
    assert send_log_dir(tmp_path) == tmp_path / "TransportRoles/Logs/ProtocolLogs/SmtpSend"
    assert Direction.RECEIVE.value == "SmtpReceive"
