"""Delivery workers per queue: one while the queue is short, more as it grows, up to the limit."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, cast

from sitemail.transport.pipeline import BATCH, WorkLoops


class Batch:
    def __init__(self, lease: int, size: int) -> None:
        self.lease = lease
        self.messages = tuple(range(size))


class Backlog:
    """A queue store with ``total`` messages in one queue, handed out in batches."""

    def __init__(self, total: int) -> None:
        self.left = total
        self.leases = 0
        self.lock = threading.Lock()

    def take_batch(self, queue_id: int, limit: int) -> Batch | None:
        with self.lock:
            if self.left <= 0:
                return None
            size = min(limit, self.left)
            self.left -= size
            self.leases += 1
            return Batch(self.leases, size)

    def finish(self, lease: int) -> None:
        pass


class Queue:
    queue_id = 7


def test_workers_open_as_the_queue_grows_up_to_the_limit_and_end_when_it_is_empty() -> None:
    async def go() -> tuple[int, int]:
        store = Backlog(BATCH * 12)
        loops = WorkLoops()
        busy = 0
        most = 0
        delivered = 0

        async def deliver(batch: Any) -> bool:
            nonlocal busy, most, delivered
            busy += 1
            most = max(most, busy)
            await asyncio.sleep(0.02)  # a next hop that takes its time
            delivered += len(batch.messages)
            busy -= 1
            return False

        queue = cast(Any, Queue())
        # What the pipeline's scheduling step does on every wake-up.
        for _ in range(200):
            loops.start_workers(cast(Any, store), [queue], deliver, lambda _q: 4)
            assert loops.workers(7) <= 4
            await asyncio.sleep(0.005)
            if store.left == 0 and loops.workers(7) == 0:
                break
        assert loops.workers(7) == 0
        return most, delivered

    most, delivered = asyncio.run(go())
    assert delivered == BATCH * 12  # every message once
    assert most == 4


def test_a_short_queue_keeps_one_worker() -> None:
    async def go() -> int:
        store = Backlog(BATCH - 1)  # one batch, not full: nothing says more is waiting
        loops = WorkLoops()
        seen = 0

        async def deliver(batch: Any) -> bool:
            nonlocal seen
            seen = max(seen, loops.workers(7))
            await asyncio.sleep(0.05)
            return False

        queue = cast(Any, Queue())
        for _ in range(10):
            loops.start_workers(cast(Any, store), [queue], deliver, lambda _q: 20)
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        return seen

    assert asyncio.run(go()) == 1
