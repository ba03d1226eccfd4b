"""ActiveSync: appointments a device adds to or changes in the Calendar folder (MS-ASCAL).

A phone's calendar app sends a new appointment as a Sync ``Add`` with a
``ClientId`` and its ApplicationData, and an edit as a ``Change`` of its
ServerId.  The appointment is read back into a calendar record (times in
MS-ASCAL's compact UTC form, subject, location, body, busy status,
reminder, all-day, attendees, the recurrence types 0-6 with their range,
the zone from the ``TimeZone`` blob) and kept in the folder, as EWS or OWA
would keep it.  An Add is answered in ``Responses`` with the ServerId the
appointment now has (its UID in the folder); a Change replaces the record,
after which the store gives the item a new UID, which the device learns as
the old ServerId's Delete and the new one's Add (the model of
:mod:`.eas_calendar`).  ApplicationData that cannot be read is Status 6
(an error in client/server conversion), and nothing is kept of it.
"""

from __future__ import annotations

import base64
import binascii
import functools
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from sitemail.access.eas_calendar import time_zone_blob
from sitemail.mailbox.item_records import (
    Attendee,
    CalendarData,
    FreeBusy,
    Pattern,
    Recurrence,
    Weekday,
    WeekIndex,
)
from sitemail.mailbox.records import Address
from sitemail.mailbox.windows_zones import WINDOWS_ZONES
from sitemail.protocols.wbxml import Element

__all__ = ["DeviceDataError", "device_record"]

_BUSY = {"0": FreeBusy.FREE, "1": FreeBusy.TENTATIVE, "2": FreeBusy.BUSY, "3": FreeBusy.OOF}
_PATTERN = {
    "0": Pattern.DAILY,
    "1": Pattern.WEEKLY,
    "2": Pattern.ABSOLUTE_MONTHLY,
    "3": Pattern.RELATIVE_MONTHLY,
    "5": Pattern.ABSOLUTE_YEARLY,
    "6": Pattern.RELATIVE_YEARLY,
}
_DAYS = [
    (1, Weekday.SUNDAY),
    (2, Weekday.MONDAY),
    (4, Weekday.TUESDAY),
    (8, Weekday.WEDNESDAY),
    (16, Weekday.THURSDAY),
    (32, Weekday.FRIDAY),
    (64, Weekday.SATURDAY),
]
_WEEKS = {
    "1": WeekIndex.FIRST,
    "2": WeekIndex.SECOND,
    "3": WeekIndex.THIRD,
    "4": WeekIndex.FOURTH,
    "5": WeekIndex.LAST,
}
# TIME_ZONE_INFORMATION (MS-ASDTYPE 2.6.4): what tells zones apart, leaving out the names
# (Bias, StandardDate, StandardBias, DaylightDate, DaylightBias).
_RULE_BYTES = (slice(0, 4), slice(68, 88), slice(152, 172))


class DeviceDataError(ValueError):
    """The device's ApplicationData is not an appointment sitemail can keep."""


def _moment(text: str | None, what: str) -> datetime:
    try:
        return datetime.strptime((text or "").strip(), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise DeviceDataError(f"{what} is not a compact UTC time") from None


@functools.lru_cache(maxsize=64)
def _zone_of_blob(blob: str, year: int) -> str:
    """The Windows zone whose rule the device's TimeZone blob gives (UTC when none does)."""
    try:
        given = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return "UTC"
    if len(given) != 172:
        return "UTC"
    wanted = [given[s] for s in _RULE_BYTES]
    for windows_id in WINDOWS_ZONES:
        mine = base64.b64decode(time_zone_blob(windows_id, year))
        if [mine[s] for s in _RULE_BYTES] == wanted:
            return windows_id
    return "UTC"


def _int(data: Element, name: str) -> int | None:
    text = (data.findtext(name) or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise DeviceDataError(f"{name} is not a number") from None


def _recurrence(element: Element, start: datetime) -> Recurrence:
    kind = (element.findtext("Calendar:Type") or "").strip()
    if kind not in _PATTERN:
        raise DeviceDataError(f"recurrence type {kind[:10]!r} is not one of MS-ASCAL's")
    mask = _int(element, "Calendar:DayOfWeek") or 0
    until = element.findtext("Calendar:Until")
    week = (element.findtext("Calendar:WeekOfMonth") or "").strip()
    try:
        return Recurrence(
            pattern=_PATTERN[kind],
            interval=_int(element, "Calendar:Interval") or 1,
            days_of_week=[day for bit, day in _DAYS if mask & bit],
            day_of_month=_int(element, "Calendar:DayOfMonth"),
            week_index=_WEEKS.get(week),
            month=_int(element, "Calendar:MonthOfYear"),
            start_date=start.date(),
            end_date=_moment(until, "Until").date() if until else None,
            count=_int(element, "Calendar:Occurrences"),
        )
    except ValidationError as exc:
        raise DeviceDataError(f"the recurrence is not valid: {exc.errors()[0]['msg']}") from None


def device_record(
    data: Element, organizer: Address, old: CalendarData | None = None
) -> CalendarData:
    """The calendar record a device's ApplicationData makes (over ``old``'s, for a Change)."""
    fields: dict[str, Any] = old.model_dump() if old is not None else {"organizer": organizer}
    start_text, end_text = data.findtext("Calendar:StartTime"), data.findtext("Calendar:EndTime")
    if start_text is not None or old is None:
        fields["start"] = _moment(start_text, "StartTime")
    if end_text is not None or old is None:
        fields["end"] = _moment(end_text, "EndTime")
    for name, key in (("Calendar:Subject", "subject"), ("Calendar:Location", "location")):
        text = data.findtext(name)
        if text is not None:
            fields[key] = text
    body = data.findtext("AirSyncBase:Body/AirSyncBase:Data")
    if body is None:
        body = data.findtext("Calendar:Body")  # EAS 2.5's
    if body is not None:
        fields["body"], fields["body_html"] = body, False
    busy = data.findtext("Calendar:BusyStatus")
    if busy is not None:
        fields["free_busy"] = _BUSY.get(busy.strip(), FreeBusy.BUSY)
    if data.findtext("Calendar:AllDayEvent") is not None:
        fields["all_day"] = data.findtext("Calendar:AllDayEvent") == "1"
    if data.findtext("Calendar:Reminder") is not None:
        fields["reminder_minutes"] = _int(data, "Calendar:Reminder")
    uid = (data.findtext("Calendar:UID") or "").strip()
    if uid:
        fields["uid"] = uid[:255]
    blob = data.findtext("Calendar:TimeZone")
    if blob:
        fields["time_zone"] = _zone_of_blob(blob.strip(), fields["start"].year)
    people = data.find("Calendar:Attendees")
    if people is not None:
        fields["required"], fields["optional"] = [], []
        for person in people.elements("Attendee"):
            address = (person.findtext("Calendar:Email") or "").strip()
            if not address:
                continue
            who = Attendee(address=address, name=person.findtext("Calendar:Name") or "")
            optional = person.findtext("Calendar:AttendeeType") == "2"
            fields["optional" if optional else "required"].append(who)
    rule = data.find("Calendar:Recurrence")
    if rule is not None:
        fields["recurrence"] = _recurrence(rule, fields["start"])
    if fields["end"] < fields["start"]:
        raise DeviceDataError("EndTime is before StartTime")
    fields.setdefault("uid", f"{int(fields['start'].timestamp())}-{organizer.address}")
    try:
        return CalendarData.model_validate(fields)
    except ValidationError as exc:
        raise DeviceDataError(f"the appointment is not valid: {exc.errors()[0]['msg']}") from None
