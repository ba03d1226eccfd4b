"""The ASA's connection table: what ``show conn`` lists and syslog 302013/302014 tell.

The relay opens an entry when it has connected both sides (the ASA builds
its connection when the handshake passes), counts the bytes each way as it
relays them, and closes the entry with the reason the connection ended.
Entries name the lower-security end first, as the ASA prints them (``TCP
outside A:P inside B:P``).  Pure: the caller gives the times.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from sitemail.firewall.asa_syslog import Flow

__all__ = [
    "ConnEntry",
    "ConnTable",
    "conn_report",
    "duration_text",
]


@dataclass
class ConnEntry:
    """One connection through the box."""

    id: int
    flow: Flow
    started: float
    last: float
    bytes: int = 0
    client_data: bool = False  # bytes went from the client to the server
    server_data: bool = False  # and back

    @property
    def initiated_outside(self) -> bool:
        return self.flow.client_interface == "outside"

    @property
    def direction(self) -> str:
        """``inbound`` when the lower-security side (outside) opened it."""
        return "inbound" if self.initiated_outside else "outbound"

    def flags(self) -> str:
        """U up; I inbound data (from outside); O outbound data; B initial SYN from outside."""
        inbound = self.client_data if self.initiated_outside else self.server_data
        outbound = self.server_data if self.initiated_outside else self.client_data
        return (
            "U"
            + ("I" if inbound else "")
            + ("O" if outbound else "")
            + ("B" if self.initiated_outside else "")
        )

    def ends(self) -> tuple[tuple[str, str, int], tuple[str, str, int]]:
        """(outside end, inside end) as (interface, address, port)."""
        flow = self.flow
        client = (flow.client_interface, flow.client_ip, flow.client_port)
        server = (flow.server_interface, flow.server_ip, flow.server_port)
        return (client, server) if self.initiated_outside else (server, client)


class ConnTable:
    """Open connections, with the counters ``show conn`` starts with."""

    def __init__(self, first_id: int = 1) -> None:
        self._entries: dict[int, ConnEntry] = {}
        self._ids = itertools.count(first_id)
        self.most_used = 0

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[ConnEntry]:
        return list(self._entries.values())

    def open(self, flow: Flow, now: float) -> ConnEntry:
        entry = ConnEntry(next(self._ids), flow, now, now)
        self._entries[entry.id] = entry
        self.most_used = max(self.most_used, len(self._entries))
        return entry

    def close(self, entry: ConnEntry) -> None:
        self._entries.pop(entry.id, None)


def duration_text(seconds: float) -> str:
    """``H:MM:SS``, as the ASA prints idle times and durations."""
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _compact(seconds: float) -> str:
    """[unv] ``1h2m3s`` style of ``show conn detail``."""
    whole = max(0, int(seconds))
    hours, minutes, secs = whole // 3600, whole // 60 % 60, whole % 60
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
    return f"{text}{secs}s"


#: [unv] the flags legend ``show conn detail`` starts with (shortened to the flags used here).
DETAIL_LEGEND = (
    "Flags: A - awaiting responder ACK to SYN, a - awaiting initiator ACK to SYN,\n"
    "       B - TCP probe for server certificate, initial SYN from outside,\n"
    "       f - inside FIN, F - outside FIN, I - inbound data, O - outbound data,\n"
    "       r - inside acknowledged FIN, R - outside acknowledged FIN, U - up\n"
)


def conn_report(
    table: ConnTable, now: float, *, detail: bool = False, timeout: float = 3600.0
) -> str:
    """``show conn [detail]``."""
    lines = [f"{len(table)} in use, {table.most_used} most used"]
    out = "\n".join(lines) + "\n"
    if detail:
        out += DETAIL_LEGEND
    for entry in table.entries():
        (o_if, o_ip, o_port), (i_if, i_ip, i_port) = entry.ends()
        idle = now - entry.last
        if not detail:
            out += (
                f"TCP {o_if} {o_ip}:{o_port} {i_if} {i_ip}:{i_port}, idle {duration_text(idle)}, "
                f"bytes {entry.bytes}, flags {entry.flags()}\n"
            )
            continue
        out += (
            f"\nTCP {o_if}: {o_ip}/{o_port} {i_if}: {i_ip}/{i_port},\n"
            f"    flags {entry.flags()} , idle {_compact(idle)}, uptime "
            f"{_compact(now - entry.started)}, timeout {_compact(timeout)}, bytes {entry.bytes}\n"
            f"  Initiator: {entry.flow.client_ip}, Responder: {entry.flow.server_ip}\n"
            f"  Connection lookup keyid: {entry.id}\n"
        )
    return out
