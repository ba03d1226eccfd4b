"""Admission in the transport process: the connector a client gets, remembered per configuration."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sitemail.org.model import ReceiveConnector
from sitemail.transport import receive_listeners
from sitemail.transport.receive_listeners import ReceiveListeners


def rc(name: str, ranges: list[str]) -> ReceiveConnector:
    return ReceiveConnector(
        server="EX-FL1", name=name, remote_ip_ranges=ranges, bindings=["0.0.0.0:25"]
    )


def listeners(connectors: list[ReceiveConnector]) -> ReceiveListeners:
    env: Any = SimpleNamespace(port_offset=0)
    return ReceiveListeners(env, SimpleNamespace(connectors=connectors))  # type: ignore[arg-type]


def test_a_client_gets_the_connector_selection_gives_and_a_new_configuration_chooses_again(
    monkeypatch: Any,
) -> None:
    chosen = listeners([rc("All", ["0.0.0.0-255.255.255.255"]), rc("Lan", ["10.0.0.0/8"])])
    calls: list[str] = []
    select = receive_listeners.select_connector

    def counting(*args: Any) -> ReceiveConnector | None:
        calls.append(args[3])
        return select(*args)

    monkeypatch.setattr(receive_listeners, "select_connector", counting)
    for _ in range(3):
        assert chosen._connector("10.1.0.1", 25, "10.9.9.9").name == "Lan"  # type: ignore[union-attr]
        assert chosen._connector("10.1.0.1", 25, "192.0.2.1").name == "All"  # type: ignore[union-attr]
    assert calls == ["10.9.9.9", "192.0.2.1"]  # each client matched once
    assert chosen._connector("10.1.0.1", 587, "10.9.9.9") is None  # no binding on 587
    # Set-ReceiveConnector: the configuration is replaced whole, and chosen from again.
    chosen.config = SimpleNamespace(connectors=[rc("All", ["0.0.0.0-255.255.255.255"])])  # type: ignore[assignment]
    assert chosen._connector("10.1.0.1", 25, "10.9.9.9").name == "All"  # type: ignore[union-attr]


def test_the_remembered_choices_are_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(receive_listeners, "CHOSEN_CONNECTORS", 8)
    chosen = listeners([rc("All", ["0.0.0.0-255.255.255.255"])])
    for last in range(100):
        assert chosen._connector("10.1.0.1", 25, f"192.0.2.{last}") is not None
    assert len(chosen._chosen) == 8
