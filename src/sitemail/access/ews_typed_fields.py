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
        return item.contact.display_name  # a contact's subject is its name
    return None


def _body(item: TypedItem) -> str | None:
    data = item.calendar or item.task or item.contact
    return None if data is None else data.body


TYPED_FIELDS: dict[str, QueryField] = {
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
    "contacts:DisplayName": QueryField("string", _contact(lambda c: c.display_name)),
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
