"""EWS user configurations: Get/Create/Update/DeleteUserConfiguration, as Exchange 2010 answers.

A user configuration is what Exchange keeps as a folder associated item
(FAI) of class ``IPM.Configuration.<name>``: a named object of a folder
holding a Dictionary of typed entries, XmlData and BinaryData, which
clients (OWA, Outlook, scripts) use for their settings.  sitemail keeps
them among the folder's properties in the store (``configurations``, by
name, compared in any case as message classes are), so they go with the
folder; they are no messages, and no protocol lists them.

Names follow Exchange's rule (1 to 236 of ``A-Z a-z 0-9 .``, not beginning
with ``IPM.Configuration``).  A create of a name the folder already has is
ErrorItemSave; a missing one is ErrorItemNotFound.  An update replaces the
parts it gives and keeps the others.
"""

from __future__ import annotations

import base64
import binascii
import re
import xml.etree.ElementTree as ET
from typing import Any

from sitemail.access.ews_mailbox import EwsMailbox
from sitemail.access.ews_responses import Refused, response_message, store_refusal
from sitemail.access.ews_soap import SoapFault, m, sub, t
from sitemail.mailbox.errors import StoreError

__all__ = ["OPERATIONS", "EwsUserConfigurations"]

OPERATIONS = (
    "GetUserConfiguration",
    "CreateUserConfiguration",
    "UpdateUserConfiguration",
    "DeleteUserConfiguration",
)
#: Most configurations one folder keeps, and most entries a dictionary holds.
MAX_CONFIGURATIONS = 100
MAX_ENTRIES = 1000
_NAME = re.compile(r"[A-Za-z0-9.]{1,236}")
_TYPES = frozenset(
    {
        "DateTime",
        "Boolean",
        "Byte",
        "String",
        "Integer32",
        "UnsignedInteger32",
        "Integer64",
        "UnsignedInteger64",
        "StringArray",
        "ByteArray",
    }
)
NOT_FOUND = "The specified object was not found in the store."


class EwsUserConfigurations:
    """The user configuration operations for one signed-in user."""

    def __init__(self, box: EwsMailbox) -> None:
        self.box = box
        self.store = box.store
        self.alias = box.alias

    async def serve(self, operation: str, body: ET.Element) -> ET.Element:
        response = ET.Element(m(f"{operation}Response"))
        messages = sub(response, m("ResponseMessages"))
        try:
            answer = await self._serve(operation, body)
        except Refused as exc:
            response_message(messages, operation, exc.code, exc.text)
        except StoreError as exc:
            refusal = store_refusal(exc)
            if refusal is None:
                raise
            response_message(messages, operation, refusal.code, refusal.text)
        else:
            msg = response_message(messages, operation)
            if answer is not None:
                msg.append(answer)
        return response

    async def _serve(self, operation: str, body: ET.Element) -> ET.Element | None:
        if operation in ("GetUserConfiguration", "DeleteUserConfiguration"):
            named = body.find(m("UserConfigurationName"))
            given = None
        else:
            given = body.find(m("UserConfiguration"))
            named = given.find(t("UserConfigurationName")) if given is not None else None
        if named is None:
            raise SoapFault("ErrorSchemaValidation", "UserConfigurationName is required.")
        name = _name(named.get("Name", ""))
        ref = next(iter(named), None)
        if ref is None:
            raise SoapFault("ErrorSchemaValidation", "The configuration's folder is required.")
        folder = await self.box.resolve_folder(ref)
        if isinstance(folder, str) and folder in ("root", "msgfolderroot"):
            if operation in ("GetUserConfiguration", "DeleteUserConfiguration"):
                # Nothing is kept there (OWA.UserOptions is written by OWA's first sign-in,
                # which sitemail's OWA does not ask for): not found, which clients such as
                # DavMail take as "no regional settings" and go on.
                raise Refused("ErrorItemNotFound", NOT_FOUND)
            raise Refused("ErrorInvalidOperation", "The store keeps no configurations there.")
        bag = dict((await self.store.get_folder_properties(self.alias, folder)).properties)
        kept: dict[str, Any] = dict(bag.get("configurations", {}))
        key = name.casefold()
        if operation == "GetUserConfiguration":
            wanted = (body.findtext(m("UserConfigurationProperties")) or "All").split()
            if key not in kept:
                raise Refused("ErrorItemNotFound", NOT_FOUND)
            return _render(named, kept[key], wanted)
        if operation == "DeleteUserConfiguration":
            if kept.pop(key, None) is None:
                raise Refused("ErrorItemNotFound", NOT_FOUND)
        else:
            assert given is not None
            parts = _parts(given)
            if operation == "CreateUserConfiguration":
                if key in kept:
                    raise Refused("ErrorItemSave", f"The configuration {name} already exists.")
                if len(kept) >= MAX_CONFIGURATIONS:
                    raise Refused("ErrorItemSave", f"A folder keeps at most {MAX_CONFIGURATIONS}.")
                kept[key] = {"name": name, **parts}
            else:
                if key not in kept:
                    raise Refused("ErrorItemNotFound", NOT_FOUND)
                kept[key] = {**kept[key], **parts}
        if kept:
            bag["configurations"] = kept
        else:
            bag.pop("configurations", None)
        await self.store.set_folder_properties(self.alias, folder, bag)
        return None


