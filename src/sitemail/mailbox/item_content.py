"""The message content the store generates for a typed item: iCalendar, vCard, plain text.

A calendar item, contact or task is a message of its folder (see
:mod:`.item_records`), so it needs bytes that IMAP clients can read and
that the store's scanner summarises (subject, organizer, attendees).  The
content is derived from the record each time the record is written; it is
never parsed back (the record is the truth).  Also used for the iCalendar
part of meeting requests (METHOD:REQUEST).
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime, formataddr

from sitemail.mailbox.item_records import (
    CalendarData,
    ContactData,
    DistributionListData,
    ItemKind,
    ResponseType,
    TaskData,
)
from sitemail.mailbox.windows_zones import DayRule, year_rule

__all__ = ["ICAL_PRODID", "calendar_ical", "contact_vcard", "item_content"]

ICAL_PRODID = "-//sitemail//Exchange 2010 emulation//EN"
_PARTSTAT = {
    ResponseType.ACCEPT: "ACCEPTED",
    ResponseType.DECLINE: "DECLINED",
    ResponseType.TENTATIVE: "TENTATIVE",
}


def _escape(text: str) -> str:
    """RFC 5545 TEXT escaping."""
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "")
    )


def _fold(line: str) -> str:
    """Fold a content line at 75 octets (RFC 5545 3.1), not inside a UTF-8 sequence."""
    data = line.encode("utf-8")
    if len(data) <= 75:
        return line
    out: list[str] = []
    current = ""
    size = 0
    limit = 75
    for char in line:
        width = len(char.encode("utf-8"))
        if size + width > limit:
            out.append(current)
            current, size, limit = "", 0, 74  # continuation lines start with a space
        current += char
        size += width
    out.append(current)
    return "\r\n ".join(out)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


_ICAL_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def _ical_offset(minutes: int) -> str:
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def _zone_part(kind: str, rule: DayRule | None, before: int, after: int) -> list[str]:
    start = "16010101T000000"
    lines = [f"BEGIN:{kind}"]
    if rule is not None:
        hours, rest = divmod(int(rule.time.total_seconds()) // 60, 60)
        start = f"16010101T{hours:02d}{rest:02d}00"
    lines += [f"DTSTART:{start}", f"TZOFFSETFROM:{_ical_offset(before)}"]
    lines.append(f"TZOFFSETTO:{_ical_offset(after)}")
    if rule is not None:
        day = f"{rule.occurrence}{_ICAL_DAYS[rule.weekday]}"
        lines.append(f"RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY={day};BYMONTH={rule.month}")
    return [*lines, f"END:{kind}"]


def vtimezone(windows_id: str, year: int) -> list[str]:
    """The VTIMEZONE of a Windows zone, as Exchange writes one: TZID the Windows id, the
    year's standard and daylight rules as yearly RRULEs from 1601."""
    rule = year_rule(windows_id, year)
    summer = rule.standard + rule.daylight
    lines = ["BEGIN:VTIMEZONE", f"TZID:{_escape(windows_id)}"]
    if rule.daylight and rule.daylight_starts and rule.standard_starts:
        lines += _zone_part("STANDARD", rule.standard_starts, summer, rule.standard)
        lines += _zone_part("DAYLIGHT", rule.daylight_starts, rule.standard, summer)
    else:
        lines += _zone_part("STANDARD", None, rule.standard, rule.standard)
    return [*lines, "END:VTIMEZONE"]


def calendar_ical(item: CalendarData, *, method: str = "PUBLISH", now: datetime) -> str:
    """A VCALENDAR with the item's time zone and VEVENT (times in UTC; the pattern as an
    RRULE).  The VTIMEZONE tells clients the zone the item was made in (DavMail takes the
    user's zone from it)."""
    lines = [
        "BEGIN:VCALENDAR",
        f"PRODID:{ICAL_PRODID}",
        "VERSION:2.0",
        f"METHOD:{method}",
        *vtimezone(item.time_zone or "UTC", item.start.year),
        "BEGIN:VEVENT",
        f"UID:{_escape(item.uid)}",
        f"DTSTAMP:{_utc(now)}",
        f"SEQUENCE:{item.sequence}",
        f"SUMMARY:{_escape(item.subject)}",
        f"DTSTART:{_utc(item.start)}",
        f"DTEND:{_utc(item.end)}",
    ]
    if item.location:
        lines.append(f"LOCATION:{_escape(item.location)}")
    if item.body and not item.body_html:
        lines.append(f"DESCRIPTION:{_escape(item.body)}")
    if item.organizer is not None:
        name = f";CN={_param(item.organizer.name)}" if item.organizer.name else ""
        lines.append(f"ORGANIZER{name}:mailto:{item.organizer.address}")
    for role, people in (("REQ-PARTICIPANT", item.required), ("OPT-PARTICIPANT", item.optional)):
        for person in people:
            stat = _PARTSTAT.get(person.response, "NEEDS-ACTION")
            name = f";CN={_param(person.name)}" if person.name else ""
            lines.append(
                f"ATTENDEE;ROLE={role};PARTSTAT={stat};RSVP=TRUE{name}:mailto:{person.address}"
            )
    transp = "TRANSPARENT" if item.free_busy.value == "Free" else "OPAQUE"
    lines.append(f"TRANSP:{transp}")
    lines.append(f"X-MICROSOFT-CDO-BUSYSTATUS:{item.free_busy.value.upper()}")
    if item.cancelled:
        lines.append("STATUS:CANCELLED")
    rrule = _rrule(item)
    if rrule:
        lines.append(f"RRULE:{rrule}")
    lines += [f"EXDATE:{_utc(d)}" for d in item.deleted]
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"


