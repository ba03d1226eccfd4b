"""ActiveSync Sync of the Calendar folder (MS-ASCAL) on the in-process Client Access servers.

The device is :mod:`tests.unit.access.test_eas_front`'s WBXML client; the
appointments are put in adam's calendar (EX-FL1) with the store's own calls,
as EWS or OWA would have.
"""

from __future__ import annotations

import base64
import struct
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from tests.unit.access.test_eas_front import Device, eas_lab
from tests.unit.access.test_web_front import browser, run

from sitemail.mailbox.item_records import (
    Attendee,
    CalendarData,
    FreeBusy,
    ModifiedOccurrence,
    Pattern,
    Recurrence,
    ResponseType,
    Weekday,
)
from sitemail.mailbox.records import Address
from sitemail.protocols.wbxml import el

START = datetime(2030, 3, 18, 8, tzinfo=UTC)  # 09:00 in Paris


def _series() -> CalendarData:
    return CalendarData(
        subject="Standup",
        start=START,
        end=START + timedelta(minutes=30),
        time_zone="Romance Standard Time",
        location="Room 1",
        reminder_minutes=10,
        organizer=Address(name="Adam", address="adam@contoso.com"),
        recurrence=Recurrence(
            pattern=Pattern.WEEKLY,
            days_of_week=[Weekday.MONDAY, Weekday.WEDNESDAY],
            start_date=date(2030, 3, 18),
            count=10,
        ),
        deleted=[START + timedelta(days=7)],
        modified=[
            ModifiedOccurrence(
                original_start=START + timedelta(days=2),
                start=START + timedelta(days=2, hours=3),
                end=START + timedelta(days=2, hours=4),
                subject="Late standup",
            )
        ],
        uid="SERIES-1",
    )


def _meeting() -> CalendarData:
    return CalendarData(
        subject="Offsite",
        start=datetime(2030, 4, 1, tzinfo=UTC),
        end=datetime(2030, 4, 2, tzinfo=UTC),
        all_day=True,
        free_busy=FreeBusy.OOF,
        body="Bring boots",
        organizer=Address(name="Adam", address="adam@contoso.com"),
        required=[
            Attendee(address="alice@contoso.com", name="Alice", response=ResponseType.ACCEPT)
        ],
        optional=[Attendee(address="larry@contoso.com")],
        uid="OFFSITE-1",
    )


