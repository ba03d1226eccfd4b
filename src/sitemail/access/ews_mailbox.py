"""The mailbox operations of Exchange Web Services, over the store API (one signed-in user).

Served here: ``FindItem`` (messages of a
folder, indexed paging), ``GetItem`` (subject, body, sender, recipients,
MIME content ...), ``ResolveNames`` (the directory's mailboxes) and
``ConvertId`` (answered per id: sitemail's ids have no other formats).
What changes a mailbox is in :mod:`.ews_items` (messages) and
:mod:`.ews_folders` (folders), on the same :class:`EwsMailbox`; GetFolder and
FindFolder are :mod:`.ews_folder_view`'s.

The folder hierarchy is the store's, under the two folders every Exchange
mailbox has above it: ``root`` and ``msgfolderroot`` (Top of Information
Store).  Properties follow the requested shape (``IdOnly``, ``Default``,
``AllProperties`` plus ``AdditionalProperties``); properties sitemail does
not keep are left out, as Exchange leaves out properties an item lacks.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from sitemail.access.ews_aqs import parse_query
from sitemail.access.ews_attachments import render_attachments
from sitemail.access.ews_convert_id import convert_ids
from sitemail.access.ews_ids import ROOT, TOP, InvalidId, change_key, folder_id, item_id, parse_id
from sitemail.access.ews_item_properties import (
    EXTENDED,
    PLAIN_PATHS,
    extended_key,
    render_extended,
    render_plain,
)
from sitemail.access.ews_mapi_properties import (
    item_value,
    rendered,
)
from sitemail.access.ews_message_fields import (
    HEADER_PATHS,
    MAX_HEAD,
    HeaderProps,
    KeptHeaders,
    header_props,
    render_header_field,
)
from sitemail.access.ews_queries import (
    parse_grouping,
    parse_paging,
    query_predicate,
    today,
)
from sitemail.access.ews_responses import Refused, response_message
from sitemail.access.ews_restriction import (
    BAG_FIELDS,
    BODY_FIELD,
    HEADER_FIELDS,
    ItemView,
    Predicate,
    parse_restriction,
    parse_sort_order,
    sort_items,
)
from sitemail.access.ews_soap import SoapFault, m, sub, t
from sitemail.access.message_body import read_body
from sitemail.access.web.common import MailStore
from sitemail.mailbox.errors import FolderNotFound, MessageNotFound, NotFound
from sitemail.mailbox.limits import MAX_PAGE_SIZE
from sitemail.mailbox.records import (
    Address,
    Flags,
    Folder,
    FolderChanges,
    FolderUids,
    ItemProperties,
    MessageDetail,
    MessagePage,
    MessageSummary,
    Placement,
    WellKnownFolder,
)
from sitemail.mailbox.system_folders import distinguished
from sitemail.org.model import Mailbox

__all__ = ["EwsMailbox", "EwsStore"]

#: Most messages of a folder a restricted or sorted FindItem reads.
MAX_VIEW = 20_000
#: Most messages of a folder a FindItem restricts or sorts by header properties (each
#: message's header is read).
MAX_HEADER_VIEW = 2000
#: Most items one FindItem page returns, whatever the client asks for.
MAX_PAGE = 1000
#: Largest message whose MIME content GetItem returns (base64 in a SOAP body).
MAX_MIME = 32 * 1024 * 1024
#: What is read first of a message for its header (most headers are shorter).
SHORT_HEAD = 8 * 1024


class EwsStore(MailStore, Protocol):
    """The part of the store API that Exchange Web Services use: OWA's, and a little more."""

    async def read_raw(
        self, mailbox: str, message_id: int, *, start: int = 0, length: int | None = None
    ) -> bytes: ...

    async def copy(self, mailbox: str, message_id: int, folder: int | str) -> Placement: ...

    async def replace(self, mailbox: str, message_id: int, message: bytes) -> Placement: ...

    async def append(
        self,
        mailbox: str,
        folder: int | str,
        message: bytes,
        *,
        flags: Flags | None = None,
        received_at: datetime | None = None,
    ) -> Placement: ...

    async def get_properties(self, mailbox: str, message_id: int) -> ItemProperties: ...

    async def set_properties(
        self, mailbox: str, message_id: int, properties: dict[str, Any]
    ) -> ItemProperties: ...

    async def list_folders(self, mailbox: str, *, everything: bool = False) -> list[Folder]: ...

    async def get_folder_properties(self, mailbox: str, folder: int | str) -> ItemProperties: ...

    async def set_folder_properties(
        self, mailbox: str, folder: int | str, properties: dict[str, Any]
    ) -> ItemProperties: ...

    async def create_folder(
        self,
        mailbox: str,
        name: str,
        parent: int | str | None = None,
        folder_class: str | None = None,
    ) -> Folder: ...

    async def rename_folder(self, mailbox: str, folder: int | str, name: str) -> Folder: ...

    async def move_folder(
        self, mailbox: str, folder: int | str, parent: int | str | None
    ) -> Folder: ...

    async def delete_folder(self, mailbox: str, folder: int | str) -> list[int]: ...

    # FindItem's QueryString: the text searches (body:, and terms without a property).
    async def search(
        self,
        mailbox: str,
        query: str,
        *,
        folder: int | str | None = None,
        fields: Collection[str] | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> MessagePage: ...

    # What IMAP's CONDSTORE/QRESYNC read, for SyncFolderItems and notifications.
    async def uids(
        self, mailbox: str, folder: int | str, *, since: int = 0, limit: int | None = None
    ) -> FolderUids: ...

    async def changes(
        self, mailbox: str, folder: int | str, since_modseq: int, *, wait: float = 0.0
    ) -> FolderChanges: ...


# Folder properties, in the schema's order (FolderType).
_FOLDER_FIELDS = (
    "folder:FolderId",
    "folder:ParentFolderId",
    "folder:FolderClass",
    "folder:DisplayName",
    "folder:TotalCount",
    "folder:ChildFolderCount",
    EXTENDED,  # the extended properties AdditionalProperties names
    "folder:PermissionSet",
    "folder:UnreadCount",
)
_FOLDER_DEFAULT = {
    "folder:FolderId",
    "folder:DisplayName",
    "folder:TotalCount",
    "folder:ChildFolderCount",
    "folder:UnreadCount",
}
# Message properties, in the schema's order (ItemType, then MessageType).
_ITEM_FIELDS = (
    "item:MimeContent",
    "item:ItemId",
    "item:ParentFolderId",
    "item:ItemClass",
    "item:Subject",
    "item:Sensitivity",
    "item:Body",
    "item:Attachments",
    "item:DateTimeReceived",
    "item:Size",
    "item:Categories",
    "item:Importance",
    "item:InReplyTo",
    "item:IsDraft",
    "item:DateTimeSent",
    "item:DateTimeCreated",
    "item:ReminderDueBy",
    "item:ReminderIsSet",
    "item:ReminderMinutesBeforeStart",
    "item:DisplayCc",
    "item:DisplayTo",
    "item:HasAttachments",
    EXTENDED,  # the extended properties AdditionalProperties names
    "item:Culture",
    "message:Sender",
    "message:ToRecipients",
    "message:CcRecipients",
    "message:BccRecipients",
    "message:IsReadReceiptRequested",
    "message:IsDeliveryReceiptRequested",
    "message:From",
    "message:InternetMessageId",
    "message:IsRead",
    "message:IsResponseRequested",
    "message:References",
    "message:ReplyTo",
)
# What BaseShape Default gives for a message (MimeContent and Body only when asked).
_ITEM_DEFAULT = {
    "item:ItemId",
    "item:ParentFolderId",
    "item:ItemClass",
    "item:Subject",
    "item:Sensitivity",
    "item:DateTimeReceived",
    "item:Size",
    "item:Importance",
    "item:IsDraft",
    "item:DateTimeSent",
    "item:DateTimeCreated",
    "item:DisplayCc",
    "item:DisplayTo",
    "item:HasAttachments",
    "message:Sender",
    "message:From",
    "message:IsRead",
}
# Properties that need the whole message (GetItem), not the folder's list row.
_DETAIL_FIELDS = {
    "item:Body",
    "item:Attachments",
    "item:MimeContent",
    "item:InReplyTo",
    "message:ReplyTo",
}


def _shape(shape: ET.Element | None, default: set[str], everything: Iterable[str]) -> set[str]:
    """The property paths a FolderShape/ItemShape asks for."""
    if shape is None:
        return set(default)
    base = (shape.findtext(t("BaseShape")) or "Default").strip()
    if base == "IdOnly":
        wanted = {p for p in default if p.endswith(("FolderId", "ItemId"))}
    elif base == "AllProperties":
        wanted = set(everything) - {"item:MimeContent"}
    else:
        wanted = set(default)
    if (shape.findtext(t("IncludeMimeContent")) or "").strip().lower() in ("true", "1"):
        wanted.add("item:MimeContent")  # an ItemShape's own switch, beside AdditionalProperties
    extra = shape.find(t("AdditionalProperties"))
    if extra is not None:
        for field in extra.iter(t("FieldURI")):
            uri = field.get("FieldURI")
            if uri:
                wanted.add(uri)
        for field in extra.iter(t("ExtendedFieldURI")):
            try:
                wanted.add(EXTENDED + extended_key(field)[0])
            except Refused as exc:
                raise SoapFault(exc.code, exc.text) from None
    return wanted


@lru_cache(maxsize=8192)  # a pure function of an immutable value; strftime was a twentieth
def _when(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _mailbox(parent: ET.Element, tag: str, address: Address, known: bool = False) -> ET.Element:
    box = sub(parent, tag)  # Exchange always names one: an address without a name by itself
    sub(box, t("Name"), address.name or address.address)
    sub(box, t("EmailAddress"), address.address)
    sub(box, t("RoutingType"), "SMTP")
    sub(box, t("MailboxType"), "Mailbox" if known else "OneOff")
    return box


def _names(addresses: list[Address]) -> str:
    return "; ".join(a.name or a.address for a in addresses)


class EwsMailbox:
    """Exchange Web Services for one signed-in user, served from the store API."""

    def __init__(
        self,
        store: EwsStore,
        mailbox: Mailbox,
        directory: list[Mailbox],
        headers: KeptHeaders | None = None,
    ) -> None:
        self.store = store
        self.headers = headers if headers is not None else KeptHeaders(limit=1000)
        self.mailbox = mailbox
        self.alias = mailbox.alias
        self.directory = directory
        self._folders: list[Folder] | None = None
        self._known: set[str] | None = None
        self._folder_view: Any = None  # _folder_element's FolderView, with its folder list

    # ------------------------------------------------------------ folders

    async def folders(self) -> list[Folder]:
        if self._folders is None:
            self._folders = await self.store.list_folders(self.alias)
        return self._folders

    def forget_folders(self) -> None:
        """Read the folder list again on next use (a folder was created, moved or deleted)."""
        self._folders = None
        self._folder_view = None

    async def resolve_folder(self, ref: ET.Element) -> int | str:
        """A store folder id, ``ROOT`` or ``TOP`` for a FolderId/DistinguishedFolderId."""
        if ref.tag == t("DistinguishedFolderId"):
            mailbox = ref.find(t("Mailbox"))
            if mailbox is not None:
                address = (mailbox.findtext(t("EmailAddress")) or "").strip().lower()
                if address and address != self.mailbox.primary_smtp_address.lower():
                    raise Refused(
                        "ErrorAccessDenied",
                        f"{self.mailbox.primary_smtp_address} has no access to {address}'s "
                        "mailbox.",
                    )
            name = ref.get("Id", "")
            if name in (ROOT, TOP):
                return name
            if (system := distinguished(name)) is not None:
                return system.key  # Finder, Recoverable Items ...: the store knows them
            if name == "publicfoldersroot":  # the seed's organization has no public folders
                raise Refused(
                    "ErrorNoPublicFolderReplicaAvailable", "No public folder replica is available."
                )
            try:
                well_known = WellKnownFolder(name)
            except ValueError:
                raise Refused(
                    "ErrorFolderNotFound", f"The distinguished folder {name!r} does not exist."
                ) from None
            return well_known.value
        if ref.tag == t("FolderId"):
            try:
                parsed = parse_id(ref.get("Id", ""))
            except InvalidId as exc:
                raise Refused("ErrorInvalidIdMalformed", f"Id is malformed: {exc}.") from None
            if parsed.kind != "F":
                raise Refused("ErrorInvalidIdMalformed", "The Id is not a folder Id.")
            self.own(parsed.mailbox)
            if parsed.value in (ROOT, TOP):
                return parsed.value
            return int(parsed.value) if parsed.value.isdigit() else parsed.value
        raise Refused("ErrorInvalidIdMalformed", "Expected a FolderId or DistinguishedFolderId.")

    def own(self, alias: str) -> None:
        if alias.casefold() != self.alias.casefold():
            raise Refused("ErrorAccessDenied", "The Id names another user's mailbox.")

    async def _folder_element(self, parent: ET.Element, ref: int | str, fields: set[str]) -> None:
        """One folder's element (SyncFolderHierarchy's changes): :mod:`.ews_folder_view`'s."""
        from sitemail.access.ews_folder_view import FolderView  # it builds on this module

        if self._folder_view is None:
            self._folder_view = FolderView(self)
        await self._folder_view.folder_element(parent, ref, fields)

    # ------------------------------------------------------------ items

    async def find_item(self, body: ET.Element) -> ET.Element:
        fields = _shape(body.find(m("ItemShape")), _ITEM_DEFAULT, _ITEM_FIELDS)
        response = ET.Element(m("FindItemResponse"))
        messages = sub(response, m("ResponseMessages"))
        restriction, sort_order = body.find(m("Restriction")), body.find(m("SortOrder"))
        query_text = body.findtext(m("QueryString"))
        named = [e for part in (restriction, sort_order) if part is not None for e in part.iter()]
        needs_header = any(e.get("FieldURI") in HEADER_FIELDS for e in named)
        needs_bag = any(
            e.get("FieldURI") in BAG_FIELDS or e.tag == t("ExtendedFieldURI") for e in named
        )
        needs_body = any(e.get("FieldURI") == BODY_FIELD for e in named)
        try:
            wanted = None if restriction is None else parse_restriction(restriction)
            keys = [] if sort_order is None else parse_sort_order(sort_order)
            query = None if query_text is None else parse_query(query_text, today())
            grouping = parse_grouping(body)
        except Refused as exc:
            response_message(messages, "FindItem", exc.code, exc.text)
            return response
        paging = parse_paging(body, "Item", MAX_PAGE)
        limit, offset, from_end = paging.limit, paging.offset, paging.from_end
        whole = paging.fraction is not None or grouping is not None
        if whole:
            # A fraction of the view, or groups: the whole view is read, then sliced below.
            limit, offset, from_end = MAX_VIEW, 0, False
        parents = body.find(m("ParentFolderIds"))
        for ref in list(parents) if parents is not None else []:
            try:
                resolved = await self.resolve_folder(ref)
                if resolved in (ROOT, TOP):
                    page = MessagePage(total=0, offset=0, items=[])
                elif wanted is not None or keys or query is not None or whole:
                    test = await query_predicate(self.store, self.alias, query, resolved, wanted)
                    page = await self._view(
                        resolved,
                        test,
                        keys,
                        (offset, limit, from_end),
                        (needs_header, needs_bag, needs_body),
                    )
                else:
                    page = await self.store.list_messages(
                        self.alias,
                        resolved,
                        offset=offset,
                        limit=max(limit, 1),
                        oldest_first=from_end,
                    )
            except Refused as exc:
                response_message(messages, "FindItem", exc.code, exc.text)
                continue
            except FolderNotFound:
                response_message(
                    messages, "FindItem", "ErrorFolderNotFound", "The folder was not found."
                )
                continue
            items = page.items[:limit]
            msg = response_message(messages, "FindItem")
            if whole:
                if grouping is not None:
                    items = grouping.arrange(items)
                start, stop = paging.window(page.total)
                items = items[start:stop]
                attributes = paging.attributes(start, len(items), page.total)
            else:
                end = offset + len(items)
                attributes = {
                    "IndexedPagingOffset": str(end),
                    "TotalItemsInView": str(page.total),
                    "IncludesLastItemInRange": "true" if end >= page.total else "false",
                }
            root = sub(msg, m("RootFolder"), **attributes)
            runs = [("", items)] if grouping is None else grouping.groups(items)
            groups = None if grouping is None else sub(root, t("Groups"))
            for index, members in runs:
                if groups is None:
                    container = sub(root, t("Items"))
                else:
                    grouped = sub(groups, t("GroupedItems"))
                    sub(grouped, t("GroupIndex"), index)
                    container = sub(grouped, t("Items"))
                for summary in members:
                    await self._message_element(container, summary, fields - _DETAIL_FIELDS)
        return response

    async def _view(
        self,
        folder: int | str,
        wanted: Predicate | None,
        keys: list[tuple[Any, bool]],
        window: tuple[int, int, bool],
        needs: tuple[bool, bool, bool],
    ) -> MessagePage:
        """A restricted or sorted view of the folder: every message read, then filtered,
        sorted (newest first unless the view says otherwise) and paged."""
        items: list[MessageSummary] = []
        while len(items) < MAX_VIEW:
            page = await self.store.list_messages(
                self.alias, folder, offset=len(items), limit=MAX_PAGE_SIZE
            )
            items.extend(page.items)
            if not page.items or len(items) >= page.total:
                break
        offset, limit, from_end = window
        needs_header, needs_bag, needs_body = needs
        bound = MAX_HEADER_VIEW if any(needs) else MAX_VIEW
        if len(items) >= bound:
            raise Refused(
                "ErrorQueryFilterTooLong",
                f"The folder holds more than {bound} items to restrict or sort by these "
                "properties; page through it instead.",
            )
        if any(needs):
            items = [
                ItemView.model_construct(
                    **dict(s),
                    header=await self.header_of(s) if needs_header else None,
                    bag=(await self.store.get_properties(self.alias, s.id)).properties
                    if needs_bag
                    else None,
                    body=await self._body_text(s.id) if needs_body else None,
                )
                for s in items
            ]
        if wanted is not None:
            items = [s for s in items if wanted(s)]
        if from_end:
            items.reverse()
        sort_items(items, keys)
        return MessagePage(total=len(items), offset=offset, items=items[offset : offset + limit])

    async def get_item(self, body: ET.Element) -> ET.Element:
        fields = _shape(body.find(m("ItemShape")), _ITEM_DEFAULT, _ITEM_FIELDS)
        response = ET.Element(m("GetItemResponse"))
        messages = sub(response, m("ResponseMessages"))
        ids = body.find(m("ItemIds"))
        for ref in list(ids) if ids is not None else []:
            try:
                parsed = parse_id(ref.get("Id", ""))
                if parsed.kind != "M":
                    raise Refused("ErrorInvalidIdMalformed", "The Id is not an item Id.")
                self.own(parsed.mailbox)
                detail = await self.store.get_message(self.alias, parsed.message_id)
                if parsed.in_folder is not None and parsed.in_folder != detail.folder_id:
                    raise MessageNotFound(f"message {parsed.message_id} has moved")
                msg = response_message(messages, "GetItem")
                await self._message_element(sub(msg, m("Items")), detail, fields)
            except InvalidId as exc:
                msg = response_message(
                    messages, "GetItem", "ErrorInvalidIdMalformed", f"Id is malformed: {exc}."
                )
                sub(msg, m("Items"))
            except Refused as exc:
                sub(response_message(messages, "GetItem", exc.code, exc.text), m("Items"))
            except (MessageNotFound, NotFound):
                msg = response_message(
                    messages,
                    "GetItem",
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                )
                sub(msg, m("Items"))
        return response

    async def _body_text(self, message_id: int) -> str:
        detail = await self.store.get_message(self.alias, message_id)
        return (await read_body(self.store, self.alias, detail)).text.removesuffix("\n")

    def is_known(self, address: str) -> bool:
        """Whether an address is a mailbox of the directory (EWS MailboxType Mailbox)."""
        if self._known is None:
            self._known = {b.primary_smtp_address.lower() for b in self.directory}
        return address.lower() in self._known

    async def header_of(self, item: MessageSummary) -> HeaderProps:
        """The properties a message's header holds (its first bytes read from the store)."""
        key = (
            self.alias.casefold(),
            item.id,
            item.size,
            item.received_at,
            item.internet_message_id,
        )
        kept = self.headers.get(key)
        if kept is not None:
            return kept
        head = await self.store.read_raw(self.alias, item.id, length=min(SHORT_HEAD, item.size))
        if b"\n\n" not in head and b"\r\n\r\n" not in head and item.size > SHORT_HEAD:
            head = await self.store.read_raw(self.alias, item.id, length=MAX_HEAD)
        props = header_props(head)
        self.headers.put(key, props)
        return props

    async def _message_element(
        self, parent: ET.Element, item: MessageSummary, fields: set[str]
    ) -> None:
        element = sub(parent, t("Message"))
        detail = item if isinstance(item, MessageDetail) else None
        props = await self.header_of(item) if fields & HEADER_PATHS else None
        extended = sorted(f.removeprefix(EXTENDED) for f in fields if f.startswith(EXTENDED))
        bag: dict[str, Any] = {}
        if extended or fields & PLAIN_PATHS:
            bag = (await self.store.get_properties(self.alias, item.id)).properties
        for path in _ITEM_FIELDS:
            if path == EXTENDED:
                # What the client set first; the store's facts (size, UID, flags) beside it.
                computed = rendered(extended, lambda key: item_value(key, item))
                render_extended(
                    element, extended, {"extended": {**computed, **bag.get("extended", {})}}
                )
                continue
            if path not in fields and path != "item:ItemId":
                continue
            name = path.split(":", 1)[1]
            if path in PLAIN_PATHS:
                render_plain(element, path, bag)
            elif props is not None and path in HEADER_PATHS:
                render_header_field(element, path, props, self.is_known)
            elif path == "item:MimeContent":
                if detail is not None and detail.size <= MAX_MIME:
                    raw = await self.store.read_raw(self.alias, detail.id)
                    sub(
                        element,
                        t("MimeContent"),
                        base64.b64encode(raw).decode("ascii"),
                        CharacterSet="UTF-8",
                    )
            elif path == "item:Attachments":
                if detail is not None:
                    render_attachments(element, self.alias, detail)
            elif path == "item:ItemId":
                sub(
                    element,
                    t("ItemId"),
                    Id=item_id(self.alias, item.id, item.folder_id),
                    ChangeKey=change_key(item.modseq),
                )
            elif path == "item:ParentFolderId":
                sub(
                    element,
                    t("ParentFolderId"),
                    Id=folder_id(self.alias, item.folder_id),
                    ChangeKey=change_key(0),
                )
            elif path == "item:ItemClass":
                sub(element, t("ItemClass"), "IPM.Note")
            elif path == "item:Subject":
                sub(element, t("Subject"), item.subject)
            elif path == "item:Body":
                if detail is not None:
                    body = await read_body(self.store, self.alias, detail)
                    sub(
                        element,
                        t("Body"),
                        # The line end that closes a MIME body is not part of the text.
                        body.text.removesuffix("\n").removesuffix("\r") or None,
                        BodyType="HTML" if body.html else "Text",
                        IsTruncated="true" if body.truncated else "false",
                    )
            elif path == "item:DateTimeReceived":
                sub(element, t(name), _when(item.received_at))
            elif path == "item:Size":
                sub(element, t(name), str(item.size))
            elif path == "item:InReplyTo":
                if detail is not None and detail.in_reply_to:
                    sub(element, t(name), detail.in_reply_to)
            elif path == "item:IsDraft":
                sub(element, t(name), "true" if item.flags.draft else "false")
            elif path in ("item:DateTimeSent", "item:DateTimeCreated"):
                sub(element, t(name), _when(item.sent_at or item.received_at))
            elif path == "item:DisplayCc":
                sub(element, t(name), _names(item.cc))
            elif path == "item:DisplayTo":
                sub(element, t(name), _names(item.to))
            elif path == "item:HasAttachments":
                sub(element, t(name), "true" if item.has_attachments else "false")
            elif path in ("message:Sender", "message:From"):
                if item.from_address is not None:
                    _mailbox(
                        sub(element, t(name)),
                        t("Mailbox"),
                        item.from_address,
                        self.is_known(item.from_address.address),
                    )
            elif path in ("message:ToRecipients", "message:CcRecipients"):
                people = item.to if name == "ToRecipients" else item.cc
                if people:
                    container = sub(element, t(name))
                    for person in people:
                        _mailbox(container, t("Mailbox"), person, self.is_known(person.address))
            elif path == "message:InternetMessageId":
                if item.internet_message_id:
                    sub(element, t(name), item.internet_message_id)
            elif path == "message:IsRead":
                sub(element, t(name), "true" if item.flags.seen else "false")
            elif path == "message:ReplyTo" and detail is not None and detail.reply_to:
                container = sub(element, t(name))
                for person in detail.reply_to:
                    _mailbox(container, t("Mailbox"), person, self.is_known(person.address))

    # ------------------------------------------------------------ names and ids

    def convert_id(self, body: ET.Element) -> ET.Element:
        return convert_ids(body, check=self._own_address)

    def _own_address(self, alias: str) -> str:
        """The primary address of the mailbox an id names: the user's own, or refused."""
        self.own(alias)
        return self.mailbox.primary_smtp_address


def _ordered(folders: list[Folder], parent: int | None) -> list[Folder]:
    """Folders below ``parent``, depth first, as a deep traversal lists them."""
    out: list[Folder] = []
    for folder in folders:
        if folder.parent_id == parent:
            out.append(folder)
            out.extend(_ordered(folders, folder.id))
    return out