def _param(value: str) -> str:
    return '"' + value.replace('"', "'") + '"'


_BYDAY = {
    "Sunday": "SU",
    "Monday": "MO",
    "Tuesday": "TU",
    "Wednesday": "WE",
    "Thursday": "TH",
    "Friday": "FR",
    "Saturday": "SA",
    "Day": "SU,MO,TU,WE,TH,FR,SA",
    "Weekday": "MO,TU,WE,TH,FR",
    "WeekendDay": "SA,SU",
}
_SETPOS = {"First": "1", "Second": "2", "Third": "3", "Fourth": "4", "Last": "-1"}


def _rrule(item: CalendarData) -> str:
    rule = item.recurrence
    if rule is None:
        return ""
    freq = {
        "DailyRecurrence": "DAILY",
        "WeeklyRecurrence": "WEEKLY",
        "AbsoluteMonthlyRecurrence": "MONTHLY",
        "RelativeMonthlyRecurrence": "MONTHLY",
        "AbsoluteYearlyRecurrence": "YEARLY",
        "RelativeYearlyRecurrence": "YEARLY",
    }[rule.pattern.value]
    parts = [f"FREQ={freq}", f"INTERVAL={rule.interval}"]
    if rule.days_of_week:
        parts.append("BYDAY=" + ",".join(_BYDAY[d.value] for d in rule.days_of_week))
    if rule.week_index is not None:
        parts.append(f"BYSETPOS={_SETPOS[rule.week_index.value]}")
    if rule.day_of_month is not None:
        parts.append(f"BYMONTHDAY={rule.day_of_month}")
    if rule.month is not None:
        parts.append(f"BYMONTH={rule.month}")
    if rule.count is not None:
        parts.append(f"COUNT={rule.count}")
    elif rule.end_date is not None:
        parts.append(f"UNTIL={rule.end_date:%Y%m%d}T235959Z")
    return ";".join(parts)


def contact_vcard(contact: ContactData) -> str:
    """The contact as a vCard 3.0 (RFC 2426)."""
    lines = [
        "BEGIN:VCARD",
        "VERSION:3.0",
        f"FN:{_escape(contact.name)}",
        f"N:{_escape(contact.surname)};{_escape(contact.given_name)};"
        f"{_escape(contact.middle_name)};;",
    ]
    if contact.company or contact.department:
        lines.append(f"ORG:{_escape(contact.company)};{_escape(contact.department)}")
    if contact.job_title:
        lines.append(f"TITLE:{_escape(contact.job_title)}")
    lines += [f"EMAIL;TYPE=INTERNET:{_escape(a)}" for a in contact.emails.values()]
    lines += [f"TEL;TYPE={k.upper()}:{_escape(v)}" for k, v in contact.phones.items()]
    if contact.body:
        lines.append(f"NOTE:{_escape(contact.body)}")
    lines.append("END:VCARD")
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"


def _task_text(task: TaskData) -> str:
    lines = [f"Status: {task.status.value}", f"% Complete: {task.percent_complete:g}%"]
    if task.start_date is not None:
        lines.append(f"Start date: {task.start_date:%Y-%m-%d}")
    if task.due_date is not None:
        lines.append(f"Due date: {task.due_date:%Y-%m-%d}")
    return "\r\n".join(lines) + "\r\n\r\n" + task.body.replace("\n", "\r\n")


def _header(value: str) -> str:
    """A header value on one line (a subject may hold line breaks)."""
    return " ".join(value.split())


def item_content(
    kind: ItemKind,
    record: CalendarData | ContactData | TaskData | DistributionListData,
    *,
    owner: str,
    now: datetime,
) -> bytes:
    """The RFC 5322 message that stands for a typed item in its folder."""
    headers = [f"Date: {format_datetime(now.astimezone(UTC))}", "MIME-Version: 1.0"]
    if isinstance(record, CalendarData):
        sender = record.organizer.address if record.organizer else owner
        headers.append(f"From: {formataddr(('', sender))}")
        to = [formataddr((a.name, a.address)) for a in record.required]
        cc = [formataddr((a.name, a.address)) for a in record.optional]
        if to:
            headers.append("To: " + ", ".join(to))
        if cc:
            headers.append("Cc: " + ", ".join(cc))
        subject = record.subject
        ctype = "text/calendar; charset=utf-8; method=PUBLISH"
        body = calendar_ical(record, now=now)
    elif isinstance(record, ContactData):
        headers.append(f"From: {formataddr(('', owner))}")
        subject, ctype, body = record.name, "text/vcard; charset=utf-8", contact_vcard(record)
    elif isinstance(record, DistributionListData):
        # What an IMAP client sees of a private list: its members, one a line.
        headers.append(f"From: {formataddr(('', owner))}")
        members = "".join(f"{formataddr((m.name, m.address))}\r\n" for m in record.members)
        subject, ctype, body = record.display_name, "text/plain; charset=utf-8", members
    else:
        headers.append(f"From: {formataddr(('', owner))}")
        subject, ctype, body = record.subject, "text/plain; charset=utf-8", _task_text(record)
    headers += [
        f"Subject: {_header(subject)}",
        f"Content-Type: {ctype}",
        "Content-Transfer-Encoding: 8bit",
        f"X-Sitemail-Item-Class: {kind.item_class}",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("utf-8")
