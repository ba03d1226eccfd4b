"""UpdateItem's changes to a calendar item, contact or task: the record they make (no I/O).

Each ``SetItemField``, ``AppendToItemField`` or ``DeleteItemField`` of an
``ItemChange`` is applied in order: a property the kind's record models is
merged by the kind's parser (:mod:`.ews_calendar`, :mod:`.ews_contacts`), one kept
as the client gave it by :mod:`.ews_typed_props`.  Deleting a property empties it,
so that GetItem no longer gives it, as Exchange's does.  A change to an
occurrence makes it an exception of its series.
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

from sitemail.access.ews_calendar import merge_calendar, modified_occurrence, parse_calendar
from sitemail.access.ews_contacts import (
    CONTACT_URIS,
    TASK_URIS,
    merge_contact,
    parse_contact,
    parse_task,
    settle_task,
)
from sitemail.access.ews_distribution_lists import (
    LIST_URIS,
    merge_distribution_list,
    parse_distribution_list,
)
from sitemail.access.ews_responses import Refused
from sitemail.access.ews_soap import t
from sitemail.access.ews_task_recurrence import check_series
from sitemail.access.ews_typed_extended import delete_extended, parse_extended
from sitemail.access.ews_typed_props import delete_prop, parse_props, set_props
from sitemail.mailbox.ical_parse import ICalError, parse_event
from sitemail.mailbox.item_records import (
    CalendarData,
    ContactData,
    DistributionListData,
    ItemKind,
    TaskData,
    TypedItem,
)
from sitemail.mailbox.recurrence import occurrence_at

__all__ = ["TypedRecord", "first_error", "new_record", "updated_record"]

TypedRecord = CalendarData | ContactData | TaskData | DistributionListData

_WRONG_COUNT = (
    "An object within a change description must contain one and only one property to modify."
)
# A calendar item's properties that DeleteItemField empties (record field, its empty value).
_CALENDAR_CLEARED: dict[str, tuple[str, Any]] = {
    "item:Subject": ("subject", ""),
    "calendar:Location": ("location", ""),
    "item:Body": ("body", ""),
    "calendar:Recurrence": ("recurrence", None),
    "calendar:RequiredAttendees": ("required", []),
    "calendar:OptionalAttendees": ("optional", []),
    "item:ReminderMinutesBeforeStart": ("reminder_minutes", None),
    "item:ReminderIsSet": ("reminder_minutes", None),
}


def first_error(exc: ValueError) -> str:
    """The first of a validation error's complaints, where it is and what it says."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return str(exc)


def new_record(
    kind: ItemKind, element: ET.Element, fields: dict[str, Any], now: datetime
) -> TypedRecord:
    """CreateItem's record of ``kind`` from the kind's parsed ``fields`` and the properties
    ``element`` sets that are kept as given."""
    fields["props"] = parse_extended(element, parse_props(kind, element))
    try:
        if kind is ItemKind.CALENDAR:
            return CalendarData.model_validate(fields)
        if kind is ItemKind.CONTACT:
            return ContactData.model_validate(fields)
        if kind is ItemKind.DISTRIBUTION_LIST:
            return DistributionListData.model_validate(fields)
        return _task(TaskData.model_validate(settle_task(fields, now)))
    except ValueError as exc:
        raise Refused(
            "ErrorInvalidPropertySet", f"The item is not valid: {first_error(exc)}"
        ) from None


def _task(task: TaskData) -> TaskData:
    check_series(task)
    return task


_PATHS = (t("FieldURI"), t("IndexedFieldURI"), t("ExtendedFieldURI"))


