"""Message tracking as administrators send it: Get-MessageTrackingLog | Export-Csv.

The shell writes the cmdlet's objects (property names, the culture's dates, the
``System.String[]`` of a multi-valued property that was not joined), not the log's
fields; the troubleshooter reads the export as it reads the log files."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.unit.diagnose.test_logs_offline import write

from sitemail.diagnose.logs.tracking import read_tracking_rows
from sitemail.diagnose.logs.tracking_export import (
    TYPE_NAME,
    field_name,
    is_tracking_export,
    parse_export_time,
)
from sitemail.diagnose.offline import troubleshoot_logs

# Exchange 2010 SP3's MessageTrackingEvent, in the order Export-Csv writes its properties.
PROPERTIES = [
    "RunspaceId",
    "Timestamp",
    "ClientIp",
    "ClientHostname",
    "ServerIp",
    "ServerHostname",
    "SourceContext",
    "ConnectorId",
    "Source",
    "EventId",
    "InternalMessageId",
    "MessageId",
    "Recipients",
    "RecipientStatus",
    "TotalBytes",
    "RecipientCount",
    "RelatedRecipientAddress",
    "Reference",
    "MessageSubject",
    "Sender",
    "ReturnPath",
    "MessageInfo",
    "MessageLatency",
    "MessageLatencyType",
    "EventData",
]

EVENTS = [
    # (Timestamp en-US, de-DE, EventId, Source, MessageId, Recipients, RecipientStatus)
    ("3/2/2026 9:00:00 AM", "02.03.2026 09:00:00", "DELIVER", "STOREDRIVER", "<a@contoso.com>",
     "bob@contoso.com", "System.String[]"),
    ("3/2/2026 9:00:05 AM", "02.03.2026 09:00:05", "FAIL", "QUEUE", "<b@contoso.com>",
     "carol@contoso.com", "550 4.4.7 QUEUE.Expired; message expired"),
    ("3/2/2026 1:00:05 PM", "02.03.2026 13:00:05", "FAIL", "QUEUE", "<c@contoso.com>",
     "dave@contoso.com;erin@contoso.com", "550 4.4.7 QUEUE.Expired; message expired"),
]  # fmt: skip


def export(path: Path, *, culture: int, type_line: bool, encoding: str = "ascii") -> Path:
    out = io.StringIO()
    if type_line:
        out.write(f"#TYPE {TYPE_NAME}\r\n")
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(PROPERTIES)
    for event in EVENTS:
        values = dict.fromkeys(PROPERTIES, "")
        values.update(
            RunspaceId="5d2f6b1e-0c8e-4b43-9f0e-2b6b0f1d7a10",
            Timestamp=event[culture],
            ServerHostname="EX-NY1",
            ServerIp="10.1.0.11",
            EventId=event[2],
            Source=event[3],
            MessageId=event[4],
            Recipients=event[5],
            RecipientStatus=event[6],
            Reference="System.String[]",
            Sender="alice@contoso.com",
            MessageSubject="Quarterly report, final",
            TotalBytes="5120",
            RecipientCount=str(event[5].count("@")),
        )
        writer.writerow([values[p] for p in PROPERTIES])
    data = out.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        data.encode(encoding) if encoding != "utf-16" else b"\xff\xfe" + data.encode("utf-16-le")
    )
    return path


@pytest.mark.parametrize(
    ("culture", "type_line", "encoding"),
    [(0, True, "ascii"), (1, False, "utf-8-sig"), (0, True, "utf-16")],
    ids=["en-US", "de-DE no type line", "Out-File UTF-16"],
)
def test_an_export_reads_as_the_events_it_holds(
    tmp_path: Path, culture: int, type_line: bool, encoding: str
) -> None:
    path = export(
        tmp_path / "tracking.csv", culture=culture, type_line=type_line, encoding=encoding
    )
    assert is_tracking_export(path)
    entries = list(read_tracking_rows([tmp_path]))
    assert [(e.event_id, e.message_id) for e in entries] == [(e[2], e[4]) for e in EVENTS]
    assert entries[0].timestamp == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert entries[2].timestamp == datetime(2026, 3, 2, 13, 0, 5, tzinfo=UTC)
    # A joined list is split; the placeholder of an unjoined one reads as nothing.
    assert entries[2].recipient_address == ("dave@contoso.com", "erin@contoso.com")
    assert entries[0].recipient_status == () and entries[0].reference == ""
    assert entries[1].recipient_status == ("550 4.4.7 QUEUE.Expired; message expired",)
    assert entries[1].sender_address == "alice@contoso.com" and entries[1].total_bytes == 5120
    assert entries[1].message_subject == "Quarterly report, final"


def test_the_troubleshooter_finds_in_an_export_what_it_finds_in_the_logs(tmp_path: Path) -> None:
    write(tmp_path / "org")  # hub-to-hub traffic: the organization is contoso.com
    export(tmp_path / "org" / "tracking-EX-NY1.csv", culture=0, type_line=True)
    report = troubleshoot_logs([tmp_path / "org"])
    assert [f.cause for f in report.findings] == ["messages-expired"]


def test_other_csv_files_and_the_log_files_themselves_are_not_exports(tmp_path: Path) -> None:
    other = tmp_path / "users.csv"
    other.write_text('"Name","Mail"\r\n"Alice","alice@contoso.com"\r\n')
    assert not is_tracking_export(other)
    log = tmp_path / "MSGTRK2026030209-1.LOG"
    log.write_text("#Software: Microsoft Exchange Server\r\n#Fields: date-time,event-id\r\n")
    assert not is_tracking_export(log)
    assert list(read_tracking_rows([other])) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12/6/2026 10:00:01 PM", datetime(2026, 12, 6, 22, 0, 1, tzinfo=UTC)),
        ("25/12/2026 08:00:00", datetime(2026, 12, 25, 8, 0, tzinfo=UTC)),
        ("06.12.2026 10:00:01", datetime(2026, 12, 6, 10, 0, 1, tzinfo=UTC)),
        ("2026-12-06T10:00:01.1234567Z", datetime(2026, 12, 6, 10, 0, 1, 123456, tzinfo=UTC)),
    ],
)
def test_the_shells_cultures_write_times_that_read_back(text: str, expected: datetime) -> None:
    assert parse_export_time(text) == expected


def test_property_names_map_onto_the_logs_fields() -> None:
    assert [
        field_name(p) for p in ("ClientIp", "EventId", "Sender", "Recipients", "Timestamp")
    ] == [
        "client-ip",
        "event-id",
        "sender-address",
        "recipient-address",
        "date-time",
    ]
