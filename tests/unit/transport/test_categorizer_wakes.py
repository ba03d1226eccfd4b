"""What wakes the categorizer: every accepted message, except while Submission is suspended."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any

from tests.unit.queue.queue_testkit import SERVER, Env, open_store

from sitemail.clock import ManualClock
from sitemail.org.model import TransportSettings
from sitemail.transport.pipeline import Pipeline, WorkLoops
from sitemail.transport.queue import QueueEvent, QueueEventKind


def _env(tmp_path: Path) -> Env:
    clock = ManualClock()
    settings = TransportSettings()
    events: list[QueueEvent] = []
    return Env(tmp_path, clock, settings, open_store(tmp_path, clock, settings, events), events)


def test_hear_changes_which_events_wake_a_step() -> None:
    async def go() -> list[set[str]]:
        loops = WorkLoops()
        ran: set[str] = set()

        def step(name: str) -> Callable[[], Awaitable[bool]]:
            async def run() -> bool:
                ran.add(name)
                return False

            return run

        loops.start({"a": step("a"), "b": step("b")}, deaf={"b": (QueueEventKind.DELIVERED,)})
        await asyncio.sleep(0.01)  # each ran once at its start
        seen = []
        for change in (None, ("a", (QueueEventKind.RECEIVED,)), ("a", ())):
            if change is not None:
                loops.hear(*change)
            ran.clear()
            loops.wake_threadsafe(QueueEventKind.RECEIVED)
            await asyncio.sleep(0.01)
            seen.append(set(ran))
        await loops.stop()
        return seen

    # Both hear RECEIVED; then "a" is deaf to it; then it hears it again.
    assert asyncio.run(go()) == [{"a", "b"}, {"b"}, {"a", "b"}]


def test_the_store_says_whether_submission_is_suspended(tmp_path: Path) -> None:
    env = _env(tmp_path)
    try:
        assert env.store.submission_suspended() is False
        env.store.suspend_queue(f"{SERVER}\\Submission")
        assert env.store.submission_suspended() is True
        env.store.resume_queue(f"{SERVER}\\Submission")
        assert env.store.submission_suspended() is False
    finally:
        env.store.close()


def test_a_suspended_submission_queue_is_not_looked_at_for_each_accepted_message(
    tmp_path: Path,
) -> None:
    env = _env(tmp_path)
    submission = f"{SERVER}\\Submission"
    # A Pipeline with only what its categorizer step uses (no server around it).
    pipeline: Any = object.__new__(Pipeline)
    pipeline.store = env.store
    pipeline.loops = WorkLoops()

    async def step() -> tuple[bool, Collection[object]]:
        pipeline.loops.start({})  # no loops run: the test runs the step itself
        busy = await pipeline._categorize()
        return busy, pipeline.loops._deaf["categorizer"]

    try:
        env.store.suspend_queue(submission)
        env.submit("x@contoso.com")
        busy, deaf = asyncio.run(step())
        assert busy is False  # nothing leaves a suspended queue
        assert QueueEventKind.RECEIVED in deaf
        # Resume-Queue is a change of a queue: that still wakes it, and so does IDLE_POLL.
        assert QueueEventKind.CHANGED not in deaf
        env.store.resume_queue(submission)
        env.categorize()  # Submission empty again, and not suspended
        busy, deaf = asyncio.run(step())
        assert busy is False
        assert QueueEventKind.RECEIVED not in deaf  # every accepted message wakes it again
    finally:
        env.store.close()
