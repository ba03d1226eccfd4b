"""The lab's address plan: which loopback address each host owns, and how sites reach each other.

Everything lives in 127.0.0.0/8, which Linux routes to the loopback
interface as a whole, so every process can bind its own address and a relay
can connect *from* the original client's address (the receiving server then
sees the sender's own address, as it would behind a routed IPsec tunnel).

Plan (N = the site's number: 1, 2, ... in topology order; the Internet is 99):

- site N owns 127.N.0.0/16; its firewall has 127.N.0.1; its servers 127.N.0.11, .12, ...
- from site A, server X of site B (B != A) with address 127.B.0.x is reached at
  ``127.A.B.x`` when A has a firewall (the firewall of A listens there), else at
  the tunnel address of B's firewall ``127.B.(100+A).x``, else directly;
- the firewall of B listens on ``127.B.(100+A).x`` for what comes from site A and
  relays it to X.

So a connection from NY (1) to EX-FL1 (127.2.0.11) goes
``127.1.0.11 -> 127.1.2.11 (ASA-NY) -> 127.2.101.11 (ASA-FL) -> 127.2.0.11``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

INTERNET_SITE_NUMBER = 99
FIRST_HOST_OCTET = 11
MAX_SITES = 98  # numbers 1..98; 99 is the Internet; tunnel octets stay below 256

# The service ports are the organization's (org/ports.py); named here for the lab.


class AddressPlanError(ValueError):
    pass


def plan_lock_path() -> str:
    """The file a test or benchmark locks while a lab of its own runs.

    Every lab binds the same loopback addresses, so labs of one network namespace take
    turns.  Each network namespace has a loopback of its own, so the lock is one per
    namespace (named by its inode): test workers in namespaces of their own start their
    labs side by side (scripts/test).
    """
    try:
        namespace = os.readlink("/proc/self/ns/net")  # "net:[4026531840]"
    except OSError:
        namespace = ""
    inode = "".join(ch for ch in namespace if ch.isdigit()) or "host"
    return f"/tmp/sitemail-lab-plan.{inode}.lock"


@dataclass(frozen=True)
class HostSpec:
    name: str
    site: str
    kind: str  # "server" | "internet"
    address: str | None = None  # its own (a server on another machine); None: the plan's


@dataclass(frozen=True)
class Listener:
    """One address a firewall listens on, and where it relays to (same port)."""

    listen: str
    forward: str
    from_site: str
    to_host: str
    direction: str  # "outbound" (leaves the firewall's site) | "inbound" (enters it)


@dataclass(frozen=True)
class Path:
    from_site: str
    host: str
    address: str
    source: str
    hops: tuple[str, ...]  # firewalls crossed, in order


@dataclass
class AddressPlan:
    site_numbers: dict[str, int]
    host_addresses: dict[str, str]
    firewall_addresses: dict[str, str]
    paths: list[Path] = field(default_factory=list)
    listeners: dict[str, list[Listener]] = field(default_factory=dict)

    def path(self, from_site: str, host: str) -> Path | None:
        for p in self.paths:
            if p.from_site == from_site and p.host == host:
                return p
        return None

    def address_from(self, from_site: str, host: str) -> str:
        """The address a host inside ``from_site`` uses to reach ``host``."""
        p = self.path(from_site, host)
        return p.address if p is not None else self.host_addresses[host]


def plan_addresses(
    sites: list[str],
    hosts: list[HostSpec],
    firewalls: dict[str, str],
    internet_site: str = "Internet",
) -> AddressPlan:
    """Compute the plan.  ``firewalls`` maps a site name to its firewall's name."""
    if len(sites) > MAX_SITES:
        raise AddressPlanError(f"a lab holds at most {MAX_SITES} sites, got {len(sites)}")
    numbers = {s: i + 1 for i, s in enumerate(sites)}
    numbers[internet_site] = INTERNET_SITE_NUMBER
    per_site: dict[str, int] = {}
    host_addr: dict[str, str] = {}
    host_site: dict[str, str] = {}
    for h in hosts:
        if h.site not in numbers:
            raise AddressPlanError(f"host {h.name}: unknown site {h.site!r}")
        j = per_site.get(h.site, 0)
        if FIRST_HOST_OCTET + j > 254:
            raise AddressPlanError(f"site {h.site}: too many hosts for one lab site")
        per_site[h.site] = j + 1
        host_addr[h.name] = h.address or f"127.{numbers[h.site]}.0.{FIRST_HOST_OCTET + j}"
        host_site[h.name] = h.site
    fw_addr = {fw: f"127.{numbers[site]}.0.1" for site, fw in firewalls.items()}
    plan = AddressPlan(numbers, host_addr, fw_addr, [], {fw: [] for fw in firewalls.values()})

    site_sources: dict[str, str] = {}
    for h in hosts:
        site_sources.setdefault(h.site, host_addr[h.name])

    for a in [*sites, internet_site]:
        if a not in site_sources:
            continue  # a site with no host has nobody to connect from
        na = numbers[a]
        for h in hosts:
            b = host_site[h.name]
            if b == a:
                continue
            nb = numbers[b]
            x = host_addr[h.name].rsplit(".", 1)[1]
            fa, fb = firewalls.get(a), firewalls.get(b)
            tunnel = f"127.{nb}.{100 + na}.{x}"
            hops: list[str] = []
            if fb is not None:
                plan.listeners[fb].append(Listener(tunnel, host_addr[h.name], a, h.name, "inbound"))
            if fa is not None:
                address = f"127.{na}.{nb}.{x}"
                forward = tunnel if fb is not None else host_addr[h.name]
                plan.listeners[fa].append(Listener(address, forward, a, h.name, "outbound"))
                hops.append(fa)
            elif fb is not None:
                address = tunnel
            else:
                address = host_addr[h.name]
            if fb is not None:
                hops.append(fb)
            plan.paths.append(Path(a, h.name, address, site_sources[a], tuple(hops)))
    return plan
