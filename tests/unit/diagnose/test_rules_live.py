"""The live rules over a directory snapshot built by hand: each variant of story 1 gives its own
finding with its exact fix, and nothing else on the path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address

from hypothesis import given
from hypothesis import strategies as st

from sitemail.diagnose import commands as cmd
from sitemail.diagnose.facts import Facts, FirewallFact, MessageFact, PathProbe, QueueFact
from sitemail.diagnose.findings import SYMPTOMS, Finding, Report, for_symptom
from sitemail.diagnose.probe import Exchange, ProbeTranscript, judge
from sitemail.diagnose.rules import build_report, evaluate
from sitemail.org.model import (
    AcceptedDomain,
    AuthMechanism,
    Firewall,
    InternetHost,
    IPRange,
    Organization,
    PermissionGroup,
    ReceiveConnector,
    SendConnector,
    Server,
    ServerRole,
    Site,
    SiteLink,
)

NY1, FL1 = "127.1.0.11", "127.2.0.11"
HUB = [ServerRole.MAILBOX, ServerRole.CLIENT_ACCESS, ServerRole.HUB_TRANSPORT]
LAST_5_7_3 = (
    '451 4.4.0 Primary target IP address responded with: "451 5.7.3 Cannot achieve Exchange '
    'Server authentication." Attempted failover to alternate host, but that did not succeed. '
    "Either there are no alternate hosts, or delivery failed to all alternate hosts."
)


def seed(**changes: object) -> Facts:
    """The seed's organization, as the directory holds it after `lab up`."""
    connectors = [
        ReceiveConnector(server="EX-NY1", name="Default EX-NY1"),
        ReceiveConnector(
            server="EX-NY1",
            name="Internet EX-NY1",
            remote_ip_ranges=["127.99.0.0/16"],
            auth_mechanism=[AuthMechanism.TLS],
            permission_groups=[PermissionGroup.ANONYMOUS_USERS],
        ),
        ReceiveConnector(server="EX-FL1", name="Default EX-FL1"),
    ]
    facts = Facts(
        "live",
        organization=Organization(
            name="Contoso", accepted_domains=[AcceptedDomain(domain_name="contoso.com")]
        ),
        sites=[Site(name="NY"), Site(name="FL")],
        links=[SiteLink(name="NY-FL", sites=["NY", "FL"])],
        servers=[
            Server(name="EX-NY1", fqdn="ex-ny1.contoso.com", site="NY", roles=HUB, addresses=[NY1]),
            Server(name="EX-FL1", fqdn="ex-fl1.contoso.com", site="FL", roles=HUB, addresses=[FL1]),
        ],
        connectors=connectors,
        send_connectors=[
            SendConnector(
                name="Internet",
                source_transport_servers=["EX-NY1"],
                smart_hosts=["mail.fabrikam.com"],
                dns_routing_enabled=False,
            )
        ],
        firewall_objects=[Firewall(name="ASA-NY", site="NY"), Firewall(name="ASA-FL", site="FL")],
        internet_hosts=[
            InternetHost(
                name="INTERNET",
                fqdn="mail.fabrikam.com",
                domains=["fabrikam.com"],
                address="127.99.0.11",
            )
        ],
        firewalls=[
            FirewallFact("ASA-NY", "NY", True, {"inside": None, "outside": None}),
            FirewallFact("ASA-FL", "FL", True, {"inside": None, "outside": None}),
        ],
        now=datetime(2026, 3, 2, 12, 0, tzinfo=UTC),
    )
    for key, value in changes.items():
        setattr(facts, key, value)
    return facts


def fl_default(facts: Facts) -> ReceiveConnector:
    return next(c for c in facts.connectors if c.identity == "EX-FL1\\Default EX-FL1")


def queue(last_error: str) -> QueueFact:
    return QueueFact("EX-NY1", "EX-NY1\\5", "SmtpRelayToRemoteAdSite", "FL", "Retry", 1, last_error)


def errors(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.cause, f.subject) for f in findings if f.severity.value == "error"]


def test_a_healthy_organization_has_no_finding() -> None:
    assert evaluate(seed()) == []


