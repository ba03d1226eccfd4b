"""EWS on calendar items, contacts and tasks: CreateItem, GetItem, UpdateItem, DeleteItem and
FindItem (with CalendarView), as Exchange 2010 SP3 answers them.

The handler asks :meth:`EwsTypedItems.claims` whether a request is about
typed items (a CalendarItem/Contact/Task to create, an Id of one, an
occurrence Id, a CalendarView, a calendar/contacts/tasks folder); if so it
is served here, else by the message operations (:mod:`.ews_items`,
:mod:`.ews_mailbox`).  In a request that names both, the message Ids are
handed to the message operations one by one, so each keeps its own
response message in order.

Recurring items are stored as their master; occurrences have Ids of their
own (``O``: master and index, :mod:`.ews_ids`).  UpdateItem on an
occurrence makes it an exception of the master (ModifiedOccurrences);
DeleteItem on one adds it to DeletedOccurrences; on the master it deletes
the series.

Meeting responses (AcceptItem, TentativelyAcceptItem, DeclineItem) are
:mod:`.ews_meeting_response`'s.  Meeting requests: ``SendToNone`` saves the
item only.  ``SendOnlyToAll`` and ``SendToAllAndSaveCopy`` also send the
attendees an iCalendar
METHOD:REQUEST through Mail Submission (Drafts, then the Outbox), with a
copy in Sent Items for the second.
"""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

from sitemail.access.ews_calendar import (
    CALENDAR_DEFAULT,
    CALENDAR_DETAIL,
    CALENDAR_FIELDS,
    CalendarRendering,
    merge_calendar,
    parse_calendar,
)
from sitemail.access.ews_contacts import (
    CONTACT_DEFAULT,
    CONTACT_FIELDS,
    TASK_DEFAULT,
    TASK_FIELDS,
    parse_contact,
    parse_task,
    render_contact,
    render_task,
)
from sitemail.access.ews_distribution_lists import (
    LIST_DEFAULT,
    LIST_FIELDS,
    parse_distribution_list,
    render_distribution_list,
)
from sitemail.access.ews_ids import ROOT, TOP, EwsId, InvalidId, change_key, parse_id
from sitemail.access.ews_invitations import send_invitations
from sitemail.access.ews_mailbox import EwsMailbox
from sitemail.access.ews_meeting_response import RESPONSE_TAGS, respond
from sitemail.access.ews_responses import (
    ITEM_NOT_FOUND,
    Refused,
    client_refusal,
    delete_type,
    response_message,
)
from sitemail.access.ews_restriction import (
    Predicate,
    QueryField,
    parse_restriction,
    parse_sort_order,
    sort_items,
)
from sitemail.access.ews_soap import SoapFault, m, sub, t
from sitemail.access.ews_task_recurrence import split_occurrence
from sitemail.access.ews_typed_extended import render_typed_extended, shape_key
from sitemail.access.ews_typed_fields import TYPED_FIELDS
from sitemail.access.ews_typed_props import kept_paths, render_props, shape_path
from sitemail.access.ews_typed_update import (
    TypedRecord,
    calendar_from_mime,
    new_record,
    updated_record,
)
from sitemail.clock import Clock
from sitemail.mailbox.errors import StoreError
from sitemail.mailbox.item_records import (
    CalendarData,
    ItemKind,
    TaskData,
    TypedItem,
)
from sitemail.mailbox.records import Address, WellKnownFolder
from sitemail.mailbox.recurrence import expand, has_index, occurrence_at

__all__ = ["EwsTypedItems"]

#: Longest CalendarView window (unverified: the 2-year limit of ErrorCalendarViewRangeTooBig).
MAX_VIEW_RANGE = timedelta(days=2 * 365 + 1)
#: Most items a FindItem returns without MaxEntriesReturned (unverified: EWSFindCountLimit
#: of 2010's default throttling policy; Exchange answers ErrorExceededFindCountLimit).
FIND_COUNT_LIMIT = 1000
MAX_IDS = 500