def _name(text: str) -> str:
    if not _NAME.fullmatch(text) or text.lower().startswith("ipm.configuration"):
        raise Refused(
            "ErrorInvalidRequest",
            "A configuration's name has 1 to 236 of A-Z, a-z, 0-9 and '.', and does not begin "
            "with IPM.Configuration.",
        )
    return text


def _parts(given: ET.Element) -> dict[str, Any]:
    """The parts a Create/UpdateUserConfiguration gives, as the store keeps them."""
    parts: dict[str, Any] = {}
    dictionary = given.find(t("Dictionary"))
    if dictionary is not None:
        entries = dictionary.findall(t("DictionaryEntry"))
        if len(entries) > MAX_ENTRIES:
            raise Refused("ErrorInvalidRequest", f"A dictionary holds at most {MAX_ENTRIES}.")
        parts["dictionary"] = [
            [_object(e.find(t("DictionaryKey"))), _object(e.find(t("DictionaryValue")))]
            for e in entries
        ]
    for part, key in (("XmlData", "xml"), ("BinaryData", "binary")):
        element = given.find(t(part))
        if element is not None:
            text = "".join((element.text or "").split())
            try:
                base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                raise Refused("ErrorInvalidRequest", f"{part} is not base64.") from None
            parts[key] = text
    return parts


def _object(element: ET.Element | None) -> list[Any] | None:
    """A DictionaryKey/DictionaryValue: its Type and Values (``None``: a null value)."""
    if element is None:
        return None
    kind = (element.findtext(t("Type")) or "").strip()
    if kind not in _TYPES:
        raise Refused("ErrorInvalidRequest", f"{kind[:40]!r} is not a dictionary type.")
    values = [_value(kind, v.text or "") for v in element.findall(t("Value"))]
    if not values or (len(values) > 1 and not kind.endswith("Array")):
        raise Refused("ErrorInvalidRequest", f"A {kind} takes one Value.")
    return [kind, values]


# The integer types' bounds, inclusive.
_BOUNDS = {
    "Byte": (0, 2**8 - 1),
    "Integer32": (-(2**31), 2**31 - 1),
    "UnsignedInteger32": (0, 2**32 - 1),
    "Integer64": (-(2**63), 2**63 - 1),
    "UnsignedInteger64": (0, 2**64 - 1),
}


def _value(kind: str, text: str) -> str:
    """A value as the store keeps a typed one: a Boolean as ``true``/``false``, an integer
    in its canonical form (what the client wrote, ``1`` or ``+7``, is xs: syntax)."""
    text = text.strip() if kind != "String" and kind != "StringArray" else text
    if kind == "Boolean":
        if text.lower() not in ("true", "false", "1", "0"):
            raise Refused("ErrorInvalidRequest", f"{text[:40]!r} is not a Boolean.")
        return "true" if text.lower() in ("true", "1") else "false"
    if kind in _BOUNDS:
        low, high = _BOUNDS[kind]
        try:
            number = int(text)
        except ValueError:
            number = low - 1
        if not low <= number <= high:
            raise Refused("ErrorInvalidRequest", f"{text[:40]!r} is not a {kind}.")
        return str(number)
    return text


def _render(named: ET.Element, kept: dict[str, Any], wanted: list[str]) -> ET.Element:
    """``<m:UserConfiguration>`` with the parts asked for."""
    answer = ET.Element(m("UserConfiguration"))
    name = sub(answer, t("UserConfigurationName"), Name=kept["name"])
    for ref in named:
        name.append(ref)
    every = "All" in wanted
    if (every or "Dictionary" in wanted) and "dictionary" in kept:
        dictionary = sub(answer, t("Dictionary"))
        for key, value in kept["dictionary"]:
            entry = sub(dictionary, t("DictionaryEntry"))
            for tag, obj in (("DictionaryKey", key), ("DictionaryValue", value)):
                if obj is None:
                    continue
                holder = sub(entry, t(tag))
                sub(holder, t("Type"), obj[0])
                for text in obj[1]:
                    sub(holder, t("Value"), text)
    for part, key in (("XmlData", "xml"), ("BinaryData", "binary")):
        if (every or part in wanted) and key in kept:
            sub(answer, t(part), kept[key])
    return answer
