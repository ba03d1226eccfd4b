"""ActiveSync synchronization state: what each device was last sent, under which SyncKey.

Every answer to FolderSync or Sync carries a new SyncKey; the device sends
it back next time, and the server compares the mailbox with what it sent
under that key.  Each key names an immutable snapshot, and the key before
the newest stays valid too, so that a device whose answer was lost can ask
again with the old key (MS-ASCMD's retry rule).

Keys look like Exchange's (``{GUID}n``).  States live in a SQLite table of
the Client Access server that serves the mailbox, bounded per server: in
memory, or in a file that the W3SVC's worker processes share (a device's
next request may reach any of them, :mod:`sitemail.access.web.workers`).
After a restart, or for a device not seen for long, a key is unknown and the
device starts over (FolderSync status 9, Sync status 3), which every client
handles.

The ``ClientId`` of each device's recent SendMails is kept beside its states, so
that a message a device sends again (its first answer lost) leaves once.
"""

from __future__ import annotations

import json
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sitemail.access.web.workers import shared_table_file
from sitemail.lru import LruCache

__all__ = ["FolderEntry", "MessageEntry", "SyncStates"]

#: Devices whose states one server keeps (least recently used go first).
MAX_DEVICES = 2000
#: SendMail ClientIds remembered per device, to refuse a resent message (newest kept).
MAX_SENT_IDS = 200
#: Folder message lists a worker keeps for Syncs (eas_commands._followed).
KEPT_FOLDER_LISTS = 64


@dataclass(frozen=True)
class FolderEntry:
    server_id: str
    parent_id: str
    name: str
    type: int


@dataclass(frozen=True)
class MessageEntry:
    read: bool


@dataclass
class _Keyed:
    """The last two snapshots of one thing (the hierarchy, or one collection)."""

    prefix: str = field(default_factory=lambda: "{" + str(uuid.uuid4()).upper() + "}")
    counter: int = 0
    snapshots: OrderedDict[str, object] = field(default_factory=OrderedDict)

    def save(self, snapshot: object) -> str:
        self.counter += 1
        key = f"{self.prefix}{self.counter}"
        self.snapshots[key] = snapshot
        while len(self.snapshots) > 2:
            self.snapshots.popitem(last=False)
        return key


@dataclass
class _Device:
    hierarchy: _Keyed = field(default_factory=_Keyed)
    collections: dict[str, _Keyed] = field(default_factory=dict)
    sent: OrderedDict[str, None] = field(default_factory=OrderedDict)


