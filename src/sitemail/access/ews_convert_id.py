"""EWS ConvertId: one item or folder id in the formats Exchange 2010 names.

Clients use ConvertId to learn whose an id is (DavMail asks for the root
folder's id "converted" to EwsId and takes the ``Mailbox`` of the answer as
the signed-in user's address) and to pass ids between EWS, MAPI (EntryId,
HexEntryId) and OWA (OwaId).

Two kinds of ids come in:

- sitemail's own (``ews_ids``): an EwsId is the base64 of its text, and
  every other format carries the same bytes (EntryId and StoreId as base64,
  HexEntryId as hexadecimal), so that each converts back without a look-up.
  Its mailbox is checked against the signed-in user, as on every use of an
  id, and the answer's ``Mailbox`` is that mailbox's primary SMTP address.
- Exchange's, from a client that keeps ids of another server (EWS ids in
  the layout Exchange 2007 SP1 and later write: a compression byte, the
  storage type, the mailbox moniker, a processing instruction and the MAPI
  store id): they are re-laid out, not looked up; an EntryId becomes the
  store id they carry.  The layout is public (Microsoft's id format notes);
  Exchange's OwaId and StoreId layouts are not, so sitemail gives the EwsId
  and EntryId bytes in those formats (unverified: a setting would change
  nothing a client can check, as both are opaque to clients).
"""

from __future__ import annotations

import base64
import binascii
import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

from sitemail.access.ews_ids import InvalidId, parse_id
from sitemail.access.ews_responses import Refused, response_message
from sitemail.access.ews_soap import SoapFault, m, sub, t

__all__ = ["FORMATS", "convert_ids"]

FORMATS = ("EntryId", "EwsId", "EwsLegacyId", "HexEntryId", "OwaId", "StoreId")
_BASE64_FORMATS = ("EwsId", "EwsLegacyId", "OwaId")
_SITEMAIL = b"sm1:"
_MAX_ID = 2048
# Exchange's EWS id storage types (1: an SMTP address names the mailbox, 3: its GUID).
_SMTP_BASED = 1


class _Malformed(ValueError):
    pass


@dataclass(frozen=True)
class _Id:
    """An id as bytes: sitemail's id text, or Exchange's EWS id layout and its store id."""

    ews: bytes  # the bytes an EwsId is the base64 of
    store: bytes  # the bytes an EntryId is the base64 of
    mailbox: str | None  # the address the id names, when it names one


def _decode(fmt: str, value: str, mailbox: str) -> _Id:
    if not value or len(value) > _MAX_ID:
        raise _Malformed("the Id is empty or too long")
    try:
        hexadecimal = fmt == "HexEntryId"
        raw = bytes.fromhex(value) if hexadecimal else base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Malformed(f"the Id is not in the {fmt} format") from None
    if raw.startswith(_SITEMAIL):
        return _Id(ews=raw, store=raw, mailbox=None)
    if fmt in _BASE64_FORMATS:
        return _exchange_ews_id(raw)
    # A bare MAPI store id: the mailbox is the one the request names.
    if not mailbox:
        raise _Malformed(f"an Id in the {fmt} format needs the Mailbox it belongs to")
    moniker = mailbox.encode("ascii", "replace")
    ews = bytes([0, _SMTP_BASED]) + struct.pack("<H", len(moniker)) + moniker
    ews += b"\x00" + struct.pack("<H", len(raw)) + raw
    return _Id(ews=ews, store=raw, mailbox=mailbox)


def _exchange_ews_id(raw: bytes) -> _Id:
    """Exchange's EWS id: compression, storage type, moniker, instruction, store id."""
    try:
        if raw[0] != 0:
            raise _Malformed("compressed Exchange Ids are not read")
        (length,) = struct.unpack_from("<H", raw, 2)
        moniker = raw[4 : 4 + length]
        at = 4 + length + 1  # the processing instruction (normal, recurrence, series)
        (store_length,) = struct.unpack_from("<H", raw, at)
        store = raw[at + 2 : at + 2 + store_length]
    except (IndexError, struct.error):
        raise _Malformed("the Id is not one Exchange or sitemail gave") from None
    if len(moniker) != length or len(store) != store_length or not store:
        raise _Malformed("the Id is not one Exchange or sitemail gave")
    named = moniker.decode("ascii", "replace") if raw[1] == _SMTP_BASED else None
    return _Id(ews=raw, store=store, mailbox=named)


def _encode(fmt: str, found: _Id) -> str:
    if fmt in _BASE64_FORMATS:
        return base64.b64encode(found.ews).decode("ascii")
    if fmt == "HexEntryId":
        return found.store.hex().upper()
    return base64.b64encode(found.store).decode("ascii")


def convert_ids(body: ET.Element, *, check: Callable[[str], str]) -> ET.Element:
    """The ConvertIdResponse to ``body``.

    ``check(alias)`` refuses (raising :class:`Refused`) a sitemail id of a mailbox the user may
    not open, and gives the primary SMTP address of one the user may.
    """
    destination = body.get("DestinationFormat", "")
    if destination not in FORMATS:
        raise SoapFault(
            "ErrorSchemaValidation",
            f"DestinationFormat must be one of {', '.join(FORMATS)}.",
        )
    response = ET.Element(m("ConvertIdResponse"))
    messages = sub(response, m("ResponseMessages"))
    sources = body.find(m("SourceIds"))
    for source in list(sources) if sources is not None else []:
        if source.tag != t("AlternateId"):
            # Public folders are not kept by sitemail's Exchange 2010 (no public folder database).
            response_message(
                messages, "ConvertId", "ErrorInvalidIdMalformed", "There are no public folders."
            )
            continue
        fmt = source.get("Format", "")
        mailbox = source.get("Mailbox", "")
        try:
            if fmt not in FORMATS:
                raise _Malformed(f"Format must be one of {', '.join(FORMATS)}")
            found = _decode(fmt, source.get("Id", ""), mailbox)
            named = found.mailbox or mailbox
            if found.ews.startswith(_SITEMAIL):
                text = base64.b64encode(found.ews).decode("ascii")
                named = check(parse_id(text).mailbox)
        except (_Malformed, InvalidId) as e:
            response_message(messages, "ConvertId", "ErrorInvalidIdMalformed", f"{e}.")
            continue
        except Refused as e:
            response_message(messages, "ConvertId", e.code, e.text)
            continue
        message = response_message(messages, "ConvertId")
        answer = sub(message, m("AlternateId"), Format=destination, Id=_encode(destination, found))
        answer.set("Mailbox", named)
        if source.get("IsArchive"):
            answer.set("IsArchive", source.get("IsArchive", "false"))
    return response
