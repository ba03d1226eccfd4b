"""The availability service (free/busy) and the time zones it needs, as Exchange Web Services.

Busy times come from the attendees' calendars (:mod:`.ews_freebusy`: read
here for this site's mailboxes, asked of a Client Access server in the
mailbox's site for the others).  The answer has, per mailbox, the
``CalendarEventArray`` (start, end, BusyType; with CalendarEventDetails in
the Detailed views, for the calendar's owner only) and, when a merged view is
asked for, ``MergedFreeBusy``:
one digit per interval of the window, the busiest status that overlaps it
(0 free, 1 tentative, 2 busy, 3 OOF, 4 no data).  An address that is no
mailbox of the organization gets ``ErrorMailRecipientNotFound``, as from
Exchange.  Without a source (no store), every mailbox is free.

Each mailbox's answer (but MergedOnly's) ends with its WorkingHours: the
time zone they are kept in and the working days and hours.  sitemail keeps
no per-mailbox working hours; they are Exchange's defaults for a new
mailbox, Monday to Friday 08:00-17:00, in the server's time zone, UTC
(unverified: Exchange takes the server's zone until the user sets one).
The time zones themselves are :mod:`.ews_time_zones`'.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from sitemail.access.ews_freebusy import BusyEvent, FreeBusySource, RequestZone, local_error
from sitemail.access.ews_soap import SoapFault, m, sub, t
from sitemail.access.ews_time_zones import serializable_time_zone
from sitemail.mailbox.errors import StoreError
from sitemail.mailbox.item_records import FreeBusy
from sitemail.org.model import Mailbox

__all__ = ["MAX_INTERVALS", "get_user_availability"]

#: Longest free/busy answer, in merged intervals (Exchange limits the window to 42 days).
MAX_INTERVALS = 42 * 24 * 4
MAX_MAILBOXES = 100

#: Exchange's default working hours: the days, and the day's start and end in minutes.
WORKING_DAYS = "Monday Tuesday Wednesday Thursday Friday"
WORKING_MINUTES = (8 * 60, 17 * 60)
WORKING_TIME_ZONE = "UTC"


def _parse_time(text: str | None, what: str, zone: RequestZone) -> datetime:
    """A TimeWindow bound in UTC; without an offset it is wall-clock time in ``zone``."""
    value = (text or "").strip()
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SoapFault(
            "ErrorSchemaValidation", f"{what} is not a date and time: {value!r}."
        ) from None
    if moment.tzinfo is None:
        guess = moment.replace(tzinfo=UTC)
        return guess + timedelta(minutes=zone.offset(guess))
    return moment.astimezone(UTC)


_MERGED_DIGIT = {
    FreeBusy.FREE: 0,
    FreeBusy.TENTATIVE: 1,
    FreeBusy.BUSY: 2,
    FreeBusy.OOF: 3,
    FreeBusy.NO_DATA: 4,
}
_VIEWS = ("None", "MergedOnly", "FreeBusy", "FreeBusyMerged", "Detailed", "DetailedMerged")


async def get_user_availability(
    body: ET.Element, mailboxes: list[Mailbox], source: FreeBusySource | None = None
) -> ET.Element:
    """The GetUserAvailabilityResponse for ``body`` (a GetUserAvailabilityRequest)."""
    by_address = {b.primary_smtp_address.lower(): b for b in mailboxes}
    options = body.find(t("FreeBusyViewOptions"))
    if options is None:
        raise SoapFault("ErrorSchemaValidation", "FreeBusyViewOptions is missing.")
    zone = RequestZone(body.find(t("TimeZone")))
    window = options.find(t("TimeWindow"))
    start = _parse_time(
        window.findtext(t("StartTime")) if window is not None else None, "StartTime", zone
    )
    end = _parse_time(
        window.findtext(t("EndTime")) if window is not None else None, "EndTime", zone
    )
    if end <= start:
        raise SoapFault("ErrorInvalidTimeInterval", "EndTime must be after StartTime.")
    view = (options.findtext(t("RequestedView")) or "FreeBusy").strip()
    if view not in _VIEWS:
        raise SoapFault("ErrorSchemaValidation", f"RequestedView {view[:40]!r} is not valid.")
    try:
        interval = int(options.findtext(t("MergedFreeBusyIntervalInMinutes")) or "30")
    except ValueError:
        raise SoapFault(
            "ErrorSchemaValidation", "MergedFreeBusyIntervalInMinutes is not a number."
        ) from None
    if not 5 <= interval <= 1440:
        raise SoapFault(
            "ErrorInvalidMergedFreeBusyInterval",
            "MergedFreeBusyIntervalInMinutes must be between 5 and 1440.",
        )
    slots = -(-(end - start) // timedelta(minutes=interval))
    if slots > MAX_INTERVALS:
        raise SoapFault(
            "ErrorTimeIntervalTooBig",
            "The time window is too long; ask for 42 days at most.",
        )
    array = body.find(m("MailboxDataArray"))
    entries = list(array) if array is not None else []
    if len(entries) > MAX_MAILBOXES:
        raise SoapFault(
            "ErrorExceededFindCountLimit", f"Ask about {MAX_MAILBOXES} mailboxes at most."
        )
    wanted = [
        (data.findtext(f"{t('Email')}/{t('Address')}") or "").strip().lower() for data in entries
    ]
    known = [by_address[a] for a in dict.fromkeys(wanted) if a in by_address]
    remote: dict[str, ET.Element] = {}
    if source is not None:
        remote = await source.remote(body, [b for b in known if not source.is_local(b)])
    response = ET.Element(m("GetUserAvailabilityResponse"))
    results = sub(response, m("FreeBusyResponseArray"))
    for address in wanted:
        if address in remote:
            results.append(remote[address])
            continue
        if address not in by_address:
            item = sub(results, m("FreeBusyResponse"))
            message = sub(item, m("ResponseMessage"), ResponseClass="Error")
            sub(message, m("MessageText"), f"No mailbox with such guid. ({address})")
            sub(message, m("ResponseCode"), "ErrorMailRecipientNotFound")
            sub(message, m("DescriptiveLinkKey"), "0")
            sub(item, m("FreeBusyView"))
            continue
        events: list[BusyEvent] = []
        if source is not None:
            try:
                events = await source.events(by_address[address], start, end)
            except StoreError as exc:
                results.append(local_error(exc))
                continue
        item = sub(results, m("FreeBusyResponse"))
        message = sub(item, m("ResponseMessage"), ResponseClass="Success")
        sub(message, m("ResponseCode"), "NoError")
        free_busy = sub(item, m("FreeBusyView"))
        granted = _granted(view, by_address[address], source)
        sub(free_busy, t("FreeBusyViewType"), granted)
        if "Merged" in view:
            sub(free_busy, t("MergedFreeBusy"), _merged(events, start, interval, slots))
        if view not in ("MergedOnly", "None"):
            array = sub(free_busy, t("CalendarEventArray"))
            for event in events:
                _event(array, event, zone, detailed=granted.startswith("Detailed"))
            _working_hours(free_busy, start.year)
    return response


def _working_hours(free_busy: ET.Element, year: int) -> None:
    hours = sub(free_busy, t("WorkingHours"))
    serializable_time_zone(hours, WORKING_TIME_ZONE, year)
    period = sub(sub(hours, t("WorkingPeriodArray")), t("WorkingPeriod"))
    sub(period, t("DayOfWeek"), WORKING_DAYS)
    sub(period, t("StartTimeInMinutes"), str(WORKING_MINUTES[0]))
    sub(period, t("EndTimeInMinutes"), str(WORKING_MINUTES[1]))


def _granted(view: str, mailbox: Mailbox, source: FreeBusySource | None) -> str:
    """The view the requester may see of ``mailbox``'s calendar.

    A calendar's Default permission in Exchange 2010 is AvailabilityOnly
    (FreeBusyTimeOnly): others see times and busy types, not subjects and
    locations, and a Detailed view is answered as the FreeBusy one (the
    response's FreeBusyViewType says which; unverified: the exact downgrade
    of Exchange's).  The mailbox's owner sees the details of their own.
    """
    requester = source.user.mailbox.alias.casefold() if source is not None else None
    if requester == mailbox.alias.casefold():
        return view
    return {"Detailed": "FreeBusy", "DetailedMerged": "FreeBusyMerged"}.get(view, view)


def _merged(events: list[BusyEvent], start: datetime, interval: int, slots: int) -> str:
    """One digit per interval: the busiest status of the events that overlap it."""
    digits = [0] * slots
    step = timedelta(minutes=interval)
    for event in events:
        first = max(int((event.start - start) // step), 0)
        last = min(int(-(-(event.end - start) // step)), slots)
        for slot in range(first, last):
            digits[slot] = max(digits[slot], _MERGED_DIGIT[event.busy])
    return "".join(str(d) for d in digits)


def _event(array: ET.Element, event: BusyEvent, zone: RequestZone, *, detailed: bool) -> None:
    element = sub(array, t("CalendarEvent"))
    sub(element, t("StartTime"), zone.local(event.start))
    sub(element, t("EndTime"), zone.local(event.end))
    sub(element, t("BusyType"), event.busy.value)
    if detailed:
        details = sub(element, t("CalendarEventDetails"))
        sub(details, t("Subject"), event.subject)
        sub(details, t("Location"), event.location)
        for tag, value in (
            ("IsMeeting", event.is_meeting),
            ("IsRecurring", event.is_recurring),
            ("IsException", event.is_exception),
            ("IsReminderSet", event.reminder),
            ("IsPrivate", False),
        ):
            sub(details, t(tag), "true" if value else "false")
