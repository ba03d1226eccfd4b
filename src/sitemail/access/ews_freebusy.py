"""Where free/busy comes from: the attendee's calendar, read here or in the mailbox's site.

The availability service (:mod:`.ews_availability`) asks this module for
each mailbox of a GetUserAvailability request:

- a mailbox **in this server's site** is read from its store: the calendar
  items whose time touches the window, expanded into occurrences
  (:mod:`sitemail.mailbox.recurrence`), cancelled ones and Free ones left
  out, as busy events;
- mailboxes **in another site** are asked for in one GetUserAvailability
  request per site, proxied to the EWS InternalUrl of a Client Access
  server there, as the requesting user (spec 8.3: "cross-site: request
  proxied over HTTPS to a CAS in the target mailbox's site"); that server's
  FreeBusyResponse for each mailbox is passed on as it came.
- An availability request that another site's Client Access server
  proxied here for the sake of this site's mailboxes is answered for them
  only: no proxy chains.  (A user's whole EWS request proxied here because
  the user's mailbox is here is served in full, availability included.)

Times of the events are wall-clock times in the time zone the request
gave (``t:TimeZone``: a bias and the standard/daylight transition rules),
as Exchange writes them.
"""

from __future__ import annotations

import logging
import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

from sitemail.access.ews_soap import SOAP_NS, SoapFault, m, sub, t
from sitemail.access.ews_typed_store import TypedItemStore
from sitemail.access.outcomes import ClientProtocol, Proxy, ServeLocally
from sitemail.access.web.common import AppUser, RequestContext
from sitemail.access.web.front import FrontDoor
from sitemail.access.web.proxy import ProxyFailed, ProxyIdentity, ProxyRefused
from sitemail.mailbox.errors import StoreError
from sitemail.mailbox.item_records import FreeBusy
from sitemail.mailbox.recurrence import expand
from sitemail.org.model import Mailbox

__all__ = ["BusyEvent", "FreeBusySource", "RequestZone"]

log = logging.getLogger("sitemail.w3svc.ews")

#: Most events one mailbox's answer holds (each occurrence is one).
MAX_EVENTS = 1000
#: Largest answer read back from the mailbox's site.
MAX_REMOTE_ANSWER = 8 * 1024 * 1024
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@dataclass(frozen=True)
class BusyEvent:
    start: datetime  # UTC
    end: datetime
    busy: FreeBusy
    subject: str
    location: str
    is_meeting: bool
    is_recurring: bool
    is_exception: bool
    reminder: bool


@dataclass(frozen=True)
class _Rule:
    bias: int  # minutes, added to the base bias
    time: timedelta
    order: int  # 1-4, 5 = last
    month: int  # 0: no transition
    weekday: int

    def moment(self, year: int) -> datetime:
        """The (naive, local) moment of the transition in ``year``."""
        first = date(year, self.month, 1)
        offset = (self.weekday - first.weekday()) % 7
        day = first + timedelta(days=offset + 7 * (self.order - 1))
        while day.month != self.month:
            day -= timedelta(days=7)
        return datetime.combine(day, datetime.min.time()) + self.time


class RequestZone:
    """The request's ``t:TimeZone`` (SerializableTimeZone): UTC = local + bias."""

    def __init__(self, element: ET.Element | None) -> None:
        self.bias = _minutes(element, "Bias") if element is not None else 0
        self.standard = _rule(element.find(t("StandardTime")) if element is not None else None)
        self.daylight = _rule(element.find(t("DaylightTime")) if element is not None else None)

    def offset(self, moment: datetime) -> int:
        """Minutes to add to local time to get UTC, at the UTC ``moment``."""
        std, dst = self.standard, self.daylight
        if std is None or dst is None or not std.month or not dst.month:
            return self.bias + (std.bias if std else 0)
        naive = moment.astimezone(UTC).replace(tzinfo=None)
        begins = dst.moment(naive.year) + timedelta(minutes=self.bias + std.bias)
        ends = std.moment(naive.year) + timedelta(minutes=self.bias + dst.bias)
        summer = begins <= naive < ends if begins < ends else naive >= begins or naive < ends
        return self.bias + (dst.bias if summer else std.bias)

    def local(self, moment: datetime) -> str:
        naive = moment.astimezone(UTC).replace(tzinfo=None)
        return (naive - timedelta(minutes=self.offset(moment))).strftime("%Y-%m-%dT%H:%M:%S")