def test_a_device_syncs_the_calendar_and_its_changes(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with eas_lab(tmp_path) as t, browser(t.lab) as s:
            db = t.lab.stores["EX-FL1"]
            series = db.create_typed("adam", "calendar", _series())
            meeting = db.create_typed("adam", "calendar", _meeting())
            url = t.lab.url("ex-fl1.contoso.com", "/Microsoft-Server-ActiveSync")
            device = Device(s, url, "adam", "14.1")
            hierarchy = await device.folder_sync()
            adds = {a.findtext("DisplayName"): a for a in hierarchy.findall("Changes/Add")}
            assert adds["Calendar"].findtext("Type") == "8"
            calendar = adds["Calendar"].findtext("ServerId") or ""
            first = await device.sync(calendar, "0")
            assert first.findtext("Status") == "1"
            full = await device.sync(calendar, first.findtext("SyncKey") or "")
            added = {
                a.findtext("ApplicationData/Calendar:UID"): a for a in full.findall("Commands/Add")
            }
            assert set(added) == {"SERIES-1", "OFFSITE-1"}
            standup = added["SERIES-1"]
            assert standup.findtext("ServerId") == f"{calendar}:{series.uid}"
            data = standup.find("ApplicationData")
            assert data is not None
            assert data.findtext("Calendar:Subject") == "Standup"
            assert data.findtext("Calendar:StartTime") == "20300318T080000Z"
            assert data.findtext("Calendar:EndTime") == "20300318T083000Z"
            assert data.findtext("Calendar:Location") == "Room 1"
            assert data.findtext("Calendar:Reminder") == "10"
            assert data.findtext("Calendar:BusyStatus") == "2"
            assert data.findtext("Calendar:MeetingStatus") == "0"
            assert data.findtext("Calendar:OrganizerEmail") == "adam@contoso.com"
            # Weekly (1), Monday 2 + Wednesday 8, ten times.
            assert [
                data.findtext(f"Calendar:Recurrence/Calendar:{n}")
                for n in ("Type", "Interval", "Occurrences", "DayOfWeek")
            ] == ["1", "1", "10", "10"]
            exceptions = data.findall("Calendar:Exceptions/Calendar:Exception")
            assert [e.findtext("Calendar:ExceptionStartTime") for e in exceptions] == [
                "20300325T080000Z",
                "20300320T080000Z",
            ]
            assert exceptions[0].findtext("Calendar:Deleted") == "1"
            assert exceptions[1].findtext("Calendar:Subject") == "Late standup"
            assert exceptions[1].findtext("Calendar:StartTime") == "20300320T110000Z"
            # Paris: UTC+1, daylight time from the last Sunday of March at 02:00.
            zone = base64.b64decode(data.findtext("Calendar:TimeZone") or "")
            assert len(zone) == 172 and struct.unpack("<i", zone[:4]) == (-60,)
            assert struct.unpack("<8H", zone[152:168])[1:5] == (3, 0, 5, 2)
            offsite = added["OFFSITE-1"].find("ApplicationData")
            assert offsite is not None
            assert offsite.findtext("Calendar:AllDayEvent") == "1"
            assert offsite.findtext("Calendar:BusyStatus") == "3"
            assert offsite.findtext("Calendar:MeetingStatus") == "1"
            assert offsite.findtext("AirSyncBase:Body/AirSyncBase:Data") == "Bring boots"
            people = offsite.findall("Calendar:Attendees/Calendar:Attendee")
            assert [
                (p.findtext("Calendar:Email"), p.findtext("Calendar:AttendeeType")) for p in people
            ] == [("alice@contoso.com", "1"), ("larry@contoso.com", "2")]
            assert people[0].findtext("Calendar:AttendeeStatus") == "3"
            # Nothing new: no commands.
            key = full.findtext("SyncKey") or ""
            quiet = await device.sync(calendar, key)
            assert quiet.find("Commands") is None
            # The series changes on the server: the device gets the old one's Delete and the
            # new one's Add.
            moved = db.replace_typed(
                "adam", series.id, _series().model_copy(update={"location": "Room 9"})
            )
            changed = await device.sync(calendar, quiet.findtext("SyncKey") or "")
            assert [d.findtext("ServerId") for d in changed.findall("Commands/Delete")] == [
                f"{calendar}:{series.uid}"
            ]
            (again,) = changed.findall("Commands/Add")
            assert again.findtext("ServerId") == f"{calendar}:{moved.uid}"
            assert again.findtext("ApplicationData/Calendar:Location") == "Room 9"
            # The device deletes the offsite: it goes to Deleted Items.
            gone = await device.sync(
                calendar,
                changed.findtext("SyncKey") or "",
                el(
                    "AirSync:Commands",
                    el("AirSync:Delete", el("AirSync:ServerId", f"{calendar}:{meeting.uid}")),
                ),
            )
            assert gone.findtext("Status") == "1" and gone.find("Commands") is None
            assert [i.id for i in db.list_typed("adam", "calendar").items] == [series.id]
            assert [i.id for i in db.list_typed("adam", "deleteditems").items] == [meeting.id]
            # An EAS 12.1 device is told the collection's class.
            old = Device(s, url, "adam", "12.1")
            await old.folder_sync()
            first = await old.sync(calendar, "0")
            assert first.findtext("Class") == "Calendar"

    run(scenario())


def test_a_device_adds_and_changes_appointments(tmp_path: Path) -> None:
    # A phone's calendar app: a new appointment (a ClientId and its ApplicationData) is kept
    # in adam's calendar and answered with its ServerId; an edit replaces it, which the
    # device then sees as the old ServerId's Delete and the new one's Add.
    async def scenario() -> None:
        async with eas_lab(tmp_path) as t, browser(t.lab) as s:
            db = t.lab.stores["EX-FL1"]
            url = t.lab.url("ex-fl1.contoso.com", "/Microsoft-Server-ActiveSync")
            device = Device(s, url, "adam", "14.1")
            hierarchy = await device.folder_sync()
            adds = {a.findtext("DisplayName"): a for a in hierarchy.findall("Changes/Add")}
            calendar = adds["Calendar"].findtext("ServerId") or ""
            key = (await device.sync(calendar, "0")).findtext("SyncKey") or ""
            paris = base64.b64encode(struct.pack("<i", -60) + bytes(168)).decode()
            zone = (await device.sync(calendar, key)).findtext("SyncKey") or ""
            data = el(
                "AirSync:ApplicationData",
                el("Calendar:TimeZone", paris),
                el("Calendar:AllDayEvent", 0),
                el("AirSyncBase:Body", el("AirSyncBase:Type", 1), el("AirSyncBase:Data", "Q2")),
                el("Calendar:BusyStatus", 2),
                el("Calendar:StartTime", "20300401T120000Z"),
                el("Calendar:EndTime", "20300401T130000Z"),
                el("Calendar:Subject", "Lunch with Fiona"),
                el("Calendar:Location", "Cafe"),
                el("Calendar:Reminder", 15),
                el("Calendar:UID", "PHONE-1"),
                el(
                    "Calendar:Recurrence",
                    el("Calendar:Type", 1),
                    el("Calendar:Interval", 1),
                    el("Calendar:DayOfWeek", 2),
                    el("Calendar:Occurrences", 3),
                ),
            )
            added = await device.sync(
                calendar,
                zone,
                el(
                    "AirSync:Commands",
                    el("AirSync:Add", el("AirSync:ClientId", "c1"), data),
                    el(
                        "AirSync:Add",
                        el("AirSync:ClientId", "c2"),
                        el("AirSync:ApplicationData", el("Calendar:Subject", "No times")),
                    ),
                ),
            )
            replies = {r.findtext("ClientId"): r for r in added.findall("Responses/Add")}
            assert replies["c2"].findtext("Status") == "6"  # nothing kept of it
            assert replies["c1"].findtext("Status") == "1"
            (item,) = db.list_typed("adam", "calendar").items
            assert replies["c1"].findtext("ServerId") == f"{calendar}:{item.uid}"
            lunch = item.calendar
            assert lunch is not None and lunch.subject == "Lunch with Fiona"
            assert (lunch.start, lunch.end) == (
                datetime(2030, 4, 1, 12, tzinfo=UTC),
                datetime(2030, 4, 1, 13, tzinfo=UTC),
            )
            assert lunch.free_busy is FreeBusy.BUSY and lunch.reminder_minutes == 15
            assert lunch.body == "Q2" and lunch.uid == "PHONE-1"
            assert lunch.organizer is not None and lunch.organizer.address == "adam@contoso.com"
            assert lunch.recurrence is not None and lunch.recurrence.pattern is Pattern.WEEKLY
            assert lunch.recurrence.days_of_week == [Weekday.MONDAY]
            assert lunch.recurrence.count == 3
            assert added.find("Commands") is None  # its own Add is not sent back
            # The device moves it by an hour and makes it tentative.
            changed = await device.sync(
                calendar,
                added.findtext("SyncKey") or "",
                el(
                    "AirSync:Commands",
                    el(
                        "AirSync:Change",
                        el("AirSync:ServerId", f"{calendar}:{item.uid}"),
                        el(
                            "AirSync:ApplicationData",
                            el("Calendar:StartTime", "20300401T130000Z"),
                            el("Calendar:EndTime", "20300401T140000Z"),
                            el("Calendar:BusyStatus", 1),
                        ),
                    ),
                    el(
                        "AirSync:Change",
                        el("AirSync:ServerId", f"{calendar}:999"),
                        el("AirSync:ApplicationData", el("Calendar:Subject", "x")),
                    ),
                ),
            )
            (missing,) = changed.findall("Responses/Change")
            assert (missing.findtext("ServerId"), missing.findtext("Status")) == (
                f"{calendar}:999",
                "8",
            )
            (moved,) = db.list_typed("adam", "calendar").items
            assert moved.id == item.id and moved.calendar is not None
            assert moved.calendar.start == datetime(2030, 4, 1, 13, tzinfo=UTC)
            assert moved.calendar.free_busy is FreeBusy.TENTATIVE
            assert moved.calendar.subject == "Lunch with Fiona"  # what the Change left out stays
            assert [d.findtext("ServerId") for d in changed.findall("Commands/Delete")] == [
                f"{calendar}:{item.uid}"
            ]
            (again,) = changed.findall("Commands/Add")
            assert again.findtext("ServerId") == f"{calendar}:{moved.uid}"

    run(scenario())
