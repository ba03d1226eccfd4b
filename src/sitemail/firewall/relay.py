"""The firewall's data plane: TCP relays that keep the client's own source address.

Each :class:`Route` relays one address (every relayed port) to the next hop.
The outgoing connection is bound to the *client's* address, so the receiving
server sees the real sender, as behind a routed tunnel; on loopback any
127.0.0.0/8 address can be bound.

When a connection opens, the relay first asks its ``admit`` callback whether
the firewall's policy lets it through (the interface's access list): a
refused connection is reset at once, before anything is sent to the server,
and the callback's syslog line is written.  A userspace relay cannot drop
the SYN as an ASA does, so the client sees its connection accepted and
then reset rather than a connect that times out.

Then it asks its ``inspector_for`` callback for an
inspection engine (:mod:`sitemail.firewall.inspection`).  The engine is
chosen once, from the configuration of that moment, and kept for the life of
the connection, as on an ASA: a policy change applies to new connections only.
Every segment read (one ``read()``, the nearest thing to a packet a stream
socket has) goes through the engine, and the relay carries out the actions it
returns, in order: bytes to either side, syslog lines, or the end of the
connection (FIN for ``drop-connection``, RST for ``reset``).

Resources are bounded per connection: one read of at most ``read_size``
bytes is in flight per direction, a write waits (``drain``) while the other
side's buffer is above ``write_high_water``, and idle, half-closed and
connect timeouts end connections nobody uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sitemail.firewall import asa_syslog
from sitemail.firewall.asa_runtime import AsaRuntime
from sitemail.firewall.asa_syslog import Flow
from sitemail.firewall.capture_tap import Tap
from sitemail.firewall.conn_table import ConnEntry, duration_text
from sitemail.firewall.inspection import (
    Action,
    DropConnection,
    Inspector,
    ResetConnection,
    Syslog,
    ToClient,
    ToServer,
)

__all__ = [
    "Admission",
    "Connection",
    "InspectorFactory",
    "Refusal",
    "Relay",
    "RelayLimits",
    "Route",
    "SyslogSink",
]

log = logging.getLogger("sitemail.firewall")


@dataclass(frozen=True)
class RelayLimits:
    """Per-connection bounds.  Defaults follow the ASA's factory timeouts."""

    read_size: int = 64 * 1024
    #: Above this many unsent bytes a direction stops reading until the peer catches up.
    write_high_water: int = 256 * 1024
    #: ASA default ``timeout conn 1:00:00``: no byte either way for an hour ends the connection.
    idle_timeout: float = 3600.0
    #: ASA default ``half-closed 0:10:00``: after one side's FIN the other has ten minutes.
    half_closed_timeout: float = 600.0
    connect_timeout: float = 10.0
    #: Connections open at once through one relay; more are refused (reset at once).
    max_connections: int = 4096


@dataclass(frozen=True)
class Route:
    """One address the relay answers for, and where it leads.

    ``client_interface`` is the ASA interface the connection arrives on
    (``inside`` for traffic leaving the firewall's site, ``outside`` for
    traffic entering it); the inspection policy and syslog lines use it.
    """

    listen: str
    forward: str
    ports: tuple[tuple[int, int], ...]  # (listening port, Exchange port it stands for)
    description: str = ""
    client_interface: str = "outside"
    server_interface: str = "inside"
    #: The server's own address, for logs, when ``forward`` is the next firewall's tunnel.
    server_address: str | None = None


@dataclass(frozen=True)
class Connection:
    """What the relay knows about a connection when it opens."""

    route: Route
    exchange_port: int  # the port the bound port stands for (25 even when 10025 is bound)
    client_ip: str
    client_port: int
    server_ip: str  # the server's own address (not the next hop's) when the route knows it
    server_port: int

    @property
    def flow(self) -> Flow:
        """The connection's two ends as the ASA's syslog and conn table name them."""
        route = self.route
        return Flow(
            client_interface=route.client_interface,
            client_ip=self.client_ip,
            client_port=self.client_port,
            server_interface=route.server_interface,
            server_ip=self.server_ip,
            server_port=self.exchange_port,
        )


@dataclass(frozen=True)
class Refusal:
    """The policy refuses a new connection: reset it, and write this syslog line."""

    syslog: str


InspectorFactory = Callable[[Connection], Inspector | None]
Admission = Callable[[Connection], Refusal | None]
SyslogSink = Callable[[str], None]


