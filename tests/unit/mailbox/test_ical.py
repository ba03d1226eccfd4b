"""iCalendar out (item_content.calendar_ical) and back in (ical_parse.parse_event)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from sitemail.mailbox.ical_parse import MAX_ICAL, ICalError, parse_event
from sitemail.mailbox.item_content import calendar_ical
from sitemail.mailbox.item_records import (
    Attendee,
    CalendarData,
    FreeBusy,
    Pattern,
    Recurrence,
    ResponseType,
    Weekday,
    WeekIndex,
)
from sitemail.mailbox.records import Address

START = datetime(2030, 3, 18, 8, tzinfo=UTC)


def test_what_the_store_writes_it_reads_back() -> None:
    item = CalendarData(
        subject="Plan; review, with a very long subject line " + "x" * 80,
        body="Line one\nLine two; more",
        start=START,
        end=START + timedelta(hours=1),
        location="Room \u00e9",
        organizer=Address(name="Adam Fl", address="adam@contoso.com"),
        required=[Attendee(address="alice@contoso.com", name="Alice, Ny")],
        optional=[Attendee(address="larry@contoso.com", response=ResponseType.DECLINE)],
        free_busy=FreeBusy.TENTATIVE,
        recurrence=Recurrence(
            pattern=Pattern.RELATIVE_YEARLY,
            days_of_week=[Weekday.THURSDAY],
            week_index=WeekIndex.FOURTH,
            month=11,
            start_date=date(2030, 3, 18),
            end_date=date(2035, 1, 1),
        ),
        deleted=[datetime(2031, 11, 27, 8, tzinfo=UTC)],
        uid="UID-1",
        sequence=3,
    )
    text = calendar_ical(item, method="REQUEST", now=START)
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))  # folded
    event = parse_event(text)
    assert event.method == "REQUEST"
    back = event.record
    assert back.model_dump(exclude={"required", "optional"}) == item.model_dump(
        exclude={"required", "optional"}
    )
    assert [(a.address, a.name) for a in back.required] == [("alice@contoso.com", "Alice, Ny")]
    assert event.replies["larry@contoso.com"] is ResponseType.DECLINE
    assert event.replies["alice@contoso.com"] is ResponseType.NO_RESPONSE


def test_time_zones_dates_and_what_others_write() -> None:
    text = (
        "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VTIMEZONE\r\nTZID:Romance Standard Time\r\n"
        "END:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:abc\r\n"
        "DTSTART;TZID=Romance Standard Time:20300701T090000\r\n"
        "DTEND;TZID=Europe/Paris:20300701T100000\r\n"
        "SUMMARY:Summer\r\nRRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=4\r\nTRANSP:TRANSPARENT\r\n"
        'ORGANIZER;CN="Doe: Jane":mailto:jane@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n'
    )
    record = parse_event(text).record
    # 09:00 in Paris in July is 07:00 UTC.
    assert record.start == datetime(2030, 7, 1, 7, tzinfo=UTC)
    assert record.end == datetime(2030, 7, 1, 8, tzinfo=UTC)
    assert record.time_zone == "Romance Standard Time" and record.free_busy is FreeBusy.FREE
    assert record.organizer == Address(name="Doe: Jane", address="jane@example.com")
    assert record.recurrence is not None and record.recurrence.count == 4
    assert record.recurrence.days_of_week == [Weekday.MONDAY, Weekday.WEDNESDAY]
    all_day = parse_event(
        "BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20300704\r\nDTEND;VALUE=DATE:20300705\r\nEND:VEVENT"
    ).record
    assert all_day.all_day and all_day.end - all_day.start == timedelta(days=1)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "no VEVENT"),
        ("BEGIN:VEVENT\r\nSUMMARY:x\r\nEND:VEVENT\r\n", "no DTSTART"),
        ("BEGIN:VEVENT\r\nDTSTART:2030-01-01\r\nEND:VEVENT\r\n", "not a date-time"),
        ("BEGIN:VEVENT\r\nDTSTART;TZID=Mars/Olympus:20300101T000000\r\nEND:VEVENT", "time zone"),
        ("BEGIN:VEVENT\r\nDTSTART:20300101T000000Z\r\nRRULE:FREQ=HOURLY\r\nEND:VEVENT", "FREQ"),
        (
            "BEGIN:VEVENT\r\nDTSTART:20300101T000000Z\r\nDTEND:20200101T000000Z\r\nEND:VEVENT",
            "valid",
        ),
        ("X" * (MAX_ICAL + 1), "larger"),
    ],
)
def test_what_cannot_be_read_is_said(text: str, message: str) -> None:
    with pytest.raises(ICalError, match=message):
        parse_event(text)
