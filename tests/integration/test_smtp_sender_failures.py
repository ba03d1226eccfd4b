"""The hub sender when a target fails it: connect, TLS, silence, cuts, stalls, and recipients.

Each fault is one of :class:`tests.doubles.smtp_peer.Peer`'s parameters: the
sender fails over to the next target, or turns what happened into the reply
and LastError Exchange shows.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.doubles.smtp_peer import Peer, default_connector
from tests.integration.smtp_sender_support import (
    HUB_A,
    HUB_B,
    NOBODY,
    hub_settings,
    message,
    organization_pki,
    run,
    send,
    sessions,
)

from sitemail.mailflow.outbound import (
    BodyReadError,
    RecipientStatus,
    SendResult,
    Target,
    file_body,
    send_session_logs,
)
from sitemail.mailflow.protocol_log import ProtocolLog
from sitemail.mailflow.smtp_sender import send_message
from sitemail.org.pki import OrganizationPki
from sitemail.protocols.smtp import Reply, replies


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> OrganizationPki:
    return organization_pki(tmp_path_factory.mktemp("pki"))


# --- failures of one target ----------------------------------------------------------------------


def test_refused_connection_fails_over_to_the_next_hub(
    pki: OrganizationPki, tmp_path: Path
) -> None:
    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_B, pki, name="EX03") as peer:
            dead = Target("EX02.contoso.com", NOBODY, peer.port)
            return await send([dead, peer.target], hub_settings(pki), log_dir=tmp_path), peer

    result, peer = run(scenario())
    assert result.last_error is None
    assert result.target == peer.target
    assert [(t.target.address, t.failed_over) for t in result.attempts] == [
        (NOBODY, True),
        (HUB_B, False),
    ]
    assert str(result.attempts[0].reply) == "421 4.2.1 Unable to connect"
    assert result.delivered and peer.seen.authenticated == ["EX01"]
    refused = sessions(tmp_path)[result.attempts[0].session_id]
    assert refused[0] == ("*", "", "attempting to connect")
    assert refused[-1] == ("*", "", "421 4.2.1 Unable to connect")
    assert not any(e in "+-" for e, _, _ in refused)


def test_nobody_listening_anywhere_gives_the_connect_last_error(pki: OrganizationPki) -> None:
    result = run(send([Target("EX02.contoso.com", NOBODY, 2525)], hub_settings(pki)))
    assert result.last_error == (
        '451 4.4.0 Primary target IP address responded with: "421 4.2.1 Unable to connect."'
        " Attempted failover to alternate host, but that did not succeed. Either there are no"
        " alternate hosts, or delivery failed to all alternate hosts."
    )


def test_failed_tls_handshake(pki: OrganizationPki, tmp_path: Path) -> None:
    async def scenario() -> SendResult:
        async with Peer(HUB_A, pki, tls="garbage") as peer:
            return await send([peer.target], hub_settings(pki), log_dir=tmp_path)

    result = run(scenario())
    assert str(result.attempts[0].reply) == "421 4.4.1 Connection timed out"
    rows = next(iter(sessions(tmp_path).values()))
    info = [c for e, _, c in rows if e == "*"]
    assert any(c.startswith("TLS negotiation failed with error ") for c in info)
    assert rows[-1] == ("-", "", "Local")
    assert (">", "QUIT", "") not in rows  # nothing can be said over a broken TLS layer


def test_silent_peer_times_out(pki: OrganizationPki) -> None:
    async def scenario() -> SendResult:
        async with Peer(HUB_A, pki, silent=True) as peer:
            return await send([peer.target], hub_settings(pki, reply_timeout=0.3))

    result = run(scenario())
    assert str(result.attempts[0].reply) == "421 4.4.1 Connection timed out"


def test_connection_dropped_mid_session(pki: OrganizationPki) -> None:
    async def scenario() -> SendResult:
        async with Peer(HUB_A, pki, drop_after="MAIL") as peer:
            return await send([peer.target], hub_settings(pki))

    result = run(scenario())
    assert str(result.attempts[0].reply) == "421 4.4.2 Connection dropped"
    assert result.last_error is not None and '"421 4.4.2 Connection dropped."' in result.last_error


def _resetting_listener(address: str) -> tuple[socket.socket, threading.Event]:
    """A port that completes the handshake and resets each connection at once (as a firewall
    whose access list refuses it does); the event is set once a reset has gone out."""
    listener = socket.create_server((address, 0))
    reset = threading.Event()

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            reset.set()

    threading.Thread(target=serve, daemon=True).start()
    return listener, reset


@pytest.mark.parametrize("reset_first", [False, True], ids=["loop-first", "reset-first"])
def test_a_reset_right_after_the_handshake_is_a_dropped_connection_either_way(
    pki: OrganizationPki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reset_first: bool
) -> None:
    listener, reset = _resetting_listener(HUB_A)
    if reset_first:
        # The sender's event loop is busy until the reset has arrived, so it learns of the
        # handshake and the reset together, from the connect (what a loaded hub meets
        # behind a firewall that resets at once).
        connect = socket.socket.connect

        def connect_then_busy(sock: socket.socket, address: Any) -> None:
            try:
                connect(sock, address)
            except BlockingIOError:
                if address[0] == HUB_A:
                    assert reset.wait(5)
                    time.sleep(0.1)  # the RST crosses loopback
                raise

        monkeypatch.setattr(socket.socket, "connect", connect_then_busy)
    with listener:
        target = Target("EX02.contoso.com", HUB_A, listener.getsockname()[1])
        result = run(send([target], hub_settings(pki), log_dir=tmp_path))
    assert reset.is_set()
    assert str(result.attempts[0].reply) == "421 4.4.2 Connection dropped"
    assert result.last_error is not None and '"421 4.4.2 Connection dropped."' in result.last_error
    rows = sessions(tmp_path)[result.attempts[0].session_id]
    assert [e for e, _, _ in rows] == ["*", "+", "*", "-"], rows
    assert rows[2][2] == "421 4.4.2 Connection dropped" and rows[3][2] == "Remote"


def test_a_peer_that_stops_reading_times_the_data_out(pki: OrganizationPki) -> None:
    big = b"x" * 998 + b"\r\n"

    async def scenario() -> SendResult:
        async with Peer(
            HUB_A, pki, connector=default_connector(chunking_enabled=False), stall_after_354=True
        ) as peer:
            settings = hub_settings(pki, data_timeout=0.3)
            # 64 MB: more than loopback socket buffers hold, produced lazily.
            body = lambda: (big for _ in range(64 * 1024))  # noqa: E731
            return await send([peer.target], settings, message(size=None), body)

    result = run(scenario())
    assert str(result.attempts[0].reply) == "421 4.4.1 Connection timed out"


def test_an_unreadable_body_is_a_local_error(pki: OrganizationPki, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Peer(HUB_A, pki) as peer:
            await send_message(
                [peer.target],
                message(),
                file_body(tmp_path / "gone.eml"),
                hub_settings(pki),
                session_logs=send_session_logs(ProtocolLog.send(tmp_path / "log")),
            )

    with pytest.raises(BodyReadError, match=r"gone\.eml"):
        run(scenario())
    rows = next(iter(sessions(tmp_path / "log").values()))
    assert rows[-1] == ("-", "", "Local")


# --- per-recipient results -----------------------------------------------------------------------


def test_permanent_and_transient_recipient_replies(pki: OrganizationPki) -> None:
    def rcpt(address: str) -> Reply:
        if address.startswith("nobody"):
            return replies.USER_UNKNOWN
        if address.startswith("later"):
            return replies.TOO_MANY_RECIPIENTS
        return replies.RECIPIENT_OK

    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki, rcpt=rcpt) as peer:
            msg = message("bob@fabrikam.com", "nobody@fabrikam.com", "later@fabrikam.com")
            return await send([peer.target], hub_settings(pki), msg), peer

    result, peer = run(scenario())
    assert result.last_error is None
    assert [(r.address, r.status, str(r.reply)) for r in result.recipients] == [
        (
            "bob@fabrikam.com",
            RecipientStatus.DELIVERED,
            "250 2.6.0 <1@EX01.contoso.com> [InternalId=1] Queued mail for delivery",
        ),
        ("nobody@fabrikam.com", RecipientStatus.FAILED, "550 5.1.1 User unknown"),
        ("later@fabrikam.com", RecipientStatus.DEFERRED, "452 4.5.3 Too many recipients"),
    ]
    assert result.failed[0].ndr_diagnostic == "Remote Server returned '550 5.1.1 User unknown'"
    assert len(peer.seen.messages) == 1


def test_no_recipient_accepted_sends_no_message(pki: OrganizationPki) -> None:
    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki, rcpt=lambda _a: replies.USER_UNKNOWN) as peer:
            return await send([peer.target], hub_settings(pki)), peer

    result, peer = run(scenario())
    assert [r.status for r in result.recipients] == [RecipientStatus.FAILED]
    assert peer.seen.messages == []
    assert not any(c.startswith(("BDAT", "DATA")) for c in peer.seen.commands)
