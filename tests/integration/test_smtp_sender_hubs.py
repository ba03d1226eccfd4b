"""The hub sender against another hub: anonymous TLS, Exchange Server authentication, the body.

Against :class:`tests.doubles.smtp_peer.Peer` on loopback sockets, and at the
end against the product's own receive server.  What keeps Exchange Server
authentication from working (a firewall masking the EHLO reply, a receiver
without it, a refused or forged X-EXPS) fails every hub with Exchange's
LastError.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from tests.doubles.smtp_peer import BANNER, Peer, default_connector, masked_by_asa
from tests.integration.smtp_sender_support import (
    FIREWALL,
    HUB_A,
    HUB_B,
    LAST_ERROR_5_7_3,
    MESSAGE,
    ORG,
    SENDER_IP,
    body_of,
    hub_settings,
    message,
    organization_pki,
    run,
    send,
    sessions,
)

from sitemail.clock import SYSTEM_CLOCK
from sitemail.diagnose.logs import read_protocol_log
from sitemail.firewall.inspection import EsmtpInspector
from sitemail.firewall.relay import Relay, Route
from sitemail.mailflow import exchange_auth
from sitemail.mailflow.envelope import Envelope, SpoolWriter
from sitemail.mailflow.outbound import RecipientStatus, SendResult, Target, file_body
from sitemail.mailflow.protocol_log import ProtocolLog
from sitemail.mailflow.smtp_sender import send_message
from sitemail.mailflow.tls_log_text import certificate_thumbprint
from sitemail.org.defaults import default_receive_connectors
from sitemail.org.model import (
    AcceptedDomain,
    AuthMechanism,
    LoggingLevel,
    Organization,
    Server,
    ServerRole,
)
from sitemail.org.pki import CertFiles, OrganizationPki
from sitemail.org.sqlite_directory import SqliteDirectory
from sitemail.protocols.smtp import Reply, ServerConnection, replies
from sitemail.transport.receive_config import (
    ReceiveConfig,
    ReceiveEnvironment,
    ThreadedAcceptor,
    tls_contexts,
)
from sitemail.transport.receive_listeners import ReceiveListeners


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> OrganizationPki:
    return organization_pki(tmp_path_factory.mktemp("pki"))


# --- hub to hub ----------------------------------------------------------------------------------


def test_hub_to_hub_with_anonymous_tls_and_exchange_auth(
    pki: OrganizationPki, tmp_path: Path
) -> None:
    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki) as peer:
            return await send([peer.target], hub_settings(pki), log_dir=tmp_path), peer

    result, peer = run(scenario())
    assert result.last_error is None
    assert [(r.address, r.status) for r in result.recipients] == [
        ("bob@fabrikam.com", RecipientStatus.DELIVERED)
    ]
    assert str(result.final_reply) == (
        "250 2.6.0 <1@EX01.contoso.com> [InternalId=1] Queued mail for delivery"
    )
    assert result.recipients[0].reply == result.final_reply
    # The receiver recognised the sending server by its certificate and its blob.
    assert [type(p).__name__ for p in peer.seen.tls_peers] == ["ServerIdentity"]
    assert peer.seen.authenticated == ["EX01"]
    assert peer.seen.client_ips == [SENDER_IP]
    assert peer.seen.commands == [
        "EHLO EX01.contoso.com",
        "X-ANONYMOUSTLS",
        "EHLO EX01.contoso.com",
        "X-EXPS EXCHANGEAUTH SHA256 ",
        f"MAIL FROM:<alice@contoso.com> SIZE={len(MESSAGE)}",
        "RCPT TO:<bob@fabrikam.com>",
        f"BDAT {len(MESSAGE)} LAST",
        "QUIT",
    ]
    assert peer.seen.messages == [MESSAGE]

    rows = next(iter(sessions(tmp_path).values()))
    events = [(e, d, c) for e, d, c in rows if e != "<"]
    receiver_cert = x509.load_pem_x509_certificate(pki.server_files("EX02").cert.read_bytes())
    thumbprint = certificate_thumbprint(receiver_cert.public_bytes(Encoding.DER))
    assert events[:4] == [
        ("*", "", "attempting to connect"),
        ("+", "", ""),
        (">", "EHLO EX01.contoso.com", ""),
        (">", "X-ANONYMOUSTLS", ""),
    ]
    tls_row = events[4]
    assert tls_row[0] == "*" and tls_row[2].startswith("TLS protocol SP_PROT_TLS1_")
    assert "negotiation succeeded using bulk encryption algorithm CALG_AES_" in tls_row[2]
    assert events[5:] == [
        ("*", "", "Received certificate"),
        ("*", thumbprint, "Certificate thumbprint"),
        (">", "EHLO EX01.contoso.com", ""),
        (">", "X-EXPS EXCHANGEAUTH SHA256 ", ""),  # the blob is never logged
        (">", f"MAIL FROM:<alice@contoso.com> SIZE={len(MESSAGE)}", ""),
        (">", "RCPT TO:<bob@fabrikam.com>", ""),
        (">", f"BDAT {len(MESSAGE)} LAST", ""),
        (">", "QUIT", ""),
        ("-", "", "Local"),
    ]
    received = [d for e, d, _ in rows if e == "<"]
    assert received[0] == BANNER
    assert "250-X-ANONYMOUSTLS" in received
    assert "250-X-EXPS EXCHANGEAUTH GSSAPI NTLM" in received
    assert "235 <authentication information>" in received  # the mutual blob neither
    assert received[-1] == "250 2.6.0 <1@EX01.contoso.com> [InternalId=1] Queued mail for delivery"


def test_data_is_used_without_chunking_and_dots_are_stuffed(pki: OrganizationPki) -> None:
    async def scenario() -> Peer:
        peer = Peer(HUB_A, pki, connector=default_connector(chunking_enabled=False))
        async with peer:
            result = await send([peer.target], hub_settings(pki))
        assert result.delivered
        return peer

    peer = run(scenario())
    assert "DATA" in peer.seen.commands
    assert not any(c.startswith("BDAT") for c in peer.seen.commands)
    # The receiver's core unstuffs: the octets arrive as they were on disk.
    assert peer.seen.messages == [MESSAGE]


@pytest.mark.parametrize(
    ("size", "chunks"),
    [
        (2500, ["BDAT 1000", "BDAT 1000", "BDAT 500 LAST"]),
        (2000, ["BDAT 1000", "BDAT 1000 LAST"]),  # no empty last chunk is needed
        (0, ["BDAT 0 LAST"]),
    ],
)
def test_bdat_chunks(pki: OrganizationPki, size: int, chunks: list[str]) -> None:
    data = bytes(i % 251 for i in range(size))  # binary, with bare CR/LF and dots

    async def scenario() -> Peer:
        async with Peer(HUB_A, pki) as peer:
            result = await send(
                [peer.target],
                hub_settings(pki, bdat_chunk_size=1000),
                message(size=size),
                body_of(data, chunk=333),
            )
        assert result.delivered
        return peer

    peer = run(scenario())
    assert [c for c in peer.seen.commands if c.startswith("BDAT")] == chunks
    assert peer.seen.messages == [data]


def test_body_from_a_spool_file(pki: OrganizationPki, tmp_path: Path) -> None:
    spool = tmp_path / "message.eml"
    spool.write_bytes(MESSAGE * 50)

    async def scenario() -> Peer:
        async with Peer(HUB_A, pki) as peer:
            result = await send_message(
                [peer.target],
                message(size=len(MESSAGE) * 50),
                file_body(spool, chunk_size=100),
                hub_settings(pki, bdat_chunk_size=4096),
            )
        assert result.delivered
        return peer

    assert run(scenario()).seen.messages == [MESSAGE * 50]


# --- the story: a firewall masks the EHLO reply --------------------------------------------------


def test_masked_ehlo_fails_every_hub_with_the_exact_last_error(
    pki: OrganizationPki, tmp_path: Path
) -> None:
    async def scenario() -> tuple[SendResult, Peer, Peer]:
        async with (
            Peer(HUB_A, pki, keywords=masked_by_asa) as a,
            Peer(HUB_B, pki, name="EX03", keywords=masked_by_asa) as b,
        ):
            result = await send([a.target, b.target], hub_settings(pki), log_dir=tmp_path)
        return result, a, b

    result, a, b = run(scenario())
    assert result.last_error == LAST_ERROR_5_7_3
    assert result.all_targets_failed and result.target is None
    assert [(t.target.address, str(t.reply), t.failed_over) for t in result.attempts] == [
        (HUB_A, "451 5.7.3 Cannot achieve Exchange Server authentication", True),
        (HUB_B, "451 5.7.3 Cannot achieve Exchange Server authentication", True),
    ]
    assert [(r.address, r.status) for r in result.recipients] == [
        ("bob@fabrikam.com", RecipientStatus.DEFERRED)
    ]
    # Neither hub saw anything but EHLO and QUIT: no mail went out unauthenticated.
    assert a.seen.commands == b.seen.commands == ["EHLO EX01.contoso.com", "QUIT"]

    found = sessions(tmp_path)
    assert list(found) == [t.session_id for t in result.attempts]
    for attempt, peer in zip(result.attempts, (a, b), strict=True):
        assert found[attempt.session_id] == [
            ("*", "", "attempting to connect"),
            ("+", "", ""),
            ("<", BANNER, ""),
            (">", "EHLO EX01.contoso.com", ""),
            ("<", f"250-{peer.fqdn} Hello [{SENDER_IP}]", ""),
            ("<", "250-SIZE", ""),
            ("<", "250-PIPELINING", ""),
            ("<", "250 XXXXXXXA", ""),
            ("*", "", "451 5.7.3 Cannot achieve Exchange Server authentication"),
            (">", "QUIT", ""),
            ("-", "", "Local"),
        ]
    rows = list(read_protocol_log(tmp_path))
    assert {r.connector_id for r in rows} == {"Intra-Organization SMTP Send Connector"}
    first = [r for r in rows if r.session_id == result.attempts[0].session_id]
    assert [r.sequence_number for r in first] == list(range(len(first)))
    assert first[0].local_endpoint == ""  # not connected yet
    assert first[1].local_endpoint.startswith(f"{SENDER_IP}:")
    assert {r.remote_endpoint for r in first} == {result.attempts[0].target.endpoint}


def test_through_an_asa_inspecting_esmtp(pki: OrganizationPki) -> None:
    """The real inspection engine between two 2010 hubs: the seed's fault, end to end."""

    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki) as peer:
            relay = Relay(
                [Route(FIREWALL, HUB_A, ((peer.port, 25),))],
                inspector_for=lambda _connection: EsmtpInspector(),
            )
            await relay.start()
            try:
                target = Target(peer.fqdn, FIREWALL, peer.port)
                return await send([target], hub_settings(pki)), peer
            finally:
                await relay.stop()

    result, peer = run(scenario())
    assert result.last_error == LAST_ERROR_5_7_3
    assert peer.seen.client_ips == [SENDER_IP]  # the relay keeps the source address
    assert "X-ANONYMOUSTLS" not in peer.seen.commands


