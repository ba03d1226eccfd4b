"""The EWS operations that change folders: CreateFolder, UpdateFolder (name, permissions,
extended properties: :mod:`.ews_folder_properties`), DeleteFolder, MoveFolder and
EmptyFolder, over the store API, as Exchange 2010 SP3 answers them.

The default folders of a mailbox (Inbox, Drafts ... the distinguished
folders) keep their names and places: deleting one is
``ErrorDeleteDistinguishedFolder``, moving one ``ErrorMoveDistinguishedFolder``;
the two folders above them (``root`` and ``msgfolderroot``) are no store
folders and answer ``ErrorCannotDeleteObject``.  The store keeps mail folders
(``IPF.Note``, or a ``Folder`` without a class, as an EWS client may create
one): a folder of another class is refused rather than shown with a class it
does not have, and a folder's class cannot change (ErrorObjectTypeChanged).
A DeleteFolder of type SoftDelete removes the folder for good, as HardDelete
does (Exchange would keep it in the dumpster; the store keeps items there,
not folders).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from typing import Any

from sitemail.access.ews_folder_properties import change_properties, created_properties
from sitemail.access.ews_folder_view import folder_tag
from sitemail.access.ews_ids import ROOT, TOP, change_key, folder_id
from sitemail.access.ews_mailbox import EwsMailbox
from sitemail.access.ews_responses import Refused, delete_type, response_message, store_refusal
from sitemail.access.ews_soap import SoapFault, m, sub, t
from sitemail.mailbox.errors import (
    Conflict,
    FolderExists,
    FolderNotFound,
    FolderProtected,
    InvalidRequest,
    StoreError,
)
from sitemail.mailbox.records import Folder, WellKnownFolder
from sitemail.mailbox.system_folders import DUMPSTER

__all__ = ["EwsFolders"]

#: Most folders one request may name.
MAX_FOLDERS = 100
#: Messages deleted per store call while a folder is emptied.
EMPTY_PAGE = 200
MAIL_CLASS = "IPF.Note"
# The folder elements a client may create and the class each stands for.
_ELEMENT_CLASS = {
    "CalendarFolder": "IPF.Appointment",
    "ContactsFolder": "IPF.Contact",
    "TasksFolder": "IPF.Task",
}

_Work = Callable[[ET.Element], Awaitable[Folder | None]]
"""The per-folder step of an operation: the folder to answer, or ``None``."""


def _list(parent: ET.Element | None) -> list[ET.Element]:
    found = list(parent) if parent is not None else []
    if len(found) > MAX_FOLDERS:
        raise SoapFault(
            "ErrorExceededFindCountLimit", f"A request may name at most {MAX_FOLDERS} folders."
        )
    return found


def _store_refusal(exc: StoreError, action: str) -> Refused:
    """How Exchange words what the store refused about a folder ``action``."""
    if isinstance(exc, FolderProtected):
        if action == "delete":
            return Refused(
                "ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted."
            )
        if action == "move":
            return Refused("ErrorMoveDistinguishedFolder", "Distinguished folders cannot be moved.")
        return Refused(
            "ErrorInvalidPropertySet", "The default folders of a mailbox keep their names."
        )
    if isinstance(exc, FolderNotFound) and action == "rename":
        # UpdateFolder binds the folder as any store object: a gone one is an item not found
        # (what Exchange answers exchangelib's save() of a deleted folder).
        return Refused("ErrorItemNotFound", "The specified object was not found in the store.")
    refusal = store_refusal(exc)
    if refusal is not None:
        return refusal
    if isinstance(exc, InvalidRequest | Conflict):
        return Refused("ErrorFolderSave", exc.message)
    raise exc


class EwsFolders:
    """The folder-changing operations for one signed-in user."""

    def __init__(self, box: EwsMailbox) -> None:
        self.box = box
        self.store = box.store
        self.alias = box.alias

    async def _folder(self, ref: ET.Element) -> Folder:
        """The store folder a FolderId/DistinguishedFolderId names; refused above the store."""
        resolved = await self.box.resolve_folder(ref)
        if resolved in (ROOT, TOP):
            raise Refused("ErrorCannotDeleteObject", "The object cannot be deleted.")
        return await self.store.get_folder(self.alias, resolved)

    async def _parent(self, ref: ET.Element | None) -> int | None:
        """The store folder under which to put one (``None``: the Top of Information Store)."""
        choice = next(iter(ref), None) if ref is not None else None
        if choice is None:
            raise SoapFault("ErrorSchemaValidation", "The parent folder is required.")
        resolved = await self.box.resolve_folder(choice)
        if resolved == TOP:
            return None
        if resolved == ROOT:
            raise Refused(
                "ErrorCreateFolderAccessDenied",
                "Folders below the root, beside the Top of Information Store, are Exchange's own.",
            )
        try:
            return (await self.store.get_folder(self.alias, resolved)).id
        except FolderNotFound:
            raise Refused("ErrorParentFolderNotFound", "Parent folder not found.") from None

    def _folders(self, msg: ET.Element, folder: Folder) -> None:
        container = sub(msg, m("Folders"))
        element = sub(container, t(folder_tag(folder.folder_class)))
        # The ChangeKey follows the folder's modification sequence: a move or rename changes it.
        key = change_key(folder.modseq)
        sub(element, t("FolderId"), Id=folder_id(self.alias, folder.id), ChangeKey=key)

    async def _each(
        self, operation: str, refs: list[ET.Element], action: str, with_folders: bool, work: _Work
    ) -> ET.Element:
        """Run ``work`` for each folder reference, one response message each."""
        response = ET.Element(m(f"{operation}Response"))
        messages = sub(response, m("ResponseMessages"))
        for ref in refs:
            try:
                result = await work(ref)
            except Refused as exc:
                msg = response_message(messages, operation, exc.code, exc.text)
            except StoreError as exc:
                refusal = _store_refusal(exc, action)
                msg = response_message(messages, operation, refusal.code, refusal.text)
            else:
                msg = response_message(messages, operation)
                if with_folders and result is not None:
                    self._folders(msg, result)
                continue
            if with_folders:
                sub(msg, m("Folders"))
        self.box.forget_folders()
        return response

    # ------------------------------------------------------------ operations

    async def create_folder(self, body: ET.Element) -> ET.Element:
        try:
            parent: int | None = await self._parent(body.find(m("ParentFolderId")))
            refused = None
        except Refused as exc:
            parent, refused = None, exc

        async def create(folder: ET.Element) -> Folder:
            if refused is not None:
                raise refused
            name = (folder.findtext(t("DisplayName")) or "").strip()
            element = folder.tag.rsplit("}", 1)[-1]
            folder_class = (folder.findtext(t("FolderClass")) or "").strip()
            # A CalendarFolder, ContactsFolder or TasksFolder without a class has its
            # element's; the class then says which items it holds (ews_typed).
            folder_class = folder_class or _ELEMENT_CLASS.get(element, "")
            if element not in _ELEMENT_CLASS and element != "Folder":
                raise Refused(
                    "ErrorInvalidOperation",
                    f"sitemail's store cannot create a {element} (search folders are not kept).",
                )
            if len(folder_class) > 255 or (folder_class and not folder_class.startswith("IPF")):
                raise Refused("ErrorInvalidPropertyRequest", "A FolderClass begins with IPF.")
            if not name:
                raise Refused("ErrorInvalidFolderId", "A folder needs a DisplayName.")
            calendar = folder_class.startswith(_ELEMENT_CLASS["CalendarFolder"])
            bag = created_properties(folder, self.box.directory, calendar=calendar)
            try:
                created = await self.store.create_folder(self.alias, name, parent, folder_class)
            except FolderExists:
                raise Refused(
                    "ErrorFolderExists",
                    f"Could not create folder '{name}'. A folder with the specified name "
                    "already exists.",
                ) from None
            if bag:
                await self.store.set_folder_properties(self.alias, created.id, bag)
                created = await self.store.get_folder(self.alias, created.id)
            return created

        refs = _list(body.find(m("Folders")))
        return await self._each("CreateFolder", refs, "create", True, create)

    async def update_folder(self, body: ET.Element) -> ET.Element:
        async def update(change: ET.Element) -> Folder:
            ref = next((e for e in change if e.tag != t("Updates")), None)
            if ref is None:
                raise Refused("ErrorInvalidIdMalformed", "Id is malformed.")
            folder = await self._folder(ref)
            updates = change.find(t("Updates"))
            bag: dict[str, Any] | None = None  # the folder's kept properties, once read
            for item in list(updates) if updates is not None else []:
                path = item.find(t("FieldURI"))
                extended = item.find(t("ExtendedFieldURI"))
                uri = path.get("FieldURI", "") if path is not None else ""
                value = next((e for e in item if e is not path and e is not extended), None)
                kind = item.tag.rsplit("}", 1)[-1]
                if extended is not None or uri == "folder:PermissionSet":
                    if bag is None:
                        kept = await self.store.get_folder_properties(self.alias, folder.id)
                        bag = dict(kept.properties)
                    calendar = folder.folder_class.startswith("IPF.Appointment")
                    directory = self.box.directory
                    change_properties(bag, kind, extended, value, directory, calendar)
                elif uri == "folder:DisplayName" and kind == "SetFolderField" and value is not None:
                    name = (value.findtext(t("DisplayName")) or "").strip()
                    if name != folder.name:
                        folder = await self.store.rename_folder(self.alias, folder.id, name)
                elif uri == "folder:FolderClass" and value is not None:
                    if (value.findtext(t("FolderClass")) or "").strip() != folder.folder_class:
                        raise Refused(
                            "ErrorObjectTypeChanged", "The class of a folder cannot be changed."
                        )
                elif kind == "DeleteFolderField" and uri != "folder:DisplayName":
                    continue  # clearing what the store does not keep changes nothing
                elif value is None and kind != "DeleteFolderField":
                    raise Refused(
                        "ErrorIncorrectUpdatePropertyCount",
                        "An object within a change description must contain one and only one "
                        "property to modify.",
                    )
                else:
                    raise Refused(
                        "ErrorInvalidPropertySet", f"{uri or 'This property'} cannot be set."
                    )
            if bag is not None:
                await self.store.set_folder_properties(self.alias, folder.id, bag)
                folder = await self.store.get_folder(self.alias, folder.id)
            return folder

        refs = _list(body.find(m("FolderChanges")))
        return await self._each("UpdateFolder", refs, "rename", True, update)

    async def delete_folder(self, body: ET.Element) -> ET.Element:
        kind = delete_type(body)

        async def delete(ref: ET.Element) -> None:
            folder = await self._folder(ref)
            if folder.well_known is not None:
                raise Refused(
                    "ErrorDeleteDistinguishedFolder", "Distinguished folders cannot be deleted."
                )
            if kind == "MoveToDeletedItems":
                trash = await self.store.get_folder(self.alias, WellKnownFolder.DELETED_ITEMS.value)
                if folder.parent_id != trash.id:
                    await self.store.move_folder(self.alias, folder.id, trash.id)
                    return
            await self.store.delete_folder(self.alias, folder.id)

        refs = _list(body.find(m("FolderIds")))
        return await self._each("DeleteFolder", refs, "delete", False, delete)

    async def move_folder(self, body: ET.Element) -> ET.Element:
        try:
            parent: int | None = await self._parent(body.find(m("ToFolderId")))
            refused = None
        except Refused as exc:
            parent, refused = None, exc
            if exc.code == "ErrorParentFolderNotFound":
                refused = Refused("ErrorToFolderNotFound", "The destination folder was not found.")

        async def move(ref: ET.Element) -> Folder:
            if refused is not None:
                raise refused
            folder = await self._folder(ref)
            if folder.well_known is not None:
                raise Refused(
                    "ErrorMoveDistinguishedFolder", "Distinguished folders cannot be moved."
                )
            return await self.store.move_folder(self.alias, folder.id, parent)

        refs = _list(body.find(m("FolderIds")))
        return await self._each("MoveFolder", refs, "move", True, move)

    async def empty_folder(self, body: ET.Element) -> ET.Element:
        kind = delete_type(body)
        subfolders = body.get("DeleteSubFolders", "false").lower() in ("true", "1")

        async def empty(ref: ET.Element) -> None:
            folder = await self._folder(ref)
            hard = (
                kind != "MoveToDeletedItems" or folder.well_known == WellKnownFolder.DELETED_ITEMS
            )
            # A soft delete keeps the items in the dumpster, as DeleteItem's does.
            dumpster = None
            if kind == "SoftDelete" and folder.system != DUMPSTER:
                dumpster = (await self.store.get_folder(self.alias, DUMPSTER)).id
            # Page from the start each time: each page's messages leave the folder.
            for _ in range(folder.total // EMPTY_PAGE + 2):
                page = await self.store.list_messages(self.alias, folder.id, limit=EMPTY_PAGE)
                if not page.items:
                    break
                for item in page.items:
                    if dumpster is not None:
                        await self.store.move(self.alias, item.id, dumpster)
                    else:
                        await self.store.delete(self.alias, item.id, hard=hard)
            if subfolders:
                everything = await self.store.list_folders(self.alias, everything=True)
                for child in everything:
                    mine = child.well_known is None and child.system is None
                    if child.parent_id == folder.id and mine:
                        await self.store.delete_folder(self.alias, child.id)

        refs = _list(body.find(m("FolderIds")))
        return await self._each("EmptyFolder", refs, "delete", False, empty)
