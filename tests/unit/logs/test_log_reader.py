"""The troubleshooter's streaming readers on real-shaped Exchange logs."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sitemail.clock import ManualClock
from sitemail.diagnose.logs import (
    LogKind,
    ProtocolRow,
    exchange_release,
    find_log_files,
    group_sessions,
    inspect_log_file,
    read_protocol_log,
    read_tracking_rows,
)
from sitemail.mailflow.log_files import LogLimits
from sitemail.mailflow.protocol_log import INTRA_ORG_SEND_CONNECTOR_ID, ProtocolLog
from sitemail.mailflow.tracking_log import (
    MessageTrackingLog,
    TrackingEventId,
    TrackingQuery,
    TrackingSource,
)

FIELDS = (
    "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,"
    "remote-endpoint,event,data,context"
)
TLS = (
    "TLS protocol SP_PROT_TLS1_0_CLIENT negotiation succeeded using bulk encryption "
    "algorithm CALG_AES_256 with strength 256 bits, MAC hash algorithm CALG_SHA1 with "
    "strength 160 bits and key exchange algorithm CALG_ECDHE with strength 256 bits"
)

# Exchange 2007: #Version 8.x, daily names, quoted banner with its date commas.
RECV_2007 = "\r\n".join(
    [
        "#Software: Microsoft Exchange Server",
        "#Version: 8.0.0.0",
        "#Log-type: SMTP Receive Protocol Log",
        "#Date: 2019-02-21T10:00:00.000Z",
        FIELDS,
        "2019-02-21T10:00:00.000Z,EX07\\Default EX07,08D697E1A2B3C4D5,0,10.0.0.7:25,"
        "10.0.0.9:1234,+,,",
        "2019-02-21T10:00:00.010Z,EX07\\Default EX07,08D697E1A2B3C4D5,1,10.0.0.7:25,"
        '10.0.0.9:1234,>,"220 EX07.contoso.com Microsoft ESMTP MAIL Service ready at '
        'Thu, 21 Feb 2019 10:00:00 +0000",',
        "2019-02-21T10:00:00.020Z,EX07\\Default EX07,08D697E1A2B3C4D5,2,10.0.0.7:25,"
        "10.0.0.9:1234,-,,Remote",
        "",
    ]
)

# Exchange 2010 send log: the KB979175 failure; the TLS row's text holds
# commas and is not quoted; one row per EHLO reply line.
SEND_2010 = "\r\n".join(
    [
        "#Software: Microsoft Exchange Server",
        "#Version: 14.0.0.0",
        "#Log-type: SMTP Send Protocol Log",
        "#Date: 2011-03-01T10:00:00.000Z",
        FIELDS,
        *(
            f"2011-03-01T10:00:0{i // 10}.{i % 10}00Z,{INTRA_ORG_SEND_CONNECTOR_ID},"
            f"08CD1234567890AB,{i},{'10.1.0.11:41234' if i else ''},10.2.0.11:25,{rest}"
            for i, rest in enumerate(
                [
                    "*,,attempting to connect",
                    "+,,",
                    "<,220 ****************************************,",
                    ">,EHLO EX01.contoso.com,",
                    "<,250-EX02.contoso.com Hello [10.1.0.11],",
                    "<,250-SIZE,",
                    "<,250-PIPELINING,",
                    "<,250 XXXXXXXA,",
                    f"*,,{TLS}",
                    '*,,"451 5.7.3 Cannot achieve Exchange Server authentication"',
                    ">,QUIT,",
                    "-,,Local",
                ]
            )
        ),
        "",
    ]
)

# Exchange 2013: hourly name, #Log-Type, build number, columns in another
# order (the reader must follow #Fields), LF line ends and a BOM.
RECV_2013 = "\ufeff" + "\n".join(
    [
        "#Software: Microsoft Exchange Server",
        "#Version: 15.0.1497.2",
        "#Log-Type: SMTP Receive Protocol Log",
        "#Date: 2023-02-01T00:00:00.000Z",
        "#Fields: session-id,date-time,event,connector-id,sequence-number,"
        "local-endpoint,remote-endpoint,data,context",
        "08DB03AA00000001,2023-02-01T00:15:00.000Z,+,EX13\\Default Frontend EX13,0,"
        "10.0.0.13:25,10.0.0.99:5000,,",
        "08DB03AA00000001,2023-02-01T00:15:00.100Z,<,EX13\\Default Frontend EX13,1,"
        "10.0.0.13:25,10.0.0.99:5000,EHLO client.example,",
        "08DB03AA00000001,2023-02-01T00:15:00.200Z,-,EX13\\Default Frontend EX13,2,"
        "10.0.0.13:25,10.0.0.99:5000,,Local",
        "",
    ]
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.fixture
def exchange_tree(tmp_path: Path) -> Path:
    logs = tmp_path / "Logs"
    write(logs / "Hub/ProtocolLog/SmtpReceive/RECV20190221-2.LOG", RECV_2007)
    write(logs / "Hub/ProtocolLog/SmtpSend/SEND20110301-1.LOG", SEND_2010)
    write(logs / "FrontEnd/ProtocolLog/SmtpReceive/RECV2023020100-1.LOG", RECV_2013)
    write(
        logs / "Routing/RoutingConfig#1@2023-02-01T0000.LOG",
        "#Software: Microsoft Exchange Server\n#Log-type: Routing Table Log\n",
    )
    write(logs / "notes.txt", "not a log\n")
    return logs


def test_files_are_found_and_told_apart_by_header(exchange_tree: Path) -> None:
    found = {f.path.name: (f.kind, f.release) for f in find_log_files(exchange_tree)}
    assert found == {
        "RECV20190221-2.LOG": (LogKind.SMTP_RECEIVE, "2007"),
        "SEND20110301-1.LOG": (LogKind.SMTP_SEND, "2010"),
        "RECV2023020100-1.LOG": (LogKind.SMTP_RECEIVE, "2013"),
    }
    only_send = [f.path.name for f in find_log_files(exchange_tree, [LogKind.SMTP_SEND])]
    assert only_send == ["SEND20110301-1.LOG"]


def test_kind_falls_back_to_name_and_folder_without_a_log_type(tmp_path: Path) -> None:
    bare = write(tmp_path / "SmtpSend" / "anything.log", FIELDS + "\n")
    assert inspect_log_file(bare).kind is LogKind.SMTP_SEND
    named = write(tmp_path / "MSGTRK20240101-1.LOG", "#Fields: date-time,event-id\n")
    assert inspect_log_file(named).kind is LogKind.MESSAGE_TRACKING


def test_release_from_version() -> None:
    assert [exchange_release(v) for v in ("8.3.83.6", "14.0.0.0", "15.01.2375.007")] == [
        "2007",
        "2010",
        "2016",
    ]
    assert exchange_release("15.02.1544.004") == "2019" and exchange_release("x") is None


def test_2007_quoted_banner_keeps_its_commas(exchange_tree: Path) -> None:
    rows = list(read_protocol_log(exchange_tree / "Hub/ProtocolLog/SmtpReceive"))
    assert rows[1].data == (
        "220 EX07.contoso.com Microsoft ESMTP MAIL Service ready at Thu, 21 Feb 2019 10:00:00 +0000"
    )
    assert (rows[1].event, rows[1].context, rows[1].sequence_number) == (">", "", 1)
    assert rows[2].context == "Remote"
    assert rows[1].timestamp == datetime(2019, 2, 21, 10, 0, 0, 10_000, tzinfo=UTC)


def test_2010_unquoted_commas_in_the_last_field_stay_in_it(exchange_tree: Path) -> None:
    rows = list(read_protocol_log(exchange_tree / "Hub/ProtocolLog/SmtpSend"))
    assert len(rows) == 12
    assert rows[8].context == TLS and rows[8].data == ""
    assert rows[9].context == "451 5.7.3 Cannot achieve Exchange Server authentication"
    assert [r.data for r in rows[4:8]] == [
        "250-EX02.contoso.com Hello [10.1.0.11]",
        "250-SIZE",
        "250-PIPELINING",
        "250 XXXXXXXA",
    ]
    assert rows[0].local_endpoint == "" and rows[1].local_endpoint == "10.1.0.11:41234"
    assert rows[3].location.endswith("SEND20110301-1.LOG:9")


def test_2013_columns_follow_the_fields_line(exchange_tree: Path) -> None:
    rows = list(read_protocol_log(exchange_tree / "FrontEnd"))
    assert [(r.session_id, r.event, r.sequence_number) for r in rows] == [
        ("08DB03AA00000001", "+", 0),
        ("08DB03AA00000001", "<", 1),
        ("08DB03AA00000001", "-", 2),
    ]
    assert rows[1].connector_id == "EX13\\Default Frontend EX13"
    assert rows[1].data == "EHLO client.example" and rows[2].context == "Local"
    assert rows[0].line == 6  # the BOM does not hide the header


def test_truncated_last_line_is_dropped_and_counted_not_misread(tmp_path: Path) -> None:
    cut = RECV_2007 + "2019-02-21T10:00:01.000Z,EX07\\Default EX07,08D697E1A2B3C4D5,3,10.0.0.7"
    path = write(tmp_path / "RECV20190221-3.LOG", cut)
    rows = list(read_protocol_log(path))
    assert [r.sequence_number for r in rows] == [0, 1, 2]


def test_quoted_value_with_line_break_is_one_row(tmp_path: Path) -> None:
    text = "\r\n".join(
        [
            FIELDS,
            't,c,s,0,l,r,*,"first line',
            'second line",ctx',
            "t,c,s,1,l,r,-,,Local",
            "",
        ]
    )
    rows = list(read_protocol_log(write(tmp_path / "SmtpReceive" / "x.log", text)))
    assert [(r.data, r.context, r.line) for r in rows] == [
        ("first line\nsecond line", "ctx", 2),
        ("", "Local", 4),
    ]


def test_reader_round_trips_what_the_writer_wrote(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2024, 5, 1, tzinfo=UTC))
    log = ProtocolLog.receive(tmp_path, clock=clock)
    session = log.session("EX02\\Default EX02", "10.2.0.11:25", "10.1.0.11:41234")
    session.connect()
    session.sent('220 EX02 ready at Wed, 1 May 2024 "quoted"')
    session.received("EHLO EX01")
    session.sent(["250-EX02 Hello [10.1.0.11]", "250 CHUNKING"])
    session.info(TLS, "")
    session.disconnect("Local")
    log.close()
    rows = list(read_protocol_log(tmp_path))
    assert [(r.event, r.data, r.context) for r in rows] == [
        ("+", "", ""),
        (">", '220 EX02 ready at Wed, 1 May 2024 "quoted"', ""),
        ("<", "EHLO EX01", ""),
        (">", "250-EX02 Hello [10.1.0.11]", ""),
        (">", "250 CHUNKING", ""),
        ("*", TLS, ""),
        ("-", "", "Local"),
    ]
    assert {r.session_id for r in rows} == {session.session_id}
    assert [r.sequence_number for r in rows] == list(range(7))


def _interleaved(tmp_path: Path) -> Path:
    clock = ManualClock(datetime(2024, 5, 1, tzinfo=UTC))
    log = ProtocolLog.receive(tmp_path, clock=clock)
    a = log.session("EX02\\Default EX02", "l:25", "a:1")
    b = log.session("EX02\\Default EX02", "l:25", "b:1")
    c = log.session("EX02\\Default EX02", "l:25", "c:1")
    a.connect()
    b.connect()
    c.connect()
    b.received("EHLO b")
    a.received("EHLO a")
    b.disconnect("Remote")
    c.received("EHLO c")  # c never disconnects: the log ends first
    a.disconnect("Local")
    log.close()
    return tmp_path


def test_sessions_are_emitted_at_their_disconnect_row(tmp_path: Path) -> None:
    sessions = list(group_sessions(read_protocol_log(_interleaved(tmp_path))))
    assert [(s.remote_endpoint, s.complete, s.lines("<")) for s in sessions] == [
        ("b:1", True, ["EHLO b"]),
        ("a:1", True, ["EHLO a"]),
        ("c:1", False, ["EHLO c"]),
    ]
    assert sessions[0].connector_id == "EX02\\Default EX02"
    assert sessions[0].kind is LogKind.SMTP_RECEIVE


def test_open_sessions_are_bounded_oldest_flushed_first(tmp_path: Path) -> None:
    sessions = list(group_sessions(read_protocol_log(_interleaved(tmp_path)), max_open_sessions=1))
    # a opens, b evicts a, c evicts b, then the late rows start new parts.
    assert all(len(s.rows) <= 2 for s in sessions)
    assert sum(len(s.rows) for s in sessions) == 8
    assert [s.remote_endpoint for s in sessions][:2] == ["a:1", "b:1"]


def test_long_sessions_are_emitted_in_parts(tmp_path: Path) -> None:
    sessions = list(
        group_sessions(read_protocol_log(_interleaved(tmp_path)), max_rows_per_session=2)
    )
    parts_of_a = [s for s in sessions if s.remote_endpoint == "a:1"]
    assert [(len(s.rows), s.complete, s.continued) for s in parts_of_a] == [
        (2, False, False),
        (1, True, True),
    ]


def test_a_session_that_crosses_a_file_rotation_is_one_session(tmp_path: Path) -> None:
    log = ProtocolLog.receive(
        tmp_path,
        clock=ManualClock(datetime(2024, 5, 1, tzinfo=UTC)),
        limits=LogLimits(max_file_size=700),
    )
    session = log.session("EX02\\Default EX02", "10.2.0.11:25", "10.1.0.11:41234")
    session.connect()
    for i in range(12):
        session.received(f"RCPT TO:<user{i}@contoso.com>")
    session.disconnect()
    log.close()
    assert len(list(tmp_path.iterdir())) > 2
    (whole,) = group_sessions(read_protocol_log(tmp_path))
    assert whole.complete and len(whole.rows) == 14
    assert [r.sequence_number for r in whole.rows] == list(range(14))


def test_tracking_rows_are_read_from_a_folder_tree(tmp_path: Path, exchange_tree: Path) -> None:
    log = MessageTrackingLog(
        exchange_tree / "MessageTracking", clock=ManualClock(datetime(2024, 5, 1, tzinfo=UTC))
    )
    for event in (TrackingEventId.RECEIVE, TrackingEventId.DEFER):
        log.log(event, TrackingSource.SMTP, message_id="<m@x>", recipients=["bob@x"])
    log.close()
    rows = list(read_tracking_rows(exchange_tree))
    assert [r.event_id for r in rows] == ["RECEIVE", "DEFER"]
    assert rows[1].path.endswith("MSGTRK20240501-1.LOG") and rows[1].line == 7
    deferred = list(read_tracking_rows(exchange_tree, TrackingQuery(event_id="DEFER")))
    assert deferred == rows[1:]
    assert list(read_protocol_log(exchange_tree / "MessageTracking")) == []


def test_twenty_megabytes_pass_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "SmtpReceive" / "RECV20240501-1.LOG"
    path.parent.mkdir()
    lines = [
        ",".join(
            [
                "2024-05-01T10:00:00.000Z",
                "EX02\\Default EX02",
                "{sid}",
                str(seq),
                "10.2.0.11:25",
                "10.1.0.11:41234",
                event,
                data,
                context,
            ]
        )
        for seq, (event, data, context) in enumerate(
            [
                ("+", "", ""),
                (">", '"220 EX02 ready at Wed, 1 May 2024 10:00:00 +0000"', ""),
                ("<", "EHLO EX01.contoso.com", ""),
                ("*", "", TLS),
                ("<", "MAIL FROM:<alice@contoso.com> SIZE=2048", ""),
                (">", "250 2.1.0 Sender OK", ""),
                ("-", "", "Local"),
            ]
        )
    ]
    session_text = "\r\n".join(lines) + "\r\n"
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(FIELDS + "\r\n")
        for n in range(0, 20_000_000 // len(session_text) + 1, 2):
            # two sessions interleaved row by row
            first, second = (session_text.replace("{sid}", f"{k:016X}") for k in (n, n + 1))
            for x, y in zip(first.splitlines(True), second.splitlines(True), strict=True):
                handle.write(x)
                handle.write(y)
    assert path.stat().st_size > 20_000_000

    # Measured in a child process: this process's high-water mark may
    # already be above anything the reader needs, which would hide a leak.
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    complete, growth_kib = map(int, result.stdout.split())
    assert complete == 20_000_000 // len(session_text) + 2
    # Holding the rows of 20 MB as objects would take well over 100 MB.
    assert growth_kib < 16 * 1024, f"memory grew {growth_kib} KiB while streaming 20 MB"


_MEASURE = """
import resource, sys
from sitemail.diagnose.logs import group_sessions, read_protocol_log
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
complete = sum(s.complete for s in group_sessions(read_protocol_log(sys.argv[1])))
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(complete, after - before)
"""


def test_rows_are_not_hashable_but_compare_by_value() -> None:
    row = ProtocolRow(["t"] * 9, "p", 1, LogKind.SMTP_SEND)
    assert row == ProtocolRow(["t"] * 9, "p", 1, LogKind.SMTP_SEND)
    with pytest.raises(TypeError):
        hash(row)