def test_without_exchange_auth_on_the_receiver_starttls_does_not_help(
    pki: OrganizationPki,
) -> None:
    connector = default_connector(
        auth_mechanism=[AuthMechanism.TLS, AuthMechanism.INTEGRATED, AuthMechanism.BASIC_AUTH]
    )

    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki, connector=connector) as peer:
            return await send([peer.target], hub_settings(pki)), peer

    result, peer = run(scenario())
    assert result.last_error == LAST_ERROR_5_7_3
    assert peer.seen.commands == ["EHLO EX01.contoso.com", "QUIT"]


# --- Exchange Server authentication that does not succeed ----------------------------------------


def test_refused_exchange_auth_is_454(pki: OrganizationPki) -> None:
    async def scenario() -> SendResult:
        refusal = Reply.of(535, "Authentication unsuccessful", enhanced="5.7.3")
        async with Peer(HUB_A, pki, x_exps_reply=refusal) as peer:
            return await send([peer.target], hub_settings(pki))

    result = run(scenario())
    assert result.last_error == (
        '451 4.4.0 Primary target IP address responded with: "454 4.7.0 Temporary'
        ' authentication failure." Attempted failover to alternate host, but that did not'
        " succeed. Either there are no alternate hosts, or delivery failed to all alternate"
        " hosts."
    )


