"""The decisions of the lab's plain MTAs: the Internet host (Postfix-like) and EX2003's SMTPSVC.

Pure functions over frozen profiles, checked with the exact replies a client sees.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest

from sitemail.exchange2003.smtp_service import LegacyProfile
from sitemail.internet.policy import (
    SUBMISSION_PORT,
    InternetProfile,
    mx_servers,
    queue_id,
    route_recipient,
)
from sitemail.mta.profile import SessionFacts, decode_plain
from sitemail.org.model import (
    AcceptedDomain,
    ExchangeVersion,
    Organization,
    PermissionGroup,
    ReceiveConnector,
    Server,
    ServerRole,
)
from sitemail.org.passwords import hash_password
from sitemail.transport.headers import message_id_of
from sitemail.transport.queue import DeliveryType, FailRecipient, NextHop

INTERNET_IP = "127.99.0.11"
CAROL_HASH = hash_password("Pa55word!")


def internet() -> InternetProfile:
    return InternetProfile(
        hostname="mail.fabrikam.com",
        domains=frozenset({"fabrikam.com"}),
        users={"carol@fabrikam.com": CAROL_HASH},
    )


def facts(
    port: int = 25, *, secure: bool = False, user: str | None = None, rcpts: int = 0
) -> SessionFacts:
    return SessionFacts("127.1.0.11", port, secure=secure, user=user, rcpt_count=rcpts)


# ---------------------------------------------------------------- the Internet host


def test_internet_banner_is_postfix_like() -> None:
    assert internet().banner(datetime(2026, 11, 27, tzinfo=UTC)) == "220 mail.fabrikam.com ESMTP"


def test_internet_ehlo_offers_starttls_in_clear_and_auth_only_inside_tls() -> None:
    p = internet()
    clear = p.hello(facts(), ehlo=True, tls_available=True)
    assert clear.wire_lines() == [
        "250-mail.fabrikam.com",
        "250-PIPELINING",
        "250-SIZE 10240000",
        "250-STARTTLS",
        "250-ENHANCEDSTATUSCODES",
        "250 8BITMIME",
    ]
    inside = p.hello(facts(secure=True), ehlo=True, tls_available=True)
    assert inside.wire_lines() == [
        "250-mail.fabrikam.com",
        "250-PIPELINING",
        "250-SIZE 10240000",
        "250-AUTH LOGIN PLAIN",
        "250-ENHANCEDSTATUSCODES",
        "250 8BITMIME",
    ]
    no_certificate = p.hello(facts(), ehlo=True, tls_available=False)
    assert "STARTTLS" not in no_certificate.lines
    assert str(p.hello(facts(), ehlo=False, tls_available=True)) == "250 mail.fabrikam.com"
    assert p.auth_mechanisms(facts()) == ()
    assert p.auth_mechanisms(facts(secure=True)) == ("LOGIN", "PLAIN")


@pytest.mark.parametrize(
    ("session", "recipient", "expected"),
    [
        # Mail for its own users is taken from anyone.
        (facts(), "carol@fabrikam.com", None),
        (facts(), "Carol@FABRIKAM.com", None),
        (
            facts(),
            "x@fabrikam.com",
            "550 5.1.1 <x@fabrikam.com>: Recipient address rejected: User unknown",
        ),
        # Relay only for users who authenticated.
        (facts(), "alice@contoso.com", "554 5.7.1 <alice@contoso.com>: Relay access denied"),
        (facts(secure=True), "x@y", "554 5.7.1 <x@y>: Relay access denied"),
        (facts(secure=True, user="carol@fabrikam.com"), "alice@contoso.com", None),
        # An authenticated user still cannot invent local users.
        (
            facts(secure=True, user="carol@fabrikam.com"),
            "nobody@fabrikam.com",
            "550 5.1.1 <nobody@fabrikam.com>: Recipient address rejected: User unknown",
        ),
        # Submission takes nothing from anonymous clients, not even local mail.
        (
            facts(SUBMISSION_PORT, secure=True),
            "carol@fabrikam.com",
            "554 5.7.1 <unknown[127.1.0.11]>: Client host rejected: Access denied",
        ),
        (facts(SUBMISSION_PORT, secure=True, user="carol@fabrikam.com"), "alice@contoso.com", None),
        (facts(rcpts=1000), "carol@fabrikam.com", "452 4.5.3 Error: too many recipients"),
    ],
)
def test_internet_recipient_rule(
    session: SessionFacts, recipient: str, expected: str | None
) -> None:
    refusal = internet().check_rcpt(session, recipient)
    assert (None if refusal is None else str(refusal)) == expected


def test_internet_submission_needs_tls_before_mail() -> None:
    p = internet()
    refusal = p.check_mail(facts(SUBMISSION_PORT), "carol@fabrikam.com")
    assert str(refusal) == "530 5.7.0 Must issue a STARTTLS command first"
    assert p.check_mail(facts(SUBMISSION_PORT, secure=True), "carol@fabrikam.com") is None
    assert p.check_mail(facts(), "alice@contoso.com") is None


def test_internet_login_by_address_or_local_part() -> None:
    p = internet()
    assert p.login("carol@fabrikam.com", "Pa55word!") == "carol@fabrikam.com"
    assert p.login(" CAROL ", "Pa55word!") == "carol@fabrikam.com"
    assert p.login("carol@fabrikam.com", "wrong") is None
    assert p.login("alice@contoso.com", "Pa55word!") is None


def test_internet_transaction_replies() -> None:
    p = internet()
    assert str(p.sender_ok("carol@fabrikam.com")) == "250 2.1.0 Ok"
    assert str(p.recipient_ok("alice@contoso.com")) == "250 2.1.5 Ok"
    assert str(p.queued("<a@b>", queue_id(42))) == "250 2.0.0 Ok: queued as 000000002A"
    assert str(p.hello_syntax("EHLO")) == "501 Syntax: EHLO hostname"
    stamp = p.received(
        SessionFacts(INTERNET_IP, 25, secure=True, user="carol@fabrikam.com"),
        "client.fabrikam.com",
        datetime(2026, 11, 27, 20, 0, tzinfo=UTC),
    )
    assert stamp == (
        b"Received: from client.fabrikam.com (unknown [127.99.0.11])\r\n"
        b"\tby mail.fabrikam.com with ESMTPSA;\r\n"
        b"\tFri, 27 Nov 2026 20:00:00 +0000\r\n"
    )


def test_internet_routes_local_users_to_its_mailboxes_and_the_organization_to_its_mx() -> None:
    org = Organization(name="Contoso", accepted_domains=[AcceptedDomain(domain_name="contoso.com")])
    users = {"carol@fabrikam.com": None}

    def route(address: str) -> object:
        return route_recipient(
            address, domains=frozenset({"fabrikam.com"}), users=users, organization=org
        )

    assert route("carol@fabrikam.com") == NextHop(DeliveryType.MAPI_DELIVERY, "local")
    assert route("alice@CONTOSO.com") == NextHop(DeliveryType.DNS_CONNECTOR_DELIVERY, "contoso.com")
    assert route("gone@fabrikam.com") == FailRecipient(
        "550 5.1.1 <gone@fabrikam.com>: Recipient address rejected: User unknown"
    )
    assert route("x@nowhere.example") == FailRecipient(
        "550 5.4.4 <x@nowhere.example>: Host or domain name not found. Name service error "
        "for name=nowhere.example type=A: Host not found"
    )


def _hub(name: str, site: str = "NY") -> Server:
    return Server(
        name=name,
        fqdn=f"{name.lower()}.contoso.com",
        site=site,
        roles=[ServerRole.MAILBOX, ServerRole.CLIENT_ACCESS, ServerRole.HUB_TRANSPORT],
    )


def test_the_organizations_mx_is_the_hubs_that_take_anonymous_mail_from_the_internet() -> None:
    org = Organization(name="Contoso", accepted_domains=[AcceptedDomain(domain_name="contoso.com")])
    ny1, fl1 = _hub("EX-NY1"), _hub("EX-FL1", "FL")
    legacy = Server(
        name="EX2003",
        fqdn="ex2003.contoso.com",
        site="NY",
        version=ExchangeVersion.E2003,
        roles=[ServerRole.MAILBOX],
    )
    connectors = [
        # The seed's Internet connector on EX-NY1.
        ReceiveConnector(
            server="EX-NY1",
            name="Internet EX-NY1",
            remote_ip_ranges=["127.99.0.0/16"],
            permission_groups=[PermissionGroup.ANONYMOUS_USERS],
        ),
        # EX-FL1's Default connector: no anonymous users.
        ReceiveConnector(server="EX-FL1", name="Default EX-FL1"),
    ]

    def mx(domain: str, source: str = INTERNET_IP) -> list[tuple[str, int]]:
        found = mx_servers(
            domain,
            organization=org,
            servers=[fl1, legacy, ny1],
            connectors=connectors,
            source=source,
        )
        return [(s.name, port) for s, port in found]

    assert mx("contoso.com") == [("EX-NY1", 25)]
    assert mx("fabrikam.com") == []  # not the organization's
    assert mx("contoso.com", source="10.0.0.1") == []  # outside RemoteIPRanges
    connectors.append(
        ReceiveConnector(
            server="EX-FL1",
            name="Internet EX-FL1",
            bindings=["0.0.0.0:2525"],
            permission_groups=[PermissionGroup.ANONYMOUS_USERS],
        )
    )
    assert mx("contoso.com") == [("EX-FL1", 2525), ("EX-NY1", 25)]


# ---------------------------------------------------------------- Exchange 2003


def legacy() -> LegacyProfile:
    return LegacyProfile(
        hostname="ex2003.contoso.com",
        own_addresses=frozenset({"larry@contoso.com"}),
        organization_addresses=frozenset({"larry@contoso.com", "alice@contoso.com"}),
        accepted_domains=frozenset({"contoso.com"}),
    )


def test_exchange_2003_banner_has_its_version_and_two_spaces_after_at() -> None:
    when = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
    assert legacy().banner(when) == (
        "220 ex2003.contoso.com Microsoft ESMTP MAIL Service, Version: 6.0.3790.4675 "
        "ready at  Fri, 27 Nov 2026 20:00:00 +0000"
    )
    est = datetime(2026, 3, 5, 9, 7, 1, tzinfo=timezone(timedelta(hours=-5)))
    assert legacy().banner(est).endswith("ready at  Thu, 5 Mar 2026 09:07:01 -0500")


def test_exchange_2003_ehlo() -> None:
    p = legacy()
    reply = p.hello(SessionFacts("127.1.0.11", 25), ehlo=True, tls_available=True)
    assert reply.wire_lines() == [
        "250-ex2003.contoso.com Hello [127.1.0.11]",
        "250-SIZE",
        "250-PIPELINING",
        "250-DSN",
        "250-ENHANCEDSTATUSCODES",
        "250-8bitmime",
        "250-BINARYMIME",
        "250-CHUNKING",
        "250-VRFY",
        "250-TLS",
        "250-STARTTLS",
        "250 OK",
    ]
    helo = p.hello(SessionFacts("127.1.0.11", 25), ehlo=False, tls_available=True)
    assert str(helo) == "250 ex2003.contoso.com Hello [127.1.0.11]"
    assert p.auth_mechanisms(SessionFacts("127.1.0.11", 25, secure=True)) == ()


@pytest.mark.parametrize(
    ("recipient", "expected"),
    [
        ("larry@contoso.com", None),
        ("LARRY@contoso.com", None),
        ("alice@contoso.com", "550 5.7.1 Unable to relay for alice@contoso.com"),
        ("carol@fabrikam.com", "550 5.7.1 Unable to relay for carol@fabrikam.com"),
        ("nobody@contoso.com", "550 5.1.1 User unknown"),
    ],
)
def test_exchange_2003_takes_its_own_mailboxes_and_relays_nothing(
    recipient: str, expected: str | None
) -> None:
    refusal = legacy().check_rcpt(SessionFacts("127.1.0.11", 25), recipient)
    assert (None if refusal is None else str(refusal)) == expected


def test_exchange_2003_transaction_replies() -> None:
    p = legacy()
    assert str(p.sender_ok("alice@contoso.com")) == "250 2.1.0 alice@contoso.com....Sender OK"
    assert str(p.recipient_ok("larry@contoso.com")) == "250 2.1.5 larry@contoso.com"
    assert str(p.queued("<m1@contoso.com>", "x")) == (
        "250 2.6.0 <m1@contoso.com> Queued mail for delivery"
    )
    stamp = p.received(
        SessionFacts("127.1.0.11", 25), "ex-ny1.contoso.com", datetime(2026, 11, 27, tzinfo=UTC)
    )
    assert stamp == (
        b"Received: from ex-ny1.contoso.com ([127.1.0.11]) by ex2003.contoso.com with "
        b"Microsoft SMTPSVC(6.0.3790.4675);\r\n\t Fri, 27 Nov 2026 00:00:00 +0000\r\n"
    )


# ---------------------------------------------------------------- helpers


def test_message_id_of_takes_the_bracketed_id_only() -> None:
    assert message_id_of("<abc@x.example>") == "<abc@x.example>"
    assert message_id_of("  junk <abc@x.example> (comment)") == "<abc@x.example>"
    assert message_id_of("no brackets") is None
    assert message_id_of(None) is None
    assert message_id_of("<" + "a" * 300 + ">") is None  # would not fit a delivery id


def test_decode_plain() -> None:
    blob = base64.b64encode(b"\0carol@fabrikam.com\0Pa55word!").decode()
    assert decode_plain(blob) == ("carol@fabrikam.com", "Pa55word!")
    assert decode_plain(base64.b64encode(b"carol\0pw").decode()) is None
    assert decode_plain("not base64!") is None
