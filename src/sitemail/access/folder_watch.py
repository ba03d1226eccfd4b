"""Change notification for IMAP4 IDLE: one long poll on the store per folder, not per session.

An IDLE session waits for its selected folder to change.  Asking the store
API once per session (a long poll each) made the number of store requests
in flight grow with the number of IDLE sessions: a hundred IDLE sessions of
one user took every pooled connection to the store, and another user's
SELECT waited behind them.  Here the Client Access server keeps one long
poll per (mailbox, folder) that has IDLE sessions, on a connection pool of
its own, and wakes every session waiting on that folder when it changes;
each session then reads what changed for itself with one ordinary request.
The polls end when the last session stops waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Protocol

from sitemail.mailbox.errors import StoreError
from sitemail.mailbox.records import FolderChanges

log = logging.getLogger("sitemail.access.folder_watch")

#: How long one long poll on the store lasts before it is renewed.
POLL_SECONDS = 25.0
#: Wait after the store failed before polling again.
RETRY_SECONDS = 5.0


class ChangesStore(Protocol):
    """The store call a watch makes: the store API client's (EWS streams use it too)."""

    async def changes(
        self, mailbox: str, folder: int | str, since_modseq: int, *, wait: float = 0.0
    ) -> FolderChanges: ...

    async def close(self) -> None: ...


@dataclass
class _Watch:
    modseq: int
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    waiters: int = 0
    task: asyncio.Task[None] | None = None


class FolderWatches:
    """The folders this server's IDLE sessions wait on, each polled once."""

    def __init__(self, store: ChangesStore, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self._watches: dict[tuple[str, int], _Watch] = {}

    @property
    def polls(self) -> int:
        """Long polls on the store running now (one per watched folder)."""
        return sum(1 for w in self._watches.values() if w.task is not None and not w.task.done())

    async def wait(self, mailbox: str, folder_id: int, modseq: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the folder to change after ``modseq``.

        True when it changed (the caller reads the changes), False on time-out.
        """
        key = (mailbox.casefold(), folder_id)
        watch = self._watches.get(key)
        if watch is None:
            watch = self._watches[key] = _Watch(modseq)
        watch.waiters += 1
        if watch.task is None or watch.task.done():
            watch.task = asyncio.ensure_future(self._poll(mailbox, folder_id, watch))
        try:
            async with watch.changed:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await watch.changed.wait_for(lambda: watch.modseq > modseq)
                return watch.modseq > modseq
        finally:
            watch.waiters -= 1
            if watch.waiters == 0 and watch.task is not None:
                # Nobody waits: stop polling (a new waiter starts a new poll).
                watch.task.cancel()
                if self._watches.get(key) is watch:
                    del self._watches[key]

    async def _poll(self, mailbox: str, folder_id: int, watch: _Watch) -> None:
        while watch.waiters > 0:
            try:
                found = await self.store.changes(
                    mailbox, folder_id, watch.modseq, wait=self.poll_seconds
                )
            except (StoreError, OSError, TimeoutError) as exc:
                log.warning("IDLE: watching %s folder %d failed: %s", mailbox, folder_id, exc)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if found.modseq > watch.modseq:
                async with watch.changed:
                    watch.modseq = found.modseq
                    watch.changed.notify_all()

    async def close(self) -> None:
        tasks = [w.task for w in self._watches.values() if w.task is not None]
        self._watches.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