def test_a_receiver_outside_the_organization_fails_mutual_auth(
    pki: OrganizationPki, tmp_path: Path
) -> None:
    stranger = OrganizationPki.open_or_create(tmp_path / "other", "Fabrikam")
    stranger.ensure_server("EX02", "EX02.contoso.com")

    async def scenario() -> SendResult:
        # Its certificate comes from another CA, and it accepts anything.
        accept_all = Reply.of(235, exchange_auth.make_mutual_blob("EX02"))
        async with Peer(
            HUB_A, stranger, x_exps_reply=accept_all, ask_client_certificate=False
        ) as peer:
            return await send([peer.target], hub_settings(pki))

    result = run(scenario())
    assert str(result.attempts[0].reply) == "454 4.7.0 Temporary authentication failure"


def test_missing_internal_certificate(pki: OrganizationPki, tmp_path: Path) -> None:
    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki) as peer:
            missing = CertFiles(tmp_path / "missing.pem", tmp_path / "missing.key")
            settings = hub_settings(pki, cert_files=missing)
            return await send([peer.target], settings), peer

    result, peer = run(scenario())
    assert str(result.attempts[0].reply) == (
        "451 5.7.3 Cannot load Internal Transport Certificate. Exchange Server authentication"
        " failed."
    )
    assert "X-ANONYMOUSTLS" not in peer.seen.commands


