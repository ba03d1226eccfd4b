"""ActiveSync synchronization state: what each device was last sent, under which SyncKey.

Every answer to FolderSync or Sync carries a new SyncKey; the device sends
it back next time, and the server compares the mailbox with what it sent
under that key.  Each key names an immutable snapshot, and the key before
the newest stays valid too, so that a device whose answer was lost can ask
again with the old key (MS-ASCMD's retry rule).

Keys look like Exchange's (``{GUID}n``).  States live in the memory of the
Client Access server that serves the mailbox, bounded per server: after a
restart, or for a device not seen for long, a key is unknown and the device
starts over (FolderSync status 9, Sync status 3), which every client
handles.

The ``ClientId`` of each device's recent SendMails is kept beside its states, so
that a message a device sends again (its first answer lost) leaves once.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

__all__ = ["FolderEntry", "MessageEntry", "SyncStates"]

#: Devices whose states one server keeps (least recently used go first).
MAX_DEVICES = 2000
#: SendMail ClientIds remembered per device, to refuse a resent message (newest kept).
MAX_SENT_IDS = 200


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
    """The synchronization states of the devices one server serves."""

    def __init__(self, max_devices: int = MAX_DEVICES) -> None:
        self._devices: OrderedDict[tuple[str, str], _Device] = OrderedDict()
        self._max = max_devices

    def _device(self, alias: str, device_id: str) -> _Device:
        key = (alias.casefold(), device_id.casefold())
        found = self._devices.get(key)
        if found is None:
            found = self._devices[key] = _Device()
            while len(self._devices) > self._max:
                self._devices.popitem(last=False)
        self._devices.move_to_end(key)
        return found

    # ------------------------------------------------------------ hierarchy

    def hierarchy(self, alias: str, device_id: str, key: str) -> dict[str, FolderEntry] | None:
        """The folders sent under ``key`` ("0": none yet, a fresh start); None if unknown."""
        device = self._device(alias, device_id)
        if key == "0":
            device.hierarchy = _Keyed()
            device.collections.clear()
            return {}
        found = device.hierarchy.snapshots.get(key)
        return dict(found) if isinstance(found, dict) else None

    def save_hierarchy(self, alias: str, device_id: str, folders: dict[str, FolderEntry]) -> str:
        return self._device(alias, device_id).hierarchy.save(dict(folders))

    # ------------------------------------------------------------ collections

    def collection(
        self, alias: str, device_id: str, collection: str, key: str
    ) -> dict[int, MessageEntry] | None:
        """The messages sent under ``key`` in ``collection`` ("0": a fresh start)."""
        device = self._device(alias, device_id)
        if key == "0":
            device.collections[collection] = _Keyed()
            return {}
        keyed = device.collections.get(collection)
        found = keyed.snapshots.get(key) if keyed is not None else None
        return dict(found) if isinstance(found, dict) else None

    def save_collection(
        self, alias: str, device_id: str, collection: str, messages: dict[int, MessageEntry]
    ) -> str:
        device = self._device(alias, device_id)
        keyed = device.collections.setdefault(collection, _Keyed())
        return keyed.save(dict(messages))

    # ------------------------------------------------------------ SendMail

    def was_sent(self, alias: str, device_id: str, client_id: str) -> bool:
        """Did this device send a message with this ClientId already?"""
        return client_id in self._device(alias, device_id).sent

    def mark_sent(self, alias: str, device_id: str, client_id: str) -> None:
        sent = self._device(alias, device_id).sent
        sent[client_id] = None
        while len(sent) > MAX_SENT_IDS:
            sent.popitem(last=False)
