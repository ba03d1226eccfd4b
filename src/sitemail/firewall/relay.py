"""The firewall's data plane: TCP relays that keep the client's own source address.

Each listener relays one address (every relayed port) to the next hop.  The
outgoing connection is bound to the *client's* address, so the receiving
server sees the real sender, as behind a routed tunnel; on loopback any
127.0.0.0/8 address can be bound.  An optional inspector sees every segment
of a connection, as the ASA's inspection engine does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("sitemail.firewall")

READ_SIZE = 64 * 1024
#: ASA default `timeout conn 1:00:00`: an idle connection is torn down after an hour.
IDLE_TIMEOUT = 3600.0
CONNECT_TIMEOUT = 10.0


class Inspector(Protocol):
    """One connection's inspection: segments in, what to forward out."""

    def client_segment(self, data: bytes) -> InspectResult: ...

    def server_segment(self, data: bytes) -> InspectResult: ...


@dataclass
class InspectResult:
    to_server: bytes = b""
    to_client: bytes = b""
    drop: bool = False
    reset: bool = False


InspectorFactory = Callable[[int, str, str], Inspector | None]


@dataclass(frozen=True)
class Route:
    listen: str
    forward: str
    ports: tuple[tuple[int, int], ...]  # (listening port, Exchange port it stands for)
    description: str = ""


class Relay:
    def __init__(self, routes: list[Route], inspector_for: InspectorFactory | None = None) -> None:
        self.routes = routes
        self.inspector_for = inspector_for
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0

    async def start(self) -> None:
        for route in self.routes:
            for bound, exchange_port in route.ports:
                server = await asyncio.start_server(
                    functools.partial(
                        self._accept, route=route, port=bound, exchange_port=exchange_port
                    ),
                    host=route.listen,
                    port=bound,
                    reuse_address=True,
                    backlog=128,
                )
                self._servers.append(server)

    async def stop(self) -> None:
        for s in self._servers:
            s.close()
        for task in list(self._tasks):
            task.cancel()
        for s in self._servers:
            with contextlib.suppress(Exception):
                await s.wait_closed()
        self._servers.clear()

    def _accept(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        route: Route,
        port: int,
        exchange_port: int,
    ) -> None:
        task = asyncio.ensure_future(self._handle(reader, writer, route, port, exchange_port))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(
        self,
        c_reader: asyncio.StreamReader,
        c_writer: asyncio.StreamWriter,
        route: Route,
        port: int,
        exchange_port: int,
    ) -> None:
        self.connections += 1
        peer = c_writer.get_extra_info("peername")
        client_ip = peer[0] if peer else "0.0.0.0"
        try:
            s_reader, s_writer = await asyncio.wait_for(
                asyncio.open_connection(route.forward, port, local_addr=(client_ip, 0)),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError) as exc:
            log.info("no route %s -> %s:%d: %s", client_ip, route.forward, port, exc)
            _abort(c_writer)
            return
        inspector = (
            self.inspector_for(exchange_port, client_ip, route.forward)
            if self.inspector_for
            else None
        )
        up = asyncio.ensure_future(
            self._pump(c_reader, s_writer, c_writer, inspector, from_client=True)
        )
        down = asyncio.ensure_future(
            self._pump(s_reader, c_writer, s_writer, inspector, from_client=False)
        )
        try:
            done, pending = await asyncio.wait({up, down}, return_when=asyncio.FIRST_EXCEPTION)
            if any(t.exception() for t in done if not t.cancelled()):
                for t in pending:
                    t.cancel()
            else:
                await asyncio.gather(*pending, return_exceptions=True)
        finally:
            for w in (c_writer, s_writer):
                w.close()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        other: asyncio.StreamWriter,
        inspector: Inspector | None,
        *,
        from_client: bool,
    ) -> None:
        while True:
            data = await asyncio.wait_for(reader.read(READ_SIZE), IDLE_TIMEOUT)
            if not data:
                with contextlib.suppress(OSError):
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            if inspector is None:
                writer.write(data)
                await writer.drain()
                continue
            result = (
                inspector.client_segment(data) if from_client else inspector.server_segment(data)
            )
            forward = result.to_server if from_client else result.to_client
            back = result.to_client if from_client else result.to_server
            if forward:
                writer.write(forward)
                await writer.drain()
            if back:
                other.write(back)
                await other.drain()
            if result.drop or result.reset:
                if result.reset:
                    _abort(writer)
                    _abort(other)
                raise ConnectionAbortedError("dropped by inspection")


def _abort(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    with contextlib.suppress(Exception):
        transport.abort()
