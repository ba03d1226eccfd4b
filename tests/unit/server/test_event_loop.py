"""SITEMAIL_EVENT_LOOP picks the event loop of the server processes."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from sitemail.server import event_loop


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(event_loop.VARIABLE, raising=False)
    assert event_loop.run(_loop_type()) is uvloop.Loop


def test_the_standard_loop_on_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.VARIABLE, "asyncio")
    assert not issubclass(event_loop.run(_loop_type()), uvloop.Loop)


def test_an_unknown_loop_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.VARIABLE, "tokio")
    with pytest.raises(ValueError, match="SITEMAIL_EVENT_LOOP='tokio': expected uvloop or asyncio"):
        event_loop.run(_loop_type())