class SyncStates:
    """The synchronization states of the devices one server serves (``path``: shared file)."""

    def __init__(self, max_devices: int = MAX_DEVICES, *, path: Path | None = None) -> None:
        self._max = max_devices
        self._db = shared_table_file(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS devices (alias TEXT, device TEXT, state TEXT NOT NULL, "
            "used INTEGER NOT NULL, PRIMARY KEY (alias, device))"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS by_use ON devices (used)")
        #: The message lists of the folders Syncs looked at, by folder state (eas_commands).
        self.folder_lists: LruCache[tuple[object, ...], dict[int, Any]] = LruCache(
            KEPT_FOLDER_LISTS
        )

    def close(self) -> None:
        self._db.close()

    def _read_device(self, alias: str, device_id: str) -> _Device:
        """The device's state as saved (no transaction: one statement reads it whole)."""
        key = (alias.casefold(), device_id.casefold())
        row = self._db.execute(
            "SELECT state FROM devices WHERE alias = ? AND device = ?", key
        ).fetchone()
        return _device_from_json(row[0]) if row is not None else _Device()

    @contextmanager
    def _device(self, alias: str, device_id: str) -> Iterator[_Device]:
        """The device's state, saved back at the end (one transaction across processes)."""
        key = (alias.casefold(), device_id.casefold())
        self._db.execute("BEGIN IMMEDIATE")
        try:
            row = self._db.execute(
                "SELECT state FROM devices WHERE alias = ? AND device = ?", key
            ).fetchone()
            device = _device_from_json(row[0]) if row is not None else _Device()
            yield device
            used = self._db.execute("SELECT coalesce(max(used), 0) + 1 FROM devices").fetchone()[0]
            self._db.execute(
                "INSERT OR REPLACE INTO devices VALUES (?, ?, ?, ?)",
                (*key, _device_to_json(device), used),
            )
            if row is None:
                self._db.execute(
                    "DELETE FROM devices WHERE rowid IN (SELECT rowid FROM devices ORDER BY used "
                    "LIMIT max(0, (SELECT count(*) FROM devices) - ?))",
                    (self._max,),
                )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------ hierarchy

    def hierarchy(self, alias: str, device_id: str, key: str) -> dict[str, FolderEntry] | None:
        """The folders sent under ``key`` ("0": none yet, a fresh start); None if unknown."""
        with self._device(alias, device_id) as device:
            if key == "0":
                device.hierarchy = _Keyed()
                device.collections.clear()
                return {}
            found = device.hierarchy.snapshots.get(key)
        return dict(found) if isinstance(found, dict) else None

    def save_hierarchy(self, alias: str, device_id: str, folders: dict[str, FolderEntry]) -> str:
        with self._device(alias, device_id) as device:
            return device.hierarchy.save(dict(folders))

    # ------------------------------------------------------------ collections

    def collection(
        self, alias: str, device_id: str, collection: str, key: str
    ) -> dict[int, MessageEntry] | None:
        """The messages sent under ``key`` in ``collection`` ("0": a fresh start)."""
        if key == "0":
            with self._device(alias, device_id) as device:
                device.collections[collection] = _Keyed()
                return {}
        # Only read: a write transaction here made two devices' Syncs wait on each
        # other across the workers (and wrote the whole state back unchanged).
        keyed = self._read_device(alias, device_id).collections.get(collection)
        found = keyed.snapshots.get(key) if keyed is not None else None
        return dict(found) if isinstance(found, dict) else None

    def save_collection(
        self, alias: str, device_id: str, collection: str, messages: dict[int, MessageEntry]
    ) -> str:
        with self._device(alias, device_id) as device:
            keyed = device.collections.setdefault(collection, _Keyed())
            return keyed.save(dict(messages))

    # ------------------------------------------------------------ SendMail

    def was_sent(self, alias: str, device_id: str, client_id: str) -> bool:
        """Did this device send a message with this ClientId already?"""
        with self._device(alias, device_id) as device:
            return client_id in device.sent

    def mark_sent(self, alias: str, device_id: str, client_id: str) -> None:
        with self._device(alias, device_id) as device:
            device.sent[client_id] = None
            while len(device.sent) > MAX_SENT_IDS:
                device.sent.popitem(last=False)


# A state is kept as JSON: plain values, whatever process reads it.


def _keyed_to_json(keyed: _Keyed) -> dict[str, Any]:
    snapshots: list[list[Any]] = []
    for key, snapshot in keyed.snapshots.items():
        assert isinstance(snapshot, dict)
        snapshots.append(
            [
                key,
                {
                    str(k): [v.server_id, v.parent_id, v.name, v.type]
                    if isinstance(v, FolderEntry)
                    else v.read
                    for k, v in snapshot.items()
                },
            ]
        )
    return {"prefix": keyed.prefix, "counter": keyed.counter, "snapshots": snapshots}


def _keyed_from_json(data: dict[str, Any], *, folders: bool) -> _Keyed:
    snapshots: OrderedDict[str, object] = OrderedDict()
    for key, values in data["snapshots"]:
        snapshots[key] = (
            {k: FolderEntry(*v) for k, v in values.items()}
            if folders
            else {int(k): MessageEntry(bool(v)) for k, v in values.items()}
        )
    return _Keyed(prefix=data["prefix"], counter=data["counter"], snapshots=snapshots)


def _device_to_json(device: _Device) -> str:
    return json.dumps(
        {
            "hierarchy": _keyed_to_json(device.hierarchy),
            "collections": {c: _keyed_to_json(k) for c, k in device.collections.items()},
            "sent": list(device.sent),
        },
        separators=(",", ":"),
    )


def _device_from_json(text: str) -> _Device:
    data = json.loads(text)
    return _Device(
        hierarchy=_keyed_from_json(data["hierarchy"], folders=True),
        collections={c: _keyed_from_json(k, folders=False) for c, k in data["collections"].items()},
        sent=OrderedDict.fromkeys(data.get("sent", [])),
    )
