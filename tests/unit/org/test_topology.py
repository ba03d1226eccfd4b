from __future__ import annotations

from pathlib import Path

import pytest

from sitemail.org.model import (
    AuthMechanism,
    Mailbox,
    PermissionGroup,
    ReceiveConnector,
    Server,
    SizeEnabled,
    VirtualDirectory,
    VirtualDirectoryKind,
)
from sitemail.org.passwords import verify_password
from sitemail.org.topology import Topology, TopologyError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _objects(path: Path) -> dict[tuple[str, str], object]:
    topo = Topology.load(path)
    return {(o.kind, o.identity): o for o in topo.objects(hash_passwords=False)}


def test_seed_has_the_default_lab_of_the_scenarios() -> None:
    objs = _objects(EXAMPLES / "seed.yaml")
    servers = {i for k, i in objs if k == "Server"}
    assert servers == {"EX-NY1", "EX-FL1", "EX2003"}
    assert {i for k, i in objs if k == "Firewall"} == {"ASA-NY", "ASA-FL"}
    assert ("InternetHost", "INTERNET") in objs
    adam = objs[("Mailbox", "adam")]
    assert isinstance(adam, Mailbox) and adam.database == "FL-DB1"
    ex2003 = objs[("Server", "EX2003")]
    assert isinstance(ex2003, Server) and ex2003.version.product == "2003"


def test_every_2010_hub_gets_exchanges_two_default_receive_connectors() -> None:
    objs = _objects(EXAMPLES / "seed.yaml")
    default = objs[("ReceiveConnector", "EX-FL1\\Default EX-FL1")]
    client = objs[("ReceiveConnector", "EX-FL1\\Client EX-FL1")]
    assert isinstance(default, ReceiveConnector) and isinstance(client, ReceiveConnector)
    assert default.bindings == ["0.0.0.0:25"]
    assert default.remote_ip_ranges == ["0.0.0.0-255.255.255.255"]
    assert [m.value for m in default.auth_mechanism] == [
        "Tls",
        "Integrated",
        "BasicAuth",
        "BasicAuthRequireTLS",
        "ExchangeServer",
    ]
    assert [g.value for g in default.permission_groups] == [
        "ExchangeUsers",
        "ExchangeServers",
        "ExchangeLegacyServers",
    ]
    assert default.size_enabled is SizeEnabled.ENABLED_WITHOUT_VALUE
    assert client.bindings == ["0.0.0.0:587"]
    assert AuthMechanism.EXCHANGE_SERVER not in client.auth_mechanism
    assert client.permission_groups == [PermissionGroup.EXCHANGE_USERS]
    assert client.size_enabled is SizeEnabled.ENABLED
    # No default connector lets anonymous senders in (spec 1.1).
    assert PermissionGroup.ANONYMOUS_USERS not in default.permission_groups
    assert ("ReceiveConnector", "EX2003\\Default EX2003") not in objs


def test_transport_server_defaults_follow_the_spec() -> None:
    objs = _objects(EXAMPLES / "seed.yaml")
    s = objs[("Server", "EX-NY1")]
    assert isinstance(s, Server)
    t = s.transport
    assert t.transient_failure_retry_count == 6
    assert t.transient_failure_retry_interval.total_seconds() == 300
    assert t.outbound_connection_failure_retry_interval.total_seconds() == 600
    assert t.message_expiration_timeout.days == 2
    assert t.delay_notification_timeout.total_seconds() == 4 * 3600
    assert t.intra_org_connector_protocol_logging_level.value == "None"


def test_fl_virtual_directories_start_with_null_external_url() -> None:
    objs = _objects(EXAMPLES / "seed.yaml")
    owa = objs[("VirtualDirectory", "EX-FL1\\owa (Default Web Site)")]
    assert isinstance(owa, VirtualDirectory)
    assert owa.type is VirtualDirectoryKind.OWA
    assert owa.internal_url == "https://ex-fl1.contoso.com/owa"
    assert owa.external_url is None


