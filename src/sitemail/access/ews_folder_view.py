"""The EWS operations that read folders: GetFolder and FindFolder, as Exchange 2010 SP3 answers.

A mailbox's hierarchy, as EWS shows it: ``root`` holds the Top of
Information Store (``msgfolderroot``, the folders every other protocol
shows) and, beside it, Exchange's own folders (Common Views, Finder,
Recoverable Items ... :mod:`sitemail.mailbox.system_folders`), which only EWS
lists.  A folder is written as the element its class makes it
(``CalendarFolder`` for ``IPF.Appointment``, ``ContactsFolder``,
``TasksFolder``, else ``Folder``), with its FolderClass only if it has one:
a folder an EWS client created as a plain ``Folder`` has none.  Its ChangeKey
carries the folder's modification sequence, so that a rename, a move or new
content gives a new one.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from functools import partial
from typing import Any

from sitemail.access.ews_folder_properties import (
    permissions_of,
    render_permission_set,
)
from sitemail.access.ews_ids import ROOT, TOP, change_key, folder_id
from sitemail.access.ews_item_properties import EXTENDED, render_extended
from sitemail.access.ews_mailbox import _FOLDER_DEFAULT, _FOLDER_FIELDS, EwsMailbox, _shape
from sitemail.access.ews_mapi_properties import MapiFolder, folder_value, rendered
from sitemail.access.ews_queries import folder_facts, parse_folder_restriction, parse_paging
from sitemail.access.ews_responses import Refused, response_message
from sitemail.access.ews_soap import m, sub, t
from sitemail.mailbox.errors import FolderNotFound
from sitemail.mailbox.records import Folder

__all__ = ["FolderView", "folder_tag"]

#: Most folders one FindFolder page returns.
MAX_PAGE = 1000
#: The root's DisplayName.  Exchange's root folder has no name a user gave it;
#: "root" is what EWS clients show for it (unverified for 2010).
ROOT_NAME = "root"
TOP_NAME = "Top of Information Store"

# The element of a folder by its class's first two parts (FolderClass "IPF.Appointment.X"
# is a calendar folder too); SearchFolder is for search folders, which the store has not.
_TAGS = {
    "IPF.Appointment": "CalendarFolder",
    "IPF.Contact": "ContactsFolder",
    "IPF.Task": "TasksFolder",
}


def folder_tag(folder_class: str | None) -> str:
    """The FolderType element for a folder of that class."""
    head = ".".join((folder_class or "").split(".")[:2])
    return _TAGS.get(head, "Folder")


class FolderView:
    """GetFolder and FindFolder for one signed-in user, over the whole hierarchy."""

    def __init__(self, box: EwsMailbox) -> None:
        self.box = box
        self.store = box.store
        self.alias = box.alias
        self._all: list[Folder] | None = None

    async def everything(self) -> list[Folder]:
        """The Top of Information Store's folders, then Exchange's own beside it."""
        if self._all is None:
            self._all = await self.store.list_folders(self.alias, everything=True)
        return self._all

    async def folder_element(self, parent: ET.Element, ref: int | str, fields: set[str]) -> None:
        """One folder's element with the ``fields`` asked for, under ``parent``."""
        folders = await self.everything()
        modseq = 0
        if ref in (ROOT, TOP):
            tops = [f for f in folders if f.parent_id is None and f.ipm == (ref == TOP)]
            total = unread = 0
            display = ROOT_NAME if ref == ROOT else TOP_NAME
            parent_ref: int | str | None = ROOT if ref == TOP else None
            child_count = len(tops) + (1 if ref == ROOT else 0)
            folder_class: str | None = None  # neither has a container class
            uidnext = 0
            # They hold no messages; what is below them is the mailbox (unverified).
            size = sum(f.size for f in folders if ref == ROOT or f.ipm)
        else:
            # The listing has it when it is a store folder id; a well-known name is asked for.
            listed = (
                next((f for f in folders if f.id == ref), None) if isinstance(ref, int) else None
            )
            folder = listed or await self.store.get_folder(self.alias, ref)
            ref = folder.id
            total, unread, display, size = folder.total, folder.unread, folder.name, folder.size
            parent_ref = folder.parent_id
            if parent_ref is None:
                parent_ref = TOP if folder.ipm else ROOT
            child_count = sum(1 for f in folders if f.parent_id == folder.id)
            folder_class = folder.folder_class or None
            modseq = folder.modseq
            uidnext = folder.uidnext
        tag = folder_tag(folder_class)
        element = sub(parent, t(tag))
        values: dict[str, str | None] = {
            "folder:FolderClass": folder_class,
            "folder:DisplayName": display,
            "folder:TotalCount": str(total),
            "folder:ChildFolderCount": str(child_count),
            # The schema's calendar and contacts folders have no UnreadCount.
            "folder:UnreadCount": str(unread) if tag in ("Folder", "TasksFolder") else None,
        }
        keys = [f.removeprefix(EXTENDED) for f in fields if f.startswith(EXTENDED)]
        keys = sorted(k for k in keys if k)
        bag: dict[str, Any] = {}
        if isinstance(ref, int) and ("folder:PermissionSet" in fields or keys):
            bag = (await self.store.get_folder_properties(self.alias, ref)).properties
        for path in _FOLDER_FIELDS:
            if path not in fields and path != "folder:FolderId" and (path != EXTENDED or not keys):
                continue
            if path == "folder:FolderId":
                key = change_key(modseq)
                sub(element, t("FolderId"), Id=folder_id(self.alias, ref), ChangeKey=key)
            elif path == "folder:ParentFolderId":
                if parent_ref is not None:
                    sub(
                        element,
                        t("ParentFolderId"),
                        Id=folder_id(self.alias, parent_ref),
                        ChangeKey=change_key(0),
                    )
            elif path == EXTENDED:
                # Facts of the store's by MAPI tag (counts, class, next UID ...) over set ones.
                facts = MapiFolder(
                    display, folder_class or "", total, unread, child_count, uidnext, size
                )
                computed = rendered(keys, partial(_fact, facts), folder=True)
                render_extended(
                    element, keys, {"extended": {**bag.get("extended", {}), **computed}}
                )
            elif path == "folder:PermissionSet":
                calendar = tag == "CalendarFolder"
                render_permission_set(element, permissions_of(bag, calendar), calendar)
            elif (value := values.get(path)) is not None:
                sub(element, t(path.split(":", 1)[1]), value)

    async def get_folder(self, body: ET.Element) -> ET.Element:
        fields = _shape(body.find(m("FolderShape")), _FOLDER_DEFAULT, _FOLDER_FIELDS)
        response = ET.Element(m("GetFolderResponse"))
        messages = sub(response, m("ResponseMessages"))
        ids = body.find(m("FolderIds"))
        for ref in list(ids) if ids is not None else []:
            try:
                resolved = await self.box.resolve_folder(ref)
                msg = response_message(messages, "GetFolder")
                await self.folder_element(sub(msg, m("Folders")), resolved, fields)
            except Refused as exc:
                sub(response_message(messages, "GetFolder", exc.code, exc.text), m("Folders"))
            except FolderNotFound:
                msg = response_message(
                    messages,
                    "GetFolder",
                    "ErrorFolderNotFound",
                    "The specified folder could not be found in the store.",
                )
                sub(msg, m("Folders"))
        return response

    async def find_folder(self, body: ET.Element) -> ET.Element:
        fields = _shape(body.find(m("FolderShape")), _FOLDER_DEFAULT, _FOLDER_FIELDS)
        deep = body.get("Traversal", "Shallow") == "Deep"
        response = ET.Element(m("FindFolderResponse"))
        messages = sub(response, m("ResponseMessages"))
        parents = body.find(m("ParentFolderIds"))
        paging = parse_paging(body, "Folder", MAX_PAGE)
        restriction = body.find(m("Restriction"))
        try:
            wanted = None if restriction is None else parse_folder_restriction(restriction)
        except Refused as exc:
            response_message(messages, "FindFolder", exc.code, exc.text)
            return response
        folders = await self.everything()
        for ref in list(parents) if parents is not None else []:
            try:
                resolved = await self.box.resolve_folder(ref)
                if isinstance(resolved, str) and resolved not in (ROOT, TOP):
                    resolved = (await self.store.get_folder(self.alias, resolved)).id
            except Refused as exc:
                response_message(messages, "FindFolder", exc.code, exc.text)
                continue
            except FolderNotFound:
                response_message(
                    messages, "FindFolder", "ErrorFolderNotFound", "The folder was not found."
                )
                continue
            found = _below(folders, resolved, deep)
            if wanted is not None:
                found = [f for f in found if wanted(folder_facts(folders, f))]
            start, stop = paging.window(len(found))
            msg = response_message(messages, "FindFolder")
            root = sub(msg, m("RootFolder"), **paging.attributes(start, stop - start, len(found)))
            container = sub(root, t("Folders"))
            for ref_id in found[start:stop]:
                await self.folder_element(container, ref_id, fields)
        return response


