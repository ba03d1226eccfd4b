"""Hub-to-hub sessions kept between batches and closed when idle (issue 13).

Against :class:`tests.doubles.smtp_peer.Peer`: two batches for the same next hop
within the idle time go over one connection (one X-ANONYMOUSTLS and one Exchange
authentication); a session left idle says QUIT after the idle time; a session the
peer dropped while it waited is not handed out, and the next batch opens a new one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from tests.doubles.smtp_peer import Peer
from tests.integration.smtp_sender_support import (
    HUB_A,
    MESSAGE,
    SENDER_IP,
    body_of,
    hub_settings,
    message,
    organization_pki,
    run,
)

from sitemail.mailflow.next_hop_pool import NextHopPool
from sitemail.mailflow.outbound import RecipientStatus
from sitemail.mailflow.smtp_sender import NextHopConnection
from sitemail.org.pki import OrganizationPki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> OrganizationPki:
    return organization_pki(tmp_path_factory.mktemp("pki"))


def body(n: int) -> bytes:
    return MESSAGE.replace(b"Subject: hello", f"Subject: note {n}".encode())


async def batch(
    pool: NextHopPool, peer: Peer, pki: OrganizationPki, numbers: range
) -> NextHopConnection:
    """One worker's batch, as the pipeline sends it: a kept session or a new one, back
    to the pool at the end."""
    connection = pool.take("hop") or NextHopConnection(
        [peer.target], hub_settings(pki), local_address=SENDER_IP
    )
    for n in numbers:
        result = await connection.send(message(), body_of(body(n)))
        assert result.recipients[0].status is RecipientStatus.DELIVERED
    pool.give_back("hop", connection)
    return connection


def verbs(peer: Peer) -> list[str]:
    return [c.split(" ", 1)[0].upper() for c in peer.seen.commands]


def test_batches_within_the_idle_time_share_one_session_which_quits_when_idle(
    pki: OrganizationPki, tmp_path: Path
) -> None:
    async def scenario() -> tuple[Peer, int, int]:
        pool = NextHopPool(idle_seconds=0.5)
        async with Peer(HUB_A, pki) as peer:
            first = await batch(pool, peer, pki, range(0, 2))
            second = await batch(pool, peer, pki, range(2, 4))
            assert second is first and len(pool) == 1
            assert "QUIT" not in verbs(peer)  # waiting for the next batch
            await asyncio.sleep(1.0)
            waited = len(pool)
            await pool.close()
            return peer, waited, len(peer.seen.client_ips)

    peer, waited, connections = run(scenario())
    assert peer.seen.messages == [body(n) for n in range(4)]
    assert connections == 1 and peer.seen.authenticated == ["EX01"]
    assert verbs(peer).count("X-ANONYMOUSTLS") == 1
    assert waited == 0 and verbs(peer)[-1] == "QUIT"  # the idle session said goodbye


def test_a_session_the_peer_dropped_while_idle_is_replaced_for_the_next_batch(
    pki: OrganizationPki, tmp_path: Path
) -> None:
    async def scenario() -> Peer:
        pool = NextHopPool(idle_seconds=30)
        # The peer cuts the connection at the RSET before the second message: the
        # session comes back broken, is not kept, and the next batch opens its own.
        async with Peer(HUB_A, pki, drop_after="RSET") as peer:
            await batch(pool, peer, pki, range(0, 2))
            await batch(pool, peer, pki, range(2, 3))
            await pool.close()
            return peer

    peer = run(scenario())
    assert peer.seen.messages == [body(n) for n in range(3)]
    assert len(peer.seen.client_ips) >= 2
