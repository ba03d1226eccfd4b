"""EWS CalendarItem: reading one from a request, and writing one (or an occurrence) out.

:func:`parse_calendar` turns a ``<t:CalendarItem>`` of CreateItem, or the
partial one inside an UpdateItem's SetItemField, into the fields of a
:class:`~sitemail.mailbox.item_records.CalendarData` it sets; the caller
merges them over what the item had.  :class:`CalendarRendering` writes a
calendar item in the schema's element order (ItemType's, then
CalendarItemType's), only the properties the shape asks for: a single
item, a recurring master, or one occurrence of a series (an Exception when
it was modified), as FindItem's CalendarView and GetItem give them.

Times go out in UTC (``Z``), as Exchange writes them; times given without
an offset are in the request's TimeZoneContext (UTC without one); time
zones are named by their Windows id.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sitemail.access.ews_ids import change_key, folder_id, item_id, occurrence_id
from sitemail.access.ews_responses import Refused
from sitemail.access.ews_soap import sub, t
from sitemail.access.ews_time_zones import request_zone, time_zone_definition
from sitemail.mailbox.item_content import calendar_ical
from sitemail.mailbox.item_records import (
    Attendee,
    CalendarData,
    FreeBusy,
    ModifiedOccurrence,
    Pattern,
    Recurrence,
    ResponseType,
    TypedItem,
    Weekday,
    WeekIndex,
)
from sitemail.mailbox.recurrence import Occurrence, first_and_last, modified_occurrences
from sitemail.mailbox.windows_zones import zone_of

__all__ = [
    "CALENDAR_DEFAULT",
    "CALENDAR_DETAIL",
    "CALENDAR_FIELDS",
    "CalendarRendering",
    "all_day_span",
    "merge_calendar",
    "modified_occurrence",
    "parse_calendar",
    "parse_recurrence",
    "parse_time",
    "render_recurrence",
    "when",
]

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_RANGES = ("NoEndRecurrence", "EndDateRecurrence", "NumberedRecurrence")


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None, what: str) -> datetime:
    """An xs:dateTime of a request in UTC (without an offset: in the request's
    TimeZoneContext, UTC without one)."""
    value = (text or "").strip()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise Refused("ErrorInvalidValueForProperty", f"{what} is not a date and time.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone_of(request_zone()))
    return parsed.astimezone(UTC)


def _date(text: str | None, what: str) -> date:
    value = (text or "").strip()
    # xs:date may carry a zone (2030-01-07Z, 2030-01-07-05:00): the date is what counts.
    core = value[:10]
    try:
        return date.fromisoformat(core)
    except ValueError:
        raise Refused("ErrorInvalidValueForProperty", f"{what} is not a date.") from None


def _bool(text: str | None) -> bool:
    return (text or "").strip().lower() in ("true", "1")


def _enum(cls: Any, text: str | None, what: str) -> Any:
    try:
        return cls((text or "").strip())
    except ValueError:
        raise Refused("ErrorInvalidValueForProperty", f"{what} has no value {text!r}.") from None


def _attendees(parent: ET.Element) -> list[Attendee]:
    out: list[Attendee] = []
    for attendee in parent.findall(t("Attendee")):
        box = attendee.find(t("Mailbox"))
        address = (box.findtext(t("EmailAddress")) if box is not None else "") or ""
        if not address.strip():
            raise Refused("ErrorInvalidRecipients", "An attendee has no e-mail address.")
        name = (box.findtext(t("Name")) if box is not None else "") or ""
        response = attendee.findtext(t("ResponseType"))
        out.append(
            Attendee(
                address=address.strip()[:255],
                name=name.strip()[:255],
                response=_enum(ResponseType, response, "ResponseType")
                if response
                else ResponseType.UNKNOWN,
            )
        )
    return out


def parse_recurrence(element: ET.Element) -> Recurrence:
    """A <t:Recurrence> (pattern and range) as a record; refused if incomplete."""
    pattern = next((c for c in element if c.tag in {t(p.value) for p in Pattern}), None)
    span = next((c for c in element if c.tag in {t(r) for r in _RANGES}), None)
    if pattern is None or span is None:
        raise Refused(
            "ErrorInvalidRecurrence" if pattern is None else "ErrorRecurrenceHasNoOccurrence",
            "A recurrence needs one of the supported patterns and a range.",
        )
    fields: dict[str, Any] = {"pattern": Pattern(pattern.tag.rsplit("}", 1)[1])}
    if (interval := pattern.findtext(t("Interval"))) is not None:
        fields["interval"] = interval.strip()
    if (days := pattern.findtext(t("DaysOfWeek"))) is not None:
        fields["days_of_week"] = [_enum(Weekday, d, "DaysOfWeek") for d in days.split()]
    if (first := pattern.findtext(t("FirstDayOfWeek"))) is not None:
        fields["first_day_of_week"] = _enum(Weekday, first, "FirstDayOfWeek")
    if (day := pattern.findtext(t("DayOfMonth"))) is not None:
        fields["day_of_month"] = day.strip()
    if (index := pattern.findtext(t("DayOfWeekIndex"))) is not None:
        fields["week_index"] = _enum(WeekIndex, index, "DayOfWeekIndex")
    if (month := pattern.findtext(t("Month"))) is not None:
        if month.strip() not in _MONTHS:
            raise Refused("ErrorInvalidValueForProperty", f"Month has no value {month!r}.")
        fields["month"] = _MONTHS.index(month.strip()) + 1
    fields["start_date"] = _date(span.findtext(t("StartDate")), "StartDate")
    if span.tag == t("EndDateRecurrence"):
        fields["end_date"] = _date(span.findtext(t("EndDate")), "EndDate")
    elif span.tag == t("NumberedRecurrence"):
        fields["count"] = (span.findtext(t("NumberOfOccurrences")) or "").strip()
    try:
        return Recurrence.model_validate(fields)
    except ValueError as exc:
        raise Refused("ErrorInvalidRecurrence", f"The recurrence is not valid: {exc}.") from None


def parse_calendar(element: ET.Element) -> dict[str, Any]:
    """The CalendarData fields a <t:CalendarItem> sets (only those it carries)."""
    out: dict[str, Any] = {}
    for child in element:
        name = child.tag.rsplit("}", 1)[-1]
        text = child.text or ""
        if name == "Subject":
            out["subject"] = text[:255]  # Exchange keeps a subject's first 255 characters
        elif name == "Body":
            out["body"] = text
            out["body_html"] = child.get("BodyType", "Text") == "HTML"
        elif name == "ReminderIsSet":
            out["_reminder_set"] = _bool(text)
        elif name == "ReminderMinutesBeforeStart":
            out["_reminder_minutes"] = int(text) if text.strip().isdigit() else 15
        elif name == "Start":
            out["start"] = parse_time(text, "Start")
        elif name == "End":
            out["end"] = parse_time(text, "End")
        elif name == "IsAllDayEvent":
            out["all_day"] = _bool(text)
        elif name == "LegacyFreeBusyStatus":
            out["free_busy"] = _enum(FreeBusy, text, "LegacyFreeBusyStatus")
        elif name == "Location":
            out["location"] = text
        elif name == "RequiredAttendees":
            out["required"] = _attendees(child)
        elif name == "OptionalAttendees":
            out["optional"] = _attendees(child)
        elif name == "Recurrence":
            out["recurrence"] = parse_recurrence(child)
        elif name in ("StartTimeZone", "MeetingTimeZone"):
            zone = child.get("Id") or child.get("TimeZoneName")
            if zone:
                out["time_zone"] = zone
        elif name == "UID":
            out["uid"] = text.strip()
    return out


def merge_calendar(old: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Fields of ``old`` (a CalendarData dump) with ``changes`` (parse_calendar's) applied."""
    merged = {**old, **{k: v for k, v in changes.items() if not k.startswith("_")}}
    if not old and "time_zone" not in changes:
        # A new item without a StartTimeZone is kept in the request's TimeZoneContext.
        merged["time_zone"] = request_zone()
    if "_reminder_set" in changes or "_reminder_minutes" in changes:
        is_set = changes.get("_reminder_set", old.get("reminder_minutes") is not None)
        minutes = changes.get("_reminder_minutes", old.get("reminder_minutes") or 15)
        merged["reminder_minutes"] = minutes if is_set else None
    if merged.get("all_day") and "start" in merged and "end" in merged:
        merged["start"], merged["end"] = all_day_span(
            merged["start"], merged["end"], merged.get("time_zone") or "UTC"
        )
    return merged


