"""An attendee's answer to a meeting request: EWS AcceptItem, TentativelyAcceptItem, DeclineItem.

The request is a message of the attendee's mailbox (delivered by transport)
with a ``text/calendar; method=REQUEST`` part; the CreateItem's
``ReferenceItemId`` names it.  Answering

1. reads its VEVENT (:mod:`sitemail.mailbox.ical_parse`);
2. puts the meeting in the attendee's Calendar, busy (accepted) or
   tentative, replacing the item of the same UID if an earlier request
   made one; declining removes that item instead;
3. sends the organizer an iCalendar METHOD:REPLY with the attendee's
   PARTSTAT through Mail Submission (``SendAndSaveCopy``, the default,
   files a copy in Sent Items; ``SendOnly`` keeps none; ``SaveOnly`` leaves
   the reply in Drafts);
4. moves the request to Deleted Items, as Outlook and Exchange do.

A response object without a ReferenceItemId is
ErrorMissingInformationReferenceItemId.  The answer carries the calendar
item's ItemId (none for a decline).
Unverified: the exact set of ids Exchange 2010 returns for a meeting
response (exchangelib notes it may be several).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from sitemail.access.ews_ids import InvalidId, parse_id
from sitemail.access.ews_invitations import meeting_message
from sitemail.access.ews_mailbox import EwsMailbox
from sitemail.access.ews_meeting_cancel import CANCEL_TAG, cancel_meeting, missing_reference
from sitemail.access.ews_responses import Refused
from sitemail.access.ews_soap import t
from sitemail.clock import Clock
from sitemail.mailbox.ical_parse import MAX_ICAL, ICalError, parse_event
from sitemail.mailbox.item_records import (
    Attendee,
    CalendarData,
    FreeBusy,
    ItemKind,
    ResponseType,
    TypedItem,
)
from sitemail.mailbox.records import Flags, FlagUpdate, WellKnownFolder

__all__ = ["RESPONSE_TAGS", "respond"]

_ANSWERS = {
    t("AcceptItem"): ResponseType.ACCEPT,
    t("TentativelyAcceptItem"): ResponseType.TENTATIVE,
    t("DeclineItem"): ResponseType.DECLINE,
}
#: The calendar response objects of CreateItem: an attendee's answers, the organizer's
#: cancellation (:mod:`.ews_meeting_cancel`).
RESPONSE_TAGS = frozenset({*_ANSWERS, CANCEL_TAG})
_SUBJECT = {
    ResponseType.ACCEPT: "Accepted: ",
    ResponseType.TENTATIVE: "Tentative: ",
    ResponseType.DECLINE: "Declined: ",
}
#: Most calendar items searched for an earlier copy of the meeting (by UID).
MAX_SEARCH = 1000


@dataclass(frozen=True)
class Answered:
    """The calendar item the answer left (None: declined, or deleted for good)."""

    item: TypedItem | None


async def respond(box: EwsMailbox, clock: Clock, element: ET.Element, disposition: str) -> Answered:
    """Carry out one AcceptItem/TentativelyAcceptItem/DeclineItem (or CancelCalendarItem)
    for ``box``'s user."""
    if element.tag == CANCEL_TAG:
        return Answered(await cancel_meeting(box, clock, element, disposition))
    answer = _ANSWERS[element.tag]
    ref = element.find(t("ReferenceItemId"))
    if ref is None or not ref.get("Id"):
        raise missing_reference()
    try:
        parsed = parse_id(ref.get("Id", "") if ref is not None else "")
    except InvalidId:
        raise Refused("ErrorInvalidIdMalformed", "Id is malformed.") from None
    if parsed.kind != "M":
        raise Refused("ErrorInvalidIdMalformed", "Id is malformed.")
    box.own(parsed.mailbox)
    store, alias = box.store, box.alias
    message = await store.get_message(alias, parsed.message_id)
    part = next((p for p in message.structure.walk() if p.content_type == "text/calendar"), None)
    if part is None or part.body_size > MAX_ICAL * 4:
        raise Refused(
            "ErrorInvalidReferenceItem",
            "The referenced item is not a meeting request (it has no calendar part).",
        )
    data = await store.read_part(alias, message.id, part.part_id)
    try:
        event = parse_event(data.decode(part.charset or "utf-8", "replace"))
    except ICalError as exc:
        raise Refused(
            "ErrorInvalidReferenceItem", f"The meeting request is not valid: {exc}."
        ) from None
    except LookupError:
        raise Refused(
            "ErrorInvalidReferenceItem", "The meeting request's charset is unknown."
        ) from None
    if event.method not in ("REQUEST", ""):
        raise Refused(
            "ErrorInvalidReferenceItem",
            f"The referenced item is a meeting {event.method.lower()}, not a request.",
        )
    me = box.mailbox.primary_smtp_address.lower()
    record = event.record
    existing = await _by_uid(box, record.uid)
    kept: TypedItem | None = None
    if answer is ResponseType.DECLINE:
        if existing is not None:
            await store.delete(alias, existing.id)
    else:
        mine = record.model_copy(
            update={
                "free_busy": FreeBusy.BUSY if answer is ResponseType.ACCEPT else FreeBusy.TENTATIVE,
                "required": [_answered(a, me, answer) for a in record.required],
                "optional": [_answered(a, me, answer) for a in record.optional],
            }
        )
        if existing is not None:
            kept = await store.replace_typed(alias, existing.id, mine)
        else:
            kept = await store.create_typed(
                alias, WellKnownFolder.CALENDAR.value, ItemKind.CALENDAR, mine
            )
    await _reply(box, clock, record, answer, disposition)
    await store.move(alias, message.id, WellKnownFolder.DELETED_ITEMS.value)
    return Answered(kept)


def _answered(person: Attendee, me: str, answer: ResponseType) -> Attendee:
    if person.address.lower() != me:
        return person
    return person.model_copy(update={"response": answer})


async def _by_uid(box: EwsMailbox, uid: str) -> TypedItem | None:
    if not uid:
        return None
    page = await box.store.list_typed(
        box.alias, WellKnownFolder.CALENDAR.value, kind=ItemKind.CALENDAR, limit=MAX_SEARCH
    )
    return next((i for i in page.items if i.calendar and i.calendar.uid == uid), None)


async def _reply(
    box: EwsMailbox, clock: Clock, record: CalendarData, answer: ResponseType, disposition: str
) -> None:
    """The METHOD:REPLY to the organizer, with only this attendee and their PARTSTAT."""
    if record.organizer is None:
        return
    me = box.mailbox
    reply = record.model_copy(
        update={
            "subject": _SUBJECT[answer] + record.subject,
            # The iCalendar ATTENDEE line carries this attendee's answer (RFC 5546 REPLY).
            "required": [
                Attendee(address=me.primary_smtp_address, name=me.display_name, response=answer)
            ],
            "optional": [],
        }
    )
    organizer = Attendee(address=record.organizer.address, name=record.organizer.name)
    raw = meeting_message(me, reply, now=clock.now(), method="REPLY", recipients=[organizer])
    placed = await box.store.append(
        me.alias, WellKnownFolder.DRAFTS.value, raw, flags=Flags(draft=True, seen=True)
    )
    if disposition == "SaveOnly":
        return
    if disposition == "SendOnly":
        await box.store.set_flags(me.alias, placed.message_id, FlagUpdate(deleted=True))
    await box.store.submit(me.alias, placed.message_id)