def updated_record(
    item: TypedItem, index: int | None, updates: ET.Element | None, now: datetime
) -> TypedRecord:
    """The record ``item`` (or its occurrence ``index``) has after ``updates``."""
    fields: dict[str, Any] = item.record.model_dump()
    changes: dict[str, Any] = {}
    for update in list(updates) if updates is not None else []:
        op = update.tag.rsplit("}", 1)[-1]
        path = next((c for c in update if c.tag in _PATHS), None)
        uri = path.get("FieldURI", "") if path is not None else ""
        key = path.get("FieldIndex") if path is not None else None
        if op == "DeleteItemField" and path is not None and path.tag == t("ExtendedFieldURI"):
            fields["props"] = delete_extended(fields["props"], path)
            continue
        if op == "DeleteItemField":
            kept = delete_prop(item.kind, fields["props"], uri, key)
            if kept is not None:
                fields["props"] = kept
            else:
                fields = _delete_field(item.kind, fields, uri, key)
            continue
        value = next((c for c in update if c is not path), None)
        if value is None or value.tag != t(item.kind.value):
            raise Refused("ErrorIncorrectUpdatePropertyCount", _WRONG_COUNT)
        fields["props"] = parse_extended(
            value,
            set_props(
                item.kind,
                fields["props"],
                value,
                indexed=key is not None,
                append=op == "AppendToItemField",
            ),
        )
        if item.kind is ItemKind.CALENDAR:
            part = parse_calendar(value)
            changes.update(part)
            fields = merge_calendar(fields, part)
        elif item.kind is ItemKind.CONTACT:
            fields = merge_contact(fields, parse_contact(value), indexed=key is not None)
        elif item.kind is ItemKind.DISTRIBUTION_LIST:
            fields = merge_distribution_list(
                fields, parse_distribution_list(value), append=op == "AppendToItemField"
            )
        else:
            fields.update(parse_task(value))
    try:
        if index is not None and item.calendar is not None:
            occ = occurrence_at(item.calendar, index)
            assert occ is not None
            return modified_occurrence(item.calendar, occ, changes)
        if item.kind is ItemKind.CALENDAR:
            fields["sequence"] = int(fields.get("sequence", 0)) + 1
            calendar = CalendarData.model_validate(fields)
            old = item.calendar
            assert old is not None
            if calendar.recurrence != old.recurrence or calendar.start != old.start:
                # A new pattern or time makes the old exceptions meaningless (as Outlook
                # does); clients that send every property unchanged keep them.
                calendar = calendar.model_copy(update={"modified": [], "deleted": []})
            return calendar
        if item.kind is ItemKind.CONTACT:
            return ContactData.model_validate(fields)
        if item.kind is ItemKind.DISTRIBUTION_LIST:
            return DistributionListData.model_validate(fields)
        return _task(TaskData.model_validate(settle_task(fields, now)))
    except ValueError as exc:
        raise Refused(
            "ErrorInvalidPropertySet", f"The item is not valid: {first_error(exc)}"
        ) from None


def _delete_field(
    kind: ItemKind, fields: dict[str, Any], uri: str, key: str | None
) -> dict[str, Any]:
    if kind is ItemKind.CONTACT:
        if key is not None:
            target = {"contacts:EmailAddress": "emails", "contacts:PhoneNumber": "phones"}.get(uri)
            if target is not None:
                fields[target] = {k: v for k, v in fields.get(target, {}).items() if k != key}
            return fields
        name = CONTACT_URIS.get(uri)
        if name:
            fields[name] = {} if name in ("emails", "phones") else ""
        return fields
    if kind is ItemKind.DISTRIBUTION_LIST:
        emptied = LIST_URIS.get(uri)
        if emptied is not None:
            fields[emptied[0]] = emptied[1]
        return fields
    if kind is ItemKind.TASK:
        name = TASK_URIS.get(uri)
        if name in ("start_date", "due_date", "complete_date"):
            fields[name] = None
        elif name in ("subject", "body"):
            fields[name] = ""
        return fields
    cleared = _CALENDAR_CLEARED.get(uri)
    if cleared is not None:
        fields[cleared[0]] = cleared[1]
        if uri == "calendar:Recurrence":
            fields["modified"], fields["deleted"] = [], []
    return fields  # clearing what the store does not keep leaves the item as it is


def calendar_from_mime(element: ET.Element) -> dict[str, Any]:
    """The calendar fields a CalendarItem's MimeContent (an iCalendar object) gives.

    Gateways create appointments this way (DavMail turns a CalDAV PUT into a
    CreateItem whose MimeContent is the client's VCALENDAR); the item's own
    elements, when it has some, are applied over these.  An object that cannot
    be read is ErrorMimeContentConversionFailed, as from Exchange.
    """
    mime = element.find(t("MimeContent"))
    data = "".join((mime.text or "").split()) if mime is not None else ""
    if mime is None or not data:
        return {}
    try:
        text = base64.b64decode(data, validate=True).decode(mime.get("CharacterSet") or "utf-8")
        record = parse_event(text).record
    except (binascii.Error, UnicodeDecodeError, LookupError, ICalError) as exc:
        raise Refused(
            "ErrorMimeContentConversionFailed",
            f"The MimeContent is not an iCalendar object sitemail can read: {exc}",
        ) from None
    # What the client's object says; the organizer is the mailbox's (CreateItem's rule).
    return record.model_dump(exclude={"organizer"})