def masked_probe() -> PathProbe:
    t = ProbeTranscript("127.1.2.11:25", NY1, connected=True, banner=["220 ********************"])
    t.ehlo = Exchange("EHLO", ["250-ex-fl1 Hello", "250-XXXXXXXA", "250 XXXXXXXXXXXXXA"])
    return PathProbe("NY", "EX-FL1", "path", "127.1.2.11", 25, NY1, judge(t))


def test_inspection_names_both_firewalls_with_the_seed_lines_then_retry_queue() -> None:
    facts = seed(
        firewalls=[
            FirewallFact("ASA-NY", "NY", True, {"inside": "_default_esmtp_map", "outside": None}),
            FirewallFact("ASA-FL", "FL", True, {"inside": None, "outside": "_default_esmtp_map"}),
        ],
        probes=[masked_probe()],
        queues=[queue(LAST_5_7_3)],
    )
    found = evaluate(facts)
    assert errors(found) == [("esmtp-inspection", "NY -> FL")]
    fixes = found[0].fixes
    assert [(f.kind.value, f.target, f.lines) for f in fixes] == [
        ("asa", "ASA-NY", cmd.ASA_NO_INSPECT_ESMTP),
        ("asa", "ASA-FL", cmd.ASA_NO_INSPECT_ESMTP),
        ("shell", None, ("Retry-Queue -Identity EX-NY1\\5",)),
    ]
    assert "ASA-NY and ASA-FL" in found[0].title


def test_remote_ip_ranges_not_covering_the_sender() -> None:
    facts = seed()
    fl_default(facts).remote_ip_ranges = ["10.0.0.0/8"]
    found = evaluate(facts)
    assert errors(found) == [("connector-remote-ip-ranges", "EX-FL1\\Default EX-FL1")]
    assert found[0].fixes[0].lines == (
        'Set-ReceiveConnector "EX-FL1\\Default EX-FL1" -RemoteIPRanges 0.0.0.0-255.255.255.255',
    )


def test_auth_mechanism_without_exchange_server() -> None:
    facts = seed()
    fl_default(facts).auth_mechanism = [AuthMechanism.TLS, AuthMechanism.INTEGRATED]
    found = evaluate(facts)
    assert errors(found) == [("connector-auth-mechanism", "EX-FL1\\Default EX-FL1")]
    assert found[0].fixes[0].lines == (
        'Set-ReceiveConnector "EX-FL1\\Default EX-FL1" -AuthMechanism '
        "Tls,Integrated,BasicAuth,BasicAuthRequireTLS,ExchangeServer",
    )


def test_permission_groups_without_exchange_servers() -> None:
    facts = seed()
    fl_default(facts).permission_groups = [PermissionGroup.EXCHANGE_USERS]
    found = evaluate(facts)
    assert errors(found) == [("connector-permission-groups", "EX-FL1\\Default EX-FL1")]
    assert found[0].fixes[0].lines == (
        'Set-ReceiveConnector "EX-FL1\\Default EX-FL1" -PermissionGroups '
        "ExchangeUsers,ExchangeServers",
    )
    assert 1 in found[0].symptoms  # the senders get NDRs


def test_a_narrower_connector_capturing_the_hub() -> None:
    facts = seed()
    facts.connectors.append(
        ReceiveConnector(
            server="EX-FL1",
            name="Relay EX-FL1",
            remote_ip_ranges=["127.1.0.0/16"],
            auth_mechanism=[AuthMechanism.TLS],
            permission_groups=[PermissionGroup.ANONYMOUS_USERS],
        )
    )
    found = evaluate(facts)
    assert errors(found) == [("connector-captured", "EX-FL1\\Relay EX-FL1")]
    assert found[0].fixes[0].lines == (
        'Set-ReceiveConnector "EX-FL1\\Relay EX-FL1" -RemoteIPRanges '
        "127.1.0.0-127.1.0.10,127.1.0.12-127.1.255.255",
    )


def test_no_site_link() -> None:
    found = evaluate(seed(links=[]))
    assert sorted(errors(found)) == [("no-route", "FL -> NY"), ("no-route", "NY -> FL")]


