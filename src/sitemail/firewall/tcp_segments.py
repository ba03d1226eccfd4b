"""The TCP segments of one relayed connection as one interface of the ASA would carry them.

The relay reads and writes byte streams, not packets, so a capture has no
packets to copy.  :class:`TcpSegments` makes them up, consistently: a
three-way handshake, data cut at the MSS with sequence and acknowledgement
numbers that follow the bytes, then FINs or a reset.  Each interface of a
connection has its own :class:`TcpSegments` (and its own initial sequence
numbers, as the ASA's sequence randomization gives each side its own).
Pure: the caller gives the time stamps.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ACK", "FIN", "PSH", "RST", "SYN", "Segment", "TcpSegments"]

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

#: Segment sizes and windows the made-up segments carry (a Linux host's usual values).
MSS = 1460
WINDOW = 29200
TTL = 64


@dataclass(frozen=True)
class Segment:
    """One TCP/IPv4 segment: who sent it, its TCP header fields and its payload."""

    time: float  # seconds since the epoch
    source: str
    source_port: int
    destination: str
    destination_port: int
    seq: int
    ack: int  # meaningful when ``flags & ACK``
    flags: int
    payload: bytes = b""
    window: int = WINDOW
    ip_id: int = 0
    mss: int | None = None  # the MSS option of a SYN

    @property
    def ip_length(self) -> int:
        """IPv4 total length: 20 bytes of IP header, the TCP header, the payload."""
        return 20 + self.tcp_header_length + len(self.payload)

    @property
    def tcp_header_length(self) -> int:
        return 24 if self.mss is not None else 20

    @property
    def frame_length(self) -> int:
        """What the segment takes on Ethernet (14 bytes of MAC header), as a capture stores it."""
        return 14 + self.ip_length


class _End:
    """One end of the connection: its address and the next sequence number it sends."""

    def __init__(self, address: str, port: int, isn: int) -> None:
        self.address = address
        self.port = port
        self.next = isn & 0xFFFFFFFF
        self.ip_id = isn & 0xFFFF


class TcpSegments:
    """Makes up the segments of one connection on one interface."""

    def __init__(
        self,
        client: tuple[str, int],
        server: tuple[str, int],
        *,
        client_isn: int,
        server_isn: int,
    ) -> None:
        self._client = _End(*client, client_isn)
        self._server = _End(*server, server_isn)

    def _segment(
        self, time: float, from_client: bool, flags: int, payload: bytes = b"", **extra: int
    ) -> Segment:
        src, dst = (self._client, self._server) if from_client else (self._server, self._client)
        segment = Segment(
            time,
            src.address,
            src.port,
            dst.address,
            dst.port,
            src.next,
            dst.next if flags & ACK else 0,
            flags,
            payload,
            ip_id=src.ip_id,
            **extra,
        )
        src.ip_id = (src.ip_id + 1) & 0xFFFF
        src.next = (src.next + len(payload) + (1 if flags & (SYN | FIN) else 0)) & 0xFFFFFFFF
        return segment

    def handshake(self, time: float) -> list[Segment]:
        """SYN, SYN-ACK, ACK."""
        return [
            self._segment(time, True, SYN, mss=MSS),
            self._segment(time, False, SYN | ACK, mss=MSS),
            self._segment(time, True, ACK),
        ]

    def data(self, time: float, from_client: bool, payload: bytes) -> list[Segment]:
        """``payload`` cut at the MSS, each piece pushed (PSH) with the peer's next byte acked."""
        return [
            self._segment(time, from_client, PSH | ACK, payload[i : i + MSS])
            for i in range(0, len(payload), MSS)
        ]

    def fin(self, time: float, from_client: bool) -> Segment:
        return self._segment(time, from_client, FIN | ACK)

    def reset(self, time: float, from_client: bool) -> Segment:
        return self._segment(time, from_client, RST | ACK)