_TYPED_TAGS = {t(k.value): k for k in ItemKind}
_FOLDER_KINDS = {
    WellKnownFolder.CALENDAR: ItemKind.CALENDAR,
    WellKnownFolder.CONTACTS: ItemKind.CONTACT,
    WellKnownFolder.TASKS: ItemKind.TASK,
}
_CLASS_KINDS = {
    "IPF.Appointment": ItemKind.CALENDAR,
    "IPF.Contact": ItemKind.CONTACT,
    "IPF.Task": ItemKind.TASK,
}
_DEFAULT_FOLDER = {k: w.value for w, k in _FOLDER_KINDS.items()} | {
    ItemKind.DISTRIBUTION_LIST: WellKnownFolder.CONTACTS.value
}
_INVITATIONS = ("SendToNone", "SendOnlyToAll", "SendToAllAndSaveCopy")
_CANCELLATIONS = ("SendToNone", "SendOnlyToAll", "SendToAllAndSaveCopy")
_UPDATE_SENDS = (
    "SendOnlyToAll",
    "SendOnlyToChanged",
    "SendToAllAndSaveCopy",
    "SendToChangedAndSaveCopy",
)
_ID_TAGS = (t("ItemId"), t("OccurrenceItemId"), t("RecurringMasterItemId"))
_CONFLICT = (
    "The send or update operation could not be performed because the change key passed in the "
    "request does not match the current change key for the item."
)


def _shape(
    shape: ET.Element | None, default: frozenset[str], everything: tuple[str, ...]
) -> set[str]:
    base = (shape.findtext(t("BaseShape")) if shape is not None else None) or "Default"
    if base.strip() == "IdOnly":
        wanted = {"item:ItemId"}
    elif base.strip() == "AllProperties":
        wanted = set(everything) - {"item:MimeContent"}  # only when asked for by name
    else:
        wanted = set(default)
    if shape is not None and (shape.findtext(t("IncludeMimeContent")) or "").strip() == "true":
        wanted.add("item:MimeContent")
    extra = shape.find(t("AdditionalProperties")) if shape is not None else None
    for field in list(extra) if extra is not None else []:
        if field.tag == t("ExtendedFieldURI"):
            wanted.add(shape_key(field))
            continue
        uri = shape_path(field.get("FieldURI", ""))
        if uri:
            wanted.add(uri)
    return wanted


def _list(parent: ET.Element | None) -> list[ET.Element]:
    items = list(parent) if parent is not None else []
    if len(items) > MAX_IDS:
        raise SoapFault("ErrorExceededFindCountLimit", f"A request may name at most {MAX_IDS} ids.")
    return items


def _kids(parent: ET.Element | None) -> list[ET.Element]:
    """The children of an optional element (an Element's truth value is its child count)."""
    return list(parent) if parent is not None else []


def _one(body: ET.Element, container: str, child: ET.Element) -> ET.Element:
    """A copy of ``body`` whose ``container`` holds only ``child`` (to hand one id on)."""
    copy = ET.Element(body.tag, body.attrib)
    for element in body:
        if element.tag == m(container):
            ET.SubElement(copy, element.tag, element.attrib).append(child)
        else:
            copy.append(element)
    return copy


