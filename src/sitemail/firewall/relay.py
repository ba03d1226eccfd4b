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
Every segment read (one ``data_received``, the nearest thing to a packet a
stream socket has) goes through the engine, and the relay carries out the
actions it returns, in order: bytes to either side, syslog lines, or the end
of the connection (FIN for ``drop-connection``, RST for ``reset``).

The data plane is written on asyncio's protocols and transports, not its
streams: a segment costs one callback and one ``write``, with no task, future
or timer per read (the streams version spent most of its time there, which
put it at 0.6 of socat's rate).  Resources are bounded per connection: while
either side's unsent bytes are above ``write_high_water`` neither side is
read, and one timer per connection ends it after the idle or half-closed
timeout; a connect timeout bounds the way to the server.
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
from typing import Literal, cast

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

    #: Above this many unsent bytes on either side, neither side is read until it drains.
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
    """Listens on every route's address and port; one :class:`_Pipe` per connection."""

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
        self._tasks: set[asyncio.Task[None]] = set()  # connections on their way to the server
        self._open: set[_Pipe] = set()
        self.connections = 0  # accepted since start

    @property
    def active(self) -> int:
        """Connections open now."""
        return len(self._open)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for route in self.routes:
            for bound, exchange_port in route.ports:
                server = await loop.create_server(
                    functools.partial(_End, self._accepted, route, bound, exchange_port),
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
            pipe.end("reset", asa_syslog.TEARDOWN_CLEARED)

    def _accepted(self, client: _End, route: Route, port: int, exchange_port: int) -> None:
        """A client connected: nothing is read from it until the server side is open."""
        self.connections += 1
        task = asyncio.ensure_future(self._open_pipe(client, route, port, exchange_port))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open_pipe(self, client: _End, route: Route, port: int, exchange_port: int) -> None:
        limits = self.limits
        c_transport = client.transport
        if len(self._open) >= limits.max_connections:
            log.warning("%s: connection limit (%d) reached", route.listen, limits.max_connections)
            _reset(c_transport)
            return
        peer = c_transport.get_extra_info("peername")
        client_ip, client_port = (peer[0], int(peer[1])) if peer else ("0.0.0.0", 0)
        server_ip = route.server_address or route.forward
        conn = Connection(route, exchange_port, client_ip, client_port, server_ip, port)
        refusal = self._admission(conn)
        if refusal is not None:
            write_syslog(self.syslog, refusal.syslog)
            if self.runtime.captures:
                # The SYN reached the interface (captures see it before the access list);
                # the client's answer is the relay's reset.
                Tap(self.runtime, conn).refused()
            _reset(c_transport)
            return
        server = _End()
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: server, route.forward, port, local_addr=(client_ip, 0)
                ),
                limits.connect_timeout,
            )
        except asyncio.CancelledError:
            _reset(c_transport)
            raise
        except (OSError, TimeoutError) as exc:
            # The server refused or never answered: the client gets the reset it
            # would have got without the firewall in between.
            log.info("no route %s -> %s:%d: %s", client_ip, route.forward, port, exc)
            _reset(c_transport)
            return
        try:
            inspector = self.inspector_for(conn) if self.inspector_for else None
        except Exception:
            # A broken policy must not take the relay down; the connection goes
            # through uninspected and the process log says why.
            log.exception("inspection policy for %s failed", route.listen)
            inspector = None
        runtime = self.runtime
        entry = runtime.conns.open(conn.flow, runtime.clock())
        write_syslog(self.syslog, asa_syslog.conn_built(conn.flow, entry.id))
        tap = Tap(runtime, conn)
        tap.opened()
        pipe = _Pipe(client, server, inspector, self.syslog, limits, entry, tap, self._ended)
        self._open.add(pipe)
        pipe.start()

    def _ended(self, pipe: _Pipe) -> None:
        self._open.discard(pipe)
        runtime = self.runtime
        entry = pipe.entry
        runtime.conns.close(entry)
        pipe.tap.closed(pipe.reason)
        duration = duration_text(runtime.clock() - entry.started)
        flow = entry.flow
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
    """Raised while carrying out the engine's actions to end the whole connection."""

    def __init__(self, how: Ending, reason: str = "") -> None:
        super().__init__(reason or how)
        self.how = how


class _End(asyncio.Protocol):
    """One of a relayed connection's two sockets; it hands everything to its pipe.

    An accepted client's end reads nothing until its pipe exists (the server
    side is open and the policy has spoken); what arrives before is kept.
    """

    def __init__(
        self,
        on_connect: Callable[[_End, Route, int, int], None] | None = None,
        *args: object,
    ) -> None:
        self._on_connect = on_connect
        self._args = args
        self.transport = cast(asyncio.Transport, None)
        self.pipe: _Pipe | None = None
        self.from_client = on_connect is not None
        self.eof = False
        self.lost = False  # the socket is gone ...
        self.error: Exception | None = None  # ... with this error (None: closed)
        self.early: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        if self._on_connect is not None:
            self.transport.pause_reading()
            route, port, exchange_port = self._args
            self._on_connect(self, cast(Route, route), cast(int, port), cast(int, exchange_port))

    def data_received(self, data: bytes) -> None:
        if self.pipe is None:
            self.early.append(data)
        else:
            self.pipe.segment(self.from_client, data)

    def eof_received(self) -> bool:
        self.eof = True
        if self.pipe is not None:
            self.pipe.half_close(self.from_client)
        return True  # keep the socket to write the other direction

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost, self.error = True, exc
        if self.pipe is not None:
            self.pipe.lost(self.from_client, exc)

    def pause_writing(self) -> None:
        if self.pipe is not None:
            self.pipe.pause()

    def resume_writing(self) -> None:
        if self.pipe is not None:
            self.pipe.resume()


