"""Access lists as data: which entry a new connection meets, and the text the ASA shows."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sitemail.firewall.acl import (
    AccessGroup,
    AccessList,
    Ace,
    AddressSpec,
    Packet,
    Remark,
    ace_hash,
    evaluate,
    port_number,
    port_text,
)
from sitemail.firewall.asa_cli import AsaCli
from sitemail.firewall.asa_config import parse_config, render_config

ANY = AddressSpec("any")
MAIL = AddressSpec("host", "10.0.0.5")
NY = AddressSpec.network("127.1.0.0", "255.255.0.0")


def smtp(source: str = "127.1.0.11", destination: str = "10.0.0.5", port: int = 25) -> Packet:
    return Packet.tcp(source, 50123, destination, port)


def test_text_is_the_asa_display_form() -> None:
    assert Ace("deny", "tcp", ANY, MAIL, destination_port=25).text() == (
        "extended deny tcp any host 10.0.0.5 eq smtp"
    )
    assert Ace("permit", "ip", NY, AddressSpec("any4")).text() == (
        "extended permit ip 127.1.0.0 255.255.0.0 any4"
    )
    # A /32 given as address and mask is stored as a host; ports by name where the ASA has one.
    host = AddressSpec.network("10.0.0.5", "255.255.255.255")
    assert host == MAIL
    assert Ace("permit", "tcp", NY, host, 1025, 587, log=True).text() == (
        "extended permit tcp 127.1.0.0 255.255.0.0 eq 1025 host 10.0.0.5 eq 587 log"
    )
    assert Remark("mail between the sites").text() == "remark mail between the sites"
    assert [port_text(p) for p in (25, 80, 443, 110, 143, 587, 993)] == [
        "smtp",
        "www",
        "https",
        "pop3",
        "imap4",
        "587",
        "993",
    ]
    assert [port_number(w) for w in ("smtp", "25", "http", "www", "SMTP", "bogus", "70000")] == [
        25,
        25,
        80,
        80,
        25,
        None,
        None,
    ]


def test_the_hash_is_stable_and_differs_per_line() -> None:
    deny = Ace("deny", "tcp", ANY, MAIL, destination_port=25)
    assert ace_hash("OUT", deny) == ace_hash("OUT", Ace("deny", "tcp", ANY, MAIL, None, 25))
    assert ace_hash("OUT", deny) != ace_hash("IN", deny)
    assert ace_hash("OUT", deny) != ace_hash("OUT", Ace("permit", "tcp", ANY, MAIL, None, 25))
    assert len(ace_hash("OUT", deny)) == 10 and ace_hash("OUT", deny).startswith("0x")


def test_no_access_group_lets_everything_through() -> None:
    acl = AccessList("OUT", [Ace("deny", "ip", ANY, ANY)])
    verdict = evaluate([acl], [AccessGroup("OUT", "outside")], "inside", smtp())
    assert verdict.permitted and verdict.group is None


def test_first_match_decides_then_the_implicit_deny() -> None:
    acl = AccessList(
        "OUT",
        [
            Remark("no SMTP to the mail server from NY"),
            Ace("deny", "tcp", NY, MAIL, destination_port=25),
            Ace("permit", "tcp", ANY, MAIL, destination_port=25),
            Ace("permit", "tcp", ANY, ANY, destination_port=443),
        ],
    )
    groups = [AccessGroup("OUT", "outside")]

    denied = evaluate([acl], groups, "outside", smtp("127.1.0.11"))
    assert not denied.permitted and denied.line == 2 and denied.ace is acl.entries[1]
    allowed = evaluate([acl], groups, "outside", smtp("127.9.0.1"))
    assert allowed.permitted and allowed.line == 3
    https = evaluate([acl], groups, "outside", smtp("127.1.0.11", "10.9.9.9", 443))
    assert https.permitted and https.line == 4
    implicit = evaluate([acl], groups, "outside", smtp("127.9.0.1", "10.0.0.6"))
    assert not implicit.permitted and implicit.implicit and implicit.line is None
    assert implicit.group == groups[0]


@pytest.mark.parametrize(
    ("ace", "packet", "matches"),
    [
        (Ace("permit", "ip", ANY, ANY), smtp(), True),
        (Ace("permit", "tcp", ANY, ANY, destination_port=25), smtp(port=587), False),
        (Ace("permit", "tcp", ANY, ANY, source_port=25), smtp(), False),
        (Ace("permit", "tcp", ANY, ANY, source_port=50123), smtp(), True),
        (Ace("permit", "tcp", MAIL, ANY), smtp(), False),
        (Ace("permit", "tcp", NY, MAIL), smtp("127.1.255.255"), True),
        (Ace("permit", "tcp", NY, MAIL), smtp("127.2.0.1"), False),
        # An ACE that names a source port never matches a port nobody knows.
        (
            Ace("permit", "tcp", ANY, ANY, source_port=1),
            Packet(ipaddress.IPv4Address("1.1.1.1"), ipaddress.IPv4Address("2.2.2.2"), 25, None),
            False,
        ),
    ],
)
def test_ace_matching(ace: Ace, packet: Packet, matches: bool) -> None:
    assert ace.matches(packet) is matches


ADDRESSES = st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address)


@given(seed=ADDRESSES, source=ADDRESSES, port=st.integers(0, 65535), bits=st.integers(0, 32))
def test_a_network_entry_matches_exactly_its_addresses(
    seed: ipaddress.IPv4Address, source: ipaddress.IPv4Address, port: int, bits: int
) -> None:
    network = ipaddress.IPv4Network(f"{seed}/{bits}", strict=False)
    spec = AddressSpec.network(str(network.network_address), str(network.netmask))
    acl = AccessList("L", [Ace("permit", "tcp", spec, ANY, destination_port=port)])
    packet = Packet(source, ipaddress.IPv4Address("10.0.0.5"), port)
    verdict = evaluate([acl], [AccessGroup("L", "inside")], "inside", packet)
    # Permitted by the entry when the source is in the network, else the implicit deny.
    assert verdict.permitted is (source in network)
    assert verdict.implicit is (source not in network)


PORTS = st.one_of(st.none(), st.integers(0, 65535))


@st.composite
def address_specs(draw: st.DrawFn) -> AddressSpec:
    kind = draw(st.sampled_from(["any", "any4", "host", "network"]))
    if kind in ("any", "any4"):
        return AddressSpec(kind)
    address = draw(ADDRESSES)
    if kind == "host":
        return AddressSpec("host", str(address))
    network = ipaddress.IPv4Network(f"{address}/{draw(st.integers(0, 31))}", strict=False)
    return AddressSpec.network(str(network.network_address), str(network.netmask))


@st.composite
def aces(draw: st.DrawFn) -> Ace:
    protocol = draw(st.sampled_from(["tcp", "ip"]))
    ports = (draw(PORTS), draw(PORTS)) if protocol == "tcp" else (None, None)
    return Ace(
        draw(st.sampled_from(["permit", "deny"])),
        protocol,
        draw(address_specs()),
        draw(address_specs()),
        ports[0],
        ports[1],
        draw(st.booleans()),
    )


@given(entries=st.lists(aces(), min_size=1, max_size=6, unique=True))
def test_typed_entries_save_and_read_back_as_the_same_list(entries: list[Ace]) -> None:
    cli = AsaCli(privileged=True)
    cli.feed("configure terminal")
    for ace in entries:
        assert cli.feed(f"access-list L {ace.text()}").output == ""
    assert cli.feed("access-group L in interface outside").output == ""
    assert cli.running.access_lists == [AccessList("L", list(entries))]
    text = render_config(cli.running)
    again = parse_config(text)
    assert again.access_lists == cli.running.access_lists
    assert again.access_groups == [AccessGroup("L", "outside")]
    assert render_config(again) == text
