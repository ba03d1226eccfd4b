"""Extended properties (``ExtendedFieldURI``) of calendar items, contacts and tasks.

A message keeps what a client sets by ``ExtendedFieldURI`` beside its content
(``message_properties``, :mod:`.ews_item_properties`); a typed item keeps it in
its record's ``props``, beside the other properties its record has no field for
(:mod:`.ews_typed_props`), under ``ext:`` and the property's key, as the JSON
the message side keeps.  Gateways rely on them: DavMail names each event it
creates by ``PR_URL_COMP_NAME`` (0x10F3), finds it again with a restriction on
it, and marks meetings with PidLidAppointmentStateFlags.  They are set by
CreateItem and SetItemField, deleted by DeleteItemField, given back in GetItem
and FindItem when the shape names them, and read by restrictions and sort
orders.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any

from sitemail.access.ews_item_properties import (
    EXTENDED,
    extended_key,
    read_extended,
    render_extended,
)
from sitemail.access.ews_mapi_properties import typed_rendered
from sitemail.access.ews_responses import Refused
from sitemail.access.ews_soap import t
from sitemail.mailbox.item_records import MAX_PROP, MAX_PROPS, TypedItem

__all__ = [
    "delete_extended",
    "extended_of",
    "parse_extended",
    "render_typed_extended",
    "shape_key",
]


def _store(stored: dict[str, Any]) -> str:
    text = json.dumps(stored, separators=(",", ":"))
    if len(text) > MAX_PROP:
        raise Refused("ErrorInvalidPropertySet", f"An extended property holds at most {MAX_PROP}.")
    return text


def parse_extended(element: ET.Element, props: Mapping[str, str]) -> dict[str, str]:
    """``props`` with the ExtendedProperty children of an item element set."""
    out = dict(props)
    for child in element.findall(t("ExtendedProperty")):
        key, stored = read_extended(child)
        out[EXTENDED + key] = _store(stored)
    if len(out) > MAX_PROPS:
        raise Refused("ErrorInvalidPropertySet", f"An item keeps at most {MAX_PROPS} properties.")
    return out


def delete_extended(props: Mapping[str, str], uri: ET.Element) -> dict[str, str]:
    """``props`` after a DeleteItemField of the ExtendedFieldURI ``uri``."""
    out = dict(props)
    out.pop(EXTENDED + extended_key(uri)[0], None)
    return out


def shape_key(uri: ET.Element) -> str:
    """The path an ItemShape's ExtendedFieldURI adds to the fields asked for."""
    return EXTENDED + extended_key(uri)[0]


def extended_of(item: TypedItem, key: str) -> dict[str, Any] | None:
    """What ``item`` keeps of extended property ``key`` (``{"uri", "value"|"values"}``)."""
    stored = item.record.props.get(EXTENDED + key)
    if stored is None or not stored.startswith("{"):
        return None
    found: dict[str, Any] = json.loads(stored)
    return found


def render_typed_extended(
    element: ET.Element, item: TypedItem, fields: set[str] | frozenset[str]
) -> None:
    """Append the extended properties the shape names that ``item`` keeps."""
    keys = sorted(f.removeprefix(EXTENDED) for f in fields if f.startswith(EXTENDED))
    kept = {k: found for k in keys if (found := extended_of(item, k)) is not None}
    # What the client set first; the store's facts (the IMAP UID ...) beside it.
    found = {**typed_rendered(keys, item), **kept}
    if found:
        render_extended(element, keys, {"extended": found})
