"""EWS synchronization states: what a client was last told about a folder, sealed with a MAC.

A SyncFolderItems or SyncFolderHierarchy answer carries a ``SyncState``
the client sends back next time; the server answers what changed since.
Exchange's is an opaque blob holding the sets of ids the client has seen,
so no server keeps anything per client.  sitemail's does the same: the
state is the snapshot itself (for items, each message's UID, id, modseq
and flags; for folders, each folder's parent and name), compressed, with
an HMAC-SHA256 over it under the Client Access server's key and base64
around it.  A state the client changed, or one another server (or another
mailbox, or another folder) made, fails the MAC or the binding check and
is refused with ``ErrorInvalidSyncStateData``: a client never makes the
server read a snapshot it did not write.

Snapshots are diffed here, without I/O, so that the sync operations
(:mod:`.ews_sync`) and the notifications (:mod:`.ews_notifications`)
report changes alike.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from sitemail.access.ews_responses import Refused
from sitemail.mailbox.records import Flags, UidEntry

__all__ = [
    "INVALID_STATE",
    "MAX_STATE",
    "FolderEntry",
    "ItemChange",
    "ItemEntry",
    "ItemSnapshot",
    "StateSeal",
    "apply_items",
    "diff_folders",
    "diff_items",
    "dump_folders",
    "load_folders",
]

#: Exchange's MessageText for a SyncState it cannot use (unverified: the wording is from
#: the EWS error list, not from a captured 2010 SP3 answer).
INVALID_STATE = "Synchronization state data is corrupt or otherwise invalid."
#: Largest SyncState accepted (base64 text): well above a 20,000-message folder's.
MAX_STATE = 768 * 1024
#: Largest snapshot decompressed, so that a small forged state cannot inflate in memory
#: (checked after the MAC, but bounded anyway).
MAX_RAW_STATE = 8 * 1024 * 1024
_VERSION = 1
_MAC_BYTES = 32


def _flag_bits(flags: Flags) -> int:
    return (
        (1 if flags.seen else 0)
        | (2 if flags.answered else 0)
        | (4 if flags.flagged else 0)
        | (8 if flags.deleted else 0)
        | (16 if flags.draft else 0)
    )


@dataclass(frozen=True)
class ItemEntry:
    """What a client was told of one message of the folder."""

    message_id: int
    modseq: int
    flags: int  # seen 1, answered 2, flagged 4, deleted 8, draft 16

    @classmethod
    def of(cls, entry: UidEntry) -> ItemEntry:
        return cls(entry.message_id, entry.modseq, _flag_bits(entry.flags))

    @property
    def read(self) -> bool:
        return bool(self.flags & 1)


@dataclass(frozen=True)
class FolderEntry:
    """What a client was told of one folder: where it is and its name."""

    parent: int | None
    name: str


@dataclass(frozen=True)
class ItemChange:
    """One change of a folder's items: ``kind`` is Create, Update, Delete or ReadFlagChange.

    ``replaced`` is the UID an updated item had before: the store gives a message whose
    content was rewritten (UpdateItem, an attachment added) a new UID under the same id.
    """

    kind: str
    uid: int
    entry: ItemEntry
    replaced: int | None = None


class StateSeal:
    """Seals and opens states with one key (the Client Access server's)."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a state key needs at least 16 bytes")
        self._key = key

    def seal(self, kind: str, alias: str, scope: str, snapshot: dict[str, Any]) -> str:
        """The SyncState text for ``snapshot`` of ``kind`` ("items"/"folders") of ``scope``."""
        body = json.dumps(
            {"v": _VERSION, "k": kind, "a": alias.casefold(), "s": scope, "d": snapshot},
            separators=(",", ":"),
        ).encode()
        packed = zlib.compress(body, 6)
        mac = hmac.new(self._key, packed, hashlib.sha256).digest()
        return base64.b64encode(mac + packed).decode("ascii")

    def open(self, text: str, kind: str, alias: str, scope: str) -> dict[str, Any]:
        """The snapshot a state holds; refused unless this server made it for this scope."""
        refused = Refused("ErrorInvalidSyncStateData", INVALID_STATE)
        if len(text) > MAX_STATE:
            raise refused
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise refused from None
        mac, packed = raw[:_MAC_BYTES], raw[_MAC_BYTES:]
        expected = hmac.new(self._key, packed, hashlib.sha256).digest()
        if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, expected):
            raise refused
        try:
            inflate = zlib.decompressobj()
            body = inflate.decompress(packed, MAX_RAW_STATE)
            if inflate.unconsumed_tail:
                raise refused
            data = json.loads(body)
        except (zlib.error, ValueError):
            raise refused from None
        if (
            not isinstance(data, dict)
            or data.get("v") != _VERSION
            or data.get("k") != kind
            or data.get("a") != alias.casefold()
            or data.get("s") != scope
            or not isinstance(data.get("d"), dict)
        ):
            raise refused
        snapshot: dict[str, Any] = data["d"]
        return snapshot


