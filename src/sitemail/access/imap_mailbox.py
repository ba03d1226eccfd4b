"""An IMAP4 session's mailbox, served from the store API (the user's mailbox is in this site).

:class:`StoreImap` answers the commands of the authenticated and selected
states through :class:`~sitemail.mailbox.store_client.StoreClient`.  The
folder tree is the store's: ``Inbox`` is shown as ``INBOX`` (and its
subfolders as ``INBOX/...``), ``/`` separates levels, as in Exchange 2010's
IMAP4 service.  UIDs and UIDVALIDITY are the store's own (``uids()``); the
session keeps the selected folder's message sequence and learns what
others changed from the store's ``changes()`` (CONDSTORE-style modification
sequences): new messages become ``EXISTS``, other sessions' flag changes
``FETCH (FLAGS ...)``, removed messages ``EXPUNGE``, the latter only where
RFC 3501 allows it (never during FETCH, STORE or SEARCH).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import IO, Any

from sitemail.access.folder_watch import FolderWatches
from sitemail.access.imap_fetch import SearchContext, fetch_message, search
from sitemail.access.imap_render import ALL_FLAGS, format_flags, store_flag_names
from sitemail.mailbox.errors import (
    Conflict,
    FolderExists,
    FolderNotFound,
    FolderProtected,
    InvalidRequest,
    MessageNotFound,
    StoreError,
)
from sitemail.mailbox.limits import MAX_UID_PAGE
from sitemail.mailbox.records import Flags, Folder, UidEntry, WellKnownFolder
from sitemail.mailbox.store_client import StoreClient
from sitemail.protocols import imap
from sitemail.protocols.imap import ImapServer
from sitemail.protocols.imap_events import (
    Append,
    Check,
    Close,
    Command,
    Copy,
    Create,
    Delete,
    Expunge,
    Fetch,
    ListMailboxes,
    Namespace,
    Noop,
    Rename,
    Search,
    Select,
    Status,
    Store,
    Subscribe,
)
from sitemail.protocols.imap_syntax import (
    FetchAttribute,
    SequenceSet,
    encode_mailbox,
    format_sequence,
    quote,
)

DELIMITER = "/"
INBOX = "INBOX"
# Exchange 2010's texts (unverified, as in sitemail.protocols.imap).
NOT_FOUND = "The requested item could not be found."  # unverified
ALREADY_EXISTS = "A folder with the specified name already exists."  # unverified
CANNOT_CHANGE = "The folder cannot be changed."  # sitemail's wording
READ_ONLY = "The folder is read-only."  # sitemail's wording
SERVER_UNAVAILABLE = "Server Unavailable. 15"  # unverified

Writer = Callable[[bytes], Awaitable[None]]


@dataclass
class SelectedFolder:
    """The session's view of the selected folder: its message sequence and flags."""

    folder: Folder
    readonly: bool
    uids: list[int]
    entries: dict[int, UidEntry]
    modseq: int
    vanished: set[int] = field(default_factory=set)
    """UIDs removed by others and not yet announced with EXPUNGE."""

    def seq(self, uid: int) -> int:
        return self.uids.index(uid) + 1

    def resolve(self, sequence: SequenceSet, *, uid: bool) -> list[tuple[int, int]]:
        """(sequence number, UID) of the messages a set names, in order."""
        if uid:
            wanted = set(sequence.members(self.uids))
            return [(i + 1, u) for i, u in enumerate(self.uids) if u in wanted]
        numbers = sequence.members(list(range(1, len(self.uids) + 1)))
        return [(n, self.uids[n - 1]) for n in numbers]

    def forget(self, uids: set[int]) -> list[int]:
        """Drop these UIDs; the sequence numbers to announce, each as of its own EXPUNGE."""
        numbers = []
        for uid in sorted(uids, key=lambda u: -self.uids.index(u) if u in self.uids else 0):
            if uid in self.entries:
                numbers.append(self.seq(uid))
                self.uids.remove(uid)
                del self.entries[uid]
        self.vanished -= uids
        return numbers


