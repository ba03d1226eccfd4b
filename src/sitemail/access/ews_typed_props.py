"""The properties of calendar items, contacts and tasks that their records have no field of
their own for: an item's categories, sensitivity, importance and reminder, a contact's
birthday, children or postal addresses, a task's billing information or recurrence.

Exchange keeps every property of an item as a MAPI property.  sitemail's typed records
(:mod:`sitemail.mailbox.item_records`) model what the store itself reads (times, names,
attendees); the rest is kept in the record's ``props`` as the element the client sent,
keyed by its property path, and given back as it was set.  This module reads those
elements out of CreateItem and UpdateItem (SetItemField, AppendToItemField,
DeleteItemField, indexed entries too), writes them into an item's element in the
schema's order, and reads their values for restrictions and sort orders
(:mod:`.ews_typed_fields`).  A value that is not of the property's type is refused with
``ErrorInvalidValueForProperty``, as Exchange refuses it.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sitemail.access.ews_responses import Refused
from sitemail.access.ews_soap import sub, t
from sitemail.mailbox.item_records import MAX_PROP, MAX_PROPS, ItemKind, TypedItem

__all__ = [
    "INDEXED",
    "KEPT",
    "MAX_SUBJECT",
    "delete_prop",
    "kept_paths",
    "parse_props",
    "prop_value",
    "render_props",
    "set_props",
    "shape_path",
]

#: Exchange keeps the first 255 characters of a subject and drops the rest.
MAX_SUBJECT = 255


def _names(text: str) -> list[str]:
    return text.split()


# ItemType's sequence, then each kind's own (the EWS schema, types.xsd).
_ITEM_ORDER = _names(
    "MimeContent ItemId ParentFolderId ItemClass Subject Sensitivity Body Attachments "
    "DateTimeReceived Size Categories Importance InReplyTo IsSubmitted IsDraft IsFromMe "
    "IsResend IsUnmodified InternetMessageHeaders DateTimeSent DateTimeCreated ResponseObjects "
    "ReminderDueBy ReminderIsSet ReminderMinutesBeforeStart DisplayCc DisplayTo HasAttachments "
    "ExtendedProperty Culture EffectiveRights LastModifiedName LastModifiedTime IsAssociated "
    "WebClientReadFormQueryString WebClientEditFormQueryString ConversationId UniqueBody"
)
_KIND_ORDER = {
    ItemKind.CONTACT: _names(
        "FileAs FileAsMapping DisplayName GivenName Initials MiddleName Nickname CompleteName "
        "CompanyName EmailAddresses PhysicalAddresses PhoneNumbers AssistantName Birthday "
        "BusinessHomePage Children Companies ContactSource Department Generation ImAddresses "
        "JobTitle Manager Mileage OfficeLocation PostalAddressIndex Profession SpouseName "
        "Surname WeddingAnniversary HasPicture PhoneticFullName PhoneticFirstName "
        "PhoneticLastName Alias Notes Photo UserSMIMECertificate MSExchangeCertificate "
        "DirectoryId ManagerMailbox DirectReports"
    ),
    ItemKind.TASK: _names(
        "ActualWork AssignedTime BillingInformation ChangeCount Companies CompleteDate Contacts "
        "DelegationState Delegator DueDate IsAssignmentEditable IsComplete IsRecurring "
        "IsTeamTask Mileage Owner PercentComplete Recurrence StartDate Status "
        "StatusDescription TotalWork"
    ),
    ItemKind.DISTRIBUTION_LIST: _names("DisplayName FileAs ContactSource Members"),
    ItemKind.CALENDAR: _names(
        "UID RecurrenceId DateTimeStamp Start End OriginalStart IsAllDayEvent "
        "LegacyFreeBusyStatus Location When IsMeeting IsCancelled IsRecurring "
        "MeetingRequestWasSent IsResponseRequested CalendarItemType MyResponseType Organizer "
        "RequiredAttendees OptionalAttendees Resources ConflictingMeetingCount "
        "AdjacentMeetingCount ConflictingMeetings AdjacentMeetings Duration TimeZone "
        "AppointmentReplyTime AppointmentSequenceNumber AppointmentState Recurrence "
        "FirstOccurrence LastOccurrence ModifiedOccurrences DeletedOccurrences MeetingTimeZone "
        "StartTimeZone EndTimeZone ConferenceType AllowNewTimeProposal IsOnlineMeeting "
        "MeetingWorkspaceUrl NetShowUrl"
    ),
}
_ORDER = {
    kind: {name: n for n, name in enumerate([*_ITEM_ORDER, *own])}
    for kind, own in _KIND_ORDER.items()
}

# The writable ItemType properties every kind keeps here (the calendar's reminder is its
# record's), and each kind's own: path -> how its value reads ("strings": a list of
# <t:String>; "entries": indexed entries; "element": kept whole, not searchable).
_ITEM = {
    "item:Sensitivity": "string",
    "item:Categories": "strings",
    "item:Importance": "string",
    "item:InReplyTo": "string",
    "item:ReminderDueBy": "datetime",
    "item:Culture": "string",
}
_REMINDER = {"item:ReminderIsSet": "bool", "item:ReminderMinutesBeforeStart": "int"}
_CONTACT = {
    "item:Subject": "string",  # a contact's subject, when set apart from its name
    "contacts:FileAsMapping": "string",
    "contacts:Initials": "string",
    "contacts:PhysicalAddresses": "entries",
    "contacts:AssistantName": "string",
    "contacts:Birthday": "datetime",
    "contacts:BusinessHomePage": "string",
    "contacts:Children": "strings",
    "contacts:Companies": "strings",
    "contacts:ContactSource": "string",
    "contacts:Generation": "string",
    "contacts:ImAddresses": "entries",
    "contacts:Manager": "string",
    "contacts:Mileage": "string",
    "contacts:OfficeLocation": "string",
    "contacts:PostalAddressIndex": "string",
    "contacts:Profession": "string",
    "contacts:SpouseName": "string",
    "contacts:WeddingAnniversary": "datetime",
    "contacts:PhoneticFullName": "string",
    "contacts:PhoneticFirstName": "string",
    "contacts:PhoneticLastName": "string",
}
_TASK = {
    "task:ActualWork": "int",
    "task:AssignedTime": "datetime",
    "task:BillingInformation": "string",
    "task:ChangeCount": "int",
    "task:Companies": "strings",
    "task:Contacts": "strings",
    "task:DelegationState": "string",
    "task:Mileage": "string",
    "task:Recurrence": "element",
    "task:TotalWork": "int",
}
_CALENDAR = {
    # Kept as set too: the record's reminder is none while ReminderIsSet is false, but
    # Exchange keeps the minutes a client gave either way.
    "item:ReminderMinutesBeforeStart": "int",
    "calendar:When": "string",
    "calendar:IsResponseRequested": "bool",
    "calendar:Resources": "element",
    "calendar:ConferenceType": "int",
    "calendar:AllowNewTimeProposal": "bool",
    "calendar:IsOnlineMeeting": "bool",
    "calendar:MeetingWorkspaceUrl": "string",
    "calendar:NetShowUrl": "string",
}
#: Per kind, the properties kept in the record's ``props`` and how their values read.
KEPT: dict[ItemKind, dict[str, str]] = {
    ItemKind.CALENDAR: {**_ITEM, **_CALENDAR},
    ItemKind.CONTACT: {**_ITEM, **_REMINDER, **_CONTACT},
    ItemKind.TASK: {**_ITEM, **_REMINDER, **_TASK},
    ItemKind.DISTRIBUTION_LIST: {**_ITEM, **_REMINDER},
}
# What GetItem answers for a property never set (Exchange gives these on every item).
_DEFAULTS = {
    "item:Sensitivity": "Normal",
    "item:Importance": "Normal",
    "item:ReminderIsSet": "false",
    "item:ReminderMinutesBeforeStart": "0",
    "task:ChangeCount": "1",
}
# Kept by the server alone (:mod:`.ews_task_recurrence`): what a client sends of them is not.
_SERVER_ONLY = frozenset({"task:ChangeCount"})
# What a restriction reads for a property never set (as on messages).
_UNSET: dict[str, Any] = {"item:ReminderIsSet": False, "item:ReminderMinutesBeforeStart": 0}
# Properties a renderer gives a value of its own when none was set (a contact's subject is
# its name); deleting one leaves it empty rather than derived.
_DERIVED = frozenset({"item:Subject"})
#: The indexed properties kept here: IndexedFieldURI path (before any ':Street' part) ->
#: the container property that holds their entries.
INDEXED = {
    "contacts:PhysicalAddress": "contacts:PhysicalAddresses",
    "contacts:ImAddress": "contacts:ImAddresses",
}
_SHAPE_NAMES = {
    "contacts:EmailAddress": "contacts:EmailAddresses",
    "contacts:PhoneNumber": "contacts:PhoneNumbers",
    **INDEXED,
}


def kept_paths(kind: ItemKind) -> tuple[str, ...]:
    """The property paths of ``kind`` kept here (what AllProperties adds)."""
    return tuple(KEPT[kind])


def shape_path(uri: str) -> str:
    """The property an ItemShape's path names: an indexed path (``contacts:EmailAddress``,
    ``contacts:PhysicalAddress:Street``) names its container, whose entries all come."""
    return _SHAPE_NAMES.get(uri.rsplit(":", 1)[0] if uri.count(":") > 1 else uri, uri)


def _local(element: ET.Element) -> str:
    return element.tag.rpartition("}")[2]


def _text(element: ET.Element, kind: str, path: str) -> str:
    """The element's value checked against ``kind`` (Refused when it is not of it)."""
    text = (element.text or "").strip()
    try:
        if kind == "bool" and text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(text)
        if kind == "int":
            int(text)
        if kind == "datetime":
            datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Refused(
            "ErrorInvalidValueForProperty", f"{text[:60]!r} is not valid for {path}."
        ) from None
    return text