class EwsTypedItems:
    """The typed-item operations for one signed-in user."""

    def __init__(self, box: EwsMailbox, clock: Clock) -> None:
        self.box = box
        self.store = box.store
        self.alias = box.alias
        self.clock = clock
        self.calendar = CalendarRendering(box.alias, box.mailbox.primary_smtp_address)
        self._next_offset = 0

    # ------------------------------------------------------------ claiming

    async def claims(self, operation: str, body: ET.Element) -> bool:
        """Whether ``body`` is about typed items (served here) rather than messages."""
        if operation == "CreateItem":
            items = _kids(body.find(m("Items")))
            return bool(items) and all(
                i.tag in _TYPED_TAGS or i.tag in RESPONSE_TAGS for i in items
            )
        if operation == "FindItem":
            if body.find(m("CalendarView")) is not None:
                return True
            return any([await self._folder_kind(r) for r in _kids(body.find(m("ParentFolderIds")))])
        if operation in ("GetItem", "DeleteItem"):
            refs = _kids(body.find(m("ItemIds")))
        elif operation == "UpdateItem":
            changes = _kids(body.find(m("ItemChanges")))
            refs = [r for c in changes for r in c if r.tag in _ID_TAGS]
        else:
            return False
        message_ids: list[int] = []
        for ref in refs[:MAX_IDS]:
            if ref.tag != t("ItemId"):
                return True
            try:
                parsed = parse_id(ref.get("Id", ""))
            except InvalidId:
                continue
            if parsed.kind == "O":
                return True
            if parsed.kind == "M" and parsed.mailbox == self.alias.casefold():
                message_ids.append(parsed.message_id)
        if not message_ids:
            return False
        return bool(await self.store.typed_kinds(self.alias, message_ids))

    async def _folder_kind(self, ref: ET.Element) -> ItemKind | None:
        try:
            resolved = await self.box.resolve_folder(ref)
        except Refused:
            return None
        if resolved in (ROOT, TOP):
            return None
        if isinstance(resolved, str):
            # A distinguished folder: its kind is known without asking the store.
            known = {w.value: w for w in _FOLDER_KINDS}
            return _FOLDER_KINDS[known[resolved]] if resolved in known else None
        for folder in await self.box.folders():
            if folder.id == resolved and folder.well_known is not None:
                return _FOLDER_KINDS.get(folder.well_known)
            if folder.id == resolved:
                # A folder a client made: its class says what it holds (IPF.Appointment ...).
                head = ".".join(folder.folder_class.split(".")[:2])
                return _CLASS_KINDS.get(head)
        return None

    # ------------------------------------------------------------ ids

    def _parse(self, ref: ET.Element) -> tuple[EwsId, int | None]:
        """The Id a reference names, and the occurrence index it asks for (if any)."""
        try:
            if ref.tag == t("OccurrenceItemId"):
                master = parse_id(ref.get("RecurringMasterId", ""))
                instance = ref.get("InstanceIndex", "")
                if master.kind != "M" or not instance.isdigit() or len(instance) > 6:
                    raise InvalidId("bad occurrence reference")
                self.box.own(master.mailbox)
                return master, int(instance)
            if ref.tag == t("RecurringMasterItemId"):
                parsed = parse_id(ref.get("OccurrenceId", ""))
                self.box.own(parsed.mailbox)
                if parsed.kind == "O":
                    master_id, _ = parsed.occurrence()
                    return EwsId("M", parsed.mailbox, str(master_id)), None
                return parsed, None
            parsed = parse_id(ref.get("Id", ""))
        except InvalidId:
            raise Refused("ErrorInvalidIdMalformed", "Id is malformed.") from None
        self.box.own(parsed.mailbox)
        if parsed.kind == "O":
            master_id, index = parsed.occurrence()
            return EwsId("M", parsed.mailbox, str(master_id)), index
        if parsed.kind != "M":
            raise Refused("ErrorInvalidIdMalformed", "Id is malformed.")
        return parsed, None

    async def _typed(
        self, ref: ET.Element, resolution: str | None = None
    ) -> tuple[TypedItem, int | None]:
        """The item (and occurrence index) ``ref`` names; with UpdateItem's ``resolution``,
        its ChangeKey checked (GetItem and DeleteItem take any ChangeKey, as Exchange's do)."""
        parsed, index = self._parse(ref)
        item = await self.store.get_typed(self.alias, parsed.message_id)
        if parsed.in_folder is not None and parsed.in_folder != item.folder_id:
            raise Refused("ErrorItemNotFound", ITEM_NOT_FOUND)  # moved: ids name their folder
        given = ref.get("ChangeKey") if resolution is not None else None
        if resolution == "NeverOverwrite" and not given:
            raise Refused(
                "ErrorChangeKeyRequiredForWriteOperations",
                "When making a request that will change the item, the ChangeKey is required.",
            )
        if given and resolution != "AlwaysOverwrite" and given != change_key(item.modseq):
            raise Refused("ErrorIrresolvableConflict", _CONFLICT)
        if index is not None:
            data = item.calendar
            if data is None or not has_index(data, index):
                raise Refused(
                    "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
                    "The occurrence index is out of the recurrence range.",
                )
            if occurrence_at(data, index) is None:
                raise Refused(
                    "ErrorCalendarOccurrenceIsDeletedFromRecurrence",
                    "The occurrence has been deleted from the recurrence.",
                )
        return item, index

    # ------------------------------------------------------------ writing an item out

    def render(
        self, parent: ET.Element, item: TypedItem, fields: set[str], index: int | None = None
    ) -> None:
        """One typed item (or occurrence ``index`` of a series) as its EWS element, with the
        ``fields`` asked for: for any operation that lists items (sync, notifications)."""
        if item.kind is ItemKind.CALENDAR:
            occ = None
            if index is not None and item.calendar is not None:
                occ = occurrence_at(item.calendar, index)
            self.calendar.render(parent, item, fields, occ)
        elif item.kind is ItemKind.CONTACT:
            render_contact(parent, item, fields, self.alias)
        elif item.kind is ItemKind.DISTRIBUTION_LIST:
            render_distribution_list(parent, item, fields, self.alias)
        else:
            render_task(parent, item, fields, self.alias)
        render_typed_extended(parent[-1], item, fields)
        render_props(parent[-1], item, fields)

    # ------------------------------------------------------------ CreateItem

    async def create_item(self, body: ET.Element) -> ET.Element:
        response = ET.Element(m("CreateItemResponse"))
        messages = sub(response, m("ResponseMessages"))
        invitations = body.get("SendMeetingInvitations")
        for element in _list(body.find(m("Items"))):
            if element.tag in RESPONSE_TAGS:
                await self._respond(messages, element, body.get("MessageDisposition"))
                continue
            kind = _TYPED_TAGS[element.tag]
            try:
                if kind is ItemKind.CALENDAR and invitations not in _INVITATIONS:
                    raise Refused(
                        "ErrorSendMeetingInvitationsRequired",
                        "SendMeetingInvitations attribute is required for Calendar items.",
                    )
                folder = await self._folder(body.find(m("SavedItemFolderId")), kind)
                record = self._new_record(kind, element)
                item = await self.store.create_typed(self.alias, folder, kind, record)
                if isinstance(record, CalendarData) and invitations != "SendToNone":
                    item = await self._invite(item, record, invitations or "SendToNone")
            except (Refused, StoreError) as exc:
                refusal = client_refusal(exc)
                sub(
                    response_message(messages, "CreateItem", refusal.code, refusal.text), m("Items")
                )
                continue
            msg = response_message(messages, "CreateItem")
            self.render(sub(msg, m("Items")), item, {"item:ItemId"})
        return response

    async def _respond(
        self, messages: ET.Element, element: ET.Element, disposition: str | None
    ) -> None:
        """An AcceptItem, TentativelyAcceptItem or DeclineItem (:mod:`.ews_meeting_response`)."""
        try:
            answered = await respond(
                self.box, self.clock, element, disposition or "SendAndSaveCopy"
            )
        except (Refused, StoreError) as exc:
            refusal = client_refusal(exc)
            sub(response_message(messages, "CreateItem", refusal.code, refusal.text), m("Items"))
            return
        items = sub(response_message(messages, "CreateItem"), m("Items"))
        if answered.item is not None:
            self.render(items, answered.item, {"item:ItemId"})

    async def _folder(self, ref: ET.Element | None, kind: ItemKind) -> int | str:
        choice = next(iter(ref), None) if ref is not None else None
        if choice is None:
            return _DEFAULT_FOLDER[kind]
        resolved = await self.box.resolve_folder(choice)
        if resolved in (ROOT, TOP):
            raise Refused(
                "ErrorCannotCreateCalendarItemInNonCalendarFolder"
                if kind is ItemKind.CALENDAR
                else "ErrorInvalidOperation",
                "Items cannot be saved above the Top of Information Store.",
            )
        return resolved

    def _new_record(self, kind: ItemKind, element: ET.Element) -> TypedRecord:
        if kind is ItemKind.CALENDAR:
            fields = merge_calendar(calendar_from_mime(element), parse_calendar(element))
            if "start" not in fields or "end" not in fields:
                raise Refused("ErrorInvalidPropertySet", "A calendar item needs Start and End.")
            if fields["end"] < fields["start"]:
                raise Refused(
                    "ErrorCalendarEndDateIsEarlierThanStartDate",
                    "EndDate is earlier than StartDate",
                )
            fields.setdefault("uid", uuid.uuid4().hex.upper())
            mailbox = self.box.mailbox
            fields["organizer"] = Address(
                name=mailbox.display_name, address=mailbox.primary_smtp_address
            )
        elif kind is ItemKind.CONTACT:
            fields = parse_contact(element)
        elif kind is ItemKind.DISTRIBUTION_LIST:
            fields = parse_distribution_list(element)
        else:
            fields = parse_task(element)
        return new_record(kind, element, fields, self.clock.now())

    async def _invite(self, item: TypedItem, record: CalendarData, how: str) -> TypedItem:
        if not record.is_meeting:
            return item
        await send_invitations(
            self.store,
            self.box.mailbox,
            record,
            now=self.clock.now(),
            save_copy=how == "SendToAllAndSaveCopy",
        )
        sent = record.model_copy(update={"meeting_request_sent": True})
        return await self.store.replace_typed(self.alias, item.id, sent)

    # ------------------------------------------------------------ GetItem

    async def get_item(self, body: ET.Element) -> ET.Element:
        response = ET.Element(m("GetItemResponse"))
        messages = sub(response, m("ResponseMessages"))
        shape = body.find(m("ItemShape"))
        for ref in _list(body.find(m("ItemIds"))):
            try:
                if await self._is_message(ref):
                    answer = await self.box.get_item(_one(body, "ItemIds", ref))
                    messages.extend(_kids(answer.find(m("ResponseMessages"))))
                    continue
                item, index = await self._typed(ref)
            except (Refused, StoreError) as exc:
                refusal = client_refusal(exc)
                sub(response_message(messages, "GetItem", refusal.code, refusal.text), m("Items"))
                continue
            msg = response_message(messages, "GetItem")
            self.render(sub(msg, m("Items")), item, self._fields(item.kind, shape), index)
        return response

    def _fields(self, kind: ItemKind, shape: ET.Element | None) -> set[str]:
        kept = kept_paths(kind)
        if kind is ItemKind.CALENDAR:
            return _shape(shape, CALENDAR_DEFAULT, CALENDAR_FIELDS + kept)
        if kind is ItemKind.CONTACT:
            return _shape(shape, CONTACT_DEFAULT, CONTACT_FIELDS + kept)
        if kind is ItemKind.DISTRIBUTION_LIST:
            return _shape(shape, LIST_DEFAULT, LIST_FIELDS + kept)
        return _shape(shape, TASK_DEFAULT, TASK_FIELDS + kept)

    async def _is_message(self, ref: ET.Element) -> bool:
        """Whether ``ref`` names a plain message (the message operations' to answer)."""
        if ref.tag != t("ItemId"):
            return False
        try:
            parsed = parse_id(ref.get("Id", ""))
        except InvalidId:
            return False
        if parsed.kind != "M" or parsed.mailbox != self.alias.casefold():
            return False
        return not await self.store.typed_kinds(self.alias, [parsed.message_id])

    # ------------------------------------------------------------ UpdateItem

    async def update_item(self, body: ET.Element) -> ET.Element:
        from sitemail.access.ews_items import EwsItems  # the message path, for plain messages

        resolution = body.get("ConflictResolution", "AutoResolve")
        sending = body.get("SendMeetingInvitationsOrCancellations", "SendToNone")
        response = ET.Element(m("UpdateItemResponse"))
        messages = sub(response, m("ResponseMessages"))
        for change in _list(body.find(m("ItemChanges"))):
            ref = next((c for c in change if c.tag in _ID_TAGS), None)
            try:
                if ref is None:
                    raise Refused("ErrorInvalidIdMalformed", "Id is malformed.")
                if await self._is_message(ref):
                    answer = await EwsItems(self.box, self.clock).update_item(
                        _one(body, "ItemChanges", change)
                    )
                    messages.extend(_kids(answer.find(m("ResponseMessages"))))
                    continue
                item, index = await self._typed(ref, resolution)
                item = await self._apply(item, index, change.find(t("Updates")))
                if item.calendar is not None and sending in _UPDATE_SENDS:
                    # The attendees get the updated request (changed or not: sitemail
                    # keeps no per-attendee record of what each was sent).
                    how = "SendToAllAndSaveCopy" if sending.endswith("SaveCopy") else ""
                    item = await self._invite(item, item.calendar, how)
            except (Refused, StoreError) as exc:
                refusal = client_refusal(exc)
                sub(
                    response_message(messages, "UpdateItem", refusal.code, refusal.text), m("Items")
                )
                continue
            msg = response_message(messages, "UpdateItem")
            self.render(sub(msg, m("Items")), item, {"item:ItemId"}, index)
            sub(sub(msg, m("ConflictResults")), t("Count"), "0")
        return response

    async def _apply(
        self, item: TypedItem, index: int | None, updates: ET.Element | None
    ) -> TypedItem:
        new = updated_record(item, index, updates, self.clock.now())
        if item.task is not None and isinstance(new, TaskData):
            # A recurring task's update may make an occurrence of its own, whose id is the
            # answer (ews_task_recurrence).
            new, one_off = split_occurrence(item.task, new, self.clock.now())
            if one_off is not None:
                made = await self.store.create_typed(self.alias, item.folder_id, item.kind, one_off)
                await self.store.replace_typed(
                    self.alias, item.id, new, expected_modseq=item.modseq
                )
                return made
        return await self.store.replace_typed(self.alias, item.id, new, expected_modseq=item.modseq)

    # ------------------------------------------------------------ DeleteItem

    async def delete_item(self, body: ET.Element) -> ET.Element:
        from sitemail.access.ews_items import EwsItems

        kind = delete_type(body)
        cancellations = body.get("SendMeetingCancellations", "SendToNone")
        response = ET.Element(m("DeleteItemResponse"))
        messages = sub(response, m("ResponseMessages"))
        for ref in _list(body.find(m("ItemIds"))):
            try:
                if await self._is_message(ref):
                    answer = await EwsItems(self.box, self.clock).delete_item(
                        _one(body, "ItemIds", ref)
                    )
                    messages.extend(_kids(answer.find(m("ResponseMessages"))))
                    continue
                item, index = await self._typed(ref)
                if index is not None and item.calendar is not None:
                    occ = occurrence_at(item.calendar, index)
                    assert occ is not None
                    data = item.calendar
                    kept = [x for x in data.modified if x.original_start != occ.original_start]
                    new = data.model_copy(
                        update={"deleted": [*data.deleted, occ.original_start], "modified": kept}
                    )
                    await self.store.replace_typed(self.alias, item.id, new)
                else:
                    if (
                        item.calendar is not None
                        and item.calendar.is_meeting
                        and cancellations in _CANCELLATIONS[1:]
                    ):
                        cancelled = item.calendar.model_copy(
                            update={"cancelled": True, "sequence": item.calendar.sequence + 1}
                        )
                        await send_invitations(
                            self.store,
                            self.box.mailbox,
                            cancelled,
                            now=self.clock.now(),
                            save_copy=cancellations == "SendToAllAndSaveCopy",
                            method="CANCEL",
                        )
                    await self.store.delete(self.alias, item.id, hard=kind != "MoveToDeletedItems")
            except (Refused, StoreError) as exc:
                refusal = client_refusal(exc)
                response_message(messages, "DeleteItem", refusal.code, refusal.text)
                continue
            response_message(messages, "DeleteItem")
        return response

    # ------------------------------------------------------------ FindItem

    async def find_item(self, body: ET.Element) -> ET.Element:
        response = ET.Element(m("FindItemResponse"))
        messages = sub(response, m("ResponseMessages"))
        shape = body.find(m("ItemShape"))
        view = body.find(m("CalendarView"))
        for ref in _kids(body.find(m("ParentFolderIds"))):
            try:
                restriction, sort_order = body.find(m("Restriction")), body.find(m("SortOrder"))
                if body.find(m("QueryString")) is not None:
                    raise Refused(
                        "ErrorUnsupportedQueryFilter",
                        "sitemail takes no query string on calendar, contacts and tasks folders.",
                    )
                if view is not None and (restriction is not None or sort_order is not None):
                    # Exchange documents that a CalendarView takes no restriction and no
                    # sort order; ErrorInvalidOperation is what clients tested against
                    # Exchange expect of it (exchangelib's live suite); the wording is
                    # unverified.
                    raise Refused(
                        "ErrorInvalidOperation",
                        "Restrictions and sort order may not be specified for a CalendarView.",
                    )
                wanted = (
                    None if restriction is None else parse_restriction(restriction, TYPED_FIELDS)
                )
                keys = [] if sort_order is None else parse_sort_order(sort_order, TYPED_FIELDS)
                folder = await self.box.resolve_folder(ref)
                if folder in (ROOT, TOP):
                    raise Refused("ErrorFolderNotFound", "The folder was not found.")
                if view is not None:
                    rows, total, last = await self._calendar_view(folder, view)
                else:
                    rows, total, last = await self._folder_view(folder, body, wanted, keys)
            except (Refused, StoreError) as exc:
                refusal = client_refusal(exc)
                response_message(messages, "FindItem", refusal.code, refusal.text)
                continue
            msg = response_message(messages, "FindItem")
            attrs = {} if view is not None else {"IndexedPagingOffset": str(self._next_offset)}
            root = sub(
                msg,
                m("RootFolder"),
                **attrs,
                TotalItemsInView=str(total),
                IncludesLastItemInRange=_tf(last),
            )
            container = sub(root, t("Items"))
            for item, index in rows:
                fields = self._fields(item.kind, shape) - CALENDAR_DETAIL
                self.render(container, item, fields, index)
        return response

    async def _calendar_view(
        self, folder: int | str, view: ET.Element
    ) -> tuple[list[tuple[TypedItem, int | None]], int, bool]:
        try:
            start = datetime.fromisoformat(view.get("StartDate", "")).astimezone(UTC)
            end = datetime.fromisoformat(view.get("EndDate", "")).astimezone(UTC)
            limit_text = view.get("MaxEntriesReturned")
            limit = int(limit_text) if limit_text is not None else None
        except ValueError:
            raise SoapFault(
                "ErrorSchemaValidation", "CalendarView needs StartDate and EndDate date-times."
            ) from None
        if end < start:
            raise Refused(
                "ErrorCalendarEndDateIsEarlierThanStartDate", "EndDate is earlier than StartDate"
            )
        if end - start > MAX_VIEW_RANGE:
            raise Refused(
                "ErrorCalendarViewRangeTooBig",
                "The calendar view range is larger than the maximum of two years.",
            )
        if limit is not None and limit < 1:
            raise SoapFault("ErrorSchemaValidation", "MaxEntriesReturned must be at least 1.")
        wanted = min(limit or FIND_COUNT_LIMIT, FIND_COUNT_LIMIT)
        rows: list[tuple[datetime, int, TypedItem, int | None]] = []
        more = False
        for item in await self.store.calendar_items(self.alias, folder, start, end):
            data = item.calendar
            assert data is not None
            found, cut = expand(data, start, end, limit=wanted, ending_at_start=True)
            more = more or cut
            for occ in found:
                rows.append((occ.start, item.id, item, occ.index if data.recurrence else None))
        rows.sort(key=lambda r: (r[0], r[1], r[3] or 0))
        if len(rows) > wanted or more:
            if limit is None:
                raise Refused(
                    "ErrorExceededFindCountLimit",
                    f"The calendar view holds more than {FIND_COUNT_LIMIT} items; ask for a "
                    "shorter range or set MaxEntriesReturned.",
                )
            return [(r[2], r[3]) for r in rows[:wanted]], wanted, False
        return [(r[2], r[3]) for r in rows], len(rows), True

    async def _folder_view(
        self,
        folder: int | str,
        body: ET.Element,
        wanted: Predicate | None = None,
        keys: list[tuple[QueryField, bool]] | None = None,
    ) -> tuple[list[tuple[TypedItem, int | None]], int, bool]:
        paging = body.find(m("IndexedPageItemView"))
        offset, limit = 0, FIND_COUNT_LIMIT
        if paging is not None:
            try:
                offset = max(int(paging.get("Offset", "0")), 0)
                limit = min(
                    int(paging.get("MaxEntriesReturned", FIND_COUNT_LIMIT)), FIND_COUNT_LIMIT
                )
            except ValueError:
                raise SoapFault(
                    "ErrorSchemaValidation", "IndexedPageItemView needs integers."
                ) from None
        if wanted is None and not keys:
            page = await self.store.list_typed(
                self.alias, folder, offset=offset, limit=max(limit, 1)
            )
            items: list[tuple[TypedItem, int | None]] = [(i, None) for i in page.items[:limit]]
            self._next_offset = offset + len(items)
            return items, page.total, offset + len(items) >= page.total
        # A restricted or sorted view: the folder's items read (bounded), then filtered,
        # sorted and paged, as a message folder's view is.
        every: list[TypedItem] = []
        while len(every) < MAX_RESTRICTED_VIEW:
            page = await self.store.list_typed(
                self.alias, folder, offset=len(every), limit=FIND_COUNT_LIMIT
            )
            every.extend(page.items)
            if not page.items or len(every) >= page.total:
                break
        if len(every) >= MAX_RESTRICTED_VIEW:
            raise Refused(
                "ErrorQueryFilterTooLong",
                f"The folder holds more than {MAX_RESTRICTED_VIEW} items to restrict or sort; "
                "page through it instead.",
            )
        matching = [i for i in every if wanted is None or wanted(i)]
        sort_items(matching, keys or [])
        chosen = matching[offset : offset + limit]
        self._next_offset = offset + len(chosen)
        return [(i, None) for i in chosen], len(matching), offset + len(chosen) >= len(matching)


#: The most items of one folder a restricted or sorted view reads.
MAX_RESTRICTED_VIEW = 20_000


def _tf(value: bool) -> str:
    return "true" if value else "false"
