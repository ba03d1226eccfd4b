"""SyncFolderItems and SyncFolderHierarchy (MS-OXWSSYNC), over what the store tracks for IMAP.

**Items.**  The store gives each message of a folder a UID and a
modification sequence, and keeps the UIDs that left a folder with the
modseq at which they left (IMAP CONDSTORE/QRESYNC).  A first sync lists the
folder's UIDs; a later one asks the store for what changed after the modseq
the state holds, and diffs that against the state's snapshot
(:mod:`.ews_sync_state`): a new UID is a ``Create``, a UID gone a
``Delete`` (the snapshot names its ItemId), a new modseq a
``ReadFlagChange`` when only the read flag differs, else an ``Update``.  A
message moved out of the folder is a Delete here and a Create in its new
folder, as Exchange reports it.  When more changed than
``MaxChangesReturned`` (1-512), the first ones are given and the state
keeps the old modseq, so the next call finds the rest
(``IncludesLastItemInRange`` false).  When the store says too much changed
for its change list, the whole folder is listed and diffed instead.

**Folders.**  The hierarchy under the SyncFolderId (the whole mailbox when
none is given) is diffed against the state's snapshot of each folder's
parent and name: a new folder is a ``Create``, a renamed or moved one an
``Update``, a deleted one a ``Delete``.  Counts are not part of the
snapshot (unverified whether Exchange 2010 reports a folder whose counts
changed as an Update; exchangelib's live test expects a created subfolder to
be the only change).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from sitemail.access.ews_ids import ROOT, TOP, InvalidId, change_key, folder_id, item_id, parse_id
from sitemail.access.ews_mailbox import (
    _DETAIL_FIELDS,
    _FOLDER_DEFAULT,
    _FOLDER_FIELDS,
    _ITEM_DEFAULT,
    _ITEM_FIELDS,
    MAX_VIEW,
    EwsMailbox,
    _shape,
)
from sitemail.access.ews_responses import Refused, response_message
from sitemail.access.ews_soap import SoapFault, m, sub, t
from sitemail.access.ews_sync_state import (
    FolderEntry,
    ItemChange,
    ItemSnapshot,
    StateSeal,
    apply_items,
    diff_folders,
    diff_items,
    dump_folders,
    load_folders,
)
from sitemail.mailbox.errors import Conflict, FolderNotFound, NotFound
from sitemail.mailbox.limits import MAX_PAGE_SIZE, MAX_UID_PAGE
from sitemail.mailbox.records import Folder, MessageSummary, UidEntry

__all__ = ["MAX_SYNC_CHANGES", "EwsSync"]

#: The schema's bounds of MaxChangesReturned (MaxSyncChangesReturnedType).
MAX_SYNC_CHANGES = 512
#: Messages looked up one by one for a sync's Creates and Updates; more are read by pages.
FETCH_ONE_BY_ONE = 20
#: Ids an Ignore list may hold.
MAX_IGNORE = 1000


class EwsSync:
    """SyncFolderItems and SyncFolderHierarchy for one signed-in user."""

    def __init__(self, box: EwsMailbox, seal: StateSeal) -> None:
        self.box = box
        self.store = box.store
        self.alias = box.alias
        self.seal = seal

    async def store_folder(self, ref: ET.Element) -> Folder | None:
        """The store folder a FolderId names; ``None`` for the two folders above the store's."""
        resolved = await self.box.resolve_folder(ref)
        if resolved in (ROOT, TOP):
            return None
        try:
            return await self.store.get_folder(self.alias, resolved)
        except FolderNotFound:
            raise Refused(
                "ErrorFolderNotFound", "The specified folder could not be found in the store."
            ) from None

    # ------------------------------------------------------------ SyncFolderItems

    async def sync_folder_items(self, body: ET.Element) -> ET.Element:
        response = ET.Element(m("SyncFolderItemsResponse"))
        messages = sub(response, m("ResponseMessages"))
        fields = _shape(body.find(m("ItemShape")), _ITEM_DEFAULT, _ITEM_FIELDS)
        text = (body.findtext(m("MaxChangesReturned")) or "").strip()
        try:
            limit = int(text)
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_SYNC_CHANGES:
            raise SoapFault(
                "ErrorSchemaValidation",
                f"MaxChangesReturned must be an integer from 1 to {MAX_SYNC_CHANGES}.",
            )
        scope = (body.findtext(m("SyncScope")) or "NormalItems").strip()
        if scope not in ("NormalItems", "NormalAndAssociatedItems"):
            raise SoapFault("ErrorSchemaValidation", "SyncScope is not a SyncFolderItemsScopeType.")
        try:
            ref = _first(body.find(m("SyncFolderId")))
            if ref is None:
                raise SoapFault("ErrorSchemaValidation", "SyncFolderId is required.")
            folder = await self.store_folder(ref)
            state_text = (body.findtext(m("SyncState")) or "").strip()
            scope_key = f"items:{folder.id if folder else 'none'}"
            snapshot = ItemSnapshot()
            if state_text:
                snapshot = ItemSnapshot.load(
                    self.seal.open(state_text, "items", self.alias, scope_key)
                )
            changes, modseq = await self._item_changes(folder, snapshot)
        except Refused as exc:
            _refused(messages, "SyncFolderItems", "IncludesLastItemInRange", exc)
            return response
        ignored = _ignored(body.find(m("Ignore")), self.alias)
        given, last = changes[:limit], len(changes) <= limit
        apply_items(snapshot.items, given)
        if last:
            snapshot.modseq = modseq
        msg = response_message(messages, "SyncFolderItems")
        sub(msg, m("SyncState"), self.seal.seal("items", self.alias, scope_key, snapshot.dump()))
        sub(msg, m("IncludesLastItemInRange"), "true" if last else "false")
        container = sub(msg, m("Changes"))
        assert folder is not None or not given
        shown = [c for c in given if c.entry.message_id not in ignored]
        summaries = await self._summaries(folder, shown, fields)
        for change in shown:
            element = sub(container, t(change.kind))
            # With the folder, as the item's own id says it (ews_ids): a client matches them.
            ident = item_id(self.alias, change.entry.message_id, folder.id if folder else None)
            if change.kind == "Delete":
                sub(element, t("ItemId"), Id=ident, ChangeKey=change_key(change.entry.modseq))
            elif change.kind == "ReadFlagChange":
                sub(element, t("ItemId"), Id=ident, ChangeKey=change_key(change.entry.modseq))
                sub(element, t("IsRead"), "true" if change.entry.read else "false")
            else:
                summary = summaries.get(change.entry.message_id)
                if summary is None:  # gone since the change list was read
                    container.remove(element)
                    continue
                await self.box._message_element(element, summary, fields)
        return response

    async def _item_changes(
        self, folder: Folder | None, snapshot: ItemSnapshot
    ) -> tuple[list[ItemChange], int]:
        """What changed in ``folder`` since ``snapshot``, and the folder's modseq now."""
        if folder is None:
            return [], 0
        if snapshot.items or snapshot.modseq:
            try:
                found = await self.store.changes(self.alias, folder.id, snapshot.modseq)
            except Conflict:
                pass  # too much changed for the store's change list: list the folder
            else:
                return diff_items(snapshot.items, found.changed, found.vanished), found.modseq
        entries, modseq = await self._all_uids(folder.id)
        present = {e.uid for e in entries}
        vanished = [uid for uid in snapshot.items if uid not in present]
        return diff_items(snapshot.items, entries, vanished), modseq

    async def _all_uids(self, folder: int) -> tuple[list[UidEntry], int]:
        entries: list[UidEntry] = []
        since, modseq = 0, 0
        while True:
            page = await self.store.uids(self.alias, folder, since=since, limit=MAX_UID_PAGE)
            modseq = modseq or page.modseq
            entries += page.entries
            if len(entries) > MAX_VIEW:
                raise Refused(
                    "ErrorInvalidOperation",
                    f"The folder holds more than {MAX_VIEW} items, more than sitemail "
                    "synchronizes in one folder.",
                )
            if not page.more or not page.entries:
                return entries, modseq
            since = page.entries[-1].uid

    async def _summaries(
        self, folder: Folder | None, changes: list[ItemChange], fields: set[str]
    ) -> dict[int, MessageSummary]:
        """The messages that Creates and Updates show, read in as few store calls as fit."""
        wanted = {c.entry.message_id for c in changes if c.kind in ("Create", "Update")}
        found: dict[int, MessageSummary] = {}
        if not wanted or folder is None:
            return found
        if len(wanted) <= FETCH_ONE_BY_ONE or fields & _DETAIL_FIELDS:
            for message_id in sorted(wanted):
                try:
                    found[message_id] = await self.store.get_message(self.alias, message_id)
                except NotFound:
                    continue  # deleted since the change list was read
            return found
        offset = 0
        while len(found) < len(wanted) and offset < MAX_VIEW:
            page = await self.store.list_messages(
                self.alias, folder.id, offset=offset, limit=MAX_PAGE_SIZE
            )
            found.update((s.id, s) for s in page.items if s.id in wanted)
            if not page.items:
                break
            offset += len(page.items)
        return found

    # ------------------------------------------------------------ SyncFolderHierarchy

    async def sync_folder_hierarchy(self, body: ET.Element) -> ET.Element:
        response = ET.Element(m("SyncFolderHierarchyResponse"))
        messages = sub(response, m("ResponseMessages"))
        fields = _shape(body.find(m("FolderShape")), _FOLDER_DEFAULT, _FOLDER_FIELDS)
        try:
            ref = _first(body.find(m("SyncFolderId")))
            top = None if ref is None else await self.store_folder(ref)
            scope_key = f"folders:{top.id if top else 'all'}"
            state_text = (body.findtext(m("SyncState")) or "").strip()
            known: dict[int, FolderEntry] = {}
            if state_text:
                known = load_folders(self.seal.open(state_text, "folders", self.alias, scope_key))
        except Refused as exc:
            _refused(messages, "SyncFolderHierarchy", "IncludesLastFolderInRange", exc)
            return response
        self.box.forget_folders()
        folders = await self.box.folders()
        order = _below(folders, top.id if top else None)
        now = {f.id: FolderEntry(f.parent_id, f.name) for f in folders if f.id in set(order)}
        changes = diff_folders(known, now, order)
        msg = response_message(messages, "SyncFolderHierarchy")
        sub(
            msg, m("SyncState"), self.seal.seal("folders", self.alias, scope_key, dump_folders(now))
        )
        sub(msg, m("IncludesLastFolderInRange"), "true")
        container = sub(msg, m("Changes"))
        for kind, ident in changes:
            element = sub(container, t(kind))
            if kind == "Delete":
                sub(
                    element, t("FolderId"), Id=folder_id(self.alias, ident), ChangeKey=change_key(0)
                )
            else:
                await self.box._folder_element(element, ident, fields)
        return response


