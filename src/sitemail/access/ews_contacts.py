"""EWS Contact and Task: reading them from requests, writing them out in the schema's order.

As for calendar items (:mod:`.ews_calendar`), a parser returns the record
fields an element sets, which CreateItem takes as the item and UpdateItem
merges over the stored record; ``SetItemField`` on an indexed property
(``contacts:EmailAddress`` with ``FieldIndex="EmailAddress1"``) carries a
one-entry dictionary that is merged into the item's, and DeleteItemField on
one removes that entry.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

from sitemail.access.ews_calendar import parse_time
from sitemail.access.ews_ids import change_key, folder_id, item_id
from sitemail.access.ews_responses import Refused
from sitemail.access.ews_soap import sub, t
from sitemail.access.ews_typed_props import MAX_SUBJECT
from sitemail.mailbox.item_content import contact_vcard
from sitemail.mailbox.item_records import ContactData, TaskData, TaskStatus, TypedItem

__all__ = [
    "CONTACT_DEFAULT",
    "CONTACT_FIELDS",
    "CONTACT_URIS",
    "TASK_DEFAULT",
    "TASK_FIELDS",
    "TASK_URIS",
    "parse_contact",
    "parse_task",
    "render_contact",
    "render_task",
    "typed_header",
]

#: Simple contact properties: element name -> record field.
_CONTACT_TEXT = {
    "FileAs": "file_as",
    "DisplayName": "display_name",
    "GivenName": "given_name",
    "MiddleName": "middle_name",
    "Nickname": "nickname",
    "CompanyName": "company",
    "Department": "department",
    "JobTitle": "job_title",
    "Surname": "surname",
}
# The names Exchange holds to 255 characters.
_NAMES_255 = frozenset({"GivenName", "MiddleName", "Surname"})
#: The FieldURI of each record field (for DeleteItemField).
CONTACT_URIS = {f"contacts:{name}": field for name, field in _CONTACT_TEXT.items()} | {
    "item:Body": "body",
    "contacts:EmailAddresses": "emails",
    "contacts:PhoneNumbers": "phones",
}
# ContactItemType's order (the ones kept), after ItemType's.
CONTACT_FIELDS = (
    "item:MimeContent",
    "item:ItemId",
    "item:ParentFolderId",
    "item:ItemClass",
    "item:Subject",
    "item:Body",
    "item:DateTimeCreated",
    "contacts:FileAs",
    "contacts:DisplayName",
    "contacts:GivenName",
    "contacts:MiddleName",
    "contacts:Nickname",
    "contacts:CompleteName",
    "contacts:CompanyName",
    "contacts:EmailAddresses",
    "contacts:PhoneNumbers",
    "contacts:Department",
    "contacts:JobTitle",
    "contacts:Surname",
)
CONTACT_DEFAULT = frozenset(CONTACT_FIELDS) - {
    "item:MimeContent",
    "item:Body",
    "contacts:CompleteName",
}

TASK_URIS = {
    "item:Subject": "subject",
    "item:Body": "body",
    "task:StartDate": "start_date",
    "task:DueDate": "due_date",
    "task:CompleteDate": "complete_date",
    "task:Status": "status",
    "task:PercentComplete": "percent_complete",
}
TASK_FIELDS = (
    "item:ItemId",
    "item:ParentFolderId",
    "item:ItemClass",
    "item:Subject",
    "item:Body",
    "item:DateTimeCreated",
    "task:CompleteDate",
    "task:DueDate",
    "task:IsComplete",
    "task:IsRecurring",
    "task:PercentComplete",
    "task:StartDate",
    "task:Status",
)
TASK_DEFAULT = frozenset(TASK_FIELDS) - {"item:Body"}


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entries(element: ET.Element) -> dict[str, str]:
    out: dict[str, str] = {}
    for entry in element.findall(t("Entry")):
        key = entry.get("Key", "")
        if not key:
            raise Refused("ErrorInvalidPropertySet", "An indexed entry has no Key.")
        out[key[:255]] = (entry.text or "").strip()
    return out


def parse_contact(element: ET.Element) -> dict[str, Any]:
    """The ContactData fields a <t:Contact> sets."""
    out: dict[str, Any] = {}
    for child in element:
        name = child.tag.rsplit("}", 1)[-1]
        if name in _CONTACT_TEXT:
            text = child.text or ""
            if name in _NAMES_255 and len(text) > MAX_SUBJECT:
                # Exchange refuses a longer name rather than cutting it.
                raise Refused("ErrorPropertyUpdate", f"{name} is longer than 255 characters.")
            out[_CONTACT_TEXT[name]] = text
        elif name == "Body":
            out["body"] = child.text or ""
        elif name == "EmailAddresses":
            out["emails"] = _entries(child)
        elif name == "PhoneNumbers":
            out["phones"] = _entries(child)
    return out


def merge_contact(old: dict[str, Any], changes: dict[str, Any], *, indexed: bool) -> dict[str, Any]:
    """``old`` with ``changes``; an indexed SetItemField adds to the dictionaries."""
    merged = {**old, **changes}
    if indexed:
        for key in ("emails", "phones"):
            if key in changes:
                merged[key] = {**old.get(key, {}), **changes[key]}
    return merged


def parse_task(element: ET.Element) -> dict[str, Any]:
    """The TaskData fields a <t:Task> sets."""
    out: dict[str, Any] = {}
    for child in element:
        name = child.tag.rsplit("}", 1)[-1]
        text = child.text or ""
        if name == "Subject":
            out["subject"] = text[:MAX_SUBJECT]
        elif name == "Body":
            out["body"] = text
        elif name in ("StartDate", "DueDate", "CompleteDate"):
            field = {"StartDate": "start_date", "DueDate": "due_date"}.get(name, "complete_date")
            out[field] = parse_time(text, name)
        elif name == "Status":
            try:
                out["status"] = TaskStatus(text.strip())
            except ValueError:
                raise Refused("ErrorInvalidValueForProperty", f"Status {text!r}.") from None
        elif name == "PercentComplete":
            try:
                out["percent_complete"] = float(text)
            except ValueError:
                raise Refused("ErrorInvalidValueForProperty", "PercentComplete.") from None
    return out


def settle_task(data: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Exchange's task rules: Completed means 100 % with a complete date, and back."""
    status = TaskStatus(data.get("status", TaskStatus.NOT_STARTED))
    percent = float(data.get("percent_complete", 0.0))
    if percent >= 100.0 and status is not TaskStatus.COMPLETED:
        status = TaskStatus.COMPLETED
    if status is TaskStatus.COMPLETED:
        percent = 100.0
        data["complete_date"] = data.get("complete_date") or now
    else:
        data["complete_date"] = None
        if status is TaskStatus.NOT_STARTED and percent > 0:
            status = TaskStatus.IN_PROGRESS
    data["status"], data["percent_complete"] = status, percent
    return data


