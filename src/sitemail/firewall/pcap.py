"""Captured segments as a libpcap file: Ethernet, IPv4 and TCP frames with real checksums.

What ``copy /pcap capture:NAME`` writes, for tcpdump or Wireshark to read.
The frames are built from :class:`~sitemail.firewall.tcp_segments.Segment`
records (the relay has streams, not packets, so the segments are made up,
but consistently: lengths, sequence numbers and checksums all agree).  Each
host gets a locally administered MAC address made from its IPv4 address.
Pure: bytes in, bytes out.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable

from sitemail.firewall.tcp_segments import TTL, Segment

__all__ = ["ethernet_frame", "mac_of", "pcap_file"]

_MAGIC = 0xA1B2C3D4  # microsecond time stamps, written in our byte order
_LINKTYPE_ETHERNET = 1
_SNAPLEN = 65535
_ETHERTYPE_IPV4 = 0x0800
_DONT_FRAGMENT = 0x4000
_TCP = 6


def mac_of(address: str) -> bytes:
    """02:00:A:B:C:D for A.B.C.D (the locally administered bit set: never a vendor's)."""
    return b"\x02\x00" + ipaddress.IPv4Address(address).packed


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = int(sum(struct.unpack(f"!{len(data) // 2}H", data)))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _tcp(segment: Segment, src: bytes, dst: bytes) -> bytes:
    options = b"" if segment.mss is None else struct.pack("!BBH", 2, 4, segment.mss)
    offset = (20 + len(options)) // 4
    header = struct.pack(
        "!HHIIBBHHH",
        segment.source_port,
        segment.destination_port,
        segment.seq,
        segment.ack,
        offset << 4,
        segment.flags,
        segment.window,
        0,
        0,
    )
    body = header + options + segment.payload
    pseudo = src + dst + struct.pack("!BBH", 0, _TCP, len(body))
    checksum = _checksum(pseudo + body)
    return body[:16] + struct.pack("!H", checksum) + body[18:]


def _ipv4(segment: Segment) -> bytes:
    src = ipaddress.IPv4Address(segment.source).packed
    dst = ipaddress.IPv4Address(segment.destination).packed
    tcp = _tcp(segment, src, dst)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(tcp),
        segment.ip_id,
        _DONT_FRAGMENT,
        TTL,
        _TCP,
        0,
        src,
        dst,
    )
    checksum = _checksum(header)
    return header[:10] + struct.pack("!H", checksum) + header[12:] + tcp


def ethernet_frame(segment: Segment) -> bytes:
    """The whole frame of one segment: MAC header, IPv4 header, TCP header, payload."""
    mac = mac_of(segment.destination) + mac_of(segment.source)
    return mac + struct.pack("!H", _ETHERTYPE_IPV4) + _ipv4(segment)


def pcap_file(segments: Iterable[Segment]) -> bytes:
    """A libpcap file (version 2.4, Ethernet) holding ``segments`` in order."""
    out = [struct.pack("=IHHiIII", _MAGIC, 2, 4, 0, 0, _SNAPLEN, _LINKTYPE_ETHERNET)]
    for segment in segments:
        frame = ethernet_frame(segment)
        seconds = int(segment.time)
        micros = min(round((segment.time - seconds) * 1e6), 999_999)
        out.append(struct.pack("=IIII", seconds, micros, len(frame), len(frame)))
        out.append(frame)
    return b"".join(out)
