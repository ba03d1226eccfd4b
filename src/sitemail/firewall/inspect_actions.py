"""What the ESMTP inspection engine asks its relay to do, and a fold of it per segment.

Kept apart from :mod:`sitemail.firewall.inspection` (which re-exports all of
it) so that the engine module stays small.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Action",
    "DropConnection",
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
