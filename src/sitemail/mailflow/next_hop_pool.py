"""Sessions to next hops kept open between batches, closed when idle.

A hub sends a delivery queue's mail as batches: what the queue holds when a
worker takes it goes over one session (:class:`~.smtp_sender.NextHopConnection`,
RSET between messages).  Under a steady flow the queue empties and fills again
every few milliseconds, and a session per batch meant a TCP connection through
both firewalls, a TLS handshake with certificates on both sides and an
Exchange authentication per batch (about thirty messages): on the path NY ->
FL a seventh of the receiving worker's time was TLS handshakes.  Exchange keeps
a queue's connection while mail keeps coming; this pool keeps a session that
ended its batch in good order for :data:`IDLE_SECONDS` and gives it to the
next batch for the same next hop with the same settings, then says QUIT.

Only sessions that are open and between transactions come back; a session
the peer dropped while it waited is replaced by :meth:`NextHopConnection.send`
for the message at hand, as for any reused session.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Hashable

from sitemail.mailflow.smtp_sender import NextHopConnection

__all__ = ["IDLE_SECONDS", "MAX_IDLE_PER_HOP", "NextHopPool"]

#: How long a session waits for the next batch (sitemail's choice, after Postfix's
#: connection cache, smtp_connection_cache_time_limit = 2s; Exchange's own idle time
#: on the sending side is not documented).  Far below the receiver's
#: ConnectionInactivityTimeout (5 minutes on a Hub) and any firewall's idle timeout.
IDLE_SECONDS = 2.0
#: Idle sessions kept per next hop and settings (MaxPerDomainOutboundConnections' 20).
MAX_IDLE_PER_HOP = 20


class NextHopPool:
    """Idle :class:`NextHopConnection` objects by key (next hop and settings)."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS, per_hop: int = MAX_IDLE_PER_HOP) -> None:
        self.idle_seconds = idle_seconds
        self.per_hop = per_hop
        self._idle: dict[Hashable, list[tuple[int, NextHopConnection]]] = {}
        self._tokens = itertools.count()
        self._closing: set[asyncio.Task[None]] = set()

    def take(self, key: Hashable) -> NextHopConnection | None:
        """The session returned last under ``key`` that is still open, if any."""
        waiting = self._idle.get(key)
        while waiting:
            _, connection = waiting.pop()
            if connection.is_open:
                if not waiting:
                    del self._idle[key]
                return connection
            self._close_soon(connection)
        self._idle.pop(key, None)
        return None

    def give_back(self, key: Hashable, connection: NextHopConnection) -> None:
        """Keep ``connection`` for the next batch under ``key``; QUIT after the idle time."""
        waiting = self._idle.setdefault(key, [])
        if not connection.is_open or len(waiting) >= self.per_hop:
            self._close_soon(connection)
            return
        token = next(self._tokens)
        waiting.append((token, connection))
        asyncio.get_running_loop().call_later(self.idle_seconds, self._expire, key, token)

    def __len__(self) -> int:
        return sum(len(waiting) for waiting in self._idle.values())

    async def close(self) -> None:
        """QUIT every idle session (the transport service stops)."""
        for waiting in self._idle.values():
            for _, connection in waiting:
                self._close_soon(connection)
        self._idle.clear()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def _expire(self, key: Hashable, token: int) -> None:
        waiting = self._idle.get(key, [])
        for index, (kept, connection) in enumerate(waiting):
            if kept == token:  # still waiting since it came back (not taken meanwhile)
                del waiting[index]
                if not waiting:
                    del self._idle[key]
                self._close_soon(connection)
                return

    def _close_soon(self, connection: NextHopConnection) -> None:
        task = asyncio.get_running_loop().create_task(connection.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