def test_internet_connector_without_anonymous_users() -> None:
    facts = seed()
    internet = next(c for c in facts.connectors if c.name == "Internet EX-NY1")
    internet.permission_groups = [PermissionGroup.EXCHANGE_USERS]
    found = evaluate(facts)
    assert errors(found) == [("connector-permission-groups", "EX-NY1\\Internet EX-NY1")]
    assert found[0].symptoms == (2,)
    assert "AnonymousUsers" in found[0].fixes[0].lines[0]


def test_open_relay() -> None:
    facts = seed()
    facts.connectors.append(
        ReceiveConnector(
            server="EX-NY1",
            name="Anon Relay",
            bindings=["0.0.0.0:2525"],
            auth_mechanism=[AuthMechanism.TLS, AuthMechanism.EXTERNAL_AUTHORITATIVE],
            permission_groups=[PermissionGroup.EXCHANGE_SERVERS],
        )
    )
    assert errors(evaluate(facts)) == [("open-relay", "EX-NY1\\Anon Relay")]


def test_port_25_unreachable() -> None:
    t = ProbeTranscript("127.1.2.250:25", NY1, connect_error="Connect call failed")
    probe = PathProbe("NY", "EX-FL1", "path", "127.1.2.250", 25, NY1, judge(t))
    found = evaluate(seed(probes=[probe]))
    assert errors(found) == [("port-25-unreachable", "NY -> EX-FL1")]
    assert found[0].fixes[0].lines == (
        "Test-NetConnection -ComputerName ex-fl1.contoso.com -Port 25",
    )


def test_messages_waiting_past_the_delay_timeout_and_symptom_filter() -> None:
    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    waiting = MessageFact(
        "EX-NY1",
        "EX-NY1\\5\\7",
        "EX-NY1\\5",
        "Retry",
        LAST_5_7_3,
        "hi",
        "alice@contoso.com",
        now - timedelta(hours=5),
        now + timedelta(days=1),
        12,
        ("adam@contoso.com",),
    )
    report = build_report(seed(messages=[waiting]), symptom=3)
    assert [f.cause for f in report.findings] == ["messages-delayed"]
    assert build_report(seed(messages=[waiting]), symptom=5).findings == []
    edge = build_report(seed(), symptom=6)
    assert [f.cause for f in edge.findings] == ["edge-sync"]
    assert for_symptom([], None) == []
    assert set(SYMPTOMS) == {1, 2, 3, 4, 5, 6}
    assert isinstance(report, Report)


@given(
    st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=3),
    st.lists(st.integers(0, 2**32 - 1), max_size=4),
)
def test_ranges_without_cuts_exactly_the_addresses(bounds: list[int], cut: list[int]) -> None:
    lo, hi = min(bounds), max(bounds)
    text = f"{IPv4Address(lo)}-{IPv4Address(hi)}"
    out = [IPRange.parse(r) for r in cmd.ranges_without([text], [str(IPv4Address(c)) for c in cut])]
    covered = sum(r.size for r in out)
    removed = {c for c in cut if lo <= c <= hi}
    assert covered == hi - lo + 1 - len(removed)
    for c in removed:
        assert not any(r.first <= c <= r.last for r in out)


def test_a_stopped_hub_and_a_silent_firewall_are_findings() -> None:
    facts = seed(
        unreachable_servers={"EX-FL1": "Connection refused"},
        firewalls=[FirewallFact("ASA-FL", "FL", False, {}, (), "no such socket")],
    )
    assert sorted(errors(evaluate(facts))) == [
        ("firewall-not-answering", "ASA-FL"),
        ("server-not-answering", "EX-FL1"),
    ]


LAST_4_4_2 = (
    '451 4.4.0 Primary target IP address responded with: "421 4.4.2 Connection dropped." '
    "Attempted failover to alternate host, but that did not succeed. Either there are no "
    "alternate hosts, or delivery failed to all alternate hosts."
)
DENY = "access-list outside_access_in extended deny tcp any host 127.2.0.11 eq smtp"
BIND = "access-group outside_access_in in interface outside"


