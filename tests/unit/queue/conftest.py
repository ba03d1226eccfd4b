"""Fixtures for the queue engine tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.queue.queue_testkit import Env, open_store

from sitemail.clock import ManualClock
from sitemail.org.model import TransportSettings
from sitemail.transport.queue import QueueEvent


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    clock = ManualClock()
    settings = TransportSettings()
    events: list[QueueEvent] = []
    store = open_store(tmp_path, clock, settings, events)
    e = Env(tmp_path, clock, settings, store, events)
    yield e
    e.store.close()
