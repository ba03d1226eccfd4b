"""Random Exchange organizations: sites, hubs, addresses, receive connectors, devices.

Everything is drawn from one ``random.Random`` so an organization is fixed by
its seed.  Times are integer milliseconds since the Unix epoch (UTC).

A receive connector keeps a list of versions ``(since_ms, ConnCfg | None)``:
a fault changes a connector by adding a version at the time the administrator
made the change, and a session uses the version in force when it starts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from tests.corpus import names

ALL = ((0, 0xFFFFFFFF),)

# Default AuthMechanism / PermissionGroups of the setup-created connectors (spec 1.1).
DEFAULT_AUTH = frozenset(
    {"Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer"}
)
CLIENT_AUTH = frozenset({"Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS"})
DEFAULT_GROUPS = frozenset({"ExchangeUsers", "ExchangeServers", "ExchangeLegacyServers"})
FRONTEND_GROUPS = frozenset({"AnonymousUsers", "ExchangeServers", "ExchangeLegacyServers"})


def ip2int(ip: str) -> int:
    a, b, c, d = (int(x) for x in ip.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def int2ip(n: int) -> str:
    return f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def range_text(ranges: tuple[tuple[int, int], ...]) -> str:
    parts = []
    for lo, hi in ranges:
        parts.append(int2ip(lo) if lo == hi else f"{int2ip(lo)}-{int2ip(hi)}")
    return ", ".join(parts)


@dataclass(frozen=True)
class ConnCfg:
    """A receive connector's settings at one moment (``Get-ReceiveConnector``)."""

    ranges: tuple[tuple[int, int], ...] = ALL
    auth: frozenset[str] = DEFAULT_AUTH
    groups: frozenset[str] = DEFAULT_GROUPS
    anon_relay: bool = False
    """ms-Exch-SMTP-Accept-Any-Recipient granted to ANONYMOUS LOGON (Add-ADPermission)."""
    size: str = "SIZE"
    chunking: bool = True
    gssapi: bool = False
    refusal: str | None = None
    """A fault's MAIL FROM reply for authenticated servers (a lost permission group)."""
    auth_rights: str | None = None
    """A fault's rights row after X-EXPS (None: computed from ``groups``)."""


@dataclass(eq=False)
class Connector:
    name: str
    hub: Hub
    port: int
    kind: str  # default, client, internet, relay, frontend, client-frontend
    bind_ip: str | None = None
    versions: list[tuple[int, ConnCfg | None]] = field(default_factory=list)

    @property
    def identity(self) -> str:
        return f"{self.hub.name}\\{self.name}"

    def at(self, t: int) -> ConnCfg | None:
        current: ConnCfg | None = None
        for since, cfg in self.versions:
            if since > t:
                break
            current = cfg
        return current

    def change(self, t: int, **changes: object) -> ConnCfg:
        """Add a version from ``t`` on: the one in force then, with ``changes``."""
        base = self.at(t)
        assert base is not None
        new = replace(base, **changes)  # type: ignore[arg-type]
        self.versions.append((t, new))
        self.versions.sort(key=lambda v: v[0])
        return new

    @property
    def folder(self) -> str:
        """Which 2013+ transport service logs it: ``Hub`` (2525) or ``FrontEnd``."""
        return "Hub" if self.port == 2525 else "FrontEnd"


@dataclass
class Device:
    name: str
    ip: str
    helo: str  # "EHLO" or "HELO"
    sender: str
    kind: str
    relay: str = ""


@dataclass(eq=False)
class Site:
    name: str
    code: str
    tz: int  # minutes east of UTC
    net: int
    size: int
    internet: bool = False
    hubs: list[Hub] = field(default_factory=list)

    def host(self, offset: int) -> str:
        return int2ip(self.net + offset)

    @property
    def range(self) -> tuple[int, int]:
        return (self.net, self.net + self.size - 1)


