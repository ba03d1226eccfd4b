"""Several messages to one next hop over one SMTP session, RSET between them (issue 13).

Against :class:`tests.doubles.smtp_peer.Peer` on loopback sockets: one
X-ANONYMOUSTLS and one Exchange authentication for a whole batch, each message
whole and once, one SmtpSend session in the log; a session the peer dropped
while it was reused is replaced for the message at hand.
"""

from __future__ import annotations

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
