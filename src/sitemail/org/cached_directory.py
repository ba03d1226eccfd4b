"""A running server's read cache in front of the directory.

A server reads the directory on its hot paths: the Client Access decision and
the store's mailbox look-up on every request, the categorizer for every
recipient.  Each read is a query and a model parsed from JSON; under load they
were a fifth of a Client Access server's time.  The configuration they read
changes rarely, and a server must see a change within a second (spec 1.7),
not at once.  So :class:`CachedDirectory` keeps what it read, and forgets
all of it when the directory's change counter moves, which it looks at no
more than once every ``max_staleness`` seconds (a quarter of a second by
default: well inside the second).

What it returns is always a fresh object (parsed from the text it kept), so
a caller that changes an object it got changes no one else's.  Writes go
through and empty the cache; reads inside a transaction go to the backend,
so a read-modify-write sees the latest state under the backend's lock.
"""

from __future__ import annotations

import builtins
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from sitemail.org.directory import Change, Directory, M
from sitemail.org.model import Model

__all__ = ["CachedDirectory", "DerivedCache"]

#: Seconds a cached read may be behind another process's write.
MAX_STALENESS = 0.25

K = TypeVar("K")
V = TypeVar("V")


class CachedDirectory:
    """A :class:`~sitemail.org.directory.Directory` that caches reads (see the module)."""

    def __init__(
        self,
        inner: Directory,
        *,
        max_staleness: float = MAX_STALENESS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.max_staleness = max_staleness
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._objects: dict[tuple[str, str], str | None] = {}
        self._lists: dict[str, builtins.list[str]] = {}
        self._counter = inner.change_counter()
        self._checked = monotonic()
        self._local = threading.local()

    # ------------------------------------------------------------ reads

    def get(self, cls: type[M], identity: str) -> M | None:
        if self._in_transaction():
            return self.inner.get(cls, identity)
        key = (cls.kind, identity.casefold())
        self._refresh()
        with self._lock:
            hit = key in self._objects
            text = self._objects.get(key)
        if not hit:
            obj = self.inner.get(cls, identity)
            text = None if obj is None else obj.model_dump_json()
            with self._lock:
                self._objects[key] = text
            return obj
        return None if text is None else cls.model_validate_json(text)

    def require(self, cls: type[M], identity: str) -> M:
        found = self.get(cls, identity)
        # The backend's error names what is missing.
        return found if found is not None else self.inner.require(cls, identity)

    def list(self, cls: type[M]) -> builtins.list[M]:
        if self._in_transaction():
            return self.inner.list(cls)
        self._refresh()
        with self._lock:
            texts = self._lists.get(cls.kind)
        if texts is None:
            objects = self.inner.list(cls)
            with self._lock:
                self._lists[cls.kind] = [o.model_dump_json() for o in objects]
            return objects
        return [cls.model_validate_json(t) for t in texts]

    def change_counter(self) -> int:
        """The backend's counter, read now; a caller that sees it move and reads again
        gets the new state (the cache is emptied here, not up to a bound later)."""
        counter = self.inner.change_counter()
        self._sync(counter, self._monotonic())
        return counter

    def changes_since(self, counter: int) -> builtins.list[Change]:
        """The backend's changes; as with :meth:`change_counter`, a caller that learns of
        a change here and reads again gets the new state.  (The servers' directory
        watcher reloads the receive connectors right after this call: a cached
        connector would have been applied as the change and kept until the next one.)"""
        changes = self.inner.changes_since(counter)
        if changes:
            self._sync(changes[-1].counter, self._monotonic())
        return changes

    def fresh_counter(self) -> int | None:
        """The change counter the cache holds, if it was checked within ``max_staleness``
        (no I/O: a caller may keep what it derived from this cache under that counter);
        ``None`` when a read would look at the backend first."""
        with self._lock:
            if self._monotonic() - self._checked < self.max_staleness:
                return self._counter
        return None

    def _refresh(self) -> None:
        now = self._monotonic()
        if now - self._checked < self.max_staleness:
            return
        self._sync(self.inner.change_counter(), now)

    def _sync(self, counter: int, now: float) -> None:
        with self._lock:
            self._checked = now
            if counter != self._counter:
                self._counter = counter
                self._objects.clear()
                self._lists.clear()

    def forget(self) -> None:
        """Empty the cache now (after this process's own writes)."""
        with self._lock:
            self._objects.clear()
            self._lists.clear()
            self._checked = float("-inf")

    # ------------------------------------------------------------ writes

    def create(self, obj: Model) -> None:
        try:
            self.inner.create(obj)
        finally:
            self.forget()

    def put(self, obj: Model) -> None:
        try:
            self.inner.put(obj)
        finally:
            self.forget()

    def delete(self, cls: type[Model], identity: str) -> None:
        try:
            self.inner.delete(cls, identity)
        finally:
            self.forget()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        try:
            with self.inner.transaction():
                yield
        finally:
            self._local.depth = depth
            self.forget()

    def _in_transaction(self) -> bool:
        return getattr(self._local, "depth", 0) > 0

    def close(self) -> None:
        self.inner.close()


class DerivedCache(Generic[K, V]):
    """What a caller worked out from a :class:`CachedDirectory`, kept while its counter holds.

    A mailbox's place (its database, server and address) is read from the
    directory on every store call, on a thread since a read may query the
    backend; the thread hop cost more than the read.  A value put here under
    the counter :meth:`get` gave is handed back, with no I/O, for as long as
    the cache's counter is that one and fresh (so it is never older than what
    the cache itself would answer).  Over any other directory nothing is kept.
    """

    def __init__(self, directory: Directory, *, limit: int = 10_000) -> None:
        self._source = directory if isinstance(directory, CachedDirectory) else None
        self._limit = limit
        self._values: dict[K, tuple[int, V]] = {}

    def get(self, key: K) -> tuple[int | None, V | None]:
        """The counter to :meth:`put` a value under (``None``: not now) and the value kept
        for ``key`` under the current counter, if any."""
        if self._source is None:
            return None, None
        counter = self._source.fresh_counter()
        if counter is None:
            return None, None
        known = self._values.get(key)
        return counter, (known[1] if known is not None and known[0] == counter else None)

    def put(self, key: K, counter: int | None, value: V) -> None:
        if counter is None:
            return
        if len(self._values) >= self._limit:
            self._values.clear()
        self._values[key] = (counter, value)
