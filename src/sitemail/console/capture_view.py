"""What an ASA's capture saw of one SMTP conversation, from ``show capture NAME dump``.

The console records with the ASA's own ``capture`` command (on the inside and
the outside interface, port 25) and reads the result with ``show capture NAME
dump``, as an administrator at the ASA would.  A dump gives each packet's
time, addresses and whole frame in hex; the frame is Ethernet, IPv4 and TCP,
so the TCP payload is cut out by the headers' own length fields.  The
payloads of one TCP flow, in order, are the lines that crossed that interface
in each direction.  Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

#: The console's capture names, per interface (``capture console-in interface inside ...``).
CAPTURES = {"inside": "console-in", "outside": "console-out"}
#: Lines one direction of one flow may give the page (a conversation is tens of lines).
MAX_LINES = 400

_HEAD = re.compile(r"^\s*\d+: (\d\d:\d\d:\d\d\.\d+) ")
_TCP = re.compile(r"^\s+(\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+):")
#: The dump's separator is a tab; through the console socket it comes written as ``\x09``
#: (the CLI shows control characters that way).
_HEX = re.compile(r"^0x[0-9a-f]{4}(?:\t|\\x09) ([0-9a-f ]+?)\s*(?:\t|\\x09)")


@dataclass
class Packet:
    time: str
    source: str = ""
    source_port: int = 0
    destination: str = ""
    destination_port: int = 0
    frame: bytearray = field(default_factory=bytearray)

    @property
    def payload(self) -> bytes:
        """The TCP payload: past the Ethernet header, the IPv4 header (IHL) and the TCP
        header (data offset); only as far as the IPv4 total length."""
        ip = bytes(self.frame[14:])
        if len(ip) < 20:
            return b""
        ihl = (ip[0] & 0x0F) * 4
        total = int.from_bytes(ip[2:4], "big")
        tcp = ip[ihl:total]
        if len(tcp) < 20:
            return b""
        return tcp[(tcp[12] >> 4) * 4 :]


def parse_dump(text: str) -> list[Packet]:
    """The packets of ``show capture NAME dump``."""
    packets: list[Packet] = []
    for line in text.splitlines():
        if head := _HEAD.match(line):
            packets.append(Packet(head.group(1)))
        elif packets and (tcp := _TCP.match(line)):
            p = packets[-1]
            p.source, p.destination = tcp.group(1), tcp.group(3)
            p.source_port, p.destination_port = int(tcp.group(2)), int(tcp.group(4))
        elif packets and (hexed := _HEX.match(line)):
            packets[-1].frame += bytes.fromhex(hexed.group(1).replace(" ", ""))
    return packets


@dataclass(frozen=True)
class FlowLine:
    time: str
    to_server: bool  # client (the sending hub) -> server (the receiving hub)
    text: str


def _lines(packets: Iterable[Packet], to_server: bool) -> list[FlowLine]:
    out: list[FlowLine] = []
    pending, since = b"", ""
    for p in packets:
        data = p.payload
        if not data:
            continue
        if not pending:
            since = p.time
        pending += data
        while b"\r\n" in pending and len(out) < MAX_LINES:
            line, pending = pending.split(b"\r\n", 1)
            out.append(FlowLine(since, to_server, line.decode("latin-1")))
            since = p.time
    return out


def conversation_lines(packets: list[Packet], client_ip: str) -> list[FlowLine]:
    """The SMTP lines of the first flow from ``client_ip`` to port 25, both directions, in
    the order their packets were captured."""
    flow = next(
        (
            (p.source_port, p.destination)
            for p in packets
            if p.source == client_ip and p.destination_port == 25
        ),
        None,
    )
    if flow is None:
        return []
    port, server = flow
    there = [p for p in packets if p.source_port == port and p.source == client_ip]
    back = [p for p in packets if p.destination_port == port and p.source == server]
    # The capture's clock orders the two directions (times of one box, to the microsecond).
    return sorted(_lines(there, True) + _lines(back, False), key=lambda x: x.time)


__all__ = ["CAPTURES", "FlowLine", "Packet", "conversation_lines", "parse_dump"]
