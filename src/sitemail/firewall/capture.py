"""Packet captures of the emulated ASA: ``capture NAME interface IF [match ...]`` and its reports.

A :class:`Capture` keeps the segments that cross one interface and match its
filter, in a buffer bounded in bytes as the ASA's is (``buffer 512000`` by
default): when it is full the capture stops (``[Buffer Full - N bytes]``),
unless it is a ``circular-buffer``, which drops its oldest segments instead.
:class:`Captures` is the box's set of them; the relay records into it, the
console reads it.  The ``show capture`` texts follow the ASA's layout; the
parts no public output confirms are named constants marked [unv].  Pure.
"""

from __future__ import annotations

import datetime
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from sitemail.firewall.acl import Ace, Packet
from sitemail.firewall.pcap import ethernet_frame, mac_of
from sitemail.firewall.tcp_segments import ACK, FIN, PSH, RST, SYN, TTL, Segment

__all__ = [
    "DEFAULT_BUFFER",
    "Capture",
    "Captures",
    "capture_list",
    "capture_report",
]

#: The ASA's default capture buffer, in bytes (``buffer 512000``).
DEFAULT_BUFFER = 512000


@dataclass
class Capture:
    """One named capture on one interface."""

    name: str
    interface: str
    match: Ace | None = None  # None: everything on the interface
    buffer: int = DEFAULT_BUFFER
    circular: bool = False
    segments: deque[Segment] = field(default_factory=deque)
    used: int = 0  # bytes held
    full: bool = False

    def wants(self, segment: Segment) -> bool:
        """Does the filter take this segment?  ``match`` takes both directions of a flow."""
        if self.match is None:
            return True
        there = Packet.tcp(
            segment.source, segment.source_port, segment.destination, segment.destination_port
        )
        back = Packet.tcp(
            segment.destination, segment.destination_port, segment.source, segment.source_port
        )
        return self.match.matches(there) or self.match.matches(back)

    def add(self, segment: Segment) -> None:
        size = segment.frame_length
        if size > self.buffer:
            return
        if self.circular:
            while self.used + size > self.buffer:
                self.used -= self.segments.popleft().frame_length
        elif self.full or self.used + size > self.buffer:
            self.full = True
            return
        self.segments.append(segment)
        self.used += size

    def clear(self) -> None:
        """``clear capture NAME``: empty the buffer, keep capturing."""
        self.segments.clear()
        self.used = 0
        self.full = False


class Captures:
    """The captures of one box, by name (what the relay records into)."""

    def __init__(self) -> None:
        self._by_name: dict[str, Capture] = {}

    def __bool__(self) -> bool:
        return bool(self._by_name)

    def __iter__(self) -> Iterator[Capture]:
        return iter(list(self._by_name.values()))

    def get(self, name: str) -> Capture | None:
        return self._by_name.get(name)

    def put(self, capture: Capture) -> None:
        self._by_name[capture.name] = capture

    def remove(self, name: str) -> bool:
        return self._by_name.pop(name, None) is not None

    def record(self, interface: str, segments: Iterable[Segment]) -> None:
        """Segments seen on ``interface``: each capture there keeps those its filter takes."""
        here = [c for c in self._by_name.values() if c.interface == interface]
        if not here:
            return
        for segment in segments:
            for capture in here:
                if capture.wants(segment):
                    capture.add(segment)


# --- show capture ---------------------------------------------------------------------------

#: [unv] the state in brackets after a capture in ``show capture``.
CAPTURING = "Capturing"
BUFFER_FULL = "Buffer Full"


def capture_list(captures: Captures) -> str:
    """``show capture``: each capture, its state and its filter."""
    lines = []
    for capture in captures:
        options = " type raw-data"
        if capture.buffer != DEFAULT_BUFFER:
            options += f" buffer {capture.buffer}"
        if capture.circular:
            options += " circular-buffer"
        state = BUFFER_FULL if capture.full else CAPTURING
        lines.append(
            f"capture {capture.name}{options} interface {capture.interface} "
            f"[{state} - {capture.used} bytes]"
        )
        if capture.match is not None:
            lines.append(f"  match {_match_text(capture.match)}")
    return "".join(f"{line}\n" for line in lines)


def _match_text(ace: Ace) -> str:
    # The entry's text without "extended permit", as the capture line was typed.
    return ace.text().split(" ", 2)[2]


def _clock(time: float) -> str:
    return datetime.datetime.fromtimestamp(time).strftime("%H:%M:%S.%f")


def _flags(segment: Segment) -> str:
    """tcpdump's letters, as the ASA prints them: S, F, R, P, or '.' for a bare ACK."""
    letters = "".join(
        letter
        for bit, letter in ((SYN, "S"), (FIN, "F"), (RST, "R"), (PSH, "P"))
        if segment.flags & bit
    )
    return letters or "."


def _tcp_text(segment: Segment, *, checksum: bool = False) -> str:
    words = [
        f"{segment.source}.{segment.source_port} > "
        f"{segment.destination}.{segment.destination_port}:",
        _flags(segment),
    ]
    if checksum:
        words.append("[tcp sum ok]")
    length = len(segment.payload)
    if length or segment.flags & (SYN | FIN | RST):
        end = (segment.seq + length) & 0xFFFFFFFF
        words.append(f"{segment.seq}:{end}({length})")
    if segment.flags & ACK:
        words.append(f"ack {segment.ack}")
    words.append(f"win {segment.window}")
    if segment.mss is not None:
        words.append(f"<mss {segment.mss}>")
    return " ".join(words)


def _mac(address: str) -> str:
    raw = mac_of(address).hex()
    return f"{raw[0:4]}.{raw[4:8]}.{raw[8:12]}"


def _dump(frame: bytes) -> list[str]:
    """[unv] the ASA's hex dump: offset, eight 16-bit groups, the printable bytes."""
    lines = []
    for offset in range(0, len(frame), 16):
        row = frame[offset : offset + 16]
        groups = " ".join(row[i : i + 2].hex() for i in range(0, len(row), 2))
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        lines.append(f"0x{offset:04x}\t {groups:<39} \t{text}")
    return lines


def capture_report(capture: Capture, *, detail: bool = False, dump: bool = False) -> str:
    """``show capture NAME [detail | dump]``."""
    count = len(capture.segments)
    lines = [f"{count} packets captured", ""]
    for number, segment in enumerate(capture.segments, start=1):
        head = f"{number:>4}: {_clock(segment.time)} "
        if detail or dump:
            frame = ethernet_frame(segment)
            lines.append(
                f"{head}{_mac(segment.source)} {_mac(segment.destination)} 0x0800 "
                f"Length: {len(frame)}"
            )
            lines.append(
                f"      {_tcp_text(segment, checksum=True)} (DF) (ttl {TTL}, id {segment.ip_id})"
            )
            if dump:
                lines += _dump(frame)
        else:
            lines.append(f"{head}{_tcp_text(segment)}")
    lines.append(f"{count} packets shown")
    return "".join(f"{line}\n" for line in lines)