def all_day_span(start: datetime, end: datetime, windows_id: str) -> tuple[datetime, datetime]:
    """An all-day event's start and end: midnights in its own time zone (in UTC).

    Exchange moves a start that is not a midnight back to the midnight
    before it and an end forward to the one after it, in the item's time
    zone, so that the event covers whole days where it is kept.
    """
    zone = zone_of(windows_id)
    first = datetime.combine(start.astimezone(zone).date(), time(0), zone)
    local_end = end.astimezone(zone)
    last_day = local_end.date()
    if local_end.time() != time(0) or last_day <= first.date():
        last_day += timedelta(days=1)
    last = datetime.combine(last_day, time(0), zone)
    return first.astimezone(UTC), last.astimezone(UTC)


# ---------------------------------------------------------------------- rendering

#: The properties written, in the schema's order (ItemType's, then CalendarItemType's).
CALENDAR_FIELDS = (
    "item:MimeContent",
    "item:ItemId",
    "item:ParentFolderId",
    "item:ItemClass",
    "item:Subject",
    "item:Sensitivity",
    "item:Body",
    "item:DateTimeReceived",
    "item:Size",
    "item:Importance",
    "item:IsDraft",
    "item:DateTimeSent",
    "item:DateTimeCreated",
    "item:ReminderIsSet",
    "item:ReminderMinutesBeforeStart",
    "item:DisplayCc",
    "item:DisplayTo",
    "item:HasAttachments",
    "item:LastModifiedTime",
    "calendar:UID",
    "calendar:RecurrenceId",
    "calendar:Start",
    "calendar:End",
    "calendar:OriginalStart",
    "calendar:IsAllDayEvent",
    "calendar:LegacyFreeBusyStatus",
    "calendar:Location",
    "calendar:IsMeeting",
    "calendar:IsCancelled",
    "calendar:IsRecurring",
    "calendar:MeetingRequestWasSent",
    "calendar:IsResponseRequested",
    "calendar:CalendarItemType",
    "calendar:MyResponseType",
    "calendar:Organizer",
    "calendar:RequiredAttendees",
    "calendar:OptionalAttendees",
    "calendar:Duration",
    "calendar:AppointmentSequenceNumber",
    "calendar:AppointmentState",
    "calendar:Recurrence",
    "calendar:FirstOccurrence",
    "calendar:LastOccurrence",
    "calendar:ModifiedOccurrences",
    "calendar:DeletedOccurrences",
    "calendar:StartTimeZone",
    "calendar:EndTimeZone",
)
#: BaseShape Default for a calendar item (approximate: the schema leaves it to the server).
CALENDAR_DEFAULT = frozenset(
    {
        "item:ItemId",
        "item:ParentFolderId",
        "item:ItemClass",
        "item:Subject",
        "item:Sensitivity",
        "item:Importance",
        "item:DateTimeCreated",
        "item:HasAttachments",
        "calendar:UID",
        "calendar:Start",
        "calendar:End",
        "calendar:IsAllDayEvent",
        "calendar:LegacyFreeBusyStatus",
        "calendar:Location",
        "calendar:IsMeeting",
        "calendar:IsCancelled",
        "calendar:IsRecurring",
        "calendar:CalendarItemType",
        "calendar:Organizer",
    }
)
#: What FindItem never returns (Exchange leaves bodies and lists to GetItem).
CALENDAR_DETAIL = frozenset(
    {
        "item:MimeContent",
        "item:Body",
        "calendar:RequiredAttendees",
        "calendar:OptionalAttendees",
        "calendar:Recurrence",
        "calendar:ModifiedOccurrences",
        "calendar:DeletedOccurrences",
        "calendar:FirstOccurrence",
        "calendar:LastOccurrence",
    }
)