# ------------------------------------------------------------------ item snapshots


@dataclass
class ItemSnapshot:
    """A folder's messages as a client knows them (by UID), and the modseq it saw up to."""

    modseq: int = 0
    items: dict[int, ItemEntry] = field(default_factory=dict)

    def dump(self) -> dict[str, Any]:
        rows = [[u, e.message_id, e.modseq, e.flags] for u, e in sorted(self.items.items())]
        return {"m": self.modseq, "i": rows}

    @classmethod
    def load(cls, data: dict[str, Any]) -> ItemSnapshot:
        try:
            items = {int(u): ItemEntry(int(i), int(q), int(f)) for u, i, q, f in data["i"]}
            return cls(modseq=int(data["m"]), items=items)
        except (KeyError, TypeError, ValueError):
            raise Refused("ErrorInvalidSyncStateData", INVALID_STATE) from None


def diff_items(
    known: dict[int, ItemEntry],
    changed: list[UidEntry],
    vanished: list[int],
) -> list[ItemChange]:
    """The changes that bring ``known`` to the store's: deletes first, then by UID.

    ``changed`` may repeat what ``known`` already has (a state whose changes were
    only partly given out): an entry with the modseq the client saw is no change.  A
    UID gone whose message came back under a new UID (its content rewritten by the
    store's ``replace``) is one Update of that item, as Exchange reports an edit, not a
    Delete and a Create.
    """
    gone = {known[uid].message_id: uid for uid in sorted(vanished) if uid in known}
    back = {e.message_id for e in changed if e.uid not in known and e.message_id in gone}
    out = [ItemChange("Delete", uid, known[uid]) for mid, uid in gone.items() if mid not in back]
    out.sort(key=lambda c: c.uid)
    for entry in sorted(changed, key=lambda e: e.uid):
        now = ItemEntry.of(entry)
        before = known.get(entry.uid)
        if before is None and entry.message_id in back:
            out.append(ItemChange("Update", entry.uid, now, gone[entry.message_id]))
        elif before is None:
            out.append(ItemChange("Create", entry.uid, now))
        elif before.modseq != now.modseq:
            # Only the read flag differs: Exchange's ReadFlagChange, else an Update.
            only_read = (before.flags ^ now.flags) == 1
            out.append(ItemChange("ReadFlagChange" if only_read else "Update", entry.uid, now))
    return out


def apply_items(known: dict[int, ItemEntry], changes: list[ItemChange]) -> None:
    for change in changes:
        if change.kind == "Delete":
            known.pop(change.uid, None)
            continue
        if change.replaced is not None:
            known.pop(change.replaced, None)
        known[change.uid] = change.entry


# ------------------------------------------------------------------ folder snapshots


def dump_folders(folders: dict[int, FolderEntry]) -> dict[str, Any]:
    return {"f": [[i, e.parent, e.name] for i, e in sorted(folders.items())]}


def load_folders(data: dict[str, Any]) -> dict[int, FolderEntry]:
    try:
        return {int(i): FolderEntry(None if p is None else int(p), str(n)) for i, p, n in data["f"]}
    except (KeyError, TypeError, ValueError):
        raise Refused("ErrorInvalidSyncStateData", INVALID_STATE) from None


def diff_folders(
    known: dict[int, FolderEntry], now: dict[int, FolderEntry], order: list[int]
) -> list[tuple[str, int]]:
    """Create/Update/Delete changes from ``known`` to ``now``; creates in ``order``
    (parents before children), then updates (renamed or moved), then deletes."""
    creates = [("Create", i) for i in order if i in now and i not in known]
    updates = [("Update", i) for i in order if i in known and i in now and known[i] != now[i]]
    deletes = [("Delete", i) for i in sorted(known) if i not in now]
    return creates + updates + deletes