def _kept(element: ET.Element, kind: str, path: str) -> str:
    """``element`` as the XML text kept for ``path``."""
    clone = copy.deepcopy(element)
    clone.tail = None
    if kind in ("string", "bool", "int", "datetime"):
        clone.text = _text(element, kind, path) if kind != "string" else element.text
        if kind == "bool":
            clone.text = "true" if (clone.text or "").lower() in ("true", "1") else "false"
        if path == "item:Subject" and clone.text:
            clone.text = clone.text[:MAX_SUBJECT]
    stored = ET.tostring(clone, encoding="unicode")
    if len(stored) > MAX_PROP:
        raise Refused("ErrorInvalidPropertySet", f"{path} holds more than {MAX_PROP} characters.")
    return stored


def parse_props(kind: ItemKind, element: ET.Element) -> dict[str, str]:
    """The kept properties a <t:CalendarItem>, <t:Contact> or <t:Task> of CreateItem sets."""
    out: dict[str, str] = {}
    kept = KEPT[kind]
    for child in element:
        path = _path_of(kind, child)
        if path is not None:
            out[path] = _kept(child, kept[path], path)
    return out


def _path_of(kind: ItemKind, child: ET.Element) -> str | None:
    name = _local(child)
    for path in KEPT[kind]:
        if path.endswith(f":{name}") and path not in _SERVER_ONLY:
            return path
    return None


