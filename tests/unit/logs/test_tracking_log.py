"""Message tracking log: header, rows, reading 2007/2010/2013 files, search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sitemail.clock import ManualClock
from sitemail.mailflow.tracking_log import (
    TRACKING_LOG_FIELDS,
    MessageTrackingLog,
    TrackingEntry,
    TrackingEventId,
    TrackingQuery,
    TrackingSource,
    read_tracking_file,
    read_tracking_log,
    search_tracking_log,
    tracking_log_dir,
)

START = datetime(2016, 4, 5, 0, 0, 2, 52_000, tzinfo=UTC)
FIELDS_2010 = (
    "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,"
    "connector-id,source,event-id,internal-message-id,message-id,recipient-address,"
    "recipient-status,total-bytes,recipient-count,related-recipient-address,reference,"
    "message-subject,sender-address,return-path,message-info,directionality,tenant-id,"
    "original-client-ip,original-server-ip,custom-data"
)


def test_field_list_is_the_2010_one_exactly() -> None:
    assert ",".join(TRACKING_LOG_FIELDS) == FIELDS_2010


def test_a_cross_site_send_row_is_written_in_the_2010_shape(tmp_path: Path) -> None:
    log = MessageTrackingLog(tmp_path, clock=ManualClock(START))
    log.log(
        TrackingEventId.SEND,
        TrackingSource.SMTP,
        message_id="<m1@EX01.contoso.com>",
        sender_address="alice@contoso.com",
        recipients=["bob@contoso.com", "carol@contoso.com"],
        recipient_status=["250 2.1.5 Recipient OK", "250 2.1.5 Recipient OK"],
        server_hostname="EX02.contoso.com",
        connector_id="Intra-Organization SMTP Send Connector",
        internal_message_id="1234",
        total_bytes=2048,
        message_subject="Quarterly figures, draft",
    )
    log.close()
    (path,) = tmp_path.iterdir()
    assert path.name == "MSGTRK20160405-1.LOG"
    assert path.read_bytes().decode() == (
        "#Software: Microsoft Exchange Server\r\n"
        "#Version: 14.0.0.0\r\n"
        "#Log-type: Message Tracking Log\r\n"
        "#Date: 2016-04-05T00:00:02.052Z\r\n"
        f"#Fields: {FIELDS_2010}\r\n"
        "2016-04-05T00:00:02.052Z,,,,EX02.contoso.com,,Intra-Organization SMTP Send Connector,"
        "SMTP,SEND,1234,<m1@EX01.contoso.com>,bob@contoso.com;carol@contoso.com,"
        "250 2.1.5 Recipient OK;250 2.1.5 Recipient OK,2048,2,,,"
        '"Quarterly figures, draft",alice@contoso.com,,,,,,,\r\n'
    )


def test_written_entries_read_back_equal(tmp_path: Path) -> None:
    clock = ManualClock(START)
    log = MessageTrackingLog(tmp_path, clock=clock)
    written = [
        log.log(
            TrackingEventId.RECEIVE,
            TrackingSource.STOREDRIVER,
            message_id="<m1@x>",
            sender_address="alice@contoso.com",
            recipients=["bob@contoso.com"],
            source_context='MDB:1, Mailbox:2, "quoted"',
        ),
        log.log(
            TrackingEventId.FAIL,
            TrackingSource.ROUTING,
            message_id="<m1@x>",
            recipients=["carol@contoso.com"],
            recipient_status=["550 5.1.1 RESOLVER.ADR.ExRecipNotFound; not found"],
        ),
    ]
    log.close()
    read = list(read_tracking_log(tmp_path))
    assert read == written
    assert [e.line for e in read] == [6, 7]
    assert read[1].recipient_status == ("550 5.1.1 RESOLVER.ADR.ExRecipNotFound; not found",)


def test_unknown_detail_fields_and_event_ids_are_refused(tmp_path: Path) -> None:
    log = MessageTrackingLog(tmp_path, clock=ManualClock(START))
    with pytest.raises(TypeError, match="unknown tracking field"):
        log.log(TrackingEventId.SEND, TrackingSource.SMTP, subject="typo")
    with pytest.raises(ValueError):
        log.log("DELIVERED", TrackingSource.STOREDRIVER)  # type: ignore[arg-type]


def test_a_real_2010_row_with_bom_and_quoted_source_context_reads(tmp_path: Path) -> None:
    path = tmp_path / "MSGTRK20160405-1.LOG"
    path.write_bytes(
        b"\xef\xbb\xbf#Software: Microsoft Exchange Server\r\n#Version: 14.0.0.0\r\n"
        b"#Log-type: Message Tracking Log\r\n#Date: 2016-04-05T00:00:02.052Z\r\n"
        + f"#Fields: {FIELDS_2010}\r\n".encode()
        + b'2016-04-05T00:00:02.052Z,,,,,"MDB:61914740-3f1b-4ddb-94e0-557196870cfa, '
        b"Mailbox:279f077c-216f-4323-a9ee-48e50ffd3cad, Event:269492708, "
        b"MessageClass:IPM.Note.StorageQuotaWarning.Warning, "
        b'CreationTime:2016-04-05T00:00:01.022Z, ClientType:System",,STOREDRIVER,NOTIFYMAPI,'
        b",,,,,,,,,,,,,,,,S:ItemEntryId=00-00\r\n"
    )
    (entry,) = read_tracking_file(path)
    assert (entry.event_id, entry.source) == ("NOTIFYMAPI", "STOREDRIVER")
    assert entry.source_context.startswith("MDB:61914740-3f1b-4ddb-94e0-557196870cfa, Mailbox:")
    assert entry.custom_data == "S:ItemEntryId=00-00"
    assert entry.timestamp == START


def test_2007_and_2013_field_lists_map_by_name(tmp_path: Path) -> None:
    fields_2007 = ",".join(TRACKING_LOG_FIELDS[:21])
    fields_2013 = (
        "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,"
        "connector-id,source,event-id,internal-message-id,message-id,network-message-id,"
        "recipient-address,recipient-status,total-bytes,recipient-count,"
        "related-recipient-address,reference,message-subject,sender-address,return-path,"
        "message-info,directionality,tenant-id,original-client-ip,original-server-ip,"
        "custom-data,transport-traffic-type,log-id,schema-version"
    )
    (tmp_path / "MSGTRK20090301-1.LOG").write_text(
        "#Software: Microsoft Exchange Server\n#Version: 8.0.0.0\n"
        "#Log-type: Message Tracking Log\n#Date: 2009-03-01T10:00:00.000Z\n"
        f"#Fields: {fields_2007}\n"
        "2009-03-01T10:00:00.000Z,10.0.0.1,EX07,10.0.0.2,EX07B,08CA;1,Default EX07,SMTP,"
        "RECEIVE,42,<old@x>,bob@x,,100,1,,,hello,alice@x,alice@x,\n"
    )
    (tmp_path / "MSGTRK2023020110-1.LOG").write_text(
        "#Software: Microsoft Exchange Server\n#Version: 15.01.2375.007\n"
        "#Log-Type: Message Tracking Log\n#Date: 2023-02-01T10:00:00.000Z\n"
        f"#Fields: {fields_2013}\n"
        "2023-02-01T10:00:00.000Z,,,,EX16,,,SMTP,HARECEIVE,7,<new@x>,0a1b-net,bob@x;carol@x,"
        ",500,2,,,hi,alice@x,alice@x,,Originating,,,,,Email,abc-log,15.01.2375.007\n"
    )
    old, new = read_tracking_log(tmp_path)
    assert (old.message_id, old.recipient_address, old.total_bytes) == ("<old@x>", ("bob@x",), 100)
    assert old.return_path == "alice@x" and old.directionality == ""
    assert (new.event_id, new.recipient_address) == ("HARECEIVE", ("bob@x", "carol@x"))
    assert new.directionality == "Originating"
    assert dict(new.extra) == {
        "network-message-id": "0a1b-net",
        "transport-traffic-type": "Email",
        "log-id": "abc-log",
        "schema-version": "15.01.2375.007",
    }


def _sample_log(folder: Path) -> list[TrackingEntry]:
    clock = ManualClock(datetime(2024, 3, 1, 9, tzinfo=UTC))
    log = MessageTrackingLog(folder, clock=clock)
    made = []
    for day, (event, source, rcpt, server) in enumerate(
        [
            (TrackingEventId.RECEIVE, TrackingSource.STOREDRIVER, "bob@contoso.com", "EX01"),
            (TrackingEventId.SEND, TrackingSource.SMTP, "bob@contoso.com", "EX01.contoso.com"),
            (TrackingEventId.RECEIVE, TrackingSource.SMTP, "Bob@Contoso.com", "EX02.contoso.com"),
            (TrackingEventId.DELIVER, TrackingSource.STOREDRIVER, "bob@contoso.com", "EX02"),
        ]
    ):
        made.append(
            log.log(
                event,
                source,
                message_id="<m1@EX01.contoso.com>",
                sender_address="alice@contoso.com",
                recipients=[rcpt, "dave@contoso.com"] if day == 0 else [rcpt],
                server_hostname=server,
                message_subject="Quarterly figures",
            )
        )
        clock.advance(timedelta(days=1))
    made.append(
        log.log(
            TrackingEventId.RECEIVE,
            TrackingSource.SMTP,
            message_id="<other@x>",
            sender_address="eve@fabrikam.com",
            recipients=["bob@contoso.com"],
            server_hostname="EX02",
        )
    )
    log.close()
    return made


def test_search_filters_like_get_messagetrackinglog(tmp_path: Path) -> None:
    made = _sample_log(tmp_path)

    def search(**query: object) -> list[TrackingEntry]:
        return list(search_tracking_log(tmp_path, TrackingQuery(**query)))  # type: ignore[arg-type]

    assert search() == made
    assert search(message_id="m1@EX01.contoso.com") == made[:4]
    assert search(message_id="<M1@ex01.contoso.com>") == made[:4]
    assert search(event_id="receive") == [made[0], made[2], made[4]]
    assert search(event_id="RECEIVE", source="SMTP") == [made[2], made[4]]
    assert search(sender="ALICE@contoso.com") == made[:4]
    assert search(recipients=("dave@contoso.com", "nobody@x")) == [made[0]]
    assert search(recipients=("bob@contoso.com",)) == made
    assert search(server="EX02") == [made[2], made[3], made[4]]
    assert search(server="ex01.contoso.com") == made[:2]
    assert search(message_subject="quarterly") == made[:4]
    assert search(start=made[1].timestamp, end=made[2].timestamp) == made[1:3]
    assert search(start=made[4].timestamp + timedelta(seconds=1)) == []


def test_search_stops_at_result_size(tmp_path: Path) -> None:
    made = _sample_log(tmp_path)
    assert list(search_tracking_log(tmp_path, result_size=2)) == made[:2]
    assert list(search_tracking_log(tmp_path, result_size=None)) == made


def test_search_skips_files_named_for_days_outside_the_time_window(tmp_path: Path) -> None:
    made = _sample_log(tmp_path)
    # A file named for a day before Start is not opened: the row it holds
    # (misfiled on purpose, inside the window) must not be found.
    sample = (tmp_path / "MSGTRK20240304-1.LOG").read_bytes()
    (tmp_path / "MSGTRK20240101-1.LOG").write_bytes(sample)
    found = list(search_tracking_log(tmp_path, TrackingQuery(start=made[3].timestamp)))
    assert found == made[3:]
    everything = list(search_tracking_log(tmp_path, result_size=None))
    assert len(everything) == len(made) + 1


def test_tracking_folder_follows_the_design_layout(tmp_path: Path) -> None:
    assert tracking_log_dir(tmp_path) == tmp_path / "TransportRoles/Logs/MessageTracking"


def test_subjects_are_left_out_when_subject_logging_is_off(tmp_path: Path) -> None:
    log = MessageTrackingLog(tmp_path, clock=ManualClock(START), subject_logging_enabled=False)
    log.log(TrackingEventId.RECEIVE, TrackingSource.SMTP, message_subject="Salary review")
    log.close()
    (entry,) = read_tracking_log(tmp_path)
    assert entry.message_subject == ""
    assert "Salary" not in next(tmp_path.iterdir()).read_text()
