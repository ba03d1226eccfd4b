"""The hub's SMTP listeners: one socket per receive connector binding, admission, hand-off.

Admission (which connector takes a connection, its connection limits) is
decided here, in the transport process, for every connection; the session
then runs in this process (:func:`serve_connection`) or in a receive worker
(:mod:`.receive_workers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections import Counter
from collections.abc import Callable

from sitemail.lru import LruCache
from sitemail.org.model import ReceiveConnector
from sitemail.protocols.smtp import Reply, replies
from sitemail.server.line_connection import LineConnection, adopt
from sitemail.server.line_session import run_session
from sitemail.server.listening import listening_socket
from sitemail.transport.connector_selection import select_connector
from sitemail.transport.receive_config import ReceiveConfig, ReceiveEnvironment
from sitemail.transport.receive_session import ReceiveSession

log = logging.getLogger("sitemail.transport.receive")

ANY = "0.0.0.0"

#: Hands an admitted connection to whoever serves it: this process or a receive worker.
#: ``release`` must be called once when the session is over (connection counts).
Dispatch = Callable[[socket.socket, ReceiveConnector, Callable[[], None]], None]

# How many connections one readiness event may accept before others get the loop.
ACCEPT_BURST = 64
# Clients whose connector choice is remembered (per configuration).
CHOSEN_CONNECTORS = 4096


class ReceiveListeners:
    """Binds what the enabled connectors ask for, admits connections, follows changes.

    Admission happens here, in the transport process, for every connection:
    the connector that takes it (spec 1.6), MaxInboundConnection and
    MaxInboundConnectionPerSource, so the counts are the server's whatever
    process then serves the session.  ``dispatch`` decides that: by default
    a session of this process; :mod:`.receive_workers` hands the socket to a
    receive worker process instead.
    """

    def __init__(
        self, env: ReceiveEnvironment, config: ReceiveConfig, dispatch: Dispatch | None = None
    ) -> None:
        self.env = env
        self.config = config
        self.dispatch: Dispatch = dispatch or self.serve_here
        self._sockets: dict[tuple[str, int], socket.socket] = {}
        self._sessions: set[asyncio.Task[None]] = set()
        self.connections: Counter[str] = Counter()  # per connector identity
        self.per_source: Counter[tuple[str, str]] = Counter()  # (connector, remote ip)
        # (local ip, Exchange port, remote ip) -> connector, for the connectors it was chosen
        # among: a client connecting again is not matched against every connector again.
        self._chosen: LruCache[tuple[str, int, str], ReceiveConnector] = LruCache(CHOSEN_CONNECTORS)
        self._chosen_among: list[ReceiveConnector] | None = None

    def endpoints(self) -> set[tuple[str, int]]:
        """The (address, Exchange port) pairs to listen on."""
        out: set[tuple[str, int]] = set()
        addresses = self.config.server.addresses
        for c in self.config.connectors:
            if not c.enabled:
                continue
            for host, port in c.ports:
                if host == ANY:
                    out.update((a, port) for a in addresses)
                elif host in addresses:
                    out.add((host, port))
                else:
                    log.warning(
                        "connector %s: binding %s:%d is not an address of %s; not listening",
                        c.identity,
                        host,
                        port,
                        self.config.server.name,
                    )
        return out

    async def apply(self, config: ReceiveConfig) -> None:
        """Take a new configuration: new bindings listen, removed ones stop (spec 1.7)."""
        self.config = config
        loop = asyncio.get_running_loop()
        wanted = self.endpoints()
        for key in list(self._sockets):
            if key not in wanted:
                sock = self._sockets.pop(key)
                loop.remove_reader(sock.fileno())
                sock.close()
        for addr, port in sorted(wanted - set(self._sockets)):
            bound = port + self.env.port_offset
            sock = _listening_socket(addr, bound)
            self._sockets[(addr, port)] = sock
            loop.add_reader(sock.fileno(), self._on_readable, sock, (addr, bound))
            log.info("listening on %s:%d", addr, bound)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for sock in self._sockets.values():
            loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets.clear()
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)

    def _on_readable(self, listener: socket.socket, local: tuple[str, int]) -> None:
        # Every listener is bound to one address (0.0.0.0 bindings are expanded to
        # the server's addresses), so the local end is the listener's own.
        for _ in range(ACCEPT_BURST):
            try:
                conn, remote = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of descriptors or the like: the connection waits in the backlog.
                log.warning("cannot accept on %s: %s", listener.getsockname(), exc)
                return
            try:
                self._admit(conn, local, remote)
            except OSError as exc:
                log.debug("connection lost at admission: %s", exc)
                conn.close()

    def _admit(self, conn: socket.socket, local: tuple[str, int], remote: tuple[str, int]) -> None:
        conn.setblocking(False)
        connector = self._connector(local[0], local[1] - self.env.port_offset, remote[0])
        if connector is None:
            # Spec 1.6: a connection no connector takes is not serviced; no banner.
            conn.close()
            return
        key = connector.identity
        src = (key, remote[0])
        limit = connector.max_inbound_connection
        per_source = connector.max_inbound_connection_per_source
        too_many: Reply | None = None
        if limit is not None and self.connections[key] >= limit:
            too_many = replies.TOO_MANY_SERVER_CONNECTIONS
        elif per_source is not None and self.per_source[src] >= per_source:
            too_many = replies.TOO_MANY_CONNECTIONS_PER_SOURCE
        if too_many is not None:
            # A fresh socket's send buffer takes one line without blocking.
            with contextlib.suppress(OSError):
                conn.send(too_many.to_bytes())
            conn.close()
            return
        self.connections[key] += 1
        self.per_source[src] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.connections[key] -= 1
                self.per_source[src] -= 1

        self.dispatch(conn, connector, release)

    def _connector(self, local_ip: str, port: int, remote_ip: str) -> ReceiveConnector | None:
        """:func:`select_connector`, remembered until the connectors change."""
        connectors = self.config.connectors
        if connectors is not self._chosen_among:
            self._chosen = LruCache(CHOSEN_CONNECTORS)
            self._chosen_among = connectors
        key = (local_ip, port, remote_ip)
        connector = self._chosen.get(key)
        if connector is None:
            connector = select_connector(connectors, local_ip, port, remote_ip)
            if connector is not None:
                self._chosen.put(key, connector)
        return connector

    def serve_here(
        self, conn: socket.socket, connector: ReceiveConnector, release: Callable[[], None]
    ) -> None:
        task = asyncio.ensure_future(self._serve(conn, connector, release))
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _serve(
        self, conn: socket.socket, connector: ReceiveConnector, release: Callable[[], None]
    ) -> None:
        try:
            await serve_connection(self.env, self.config, connector, conn)
        finally:
            release()


def _listening_socket(address: str, port: int) -> socket.socket:
    # Receive connector bindings are IPv4 (parse_binding refuses anything else).
    return listening_socket(address, port, 511, blocking=False)


async def serve_connection(
    env: ReceiveEnvironment, config: ReceiveConfig, connector: ReceiveConnector, sock: socket.socket
) -> None:
    """One SMTP session on an admitted connection, in this process, to its end."""
    conn: LineConnection | None = None
    try:
        conn = await adopt(sock)
        await run_session(conn, ReceiveSession(env, config, connector, conn))
    except (ConnectionError, ssl.SSLError, TimeoutError) as exc:
        log.debug("session ended: %s", exc)
    finally:
        if conn is not None:
            conn.close()
        else:
            sock.close()