def set_props(
    kind: ItemKind, props: Mapping[str, str], value: ET.Element, *, indexed: bool, append: bool
) -> dict[str, str]:
    """``props`` after a SetItemField (or AppendToItemField) whose item element is ``value``:
    an indexed entry is merged into the container's, appended strings join the list."""
    out = dict(props)
    kept = KEPT[kind]
    for child in value:
        path = _path_of(kind, child)
        if path is None:
            continue
        old = out.get(path)
        if old is not None and (indexed and kept[path] == "entries"):
            out[path] = _kept(_merge_entries(ET.fromstring(old), child), "entries", path)
        elif old is not None and append and kept[path] == "strings":
            joined = ET.fromstring(old)
            joined.extend(copy.deepcopy(list(child)))
            out[path] = _kept(joined, "strings", path)
        else:
            out[path] = _kept(child, kept[path], path)
    if len(out) > MAX_PROPS:
        raise Refused("ErrorInvalidPropertySet", f"An item keeps at most {MAX_PROPS} properties.")
    return out


def _merge_entries(old: ET.Element, new: ET.Element) -> ET.Element:
    for entry in new.findall(t("Entry")):
        mine = _entry(old, entry.get("Key", ""))
        if mine is None:
            old.append(copy.deepcopy(entry))
            continue
        if len(entry) == 0:
            mine.text = entry.text
            continue
        for part in entry:
            for stale in mine.findall(part.tag):
                mine.remove(stale)
            mine.append(copy.deepcopy(part))
    return old