class _Pipe:
    """Both directions of one relayed connection."""

    def __init__(
        self,
        client: _End,
        server: _End,
        inspector: Inspector | None,
        syslog: SyslogSink | None,
        limits: RelayLimits,
        entry: ConnEntry,
        tap: Tap,
        on_end: Callable[[_Pipe], None],
    ) -> None:
        self.client, self.server = client, server
        self.entry = entry
        self.tap = tap
        self.reason = asa_syslog.TEARDOWN_CLEARED  # until the connection says how it ended
        self.inspector = inspector
        self.syslog = syslog
        self.limits = limits
        self._on_end = on_end
        self.ended = False
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._last = loop.time()
        self._half_closed = False
        self._blocked = 0  # sides whose unsent bytes are above the high-water mark
        self._timer: asyncio.TimerHandle | None = None
        for end in (client, server):
            with contextlib.suppress(Exception):
                end.transport.set_write_buffer_limits(high=limits.write_high_water)

    def start(self) -> None:
        """Attach both ends, pass on what the client sent meanwhile, and start reading."""
        client, server = self.client, self.server
        client.pipe = server.pipe = self
        self._timer = self._loop.call_later(self.limits.idle_timeout, self._check_idle)
        for end in (server, client):
            for data in end.early:
                self.segment(end.from_client, data)
            end.early.clear()
            if end.lost:
                self.lost(end.from_client, end.error)
            elif end.eof:
                self.half_close(end.from_client)
        if not self.ended:
            with contextlib.suppress(Exception):
                client.transport.resume_reading()

    def segment(self, from_client: bool, data: bytes) -> None:
        """One read from either side: through the engine, then on."""
        if self.ended:
            return
        self._last = self._loop.time()
        entry, tap = self.entry, self.tap
        entry.bytes += len(data)
        entry.last = tap.runtime.clock()
        if from_client:
            entry.client_data = True
        else:
            entry.server_data = True
        captures = tap.runtime.captures
        if captures:
            tap.arrived(from_client, data)
        inspector = self.inspector
        if inspector is None:
            (self.server if from_client else self.client).transport.write(data)
            if captures:
                tap.left(from_client, data)
            return
        actions = inspector.feed_client(data) if from_client else inspector.feed_server(data)
        try:
            self._carry_out(actions)
        except _Ended as ended:
            self.end(ended.how)

    def _carry_out(self, actions: list[Action]) -> None:
        """Do what the engine said, in its order."""
        captures = self.tap.runtime.captures
        for action in actions:
            if isinstance(action, ToServer):
                self.server.transport.write(action.data)
                if captures:
                    self.tap.left(True, action.data)
            elif isinstance(action, ToClient):
                self.client.transport.write(action.data)
                if captures:
                    self.tap.left(False, action.data)
            elif isinstance(action, Syslog):
                write_syslog(self.syslog, action.message)
            elif isinstance(action, DropConnection):
                raise _Ended("drop", action.reason)
            elif isinstance(action, ResetConnection):
                raise _Ended("reset", action.reason)

    def half_close(self, from_client: bool) -> None:
        """A FIN from one side goes on to the other; both FINs end the connection."""
        if self.ended:
            return
        self._half_closed = True
        other = self.server if from_client else self.client
        with contextlib.suppress(OSError, RuntimeError):
            if other.transport.can_write_eof():
                other.transport.write_eof()
        if self.client.eof and self.server.eof:
            self.end(None)

    def lost(self, from_client: bool, exc: Exception | None) -> None:
        """One socket is gone: a reset (or a failed write) resets the other side too."""
        if self.ended:
            return
        if exc is None:
            self.end(None)
            return
        self.end("error", reset_by=self.tap.interfaces[0 if from_client else 1])

    def pause(self) -> None:
        self._blocked += 1
        if self._blocked == 1:
            self._reading(False)

    def resume(self) -> None:
        self._blocked = max(0, self._blocked - 1)
        if self._blocked == 0:
            self._reading(True)

    def _reading(self, on: bool) -> None:
        for end in (self.client, self.server):
            if end.eof or end.lost:
                continue  # a side that sent its FIN has nothing more to read
            with contextlib.suppress(Exception):
                if on:
                    end.transport.resume_reading()
                else:
                    end.transport.pause_reading()

    def _check_idle(self) -> None:
        limits = self.limits
        limit = limits.half_closed_timeout if self._half_closed else limits.idle_timeout
        remaining = self._last + limit - self._loop.time()
        if remaining <= 0:
            self.end("idle")
            return
        # Waking up at least every half-closed period lets a FIN on the other side
        # shorten this side's timeout.
        wait = min(remaining, limits.half_closed_timeout)
        self._timer = self._loop.call_later(wait, self._check_idle)

    def end(self, how: Ending | None, reason: str | None = None, *, reset_by: str = "") -> None:
        """End the connection once: FINs after what is queued, or resets both ways."""
        if self.ended:
            return
        self.ended = True
        if self._timer is not None:
            self._timer.cancel()
        self.reason = reason if reason is not None else _teardown_reason(how, reset_by)
        if how in ("reset", "error"):
            # A reset on one side (or the inspection's ``reset``) resets both,
            # as the RST passes through the firewall.
            _reset(self.client.transport)
            _reset(self.server.transport)
        else:
            # Normal end, drop-connection, idle timeout: FIN after what is already queued.
            for end in (self.client, self.server):
                with contextlib.suppress(Exception):
                    end.transport.close()
        self._on_end(self)


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


def _reset(transport: asyncio.Transport) -> None:
    """Close with a TCP reset: SO_LINGER 0 makes close() send RST instead of FIN."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        transport.abort()
