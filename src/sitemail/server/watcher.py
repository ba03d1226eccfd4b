"""Directory change notification for a running server (spec 1.7: no restart needed).

One task per process polls the directory's change counter and tells each
subscriber which kinds changed.  Polling the counter is one indexed SQLite
read, so a short interval costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sitemail.org.directory import Directory

log = logging.getLogger("sitemail.watcher")

Subscriber = Callable[[set[str]], Awaitable[None]]
POLL_INTERVAL = 0.5


class DirectoryWatcher:
    def __init__(self, directory: Directory, interval: float = POLL_INTERVAL) -> None:
        self.directory = directory
        self.interval = interval
        self._subscribers: list[tuple[frozenset[str], Subscriber]] = []
        self._task: asyncio.Task[None] | None = None
        self._counter = directory.change_counter()
        #: The directory's change counter up to which every subscriber has been told
        #: (``/health`` shows it, so a test or a tool can wait for a change to be live).
        self.applied = self._counter

    def subscribe(self, kinds: set[str], callback: Subscriber) -> None:
        """Call ``callback(changed_kinds)`` when an object of one of ``kinds`` changes."""
        self._subscribers.append((frozenset(kinds), callback))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def check(self) -> None:
        """Look for changes now (the loop calls this; tests may too)."""
        changes = self.directory.changes_since(self._counter)
        if not changes:
            return
        counter = self._counter = changes[-1].counter
        kinds = {c.kind for c in changes}
        for wanted, callback in self._subscribers:
            hit = kinds & wanted
            if hit:
                try:
                    await callback(set(hit))
                except Exception:  # a bad change must not stop the watcher
                    log.exception("applying a directory change failed")
        self.applied = counter

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.check()