class StoreImap:
    """The commands after LOGIN, for a mailbox this server reaches through the store API."""

    def __init__(
        self,
        store: StoreClient,
        mailbox: str,
        core: ImapServer,
        write: Writer,
        watches: FolderWatches | None = None,
    ) -> None:
        self.store = store
        self.watches = watches or FolderWatches(store)
        self.mailbox = mailbox
        self.core = core
        self.write = write
        self.selected: SelectedFolder | None = None

    async def untagged(self, data: bytes | str) -> None:
        await self.write(self.core.send_untagged(data))

    async def tagged(self, status: str, text: str, code: str | None = None) -> None:
        await self.write(self.core.send_tagged(status, text, code))

    # ------------------------------------------------------------ dispatch

    async def handle(self, event: Command) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is None:
            await self.tagged("BAD", imap.BAD_COMMAND)
            return
        try:
            await handler(self, event)
        except FolderNotFound:
            await self.tagged("NO", NOT_FOUND, "TRYCREATE" if isinstance(event, Copy) else None)
        except FolderExists:
            await self.tagged("NO", ALREADY_EXISTS)
        except (FolderProtected, InvalidRequest, Conflict):
            await self.tagged("NO", CANNOT_CHANGE)
        except StoreError:
            await self.tagged("NO", SERVER_UNAVAILABLE)

    # ------------------------------------------------------------ folders

    async def folders(self) -> list[Folder]:
        return await self.store.list_folders(self.mailbox)

    @staticmethod
    def imap_name(folder: Folder, inbox: Folder | None) -> str:
        if inbox is not None and folder.id == inbox.id:
            return INBOX
        if inbox is not None and folder.path.startswith(inbox.path + DELIMITER):
            return INBOX + folder.path[len(inbox.path) :]
        return folder.path

    def _store_path(self, name: str, inbox: Folder | None) -> str:
        name = name.strip(DELIMITER)
        head, sep, rest = name.partition(DELIMITER)
        if head.upper() == INBOX and inbox is not None:
            return inbox.path + sep + rest
        return name

    async def find(self, name: str) -> Folder | None:
        folders = await self.folders()
        inbox = _inbox(folders)
        path = self._store_path(name, inbox).casefold()
        return next((f for f in folders if f.path.casefold() == path), None)

    async def _require(self, name: str) -> Folder:
        found = await self.find(name)
        if found is None:
            raise FolderNotFound(name)
        return found

    async def _list(self, event: ListMailboxes) -> None:
        verb = event.name  # LIST or LSUB
        if not event.pattern:
            await self.untagged(f'{verb} (\\Noselect) "{DELIMITER}" ""')
            await self.tagged("OK", imap.completed(verb))
            return
        folders = await self.folders()
        inbox = _inbox(folders)
        matcher = _pattern(event.reference + event.pattern)
        parents = {f.parent_id for f in folders}
        for folder in folders:
            name = self.imap_name(folder, inbox)
            if not matcher(name):
                continue
            children = "\\HasChildren" if folder.id in parents else "\\HasNoChildren"
            await self.untagged(
                f"{verb} ({children}) ".encode()
                + quote(DELIMITER)
                + b" "
                + quote(encode_mailbox(name))
            )
        await self.tagged("OK", imap.completed(verb))

    async def _status(self, event: Status) -> None:
        folder = await self._require(event.mailbox)
        values = {
            "MESSAGES": folder.total,
            "RECENT": 0,
            "UIDNEXT": folder.uidnext,
            "UIDVALIDITY": folder.uidvalidity,
            "UNSEEN": folder.unread,
        }
        items = " ".join(f"{name} {values[name]}" for name in event.items)
        await self.untagged(
            b"STATUS " + quote(encode_mailbox(event.mailbox)) + f" ({items})".encode()
        )
        await self.tagged("OK", imap.completed("STATUS"))

    async def _create(self, event: Create) -> None:
        folders = await self.folders()
        inbox = _inbox(folders)
        path = self._store_path(event.mailbox, inbox)
        if not path or path.upper() == INBOX:
            await self.tagged("NO", ALREADY_EXISTS)
            return
        by_path = {f.path.casefold(): f for f in folders}
        if path.casefold() in by_path:
            await self.tagged("NO", ALREADY_EXISTS)
            return
        parent: Folder | None = None
        built = ""
        # RFC 3501 6.3.3: missing superior levels are created too.
        for level in path.split(DELIMITER):
            built = f"{built}{DELIMITER}{level}" if built else level
            existing = by_path.get(built.casefold())
            if existing is None:
                existing = await self.store.create_folder(
                    self.mailbox, level, parent.id if parent else None
                )
                by_path[built.casefold()] = existing
            parent = existing
        await self.tagged("OK", imap.completed("CREATE"))

    async def _delete(self, event: Delete) -> None:
        folder = await self._require(event.mailbox)
        if folder.well_known is not None:
            await self.tagged("NO", CANNOT_CHANGE)
            return
        await self.store.delete_folder(self.mailbox, folder.id)
        if self.selected is not None and self.selected.folder.id == folder.id:
            self.selected = None
        await self.tagged("OK", imap.completed("DELETE"))

    async def _rename(self, event: Rename) -> None:
        folders = await self.folders()
        inbox = _inbox(folders)
        old = await self._require(event.mailbox)
        if old.well_known is not None:
            await self.tagged("NO", CANNOT_CHANGE)
            return
        new_path = self._store_path(event.new_name, inbox)
        if any(f.path.casefold() == new_path.casefold() for f in folders):
            await self.tagged("NO", ALREADY_EXISTS)
            return
        parent_path, _, leaf = new_path.rpartition(DELIMITER)
        parent = None
        if parent_path:
            parent = next((f for f in folders if f.path.casefold() == parent_path.casefold()), None)
            if parent is None:
                raise FolderNotFound(parent_path)
        if (parent.id if parent else None) != old.parent_id:
            await self.store.move_folder(self.mailbox, old.id, parent.id if parent else None)
        if leaf != old.name:
            await self.store.rename_folder(self.mailbox, old.id, leaf)
        await self.tagged("OK", imap.completed("RENAME"))

    async def _subscribe(self, event: Subscribe) -> None:
        # Every folder counts as subscribed (LSUB lists them all), as a store without
        # subscription lists has to answer.
        await self._require(event.mailbox)
        await self.tagged("OK", imap.completed(event.name))

    async def _namespace(self, _event: Namespace) -> None:
        await self.untagged(f'NAMESPACE (("" "{DELIMITER}")) NIL NIL')
        await self.tagged("OK", imap.completed("NAMESPACE"))

    # ------------------------------------------------------------ selection

    async def _select(self, event: Select) -> None:
        self.selected = None
        folder = await self.find(event.mailbox)
        if folder is None:
            await self.tagged("NO", NOT_FOUND)
            return
        entries, modseq, folder_now = await self._load(folder)
        selected = SelectedFolder(
            folder_now,
            event.readonly,
            [e.uid for e in entries],
            {e.uid: e for e in entries},
            modseq,
        )
        self.selected = selected
        await self.untagged(b"FLAGS " + ALL_FLAGS)
        permanent = b"()" if event.readonly else ALL_FLAGS
        await self.untagged(b"OK [PERMANENTFLAGS " + permanent + b"] Permanent flags")
        await self.untagged(f"{len(selected.uids)} EXISTS")
        await self.untagged("0 RECENT")
        unseen = next((i + 1 for i, e in enumerate(entries) if not e.flags.seen), None)
        if unseen is not None:
            await self.untagged(f"OK [UNSEEN {unseen}] Is the first unseen message")
        await self.untagged(f"OK [UIDVALIDITY {folder_now.uidvalidity}] UIDVALIDITY value")
        await self.untagged(f"OK [UIDNEXT {folder_now.uidnext}] The next unique identifier value")
        code = "READ-ONLY" if event.readonly else "READ-WRITE"
        await self.tagged("OK", imap.completed(event.name), code)

    async def _load(self, folder: Folder) -> tuple[list[UidEntry], int, Folder]:
        entries: list[UidEntry] = []
        since = 0
        modseq = 0
        while True:
            page = await self.store.uids(self.mailbox, folder.id, since=since, limit=MAX_UID_PAGE)
            if not entries:
                modseq = page.modseq
            entries.extend(page.entries)
            if not page.more or not page.entries:
                break
            since = page.entries[-1].uid
        fresh = folder.model_copy(update={"uidvalidity": page.uidvalidity, "uidnext": page.uidnext})
        return entries, modseq, fresh

    async def sync(self, *, expunges: bool) -> None:
        """Tell the client what changed in the selected folder since it last heard."""
        selected = self.selected
        if selected is None:
            return
        try:
            changes = await self.store.changes(self.mailbox, selected.folder.id, selected.modseq)
        except Conflict:
            await self._resync(selected)
            return
        except FolderNotFound:
            return
        await self._apply(selected, changes.vanished, changes.changed, changes.modseq, expunges)

    async def wait_and_sync(self, seconds: float) -> None:
        """IDLE: wait up to ``seconds`` for a change of the selected folder, then report it."""
        selected = self.selected
        if selected is None:
            await asyncio.sleep(seconds)  # nothing to watch until a folder is selected
            return
        # The server's one poll of this folder wakes every session idling on it.
        if not await self.watches.wait(self.mailbox, selected.folder.id, selected.modseq, seconds):
            return
        changes = await self.store.changes(self.mailbox, selected.folder.id, selected.modseq)
        await self._apply(selected, changes.vanished, changes.changed, changes.modseq, True)

    async def _resync(self, selected: SelectedFolder) -> None:
        entries, modseq, _ = await self._load(selected.folder)
        present = {e.uid for e in entries}
        vanished = [u for u in selected.uids if u not in present]
        await self._apply(selected, vanished, entries, modseq, True)

    async def _apply(
        self,
        selected: SelectedFolder,
        vanished: list[int],
        changed: list[UidEntry],
        modseq: int,
        expunges: bool,
    ) -> None:
        gone = {u for u in vanished if u in selected.entries}
        selected.vanished |= gone
        if expunges and selected.vanished:
            for number in selected.forget(set(selected.vanished)):
                await self.untagged(f"{number} EXPUNGE")
        new = []
        for entry in changed:
            known = selected.entries.get(entry.uid)
            if known is None:
                if entry.uid not in selected.vanished:
                    new.append(entry)
                continue
            if known.flags != entry.flags:
                selected.entries[entry.uid] = entry
                if entry.uid not in selected.vanished:
                    await self.untagged(
                        f"{selected.seq(entry.uid)} FETCH (FLAGS ".encode()
                        + format_flags(entry.flags)
                        + f" UID {entry.uid})".encode()
                    )
        if new:
            for entry in sorted(new, key=lambda e: e.uid):
                selected.uids.append(entry.uid)
                selected.entries[entry.uid] = entry
            await self.untagged(f"{len(selected.uids)} EXISTS")
        selected.modseq = max(selected.modseq, modseq)

    async def _close(self, event: Close) -> None:
        selected = self.selected
        self.selected = None
        if selected is not None and event.name == "CLOSE" and not selected.readonly:
            await self.store.expunge(self.mailbox, selected.folder.id)  # silently (RFC 3501 6.4.2)
        await self.tagged("OK", imap.completed(event.name))

    async def _check(self, event: Check | Noop) -> None:
        await self.sync(expunges=True)
        await self.tagged("OK", imap.completed(event.name))

    # ------------------------------------------------------------ messages

    def _selected(self) -> SelectedFolder:
        assert self.selected is not None  # the core refuses these commands otherwise
        return self.selected

    async def _expunge(self, event: Expunge) -> None:
        selected = self._selected()
        if selected.readonly:
            await self.tagged("NO", READ_ONLY)
            return
        uids = None
        if event.uids is not None:
            uids = [u for _, u in selected.resolve(event.uids, uid=True)]
        result = await self.store.expunge(self.mailbox, selected.folder.id, uids)
        for number in selected.forget(set(result.uids)):
            await self.untagged(f"{number} EXPUNGE")
        await self.sync(expunges=True)
        await self.tagged("OK", imap.completed(event.name))

    async def _fetch(self, event: Fetch) -> None:
        selected = self._selected()
        targets = selected.resolve(event.sequence, uid=event.uid)
        items = event.attributes
        marks_read = any(a.sets_seen for a in items) and not selected.readonly
        if marks_read:
            unread = [u for _, u in targets if not selected.entries[u].flags.seen]
            if unread:
                for entry in await self._store_flags(selected, unread, add=["seen"]):
                    selected.entries[entry.uid] = entry
                if not any(a.name == "FLAGS" for a in items):
                    items = (*items, FetchAttribute("FLAGS"))
        for seq, uid in targets:
            line = await fetch_message(self.store, self.mailbox, seq, selected.entries[uid], items)
            if line is not None:
                await self.untagged(line)
        await self.tagged("OK", imap.completed(event.name))

    async def _store_flags(
        self,
        selected: SelectedFolder,
        uids: list[int],
        *,
        add: list[str] | None = None,
        remove: list[str] | None = None,
        replace: list[str] | None = None,
    ) -> list[UidEntry]:
        out: list[UidEntry] = []
        for start in range(0, len(uids), MAX_UID_PAGE):
            out += await self.store.store_flags(
                self.mailbox,
                selected.folder.id,
                uids[start : start + MAX_UID_PAGE],
                add=add or [],
                remove=remove or [],
                replace=replace,
            )
        return out

    async def _store(self, event: Store) -> None:
        selected = self._selected()
        if selected.readonly:
            await self.tagged("NO", READ_ONLY)
            return
        targets = selected.resolve(event.sequence, uid=event.uid)
        names = store_flag_names(event.flags)
        uids = [u for _, u in targets]
        if event.mode == "+":
            entries = await self._store_flags(selected, uids, add=names)
        elif event.mode == "-":
            entries = await self._store_flags(selected, uids, remove=names)
        else:
            entries = await self._store_flags(selected, uids, replace=names)
        for entry in entries:
            selected.entries[entry.uid] = entry
            if not event.silent:
                uid_item = f" UID {entry.uid}" if event.uid else ""
                await self.untagged(
                    f"{selected.seq(entry.uid)} FETCH (FLAGS ".encode()
                    + format_flags(entry.flags)
                    + f"{uid_item})".encode()
                )
        await self.tagged("OK", imap.completed(event.name))

    async def _copy(self, event: Copy) -> None:
        selected = self._selected()
        target = await self._require(event.mailbox)
        sources: list[int] = []
        copies: list[int] = []
        for _, uid in selected.resolve(event.sequence, uid=event.uid):
            try:
                placed = await self.store.copy(
                    self.mailbox, selected.entries[uid].message_id, target.id
                )
            except MessageNotFound:
                continue
            sources.append(uid)
            copies.append(placed.uid)
        code = None
        if sources:
            code = (
                f"COPYUID {target.uidvalidity} {format_sequence(sources)} {format_sequence(copies)}"
            )
        if target.id == selected.folder.id:
            await self.sync(expunges=event.uid)
        await self.tagged("OK", imap.completed(event.name), code)

    async def _search(self, event: Search) -> None:
        selected = self._selected()
        context = SearchContext(
            self.store, self.mailbox, selected.folder.id, list(selected.uids), selected.entries
        )
        found = await search(context, event.criteria)
        numbers = [uid if event.uid else seq for seq, uid in found]
        await self.untagged(" ".join(["SEARCH", *map(str, numbers)]))
        await self.tagged("OK", imap.completed(event.name))

    # ------------------------------------------------------------ APPEND

    async def append(self, event: Append, message: IO[bytes]) -> None:
        """Store an APPENDed message (spooled by the session) and answer the APPEND."""
        try:
            folder = await self._require(event.mailbox)
            flags = Flags.of(tuple(store_flag_names(event.flags)))
            placed = await self.store.append(
                self.mailbox, folder.id, message, flags=flags, received_at=event.internal_date
            )
        except FolderNotFound:
            await self.tagged("NO", NOT_FOUND, "TRYCREATE")
            return
        except (InvalidRequest, StoreError):
            await self.tagged("NO", SERVER_UNAVAILABLE)
            return
        if self.selected is not None and self.selected.folder.id == folder.id:
            await self.sync(expunges=True)
        await self.tagged(
            "OK", imap.completed("APPEND"), f"APPENDUID {folder.uidvalidity} {placed.uid}"
        )