class Relay:
    """Listens on every route's address and port; one task per connection."""

    def __init__(
        self,
        routes: list[Route],
        inspector_for: InspectorFactory | None = None,
        *,
        syslog: SyslogSink | None = None,
        limits: RelayLimits | None = None,
        admit: Admission | None = None,
        runtime: AsaRuntime | None = None,
    ) -> None:
        self.routes = routes
        #: The conn table the relay keeps and the captures it records into.
        self.runtime = runtime if runtime is not None else AsaRuntime()
        self.inspector_for = inspector_for
        self.admit = admit
        self.syslog = syslog
        self.limits = limits or RelayLimits()
        self._servers: list[asyncio.AbstractServer] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._open: set[_Pipe] = set()
        self.connections = 0  # accepted since start

    @property
    def active(self) -> int:
        """Connections open now."""
        return len(self._open)

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
        self.abort_all()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for s in self._servers:
            with contextlib.suppress(Exception):
                await s.wait_closed()
        self._servers.clear()

    def abort_all(self) -> None:
        """Reset every open connection (what a reload does to the connection table)."""
        for pipe in list(self._open):
            pipe.abort()

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
        limits = self.limits
        if len(self._open) >= limits.max_connections:
            log.warning("%s: connection limit (%d) reached", route.listen, limits.max_connections)
            _reset(c_writer)
            return
        peer = c_writer.get_extra_info("peername")
        client_ip, client_port = (peer[0], int(peer[1])) if peer else ("0.0.0.0", 0)
        server_ip = route.server_address or route.forward
        conn = Connection(route, exchange_port, client_ip, client_port, server_ip, port)
        refusal = self._admission(conn)
        if refusal is not None:
            write_syslog(self.syslog, refusal.syslog)
            if self.runtime.captures:
                # The SYN reached the interface (captures see it before the access list);
                # the client's answer is the relay's reset.
                tap = Tap(self.runtime, conn)
                tap.refused()
            _reset(c_writer)
            return
        try:
            s_reader, s_writer = await asyncio.wait_for(
                asyncio.open_connection(route.forward, port, local_addr=(client_ip, 0)),
                limits.connect_timeout,
            )
        except asyncio.CancelledError:
            _reset(c_writer)
            raise
        except (OSError, TimeoutError) as exc:
            # The server refused or never answered: the client gets the reset it
            # would have got without the firewall in between.
            log.info("no route %s -> %s:%d: %s", client_ip, route.forward, port, exc)
            _reset(c_writer)
            return
        try:
            inspector = self.inspector_for(conn) if self.inspector_for else None
        except Exception:
            # A broken policy must not take the relay down; the connection goes
            # through uninspected and the process log says why.
            log.exception("inspection policy for %s failed", route.listen)
            inspector = None
        runtime = self.runtime
        flow = conn.flow
        entry = runtime.conns.open(flow, runtime.clock())
        write_syslog(self.syslog, asa_syslog.conn_built(flow, entry.id))
        tap = Tap(runtime, conn)
        tap.opened()
        pipe = _Pipe(
            c_reader, c_writer, s_reader, s_writer, inspector, self.syslog, limits, entry, tap
        )
        self._open.add(pipe)
        try:
            await pipe.run()
        finally:
            self._open.discard(pipe)
            runtime.conns.close(entry)
            tap.closed(pipe.reason)
            duration = duration_text(runtime.clock() - entry.started)
            write_syslog(
                self.syslog,
                asa_syslog.conn_teardown(flow, entry.id, duration, entry.bytes, pipe.reason),
            )

    def _admission(self, conn: Connection) -> Refusal | None:
        if self.admit is None:
            return None
        try:
            return self.admit(conn)
        except Exception:
            # As with a broken inspection policy: the connection goes through and the
            # process log says why, rather than the relay going down.
            log.exception("access policy for %s failed", conn.route.listen)
            return None


def write_syslog(sink: SyslogSink | None, message: str) -> None:
    """One syslog line to ``sink`` (the process log when there is none)."""
    if sink is None:
        log.info("%s", message)
        return
    try:
        sink(message)
    except Exception:
        # A full disk must not cut a mail connection; the process log keeps it.
        log.exception("cannot write syslog line %s", message)


# --- one connection ---------------------------------------------------------------------

Ending = Literal["drop", "reset", "idle", "error"]


class _Ended(Exception):
    """Raised by a direction to end the whole connection."""

    def __init__(self, how: Ending, reason: str = "") -> None:
        super().__init__(reason or how)
        self.how = how