@dataclass(eq=False)
class Hub:
    name: str
    fqdn: str
    ip: str
    site: Site
    release: str  # 2007 2010 2013 2016 2019
    version: str
    ip2: str | None = None
    connectors: list[Connector] = field(default_factory=list)
    internet_in: bool = False
    internet_out: bool = False
    devices: list[Device] = field(default_factory=list)
    log_recv: bool = True
    log_send: bool = True
    log_intra: bool = True
    tracking: bool = False
    layout: str = "transportroles"
    sid: int = 0
    sid_base: int = 0
    internal_id: int = 0

    @property
    def modern(self) -> bool:
        return self.release not in ("2007", "2010")

    @property
    def intra_port(self) -> int:
        return 2525 if self.modern else 25

    @property
    def ip_int(self) -> int:
        return ip2int(self.ip)

    @property
    def default(self) -> Connector:
        return next(c for c in self.connectors if c.kind == "default")

    def connector(self, kind: str) -> Connector | None:
        return next((c for c in self.connectors if c.kind == kind), None)

    def next_sid(self, t: int) -> str:
        """A 16-hex session id that grows with the session's start time, as Exchange's do."""
        self.sid += 1
        return f"{self.sid_base + t * 4096 + (self.sid & 4095):016X}"

    def next_internal_id(self, rng: random.Random) -> int:
        self.internal_id += rng.randint(1, 9)
        return self.internal_id

    def select(
        self, local_ip: str, port: int, remote: int, t: int
    ) -> tuple[Connector, ConnCfg] | None:
        """The receive connector a connection lands on (spec 1.6): most specific range."""
        best: tuple[tuple[int, int], Connector, ConnCfg] | None = None
        for c in self.connectors:
            if c.port != port or (c.bind_ip is not None and c.bind_ip != local_ip):
                continue
            cfg = c.at(t)
            if cfg is None:
                continue
            for lo, hi in cfg.ranges:
                # A connector bound to the address itself wins a tie with 0.0.0.0.
                key = (hi - lo, 0 if c.bind_ip else 1)
                if lo <= remote <= hi and (best is None or key < best[0]):
                    best = (key, c, cfg)
        return None if best is None else (best[1], best[2])


@dataclass(eq=False)
class Org:
    name: str
    domains: list[str]
    ad_domain: str
    netbios: str
    sites: list[Site]
    hubs: list[Hub]
    users: list[str]
    partners: list[str]
    send_connector: str
    t0: int
    t1: int
    size: str
    knobs: dict[str, object] = field(default_factory=dict)

    @property
    def domain(self) -> str:
        return self.domains[0]

    @property
    def releases(self) -> list[str]:
        return sorted({h.release for h in self.hubs})

    def is_internal(self, ip: int) -> bool:
        return any(lo <= ip <= hi for lo, hi in (s.range for s in self.sites))

    def hub_named(self, name: str) -> Hub:
        return next(h for h in self.hubs if h.name == name)


SIZES = {
    # hours of logs, hub-to-hub sessions, other sessions, rotation bytes
    "tiny": (2, 40, 120, 64 * 1024),
    "small": (6, 300, 1800, 300 * 1024),
    "medium": (10, 700, 4000, 2 * 1024 * 1024),
    "large": (24, 3000, 16000, 10 * 1024 * 1024),
}


def _weighted(rng: random.Random, table: tuple[tuple[object, int], ...]) -> object:
    total = sum(w for _, w in table)
    pick = rng.uniform(0, total)
    for item, w in table:
        pick -= w
        if pick <= 0:
            return item
    return table[-1][0]


def _name_style(rng: random.Random, short: str) -> str:
    return rng.choice(
        (
            "EX{n:02d}",
            "{c}-HUB{k}",
            "MBX-{c}-{k:02d}",
            "{c}EX{k}",
            "EX-{c}{k}",
            short + "{c}HT{k:02d}",
            "HT-{c}-{k}",
            "EXCH{n:02d}",
        )
    )


def _address_plan(rng: random.Random, count: int) -> list[tuple[int, int]]:
    kind = _weighted(rng, (("10", 40), ("172", 20), ("192", 20), ("public", 20)))
    if kind == "10":
        a, step = rng.randint(0, 250), rng.choice((1, 10, 16))
        base = rng.randint(0, 200 - count * step)
        return [(ip2int(f"10.{a}.{base + i * step}.0"), 256) for i in range(count)]
    if kind == "172":
        b, base = rng.randint(16, 31), rng.randint(0, 200)
        return [(ip2int(f"172.{b}.{base + i}.0"), 256) for i in range(count)]
    if kind == "192":
        step = rng.choice((1, 10))
        base = rng.randint(0, 250 - count * step)
        return [(ip2int(f"192.168.{base + i * step}.0"), 256) for i in range(count)]
    net = rng.choice(("131.107", "203.0.113", "198.51.100", "157.54"))
    if net in ("203.0.113", "198.51.100"):
        return [(ip2int(f"{net}.{32 * i}"), 32) for i in range(count)]
    base = rng.randint(0, 200)
    return [(ip2int(f"{net}.{base + i}.0"), 256) for i in range(count)]


