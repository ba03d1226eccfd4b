"""FindItem's Restriction and SortOrder on messages, as Exchange 2010 evaluates them.

A client narrows a FindItem with a ``<m:Restriction>`` (a tree of ``And``,
``Or``, ``Not`` and the comparisons ``IsEqualTo``, ``IsNotEqualTo``,
``IsGreaterThan[OrEqualTo]``, ``IsLessThan[OrEqualTo]``, ``Exists`` and
``Contains``) over item properties named by ``FieldURI``, and orders the view
with ``<m:SortOrder>``.  exchangelib's ``folder.filter(subject__contains=...)``,
``filter(is_read=False)`` and ``order_by('-datetime_received')`` are such
requests.  This module turns the XML into a predicate and a sort key over a
:class:`~sitemail.mailbox.records.MessageSummary` (no I/O); the FindItem
handler applies them to the folder's messages before paging.

A property sitemail's summaries do not hold is refused with Exchange's
``ErrorUnsupportedPathForQuery``; an operator it does not evaluate
(``Excludes``, a comparison with another field) with
``ErrorUnsupportedQueryFilter``; a constant that is not of the property's
type with ``ErrorInvalidValueForProperty``.
"""

from __future__ import annotations

import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sitemail.access.ews_item_properties import extended_key
from sitemail.access.ews_mapi_properties import item_value, typed_value
from sitemail.access.ews_message_fields import HeaderProps
from sitemail.access.ews_responses import Refused
from sitemail.access.ews_soap import t
from sitemail.access.ews_typed_extended import extended_of
from sitemail.mailbox.item_records import TypedItem
from sitemail.mailbox.records import Address, MessageSummary

__all__ = [
    "BAG_FIELDS",
    "BODY_FIELD",
    "HEADER_FIELDS",
    "ItemView",
    "Predicate",
    "QueryField",
    "parse_restriction",
    "parse_sort_order",
    "sort_items",
]

Predicate = Callable[[Any], bool]
"""Whether an item (a message's summary, or a typed item with its own field table) matches."""


class ItemView(MessageSummary):
    """A folder's message with the properties its header holds (categories, importance ...),
    read when a restriction or sort order names them."""

    header: HeaderProps | None = None
    bag: dict[str, Any] | None = None  # the properties kept beside the content
    body: str | None = None  # the text of the body, when a restriction names it


def _bag(s: MessageSummary) -> dict[str, Any]:
    found = s.bag if isinstance(s, ItemView) else None
    return found if found is not None else {}


def _plain(path: str, kind: str) -> Callable[[MessageSummary], Any]:
    def read(s: MessageSummary) -> Any:
        text = _bag(s).get(path)
        if text is None:
            return {"bool": False, "int": 0}.get(kind)
        return _typed(kind, str(text))

    return read


def _typed(kind: str, text: str) -> Any:
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            return text.strip().lower() in ("true", "1")
        if kind == "datetime":
            when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
            return when if when.tzinfo else when.replace(tzinfo=UTC)
    except ValueError:
        return None
    return text


# ExtendedFieldURI PropertyType -> the kind its values compare as.
_EXTENDED_KINDS = {
    "Integer": "int",
    "Long": "int",
    "Short": "int",
    "Currency": "int",
    "Double": "float",
    "Float": "float",
    "Boolean": "bool",
    "SystemTime": "datetime",
}


def _extended_field(element: ET.Element) -> _Field:
    key, attrs = extended_key(element)
    kind_name = attrs["PropertyType"]
    many = kind_name.endswith("Array")
    kind = _EXTENDED_KINDS.get(kind_name.removesuffix("Array"), "string")

    def read(s: MessageSummary) -> Any:
        if isinstance(s, TypedItem):
            # A calendar item's, contact's or task's: kept in its record (ews_typed_extended).
            stored = extended_of(s, key)
            if stored is None:
                fact = typed_value(key, s)
                return None if fact is None else _typed(kind, fact)
            if many:
                return [str(v) for v in stored["values"]]
            return _typed(kind, stored["value"])
        stored = _bag(s).get("extended", {}).get(key)
        if stored is None:
            # Not set by a client: a fact of the store's, when the tag names one (the UID ...).
            fact = item_value(key, s)
            return None if fact is None else _typed(kind, fact)
        if many:
            return [str(v) for v in stored["values"]]
        return _typed(kind, stored["value"])

    return _Field("strings" if many else kind, read, bag=True)


def _header(s: MessageSummary) -> HeaderProps:
    found = s.header if isinstance(s, ItemView) else None
    return found if found is not None else HeaderProps()


def _names(addresses: list[Address]) -> str:
    # DisplayTo / DisplayCc: the display names joined by "; ", as Exchange shows them.
    return "; ".join(a.name or a.address for a in addresses)


def _from(s: MessageSummary) -> str | None:
    a = s.from_address
    return None if a is None else a.address


@dataclass(frozen=True)
class _Field:
    kind: str  # "string" | "strings" (multi-valued) | "datetime" | "int" | "bool"
    read: Callable[[Any], Any]
    header: bool = False  # read from the message's header (:class:`ItemView`)
    bag: bool = False  # read from the properties kept beside the content


