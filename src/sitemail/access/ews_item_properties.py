"""Item properties MIME has no header for: reminders, IsResponseRequested, and extended
properties (``ExtendedFieldURI``), kept by the store beside the message's content.

Exchange keeps every property of an item in the store as a MAPI property;
sitemail's store keeps a message as MIME (:mod:`.ews_message_fields` writes
what has a header there) and, beside it, one JSON object per message
(``message_properties``, copied with the message and deleted with it).
This module reads and changes that object as EWS names its members:

- ``item:ReminderDueBy``, ``item:ReminderIsSet``,
  ``item:ReminderMinutesBeforeStart``, ``message:IsResponseRequested``,
  kept as the text the client sent (after checking its type);
- extended properties, keyed by their ``ExtendedFieldURI``: a
  ``PropertyTag`` (with its ``PropertyType``), or a property set
  (``DistinguishedPropertySetId`` or ``PropertySetId``) with a
  ``PropertyName`` or a ``PropertyId``.  Values are checked against the
  ``PropertyType`` (``ErrorInvalidExtendedPropertyValue`` otherwise) and
  given back as they were set; GetItem returns one only when
  ``AdditionalProperties`` names it, as Exchange does.
"""

from __future__ import annotations

import base64
import binascii
import uuid
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

from sitemail.access.ews_responses import Refused
from sitemail.access.ews_soap import sub, t

__all__ = [
    "EXTENDED",
    "PLAIN_PATHS",
    "extended_key",
    "read_extended",
    "render_extended",
    "render_plain",
    "set_extended",
    "set_plain",
]

#: Prefix of the shape's pseudo paths that name an extended property.
EXTENDED = "ext:"
#: Most extended properties one item keeps, and most values of a multi-valued one.
MAX_EXTENDED = 200
MAX_VALUES = 1000

# The plain properties kept here: their type, and what GetItem answers when never set.
_PLAIN: dict[str, tuple[str, str | None]] = {
    "item:ReminderDueBy": ("SystemTime", None),
    "item:ReminderIsSet": ("Boolean", "false"),
    "item:ReminderMinutesBeforeStart": ("Integer", "0"),
    "message:IsResponseRequested": ("Boolean", "false"),
}
PLAIN_PATHS = frozenset(_PLAIN)

_ATTRIBUTES = (
    "DistinguishedPropertySetId",
    "PropertySetId",
    "PropertyTag",
    "PropertyName",
    "PropertyId",
    "PropertyType",
)
# MS-OXWSCDATA DistinguishedPropertySetType.
_PROPERTY_SETS = frozenset(
    {
        "Meeting",
        "Appointment",
        "Common",
        "PublicStrings",
        "Address",
        "InternetHeaders",
        "CalendarAssistant",
        "UnifiedMessaging",
        "Task",
        "Sharing",
    }
)
_SCALARS = frozenset(
    {
        "ApplicationTime",
        "Binary",
        "Boolean",
        "CLSID",
        "Currency",
        "Double",
        "Float",
        "Integer",
        "Long",
        "Short",
        "String",
        "SystemTime",
    }
)
_TYPES = _SCALARS | {f"{s}Array" for s in _SCALARS - {"Boolean"}}

INVALID_URI = "ErrorInvalidExtendedProperty"
INVALID_VALUE = "ErrorInvalidExtendedPropertyValue"


def _refuse_uri(why: str) -> Refused:
    return Refused(INVALID_URI, f"The extended property is not valid: {why}.")


def extended_key(uri: ET.Element) -> tuple[str, dict[str, str]]:
    """The key of an ``ExtendedFieldURI`` and its attributes as Exchange gives them back."""
    attrs = {name: uri.get(name, "") for name in _ATTRIBUTES if uri.get(name) is not None}
    kind = attrs.get("PropertyType", "")
    if kind not in _TYPES:
        raise _refuse_uri(f"PropertyType {kind[:40]!r} is not one of the schema's")
    tag = attrs.get("PropertyTag")
    sets = [attrs[k] for k in ("DistinguishedPropertySetId", "PropertySetId") if k in attrs]
    names = [attrs[k] for k in ("PropertyName", "PropertyId") if k in attrs]
    if tag is not None:
        if sets or names:
            raise _refuse_uri("a PropertyTag names the property alone")
        try:
            number = int(tag, 16) if tag.lower().startswith("0x") else int(tag)
        except ValueError:
            raise _refuse_uri(f"PropertyTag {tag[:20]!r} is not a number") from None
        if not 0 < number <= 0xFFFF:
            raise _refuse_uri("a PropertyTag is a 16-bit property id")
        attrs["PropertyTag"] = f"0x{number:x}"
        return f"tag:{number:x}", attrs
    if len(sets) != 1 or len(names) != 1:
        raise _refuse_uri("it needs one property set and one PropertyName or PropertyId")
    if "DistinguishedPropertySetId" in attrs:
        if attrs["DistinguishedPropertySetId"] not in _PROPERTY_SETS:
            raise _refuse_uri("DistinguishedPropertySetId is not one of the schema's")
        where = attrs["DistinguishedPropertySetId"]
    else:
        try:
            where = str(uuid.UUID(attrs["PropertySetId"]))
        except ValueError:
            raise _refuse_uri("PropertySetId is not a GUID") from None
    if "PropertyId" in attrs:
        try:
            name = f"id:{int(attrs['PropertyId'])}"
        except ValueError:
            raise _refuse_uri("PropertyId is not a number") from None
    else:
        # Names of a property set are case-sensitive in MAPI; the set's id is not.
        name = f"name:{attrs['PropertyName']}"
    return f"set:{where.lower()}:{name}", attrs