def _refused(messages: ET.Element, operation: str, last: str, exc: Refused) -> None:
    """An error answer with an empty SyncState and range flag: the schema allows them there,
    and exchangelib reads both before it looks at the ResponseCode (unverified whether
    Exchange 2010 writes them in an error answer)."""
    msg = response_message(messages, operation, exc.code, exc.text)
    sub(msg, m("SyncState"), "")
    sub(msg, m(last), "true")


def _first(element: ET.Element | None) -> ET.Element | None:
    return None if element is None else next(iter(element), None)


def _below(folders: list[Folder], top: int | None) -> list[int]:
    """The ids of the folders under ``top`` (every folder for ``None``), parents first."""
    out: list[int] = []
    parents = [top]
    while parents:
        parent = parents.pop(0)
        kids = [f.id for f in folders if f.parent_id == parent]
        out += kids
        parents += kids
    return out


def _ignored(element: ET.Element | None, alias: str) -> set[int]:
    """Message ids of an Ignore list; ids this server did not give are no message to skip."""
    found: set[int] = set()
    for ref in list(element)[:MAX_IGNORE] if element is not None else []:
        try:
            parsed = parse_id(ref.get("Id", ""))
        except InvalidId:
            continue
        if parsed.kind == "M" and parsed.mailbox == alias.casefold():
            found.add(parsed.message_id)
    return found
