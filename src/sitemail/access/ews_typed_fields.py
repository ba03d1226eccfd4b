"""The properties a FindItem restriction or sort order may name on calendar items, contacts
and tasks (``calendar.filter(start__lt=...)``, ``contacts.filter(surname='Doe')``).

A message's properties come from its summary (:data:`.ews_restriction.FIELDS`); a typed
item's from its record (:class:`~sitemail.mailbox.item_records.TypedItem`).  A property
the item's kind does not have reads as absent, as Exchange's does: an ``Exists`` on it
is false and only ``IsNotEqualTo`` matches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sitemail.access.ews_restriction import QueryField
from sitemail.access.ews_typed_props import INDEXED, KEPT, entry_value, prop_value
from sitemail.mailbox.item_records import CalendarData, ContactData, TaskData, TypedItem

__all__ = ["TYPED_FIELDS"]


def _calendar(read: Callable[[CalendarData], Any]) -> Callable[[TypedItem], Any]:
    return lambda item: None if item.calendar is None else read(item.calendar)


def _contact(read: Callable[[ContactData], Any]) -> Callable[[TypedItem], Any]:
    return lambda item: None if item.contact is None else read(item.contact)


def _task(read: Callable[[TaskData], Any]) -> Callable[[TypedItem], Any]:
    return lambda item: None if item.task is None else read(item.task)


def _subject(item: TypedItem) -> str | None:
    if item.calendar is not None:
        return item.calendar.subject
    if item.task is not None:
        return item.task.subject
    if item.contact is not None:
        # A contact's subject is its name, unless the client set one apart.
        given = prop_value(item, "item:Subject")
        return item.contact.display_name if given is None else given
    if item.distribution_list is not None:
        return item.distribution_list.display_name
    return None


def _body(item: TypedItem) -> str | None:
    return item.record.body


def _kept(path: str) -> QueryField:
    kind = {"strings": "strings", "entries": "string"}.get(KEPT_KINDS[path], KEPT_KINDS[path])
    return QueryField(kind, lambda item: prop_value(item, path))


def _entry(container: str, key: str, part: str | None) -> QueryField:
    return QueryField("string", lambda item: entry_value(item, container, key, part))


def _email(key: str) -> QueryField:
    return QueryField("string", _contact(lambda c: c.emails.get(key)))


def _phone(key: str) -> QueryField:
    return QueryField("string", _contact(lambda c: c.phones.get(key)))


# How each kept property's value reads, whichever kind keeps it ("element": not searchable).
KEPT_KINDS = {path: how for kept in KEPT.values() for path, how in kept.items()}
# The labels of EWS's indexed contact properties (EmailAddressKeyType, PhoneNumberKeyType,
# PhysicalAddressKeyType, ImAddressKeyType) and a postal address's parts.
_EMAIL_KEYS = ("EmailAddress1", "EmailAddress2", "EmailAddress3")
_PHONE_KEYS = [
    "AssistantPhone",
    "BusinessFax",
    "BusinessPhone",
    "BusinessPhone2",
    "Callback",
    "CarPhone",
    "CompanyMainPhone",
    "HomeFax",
    "HomePhone",
    "HomePhone2",
    "Isdn",
    "MobilePhone",
    "OtherFax",
    "OtherTelephone",
    "Pager",
    "PrimaryPhone",
    "RadioPhone",
    "Telex",
    "TtyTddPhone",
]
_ADDRESS_KEYS = ("Home", "Business", "Other")
_ADDRESS_PARTS = ("Street", "City", "State", "CountryOrRegion", "PostalCode")
_IM_KEYS = ("ImAddress1", "ImAddress2", "ImAddress3")
_INDEXED: dict[str, QueryField] = {
    **{f"contacts:EmailAddress#{k}": _email(k) for k in _EMAIL_KEYS},
    **{f"contacts:PhoneNumber#{k}": _phone(k) for k in _PHONE_KEYS},
    **{
        f"contacts:PhysicalAddress:{part}#{k}": _entry(INDEXED["contacts:PhysicalAddress"], k, part)
        for k in _ADDRESS_KEYS
        for part in _ADDRESS_PARTS
    },
    **{f"contacts:ImAddress#{k}": _entry(INDEXED["contacts:ImAddress"], k, None) for k in _IM_KEYS},
}


def _reminder(path: str, read: Callable[[CalendarData], Any]) -> Callable[[TypedItem], Any]:
    # A calendar item's reminder is its record's; a contact's or a task's is kept as given.
    return lambda item: read(item.calendar) if item.calendar else prop_value(item, path)


def _minutes(item: TypedItem) -> Any:
    # The minutes as set when kept (a calendar item's too), else the calendar record's.
    path = "item:ReminderMinutesBeforeStart"
    if item.calendar is not None and path not in item.calendar.props:
        return item.calendar.reminder_minutes or 0
    return prop_value(item, path)


TYPED_FIELDS: dict[str, QueryField] = {
    **{path: _kept(path) for path, how in KEPT_KINDS.items() if how != "element"},
    **_INDEXED,
    "item:ReminderIsSet": QueryField(
        "bool", _reminder("item:ReminderIsSet", lambda c: c.reminder_minutes is not None)
    ),
    "item:ReminderMinutesBeforeStart": QueryField("int", _minutes),
    # Exchange 2010 takes a restriction on it and matches nothing (as on messages).
    "item:ReminderDueBy": QueryField("datetime", lambda item: None),
    "item:Subject": QueryField("string", _subject),
    "item:Body": QueryField("string", _body),
    "item:ItemClass": QueryField("string", lambda item: item.kind.item_class),
    "item:DateTimeCreated": QueryField("datetime", lambda item: item.created_at),
    "item:DateTimeReceived": QueryField("datetime", lambda item: item.created_at),
    "calendar:Start": QueryField("datetime", _calendar(lambda c: c.start)),
    "calendar:End": QueryField("datetime", _calendar(lambda c: c.end)),
    "calendar:IsAllDayEvent": QueryField("bool", _calendar(lambda c: c.all_day)),
    "calendar:Location": QueryField("string", _calendar(lambda c: c.location)),
    "calendar:LegacyFreeBusyStatus": QueryField("string", _calendar(lambda c: c.free_busy.value)),
    "calendar:IsCancelled": QueryField("bool", _calendar(lambda c: c.cancelled)),
    "calendar:IsRecurring": QueryField("bool", _calendar(lambda c: c.recurrence is not None)),
    "calendar:Organizer": QueryField(
        "string", _calendar(lambda c: None if c.organizer is None else c.organizer.address)
    ),
    "contacts:DisplayName": QueryField(
        "string",
        lambda i: (
            i.distribution_list.display_name
            if i.distribution_list
            else (i.contact.display_name if i.contact else None)
        ),
    ),
    "contacts:GivenName": QueryField("string", _contact(lambda c: c.given_name)),
    "contacts:MiddleName": QueryField("string", _contact(lambda c: c.middle_name)),
    "contacts:Surname": QueryField("string", _contact(lambda c: c.surname)),
    "contacts:Nickname": QueryField("string", _contact(lambda c: c.nickname)),
    "contacts:FileAs": QueryField("string", _contact(lambda c: c.file_as)),
    "contacts:CompanyName": QueryField("string", _contact(lambda c: c.company)),
    "contacts:Department": QueryField("string", _contact(lambda c: c.department)),
    "contacts:JobTitle": QueryField("string", _contact(lambda c: c.job_title)),
    "task:Status": QueryField("string", _task(lambda t: t.status.value)),
    "task:StartDate": QueryField("datetime", _task(lambda t: t.start_date)),
    "task:DueDate": QueryField("datetime", _task(lambda t: t.due_date)),
    "task:CompleteDate": QueryField("datetime", _task(lambda t: t.complete_date)),
    "task:PercentComplete": QueryField("float", _task(lambda t: t.percent_complete)),
    "task:IsComplete": QueryField("bool", _task(lambda t: t.status.value == "Completed")),
}
