from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from sitemail.lab.addressing import HostSpec, plan_addresses


def _seed_plan():  # type: ignore[no-untyped-def]
    hosts = [
        HostSpec("EX-NY1", "NY", "server"),
        HostSpec("EX2003", "NY", "server"),
        HostSpec("EX-FL1", "FL", "server"),
        HostSpec("INTERNET", "Internet", "internet"),
    ]
    return plan_addresses(["NY", "FL"], hosts, {"NY": "ASA-NY", "FL": "ASA-FL"})


def test_every_host_gets_its_own_loopback_address_in_its_sites_block() -> None:
    plan = _seed_plan()
    assert plan.host_addresses == {
        "EX-NY1": "127.1.0.11",
        "EX2003": "127.1.0.12",
        "EX-FL1": "127.2.0.11",
        "INTERNET": "127.99.0.11",
    }
    assert plan.firewall_addresses == {"ASA-NY": "127.1.0.1", "ASA-FL": "127.2.0.1"}


def test_ny_to_fl_crosses_both_firewalls_in_order() -> None:
    plan = _seed_plan()
    path = plan.path("NY", "EX-FL1")
    assert path is not None
    assert path.hops == ("ASA-NY", "ASA-FL")
    assert path.address == "127.1.2.11"
    assert path.source == "127.1.0.11"
    out = next(x for x in plan.listeners["ASA-NY"] if x.listen == path.address)
    inbound = next(x for x in plan.listeners["ASA-FL"] if x.listen == out.forward)
    assert inbound.forward == "127.2.0.11"


def test_internet_reaches_ny_through_asa_ny_only() -> None:
    plan = _seed_plan()
    path = plan.path("Internet", "EX-NY1")
    assert path is not None and path.hops == ("ASA-NY",)
    assert plan.path("NY", "EX2003") is None  # same site: direct
    assert plan.address_from("NY", "EX2003") == "127.1.0.12"


def test_without_firewalls_paths_are_direct() -> None:
    plan = plan_addresses(
        ["US", "EU"], [HostSpec("A", "US", "server"), HostSpec("B", "EU", "server")], {}
    )
    p = plan.path("US", "B")
    assert p is not None and p.address == "127.2.0.11" and p.hops == ()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=6),
    st.sets(st.integers(min_value=0, max_value=5)),
)
def test_addresses_are_unique_loopback_and_every_path_leads_to_its_host(
    hosts_per_site: list[int], with_firewall: set[int]
) -> None:
    sites = [f"S{i}" for i in range(len(hosts_per_site))]
    hosts = [
        HostSpec(f"H{i}-{j}", sites[i], "server")
        for i, n in enumerate(hosts_per_site)
        for j in range(n)
    ]
    firewalls = {sites[i]: f"FW{i}" for i in with_firewall if i < len(sites)}
    plan = plan_addresses(sites, hosts, firewalls)
    listening: dict[str, str] = {}
    for _fw, listeners in plan.listeners.items():
        for lst in listeners:
            assert lst.listen not in listening, "two listeners on one address"
            listening[lst.listen] = lst.forward
    all_addresses = list(plan.host_addresses.values()) + list(plan.firewall_addresses.values())
    assert len(set(all_addresses)) == len(all_addresses)
    for a in [*all_addresses, *listening]:
        assert ipaddress.IPv4Address(a) in ipaddress.IPv4Network("127.0.0.0/8")
        assert a not in plan.host_addresses.values() or a not in listening
    for path in plan.paths:
        # Follow the relays from the path address; we must arrive at the host.
        addr, steps = path.address, 0
        while addr in listening:
            addr = listening[addr]
            steps += 1
        assert addr == plan.host_addresses[path.host]
        assert steps == len(path.hops)


def test_a_host_with_an_address_of_its_own_keeps_it_and_is_reached_there() -> None:
    hosts = [
        HostSpec("EX-NY1", "NY", "server", "192.0.2.10"),
        HostSpec("EX-FL1", "FL", "server", "198.51.100.20"),
    ]
    plan = plan_addresses(["NY", "FL"], hosts, {})
    assert plan.host_addresses == {"EX-NY1": "192.0.2.10", "EX-FL1": "198.51.100.20"}
    assert plan.address_from("NY", "EX-FL1") == "198.51.100.20"
    assert plan.address_from("FL", "EX-NY1") == "192.0.2.10"
