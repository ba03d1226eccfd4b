"""The availability service (free/busy) and the time zones it needs, as Exchange Web Services.

sitemail keeps no calendars, so every mailbox of the organization is free
for the whole window asked about: the answer says so in the schema's terms
(``MergedFreeBusy`` all ``0``, an empty ``CalendarEventArray``), rather than
failing.  An address that is no mailbox of the organization gets
``ErrorMailRecipientNotFound``, as from Exchange.

``GetServerTimeZones`` gives the one time zone a client needs to ask for
availability in UTC (exchangelib sends it first).  Other time zones are not
tabled here: asking for one gets ``ErrorTimeZone`` naming it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

from sitemail.access.ews_soap import SoapFault, m, sub, t
from sitemail.org.model import Mailbox

__all__ = ["MAX_INTERVALS", "get_server_time_zones", "get_user_availability"]

#: Longest free/busy answer, in merged intervals (Exchange limits the window to 42 days).
MAX_INTERVALS = 42 * 24 * 4
MAX_MAILBOXES = 100

_UTC_ID = "UTC"
_UTC_NAME = "(UTC) Coordinated Universal Time"
_UTC_PERIOD = "trule:Microsoft/Registry/UTC/1-Standard"  # unverified: Exchange's period id form


def _parse_time(text: str | None, what: str) -> datetime:
    value = (text or "").strip()
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SoapFault(
            "ErrorSchemaValidation", f"{what} is not a date and time: {value!r}."
        ) from None


def get_user_availability(body: ET.Element, mailboxes: list[Mailbox]) -> ET.Element:
    """The GetUserAvailabilityResponse for ``body`` (a GetUserAvailabilityRequest)."""
    by_address = {b.primary_smtp_address.lower(): b for b in mailboxes}
    options = body.find(t("FreeBusyViewOptions"))
    if options is None:
        raise SoapFault("ErrorSchemaValidation", "FreeBusyViewOptions is missing.")
    window = options.find(t("TimeWindow"))
    start = _parse_time(
        window.findtext(t("StartTime")) if window is not None else None, "StartTime"
    )
    end = _parse_time(window.findtext(t("EndTime")) if window is not None else None, "EndTime")
    if end <= start:
        raise SoapFault("ErrorInvalidTimeInterval", "EndTime must be after StartTime.")
    view = (options.findtext(t("RequestedView")) or "FreeBusy").strip()
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
    response = ET.Element(m("GetUserAvailabilityResponse"))
    results = sub(response, m("FreeBusyResponseArray"))
    for data in entries:
        address = (data.findtext(f"{t('Email')}/{t('Address')}") or "").strip().lower()
        item = sub(results, m("FreeBusyResponse"))
        message = sub(item, m("ResponseMessage"))
        if address not in by_address:
            message.set("ResponseClass", "Error")
            sub(message, m("MessageText"), f"No mailbox with such guid. ({address})")
            sub(message, m("ResponseCode"), "ErrorMailRecipientNotFound")
            sub(message, m("DescriptiveLinkKey"), "0")
            sub(item, m("FreeBusyView"))
            continue
        message.set("ResponseClass", "Success")
        sub(message, m("ResponseCode"), "NoError")
        free_busy = sub(item, m("FreeBusyView"))
        sub(free_busy, t("FreeBusyViewType"), view)
        if "Merged" in view:
            # No calendar: every interval is Free (0).
            sub(free_busy, t("MergedFreeBusy"), "0" * slots)
        if view != "MergedOnly":
            sub(free_busy, t("CalendarEventArray"))
    return response


def _utc_definition(parent: ET.Element) -> None:
    definition = sub(parent, t("TimeZoneDefinition"), Id=_UTC_ID, Name=_UTC_NAME)
    periods = sub(definition, t("Periods"))
    sub(
        periods,
        t("Period"),
        Bias="PT0H",
        Name="Standard",
        Id="trule:Microsoft/Registry/UTC/1-Standard",
    )
    groups = sub(definition, t("TransitionsGroups"))
    group = sub(groups, t("TransitionsGroup"), Id="0")
    transition = sub(group, t("Transition"))
    sub(transition, t("To"), _UTC_PERIOD, Kind="Period")
    transitions = sub(definition, t("Transitions"))
    first = sub(transitions, t("Transition"))
    sub(first, t("To"), "0", Kind="Group")


def get_server_time_zones(body: ET.Element) -> ET.Element:
    ids = [(e.text or "").strip() for e in body.iter(t("Id"))]
    response = ET.Element(m("GetServerTimeZonesResponse"))
    messages = sub(response, m("ResponseMessages"))
    unknown = [i for i in ids if i != _UTC_ID]
    msg = sub(
        messages,
        m("GetServerTimeZonesResponseMessage"),
        ResponseClass="Error" if unknown else "Success",
    )
    if unknown:
        sub(msg, m("MessageText"), f"sitemail knows only the UTC time zone, not {unknown[0]!r}.")
        sub(msg, m("ResponseCode"), "ErrorTimeZone")
        sub(msg, m("DescriptiveLinkKey"), "0")
        return response
    sub(msg, m("ResponseCode"), "NoError")
    _utc_definition(sub(msg, m("TimeZoneDefinitions")))
    return response