def test_a_helo_only_peer_cannot_do_exchange_auth(pki: OrganizationPki) -> None:
    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki, ehlo_reply=replies.UNRECOGNIZED_COMMAND) as peer:
            return await send([peer.target], hub_settings(pki)), peer

    result, peer = run(scenario())
    assert peer.seen.commands == ["EHLO EX01.contoso.com", "HELO EX01.contoso.com", "QUIT"]
    assert result.last_error == LAST_ERROR_5_7_3


def test_anonymous_tls_without_x_exps_goes_on_and_meets_530(pki: OrganizationPki) -> None:
    """Spec 3.2: anonymous TLS up, no X-EXPS: unauthenticated, and the receiver says 530."""

    def keywords(conn: ServerConnection) -> list[str]:
        return ["PIPELINING", "CHUNKING"] if conn.secure else ["X-ANONYMOUSTLS", "CHUNKING"]

    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki, keywords=keywords, require_auth=True) as peer:
            return await send([peer.target], hub_settings(pki)), peer

    result, peer = run(scenario())
    assert result.last_error is None  # a 5xx to MAIL is final: an NDR, not a retry
    assert [(r.status, r.ndr_diagnostic) for r in result.recipients] == [
        (RecipientStatus.FAILED, "Remote Server returned '530 5.7.1 Client was not authenticated'")
    ]
    assert "X-ANONYMOUSTLS" in peer.seen.commands
    assert not any(c.startswith("X-EXPS") for c in peer.seen.commands)


# --- against the real receiving side -------------------------------------------------------------


class MemoryAcceptor:
    """The queue's hand-off, in memory: what a receive session accepted."""

    def __init__(self) -> None:
        self.accepted: list[tuple[Envelope, bytes]] = []

    def open_spool(self) -> MemorySpool:
        return MemorySpool()

    def accept(self, spool: SpoolWriter, envelope: Envelope) -> int:
        assert isinstance(spool, MemorySpool)
        self.accepted.append((envelope, bytes(spool.data)))
        return 4000 + len(self.accepted)


class MemorySpool:
    def __init__(self) -> None:
        self.data = bytearray()

    @property
    def size(self) -> int:
        return len(self.data)

    def write(self, data: bytes) -> None:
        self.data += data

    def abort(self) -> None:
        self.data.clear()


def test_against_the_hub_receive_server(pki: OrganizationPki, tmp_path: Path) -> None:
    hub = Server(
        name="EX02",
        fqdn="EX02.contoso.com",
        site="Site-B",
        roles=[ServerRole.HUB_TRANSPORT],
        addresses=[HUB_A],
    )
    organization = Organization(
        name=ORG, accepted_domains=[AcceptedDomain(domain_name="contoso.com", default=True)]
    )
    acceptor = MemoryAcceptor()
    starttls, anonymous = tls_contexts(pki.folder, "EX02")
    receive_log = ProtocolLog.receive(tmp_path / "SmtpReceive")
    offset = 27000  # Default EX02 binds 0.0.0.0:25, here HUB_A:27025
    env = ReceiveEnvironment(
        directory=SqliteDirectory(tmp_path / "directory.db"),
        clock=SYSTEM_CLOCK,
        acceptor=ThreadedAcceptor(acceptor),
        pki_dir=pki.folder,
        port_offset=offset,
        protocol_log=receive_log,
        verifier=pki.verifier(),
        starttls_context=starttls,
        anonymous_tls_context=anonymous,
    )
    connectors = [
        c.model_copy(update={"protocol_logging_level": LoggingLevel.VERBOSE})
        for c in default_receive_connectors(hub)
    ]
    config = ReceiveConfig(hub, organization, connectors)

    async def scenario() -> SendResult:
        listeners = ReceiveListeners(env, config)
        await listeners.apply(config)
        try:
            target = Target(hub.fqdn, HUB_A, 25 + offset)
            return await send([target], hub_settings(pki), message("bob@contoso.com"))
        finally:
            await listeners.close()

    result = run(scenario())
    receive_log.close()
    assert result.last_error is None, result.last_error
    assert [r.status for r in result.recipients] == [RecipientStatus.DELIVERED]
    assert str(result.final_reply) == (
        "250 2.6.0 <1@EX01.contoso.com> [InternalId=4001] Queued mail for delivery"
    )
    [(envelope, data)] = acceptor.accepted
    assert envelope.auth_as == "EX01"  # Exchange Server authentication succeeded
    assert [r.address for r in envelope.recipients] == ["bob@contoso.com"]
    assert data.endswith(MESSAGE.split(b"\r\n\r\n", 1)[1])
    received = [row.data for row in read_protocol_log(tmp_path / "SmtpReceive") if row.event == "<"]
    assert received[:4] == [
        "EHLO EX01.contoso.com",
        "X-ANONYMOUSTLS",
        "EHLO EX01.contoso.com",
        "X-EXPS EXCHANGEAUTH SHA256 ",
    ]
