"""Typed items in the mailbox store: calendar items, contacts and tasks as messages with records.

The database directly, then the store API over HTTPS with the store client
(the calls a Client Access server makes), a database of schema version 1
upgraded on opening, and the Calendar Attendant of the store service.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from tests.integration.test_store_api import Org, client_for, org, run, store_of_ny

from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.errors import Conflict, InvalidRequest, MessageNotFound
from sitemail.mailbox.item_content import calendar_ical
from sitemail.mailbox.item_records import (
    Attendee,
    CalendarData,
    ContactData,
    FreeBusy,
    ItemKind,
    Pattern,
    Recurrence,
    ResponseType,
    TaskData,
)
from sitemail.mailbox.records import Address
from sitemail.mailbox.schema import SCHEMA_VERSION

__all__ = ["org"]

START = datetime(2030, 1, 7, 9, tzinfo=UTC)


def _meeting(**changes: object) -> CalendarData:
    base = CalendarData(
        subject="Plan; review",
        start=START,
        end=START + timedelta(hours=1),
        location="Room 1",
        organizer=Address(name="Adam", address="adam@contoso.com"),
        required=[Attendee(address="alice@contoso.com", name="Alice")],
        uid="UID-1",
    )
    return base.model_copy(update=changes)


def test_items_are_messages_with_records(tmp_path: Path) -> None:
    db = StoreDatabase(tmp_path / "db.sqlite")
    item = db.create_typed("adam", "calendar", _meeting())
    assert item.kind is ItemKind.CALENDAR and item.calendar == _meeting()
    # A message of the Calendar folder, with content generated from the record.
    summary = db.get_message("adam", item.id)
    assert summary.subject == "Plan; review" and summary.folder_id == item.folder_id
    assert [a.address for a in summary.to] == ["alice@contoso.com"]
    raw = db.read_raw("adam", item.id).decode()
    assert "SUMMARY:Plan\\; review" in raw and "METHOD:PUBLISH" in raw
    assert db.get_folder("adam", "calendar").total == 1
    # Replacing the record: same id, new UID and modseq, the old UID expunged for IMAP.
    changed = db.replace_typed("adam", item.id, _meeting(location="Room 2"))
    assert changed.id == item.id and changed.uid > item.uid and changed.modseq > item.modseq
    assert db.get_typed("adam", item.id).calendar.location == "Room 2"  # type: ignore[union-attr]
    changes = db.changes("adam", "calendar", item.modseq)
    assert [e.uid for e in changes.changed] == [changed.uid] and changes.vanished == [item.uid]
    with pytest.raises(Conflict):
        db.replace_typed("adam", item.id, _meeting(), expected_modseq=item.modseq)
    with pytest.raises(InvalidRequest):
        db.replace_typed("adam", item.id, TaskData(subject="not a meeting"))
    # A copy carries the record; deleting for good drops record and content.
    copy = db.copy("adam", item.id, "inbox")
    assert db.typed_kinds("adam", [item.id, copy.message_id, 999]) == {
        item.id: ItemKind.CALENDAR,
        copy.message_id: ItemKind.CALENDAR,
    }
    db.delete("adam", copy.message_id, hard=True)
    db.delete("adam", item.id, hard=True)
    with pytest.raises(MessageNotFound):
        db.get_typed("adam", item.id)
    left = db._conn.execute("SELECT COUNT(*) FROM item_records").fetchone()[0]
    assert left == 0
    # A plain message is no typed item.
    placed = db.append("adam", "inbox", b"Subject: hi\r\n\r\nbody\r\n")
    with pytest.raises(MessageNotFound):
        db.get_typed("adam", placed.message_id)


def test_calendar_windows_read_only_the_items_they_touch(tmp_path: Path) -> None:
    db = StoreDatabase(tmp_path / "db.sqlite")
    db.create_typed("adam", "calendar", _meeting(subject="January"))
    later = START + timedelta(days=60)
    db.create_typed("adam", "calendar", _meeting(subject="March", start=later, end=later))
    weekly = Recurrence(
        pattern=Pattern.WEEKLY,
        days_of_week=["Monday"],  # type: ignore[list-item]
        start_date=date(2029, 12, 3),
        count=3,
    )
    old = datetime(2029, 12, 3, 9, tzinfo=UTC)
    db.create_typed(
        "adam", "calendar", _meeting(subject="Series", start=old, end=old, recurrence=weekly)
    )
    endless = weekly.model_copy(update={"count": None})
    db.create_typed(
        "adam", "calendar", _meeting(subject="Endless", start=old, end=old, recurrence=endless)
    )
    db.create_typed("adam", "contacts", ContactData(display_name="Jane", emails={"x": "j@x"}))

    def subjects(start: datetime, end: datetime) -> list[str]:
        found = db.calendar_items("adam", "calendar", start, end)
        return sorted(i.calendar.subject for i in found if i.calendar)

    assert subjects(START, START + timedelta(days=1)) == ["Endless", "January"]
    # The series ended on 17 December 2029 (its span says so without expanding it).
    assert subjects(datetime(2029, 12, 10, tzinfo=UTC), datetime(2029, 12, 11, tzinfo=UTC)) == [
        "Endless",
        "Series",
    ]
    assert subjects(later, later + timedelta(hours=1)) == ["Endless", "March"]
    page = db.list_typed("adam", "contacts", kind=ItemKind.CONTACT)
    assert page.total == 1 and page.items[0].contact is not None
    assert db.list_typed("adam", "calendar", kind=ItemKind.CONTACT).total == 0


def test_a_version_1_database_gains_the_item_table(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    StoreDatabase(path).close()
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER item_records_follow_contents")
    conn.execute("DROP TABLE item_records")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    db = StoreDatabase(path)
    assert db._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.create_typed("adam", "tasks", TaskData(subject="t")).task is not None


def test_the_store_api_carries_typed_items(org: Org) -> None:
    async def scenario() -> None:
        async with store_of_ny(org) as service, client_for(org, service) as store:
            item = await store.create_typed("alice", "calendar", ItemKind.CALENDAR, _meeting())
            assert item.calendar == _meeting()
            got = await store.get_typed("alice", item.id)
            assert got == item
            replaced = await store.replace_typed(
                "alice", item.id, _meeting(location="Hall"), expected_modseq=item.modseq
            )
            assert replaced.calendar is not None and replaced.calendar.location == "Hall"
            with pytest.raises(Conflict):
                await store.replace_typed("alice", item.id, _meeting(), expected_modseq=item.modseq)
            window = await store.calendar_items(
                "alice", "calendar", START - timedelta(hours=1), START + timedelta(hours=1)
            )
            assert [i.id for i in window] == [item.id]
            assert await store.typed_kinds("alice", [item.id, 12345]) == {
                item.id: ItemKind.CALENDAR
            }
            page = await store.list_typed("alice", "calendar", kind=ItemKind.CALENDAR)
            assert page.total == 1
            with pytest.raises(InvalidRequest, match="end"):
                await store.create_typed(
                    "alice",
                    "calendar",
                    ItemKind.CALENDAR,
                    _meeting().model_copy(update={"end": START - timedelta(hours=1)}),
                )

    run(scenario())


def _meeting_mail(method: str, item: CalendarData, to: str) -> bytes:
    """A meeting message as Mail Submission sends it (text/plain and text/calendar)."""
    ical = calendar_ical(item, method=method, now=START)
    return (
        f"From: Bob <bob@contoso.com>\r\nTo: {to}\r\nSubject: {item.subject}\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nSee the calendar part.\r\n"
        f"--b\r\nContent-Type: text/calendar; charset=utf-8; method={method}\r\n\r\n{ical}"
        "--b--\r\n"
    ).encode()


def test_the_calendar_attendant_files_requests_cancellations_and_replies(org: Org) -> None:
    async def scenario() -> None:
        async with store_of_ny(org) as service, client_for(org, service) as store:
            attendant = service.attendant
            assert attendant is not None
            request = _meeting(
                subject="Review",
                organizer=Address(name="Bob", address="bob@contoso.com"),
                uid="BOB-1",
                sequence=1,
            )
            await store.deliver("alice", "m1", _meeting_mail("REQUEST", request, "alice"))
            await attendant.idle()
            (placed,) = (await store.list_typed("alice", "calendar")).items
            assert placed.calendar is not None and placed.calendar.uid == "BOB-1"
            assert placed.calendar.free_busy is FreeBusy.TENTATIVE
            # An older copy of the request changes nothing; the update moves it.
            stale = request.model_copy(update={"sequence": 0, "location": "Old"})
            await store.deliver("alice", "m2", _meeting_mail("REQUEST", stale, "alice"))
            moved = request.model_copy(update={"sequence": 2, "location": "Hall"})
            await store.deliver("alice", "m3", _meeting_mail("REQUEST", moved, "alice"))
            await attendant.idle()
            (updated,) = (await store.list_typed("alice", "calendar")).items
            assert updated.calendar is not None and updated.calendar.location == "Hall"
            await store.deliver("alice", "m4", _meeting_mail("CANCEL", moved, "alice"))
            await attendant.idle()
            (cancelled,) = (await store.list_typed("alice", "calendar")).items
            assert cancelled.calendar is not None and cancelled.calendar.cancelled
            assert cancelled.calendar.free_busy is FreeBusy.FREE
            # Alice's own meeting: bob's reply records his answer on it.
            mine = _meeting(
                uid="ALICE-1",
                organizer=Address(address="alice@contoso.com"),
                required=[Attendee(address="bob@contoso.com")],
            )
            own = await store.create_typed("alice", "calendar", ItemKind.CALENDAR, mine)
            reply = mine.model_copy(
                update={
                    "required": [Attendee(address="bob@contoso.com", response=ResponseType.ACCEPT)]
                }
            )
            await store.deliver("alice", "m5", _meeting_mail("REPLY", reply, "alice"))
            await attendant.idle()
            answered = (await store.get_typed("alice", own.id)).calendar
            assert answered is not None
            assert [(a.address, a.response) for a in answered.required] == [
                ("bob@contoso.com", ResponseType.ACCEPT)
            ]
            # Plain mail is left alone.
            await store.deliver("alice", "m6", b"Subject: hi\r\n\r\nhello\r\n")
            await attendant.idle()
            assert (await store.list_typed("alice", "calendar")).total == 2

    run(scenario())
