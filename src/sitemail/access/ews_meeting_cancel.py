"""The organizer cancels a meeting: EWS CancelCalendarItem in CreateItem.

Unlike removing the attendees, cancelling deletes the meeting for the
organizer too (Microsoft's CreateItem reference), and it is only for the
organizer's own calendar item.  The ``ReferenceItemId`` names the meeting
(its ChangeKey, when given, must be current: ErrorIrresolvableConflict);
the cancellation (iCalendar METHOD:CANCEL, ``Canceled:`` subject, the
sequence raised) goes to the attendees (but the organizer) through Mail Submission as
:mod:`.ews_invitations` sends it (``SendAndSaveCopy``, the default, files a
copy in Sent Items; ``SendOnly`` keeps none), then the meeting moves to
Deleted Items, marked cancelled (a cancelled meeting is not cancelled
again).  A calendar item's id names its folder, as Exchange's ids change
when an item moves: the meeting's old id is ErrorItemNotFound from then on.
``SaveOnly`` would leave a draft to send later, which sitemail does not
keep for a cancellation: it is ErrorInvalidOperation.

The answer names the cancelled meeting where it now is, in Deleted Items
(unverified: which item Exchange 2010 names in this answer).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from sitemail.access.ews_ids import InvalidId, change_key, parse_id
from sitemail.access.ews_invitations import send_invitations
from sitemail.access.ews_mailbox import EwsMailbox
from sitemail.access.ews_responses import ITEM_NOT_FOUND, Refused
from sitemail.access.ews_soap import t
from sitemail.clock import Clock
from sitemail.mailbox.item_records import ItemKind, TypedItem

__all__ = ["CANCEL_TAG", "cancel_meeting", "missing_reference"]

CANCEL_TAG = t("CancelCalendarItem")
_CONFLICT = (
    "The send or update operation could not be performed because the change key passed in the "
    "request does not match the current change key for the item."
)


def missing_reference() -> Refused:
    """A response object without its ReferenceItemId, as Exchange words it."""
    return Refused(
        "ErrorMissingInformationReferenceItemId", "A response object needs a ReferenceItemId."
    )


async def cancel_meeting(
    box: EwsMailbox, clock: Clock, element: ET.Element, disposition: str
) -> TypedItem | None:
    """Carry out one CancelCalendarItem for ``box``'s user; the meeting in Deleted Items."""
    ref = element.find(t("ReferenceItemId"))
    if ref is None or not ref.get("Id"):
        raise missing_reference()
    try:
        parsed = parse_id(ref.get("Id", ""))
    except InvalidId:
        raise Refused("ErrorInvalidIdMalformed", "Id is malformed.") from None
    if parsed.kind != "M":
        # An occurrence's cancellation would be an exception of the series; sitemail
        # cancels whole meetings only.
        raise Refused(
            "ErrorInvalidReferenceItem", "Only a whole meeting (not an occurrence) is cancelled."
        )
    box.own(parsed.mailbox)
    if disposition == "SaveOnly":
        raise Refused(
            "ErrorInvalidOperation",
            "sitemail sends a cancellation when it is made; use SendOnly or SendAndSaveCopy.",
        )
    store, alias = box.store, box.alias
    item = await store.get_typed(alias, parsed.message_id)
    if parsed.in_folder is not None and parsed.in_folder != item.folder_id:
        raise Refused("ErrorItemNotFound", ITEM_NOT_FOUND)  # moved: ids name their folder
    given = ref.get("ChangeKey")
    if given and given != change_key(item.modseq):
        raise Refused("ErrorIrresolvableConflict", _CONFLICT)
    data = item.calendar
    if item.kind is not ItemKind.CALENDAR or data is None:
        raise Refused("ErrorInvalidReferenceItem", "The referenced item is not a meeting.")
    me = box.mailbox.primary_smtp_address.lower()
    if data.organizer is not None and data.organizer.address.lower() != me:
        raise Refused(
            "ErrorInvalidReferenceItem",
            "Only the organizer cancels a meeting; an attendee declines it.",
        )
    if data.cancelled:
        raise Refused("ErrorInvalidReferenceItem", "The meeting is already cancelled.")
    # The organizer listed among the attendees gets no cancellation of their own meeting;
    # with no one else, there is no one to send it to.
    required = [a for a in data.required if a.address.lower() != me]
    optional = [a for a in data.optional if a.address.lower() != me]
    if not required and not optional:
        raise Refused(
            "ErrorInvalidRecipients",
            "The meeting has no attendees but its organizer to send a cancellation to.",
        )
    cancelled = data.model_copy(update={"cancelled": True, "sequence": data.sequence + 1})
    await send_invitations(
        store,
        box.mailbox,
        cancelled.model_copy(update={"required": required, "optional": optional}),
        now=clock.now(),
        save_copy=disposition != "SendOnly",
        method="CANCEL",
    )
    # The organizer's copy says it was cancelled (IsCancelled) where it goes, Deleted
    # Items; the ChangeKey checked above guards the write.
    kept = await store.replace_typed(alias, item.id, cancelled, expected_modseq=item.modseq)
    placed = await store.delete(alias, kept.id)
    if placed is None:
        return None
    return kept.model_copy(
        update={"id": placed.message_id, "folder_id": placed.folder_id, "modseq": placed.modseq}
    )