def typed_header(
    element: ET.Element, item: TypedItem, fields: set[str] | frozenset[str], alias: str
) -> None:
    sub(element, t("ItemId"), Id=item_id(alias, item.id), ChangeKey=change_key(item.modseq))
    if "item:ParentFolderId" in fields:
        sub(
            element,
            t("ParentFolderId"),
            Id=folder_id(alias, item.folder_id),
            ChangeKey=change_key(0),
        )
    if "item:ItemClass" in fields:
        sub(element, t("ItemClass"), item.kind.item_class)


def render_contact(
    parent: ET.Element, item: TypedItem, fields: set[str] | frozenset[str], alias: str
) -> None:
    data = item.contact
    assert data is not None
    element = sub(parent, t("Contact"))
    if "item:MimeContent" in fields:
        # The contact as a vCard (unverified: the exact form of Exchange 2010's).
        vcard = base64.b64encode(contact_vcard(data).encode()).decode()
        sub(element, t("MimeContent"), vcard, CharacterSet="UTF-8")
    typed_header(element, item, fields, alias)
    for path in CONTACT_FIELDS[4:]:
        if path not in fields:
            continue
        name = path.split(":", 1)[1]
        if path == "item:Subject":
            sub(element, t("Subject"), data.name)
        elif path == "item:Body":
            sub(element, t("Body"), data.body, BodyType="Text", IsTruncated="false")
        elif path == "item:DateTimeCreated":
            sub(element, t(name), _when(item.created_at))
        elif path == "contacts:CompleteName":
            complete = sub(element, t("CompleteName"))
            for tag, value in (
                ("FirstName", data.given_name),
                ("MiddleName", data.middle_name),
                ("LastName", data.surname),
                ("FullName", data.name),
            ):
                if value:
                    sub(complete, t(tag), value)
        elif path in ("contacts:EmailAddresses", "contacts:PhoneNumbers"):
            entries = data.emails if name == "EmailAddresses" else data.phones
            if entries:
                container = sub(element, t(name))
                for key, value in entries.items():
                    sub(container, t("Entry"), value, Key=key)
        else:
            value = getattr(data, _CONTACT_TEXT[name])
            if value:
                sub(element, t(name), value)


def render_task(
    parent: ET.Element, item: TypedItem, fields: set[str] | frozenset[str], alias: str
) -> None:
    data: TaskData | None = item.task
    assert data is not None
    element = sub(parent, t("Task"))
    typed_header(element, item, fields, alias)
    for path in TASK_FIELDS[3:]:
        if path not in fields:
            continue
        name = path.split(":", 1)[1]
        if path == "item:Subject":
            sub(element, t("Subject"), data.subject)
        elif path == "item:Body":
            sub(element, t("Body"), data.body, BodyType="Text", IsTruncated="false")
        elif path == "item:DateTimeCreated":
            sub(element, t(name), _when(item.created_at))
        elif path in ("task:StartDate", "task:DueDate", "task:CompleteDate"):
            moment = {
                "StartDate": data.start_date,
                "DueDate": data.due_date,
                "CompleteDate": data.complete_date,
            }[name]
            if moment is not None:
                sub(element, t(name), _when(moment))
        elif path == "task:IsComplete":
            sub(element, t(name), "true" if data.is_complete else "false")
        elif path == "task:IsRecurring":
            sub(element, t(name), "false")
        elif path == "task:PercentComplete":
            sub(element, t(name), f"{data.percent_complete:g}")
        elif path == "task:Status":
            sub(element, t(name), data.status.value)


def contact_matches(data: ContactData, text: str) -> bool:
    """Whether ResolveNames' text starts a name or an address of the contact."""
    wanted = text.casefold()
    names = [data.display_name, data.given_name, data.surname, *data.emails.values()]
    return any(n.casefold().startswith(wanted) for n in names if n)