def _minutes(element: ET.Element, tag: str) -> int:
    text = (element.findtext(t(tag)) or "0").strip()
    try:
        value = int(text)
    except ValueError:
        raise SoapFault("ErrorSchemaValidation", f"TimeZone {tag} is not a number.") from None
    if abs(value) > 24 * 60:
        raise SoapFault("ErrorSchemaValidation", f"TimeZone {tag} is out of range.")
    return value


def _rule(element: ET.Element | None) -> _Rule | None:
    if element is None:
        return None
    try:
        hours, minutes, seconds = (
            int(x) for x in (element.findtext(t("Time")) or "0:0:0").split(":")
        )
        order = int(element.findtext(t("DayOrder")) or "1")
        month = int(element.findtext(t("Month")) or "0")
        weekday = _DAYS.index((element.findtext(t("DayOfWeek")) or "Sunday").strip())
    except ValueError:
        raise SoapFault("ErrorSchemaValidation", "A TimeZone transition is malformed.") from None
    if not (0 <= month <= 12 and 1 <= order <= 5):
        raise SoapFault("ErrorSchemaValidation", "A TimeZone transition is out of range.")
    return _Rule(
        _minutes(element, "Bias"),
        timedelta(hours=hours, minutes=minutes, seconds=seconds),
        order,
        month,
        weekday,
    )


class FreeBusySource:
    """Free/busy for one GetUserAvailability request served by this Client Access server."""

    def __init__(
        self,
        door: FrontDoor,
        store: TypedItemStore,
        ctx: RequestContext,
        user: AppUser,
        *,
        local_only: bool,
    ) -> None:
        self.door = door
        self.store = store
        self.ctx = ctx
        self.user = user
        self.local_only = local_only

    def is_local(self, mailbox: Mailbox) -> bool:
        outcome = self.door.decisions.decide(self.ctx, ClientProtocol.EWS, mailbox)
        return isinstance(outcome, ServeLocally)

    async def events(self, mailbox: Mailbox, start: datetime, end: datetime) -> list[BusyEvent]:
        """The busy times of a mailbox of this site in [start, end)."""
        items = await self.store.calendar_items(mailbox.alias, "calendar", start, end)
        out: list[BusyEvent] = []
        for item in items:
            data = item.calendar
            if data is None or data.cancelled:
                continue
            found, _ = expand(data, start, end, limit=MAX_EVENTS)
            for occ in found:
                change = occ.modified
                busy = change.free_busy if change and change.free_busy else data.free_busy
                if busy is FreeBusy.FREE:
                    continue
                out.append(
                    BusyEvent(
                        start=occ.start,
                        end=occ.end,
                        busy=busy,
                        subject=change.subject
                        if change and change.subject is not None
                        else data.subject,
                        location=change.location
                        if change and change.location is not None
                        else data.location,
                        is_meeting=data.is_meeting,
                        is_recurring=data.recurrence is not None,
                        is_exception=change is not None,
                        reminder=data.reminder_minutes is not None,
                    )
                )
        out.sort(key=lambda e: (e.start, e.end))
        return out[:MAX_EVENTS]

    async def remote(self, body: ET.Element, mailboxes: list[Mailbox]) -> dict[str, ET.Element]:
        """FreeBusyResponse elements from the mailboxes' sites, by lower-cased address."""
        if self.local_only:
            # No chains: an availability request another site's Client Access server
            # proxied here (for a user whose mailbox is not here) is answered for this
            # site's mailboxes only.
            return {
                b.primary_smtp_address.lower(): _no_chain(self.door.server, b) for b in mailboxes
            }
        groups: dict[str, tuple[Proxy, list[Mailbox]]] = {}
        answers: dict[str, ET.Element] = {}
        for mailbox in mailboxes:
            outcome = self.door.decisions.decide(self.ctx, ClientProtocol.EWS, mailbox)
            if not isinstance(outcome, Proxy) or outcome.target_url is None:
                answers[mailbox.primary_smtp_address.lower()] = _failure(
                    "ErrorProxyRequestProcessingFailed",
                    f"{self.door.server} cannot reach the site of {mailbox.primary_smtp_address}.",
                )
                continue
            groups.setdefault(outcome.target_url, (outcome, []))[1].append(mailbox)
        for outcome, members in groups.values():
            answers.update(await self._ask(outcome, body, members))
        return answers

    async def _ask(
        self, outcome: Proxy, body: ET.Element, members: list[Mailbox]
    ) -> dict[str, ET.Element]:
        keys = [b.primary_smtp_address.lower() for b in members]
        proxy = self.door.handoff.proxy
        try:
            path = urlsplit(outcome.target_url or "").path or "/"
            target = proxy.target(outcome, path, path)
            identity = ProxyIdentity(
                alias=self.user.alias,
                canary=secrets.token_urlsafe(16),
                trusted=False,
                client_ip="",
            )
            status, data = await proxy.post(
                target,
                identity,
                _request_for(body, keys),
                content_type="text/xml; charset=utf-8",
                protocol="the availability service",
                limit=MAX_REMOTE_ANSWER,
            )
            found = _responses(data) if status == 200 else None
        except (ProxyFailed, ProxyRefused) as exc:
            log.warning("availability proxy for %s failed: %s", ", ".join(keys), exc)
            found = None
        if found is None or len(found) != len(keys):
            failure = _failure(
                "ErrorProxyRequestProcessingFailed",
                f"The Client Access server in the site of {', '.join(keys)} did not answer "
                "the availability request.",
            )
            return dict.fromkeys(keys, failure)
        return dict(zip(keys, found, strict=True))


