"""IDLE's change notification: one long poll per watched folder, whatever the sessions."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from sitemail.access.folder_watch import FolderWatches


class FakeStore:
    """A store whose folder 7 of adam changes when the test says so."""

    def __init__(self) -> None:
        self.modseq = 10
        self.in_flight = 0
        self.most_in_flight = 0
        self.calls = 0
        self._changed = asyncio.Event()

    def change(self) -> None:
        self.modseq += 1
        self._changed.set()

    async def changes(self, mailbox: str, folder: int, since: int, *, wait: float = 0.0) -> Any:
        self.calls += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.modseq <= since:
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)
            return type("Changes", (), {"modseq": self.modseq})()
        finally:
            self.in_flight -= 1


def test_a_hundred_idle_sessions_share_one_poll_and_all_see_the_change() -> None:
    async def go() -> None:
        store = FakeStore()
        watches = FolderWatches(cast(Any, store), poll_seconds=5)
        waiting = [asyncio.ensure_future(watches.wait("adam", 7, 10, 5.0)) for _ in range(100)]
        await asyncio.sleep(0.05)
        assert watches.polls == 1 and store.most_in_flight == 1
        store.change()
        assert await asyncio.gather(*waiting) == [True] * 100
        await asyncio.sleep(0)
        assert watches.polls == 0  # nobody waits: no poll left on the store
        assert store.most_in_flight == 1

    asyncio.run(go())


def test_a_session_behind_the_folder_returns_at_once_and_one_ahead_waits() -> None:
    async def go() -> None:
        store = FakeStore()
        watches = FolderWatches(cast(Any, store), poll_seconds=5)
        store.change()  # modseq 11
        assert await watches.wait("adam", 7, 10, 1.0)
        ahead = asyncio.ensure_future(watches.wait("adam", 7, 11, 0.3))
        assert await ahead is False  # nothing after 11: a time-out, not a change
        other = asyncio.ensure_future(watches.wait("ADAM", 7, 11, 5.0))
        await asyncio.sleep(0.05)
        other.cancel()  # the client ended IDLE
        await asyncio.gather(other, return_exceptions=True)
        await asyncio.sleep(0)
        assert watches.polls == 0

    asyncio.run(go())