def with_acl(*rules: str) -> list[FirewallFact]:
    """ASA-FL with these access rules; ASA-NY without any."""
    return [
        FirewallFact("ASA-NY", "NY", True, {"inside": None, "outside": None}),
        FirewallFact("ASA-FL", "FL", True, {"inside": None, "outside": None}, access_rules=rules),
    ]


def reset_probe() -> PathProbe:
    """What the probe sees when the firewall resets the connection before the banner."""
    t = ProbeTranscript("127.1.2.11:25", NY1, connected=True, banner_closed=True)
    return PathProbe("NY", "EX-FL1", "path", "127.1.2.11", 25, NY1, judge(t))


def test_an_access_list_denying_smtp_names_the_line_to_remove() -> None:
    facts = seed(
        firewalls=with_acl(DENY, "access-list outside_access_in extended permit ip any any", BIND),
        probes=[reset_probe()],
        queues=[queue(LAST_4_4_2)],
    )
    found = evaluate(facts)
    # Not the receive connector: its RemoteIPRanges cover NY, the firewall drops the connection.
    assert errors(found) == [("port-25-unreachable", "NY -> EX-FL1")]
    finding = found[0]
    assert finding.title == "An access list on ASA-FL blocks SMTP from NY to EX-FL1"
    assert [(f.kind.value, f.target, f.lines) for f in finding.fixes] == [
        ("asa", "ASA-FL", ("config t", f"no {DENY}", "exit", "wr me")),
        ("shell", None, ("Retry-Queue -Identity EX-NY1\\5",)),
    ]
    assert "packet-tracer input outside tcp 127.1.0.11 50000 127.2.0.11 25" in (
        finding.fixes[0].comment
    )
    firewall = [e.text for e in finding.evidence if e.kind.value == "firewall"]
    assert firewall == [
        f"ASA-FL: {BIND}; access-list outside_access_in line 1 extended deny tcp any host "
        "127.2.0.11 eq smtp refuses TCP/25 from 127.1.0.11 to 127.2.0.11 arriving on its "
        "outside interface (the firewall resets the connection and logs %ASA-4-106023)"
    ]
    assert any(e.kind.value == "probe" for e in finding.evidence)


def test_an_implicit_deny_gets_a_permit_at_the_top() -> None:
    acl = "access-list outside_access_in extended permit tcp any any eq https"
    found = evaluate(seed(firewalls=with_acl(acl, BIND)))
    assert errors(found) == [("port-25-unreachable", "NY -> EX-FL1")]
    assert found[0].fixes[0].lines == (
        "config t",
        "access-list outside_access_in line 1 extended permit tcp host 127.1.0.11 host "
        "127.2.0.11 eq smtp",
        "exit",
        "wr me",
    )
    assert "the implicit deny at the end of access-list outside_access_in" in found[0].summary


def test_a_second_deny_behind_the_first_is_covered_too() -> None:
    second = "access-list outside_access_in extended deny ip 127.1.0.0 255.255.0.0 any"
    found = evaluate(seed(firewalls=with_acl(DENY, second, BIND)))
    assert found[0].fixes[0].lines == (
        "config t",
        f"no {DENY}",
        "access-list outside_access_in line 1 extended permit tcp host 127.1.0.11 host "
        "127.2.0.11 eq smtp",
        "exit",
        "wr me",
    )


def test_access_lists_that_let_smtp_through_are_no_finding() -> None:
    unbound = with_acl(DENY)  # defined but bound to no interface
    permitted = with_acl(
        "access-list outside_access_in extended permit tcp host 127.1.0.11 any eq smtp", DENY, BIND
    )
    # On inside, the list judges FL -> NY, whose destination it does not deny.
    other_way = with_acl(
        DENY.replace("outside_access_in", "inside_in"),
        "access-list inside_in extended permit ip any any",
        BIND.replace("outside_access_in in interface outside", "inside_in in interface inside"),
    )
    for firewalls in (unbound, permitted, other_way):
        assert evaluate(seed(firewalls=firewalls)) == []
