"""EWS private distribution lists (``<t:DistributionList>``, IPM.DistList) and ExpandDL.

A private distribution list lives in a Contacts folder like a contact: CreateItem,
GetItem, FindItem, UpdateItem and DeleteItem treat it as a typed item
(:mod:`.ews_typed`); this module reads one out of a request (DisplayName, Body,
Members), writes one out in DistributionListType's order, and answers ExpandDL: a
private list named by its ItemId expands to its members; an address is looked up
among the directory's groups, and sitemail's directory holds none, so it is
``ErrorNameResolutionNoResults`` as Exchange answers for a name it cannot resolve.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC
from typing import Any

from sitemail.access.ews_contacts import typed_header
from sitemail.access.ews_ids import InvalidId, parse_id
from sitemail.access.ews_mailbox import EwsMailbox
from sitemail.access.ews_responses import Refused, client_refusal, response_message
from sitemail.access.ews_soap import m, sub, t
from sitemail.mailbox.errors import StoreError
from sitemail.mailbox.item_records import ItemKind, ListMember, TypedItem

__all__ = [
    "LIST_DEFAULT",
    "LIST_FIELDS",
    "LIST_URIS",
    "expand_dl",
    "parse_distribution_list",
    "render_distribution_list",
]

#: The record field of each FieldURI DeleteItemField may empty, and its empty value.
LIST_URIS: dict[str, tuple[str, Any]] = {
    "item:Body": ("body", ""),
    "distributionlist:Members": ("members", []),
}
# ItemType's properties this module writes, then DistributionListType's, in the schema's order.
LIST_FIELDS = (
    "item:ItemId",
    "item:ParentFolderId",
    "item:ItemClass",
    "item:Subject",
    "item:Body",
    "item:DateTimeCreated",
    "contacts:DisplayName",
    "contacts:FileAs",
    "contacts:ContactSource",
    "distributionlist:Members",
)
LIST_DEFAULT = frozenset(LIST_FIELDS) - {"item:Body"}

_NO_RESULTS = ("ErrorNameResolutionNoResults", "No results were found.")


def _local(element: ET.Element) -> str:
    return element.tag.rpartition("}")[2]


def _members(element: ET.Element) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for member in element.findall(t("Member")):
        mailbox = member.find(t("Mailbox"))
        address = "" if mailbox is None else (mailbox.findtext(t("EmailAddress")) or "").strip()
        if mailbox is None or not address:
            raise Refused("ErrorInvalidPropertySet", "A list member needs a mailbox address.")
        out.append(
            {
                "name": (mailbox.findtext(t("Name")) or "").strip(),
                "address": address,
                "routing_type": mailbox.findtext(t("RoutingType")) or "SMTP",
                "mailbox_type": mailbox.findtext(t("MailboxType")) or "OneOff",
                "status": member.findtext(t("Status")) or "Normal",
            }
        )
    return out


def parse_distribution_list(element: ET.Element) -> dict[str, Any]:
    """The DistributionListData fields a <t:DistributionList> sets."""
    out: dict[str, Any] = {}
    for child in element:
        name = _local(child)
        if name == "DisplayName":
            out["display_name"] = child.text or ""
        elif name == "Body":
            out["body"] = child.text or ""
        elif name == "Members":
            out["members"] = _members(child)
    return out


def merge_distribution_list(
    old: dict[str, Any], changes: dict[str, Any], *, append: bool
) -> dict[str, Any]:
    """``old`` with ``changes``; AppendToItemField on Members adds to the list's members."""
    merged = {**old, **changes}
    if append and "members" in changes:
        merged["members"] = [*old.get("members", []), *changes["members"]]
    return merged


def render_distribution_list(
    parent: ET.Element, item: TypedItem, fields: set[str] | frozenset[str], alias: str
) -> None:
    data = item.distribution_list
    assert data is not None
    element = sub(parent, t("DistributionList"))
    typed_header(element, item, fields, alias)  # ItemId, ParentFolderId, ItemClass
    if "item:Subject" in fields:
        sub(element, t("Subject"), data.display_name)
    if "item:Body" in fields:
        sub(element, t("Body"), data.body, BodyType="Text", IsTruncated="false")
    if "item:DateTimeCreated" in fields:
        created = item.created_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        sub(element, t("DateTimeCreated"), created)
    for path in ("contacts:DisplayName", "contacts:FileAs"):
        if path in fields:
            sub(element, t(path.split(":", 1)[1]), data.display_name)
    if "contacts:ContactSource" in fields:
        sub(element, t("ContactSource"), "Store")
    if "distributionlist:Members" in fields and data.members:
        members = sub(element, t("Members"))
        for member in data.members:
            _member(members, member)


def _mailbox(parent: ET.Element, member: ListMember) -> None:
    mailbox = sub(parent, t("Mailbox"))
    if member.name:
        sub(mailbox, t("Name"), member.name)
    sub(mailbox, t("EmailAddress"), member.address)
    sub(mailbox, t("RoutingType"), member.routing_type)
    sub(mailbox, t("MailboxType"), member.mailbox_type)


def _member(parent: ET.Element, member: ListMember) -> None:
    element = sub(parent, t("Member"))
    _mailbox(element, member)
    sub(element, t("Status"), member.status)


async def expand_dl(box: EwsMailbox, body: ET.Element) -> ET.Element:
    """ExpandDL: the members of a private list (by ItemId) or of a directory group."""
    response = ET.Element(m("ExpandDLResponse"))
    messages = sub(response, m("ResponseMessages"))
    try:
        members = await _expand(box, body.find(m("Mailbox")))
    except (Refused, StoreError) as exc:
        refusal = client_refusal(exc)
        response_message(messages, "ExpandDL", refusal.code, refusal.text)
        return response
    msg = response_message(messages, "ExpandDL")
    expansion = sub(
        msg,
        m("DLExpansion"),
        TotalItemsInView=str(len(members)),
        IncludesLastItemInRange="true",
    )
    for member in members:
        _mailbox(expansion, member)
    return response


async def _expand(box: EwsMailbox, mailbox: ET.Element | None) -> list[ListMember]:
    if mailbox is None:
        raise Refused("ErrorInvalidRequest", "ExpandDL needs a Mailbox.")
    ref = mailbox.find(t("ItemId"))
    if ref is None:
        # Only a directory group expands by address, and the directory holds none (the
        # answer for an address that names a mailbox is unverified).
        raise Refused(*_NO_RESULTS)
    try:
        parsed = parse_id(ref.get("Id", ""))
    except InvalidId:
        raise Refused("ErrorInvalidIdMalformed", "Id is malformed.") from None
    box.own(parsed.mailbox)
    if parsed.kind != "M":
        raise Refused("ErrorInvalidIdMalformed", "Id is malformed.")
    kinds = await box.store.typed_kinds(box.alias, [parsed.message_id])
    if kinds.get(parsed.message_id) is not ItemKind.DISTRIBUTION_LIST:
        # Another item (or none) is no list to expand (unverified: Exchange's wording).
        raise Refused(*_NO_RESULTS)
    item = await box.store.get_typed(box.alias, parsed.message_id)
    assert item.distribution_list is not None
    return list(item.distribution_list.members)