def _check(kind: str, text: str) -> None:
    base = kind.removesuffix("Array")
    try:
        if base in ("Integer", "Long", "Short", "Currency"):
            int(text)
        elif base in ("Double", "Float", "ApplicationTime"):
            float(text)
        elif base == "Boolean":
            if text.strip().lower() not in ("true", "false", "1", "0"):
                raise ValueError(text)
        elif base == "Binary":
            base64.b64decode(text, validate=True)
        elif base == "SystemTime":
            datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        elif base == "CLSID":
            uuid.UUID(text)
    except (ValueError, binascii.Error):
        raise Refused(
            INVALID_VALUE, f"{text[:60]!r} is not a value of PropertyType {kind}."
        ) from None


def read_extended(element: ET.Element) -> tuple[str, dict[str, Any]]:
    """A ``<t:ExtendedProperty>``: its key, and what the store keeps of it."""
    uri = element.find(t("ExtendedFieldURI"))
    if uri is None:
        raise _refuse_uri("ExtendedFieldURI is missing")
    key, attrs = extended_key(uri)
    kind = attrs["PropertyType"]
    holder = element.find(t("Values"))
    if kind.endswith("Array"):
        if holder is None:
            raise Refused(INVALID_VALUE, f"A {kind} property takes Values.")
        values = [v.text or "" for v in holder.findall(t("Value"))]
        if not values or len(values) > MAX_VALUES:
            raise Refused(INVALID_VALUE, f"A {kind} property takes 1 to {MAX_VALUES} values.")
        for value in values:
            _check(kind, value)
        return key, {"uri": attrs, "values": values}
    single = element.find(t("Value"))
    if single is None or holder is not None:
        raise Refused(INVALID_VALUE, f"A {kind} property takes one Value.")
    _check(kind, single.text or "")
    return key, {"uri": attrs, "value": single.text or ""}


def set_extended(bag: dict[str, Any], key: str, stored: dict[str, Any] | None) -> None:
    """Set (``None``: delete) one extended property of an item's property object."""
    extended: dict[str, Any] = dict(bag.get("extended", {}))
    if stored is None:
        extended.pop(key, None)
    else:
        extended[key] = stored
    if len(extended) > MAX_EXTENDED:
        raise Refused(
            "ErrorInvalidPropertySet", f"An item keeps at most {MAX_EXTENDED} extended properties."
        )
    if extended:
        bag["extended"] = extended
    else:
        bag.pop("extended", None)


def set_plain(bag: dict[str, Any], path: str, value: ET.Element | None) -> None:
    """Set (``None``: delete) one of :data:`PLAIN_PATHS`."""
    if value is None:
        bag.pop(path, None)
        return
    kind = _PLAIN[path][0]
    text = (value.text or "").strip()
    try:
        _check(kind, text)
    except Refused:
        raise Refused(
            "ErrorInvalidValueForProperty", f"{text[:60]!r} is not valid for {path}."
        ) from None
    if kind == "Boolean":
        text = "true" if text.lower() in ("true", "1") else "false"
    bag[path] = text


def render_plain(element: ET.Element, path: str, bag: dict[str, Any]) -> None:
    """Append one of :data:`PLAIN_PATHS` (its default when never set) to a ``<t:Message>``."""
    value = bag.get(path, _PLAIN[path][1])
    if value is not None:
        sub(element, t(path.split(":", 1)[1]), str(value))


def render_extended(element: ET.Element, keys: list[str], bag: dict[str, Any]) -> None:
    """Append the extended properties named by ``keys`` that the item has."""
    extended: dict[str, Any] = bag.get("extended", {})
    for key in keys:
        stored = extended.get(key)
        if stored is None:
            continue
        prop = sub(element, t("ExtendedProperty"))
        sub(prop, t("ExtendedFieldURI"), **stored["uri"])
        if "values" in stored:
            values = sub(prop, t("Values"))
            for value in stored["values"]:
                sub(values, t("Value"), value)
        else:
            sub(prop, t("Value"), stored["value"])
