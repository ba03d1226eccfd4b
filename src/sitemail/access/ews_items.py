"""The EWS operations that change messages: CreateItem, UpdateItem, DeleteItem, MoveItem,
CopyItem and SendItem, over the store API, as Exchange 2010 SP3 answers them.

Sending takes OWA's way (:mod:`.web.owa`): the message is saved in Drafts
and submitted (moved to the Outbox), and the Mail Submission service hands
it to a hub.  The copy a client asks for (Sent Items or another folder) is
filed when the request is answered, as the item is; the submitted message,
without the sender's categories, carries IMAP's ``\\Deleted`` flag into the
Outbox, so that Mail Submission drops it once sent instead of filing it
(MAPI's delete-after-submit, which the store has no column for).

UpdateItem sets, appends to and deletes a message's properties: what has a
MIME header (subject, body, recipients, categories, importance ...) is
written into the message's MIME, which the store then keeps under the same
id (:mod:`.ews_message_fields`); reminders and extended properties are kept
beside the content (:mod:`.ews_item_properties`); ``message:IsRead`` is a
flag.  Each change gives the item a new ChangeKey.
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from email.utils import formataddr
from html import escape
from typing import Any

from sitemail.access.ews_ids import (
    ROOT,
    TOP,
    InvalidId,
    change_key,
    is_change_key,
    item_id,
    parse_id,
)
from sitemail.access.ews_item_properties import (
    PLAIN_PATHS,
    extended_key,
    read_extended,
    set_extended,
    set_plain,
)
from sitemail.access.ews_mailbox import EwsMailbox
from sitemail.access.ews_message_fields import (
    SETTABLE,
    FieldChange,
    apply_changes,
    without_categories,
)
from sitemail.access.ews_responses import (
    ITEM_NOT_FOUND,
    Refused,
    client_refusal,
    delete_type,
    malformed,
    response_message,
)
from sitemail.access.ews_soap import TYPES_NS, SoapFault, m, sub, t
from sitemail.access.message_body import read_body
from sitemail.access.web.compose import (
    ComposeError,
    Draft,
    build_message,
    parse_recipients,
    reply_draft,
)
from sitemail.clock import Clock
from sitemail.mailbox.errors import StoreError
from sitemail.mailbox.records import Flags, FlagUpdate, MessageDetail, WellKnownFolder
from sitemail.mailbox.system_folders import DUMPSTER

__all__ = ["EwsItems"]

#: Largest MimeContent a CreateItem may carry (decoded).
MAX_CREATE_MIME = 32 * 1024 * 1024
#: Most ids one request may name.
MAX_IDS = 500
MAILER = "sitemail Exchange Web Services"

INVALID_CHANGE_KEY = "The change key is invalid."  # unverified: Exchange's MessageText
CONFLICT = (
    "The send or update operation could not be performed because the change key passed in the "
    "request does not match the current change key for the item."
)
_DISPOSITIONS = ("SaveOnly", "SendOnly", "SendAndSaveCopy")
# CreateItem's response objects on messages, and the compose mode each one is.
_RESPONSES = {
    f"{{{TYPES_NS}}}ReplyToItem": "Reply",
    f"{{{TYPES_NS}}}ReplyAllToItem": "ReplyAll",
    f"{{{TYPES_NS}}}ForwardItem": "Forward",
}
_SENT = WellKnownFolder.SENT_ITEMS.value
_DRAFTS = WellKnownFolder.DRAFTS.value


def _ids(parent: ET.Element | None) -> list[ET.Element]:
    ids = list(parent) if parent is not None else []
    if len(ids) > MAX_IDS:
        raise SoapFault("ErrorExceededFindCountLimit", f"A request may name at most {MAX_IDS} ids.")
    return ids


def _recipients(message: ET.Element, tag: str) -> str:
    box = message.find(t(tag))
    if box is None:
        return ""
    people = []
    for person in box.iter(t("Mailbox")):
        address = (person.findtext(t("EmailAddress")) or "").strip()
        if address:
            people.append(formataddr(((person.findtext(t("Name")) or "").strip(), address)))
    return "; ".join(people)


def malformed_update() -> Refused:
    return Refused(
        "ErrorIncorrectUpdatePropertyCount",
        "An object within a change description must contain one and only one property to modify.",
    )


_UPDATE_KINDS = {"SetItemField": "set", "AppendToItemField": "append", "DeleteItemField": "delete"}
#: Properties a sent (not draft) message keeps as they were sent.
_DRAFT_ONLY = frozenset(
    {
        "message:ToRecipients",
        "message:CcRecipients",
        "message:BccRecipients",
        "message:ReplyTo",
        "message:From",
        "message:InternetMessageId",
        "message:IsReadReceiptRequested",
        "message:IsDeliveryReceiptRequested",
    }
)
#: Properties a message always has: deleting them is refused.
_REQUIRED = frozenset({"item:Importance", "item:Sensitivity"})
_PLAIN_BY_NAME = {path.split(":", 1)[1]: path for path in PLAIN_PATHS}
#: CreateItem's Message children that :func:`apply_changes` writes (the rest: compose).
_CREATE_FIELDS = {
    uri.split(":", 1)[1]: uri
    for uri in SETTABLE
    if uri
    not in (
        "item:Body",
        "message:ToRecipients",
        "message:CcRecipients",
        "message:BccRecipients",
    )
}


def _bool(text: str | None) -> bool | None:
    if text is None:
        return None
    return text.strip().lower() in ("true", "1")


class EwsItems:
    """The message-changing operations for one signed-in user."""

    def __init__(self, box: EwsMailbox, clock: Clock) -> None:
        self.box = box
        self.store = box.store
        self.alias = box.alias
        self.clock = clock

    # ------------------------------------------------------------ references

    async def _located(self, ref: ET.Element) -> MessageDetail:
        """The message an ItemId names, where the id says it is (ErrorItemNotFound if moved)."""
        message_id = self._message_id(ref)
        detail = await self.store.get_message(self.alias, message_id)
        folder = parse_id(ref.get("Id", "")).in_folder
        if folder is not None and folder != detail.folder_id:
            raise Refused("ErrorItemNotFound", ITEM_NOT_FOUND)
        return detail

    def _message_id(self, ref: ET.Element) -> int:
        """The store's message id of an ItemId (refused if not this user's message)."""
        try:
            parsed = parse_id(ref.get("Id", ""))
        except InvalidId as exc:
            raise malformed(exc) from None
        if parsed.kind != "M":
            raise malformed()
        self.box.own(parsed.mailbox)
        given = ref.get("ChangeKey")
        if given and not is_change_key(given):
            raise Refused("ErrorInvalidChangeKey", INVALID_CHANGE_KEY)
        return parsed.message_id

    async def _current(self, ref: ET.Element, *, resolution: str = "AutoResolve") -> MessageDetail:
        """The message an ItemId names, its ChangeKey checked as ``resolution`` asks."""
        detail = await self._located(ref)
        given = ref.get("ChangeKey")
        if resolution == "NeverOverwrite" and not given:
            raise Refused(
                "ErrorChangeKeyRequiredForWriteOperations",
                "When making a request that will change the item, the ChangeKey is required.",
            )
        # A stale ChangeKey means someone changed the item since the client read it: only
        # AlwaysOverwrite writes over that (sitemail keeps no property history to merge).
        if given and resolution != "AlwaysOverwrite" and given != change_key(detail.modseq):
            raise Refused("ErrorIrresolvableConflict", CONFLICT)
        return detail

    async def _target(self, ref: ET.Element | None, default: str) -> int | str:
        """The folder a SavedItemFolderId/ToFolderId names (``default`` when absent)."""
        if ref is None:
            return default
        choice = next(iter(ref), None)
        if choice is None:
            return default
        resolved = await self.box.resolve_folder(choice)
        if resolved in (ROOT, TOP):
            raise Refused(
                "ErrorMoveCopyFailed",
                "sitemail's store keeps messages in the folders below the Top of Information "
                "Store only.",
            )
        return resolved

    def _item(self, parent: ET.Element, message_id: int, modseq: int, folder: int) -> None:
        items = sub(parent, m("Items"))
        message = sub(items, t("Message"))
        sub(
            message,
            t("ItemId"),
            Id=item_id(self.alias, message_id, folder),
            ChangeKey=change_key(modseq),
        )

    # ------------------------------------------------------------ sending

    async def _send(self, message_id: int, save_in: int | str | None) -> None:
        """Submit a saved message; keep a copy in ``save_in`` (``None``: no copy).

        The copy is filed at once, as the item is (categories and the properties kept
        beside it included), so that it is in Sent Items when SendItem answers.  What is
        submitted leaves the categories out: they are the sender's own, and recipients
        (the sender too, when among them) get the message without them.  It is flagged
        deleted, so that Mail Submission drops it once sent instead of filing it again.
        """
        if save_in is not None:
            copy = await self.store.copy(self.alias, message_id, save_in)
            await self.store.set_flags(
                self.alias, copy.message_id, FlagUpdate(draft=False, seen=True)
            )
        raw = await self.store.read_raw(self.alias, message_id)
        # Unverified: inferred from exchangelib's live tests (test_send expects no copy
        # with the sender's categories in the recipient's Inbox), not from a 2010 trace.
        sent = without_categories(raw)
        if sent != raw:
            await self.store.replace(self.alias, message_id, sent)
        await self.store.set_flags(self.alias, message_id, FlagUpdate(deleted=True))
        await self.store.submit(self.alias, message_id)

    # ------------------------------------------------------------ CreateItem

    def compose_attached(self, message: ET.Element) -> bytes:
        """The MIME of a message attached to another (an ItemAttachment's item)."""
        return self._compose(message, unsent=True)

    def _compose(self, message: ET.Element, *, unsent: bool) -> bytes:
        mime = message.findtext(t("MimeContent"))
        if mime is not None:
            return _mime_bytes(mime)
        body = message.find(t("Body"))
        draft = Draft(
            to=_recipients(message, "ToRecipients"),
            cc=_recipients(message, "CcRecipients"),
            bcc=_recipients(message, "BccRecipients"),
            # The subject is written as given (spaces kept, 255 characters at most) below.
            subject="",
            body=(body.text or "") if body is not None else "",
        )
        html = body is not None and body.get("BodyType", "Text") == "HTML"
        try:
            raw = build_message(
                self.box.mailbox,
                draft,
                now=self.clock.now(),
                html=html,
                mailer=MAILER,
                unsent=unsent,
            )
        except ComposeError as exc:
            if "recipient" in str(exc):
                raise Refused(
                    "ErrorInvalidRecipients", "At least one recipient is not valid."
                ) from None
            raise Refused("ErrorInvalidPropertySet", str(exc)) from None
        changes = [
            FieldChange("set", _CREATE_FIELDS[name], child)
            for child in message
            if (name := child.tag.rsplit("}", 1)[-1]) in _CREATE_FIELDS
        ]
        return apply_changes(raw, changes) if changes else raw

    async def create_item(self, body: ET.Element) -> ET.Element:
        disposition = body.get("MessageDisposition")
        response = ET.Element(m("CreateItemResponse"))
        messages = sub(response, m("ResponseMessages"))
        items = body.find(m("Items"))
        for item in _ids(items):
            response_kind = _RESPONSES.get(item.tag)
            if response_kind is not None and disposition in _DISPOSITIONS:
                try:
                    item = await self._response_message(item, response_kind)
                except (Refused, StoreError) as exc:
                    sub(_answer_refusal(messages, "CreateItem", exc), m("Items"))
                    continue
            # A generic Item is kept as a message (IPM.Note) too.
            if item.tag not in (t("Message"), t("Item")):
                name = item.tag.rsplit("}", 1)[-1]
                sub(
                    response_message(
                        messages,
                        "CreateItem",
                        "ErrorInvalidOperation",
                        f"sitemail's store keeps messages only; it cannot create a {name}.",
                    ),
                    m("Items"),
                )
                continue
            if disposition not in _DISPOSITIONS:
                sub(
                    response_message(
                        messages,
                        "CreateItem",
                        "ErrorMessageDispositionRequired",
                        "MessageDisposition attribute is required.",
                    ),
                    m("Items"),
                )
                continue
            try:
                await self._create_one(messages, body, item, disposition)
            except (Refused, StoreError) as exc:
                sub(_answer_refusal(messages, "CreateItem", exc), m("Items"))
        return response

    async def _create_one(
        self, messages: ET.Element, body: ET.Element, item: ET.Element, disposition: str
    ) -> None:
        saved = body.find(m("SavedItemFolderId"))
        if disposition == "SaveOnly":
            folder = await self._target(saved, _DRAFTS)
            raw = self._compose(item, unsent=True)
            read = _bool(item.findtext(t("IsRead")))
            placed = await self.store.append(
                self.alias,
                folder,
                raw,
                flags=Flags(draft=True, seen=True if read is None else read),
            )
            modseq = placed.modseq
            bag = _created_properties(item)
            if bag:
                stored = await self.store.set_properties(self.alias, placed.message_id, bag)
                modseq = stored.modseq
            msg = response_message(messages, "CreateItem")
            self._item(msg, placed.message_id, modseq, placed.folder_id)
            return
        save_in = await self._target(saved, _SENT) if disposition == "SendAndSaveCopy" else None
        raw = self._compose(item, unsent=False)
        placed = await self.store.append(
            self.alias, _DRAFTS, raw, flags=Flags(draft=True, seen=True)
        )
        await self._send(placed.message_id, save_in)
        # A sent message has no id to give back (Exchange answers an empty Items).
        sub(response_message(messages, "CreateItem"), m("Items"))

    async def _response_message(self, response: ET.Element, mode: str) -> ET.Element:
        """The ``<t:Message>`` a ReplyToItem, ReplyAllToItem or ForwardItem stands for: its
        own subject, body and recipients, else those of a reply or forward of the original
        (RE:/FW: subject, the sender or everyone, the quoted original), answering it."""
        ref = response.find(t("ReferenceItemId"))
        if ref is None:
            raise Refused("ErrorInvalidReferenceItem", "The ReferenceItemId is missing.")
        original = await self._current(ref)
        text = await read_body(self.store, self.alias, original)
        draft = reply_draft(original, text.text, me=self.box.mailbox, mode=mode)
        message = ET.Element(t("Message"))
        subject = response.findtext(t("Subject"))
        sub(message, t("Subject"), draft.subject if subject is None else subject)
        given = response.find(t("NewBodyContent"))
        if given is None:
            given = response.find(t("Body"))
        html = given is not None and given.get("BodyType") == "HTML"
        own = (given.text or "") if given is not None else ""
        quoted = escape(draft.body).replace("\n", "<br>\n") if html else draft.body
        sub(message, t("Body"), own + quoted, BodyType="HTML" if html else "Text")
        defaults = {"ToRecipients": draft.to, "CcRecipients": draft.cc}
        for tag in ("ToRecipients", "CcRecipients", "BccRecipients"):
            people = response.find(t(tag))
            if people is not None:
                message.append(people)
            elif defaults.get(tag):
                holder = sub(message, t(tag))
                for name, address in parse_recipients(defaults[tag]):
                    person = sub(holder, t("Mailbox"))
                    sub(person, t("Name"), name)
                    sub(person, t("EmailAddress"), address)
        for flag in ("IsReadReceiptRequested", "IsDeliveryReceiptRequested"):
            found = response.find(t(flag))
            if found is not None:
                message.append(found)
        if mode != "Forward" and original.internet_message_id:
            sub(message, t("InReplyTo"), original.internet_message_id)
            sub(message, t("References"), original.internet_message_id)
        return message

    # ------------------------------------------------------------ SendItem

    async def send_item(self, body: ET.Element) -> ET.Element:
        save = _bool(body.get("SaveItemToFolder")) is not False
        saved = body.find(m("SavedItemFolderId"))

        async def send(ref: ET.Element) -> None:
            detail = await self._current(ref)
            save_in = await self._target(saved, _SENT)
            await self._send(detail.id, save_in if save else None)

        return await _each("SendItem", _ids(body.find(m("ItemIds"))), send)

    # ------------------------------------------------------------ UpdateItem

    async def update_item(self, body: ET.Element) -> ET.Element:
        resolution = body.get("ConflictResolution", "AutoResolve")
        disposition = body.get("MessageDisposition", "SaveOnly")
        response = ET.Element(m("UpdateItemResponse"))
        messages = sub(response, m("ResponseMessages"))
        for change in _ids(body.find(m("ItemChanges"))):
            try:
                ref = change.find(t("ItemId"))
                if ref is None:
                    raise malformed()
                detail = await self._current(ref, resolution=resolution)
                modseq = await self._apply(detail, change.find(t("Updates")))
                if disposition in ("SendOnly", "SendAndSaveCopy"):
                    save_in = await self._target(body.find(m("SavedItemFolderId")), _SENT)
                    await self._send(detail.id, save_in if disposition != "SendOnly" else None)
                    msg = response_message(messages, "UpdateItem")
                    sub(msg, m("Items"))
                else:
                    msg = response_message(messages, "UpdateItem")
                    self._item(msg, detail.id, modseq, detail.folder_id)
                conflicts = sub(msg, m("ConflictResults"))
                sub(conflicts, t("Count"), "0")
            except (Refused, StoreError) as exc:
                sub(_answer_refusal(messages, "UpdateItem", exc), m("Items"))
        return response

    async def _apply(self, detail: MessageDetail, updates: ET.Element | None) -> int:
        """Carry out one item's SetItemField/AppendToItemField/DeleteItemField list: the
        MIME-kept properties re-render the message (:mod:`.ews_message_fields`), IsRead is
        a flag.  The new modseq."""
        flags = FlagUpdate()
        changes: list[FieldChange] = []
        mime: bytes | None = None  # a whole new MimeContent, the changes made on it
        bag: dict[str, Any] | None = None  # the item's other properties, once read
        for update in list(updates) if updates is not None else []:
            kind = _UPDATE_KINDS.get(update.tag.rsplit("}", 1)[-1])
            path = next(iter(update), None)
            if kind is None or path is None:
                raise malformed_update()
            value = None
            if kind != "delete":
                holder = next((e for e in update if e is not path), None)
                value = next(iter(holder), None) if holder is not None else None
                if value is None:
                    raise malformed_update()
            uri = path.get("FieldURI", "")
            if path.tag == t("ExtendedFieldURI") or uri in PLAIN_PATHS:
                if bag is None:
                    bag = dict((await self.store.get_properties(self.alias, detail.id)).properties)
                _change_property(bag, kind, path, value)
            elif path.tag != t("FieldURI"):
                raise Refused(
                    "ErrorInvalidPropertySet",
                    f"sitemail keeps no {path.tag.rsplit('}', 1)[-1]} properties of a message.",
                )
            elif uri == "item:MimeContent":
                if kind != "set" or value is None:
                    raise Refused(
                        "ErrorInvalidPropertyDelete", f"{uri} cannot be deleted from a message."
                    )
                if not detail.flags.draft:
                    raise Refused(
                        "ErrorInvalidPropertyUpdateSentMessage",
                        f"{uri} cannot be changed once the message has been sent.",
                    )
                mime = _mime_bytes(value.text or "")
            elif uri == "message:IsRead":
                if kind != "set":
                    raise Refused(
                        "ErrorInvalidPropertyDelete", f"{uri} cannot be deleted from a message."
                    )
                read = _bool(value.text if value is not None else None)
                flags = flags.model_copy(update={"seen": read})
            elif uri in SETTABLE:
                if not detail.flags.draft and uri in _DRAFT_ONLY:
                    raise Refused(
                        "ErrorInvalidPropertyUpdateSentMessage",
                        f"{uri} cannot be changed once the message has been sent.",
                    )
                if kind == "delete" and uri in _REQUIRED:
                    raise Refused(
                        "ErrorInvalidPropertyDelete", f"{uri} cannot be deleted from a message."
                    )
                changes.append(FieldChange(kind, uri, value))
            else:
                raise Refused(
                    "ErrorInvalidPropertySet",
                    f"{uri or 'The property'} cannot be set on a message.",
                )
        modseq = detail.modseq
        if changes or mime is not None:
            raw = mime if mime is not None else await self.store.read_raw(self.alias, detail.id)
            new = apply_changes(raw, changes) if changes else raw
            modseq = (await self.store.replace(self.alias, detail.id, new)).modseq
        if bag is not None:
            modseq = (await self.store.set_properties(self.alias, detail.id, bag)).modseq
        if flags != FlagUpdate():
            summary = await self.store.set_flags(self.alias, detail.id, flags)
            modseq = summary.modseq
        return modseq

    # ------------------------------------------------------------ delete, move, copy

    async def delete_item(self, body: ET.Element) -> ET.Element:
        kind = delete_type(body)

        async def delete(ref: ET.Element) -> None:
            item = await self._located(ref)
            if kind == "SoftDelete":
                # Exchange 2010 keeps a soft-deleted item in the dumpster (Recoverable
                # Items\Deletions), out of every client's sight but EWS's; from there it goes
                # for good.
                dumpster = await self.store.get_folder(self.alias, DUMPSTER)
                if item.folder_id != dumpster.id:
                    await self.store.move(self.alias, item.id, dumpster.id)
                    return
            await self.store.delete(self.alias, item.id, hard=kind != "MoveToDeletedItems")

        return await _each("DeleteItem", _ids(body.find(m("ItemIds"))), delete)

    async def move_item(self, body: ET.Element, operation: str) -> ET.Element:
        """MoveItem or CopyItem: each item into ToFolderId, with its (new) id in the answer."""
        response = ET.Element(m(f"{operation}Response"))
        messages = sub(response, m("ResponseMessages"))
        target: int | str | None = None
        refused: Refused | None = None
        try:
            to_folder = body.find(m("ToFolderId"))
            if to_folder is None or next(iter(to_folder), None) is None:
                raise SoapFault("ErrorSchemaValidation", "ToFolderId is required.")
            target = await self._target(to_folder, _DRAFTS)
        except Refused as exc:
            refused = exc
        for ref in _ids(body.find(m("ItemIds"))):
            try:
                if refused is not None:
                    raise refused
                assert target is not None
                message_id = (await self._located(ref)).id
                if operation == "MoveItem":
                    placed = await self.store.move(self.alias, message_id, target)
                else:
                    placed = await self.store.copy(self.alias, message_id, target)
            except Refused as exc:
                sub(response_message(messages, operation, exc.code, exc.text), m("Items"))
                continue
            except StoreError as exc:
                refusal = client_refusal(exc)
                code = "ErrorToFolderNotFound" if refusal.code == "ErrorFolderNotFound" else None
                sub(
                    response_message(
                        messages,
                        operation,
                        code or refusal.code,
                        "The destination folder could not be found." if code else refusal.text,
                    ),
                    m("Items"),
                )
                continue
            msg = response_message(messages, operation)
            self._item(msg, placed.message_id, placed.modseq, placed.folder_id)
        return response


def _mime_bytes(text: str) -> bytes:
    """The message a MimeContent element carries (base64, bounded)."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Refused(
            "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content."
        ) from None
    if len(raw) > MAX_CREATE_MIME:
        raise Refused("ErrorMessageSizeExceeded", "The message exceeds the maximum size.")
    return raw


def _change_property(
    bag: dict[str, Any], kind: str, path: ET.Element, value: ET.Element | None
) -> None:
    """One Set/Append/DeleteItemField on a property kept beside the content."""
    if kind == "append":
        raise Refused("ErrorInvalidPropertyAppend", "The property cannot be appended to.")
    if path.tag == t("FieldURI"):
        set_plain(bag, path.get("FieldURI", ""), value)
        return
    key, _ = extended_key(path)
    if value is None:
        set_extended(bag, key, None)
        return
    if value.tag != t("ExtendedProperty"):
        raise malformed_update()
    given, stored = read_extended(value)
    if given != key:
        raise Refused(
            "ErrorInvalidPropertySet",
            "The ExtendedFieldURI of the change and of the property it sets differ.",
        )
    set_extended(bag, key, stored)


def _created_properties(item: ET.Element) -> dict[str, Any]:
    """The properties kept beside the content that a CreateItem's item sets."""
    bag: dict[str, Any] = {}
    for child in item:
        name = child.tag.rsplit("}", 1)[-1]
        if child.tag == t("ExtendedProperty"):
            key, stored = read_extended(child)
            set_extended(bag, key, stored)
        elif (path := _PLAIN_BY_NAME.get(name)) is not None:
            set_plain(bag, path, child)
    return bag


def _answer_refusal(messages: ET.Element, operation: str, exc: Refused | StoreError) -> ET.Element:
    """One id's error answer (the client's refusal, or the store's mapped to Exchange's code)."""
    refusal = client_refusal(exc)
    return response_message(messages, operation, refusal.code, refusal.text)


async def _each(
    operation: str, refs: list[ET.Element], work: Callable[[ET.Element], Awaitable[None]]
) -> ET.Element:
    """Run ``work`` for each id: one response message each, with the code of its refusal."""
    response = ET.Element(m(f"{operation}Response"))
    messages = sub(response, m("ResponseMessages"))
    for ref in refs:
        try:
            await work(ref)
        except (Refused, StoreError) as exc:
            _answer_refusal(messages, operation, exc)
        else:
            response_message(messages, operation)
    return response