class _Pipe:
    """Both directions of one relayed connection."""

    def __init__(
        self,
        c_reader: asyncio.StreamReader,
        c_writer: asyncio.StreamWriter,
        s_reader: asyncio.StreamReader,
        s_writer: asyncio.StreamWriter,
        inspector: Inspector | None,
        syslog: SyslogSink | None,
        limits: RelayLimits,
        entry: ConnEntry,
        tap: Tap,
    ) -> None:
        self.c_reader, self.c_writer = c_reader, c_writer
        self.entry = entry
        self.tap = tap
        self.reason = asa_syslog.TEARDOWN_CLEARED  # until the connection says how it ended
        self.s_reader, self.s_writer = s_reader, s_writer
        self.inspector = inspector
        self.syslog = syslog
        self.limits = limits
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._last = loop.time()
        self._half_closed = False
        self._tasks: list[asyncio.Task[None]] = []
        for w in (c_writer, s_writer):
            with contextlib.suppress(Exception):
                w.transport.set_write_buffer_limits(high=limits.write_high_water)

    async def run(self) -> None:
        up = asyncio.ensure_future(self._direction(from_client=True))
        down = asyncio.ensure_future(self._direction(from_client=False))
        self._tasks = [up, down]
        how: Ending | None = None
        try:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
            reset_by = ""
            for task in self._tasks:
                if task.done() and not task.cancelled():
                    exc = task.exception()
                    if isinstance(exc, _Ended):
                        how = exc.how
                    elif exc is not None:
                        how = "error"
                        reset_by = self.tap.interfaces[0 if task is up else 1]
            self.reason = _teardown_reason(how, reset_by)
        except asyncio.CancelledError:
            how = "reset"
            raise
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._finish(how)

    def abort(self) -> None:
        for task in self._tasks:
            task.cancel()
        _reset(self.c_writer)
        _reset(self.s_writer)

    def _finish(self, how: Ending | None) -> None:
        if how in ("reset", "error"):
            # A reset on one side (or the inspection's ``reset``) resets both,
            # as the RST passes through the firewall.
            _reset(self.c_writer)
            _reset(self.s_writer)
            return
        # Normal end, drop-connection, idle timeout: FIN after what is already queued.
        for w in (self.c_writer, self.s_writer):
            with contextlib.suppress(Exception):
                w.close()

    async def _read(self, reader: asyncio.StreamReader) -> bytes:
        limits = self.limits
        while True:
            limit = limits.half_closed_timeout if self._half_closed else limits.idle_timeout
            remaining = self._last + limit - self._loop.time()
            if remaining <= 0:
                raise _Ended("idle", "idle timeout")
            try:
                # Waking up at least every half-closed period lets a FIN on the
                # other side shorten this side's timeout.
                wait = min(remaining, limits.half_closed_timeout)
                data = await asyncio.wait_for(reader.read(limits.read_size), wait)
            except TimeoutError:
                continue  # re-check: the other direction may have been busy
            self._last = self._loop.time()
            return data

    async def _direction(self, *, from_client: bool) -> None:
        reader = self.c_reader if from_client else self.s_reader
        writer = self.s_writer if from_client else self.c_writer
        inspector = self.inspector
        entry, tap = self.entry, self.tap
        captures = tap.runtime.captures
        while True:
            data = await self._read(reader)
            if not data:
                self._half_closed = True
                with contextlib.suppress(OSError):
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            entry.bytes += len(data)
            entry.last = tap.runtime.clock()
            if from_client:
                entry.client_data = True
            else:
                entry.server_data = True
            if captures:
                tap.arrived(from_client, data)
            if inspector is None:
                writer.write(data)
                if captures:
                    tap.left(from_client, data)
                await writer.drain()
                continue
            actions = inspector.feed_client(data) if from_client else inspector.feed_server(data)
            await self._carry_out(actions)

    async def _carry_out(self, actions: list[Action]) -> None:
        """Do what the engine said, in its order."""
        written: list[asyncio.StreamWriter] = []
        for action in actions:
            if isinstance(action, ToServer):
                self.s_writer.write(action.data)
                written.append(self.s_writer)
                if self.tap.runtime.captures:
                    self.tap.left(True, action.data)
            elif isinstance(action, ToClient):
                self.c_writer.write(action.data)
                written.append(self.c_writer)
                if self.tap.runtime.captures:
                    self.tap.left(False, action.data)
            elif isinstance(action, Syslog):
                write_syslog(self.syslog, action.message)
            elif isinstance(action, DropConnection):
                raise _Ended("drop", action.reason)
            elif isinstance(action, ResetConnection):
                raise _Ended("reset", action.reason)
        for w in dict.fromkeys(written):
            await w.drain()


def _teardown_reason(how: Ending | None, reset_by: str) -> str:
    """The reason a 302014 line gives for how the connection ended."""
    if how in ("drop", "reset"):
        return asa_syslog.TEARDOWN_INSPECTION
    if how == "idle":
        return asa_syslog.TEARDOWN_IDLE
    if how == "error":
        if reset_by == "outside":
            return asa_syslog.TEARDOWN_RESET_OUTSIDE
        return asa_syslog.TEARDOWN_RESET_INSIDE
    return asa_syslog.TEARDOWN_FINS


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset: SO_LINGER 0 makes close() send RST instead of FIN."""
    transport = writer.transport
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        transport.abort()
