"""What HTTP.sys does in front of IIS and aiohttp does not: a deadline for request headers, and
a bound on the connections of one client address.

aiohttp closes a keep-alive connection that stays idle between requests,
but it gives a client all the time it wants to send a request's headers,
and none to a connection that sends nothing at all: a client that sends a
header line every few minutes holds a connection for ever (slowloris).
HTTP.sys, under Exchange's IIS, closes a connection whose request headers
have not all arrived within its ``HeaderWait`` time (120 seconds unless the
registry says otherwise).  :class:`ConnectionGuard` does the same: from the
moment a connection opens, or the first octet of its next request arrives,
the request's headers must be complete (the application sees the request)
within :data:`HEADER_WAIT` seconds, or the connection is closed.

It also refuses a new connection from an address that holds
:data:`MAX_CONNECTIONS_PER_ADDRESS` already (HTTP.sys has no such bound; the
Dynamic IP Restrictions module of IIS does it by requests).  An office behind
one NAT address opens a few connections per browser and one per phone
(ActiveSync's long poll), so the bound is high; the organization's own
servers (a Client Access server proxying its users) are not held to it.
With W3SVC worker processes the count is the server's, not a worker's: the
workers keep it in a table they share (:class:`SharedAddressCounts`), each
under its own process id, so that a worker's share can be dropped when it
dies.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, cast

from aiohttp import web

__all__ = [
    "HEADER_WAIT",
    "MAX_CONNECTIONS_PER_ADDRESS",
    "AddressCounts",
    "ConnectionGuard",
    "SharedAddressCounts",
]

log = logging.getLogger("sitemail.w3svc.guard")

#: HTTP.sys's HeaderWait default, in seconds (unverified for Exchange 2010's servers,
#: where the registry may change it): the time a request's headers may take.
HEADER_WAIT = 120.0
#: Connections one client address may hold at once (sitemail's bound).
MAX_CONNECTIONS_PER_ADDRESS = 200

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AddressCounts(Protocol):
    """The open connections of each client address."""

    def take(self, address: str, limit: int) -> bool:
        """Count one more for ``address`` unless it holds ``limit`` already."""
        ...

    def give_back(self, address: str) -> None: ...


class LocalAddressCounts:
    """The counts of this process alone."""

    def __init__(self) -> None:
        self.by_address: Counter[str] = Counter()

    def take(self, address: str, limit: int) -> bool:
        if self.by_address[address] >= limit:
            return False
        self.by_address[address] += 1
        return True

    def give_back(self, address: str) -> None:
        self.by_address[address] -= 1
        if self.by_address[address] <= 0:
            del self.by_address[address]


class SharedAddressCounts:
    """The counts of every W3SVC worker, in a table they share (``db``).

    Each worker counts under its process id; :meth:`forget` drops what a
    dead one held (its connections died with it).
    """

    def __init__(self, db: sqlite3.Connection, pid: int | None = None) -> None:
        self._db = db
        self._pid = os.getpid() if pid is None else pid
        db.execute(
            "CREATE TABLE IF NOT EXISTS connections (pid INTEGER, address TEXT, "
            "n INTEGER NOT NULL, PRIMARY KEY (address, pid))"
        )
        self.forget(self._pid)  # a process id used before, by a worker that died

    def take(self, address: str, limit: int) -> bool:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            (held,) = db.execute(
                "SELECT coalesce(sum(n), 0) FROM connections WHERE address = ?", (address,)
            ).fetchone()
            if held < limit:
                db.execute(
                    "INSERT INTO connections VALUES (?, ?, 1) "
                    "ON CONFLICT (address, pid) DO UPDATE SET n = n + 1",
                    (self._pid, address),
                )
        finally:
            db.execute("COMMIT")
        return bool(held < limit)

    def give_back(self, address: str) -> None:
        self._db.execute(
            "UPDATE connections SET n = n - 1 WHERE address = ? AND pid = ?", (address, self._pid)
        )
        self._db.execute(
            "DELETE FROM connections WHERE address = ? AND pid = ? AND n <= 0",
            (address, self._pid),
        )

    def forget(self, pid: int) -> None:
        self._db.execute("DELETE FROM connections WHERE pid = ?", (pid,))


class ConnectionGuard:
    """Wraps the web server's protocol factory (:meth:`wrap`); its middleware, first of the
    application's, says when a request began."""

    def __init__(
        self,
        *,
        header_wait: float = HEADER_WAIT,
        max_per_address: int = MAX_CONNECTIONS_PER_ADDRESS,
        trusted: Callable[[str], bool] = lambda _: False,
        counts: AddressCounts | None = None,
    ) -> None:
        self.header_wait = header_wait
        self.max_per_address = max_per_address
        self._trusted = trusted
        self.counts: AddressCounts = counts if counts is not None else LocalAddressCounts()
        self._open: dict[int, _Guarded] = {}  # id(transport) -> its connection
        self.closed_for_headers = 0
        self.refused = 0

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """The protocol factory to listen with, around the web server's ``factory``."""
        return lambda: _Guarded(self, factory())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        guarded = self._open.get(id(request.transport)) if request.transport else None
        if guarded is not None:
            guarded.request_began()
        try:
            return await handler(request)
        finally:
            if guarded is not None:
                guarded.request_ended()

    def _admit(self, address: str) -> bool:
        # The organization's servers are counted too, but never held to the bound.
        limit = 1 << 30 if self._trusted(address) else self.max_per_address
        if not self.counts.take(address, limit):
            self.refused += 1
            return False
        return True

    def _release(self, address: str) -> None:
        self.counts.give_back(address)


class _Guarded(asyncio.Protocol):
    """One connection: the application's protocol inside, a header timer around it."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol) -> None:
        self._guard = guard
        self._inner = inner
        self._transport: asyncio.BaseTransport | None = None
        self._address: str | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._in_request = False

    # --- asyncio.Protocol, passed on to the application's

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        if not self._guard._admit(address):
            log.warning("W3SVC: connection from %s refused: it holds too many", address)
            cast(asyncio.Transport, transport).abort()
            return
        self._transport, self._address = transport, address
        self._guard._open[id(transport)] = self
        self._arm()
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._transport is None:
            return
        if not self._in_request and self._timer is None:
            self._arm()  # the first octets of the next request: its headers are due
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._transport is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return
        self._disarm()
        self._guard._open.pop(id(self._transport), None)
        if self._address is not None:
            self._guard._release(self._address)
        self._transport = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # --- the header deadline

    def request_began(self) -> None:
        self._in_request = True
        self._disarm()

    def request_ended(self) -> None:
        self._in_request = False

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._guard.header_wait, self._headers_late)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_late(self) -> None:
        self._timer = None
        if self._transport is not None and not self._in_request:
            self._guard.closed_for_headers += 1
            log.info("W3SVC: %s sent no complete request headers in time", self._address)
            self._transport.close()

    def __getattr__(self, name: str) -> Any:
        # Anything else the transport asks of its protocol goes to the application's.
        return getattr(self._inner, name)
