"""The availability service for OWA's Scheduling Assistant, asked in-process.

OWA 2010 asks the availability service of its own Client Access server for
the attendees' free/busy, like Outlook's GetUserAvailability: this module
builds that request (a UTC window, the FreeBusy view) and reads the answer
back into :class:`~sitemail.access.web.owa_schedule.BusyBlock` rows.  The
service itself (:mod:`.ews_availability`, :mod:`.ews_freebusy`) reads this
site's mailboxes from their store and asks the Client Access server of each
other site, so a FL attendee's calendar is read in FL even when the user
signed in at NY.

Attendees are named by address or alias; a name the directory does not
know is answered with the reason on its row, as OWA marks an unresolved
attendee.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime

from sitemail.access.ews_availability import get_user_availability
from sitemail.access.ews_freebusy import FreeBusySource
from sitemail.access.ews_soap import SoapFault, m, sub, t
from sitemail.access.ews_typed_store import TypedItemStore
from sitemail.access.web.common import AppUser, RequestContext
from sitemail.access.web.front import FrontDoor
from sitemail.access.web.owa_schedule import BusyBlock, ScheduleLookup
from sitemail.mailbox.errors import StoreError
from sitemail.org.model import Mailbox

__all__ = ["OwaAvailability"]


class OwaAvailability:
    """The W3SVC's lookup for OWA: (request context, user) -> the attendees' busy times."""

    def __init__(
        self, door: Callable[[], FrontDoor | None], store: Callable[[], TypedItemStore | None]
    ) -> None:
        self._door = door
        self._store = store

    def __call__(self, ctx: RequestContext, user: AppUser) -> ScheduleLookup:
        async def lookup(
            names: list[str], start: datetime, end: datetime
        ) -> dict[str, list[BusyBlock] | str]:
            door, store = self._door(), self._store()
            if door is None or store is None:
                return dict.fromkeys(names, "The availability service is starting.")
            mailboxes = door.directory.list(Mailbox)
            addresses = {name: _address(name, mailboxes) for name in names}
            known = [a for a in addresses.values() if a is not None]
            source = FreeBusySource(door, store, ctx, user, local_only=False)
            try:
                answer = await get_user_availability(_request(known, start, end), mailboxes, source)
            except (SoapFault, StoreError) as exc:
                return dict.fromkeys(names, f"The availability service failed: {exc}")
            found = dict(zip(known, answer.iter(m("FreeBusyResponse")), strict=False))
            out: dict[str, list[BusyBlock] | str] = {}
            for name, address in addresses.items():
                if address is None:
                    out[name] = "Not found in the address book."
                else:
                    out[name] = _blocks(found.get(address))
            return out

        return lookup


def _address(name: str, mailboxes: list[Mailbox]) -> str | None:
    wanted = name.strip().lower()
    for box in mailboxes:
        if wanted in (box.primary_smtp_address.lower(), box.alias.lower()):
            return box.primary_smtp_address.lower()
    return None


def _request(addresses: list[str], start: datetime, end: datetime) -> ET.Element:
    body = ET.Element(m("GetUserAvailabilityRequest"))
    zone = sub(body, t("TimeZone"))
    sub(zone, t("Bias"), "0")
    for part in ("StandardTime", "DaylightTime"):
        rule = sub(zone, t(part))
        for tag, value in (
            ("Bias", "0"),
            ("Time", "00:00:00"),
            ("DayOrder", "1"),
            ("Month", "0"),
            ("DayOfWeek", "Sunday"),
        ):
            sub(rule, t(tag), value)  # fmt: skip
    array = sub(body, m("MailboxDataArray"))
    for address in addresses:
        data = sub(array, t("MailboxData"))
        sub(sub(data, t("Email")), t("Address"), address)
        sub(data, t("AttendeeType"), "Required")
        sub(data, t("ExcludeConflicts"), "false")
    options = sub(body, t("FreeBusyViewOptions"))
    window = sub(options, t("TimeWindow"))
    sub(window, t("StartTime"), start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    sub(window, t("EndTime"), end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    sub(options, t("MergedFreeBusyIntervalInMinutes"), "30")
    sub(options, t("RequestedView"), "FreeBusy")
    return body


def _blocks(response: ET.Element | None) -> list[BusyBlock] | str:
    if response is None:
        return "No answer from the availability service."
    message = response.find(m("ResponseMessage"))
    if message is not None and message.get("ResponseClass") != "Success":
        return message.findtext(m("MessageText")) or message.findtext(m("ResponseCode")) or "?"
    blocks: list[BusyBlock] = []
    for event in response.iter(t("CalendarEvent")):
        try:
            # Wall-clock times in the request's zone: UTC here.
            start = datetime.fromisoformat(event.findtext(t("StartTime")) or "")
            end = datetime.fromisoformat(event.findtext(t("EndTime")) or "")
        except ValueError:
            continue
        busy = (event.findtext(t("BusyType")) or "Busy").strip()
        blocks.append(BusyBlock(start.replace(tzinfo=UTC), end.replace(tzinfo=UTC), busy))
    return blocks