def _request_for(body: ET.Element, addresses: list[str]) -> bytes:
    """The original request's options and time zone, for these mailboxes only."""
    envelope = ET.Element(f"{{{SOAP_NS}}}Envelope")
    header = ET.SubElement(envelope, f"{{{SOAP_NS}}}Header")
    sub(header, t("RequestServerVersion"), Version="Exchange2010_SP2")
    request = ET.SubElement(
        ET.SubElement(envelope, f"{{{SOAP_NS}}}Body"), m("GetUserAvailabilityRequest")
    )
    for child in body:
        if child.tag == m("MailboxDataArray"):
            array = sub(request, m("MailboxDataArray"))
            for entry in child:
                address = (entry.findtext(f"{t('Email')}/{t('Address')}") or "").strip().lower()
                if address in addresses:
                    array.append(entry)
        else:
            request.append(child)
    out: bytes = ET.tostring(envelope, encoding="utf-8", xml_declaration=True)
    return out


def _responses(data: bytes) -> list[ET.Element] | None:
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return None
    array = root.find(f".//{m('FreeBusyResponseArray')}")
    return None if array is None else list(array)


def _failure(code: str, text: str) -> ET.Element:
    item = ET.Element(m("FreeBusyResponse"))
    message = sub(item, m("ResponseMessage"), ResponseClass="Error")
    sub(message, m("MessageText"), text)
    sub(message, m("ResponseCode"), code)
    sub(message, m("DescriptiveLinkKey"), "0")
    sub(item, m("FreeBusyView"))
    return item


def _no_chain(server: str, mailbox: Mailbox) -> ET.Element:
    return _failure(
        "ErrorProxyRequestProcessingFailed",
        f"{server} does not serve {mailbox.primary_smtp_address}'s mailbox, so it cannot "
        "answer for it a request another Client Access server proxied.",
    )


def local_error(exc: StoreError) -> ET.Element:
    """The FreeBusyResponse of a local mailbox whose store failed."""
    return _failure("ErrorMailboxStoreUnavailable", str(exc))