def test_us_eu_replays_the_second_story_names() -> None:
    objs = _objects(EXAMPLES / "us-eu.yaml")
    owa = objs[("VirtualDirectory", "CASHUB2\\owa (Default Web Site)")]
    assert isinstance(owa, VirtualDirectory)
    assert owa.internal_url == "https://euemail.exchangelaboratory.com/owa"
    assert owa.external_url is None
    adam = objs[("Mailbox", "adam")]
    assert isinstance(adam, Mailbox) and adam.primary_smtp_address == "adam@exchangelaboratory.com"


def test_passwords_are_stored_hashed() -> None:
    topo = Topology.load(EXAMPLES / "us-eu.yaml")
    adam = next(o for o in topo.objects() if isinstance(o, Mailbox) and o.alias == "adam")
    assert adam.password_hash and "Pa55word!" not in adam.password_hash
    assert verify_password("Pa55word!", adam.password_hash)
    assert not verify_password("wrong", adam.password_hash)


BASE = """\
organization:
  name: T
  accepted_domains: [t.test]
sites:
  - name: A
servers:
  - name: S1
    site: A
    roles: [HubTransport]
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BASE.replace("site: A", "site: B"), "x.yaml:8: servers[0].site: unknown site 'B'"),
        (BASE.replace("roles: [HubTransport]", "roles: [Hub]"), "x.yaml:9: servers[0].roles[0]"),
        (BASE + "    colour: red\n", "x.yaml:10: servers[0].colour: unknown field"),
        (BASE.replace("  name: T\n", ""), "organization.name: missing field"),
        (BASE + "  - name: S1\n    site: A\n", "servers[1].name: server 'S1' twice"),
        ("organization: [\n", "x.yaml:2: not valid YAML"),
        (
            BASE + "    version: 2016\n",
            "x.yaml:10: servers[0].version: Value error, unknown Exchange version '2016'",
        ),
        (
            BASE + "    receive_connectors:\n      - {name: R, bindings: ['1.2.3:25']}\n",
            "binding '1.2.3:25' has no valid IPv4 address",
        ),
        (
            BASE + "directory: {backend: ldap, url: 'dc1:389'}\n",
            "x.yaml:10: directory.url: Value error, expected ldap://HOST:PORT/BASE-DN",
        ),
        (BASE + "directory: {backend: x500}\n", "x.yaml:10: directory.backend"),
        (BASE + "    address: 10.0.0\n", "servers[0].address: Value error, '10.0.0' is not"),
        (
            BASE + "    address: 10.0.0.5\nfirewalls:\n  - {name: F, site: A}\n",
            "x.yaml:10: servers[0].address: a server with an address of its own needs a "
            "topology without firewalls",
        ),
    ],
)
def test_errors_name_the_file_the_line_and_the_field(text: str, expected: str) -> None:
    with pytest.raises(TopologyError) as info:
        Topology.parse(text, "x.yaml")
    assert expected in str(info.value)


def test_the_directory_key_chooses_the_labs_directory_and_its_base_dn() -> None:
    assert Topology.parse(BASE).spec.directory.backend == "embedded"
    managed = Topology.parse(BASE + "directory: {backend: ldap}\n")
    assert managed.spec.directory.backend == "ldap" and managed.spec.directory.url is None
    assert managed.base_dn() == "DC=t,DC=test"  # from the first accepted domain
    given = Topology.parse(BASE + "directory: {backend: ldap, base_dn: 'O=Tee'}\n")
    assert given.base_dn() == "O=Tee"
    url = "ldap://dc1.t.test:389/DC=t,DC=test?bind=CN=sitemail,CN=Users,DC=t,DC=test"
    theirs = Topology.parse(BASE + f"directory: {{backend: ldap, url: '{url}'}}\n")
    assert theirs.spec.directory.url == url


def test_a_server_on_another_machine_keeps_its_own_address() -> None:
    topo = Topology.parse(BASE + "    address: 10.0.0.5\n")
    assert topo.spec.servers[0].address == "10.0.0.5"
