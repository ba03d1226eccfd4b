"""The ActiveSync commands sitemail serves, over the store API: FolderSync, Sync, Provision.

Each command takes the decoded WBXML request (:mod:`sitemail.protocols.wbxml`)
and gives the response tree; HTTP is the caller's (:mod:`.eas_handler`).

- **FolderSync** sends the mail folders (Inbox type 2, Drafts 3, Deleted
  Items 4, Sent Items 5, Outbox 6, other mail folders 12) and, under a
  later SyncKey, what was added, removed or renamed since.
- **Sync** of the Calendar folder is :mod:`.eas_calendar`'s.
- **Sync** sends a mail folder's messages (newest first, ``WindowSize`` at a
  time with ``MoreAvailable``), then what arrived, left or changed its read
  state since; it takes the device's read-state changes and deletions.
  Bodies follow ``BodyPreference`` (plain text, HTML, or MIME) and its
  ``TruncationSize``; EAS 2.x devices get the 2.5 ``Email:Body``.
- **SendMail** is :mod:`.eas_send`'s.
- **Provision** hands out a policy without requirements (sitemail keeps no
  ActiveSync mailbox policies), in the two phases of MS-ASPROV; devices are
  never forced to provision (no HTTP 449).

Status codes are MS-ASCMD's: FolderSync 9 and Sync 3 for an unknown
SyncKey, Sync 8 for a collection that is not a mail folder, 4 for a
malformed request.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from typing import Protocol

from sitemail.access.eas_send import EasSendStore
from sitemail.access.eas_state import FolderEntry, MessageEntry, SyncStates
from sitemail.access.ews_typed_store import TypedItemStore
from sitemail.access.message_body import read_body
from sitemail.mailbox.errors import NotFound
from sitemail.mailbox.records import (
    Address,
    FlagUpdate,
    Folder,
    MessageDetail,
    MessagePage,
    MessageSummary,
    Placement,
    WellKnownFolder,
)
from sitemail.protocols.wbxml import Element, el

__all__ = ["EasContext", "EasStore", "folder_sync", "provision", "sync"]

#: Messages one Sync answer carries at most, whatever WindowSize says (MS-ASCMD: 512).
MAX_WINDOW = 512
DEFAULT_WINDOW = 100
#: Messages of a folder that Sync follows (newest first).
MAX_FOLLOWED = 5000
LIST_PAGE = 500

_FOLDER_TYPES = {
    WellKnownFolder.INBOX: 2,
    WellKnownFolder.DRAFTS: 3,
    WellKnownFolder.DELETED_ITEMS: 4,
    WellKnownFolder.SENT_ITEMS: 5,
    WellKnownFolder.OUTBOX: 6,
    # MS-ASCMD 2.2.3.186.3: the default folders of the other item kinds.
    WellKnownFolder.TASKS: 7,
    WellKnownFolder.CALENDAR: 8,
    WellKnownFolder.CONTACTS: 9,
    WellKnownFolder.NOTES: 10,
    WellKnownFolder.JOURNAL: 11,
}
USER_MAIL_FOLDER = 12
POLICY_TYPE = "MS-EAS-Provisioning-WBXML"


class EasStore(EasSendStore, TypedItemStore, Protocol):
    """The part of the store API ActiveSync uses (SendMail's and the calendar's included)."""

    async def list_folders(self, mailbox: str) -> list[Folder]: ...

    async def list_messages(
        self,
        mailbox: str,
        folder: int | str,
        *,
        offset: int = 0,
        limit: int = 50,
        oldest_first: bool = False,
    ) -> MessagePage: ...

    async def get_message(self, mailbox: str, message_id: int) -> MessageDetail: ...

    async def read_part(self, mailbox: str, message_id: int, part_id: str) -> bytes: ...

    async def read_raw(
        self, mailbox: str, message_id: int, *, start: int = 0, length: int | None = None
    ) -> bytes: ...

    async def delete(
        self, mailbox: str, message_id: int, *, hard: bool = False
    ) -> Placement | None: ...


@dataclass(frozen=True)
class EasContext:
    store: EasStore
    states: SyncStates
    alias: str
    device_id: str
    version: tuple[int, int]  # the device's protocol version
    owner: Address | None = None  # the mailbox's name and address (a device's appointments)


# ------------------------------------------------------------------ FolderSync


def _folder_type(folder: Folder) -> int:
    if folder.well_known is None:
        return USER_MAIL_FOLDER
    return _FOLDER_TYPES.get(folder.well_known, USER_MAIL_FOLDER)


async def _hierarchy(ctx: EasContext) -> dict[str, FolderEntry]:
    folders = await ctx.store.list_folders(ctx.alias)
    return {
        str(f.id): FolderEntry(
            server_id=str(f.id),
            parent_id=str(f.parent_id) if f.parent_id is not None else "0",
            name=f.name,
            type=_folder_type(f),
        )
        for f in folders
    }


def _folder_el(tag: str, entry: FolderEntry) -> Element:
    return el(
        f"FolderHierarchy:{tag}",
        el("FolderHierarchy:ServerId", entry.server_id),
        el("FolderHierarchy:ParentId", entry.parent_id),
        el("FolderHierarchy:DisplayName", entry.name),
        el("FolderHierarchy:Type", entry.type),
    )


async def folder_sync(request: Element, ctx: EasContext) -> Element:
    key = (request.findtext("SyncKey") or "").strip()
    if not request.is_named("FolderHierarchy:FolderSync") or not key:
        return el("FolderHierarchy:FolderSync", el("FolderHierarchy:Status", 10))
    before = ctx.states.hierarchy(ctx.alias, ctx.device_id, key)
    if before is None:
        # Synchronization key mismatch or invalid synchronization key.
        return el("FolderHierarchy:FolderSync", el("FolderHierarchy:Status", 9))
    now = await _hierarchy(ctx)
    changes: list[Element] = []
    for sid, entry in now.items():
        if sid not in before:
            changes.append(_folder_el("Add", entry))
        elif before[sid] != entry:
            changes.append(_folder_el("Update", entry))
    changes += [
        el("FolderHierarchy:Delete", el("FolderHierarchy:ServerId", sid))
        for sid in before
        if sid not in now
    ]
    new_key = ctx.states.save_hierarchy(ctx.alias, ctx.device_id, now)
    return el(
        "FolderHierarchy:FolderSync",
        el("FolderHierarchy:Status", 1),
        el("FolderHierarchy:SyncKey", new_key),
        el("FolderHierarchy:Changes", el("FolderHierarchy:Count", len(changes)), changes),
    )


# ------------------------------------------------------------------ Sync


@dataclass(frozen=True)
class _BodyWanted:
    type: int  # 1 plain text, 2 HTML, 4 MIME
    truncation: int | None


def _body_wanted(collection: Element) -> _BodyWanted:
    preference = collection.find("Options/AirSyncBase:BodyPreference")
    if preference is None:
        return _BodyWanted(1, None)
    try:
        kind = int(preference.findtext("Type") or "1")
        size_text = preference.findtext("TruncationSize")
        size = int(size_text) if size_text else None
    except ValueError:
        return _BodyWanted(1, None)
    return _BodyWanted(kind if kind in (1, 2, 4) else 1, size)


def _address(a: Address) -> str:
    return f'"{a.name}" <{a.address}>' if a.name else a.address


def _date(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "head"):
            self.skip += 1
        elif tag in ("br", "p", "div", "tr", "li"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head") and self.skip:
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def _plain(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts).strip()


async def _application_data(
    ctx: EasContext, summary: MessageSummary, wanted: _BodyWanted
) -> Element:
    detail = await ctx.store.get_message(ctx.alias, summary.id)
    fields: list[Element] = [
        el("Email:To", ", ".join(_address(a) for a in detail.to)),
    ]
    if detail.cc:
        fields.append(el("Email:Cc", ", ".join(_address(a) for a in detail.cc)))
    if detail.from_address is not None:
        fields.append(el("Email:From", _address(detail.from_address)))
    fields += [
        el("Email:Subject", detail.subject),
        el("Email:DateReceived", _date(detail.received_at)),
        el("Email:DisplayTo", "; ".join(a.name or a.address for a in detail.to)),
        el("Email:ThreadTopic", detail.subject),
        el("Email:Importance", 1),
        el("Email:Read", 1 if detail.flags.seen else 0),
    ]
    body = await read_body(ctx.store, ctx.alias, detail)
    if ctx.version < (12, 0):
        # EAS 2.x: the body is Email:Body, plain text.
        text = _plain(body.text) if body.html else body.text
        fields += [el("Email:Body", text), el("Email:BodyTruncated", 0)]
        fields.append(el("Email:MessageClass", "IPM.Note"))
        return el("AirSync:ApplicationData", fields)
    if wanted.type == 4:
        data = (await ctx.store.read_raw(ctx.alias, detail.id)).decode("utf-8", "replace")
        kind = 4
    elif wanted.type == 2 and body.html:
        data, kind = body.text, 2
    else:
        data, kind = (_plain(body.text) if body.html else body.text), 1
    size = len(data.encode("utf-8"))
    truncated = wanted.truncation is not None and size > wanted.truncation
    if truncated and wanted.truncation is not None:
        data = data.encode("utf-8")[: wanted.truncation].decode("utf-8", "ignore")
    fields.append(
        el(
            "AirSyncBase:Body",
            el("AirSyncBase:Type", kind),
            el("AirSyncBase:EstimatedDataSize", size),
            el("AirSyncBase:Truncated", 1) if truncated else None,
            el("AirSyncBase:Data", data),
        )
    )
    fields += [
        el("Email:MessageClass", "IPM.Note"),
        el("Email:InternetCPID", 65001),
        el("Email:ContentClass", "urn:content-classes:message"),
        el("AirSyncBase:NativeBodyType", 2 if body.html else 1),
    ]
    return el("AirSync:ApplicationData", fields)


async def _followed(
    ctx: EasContext, folder: Folder, *, changed: bool = False
) -> dict[int, MessageSummary]:
    """The folder's messages (the first MAX_FOLLOWED), read again only when its state moved.

    Any change to what a folder holds (a message in or out, a flag) gives it a new
    modification sequence (IMAP's CONDSTORE rests on the same), so the list read
    at one (uidvalidity, modseq) is the list at that state: a phone's Sync that
    finds nothing new, most of them, no longer reads the whole folder.  ``changed``:
    this request changed the folder after ``folder`` was read (its state is older
    than the folder's), so the list is read and not kept.
    """
    key = (ctx.alias.casefold(), folder.id, folder.uidvalidity, folder.modseq)
    lists = ctx.states.folder_lists
    known = None if changed else lists.get(key)
    if known is not None:
        return known
    out: dict[int, MessageSummary] = {}
    offset = 0
    while offset < MAX_FOLLOWED:
        page = await ctx.store.list_messages(ctx.alias, folder.id, offset=offset, limit=LIST_PAGE)
        for item in page.items:
            out[item.id] = item
        offset += len(page.items)
        if not page.items or offset >= page.total:
            break
    if not changed:
        lists.put(key, out)
    return out


def _message_id(server_id: str | None, collection: str) -> int | None:
    folder, sep, rest = (server_id or "").partition(":")
    if not sep or folder != collection or not rest.isdigit():
        return None
    return int(rest)


async def _client_commands(
    ctx: EasContext, collection: str, commands: Element | None, known: dict[int, MessageEntry]
) -> bool:
    """The device's own changes: read state (Change) and deletions (Delete); whether any
    was asked of the store."""
    if commands is None:
        return False
    asked = False
    for command in commands.elements():
        message = _message_id(command.findtext("ServerId"), collection)
        if message is None or message not in known:
            continue
        asked = True
        try:
            if command.tag == "Change":
                read = command.findtext("ApplicationData/Email:Read")
                if read in ("0", "1"):
                    await ctx.store.set_flags(ctx.alias, message, FlagUpdate(seen=read == "1"))
                    known[message] = MessageEntry(read=read == "1")
            elif command.tag == "Delete":
                await ctx.store.delete(ctx.alias, message)
                known.pop(message, None)
        except NotFound:
            known.pop(message, None)
    return asked


async def _sync_collection(
    ctx: EasContext, collection: Element, folders: dict[str, Folder]
) -> Element:
    key = (collection.findtext("SyncKey") or "").strip()
    cid = (collection.findtext("CollectionId") or "").strip()

    def answer(status: int, *rest: Element | None, sync_key: str | None = None) -> Element:
        return el(
            "AirSync:Collection",
            el("AirSync:Class", "Email") if ctx.version < (14, 0) else None,
            el("AirSync:SyncKey", sync_key or key or "0"),
            el("AirSync:CollectionId", cid),
            el("AirSync:Status", status),
            *rest,
        )

    if not key or not cid:
        return answer(4)
    folder = folders.get(cid)
    if folder is None:
        return answer(8)
    if folder.well_known is WellKnownFolder.CALENDAR:
        from sitemail.access.eas_calendar import sync_calendar  # it builds on this module

        return await sync_calendar(ctx, collection, folder)
    known = ctx.states.collection(ctx.alias, ctx.device_id, cid, key)
    if known is None:
        return answer(3, sync_key="0")
    if key == "0":
        return answer(1, sync_key=ctx.states.save_collection(ctx.alias, ctx.device_id, cid, {}))
    changed = await _client_commands(ctx, cid, collection.find("Commands"), known)
    get_changes = collection.findtext("GetChanges")
    if get_changes == "0":
        new_key = ctx.states.save_collection(ctx.alias, ctx.device_id, cid, known)
        return answer(1, sync_key=new_key)
    try:
        window = int(collection.findtext("WindowSize") or DEFAULT_WINDOW)
    except ValueError:
        return answer(4)
    window = max(1, min(window, MAX_WINDOW))
    current = await _followed(ctx, folder, changed=changed)
    deletes = [m for m in known if m not in current]
    changes = [m for m in known if m in current and current[m].flags.seen != known[m].read]
    adds = sorted((m for m in current if m not in known), reverse=True)
    wanted = _body_wanted(collection)
    commands: list[Element] = []
    for m in _take(deletes, changes, adds, window):
        server_id = f"{cid}:{m}"
        if m not in current:
            commands.append(el("AirSync:Delete", el("AirSync:ServerId", server_id)))
            known.pop(m, None)
        elif m in known:
            read = current[m].flags.seen
            commands.append(
                el(
                    "AirSync:Change",
                    el("AirSync:ServerId", server_id),
                    el("AirSync:ApplicationData", el("Email:Read", 1 if read else 0)),
                )
            )
            known[m] = MessageEntry(read=read)
        else:
            try:
                data = await _application_data(ctx, current[m], wanted)
            except NotFound:
                continue  # gone meanwhile: it will not be sent at all
            commands.append(el("AirSync:Add", el("AirSync:ServerId", server_id), data))
            known[m] = MessageEntry(read=current[m].flags.seen)
    more = len(deletes) + len(changes) + len(adds) > window
    new_key = ctx.states.save_collection(ctx.alias, ctx.device_id, cid, known)
    return answer(
        1,
        el("AirSync:MoreAvailable") if more else None,
        el("AirSync:Commands", commands) if commands else None,
        sync_key=new_key,
    )


def _take(deletes: list[int], changes: list[int], adds: list[int], window: int) -> Iterator[int]:
    n = 0
    for group in (deletes, changes, adds):
        for m in group:
            if n >= window:
                return
            n += 1
            yield m


async def sync(request: Element, ctx: EasContext) -> Element:
    if not request.is_named("AirSync:Sync"):
        return el("AirSync:Sync", el("AirSync:Status", 4))
    collections = request.findall("Collections/Collection")
    if not collections:
        # An empty Sync asks to repeat the last one; sitemail does not keep it.
        return el("AirSync:Sync", el("AirSync:Status", 13))
    folders = {str(f.id): f for f in await ctx.store.list_folders(ctx.alias)}
    answers = [await _sync_collection(ctx, c, folders) for c in collections[:50]]
    return el("AirSync:Sync", el("AirSync:Collections", answers))


# ------------------------------------------------------------------ Provision


def _policy_document() -> Element:
    """A policy that asks nothing of the device (sitemail enforces none)."""
    return el(
        "Provision:EASProvisionDoc",
        el("Provision:DevicePasswordEnabled", 0),
        el("Provision:AlphanumericDevicePasswordRequired", 0),
        el("Provision:PasswordRecoveryEnabled", 0),
        el("Provision:RequireStorageCardEncryption", 0),
        el("Provision:AttachmentsEnabled", 1),
        el("Provision:MinDevicePasswordLength", 1),
        el("Provision:MaxInactivityTimeDeviceLock", 9999),
        el("Provision:MaxDevicePasswordFailedAttempts", 8),
        el("Provision:AllowSimpleDevicePassword", 1),
    )


def provision(request: Element) -> Element:
    policy = request.find("Policies/Policy")
    info = request.find("Settings:DeviceInformation")
    settings = (
        el("Settings:DeviceInformation", el("Settings:Status", 1)) if info is not None else None
    )
    if policy is None:
        return el("Provision:Provision", el("Provision:Status", 2))
    kind = (policy.findtext("PolicyType") or "").strip()
    if kind != POLICY_TYPE:
        return el(
            "Provision:Provision",
            settings,
            el("Provision:Status", 1),
            el(
                "Provision:Policies",
                el(
                    "Provision:Policy",
                    el("Provision:PolicyType", kind),
                    el("Provision:Status", 3),  # unknown PolicyType value
                ),
            ),
        )
    key = str(secrets.randbelow(9 * 10**9) + 10**9)
    acknowledged = policy.findtext("PolicyKey") is not None
    return el(
        "Provision:Provision",
        settings,
        el("Provision:Status", 1),
        el(
            "Provision:Policies",
            el(
                "Provision:Policy",
                el("Provision:PolicyType", POLICY_TYPE),
                el("Provision:Status", 1),
                el("Provision:PolicyKey", key),
                None if acknowledged else el("Provision:Data", _policy_document()),
            ),
        ),
    )
