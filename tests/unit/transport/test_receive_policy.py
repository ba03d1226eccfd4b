"""The receive connector decisions: selection, permissions, banner and EHLO (spec 1-2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitemail.org.defaults import default_receive_connectors
from sitemail.org.model import (
    AuthMechanism,
    PermissionGroup,
    ReceiveConnector,
    Server,
    ServerRole,
)
from sitemail.transport.connector_selection import conflict, select_connector
from sitemail.transport.greeting import banner, banner_date, ehlo_keywords, hello_text
from sitemail.transport.permissions import Principal, Right, rights_text, session_rights

HUB = Server(
    name="EX-FL1",
    fqdn="ex-fl1.contoso.com",
    site="FL",
    roles=[ServerRole.HUB_TRANSPORT, ServerRole.MAILBOX, ServerRole.CLIENT_ACCESS],
)
DEFAULT, CLIENT = default_receive_connectors(HUB)


def rc(name: str, ranges: list[str], bindings: list[str] | None = None) -> ReceiveConnector:
    return ReceiveConnector(
        server="EX-FL1", name=name, remote_ip_ranges=ranges, bindings=bindings or ["0.0.0.0:25"]
    )


# ---------------------------------------------------------------- selection


def test_most_specific_remote_range_wins_like_the_exchange_doc_example() -> None:
    connectors = [
        rc("All", ["0.0.0.0-255.255.255.255"]),
        rc("Subnet", ["192.168.1.0-192.168.1.255"]),
        rc("Host", ["192.168.1.75"]),
    ]
    pick = lambda ip: select_connector(connectors, "10.0.0.1", 25, ip)  # noqa: E731
    assert pick("192.168.1.75").name == "Host"  # type: ignore[union-attr]
    assert pick("192.168.1.100").name == "Subnet"  # type: ignore[union-attr]
    assert pick("10.9.9.9").name == "All"  # type: ignore[union-attr]


def test_no_connector_covers_the_client_means_no_connector() -> None:
    only = [rc("Partner", ["127.5.0.0/16"])]
    assert select_connector(only, "127.2.0.11", 25, "127.1.0.11") is None
    assert select_connector(only, "127.2.0.11", 587, "127.5.0.1") is None
    disabled = rc("All", ["0.0.0.0-255.255.255.255"])
    disabled.enabled = False
    assert select_connector([disabled], "127.2.0.11", 25, "127.1.0.11") is None


def test_port_picks_default_or_client_connector() -> None:
    assert select_connector([DEFAULT, CLIENT], "127.2.0.11", 25, "127.1.0.11") is DEFAULT
    assert select_connector([DEFAULT, CLIENT], "127.2.0.11", 587, "127.1.0.11") is CLIENT


def test_specific_binding_beats_any_at_equal_specificity() -> None:
    a = rc("Any", ["0.0.0.0-255.255.255.255"])
    b = rc("Specific", ["0.0.0.0-255.255.255.255"], ["127.2.0.11:25"])
    assert select_connector([a, b], "127.2.0.11", 25, "127.1.0.11") is b
    assert select_connector([a, b], "127.2.0.12", 25, "127.1.0.11") is a


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**16)), min_size=1, max_size=6),
    st.integers(0, 2**32 - 1),
)
def test_the_chosen_connector_covers_the_client_with_the_smallest_range(
    spans: list[tuple[int, int]], client: int
) -> None:
    import ipaddress

    def ip(n: int) -> str:
        return str(ipaddress.IPv4Address(min(n, 2**32 - 1)))

    connectors = [rc(f"C{i}", [f"{ip(a)}-{ip(a + w)}"]) for i, (a, w) in enumerate(spans)]
    chosen = select_connector(connectors, "127.0.0.1", 25, ip(client))
    covering = [c for c in connectors if any(ip(client) in r for r in c.ranges)]
    if not covering:
        assert chosen is None
        return
    assert chosen is not None and chosen in covering
    size = min(r.size for r in chosen.ranges if ip(client) in r)
    assert all(min(r.size for r in c.ranges if ip(client) in r) >= size for c in covering)


def test_overlapping_connectors_must_be_nested_and_not_identical() -> None:
    base = rc("Default", ["0.0.0.0-255.255.255.255"])
    assert conflict([base], rc("Relay", ["10.0.0.0/8"])) is None
    assert conflict([base], rc("Copy", ["0.0.0.0-255.255.255.255"])) is base
    a = rc("A", ["10.0.0.0-10.0.0.100"])
    assert conflict([a], rc("B", ["10.0.0.50-10.0.0.200"])) is a
    assert conflict([a], rc("C", ["10.0.0.50-10.0.0.200"], ["0.0.0.0:2525"])) is None


# -------------------------------------------------------------- permissions


def test_default_connector_gives_anonymous_no_rights_at_all() -> None:
    assert session_rights(DEFAULT, Principal.ANONYMOUS) == Right.NONE


def test_exchange_servers_get_the_server_rights_and_users_may_relay() -> None:
    server = session_rights(DEFAULT, Principal.EXCHANGE_SERVER)
    assert Right.SMTPAcceptAnyRecipient in server and Right.AcceptOrganizationHeaders in server
    user = session_rights(CLIENT, Principal.USER)
    assert Right.SMTPSubmit in user and Right.SMTPAcceptAnyRecipient in user
    assert Right.AcceptOrganizationHeaders not in user
    assert session_rights(CLIENT, Principal.EXCHANGE_SERVER) == user


def test_without_exchange_servers_group_a_hub_is_only_a_user() -> None:
    lost = DEFAULT.model_copy(update={"permission_groups": [PermissionGroup.EXCHANGE_USERS]})
    rights = session_rights(lost, Principal.EXCHANGE_SERVER)
    assert Right.AcceptOrganizationHeaders not in rights


def test_anonymous_rights_log_text_matches_a_real_2010_row() -> None:
    internet = rc("Internet Mail", ["0.0.0.0-255.255.255.255"])
    internet.permission_groups = [PermissionGroup.ANONYMOUS_USERS]
    rights = session_rights(internet, Principal.ANONYMOUS)
    assert rights_text(rights) == (
        "SMTPSubmit SMTPAcceptAnySender SMTPAcceptAuthoritativeDomainSender AcceptRoutingHeaders"
    )


def test_external_authoritative_treats_anonymous_as_externally_secured() -> None:
    c = rc("Tunnel", ["10.0.0.0/8"])
    c.auth_mechanism = [AuthMechanism.TLS, AuthMechanism.EXTERNAL_AUTHORITATIVE]
    c.permission_groups = [PermissionGroup.EXCHANGE_SERVERS]
    rights = session_rights(c, Principal.ANONYMOUS)
    assert Right.SMTPAcceptAnyRecipient in rights
    assert Right.AcceptOrganizationHeaders not in rights


# --------------------------------------------------------------- greeting


def test_banner_format_matches_exchange() -> None:
    when = datetime(2016, 8, 5, 16, 24, 41, tzinfo=timezone(timedelta(hours=-7)))
    assert banner_date(when) == "Fri, 5 Aug 2016 16:24:41 -0700"
    assert banner(DEFAULT, "mail1.fabrikam.com", when) == (
        "220 mail1.fabrikam.com Microsoft ESMTP MAIL Service ready at "
        "Fri, 5 Aug 2016 16:24:41 -0700"
    )
    custom = DEFAULT.model_copy(update={"banner": "220 Go away"})
    assert banner(custom, "x", datetime.now(UTC)) == "220 Go away"
    assert hello_text("ex-fl1.contoso.com", "127.1.0.11") == "ex-fl1.contoso.com Hello [127.1.0.11]"


def test_default_connector_ehlo_on_a_plain_connection_is_the_observed_2010_list() -> None:
    assert ehlo_keywords(DEFAULT, secure=False, anonymous_tls=False) == [
        "SIZE",
        "PIPELINING",
        "DSN",
        "ENHANCEDSTATUSCODES",
        "STARTTLS",
        "X-ANONYMOUSTLS",
        "AUTH NTLM",
        "X-EXPS GSSAPI NTLM",
        "8BITMIME",
        "BINARYMIME",
        "CHUNKING",
        "XEXCH50",
        "XRDST",
        "XSHADOW",
    ]


def test_after_x_anonymoustls_exchangeauth_and_login_appear() -> None:
    kw = ehlo_keywords(DEFAULT, secure=True, anonymous_tls=True)
    assert "STARTTLS" not in kw and "X-ANONYMOUSTLS" not in kw
    assert kw[kw.index("AUTH NTLM LOGIN") + 1 :][:2] == [
        "X-EXPS EXCHANGEAUTH GSSAPI NTLM",
        "X-EXCHANGEAUTH SHA256",
    ]
    after_starttls = ehlo_keywords(DEFAULT, secure=True, anonymous_tls=False)
    assert "X-EXPS GSSAPI NTLM" in after_starttls
    assert not any("EXCHANGEAUTH" in k for k in after_starttls)


def test_client_connector_ehlo_has_no_exchange_server_keywords() -> None:
    kw = ehlo_keywords(CLIENT, secure=False, anonymous_tls=False)
    assert kw[0] == "SIZE 10485760"
    assert "X-ANONYMOUSTLS" not in kw and not any(k.startswith("X-EXPS") for k in kw)
    assert kw[-1] == "CHUNKING"
    assert "AUTH NTLM LOGIN" in ehlo_keywords(CLIENT, secure=True, anonymous_tls=False)


@pytest.mark.parametrize(
    "mechanisms",
    [[AuthMechanism.TLS], [AuthMechanism.NONE], [AuthMechanism.TLS, AuthMechanism.BASIC_AUTH]],
)
def test_without_exchange_server_auth_no_hub_can_authenticate(
    mechanisms: list[AuthMechanism],
) -> None:
    c = DEFAULT.model_copy(update={"auth_mechanism": mechanisms})
    kw = ehlo_keywords(c, secure=False, anonymous_tls=False)
    assert "X-ANONYMOUSTLS" not in kw
    assert not any(k.startswith("X-EXPS") for k in kw)


def test_no_2013_keywords_ever() -> None:
    for secure in (False, True):
        for anon in (False, True):
            for c in (DEFAULT, CLIENT):
                kw = " ".join(ehlo_keywords(c, secure=secure, anonymous_tls=anon))
                for k in ("XSHADOWREQUEST", "XPROXY", "X-MESSAGECONTEXT", "SMTPUTF8", "XOORG"):
                    assert k not in kw