def _inbox(folders: list[Folder]) -> Folder | None:
    return next((f for f in folders if f.well_known is WellKnownFolder.INBOX), None)


def _pattern(pattern: str) -> Callable[[str], bool]:
    """LIST's wildcards: ``*`` matches anything, ``%`` anything but the delimiter.

    INBOX matches in any case (RFC 3501 5.1)."""
    head, sep, rest = pattern.partition(DELIMITER)
    if head.upper() == INBOX:
        pattern = INBOX + sep + rest
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "%":
            parts.append(f"[^{re.escape(DELIMITER)}]*")
        else:
            parts.append(re.escape(ch))
    regex = re.compile("".join(parts) + r"\Z", re.DOTALL)

    def match(name: str) -> bool:
        n_head, n_sep, n_rest = name.partition(DELIMITER)
        candidate = INBOX + n_sep + n_rest if n_head.upper() == INBOX else name
        return regex.match(candidate) is not None

    return match


# The handlers take their own event class; the table is typed loosely for that.
_HANDLERS: dict[type[Command], Callable[[StoreImap, Any], Awaitable[None]]] = {
    ListMailboxes: StoreImap._list,
    Status: StoreImap._status,
    Create: StoreImap._create,
    Delete: StoreImap._delete,
    Rename: StoreImap._rename,
    Subscribe: StoreImap._subscribe,
    Namespace: StoreImap._namespace,
    Select: StoreImap._select,
    Close: StoreImap._close,
    Check: StoreImap._check,
    Noop: StoreImap._check,
    Expunge: StoreImap._expunge,
    Fetch: StoreImap._fetch,
    Store: StoreImap._store,
    Copy: StoreImap._copy,
    Search: StoreImap._search,
}
