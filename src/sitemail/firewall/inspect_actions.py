"""What the ESMTP inspection engine asks its relay to do, its states, and its face to the relay.

Kept apart from :mod:`sitemail.firewall.inspection` (which re-exports all of
it) so that the engine module stays small.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "Action",
    "DropConnection",
    "InspectState",
    "Inspector",
    "PassThrough",
    "ResetConnection",
    "SegmentSummary",
    "Syslog",
    "ToClient",
    "ToServer",
    "summarize",
]


# --- actions the relay carries out -------------------------------------------------------


@dataclass(frozen=True)
class ToServer:
    """Send these bytes to the server."""

    data: bytes


@dataclass(frozen=True)
class ToClient:
    """Send these bytes to the client."""

    data: bytes


@dataclass(frozen=True)
class DropConnection:
    """Close both sides without a word (FIN); the ASA's ``drop-connection``."""

    reason: str


@dataclass(frozen=True)
class ResetConnection:
    """Close both sides with a TCP reset; the ASA's ``reset`` action."""

    reason: str


@dataclass(frozen=True)
class Syslog:
    """Write this syslog message (``%ASA-...``); the writer adds the time stamp."""

    message: str


Action = ToServer | ToClient | DropConnection | ResetConnection | Syslog


@dataclass(frozen=True)
class SegmentSummary:
    """The actions of one segment folded per direction, for a relay that wants no list."""

    to_server: bytes = b""
    to_client: bytes = b""
    drop: bool = False
    reset: bool = False
    syslog: tuple[str, ...] = ()


def summarize(actions: list[Action]) -> SegmentSummary:
    """Fold ``feed_client``/``feed_server`` actions into bytes per direction and flags.

    The order between the two directions is lost; it only matters for the
    PIX 4.x fake ``250 OK``, which goes to the client while later commands of
    the same segment go to the server.
    """
    to_server = b"".join(a.data for a in actions if isinstance(a, ToServer))
    to_client = b"".join(a.data for a in actions if isinstance(a, ToClient))
    return SegmentSummary(
        to_server,
        to_client,
        drop=any(isinstance(a, DropConnection) for a in actions),
        reset=any(isinstance(a, ResetConnection) for a in actions),
        syslog=tuple(a.message for a in actions if isinstance(a, Syslog)),
    )


# --- the engine's face to the relay ---------------------------------------------------


class InspectState(enum.Enum):
    """The states of spec §7.3."""

    BANNER = "BANNER"
    CMD = "CMD"
    AUTH = "AUTH"
    DATA_HDR = "DATA_HDR"
    DATA_BODY = "DATA_BODY"
    TLS_PASS = "TLS_PASS"
    CLOSED = "CLOSED"


class Inspector(Protocol):
    """What the relay needs from an inspection engine."""

    @property
    def state(self) -> InspectState: ...

    def feed_client(self, segment: bytes) -> list[Action]: ...

    def feed_server(self, segment: bytes) -> list[Action]: ...


class PassThrough:
    """The engine for a connection nobody inspects: bytes go through untouched."""

    def __init__(self) -> None:
        self._state = InspectState.TLS_PASS

    @property
    def state(self) -> InspectState:
        return self._state

    def feed_client(self, segment: bytes) -> list[Action]:
        return [ToServer(segment)] if segment else []

    def feed_server(self, segment: bytes) -> list[Action]:
        return [ToClient(segment)] if segment else []