def _duration(seconds: int) -> str:
    hours, rest = divmod(max(seconds, 0), 3600)
    minutes, secs = divmod(rest, 60)
    days, hours = divmod(hours, 24)
    text = f"P{days}D" if days else "P"
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    clock += f"{secs}S" if secs else ""
    return text + ("T" + clock if clock else ("" if days else "T0S"))


class CalendarRendering:
    """Writes calendar items of one mailbox; ``owner`` is the signed-in user's address."""

    def __init__(self, alias: str, owner: str) -> None:
        self.alias = alias
        self.owner = owner.lower()

    def render(
        self,
        parent: ET.Element,
        item: TypedItem,
        fields: set[str] | frozenset[str],
        occurrence: Occurrence | None = None,
    ) -> None:
        """One <t:CalendarItem>: the item, or ``occurrence`` of it (a recurring master's)."""
        data = item.calendar
        assert data is not None
        change = occurrence.modified if occurrence is not None else None
        element = sub(parent, t("CalendarItem"))
        start = occurrence.start if occurrence else data.start
        end = occurrence.end if occurrence else data.end
        if occurrence is None:
            kind = "RecurringMaster" if data.recurrence else "Single"
        else:
            kind = "Exception" if change is not None else "Occurrence"
        subject = change.subject if change and change.subject is not None else data.subject
        location = change.location if change and change.location is not None else data.location
        busy = change.free_busy if change and change.free_busy is not None else data.free_busy
        organizer = data.organizer.address.lower() if data.organizer else self.owner
        mine = organizer == self.owner
        writers: dict[str, Callable[[], object]] = {
            # The appointment as an iCalendar object (unverified: the exact form of
            # Exchange 2010's MimeContent for calendar items); not for an occurrence.
            "item:MimeContent": lambda: (
                occurrence is None
                and sub(
                    element,
                    t("MimeContent"),
                    base64.b64encode(calendar_ical(data, now=item.created_at).encode()).decode(),
                    CharacterSet="UTF-8",
                )
            ),
            "item:ItemId": lambda: sub(
                element,
                t("ItemId"),
                # A calendar item's id names its folder, as a message's does: Exchange's
                # ids change when an item moves (a cancelled meeting, to Deleted Items).
                Id=item_id(self.alias, item.id, item.folder_id)
                if occurrence is None
                else occurrence_id(self.alias, item.id, occurrence.index),
                ChangeKey=change_key(item.modseq),
            ),
            "item:ParentFolderId": lambda: sub(
                element,
                t("ParentFolderId"),
                Id=folder_id(self.alias, item.folder_id),
                ChangeKey=change_key(0),
            ),
            "item:ItemClass": lambda: sub(element, t("ItemClass"), "IPM.Appointment"),
            "item:Subject": lambda: sub(element, t("Subject"), subject),
            "item:Sensitivity": lambda: sub(element, t("Sensitivity"), "Normal"),
            "item:Body": lambda: sub(
                element,
                t("Body"),
                data.body,
                BodyType="HTML" if data.body_html else "Text",
                IsTruncated="false",
            ),
            "item:DateTimeReceived": lambda: sub(
                element, t("DateTimeReceived"), when(item.created_at)
            ),
            "item:Size": lambda: sub(element, t("Size"), str(len(data.model_dump_json()))),
            "item:Importance": lambda: sub(element, t("Importance"), "Normal"),
            "item:IsDraft": lambda: sub(element, t("IsDraft"), "false"),
            "item:DateTimeSent": lambda: sub(element, t("DateTimeSent"), when(item.created_at)),
            "item:DateTimeCreated": lambda: sub(
                element, t("DateTimeCreated"), when(item.created_at)
            ),
            "item:ReminderIsSet": lambda: sub(
                element, t("ReminderIsSet"), _tf(data.reminder_minutes is not None)
            ),
            "item:ReminderMinutesBeforeStart": lambda: sub(
                element, t("ReminderMinutesBeforeStart"), str(data.reminder_minutes or 0)
            ),
            "item:DisplayCc": lambda: sub(
                element, t("DisplayCc"), "; ".join(a.name or a.address for a in data.optional)
            ),
            "item:DisplayTo": lambda: sub(
                element, t("DisplayTo"), "; ".join(a.name or a.address for a in data.required)
            ),
            "item:HasAttachments": lambda: sub(element, t("HasAttachments"), "false"),
            "item:LastModifiedTime": lambda: sub(
                element, t("LastModifiedTime"), when(item.created_at)
            ),
            "calendar:UID": lambda: sub(element, t("UID"), data.uid),
            "calendar:RecurrenceId": lambda: (
                occurrence and sub(element, t("RecurrenceId"), when(occurrence.original_start))
            ),
            "calendar:Start": lambda: sub(element, t("Start"), when(start)),
            "calendar:End": lambda: sub(element, t("End"), when(end)),
            "calendar:OriginalStart": lambda: (
                occurrence and sub(element, t("OriginalStart"), when(occurrence.original_start))
            ),
            "calendar:IsAllDayEvent": lambda: sub(element, t("IsAllDayEvent"), _tf(data.all_day)),
            "calendar:LegacyFreeBusyStatus": lambda: sub(
                element, t("LegacyFreeBusyStatus"), busy.value
            ),
            "calendar:Location": lambda: sub(element, t("Location"), location),
            "calendar:IsMeeting": lambda: sub(element, t("IsMeeting"), _tf(data.is_meeting)),
            "calendar:IsCancelled": lambda: sub(element, t("IsCancelled"), _tf(data.cancelled)),
            "calendar:IsRecurring": lambda: sub(
                element, t("IsRecurring"), _tf(occurrence is not None)
            ),
            "calendar:MeetingRequestWasSent": lambda: sub(
                element, t("MeetingRequestWasSent"), _tf(data.meeting_request_sent)
            ),
            "calendar:IsResponseRequested": lambda: sub(
                element, t("IsResponseRequested"), _tf(data.is_meeting)
            ),
            "calendar:CalendarItemType": lambda: sub(element, t("CalendarItemType"), kind),
            "calendar:MyResponseType": lambda: sub(
                element, t("MyResponseType"), "Organizer" if mine else "Unknown"
            ),
            "calendar:Organizer": lambda: self._organizer(element, data),
            "calendar:RequiredAttendees": lambda: _attendee_list(
                element, "RequiredAttendees", data.required
            ),
            "calendar:OptionalAttendees": lambda: _attendee_list(
                element, "OptionalAttendees", data.optional
            ),
            "calendar:Duration": lambda: sub(
                element, t("Duration"), _duration(int((end - start).total_seconds()))
            ),
            "calendar:AppointmentSequenceNumber": lambda: sub(
                element, t("AppointmentSequenceNumber"), str(data.sequence)
            ),
            # AppointmentState bits: 1 meeting, 2 received, 4 cancelled (MS-OXOCAL).
            "calendar:AppointmentState": lambda: sub(
                element,
                t("AppointmentState"),
                str(
                    (1 if data.is_meeting else 0)
                    | (2 if not mine else 0)
                    | (4 if data.cancelled else 0)
                ),
            ),
            "calendar:Recurrence": lambda: occurrence is None and _recurrence(element, data),
            "calendar:FirstOccurrence": lambda: self._bound_occurrence(
                element, item, "FirstOccurrence", occurrence, first=True
            ),
            "calendar:LastOccurrence": lambda: self._bound_occurrence(
                element, item, "LastOccurrence", occurrence, first=False
            ),
            "calendar:ModifiedOccurrences": lambda: self._modified(element, item, occurrence),
            "calendar:DeletedOccurrences": lambda: occurrence is None and _deleted(element, data),
            "calendar:StartTimeZone": lambda: time_zone_definition(
                element, "StartTimeZone", data.time_zone, data.start.year
            ),
            "calendar:EndTimeZone": lambda: time_zone_definition(
                element, "EndTimeZone", data.time_zone, data.end.year
            ),
        }
        for path in CALENDAR_FIELDS:
            if path in fields or path == "item:ItemId":
                writers[path]()

    def _organizer(self, element: ET.Element, data: CalendarData) -> None:
        if data.organizer is None:
            return
        box = sub(sub(element, t("Organizer")), t("Mailbox"))
        if data.organizer.name:
            sub(box, t("Name"), data.organizer.name)
        sub(box, t("EmailAddress"), data.organizer.address)
        sub(box, t("RoutingType"), "SMTP")

    def _bound_occurrence(
        self,
        element: ET.Element,
        item: TypedItem,
        tag: str,
        occurrence: Occurrence | None,
        *,
        first: bool,
    ) -> None:
        data = item.calendar
        assert data is not None
        if occurrence is not None or data.recurrence is None:
            return
        chosen = first_and_last(data)[0 if first else 1]
        if chosen is not None:
            self._occurrence_element(sub(element, t(tag)), item, chosen)

    def _occurrence_element(self, element: ET.Element, item: TypedItem, occ: Occurrence) -> None:
        sub(
            element,
            t("ItemId"),
            Id=occurrence_id(self.alias, item.id, occ.index),
            ChangeKey=change_key(item.modseq),
        )
        sub(element, t("Start"), when(occ.start))
        sub(element, t("End"), when(occ.end))
        sub(element, t("OriginalStart"), when(occ.original_start))

    def _modified(
        self, element: ET.Element, item: TypedItem, occurrence: Occurrence | None
    ) -> None:
        data = item.calendar
        assert data is not None
        if occurrence is not None or not data.modified:
            return
        container = sub(element, t("ModifiedOccurrences"))
        for occ in modified_occurrences(data):
            self._occurrence_element(sub(container, t("Occurrence")), item, occ)