def _entry(container: ET.Element, key: str) -> ET.Element | None:
    return next((e for e in container.findall(t("Entry")) if e.get("Key") == key), None)


def delete_prop(
    kind: ItemKind, props: Mapping[str, str], uri: str, index: str | None
) -> dict[str, str] | None:
    """``props`` after DeleteItemField on ``uri`` (``index``: an indexed entry's key), or
    None when ``uri`` is not kept here.  Deleting the last part of an entry deletes it."""
    out = dict(props)
    if index is None:
        if uri not in KEPT[kind]:
            return None
        if uri in _DERIVED:
            # Kept empty, so that the value the renderer would derive is not given either.
            out[uri] = ET.tostring(ET.Element(t(uri.split(":", 1)[1])), encoding="unicode")
        else:
            out.pop(uri, None)
        return out
    # contacts:PhysicalAddress:Street -> the container of PhysicalAddress entries, Street.
    head, _, part = uri.partition(":")[2].partition(":")
    container = INDEXED.get(f"{uri.split(':', 1)[0]}:{head}")
    if container is None or container not in KEPT[kind]:
        return None
    stored = out.get(container)
    if stored is None:
        return out
    holder = ET.fromstring(stored)
    entry = _entry(holder, index)
    if entry is not None:
        for stale in entry.findall(t(part)) if part else []:
            entry.remove(stale)
        if not part or len(entry) == 0:
            holder.remove(entry)
    if len(holder):
        out[container] = ET.tostring(holder, encoding="unicode")
    else:
        out.pop(container, None)
    return out


def render_props(element: ET.Element, item: TypedItem, fields: set[str] | frozenset[str]) -> None:
    """Write the kept properties ``fields`` asks for into the item's ``element`` (in place of
    what its renderer wrote for them), then put its children in the schema's order."""
    data = item.record
    for path in KEPT[item.kind]:
        if path not in fields:
            continue
        stored = data.props.get(path)
        if stored is None and path not in _DEFAULTS:
            continue
        name = path.split(":", 1)[1]
        if stored is None and element.find(t(name)) is not None:
            continue  # the renderer's own value (a calendar item's reminder)
        for stale in element.findall(t(name)):
            element.remove(stale)
        kept = None if stored is None else ET.fromstring(stored)
        if kept is not None and (kept.text or len(kept) or path not in _DERIVED):
            element.append(kept)
        elif kept is None:
            sub(element, t(name), _DEFAULTS[path])
    if item.kind is ItemKind.TASK and "task:Recurrence" in data.props:
        recurring = element.find(t("IsRecurring"))
        if recurring is not None:
            recurring.text = "true"
    order = _ORDER[item.kind]
    children = sorted(element, key=lambda c: order.get(_local(c), len(order)))
    for child in list(element):
        element.remove(child)
    element.extend(children)


def prop_value(item: TypedItem, path: str) -> Any:
    """The value of kept property ``path`` for a restriction or sort order (None if unset):
    a string, a list of strings, a bool, an int or an aware datetime."""
    data = item.record
    kind = KEPT[item.kind].get(path)
    stored = data.props.get(path)
    if kind is None:
        return None
    if stored is None:
        return _UNSET.get(path)
    element = ET.fromstring(stored)
    if kind == "strings":
        return [s.text or "" for s in element]
    text = (element.text or "").strip()
    if kind == "bool":
        return text.lower() in ("true", "1")
    if kind == "int":
        return int(text)
    if kind == "datetime":
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    if kind == "string":
        return element.text or ""
    return None


def entry_value(item: TypedItem, container: str, key: str, part: str | None) -> str | None:
    """The text of indexed entry ``key`` (its ``part``: Street, City ...) of a kept container."""
    data = item.record
    stored = data.props.get(container)
    if stored is None:
        return None
    entry = _entry(ET.fromstring(stored), key)
    if entry is None:
        return None
    if part is None:
        return entry.text
    return entry.findtext(t(part))