def make_org(
    rng: random.Random,
    seed: int,
    size: str,
    min_sites: int = 1,
    min_hubs: int = 1,
    releases: tuple[str, ...] | None = None,
    legacy: bool = False,
) -> Org:
    """A random organization (no traffic, no fault)."""
    base = rng.choice(names.ORGS)
    tld = rng.choice(names.TLDS)
    domain = base + tld
    short = "".join(w[0] for w in base.split("-")).upper()[:3] + rng.choice(("", "X"))
    ad = rng.choice((domain, "corp." + domain, "ad." + domain, base.replace("-", "") + ".local"))
    netbios = base.replace("-", "").upper()[:15]
    domains = [domain] + ([base.replace("-", "") + ".example.com"] if rng.random() < 0.3 else [])

    profiles = names.PROFILES
    if legacy:
        profiles = tuple(p for p in profiles if set(p[0]) <= {"2007", "2010"})
    profile: tuple[str, ...] = _weighted(rng, profiles)  # type: ignore[assignment]
    releases = releases or profile
    newest = releases[-1]
    year = rng.randint(*names.YEARS[newest])
    start = datetime(
        year,
        rng.randint(1, 12),
        rng.randint(1, 28),
        rng.randint(0, 20),
        rng.randint(0, 59),
        tzinfo=UTC,
    )
    hours, _, _, _ = SIZES[size]
    t0 = int(start.timestamp() * 1000)
    t1 = t0 + hours * 3600_000

    nsites = max(
        min_sites, int(_weighted(rng, ((1, 10), (2, 30), (3, 25), (4, 15), (5, 10), (6, 10))))
    )  # type: ignore[call-overload]
    picks = rng.sample(names.SITES, nsites)
    plan = _address_plan(rng, nsites)
    sites = [
        Site(name=p[1], code=p[0], tz=p[2], net=net, size=sz)
        for p, (net, sz) in zip(picks, plan, strict=True)
    ]
    sites[0].internet = True
    if nsites > 2 and rng.random() < 0.4:
        sites[rng.randrange(1, nsites)].internet = True

    style_old = _name_style(rng, short)
    style_new = style_old if rng.random() < 0.4 else _name_style(rng, short)
    hubs: list[Hub] = []
    taken: set[str] = set()
    for si, site in enumerate(sites):
        k_count = int(_weighted(rng, ((1, 35), (2, 40), (3, 15), (4, 10))))  # type: ignore[call-overload]
        if si == 0 and (nsites == 1 or min_hubs > 1):
            k_count = max(k_count, 2)
        for k in range(1, k_count + 1):
            release = (
                releases[0]
                if len(releases) == 1
                else (releases[-1] if (si + k) % 2 == 0 or rng.random() < 0.3 else releases[0])
            )
            style = style_new if release == newest else style_old
            name = style.format(n=len(hubs) + 1, k=k, c=site.code).upper()[:15]
            while name in taken:
                name = (name[:13] + f"{rng.randint(10, 99)}")[:15]
            taken.add(name)
            if site.size == 32:
                offset = 3 + k
            else:
                offset = 10 if k == 1 else offset + rng.choice((1, 1, 5, 10))
            hub = Hub(
                name=name,
                fqdn=f"{name.lower()}.{ad}",
                ip=site.host(offset),
                site=site,
                release=release,
                version=rng.choice(names.VERSIONS[release]),
            )
            hub.ip2 = site.host(offset + (8 if site.size == 32 else 100))
            hub.sid_base = rng.getrandbits(48) | ((0x08C if release == "2007" else 0x08D) << 52)
            hub.internal_id = rng.randint(1000, 90_000_000)
            site.hubs.append(hub)
            hubs.append(hub)

    users = sorted({f"{rng.choice(names.FIRST)}.{rng.choice(names.LAST)}" for _ in range(40)})
    partners = sorted(rng.sample(names.PARTNERS, 8))
    org = Org(
        name=f"{base}-{seed % 100000:05d}",
        domains=domains,
        ad_domain=ad,
        netbios=netbios,
        sites=sites,
        hubs=hubs,
        users=users,
        partners=partners,
        send_connector=rng.choice(names.SEND_CONNECTORS),
        t0=t0,
        t1=t1,
        size=size,
    )
    org.knobs = {
        "chunking": rng.random() < 0.8,
        "pipelining": rng.random() < 0.9,
        "size": rng.choice(("SIZE", "SIZE", "SIZE 10485760", "SIZE 20971520", "SIZE 36700160")),
        "gssapi": rng.random() < 0.2,
        "x451_in": rng.choice(("data", "context")),
        "quit_221": rng.random() < 0.6,
        "tls_rows": rng.choice(("short", "long")),
        "authenticated_row": rng.random() < 0.5,
        "rights_xshadow": rng.choice(("SMTPSendXShadow", "SendXShadow")),
    }
    _add_connectors(rng, org)
    return org


