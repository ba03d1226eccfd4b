"""ExportItems and UploadItems (Exchange 2010 SP1 and later): a message out as one opaque
blob, and back in as a new item or over an existing one.

Exchange's ``Data`` is a full-fidelity stream a client only stores and
hands back.  sitemail's holds what the store keeps of a message: its MIME,
the properties beside it (:mod:`.ews_item_properties`), its flags and its
received time, as JSON in base64, with a version tag so that a blob of
another format is refused (``ErrorInvalidRequest``) rather than misread.
"""

from __future__ import annotations

import base64
import binascii
import json
import xml.etree.ElementTree as ET
from datetime import datetime
from typing import Any

from sitemail.access.ews_ids import ROOT, TOP, InvalidId, change_key, item_id, parse_id
from sitemail.access.ews_mailbox import EwsMailbox
from sitemail.access.ews_responses import (
    Refused,
    client_refusal,
    malformed,
    response_message,
)
from sitemail.access.ews_soap import SoapFault, m, sub, t
from sitemail.mailbox.errors import StoreError
from sitemail.mailbox.records import Flags, FlagUpdate

__all__ = ["EwsExport"]

_FORMAT = "sitemail-export-1"
#: Most items one request may export or upload.
MAX_ITEMS = 100
#: Largest message an export carries (base64 in a SOAP body).
MAX_EXPORT = 16 * 1024 * 1024


class EwsExport:
    """ExportItems and UploadItems for one signed-in user."""

    def __init__(self, box: EwsMailbox) -> None:
        self.box = box
        self.store = box.store
        self.alias = box.alias

    def _message_id(self, ref: ET.Element | None) -> int:
        try:
            parsed = parse_id("" if ref is None else ref.get("Id", ""))
        except InvalidId:
            raise malformed() from None
        if parsed.kind != "M":
            raise malformed()
        self.box.own(parsed.mailbox)
        return parsed.message_id

    async def export_items(self, body: ET.Element) -> ET.Element:
        response = ET.Element(m("ExportItemsResponse"))
        messages = sub(response, m("ResponseMessages"))
        holder = body.find(m("ItemIds"))
        refs = list(holder) if holder is not None else []
        if len(refs) > MAX_ITEMS:
            raise SoapFault("ErrorExceededFindCountLimit", f"At most {MAX_ITEMS} items a request.")
        for ref in refs:
            try:
                detail = await self.store.get_message(self.alias, self._message_id(ref))
                if detail.size > MAX_EXPORT:
                    raise Refused("ErrorMessageSizeExceeded", "The item is too large to export.")
                raw = await self.store.read_raw(self.alias, detail.id)
                bag = (await self.store.get_properties(self.alias, detail.id)).properties
            except (Refused, StoreError) as exc:
                refusal = client_refusal(exc)
                response_message(messages, "ExportItems", refusal.code, refusal.text)
                continue
            blob = {
                "format": _FORMAT,
                "mime": base64.b64encode(raw).decode("ascii"),
                "properties": bag,
                "flags": detail.flags.names(),
                "received": detail.received_at.isoformat(),
            }
            answer = response_message(messages, "ExportItems")
            sub(
                answer,
                m("ItemId"),
                Id=item_id(self.alias, detail.id, detail.folder_id),
                ChangeKey=change_key(detail.modseq),
            )
            data = json.dumps(blob, separators=(",", ":")).encode()
            sub(answer, m("Data"), base64.b64encode(data).decode("ascii"))
        return response

    async def upload_items(self, body: ET.Element) -> ET.Element:
        response = ET.Element(m("UploadItemsResponse"))
        messages = sub(response, m("ResponseMessages"))
        holder = body.find(m("Items"))
        items = list(holder) if holder is not None else []
        if len(items) > MAX_ITEMS:
            raise SoapFault("ErrorExceededFindCountLimit", f"At most {MAX_ITEMS} items a request.")
        for item in items:
            try:
                message_id, folder, modseq = await self._upload(item)
            except (Refused, StoreError) as exc:
                refusal = client_refusal(exc)
                response_message(messages, "UploadItems", refusal.code, refusal.text)
                continue
            answer = response_message(messages, "UploadItems")
            sub(
                answer,
                m("ItemId"),
                Id=item_id(self.alias, message_id, folder),
                ChangeKey=change_key(modseq),
            )
        return response

    async def _upload(self, item: ET.Element) -> tuple[int, int, int]:
        blob = _read_blob(item.findtext(t("Data")) or "")
        raw = base64.b64decode(blob["mime"])
        flags = Flags.of([str(name) for name in blob["flags"]])
        bag: dict[str, Any] = blob["properties"]
        action = item.get("CreateAction", "CreateNew")
        existing = item.find(t("ItemId"))
        if action in ("Update", "UpdateOrCreate") and existing is not None:
            message_id = self._message_id(existing)
            placed = await self.store.replace(self.alias, message_id, raw)
            await self.store.set_flags(self.alias, message_id, FlagUpdate(**flags.model_dump()))
            stored = await self.store.set_properties(self.alias, message_id, bag)
            return message_id, placed.folder_id, stored.modseq
        if action == "Update":
            raise Refused("ErrorInvalidRequest", "CreateAction Update needs the ItemId to update.")
        parent = item.find(t("ParentFolderId"))
        if parent is None:
            raise Refused("ErrorInvalidRequest", "An uploaded item needs its ParentFolderId.")
        ref = ET.Element(t("FolderId"), {"Id": parent.get("Id", "")})
        folder = await self.box.resolve_folder(ref)
        if folder in (ROOT, TOP):
            raise Refused("ErrorInvalidRequest", "Items go in the folders below the Top.")
        placed = await self.store.append(
            self.alias, folder, raw, flags=flags, received_at=_when(blob.get("received"))
        )
        modseq = placed.modseq
        if bag:
            modseq = (await self.store.set_properties(self.alias, placed.message_id, bag)).modseq
        return placed.message_id, placed.folder_id, modseq


def _when(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def _read_blob(text: str) -> dict[str, Any]:
    """What an ExportItems Data holds; ErrorInvalidRequest for anything else."""
    try:
        blob = json.loads(base64.b64decode(text.strip(), validate=True))
        if not isinstance(blob, dict) or blob.get("format") != _FORMAT:
            raise ValueError("another format")
        base64.b64decode(blob["mime"], validate=True)
        Flags.of([str(name) for name in blob["flags"]])
        if not isinstance(blob.get("properties"), dict) or not isinstance(blob.get("flags"), list):
            raise ValueError("malformed")
        return blob
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise Refused(
            "ErrorInvalidRequest", "The Data is not an item this server exported."
        ) from None