#: A property a restriction or sort order may name, for another kind of item's table.
QueryField = _Field

#: The properties a restriction or a sort order may name.
FIELDS: dict[str, _Field] = {
    "item:Subject": _Field("string", lambda s: s.subject),
    "item:DateTimeReceived": _Field("datetime", lambda s: s.received_at),
    "item:DateTimeCreated": _Field("datetime", lambda s: s.received_at),
    "item:DateTimeSent": _Field("datetime", lambda s: s.sent_at),
    "item:Size": _Field("int", lambda s: s.size),
    "item:HasAttachments": _Field("bool", lambda s: s.has_attachments),
    "item:ItemClass": _Field("string", lambda s: "IPM.Note"),
    "item:Importance": _Field("string", lambda s: _header(s).importance, header=True),
    "item:Sensitivity": _Field("string", lambda s: _header(s).sensitivity, header=True),
    "item:Categories": _Field("strings", lambda s: _header(s).categories, header=True),
    "item:Culture": _Field("string", lambda s: _header(s).culture, header=True),
    "item:InReplyTo": _Field("string", lambda s: _header(s).in_reply_to, header=True),
    "message:References": _Field("string", lambda s: _header(s).references, header=True),
    "message:IsReadReceiptRequested": _Field(
        "bool", lambda s: _header(s).read_receipt, header=True
    ),
    "message:IsDeliveryReceiptRequested": _Field(
        "bool", lambda s: _header(s).delivery_receipt, header=True
    ),
    "item:ReminderIsSet": _Field("bool", _plain("item:ReminderIsSet", "bool"), bag=True),
    "item:ReminderMinutesBeforeStart": _Field(
        "int", _plain("item:ReminderMinutesBeforeStart", "int"), bag=True
    ),
    # Exchange 2010 takes a restriction on these of a message and matches nothing with it
    # (exchangelib's live tests count on that).
    "item:ReminderDueBy": _Field("datetime", lambda s: None),
    "message:ConversationIndex": _Field("string", lambda s: None),
    "item:Body": _Field("string", lambda s: s.body if isinstance(s, ItemView) else None),
    "message:IsResponseRequested": _Field(
        "bool", _plain("message:IsResponseRequested", "bool"), bag=True
    ),
    "item:DisplayTo": _Field("string", lambda s: _names(s.to)),
    "item:DisplayCc": _Field("string", lambda s: _names(s.cc)),
    "item:IsDraft": _Field("bool", lambda s: s.flags.draft),
    "message:IsRead": _Field("bool", lambda s: s.flags.seen),
    "message:InternetMessageId": _Field("string", lambda s: s.internet_message_id),
    "message:From": _Field("string", _from),
    "message:Sender": _Field("string", _from),
}

#: The property paths whose values a view must read from each message's header, and from
#: the properties kept beside its content (extended properties too).
HEADER_FIELDS = frozenset(uri for uri, f in FIELDS.items() if f.header)
BODY_FIELD = "item:Body"
BAG_FIELDS = frozenset(uri for uri, f in FIELDS.items() if f.bag)

_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "IsEqualTo": lambda a, b: a == b,
    "IsNotEqualTo": lambda a, b: a != b,
    "IsGreaterThan": lambda a, b: a > b,
    "IsGreaterThanOrEqualTo": lambda a, b: a >= b,
    "IsLessThan": lambda a, b: a < b,
    "IsLessThanOrEqualTo": lambda a, b: a <= b,
}


def _local(element: ET.Element) -> str:
    return element.tag.rpartition("}")[2]


def _field(element: ET.Element | None, fields: Mapping[str, _Field]) -> tuple[str, _Field]:
    if element is None or _local(element) not in (
        "FieldURI",
        "ExtendedFieldURI",
        "IndexedFieldURI",
    ):
        raise Refused("ErrorInvalidRestriction", "The restriction names no property.")
    if _local(element) == "ExtendedFieldURI":
        return "ExtendedFieldURI", _extended_field(element)
    uri = element.get("FieldURI", "")
    if _local(element) == "IndexedFieldURI":
        # An indexed entry (contacts:EmailAddress, EmailAddress1) is a property of its own.
        found = fields.get(f"{uri}#{element.get('FieldIndex', '')}")
    else:
        found = fields.get(uri)
    if found is None:
        raise Refused(
            "ErrorUnsupportedPathForQuery",
            f"The property {uri or _local(element)} can't be used in a restriction.",
        )
    return uri, found


def _constant(field: _Field, text: str, uri: str) -> Any:
    try:
        if field.kind == "datetime":
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return when if when.tzinfo else when.replace(tzinfo=UTC)
        if field.kind == "int":
            return int(text)
        if field.kind == "float":
            return float(text)
        if field.kind == "bool":
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "1")
        return text
    except ValueError:
        raise Refused(
            "ErrorInvalidValueForProperty", f"The value {text[:100]!r} is not valid for {uri}."
        ) from None