def _tf(value: bool) -> str:
    return "true" if value else "false"


def _attendee_list(element: ET.Element, tag: str, people: list[Attendee]) -> None:
    if not people:
        return
    container = sub(element, t(tag))
    for person in people:
        attendee = sub(container, t("Attendee"))
        box = sub(attendee, t("Mailbox"))
        if person.name:
            sub(box, t("Name"), person.name)
        sub(box, t("EmailAddress"), person.address)
        sub(box, t("RoutingType"), "SMTP")
        sub(attendee, t("ResponseType"), person.response.value)


def _recurrence(element: ET.Element, data: CalendarData) -> bool:
    if data.recurrence is not None:
        render_recurrence(element, data.recurrence, data.time_zone)
    return True


def _deleted(element: ET.Element, data: CalendarData) -> bool:
    if not data.deleted:
        return False
    container = sub(element, t("DeletedOccurrences"))
    for moment in sorted(data.deleted):
        sub(sub(container, t("DeletedOccurrence")), t("Start"), when(moment))
    return True


def zoned_date(day: date, windows_id: str) -> str:
    """An xs:date with its time zone's offset that day ("2016-01-01+01:00"), as Exchange
    writes a series' StartDate and EndDate: the dates are the master's local dates."""
    offset = datetime.combine(day, time(12), zone_of(windows_id)).utcoffset() or timedelta()
    if not offset:
        return f"{day.isoformat()}Z"
    minutes = int(offset / timedelta(minutes=1))
    sign = "+" if minutes > 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return f"{day.isoformat()}{sign}{hours:02d}:{rest:02d}"


