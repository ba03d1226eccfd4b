"""The hub sender towards a smart host, and what it writes: STARTTLS, AUTH, envelope, log text.

A send connector's policy (``SendPolicy``) instead of Exchange Server
authentication: opportunistic or required STARTTLS, basic authentication;
then the MAIL and RCPT parameters on the wire and the TLS row of the SmtpSend
log.
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.doubles.smtp_peer import Peer, default_connector, masked_by_asa
from tests.integration.smtp_sender_support import (
    HUB_A,
    MESSAGE,
    NOBODY,
    hub_settings,
    organization_pki,
    run,
    send,
)

from sitemail.clock import SYSTEM_CLOCK
from sitemail.mailflow.envelope import Envelope, EnvelopeRecipient
from sitemail.mailflow.outbound import (
    Credentials,
    OutboundMessage,
    SenderSettings,
    SendResult,
    Target,
)
from sitemail.mailflow.send_decision import SendAuth, SendPolicy
from sitemail.mailflow.tls_log_text import tls_negotiated_text
from sitemail.org.model import AuthMechanism, ReceiveConnector
from sitemail.org.pki import OrganizationPki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> OrganizationPki:
    return organization_pki(tmp_path_factory.mktemp("pki"))


# --- smart host connectors -----------------------------------------------------------------------


def smart_settings(pki: OrganizationPki, policy: SendPolicy, **changes: Any) -> SenderSettings:
    return hub_settings(pki, policy=policy, cert_files=None, verifier=None, **changes)


def internet_connector() -> ReceiveConnector:
    return default_connector(
        auth_mechanism=[
            AuthMechanism.TLS,
            AuthMechanism.BASIC_AUTH,
            AuthMechanism.BASIC_AUTH_REQUIRE_TLS,
        ]
    )


def test_smart_host_uses_opportunistic_starttls(pki: OrganizationPki) -> None:
    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki, connector=internet_connector()) as peer:
            return await send([peer.target], smart_settings(pki, SendPolicy())), peer

    result, peer = run(scenario())
    assert result.delivered
    assert peer.seen.commands[:3] == ["EHLO EX01.contoso.com", "STARTTLS", "EHLO EX01.contoso.com"]
    assert peer.seen.tls_peers == [None]  # no client certificate towards a smart host


def test_smart_host_behind_a_masking_firewall_sends_in_plain_text(pki: OrganizationPki) -> None:
    async def scenario() -> Peer:
        async with Peer(HUB_A, pki, keywords=masked_by_asa) as peer:
            assert (await send([peer.target], smart_settings(pki, SendPolicy()))).delivered
        return peer

    assert run(scenario()).seen.messages == [MESSAGE]


def test_require_tls_without_starttls(pki: OrganizationPki) -> None:
    async def scenario() -> SendResult:
        async with Peer(HUB_A, pki, keywords=masked_by_asa) as peer:
            policy = SendPolicy(SendAuth.NONE, require_tls=True)
            return await send([peer.target], smart_settings(pki, policy))

    result = run(scenario())
    assert result.last_error is not None
    assert '"451 5.7.3 STARTTLS is required to send mail."' in result.last_error


def test_basic_auth_after_starttls(pki: OrganizationPki) -> None:
    async def scenario() -> tuple[SendResult, Peer]:
        async with Peer(HUB_A, pki, connector=internet_connector()) as peer:
            settings = smart_settings(
                pki,
                SendPolicy(SendAuth.BASIC_AUTH_REQUIRE_TLS),
                credentials=Credentials("relay@contoso.com", "s3cret"),
            )
            return await send([peer.target], settings), peer

    result, peer = run(scenario())
    assert result.delivered
    assert peer.seen.logins == [("relay@contoso.com", "s3cret")]
    assert peer.seen.commands[:4] == [
        "EHLO EX01.contoso.com",
        "STARTTLS",
        "EHLO EX01.contoso.com",
        "AUTH LOGIN",
    ]


def test_basic_auth_require_tls_without_starttls(pki: OrganizationPki) -> None:
    async def scenario() -> SendResult:
        async with Peer(HUB_A, pki, keywords=lambda _c: ["AUTH LOGIN"]) as peer:
            settings = smart_settings(
                pki,
                SendPolicy(SendAuth.BASIC_AUTH_REQUIRE_TLS),
                credentials=Credentials("relay@contoso.com", "s3cret"),
            )
            return await send([peer.target], settings)

    result = run(scenario())
    assert str(result.attempts[0].reply) == "451 5.7.3 Require STARTTLS to do basic authentication"


def test_calls_that_cannot_work_are_refused(pki: OrganizationPki) -> None:
    with pytest.raises(ValueError, match="target"):
        run(send([], hub_settings(pki)))
    with pytest.raises(ValueError, match="credentials"):
        run(send([Target("x", NOBODY)], smart_settings(pki, SendPolicy(SendAuth.BASIC_AUTH))))


# --- what goes on the wire and into the log ------------------------------------------------------


def test_envelope_parameters_on_the_wire(pki: OrganizationPki) -> None:
    queued = Envelope(
        mail_from="alice@contoso.com",
        recipients=(
            EnvelopeRecipient("bob@fabrikam.com", notify="SUCCESS,FAILURE", orcpt="rfc822;bob@x"),
            EnvelopeRecipient("carol@fabrikam.com"),
        ),
        internet_message_id="<1@EX01.contoso.com>",
        received_at=SYSTEM_CLOCK.now(),
        body_type="8BITMIME",
        ret="HDRS",
        envid="QQ314159",
    )

    async def scenario() -> Peer:
        async with Peer(HUB_A, pki) as peer:
            msg = OutboundMessage.from_envelope(queued, len(MESSAGE), queued.recipients[:1])
            assert (await send([peer.target], hub_settings(pki), msg)).delivered
        return peer

    commands = run(scenario()).seen.commands
    assert (
        f"MAIL FROM:<alice@contoso.com> SIZE={len(MESSAGE)} BODY=8BITMIME RET=HDRS ENVID=QQ314159"
        in commands
    )
    assert "RCPT TO:<bob@fabrikam.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@x" in commands
    assert not any("carol" in c for c in commands)  # only this next hop's recipients


@pytest.mark.parametrize(
    ("version", "cipher", "expected"),
    [
        (
            "TLSv1.3",
            ("TLS_AES_256_GCM_SHA384", "TLSv1.3", 256),
            "TLS protocol SP_PROT_TLS1_3_CLIENT negotiation succeeded using bulk encryption"
            " algorithm CALG_AES_256 with strength 256 bits, MAC hash algorithm CALG_SHA_384 with"
            " strength 384 bits and key exchange algorithm CALG_ECDHE with strength 256 bits",
        ),
        (
            "TLSv1.2",
            ("ECDHE-ECDSA-AES128-GCM-SHA256", "TLSv1.2", 128),
            "TLS protocol SP_PROT_TLS1_2_CLIENT negotiation succeeded using bulk encryption"
            " algorithm CALG_AES_128 with strength 128 bits, MAC hash algorithm CALG_SHA_256 with"
            " strength 256 bits and key exchange algorithm CALG_ECDHE with strength 256 bits",
        ),
        (
            # The shape of the row in the spec's real 2010 log (section 4.4).
            "TLSv1",
            ("ECDHE-RSA-AES256-SHA", "TLSv1.0", 256),
            "TLS protocol SP_PROT_TLS1_0_CLIENT negotiation succeeded using bulk encryption"
            " algorithm CALG_AES_256 with strength 256 bits, MAC hash algorithm CALG_SHA1 with"
            " strength 160 bits and key exchange algorithm CALG_ECDHE with strength 256 bits",
        ),
    ],
)
def test_tls_log_text(version: str, cipher: tuple[str, str, int], expected: str) -> None:
    assert tls_negotiated_text(version, cipher) == expected