def _below(folders: list[Folder], parent: int | str, deep: bool) -> list[int | str]:
    """The folders under ``parent`` (a folder id, ROOT or TOP), as FindFolder lists them."""
    found: list[int | str] = []
    if parent == ROOT:
        found.append(TOP)
        if deep:
            found += [f.id for f in _ordered(folders, None, ipm=True)]
        found += [f.id for f in _ordered(folders, None, ipm=False, deep=deep)]
    elif parent == TOP:
        found += [f.id for f in _ordered(folders, None, ipm=True, deep=deep)]
    elif isinstance(parent, int):
        found += [f.id for f in _ordered(folders, parent, deep=deep)]
    return found


def _ordered(
    folders: list[Folder], parent: int | None, *, ipm: bool | None = None, deep: bool = True
) -> list[Folder]:
    """Folders below ``parent`` (at the top: of the IPM subtree or beside it, by ``ipm``),
    depth first, as a deep traversal lists them; only the children if not ``deep``."""
    out: list[Folder] = []
    for folder in folders:
        if folder.parent_id == parent and (ipm is None or folder.ipm == ipm):
            out.append(folder)
            if deep:
                out.extend(_ordered(folders, folder.id))
    return out


def _fact(facts: MapiFolder, key: str) -> str | None:
    return folder_value(key, facts)
