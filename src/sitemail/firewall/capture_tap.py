"""Where the relay's bytes meet the captures: one :class:`Tap` per connection.

A capture on an interface sees what crosses it: on the interface a segment
arrives on, the bytes as they came (before inspection); on the interface it
leaves by, the bytes the inspection let out.  So the masked banner
(``220 ****``) shows in the capture of the client's interface and the real
one in the capture of the server's, and an X-masked command the other way
round.  Segments are made up per interface by
:class:`~sitemail.firewall.tcp_segments.TcpSegments`; the relay calls the tap
only while some capture exists, so connections cost nothing extra otherwise.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from sitemail.firewall import asa_syslog
from sitemail.firewall.asa_runtime import AsaRuntime
from sitemail.firewall.tcp_segments import ACK, RST, Segment, TcpSegments

if TYPE_CHECKING:
    from sitemail.firewall.relay import Connection

__all__ = ["Tap"]


class Tap:
    """The two interfaces one connection crosses, and what it looks like on each."""

    def __init__(self, runtime: AsaRuntime, conn: Connection) -> None:
        self.runtime = runtime
        route = conn.route
        #: (the client's interface, the server's interface)
        self.interfaces = (route.client_interface, route.server_interface)
        client = (conn.client_ip, conn.client_port)
        server = (conn.server_ip, conn.exchange_port)
        self._segments = {
            name: TcpSegments(
                client, server, client_isn=random.getrandbits(32), server_isn=random.getrandbits(32)
            )
            for name in self.interfaces
        }

    def _record(self, interface: str, segments: list[Segment]) -> None:
        self.runtime.captures.record(interface, segments)

    def opened(self) -> None:
        """The handshake, on both interfaces."""
        if self.runtime.captures:
            now = self.runtime.clock()
            for name, segments in self._segments.items():
                self._record(name, segments.handshake(now))

    def refused(self) -> None:
        """A connection the access list refused: the SYN, and the reset the client got."""
        name = self.interfaces[0]
        segments = self._segments[name]
        now = self.runtime.clock()
        syn = segments.handshake(now)[0]
        reset = Segment(
            now,
            syn.destination,
            syn.destination_port,
            syn.source,
            syn.source_port,
            0,
            (syn.seq + 1) & 0xFFFFFFFF,
            RST | ACK,
            window=0,
        )
        self._record(name, [syn, reset])

    def arrived(self, from_client: bool, data: bytes) -> None:
        """Bytes read from one side, on the interface they came in by."""
        name = self.interfaces[0 if from_client else 1]
        self._record(name, self._segments[name].data(self.runtime.clock(), from_client, data))

    def left(self, from_client: bool, data: bytes) -> None:
        """Bytes the relay sends on, on the interface they go out by."""
        name = self.interfaces[1 if from_client else 0]
        self._record(name, self._segments[name].data(self.runtime.clock(), from_client, data))

    def closed(self, reason: str) -> None:
        """FINs both ways, or a reset, on both interfaces."""
        if not self.runtime.captures:
            return
        now = self.runtime.clock()
        for name, segments in self._segments.items():
            if reason == asa_syslog.TEARDOWN_FINS:
                self._record(name, [segments.fin(now, True), segments.fin(now, False)])
            else:
                self._record(name, [segments.reset(now, True)])
