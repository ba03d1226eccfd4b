"""Several messages to one next hop over one SMTP session, RSET between them (issue 13).

Against :class:`tests.doubles.smtp_peer.Peer` on loopback sockets: one
X-ANONYMOUSTLS and one Exchange authentication for a whole batch, each message
whole and once, one SmtpSend session in the log; a session the peer dropped
while it was reused is replaced for the message at hand.
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
    sessions,
)

from sitemail.mailflow.next_hop_pool import NextHopPool
from sitemail.mailflow.outbound import RecipientStatus, SendResult, send_session_logs
from sitemail.mailflow.protocol_log import ProtocolLog, ProtocolLoggingLevel
from sitemail.mailflow.smtp_sender import NextHopConnection
from sitemail.org.pki import OrganizationPki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> OrganizationPki:
    return organization_pki(tmp_path_factory.mktemp("pki"))


def body(n: int) -> bytes:
    return MESSAGE.replace(b"Subject: hello", f"Subject: note {n}".encode())


async def send_three(peer: Peer, pki: OrganizationPki, log_dir: Path) -> list[SendResult]:
    protocol_log = ProtocolLog.send(log_dir)
    connection = NextHopConnection(
        [peer.target],
        hub_settings(pki),
        local_address=SENDER_IP,
        session_logs=send_session_logs(protocol_log, level=ProtocolLoggingLevel.VERBOSE),
    )
    try:
        return [await connection.send(message(), body_of(body(n))) for n in range(3)]
    finally:
        await connection.close()
        protocol_log.close()


def test_a_batch_goes_over_one_authenticated_session_with_rset_between(
    pki: OrganizationPki, tmp_path: Path
) -> None:
    async def scenario() -> tuple[list[SendResult], Peer]:
        async with Peer(HUB_A, pki) as peer:
            return await send_three(peer, pki, tmp_path), peer

    results, peer = run(scenario())
    assert [r.recipients[0].status for r in results] == [RecipientStatus.DELIVERED] * 3
    assert peer.seen.messages == [body(n) for n in range(3)]
    assert peer.seen.client_ips == [SENDER_IP]  # one connection
    assert peer.seen.authenticated == ["EX01"]  # one Exchange authentication
    verbs = [c.split(" ", 1)[0].upper() for c in peer.seen.commands]
    assert verbs.count("RSET") == 2 and verbs.count("X-ANONYMOUSTLS") == 1
    # Each RSET follows the end of a message (BDAT ... LAST) and precedes the next MAIL.
    assert [verbs[i - 1] for i, v in enumerate(verbs) if v == "RSET"] == ["BDAT", "BDAT"]
    assert verbs[-1] == "QUIT"
    (session,) = sessions(tmp_path).values()
    sent = [data for event, data, _ in session if event == ">"]
    assert sum(d.startswith("MAIL FROM:") for d in sent) == 3
    assert [d for d in sent if d == "RSET"] == ["RSET", "RSET"]
    assert session[-1][0] == "-"  # one disconnection, at the end
    assert len({r.attempts[0].session_id for r in results}) == 1


def test_a_reused_session_the_peer_dropped_is_replaced_for_the_message(
    pki: OrganizationPki, tmp_path: Path
) -> None:
    async def scenario() -> tuple[list[SendResult], Peer]:
        # The peer cuts the connection at the first RSET, as a server closing an idle
        # session would: the second message goes over a new session, and is sent once.
        async with Peer(HUB_A, pki, drop_after="RSET") as peer:
            return await send_three(peer, pki, tmp_path), peer

    results, peer = run(scenario())
    assert [r.recipients[0].status for r in results] == [RecipientStatus.DELIVERED] * 3
    assert peer.seen.messages == [body(n) for n in range(3)]
    assert len(peer.seen.client_ips) == 3  # each RSET cut its session
    assert len(sessions(tmp_path)) == 3


# ----------------------------------------------- sessions kept between batches


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
            first = await batch(pool, peer, pki, range(2))
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
            await batch(pool, peer, pki, range(2))
            await batch(pool, peer, pki, range(2, 3))
            await pool.close()
            return peer

    peer = run(scenario())
    assert peer.seen.messages == [body(n) for n in range(3)]
    assert len(peer.seen.client_ips) >= 2
