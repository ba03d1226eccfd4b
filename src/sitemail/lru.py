"""A bounded map that forgets what was used least recently.

The caches of the request paths (folder views in the store and in the CAS,
rendered OWA pages, EWS header properties, ActiveSync folder lists) each keep
a bounded number of answers; what invalidates an entry is each one's own key
or a version stored with the value.  A lock makes one map safe to share
between an event loop and the store's threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["LruCache"]

K = TypeVar("K")
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most ``limit`` entries; a ``get`` that finds one makes it the newest."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("an LRU cache holds at least one entry")
        self.limit = limit
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.limit:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