def _add_connectors(rng: random.Random, org: Org) -> None:
    size = str(org.knobs["size"])
    chunking = bool(org.knobs["chunking"])
    gssapi = bool(org.knobs["gssapi"])
    for site in org.sites:
        facing = (
            rng.sample(site.hubs, min(len(site.hubs), rng.choice((1, 2)))) if site.internet else []
        )
        for hub in site.hubs:
            start = org.t0 - 400 * 86400_000
            base = ConnCfg(size=size, chunking=chunking, gssapi=gssapi)
            hub.internet_in = hub in facing
            hub.internet_out = hub.internet_in or (site.internet and rng.random() < 0.5)
            if hub.modern:
                fe = Connector(f"Default Frontend {hub.name}", hub, 25, "frontend")
                fe.versions.append(
                    (start, replace(base, groups=FRONTEND_GROUPS, size="SIZE 37748736"))
                )
                dflt = Connector(f"Default {hub.name}", hub, 2525, "default")
                dflt.versions.append((start, replace(base, size="SIZE 37748736")))
                client = Connector(f"Client Frontend {hub.name}", hub, 587, "client")
                client.versions.append(
                    (
                        start,
                        replace(
                            base,
                            auth=CLIENT_AUTH,
                            groups=frozenset({"ExchangeUsers"}),
                            size="SIZE 37748736",
                        ),
                    )
                )
                hub.connectors += [fe, dflt, client]
            else:
                dflt = Connector(f"Default {hub.name}", hub, 25, "default")
                groups = DEFAULT_GROUPS
                if hub.internet_in and rng.random() < 0.5:
                    groups = groups | {"AnonymousUsers"}
                dflt.versions.append((start, replace(base, groups=groups)))
                client = Connector(f"Client {hub.name}", hub, 587, "client")
                client.versions.append(
                    (
                        start,
                        replace(
                            base,
                            auth=CLIENT_AUTH,
                            groups=frozenset({"ExchangeUsers"}),
                            size="SIZE 10485760",
                        ),
                    )
                )
                hub.connectors += [dflt, client]
                if hub.internet_in and "AnonymousUsers" not in groups:
                    name = rng.choice(names.INTERNET).format(h=hub.name)
                    inet = Connector(name, hub, 25, "internet", bind_ip=hub.ip2)
                    inet.versions.append(
                        (
                            start,
                            replace(
                                base,
                                auth=frozenset({"Tls"}) if rng.random() < 0.7 else CLIENT_AUTH,
                                groups=frozenset({"AnonymousUsers"}),
                                size="SIZE 20971520",
                            ),
                        )
                    )
                    hub.connectors.append(inet)
            if rng.random() < 0.35:
                add_relay(rng, org, hub, start)


def add_relay(
    rng: random.Random, org: Org, hub: Hub, since: int, *, devices: bool = True, port: int = 25
) -> Connector:
    """A relay connector on ``hub``; with ``devices``, scoped to a few internal devices."""
    site = hub.site
    taken = {c.name for c in hub.connectors}
    name = rng.choice(names.RELAYS).format(h=hub.name)
    while name in taken:
        name = f"{name} {rng.randint(2, 9)}"
    found = []
    for i in range(rng.randint(2, 5) if devices else 0):
        tmpl, helo, kind = rng.choice(names.DEVICES)
        offset = (20 + i) if site.size == 32 else rng.randint(150, 240)
        dev_name = tmpl.format(n=i + 1)
        sender = f"{dev_name.lower()}@{org.domain}" if kind != "app" else f"noreply@{org.domain}"
        found.append(Device(dev_name, site.host(offset), helo, sender, kind, name))
    ranges = tuple(sorted({(ip2int(d.ip), ip2int(d.ip)) for d in found})) or ALL
    relay = Connector(name, hub, port, "relay")
    relay.versions.append(
        (
            since,
            ConnCfg(
                ranges=ranges,
                auth=frozenset({"Tls"}) if rng.random() < 0.5 else frozenset({"None"}),
                groups=frozenset({"AnonymousUsers"}),
                anon_relay=True,
                size="SIZE 10485760",
                chunking=bool(org.knobs["chunking"]),
            ),
        )
    )
    hub.connectors.append(relay)
    hub.devices += found
    return relay
