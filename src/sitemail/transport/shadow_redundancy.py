"""The shadow redundancy heartbeat of a 2010 hub (Exchange 2010, "Understanding Shadow
Redundancy"; "Configure Shadow Redundancy", dd351046(v=exchg.140)).

For every next hop we hold shadow copies for, once per
ShadowHeartbeatTimeoutInterval: connect as for delivery (TLS, Exchange
authentication), ``XSHADOW`` (its answer is the hop's shadow id) and
``XQDISCARD`` (the copies it is done with).  Then, by :func:`judge`:

- the answer's discard ids drop those copies;
- a shadow id other than the one a copy was taken under means the hop came
  back with a new queue database: those copies are resubmitted (routed
  again from Submission; the mailbox store's duplicate detection absorbs a
  copy that had in fact been delivered);
- ShadowHeartbeatRetryCount heartbeats missed in a row mean the hop is lost:
  all its copies are resubmitted (so a message waits at most about
  interval x count, as the 2010 documentation says).

Delivery sessions ask XQDISCARD too, after their batch (the hop answers what
it finished meanwhile), so busy links empty their shadow queues without
waiting for the heartbeat.  Copies older than ShadowMessageAutoDiscardInterval
are dropped.  Every setting is read live from Set-TransportConfig.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from sitemail.mailflow.smtp_sender import Heartbeat, NextHopConnection
from sitemail.org.model import Organization
from sitemail.protocols.smtp.shadow import MAX_DISCARD_IDS
from sitemail.transport.queue import QueueStore, ShadowPeer

log = logging.getLogger("sitemail.transport.shadow")

#: How often the loop looks at its shadow queues (each peer still waits its interval).
CHECK_INTERVAL = 1.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one heartbeat (or its absence) means for one next hop's shadow copies."""

    discard: tuple[int, ...] = ()  # remote ids whose copies go, under ``shadow_id``
    shadow_id: str | None = None  # the hop's current shadow id (None: no answer)
    resubmit: bool = False  # resubmit copies not taken under ``shadow_id`` (all if None)
    misses: int = 0  # heartbeats missed in a row after this one
    again_soon: bool = False  # more discards are waiting: ask again without the interval


def judge(peer: ShadowPeer, answer: Heartbeat | None, misses: int, retry_count: int) -> Verdict:
    """The pure decision after a heartbeat to ``peer`` (None: it did not answer)."""
    if answer is None:
        missed = misses + 1
        if missed >= retry_count:
            return Verdict(resubmit=True, misses=0)
        return Verdict(misses=missed)
    stale = bool(peer.shadow_ids - {answer.shadow_id})
    return Verdict(
        discard=tuple(answer.discards),
        shadow_id=answer.shadow_id,
        resubmit=stale,
        again_soon=len(answer.discards) >= MAX_DISCARD_IDS,
    )


#: Makes the connection for a heartbeat to a next hop (FQDN) or None when it is unknown.
ConnectionFactory = Callable[[str], NextHopConnection | None]


class ShadowHeartbeat:
    """The heartbeat loop's step (run by the pipeline's :class:`WorkLoops`)."""

    def __init__(
        self,
        store: QueueStore,
        organization: Callable[[], Organization],
        connect: ConnectionFactory,
    ) -> None:
        self.store = store
        self.organization = organization
        self.connect = connect
        self._misses: dict[str, int] = {}
        self._next: dict[str, float] = {}  # peer -> monotonic time of its next heartbeat
        self._last_check = -CHECK_INTERVAL

    async def step(self) -> bool:
        now = time.monotonic()
        if now - self._last_check < CHECK_INTERVAL:
            return False
        self._last_check = now
        org = self.organization()
        await asyncio.to_thread(
            self.store.discard_expired_shadows, org.shadow_message_auto_discard_interval
        )
        peers = await asyncio.to_thread(self.store.shadow_peers)
        interval = org.shadow_heartbeat_timeout_interval.total_seconds()
        for peer in peers:
            due = self._next.setdefault(peer.server, now + interval)
            if due > now:
                continue
            answer = await self._ask(peer.server)
            verdict = judge(
                peer, answer, self._misses.get(peer.server, 0), org.shadow_heartbeat_retry_count
            )
            await self.apply(peer.server, verdict)
            self._next[peer.server] = now if verdict.again_soon else now + interval
        known = {p.server for p in peers}
        for gone in set(self._next) - known:
            self._next.pop(gone, None)
            self._misses.pop(gone, None)
        return False

    async def apply(self, server: str, verdict: Verdict) -> None:
        """Carry out a verdict on the store (also used for a delivery session's answer)."""
        self._misses[server] = verdict.misses
        if verdict.shadow_id is not None and verdict.discard:
            await asyncio.to_thread(
                self.store.discard_shadows, server, verdict.shadow_id, list(verdict.discard)
            )
        if verdict.resubmit:
            count = await asyncio.to_thread(
                self.store.resubmit_shadows, server, keep_shadow_id=verdict.shadow_id
            )
            why = "lost its queue" if verdict.shadow_id else "missed its heartbeats"
            log.warning("%s %s: %d shadow copies resubmitted", server, why, count)

    async def _ask(self, server: str) -> Heartbeat | None:
        connection = self.connect(server)
        if connection is None:
            return None
        try:
            return await connection.heartbeat(MAX_DISCARD_IDS)
        finally:
            await connection.close()