def _comparison(op: str, element: ET.Element, fields: Mapping[str, _Field]) -> Predicate:
    children = list(element)
    uri, field = _field(children[0] if children else None, fields)
    holder = element.find(t("FieldURIOrConstant"))
    constant = holder.find(t("Constant")) if holder is not None else None
    if constant is None:
        raise Refused("ErrorUnsupportedQueryFilter", "Comparing two properties is not supported.")
    value = _constant(field, constant.get("Value", ""), uri)
    compare = _COMPARISONS[op]
    folded = field.kind == "string"

    def test(s: MessageSummary) -> bool:
        actual = field.read(s)
        if actual is None:
            return op == "IsNotEqualTo"
        if field.kind == "strings":
            # A multi-valued property matches when one of its values does.
            hit = any(compare(str(v).casefold(), str(value).casefold()) for v in actual)
            if op == "IsNotEqualTo":
                return all(compare(str(v).casefold(), str(value).casefold()) for v in actual)
            return hit
        if folded:
            # Exchange compares strings without regard to case.
            return compare(str(actual).casefold(), str(value).casefold())
        return compare(actual, value)

    return test


def _fold(text: str, comparison: str) -> str:
    if comparison in ("Exact",):
        return text
    text = text.casefold()
    if comparison in ("Loose", "IgnoreNonSpacingCharacters", "LooseAndIgnoreNonSpace"):
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in decomposed if not unicodedata.combining(c))
    return text


def _contains(element: ET.Element, fields: Mapping[str, _Field]) -> Predicate:
    children = list(element)
    uri, field = _field(children[0] if children else None, fields)
    if field.kind not in ("string", "strings"):
        raise Refused("ErrorUnsupportedQueryFilter", f"Contains does not apply to {uri}.")
    constant = element.find(t("Constant"))
    if constant is None:
        raise Refused("ErrorInvalidRestriction", "Contains needs a Constant.")
    mode = element.get("ContainmentMode", "FullString")
    comparison = element.get("ContainmentComparison", "Exact")
    wanted = _fold(constant.get("Value", ""), comparison)

    def test(s: MessageSummary) -> bool:
        actual = field.read(s)
        if actual is None:
            return False
        if field.kind == "strings":
            return any(_contained(_fold(str(v), comparison), wanted, mode) for v in actual)
        return _contained(_fold(str(actual), comparison), wanted, mode)

    return test


def _contained(text: str, wanted: str, mode: str) -> bool:
    if mode == "FullString":
        return text == wanted
    if mode == "Prefixed":
        return text.startswith(wanted)
    if mode == "PrefixOnWords":
        return any(word.startswith(wanted) for word in text.split())
    if mode == "ExactPhrase":
        return f" {wanted} " in f" {text} "
    return wanted in text  # Substring


def _node(element: ET.Element, fields: Mapping[str, _Field]) -> Predicate:
    op = _local(element)
    children = list(element)
    if op == "And":
        parts = [_node(c, fields) for c in children]
        return lambda s: all(p(s) for p in parts)
    if op == "Or":
        parts = [_node(c, fields) for c in children]
        return lambda s: any(p(s) for p in parts)
    if op == "Not":
        if len(children) != 1:
            raise Refused("ErrorInvalidRestriction", "Not takes one restriction.")
        inner = _node(children[0], fields)
        return lambda s: not inner(s)
    if op == "Exists":
        _, field = _field(children[0] if children else None, fields)
        return lambda s: field.read(s) not in (None, "", [])
    if op in _COMPARISONS:
        return _comparison(op, element, fields)
    if op == "Contains":
        return _contains(element, fields)
    raise Refused("ErrorUnsupportedQueryFilter", f"The restriction {op} is not supported.")


def parse_restriction(
    restriction: ET.Element, fields: Mapping[str, _Field] | None = None
) -> Predicate:
    """The predicate ``<m:Restriction>`` stands for (Refused when it cannot be evaluated);
    ``fields``: the properties it may name (a message's, :data:`FIELDS`, by default)."""
    children = list(restriction)
    if len(children) != 1:
        raise Refused("ErrorInvalidRestriction", "A restriction holds one search expression.")
    return _node(children[0], FIELDS if fields is None else fields)


def parse_sort_order(
    sort_order: ET.Element, fields: Mapping[str, _Field] | None = None
) -> list[tuple[_Field, bool]]:
    """``<m:SortOrder>``'s keys: (the property, descending?), most significant first."""
    keys = []
    for order in sort_order.findall(t("FieldOrder")):
        children = list(order)
        _, field = _field(children[0] if children else None, FIELDS if fields is None else fields)
        keys.append((field, order.get("Order", "Ascending") == "Descending"))
    return keys


def sort_items(items: list[Any], keys: list[tuple[_Field, bool]]) -> None:
    """Sort in place by ``keys`` (stable sorts from the least significant key up); a
    missing value sorts before any value, as in an ascending Exchange view."""
    for field, descending in reversed(keys):

        def key(s: Any, field: _Field = field) -> tuple[bool, Any]:
            value = field.read(s)
            if isinstance(value, list):
                value = ", ".join(value) if value else None
            if isinstance(value, str):
                value = value.casefold()
            return (value is not None, value if value is not None else 0)

        items.sort(key=key, reverse=descending)
