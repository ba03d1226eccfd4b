"""Reading the VEVENT of an iCalendar object (RFC 5545) into a calendar record.

Meeting requests arrive as ``text/calendar`` parts (METHOD:REQUEST, CANCEL,
REPLY); accepting one turns its VEVENT into a calendar item of the
attendee's calendar (:mod:`sitemail.access.ews_meeting_response`).  This
reads what Exchange and sitemail write: UID, SEQUENCE, SUMMARY, LOCATION,
DESCRIPTION, DTSTART/DTEND (UTC, a TZID of an IANA or Windows zone, or a
DATE for all-day events), ORGANIZER, ATTENDEE (ROLE, PARTSTAT, CN), the
busy status (X-MICROSOFT-CDO-BUSYSTATUS, else TRANSP), STATUS:CANCELLED, an
RRULE Exchange can express, and EXDATE.

The text is untrusted: it is read in bounded size, line by line; what does
not parse is an :class:`ICalError` naming it, never an exception of the
standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
from sitemail.mailbox.windows_zones import WINDOWS_ZONES

__all__ = ["MAX_ICAL", "ICalError", "ParsedEvent", "parse_event"]

#: Largest calendar object read.
MAX_ICAL = 256 * 1024
_DAYS = {
    "SU": Weekday.SUNDAY,
    "MO": Weekday.MONDAY,
    "TU": Weekday.TUESDAY,
    "WE": Weekday.WEDNESDAY,
    "TH": Weekday.THURSDAY,
    "FR": Weekday.FRIDAY,
    "SA": Weekday.SATURDAY,
}
_SETPOS = {
    "1": WeekIndex.FIRST,
    "2": WeekIndex.SECOND,
    "3": WeekIndex.THIRD,
    "4": WeekIndex.FOURTH,
    "-1": WeekIndex.LAST,
}
_PARTSTAT = {
    "ACCEPTED": ResponseType.ACCEPT,
    "DECLINED": ResponseType.DECLINE,
    "TENTATIVE": ResponseType.TENTATIVE,
    "NEEDS-ACTION": ResponseType.NO_RESPONSE,
}


class ICalError(ValueError):
    """The calendar object cannot be read."""


@dataclass
class ParsedEvent:
    method: str
    record: CalendarData
    #: PARTSTAT of each attendee, by lower-cased address (what a REPLY says).
    replies: dict[str, ResponseType] = field(default_factory=dict)


@dataclass(frozen=True)
class _Line:
    name: str
    params: dict[str, str]
    value: str


def _lines(text: str) -> list[_Line]:
    unfolded: list[str] = []
    for raw in text.replace("\r\n", "\n").split("\n"):
        if raw[:1] in (" ", "\t") and unfolded:
            unfolded[-1] += raw[1:]
        elif raw:
            unfolded.append(raw)
    out = []
    for line in unfolded:
        head, sep, value = _split_value(line)
        if not sep:
            continue
        name, *params = head.split(";")
        parsed: dict[str, str] = {}
        for param in params:
            key, _, pvalue = param.partition("=")
            parsed[key.upper()] = pvalue.strip('"')
        out.append(_Line(name.upper(), parsed, value))
    return out


def _split_value(line: str) -> tuple[str, str, str]:
    """NAME;PARAMS : VALUE, where a quoted parameter may hold a colon."""
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return line[:index], ":", line[index + 1 :]
    return line, "", ""


def _text(value: str) -> str:
    out, escaped = [], False
    for char in value:
        if escaped:
            out.append("\n" if char in "nN" else char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(char)
    return "".join(out)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(WINDOWS_ZONES.get(name, name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ICalError(f"unknown time zone {name[:60]!r}") from None


def _moment(line: _Line) -> tuple[datetime, bool]:
    """The time a DTSTART/DTEND/EXDATE gives (UTC) and whether it is a DATE."""
    value = line.value.strip().split(",")[0]
    try:
        if line.params.get("VALUE") == "DATE" or len(value) == 8:
            return datetime.combine(
                date(int(value[:4]), int(value[4:6]), int(value[6:8])), time(), UTC
            ), True
        moment = datetime.strptime(value.rstrip("Z"), "%Y%m%dT%H%M%S")
    except ValueError:
        raise ICalError(f"{line.name} {value[:40]!r} is not a date-time") from None
    if value.endswith("Z"):
        return moment.replace(tzinfo=UTC), False
    zone = _zone(line.params["TZID"]) if "TZID" in line.params else ZoneInfo("UTC")
    return moment.replace(tzinfo=zone).astimezone(UTC), False


def _address(line: _Line) -> Address:
    value = line.value.strip()
    address = value[7:] if value.lower().startswith("mailto:") else value
    return Address(name=line.params.get("CN", "")[:255], address=address[:255])


def _rrule(value: str, start: datetime, zone_name: str) -> Recurrence:
    parts = dict(p.partition("=")[::2] for p in value.split(";") if p)
    freq = parts.get("FREQ", "")
    days = [_DAYS[d[-2:]] for d in parts.get("BYDAY", "").split(",") if d[-2:] in _DAYS]
    setpos = parts.get("BYSETPOS")
    prefix = next((d[:-2] for d in parts.get("BYDAY", "").split(",") if d[:-2]), None)
    index = _SETPOS.get(setpos or prefix or "")
    fields: dict[str, object] = {
        "interval": int(parts.get("INTERVAL", "1")),
        "start_date": start.astimezone(_zone(zone_name)).date(),
    }
    if freq == "DAILY":
        fields["pattern"] = Pattern.DAILY
    elif freq == "WEEKLY":
        fields.update(pattern=Pattern.WEEKLY, days_of_week=days or [_weekday(start)])
    elif freq in ("MONTHLY", "YEARLY"):
        yearly = freq == "YEARLY"
        if index is not None and days:
            fields.update(
                pattern=Pattern.RELATIVE_YEARLY if yearly else Pattern.RELATIVE_MONTHLY,
                days_of_week=days,
                week_index=index,
            )
        else:
            fields.update(
                pattern=Pattern.ABSOLUTE_YEARLY if yearly else Pattern.ABSOLUTE_MONTHLY,
                day_of_month=int(parts.get("BYMONTHDAY", str(start.day))),
            )
        if yearly:
            fields["month"] = int(parts.get("BYMONTH", str(start.month)))
            fields["interval"] = 1
    else:
        raise ICalError(f"RRULE FREQ={freq[:20]} is not one Exchange keeps")
    if "COUNT" in parts:
        fields["count"] = int(parts["COUNT"])
    elif "UNTIL" in parts:
        until = parts["UNTIL"]
        fields["end_date"] = date(int(until[:4]), int(until[4:6]), int(until[6:8]))
    return Recurrence.model_validate(fields)


def _weekday(moment: datetime) -> Weekday:
    return list(_DAYS.values())[(moment.weekday() + 1) % 7]


def parse_event(text: str) -> ParsedEvent:
    """The first VEVENT of ``text`` as a calendar record, with the object's METHOD."""
    if len(text) > MAX_ICAL:
        raise ICalError(f"the calendar object is larger than {MAX_ICAL} characters")
    lines = _lines(text)
    method = next((line.value.strip().upper() for line in lines if line.name == "METHOD"), "")
    event: list[_Line] = []
    inside = False
    for line in lines:
        if line.name == "BEGIN" and line.value.upper() == "VEVENT":
            inside = True
        elif line.name == "END" and line.value.upper() == "VEVENT":
            break
        elif inside:
            event.append(line)
    if not event:
        raise ICalError("the calendar object has no VEVENT")
    props: dict[str, object] = {"subject": "", "location": "", "body": ""}
    required: list[Attendee] = []
    optional: list[Attendee] = []
    replies: dict[str, ResponseType] = {}
    deleted: list[datetime] = []
    rrule = ""
    busy = ""
    transparent = False
    zone_name = "UTC"
    try:
        for line in event:
            if line.name == "UID":
                props["uid"] = line.value.strip()[:255]
            elif line.name == "SEQUENCE":
                props["sequence"] = int(line.value)
            elif line.name == "SUMMARY":
                props["subject"] = _text(line.value)[:255]
            elif line.name == "LOCATION":
                props["location"] = _text(line.value)[:255]
            elif line.name == "DESCRIPTION":
                props["body"] = _text(line.value)
            elif line.name in ("DTSTART", "DTEND"):
                moment, is_date = _moment(line)
                props["start" if line.name == "DTSTART" else "end"] = moment
                if line.name == "DTSTART":
                    props["all_day"] = is_date
                    zone_name = line.params.get("TZID", "UTC")
            elif line.name == "ORGANIZER":
                props["organizer"] = _address(line)
            elif line.name == "ATTENDEE":
                who = _address(line)
                status = _PARTSTAT.get(line.params.get("PARTSTAT", ""), ResponseType.UNKNOWN)
                replies[who.address.lower()] = status
                person = Attendee(address=who.address, name=who.name, response=status)
                optional_role = line.params.get("ROLE") in ("OPT-PARTICIPANT", "NON-PARTICIPANT")
                (optional if optional_role else required).append(person)
            elif line.name == "RRULE":
                rrule = line.value
            elif line.name == "EXDATE":
                deleted.append(_moment(line)[0])
            elif line.name == "X-MICROSOFT-CDO-BUSYSTATUS":
                busy = line.value.strip().upper()
            elif line.name == "TRANSP":
                transparent = line.value.strip().upper() == "TRANSPARENT"
            elif line.name == "STATUS":
                props["cancelled"] = line.value.strip().upper() == "CANCELLED"
        if "start" not in props:
            raise ICalError("the VEVENT has no DTSTART")
        start = props["start"]
        assert isinstance(start, datetime)
        props.setdefault("end", start)
        props["free_busy"] = {
            "FREE": FreeBusy.FREE,
            "TENTATIVE": FreeBusy.TENTATIVE,
            "OOF": FreeBusy.OOF,
            "BUSY": FreeBusy.BUSY,
        }.get(busy, FreeBusy.FREE if transparent else FreeBusy.BUSY)
        if zone_name in WINDOWS_ZONES:
            props["time_zone"] = zone_name
        if rrule:
            props["recurrence"] = _rrule(rrule, start, zone_name)
            props["deleted"] = deleted
        record = CalendarData.model_validate({**props, "required": required, "optional": optional})
    except (ValueError, KeyError, IndexError) as exc:
        if isinstance(exc, ICalError):
            raise
        raise ICalError(f"the VEVENT is not valid: {str(exc)[:200]}") from None
    return ParsedEvent(method=method, record=record, replies=replies)