def render_recurrence(element: ET.Element, rule: Recurrence, windows_id: str = "UTC") -> None:
    container = sub(element, t("Recurrence"))
    pattern = sub(container, t(rule.pattern.value))
    relative = rule.pattern in (Pattern.RELATIVE_MONTHLY, Pattern.RELATIVE_YEARLY)
    yearly = rule.pattern in (Pattern.ABSOLUTE_YEARLY, Pattern.RELATIVE_YEARLY)
    if not yearly:
        sub(pattern, t("Interval"), str(rule.interval))
    if rule.pattern is Pattern.WEEKLY or relative:
        sub(pattern, t("DaysOfWeek"), " ".join(d.value for d in rule.days_of_week))
    if relative and rule.week_index is not None:
        sub(pattern, t("DayOfWeekIndex"), rule.week_index.value)
    if rule.pattern in (Pattern.ABSOLUTE_MONTHLY, Pattern.ABSOLUTE_YEARLY):
        sub(pattern, t("DayOfMonth"), str(rule.day_of_month))
    if yearly and rule.month is not None:
        sub(pattern, t("Month"), _MONTHS[rule.month - 1])
    if rule.pattern is Pattern.WEEKLY:
        sub(pattern, t("FirstDayOfWeek"), rule.first_day_of_week.value)
    first = zoned_date(rule.start_date, windows_id)
    if rule.count is not None:
        span = sub(container, t("NumberedRecurrence"))
        sub(span, t("StartDate"), first)
        sub(span, t("NumberOfOccurrences"), str(rule.count))
    elif rule.end_date is not None:
        span = sub(container, t("EndDateRecurrence"))
        sub(span, t("StartDate"), first)
        sub(span, t("EndDate"), zoned_date(rule.end_date, windows_id))
    else:
        sub(sub(container, t("NoEndRecurrence")), t("StartDate"), first)


def modified_occurrence(
    data: CalendarData, occ: Occurrence, changes: dict[str, Any]
) -> CalendarData:
    """``data`` with occurrence ``occ`` changed by ``changes`` (an UpdateItem on its Id)."""
    previous = occ.modified
    start = changes.get("start", occ.start)
    end = changes.get("end", occ.end)
    if end < start:
        raise Refused(
            "ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is earlier than StartDate"
        )
    exception = ModifiedOccurrence(
        original_start=occ.original_start,
        start=start,
        end=end,
        subject=changes.get("subject", previous.subject if previous else None),
        location=changes.get("location", previous.location if previous else None),
        free_busy=changes.get("free_busy", previous.free_busy if previous else None),
    )
    others = [m for m in data.modified if m.original_start != occ.original_start]
    return data.model_copy(update={"modified": [*others, exception]})
