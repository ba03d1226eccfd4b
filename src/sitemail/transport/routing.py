"""Where a recipient goes next: resolution and least-cost routing (spec 6.1, 6.2).

Pure functions over a snapshot of the directory:

1. the recipient address -> mailbox (any of its addresses) -> homeMDB ->
   mailbox server -> that server's site and version;
2. a mailbox in the local site is delivered by the store driver
   (``MapiDelivery``, next hop the mailbox server's FQDN); one in another site
   goes straight to the hubs of that site (``SmtpRelayToRemoteAdSite``, next
   hop the site's name), unless a hub site lies on the least-cost path;
3. an address outside the accepted domains goes to the send connector whose
   address space matches best (``SmartHostConnectorDelivery`` /
   ``DnsConnectorDelivery`` on its source servers, or relayed to the nearest
   site that has one);
4. an unknown address in an authoritative domain fails with
   ``550 5.1.1 RESOLVER.ADR.RecipNotFound; not found``; anything with no route
   waits in Unreachable.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from sitemail.org.directory import Directory
from sitemail.org.model import (
    AcceptedDomainType,
    ExchangeVersion,
    Mailbox,
    MailboxDatabase,
    Organization,
    SendConnector,
    Server,
    Site,
    SiteLink,
)
from sitemail.transport.queue import (
    DeliveryType,
    FailRecipient,
    NextHop,
    RouteDecision,
    UnreachableRoute,
)

RECIP_NOT_FOUND = "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"
#: The routing group an Exchange 2003 server sits in (its queue's NextHopDomain).
LEGACY_ROUTING_GROUP = "First Routing Group"


@dataclass
class RoutingTable:
    """A snapshot of what routing reads from the directory."""

    organization: Organization
    sites: list[Site]
    links: list[SiteLink]
    servers: list[Server]
    databases: list[MailboxDatabase]
    mailboxes: list[Mailbox]
    send_connectors: list[SendConnector]
    _by_address: dict[str, Mailbox] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for mbx in self.mailboxes:
            for addr in mbx.all_addresses:
                self._by_address.setdefault(addr.lower(), mbx)

    @classmethod
    def read(cls, directory: Directory) -> RoutingTable:
        orgs = directory.list(Organization)
        if not orgs:
            raise LookupError("the directory holds no organization")
        return cls(
            organization=orgs[0],
            sites=directory.list(Site),
            links=directory.list(SiteLink),
            servers=directory.list(Server),
            databases=directory.list(MailboxDatabase),
            mailboxes=directory.list(Mailbox),
            send_connectors=directory.list(SendConnector),
        )

    # --- lookups

    def mailbox(self, address: str) -> Mailbox | None:
        return self._by_address.get(address.lower())

    def server(self, name: str) -> Server | None:
        low = name.lower()
        return next((s for s in self.servers if s.name.lower() == low), None)

    def mailbox_server(self, mailbox: Mailbox) -> Server | None:
        low = mailbox.database.lower()
        db = next((d for d in self.databases if d.name.lower() == low), None)
        return self.server(db.server) if db else None

    def hubs(self, site: str) -> list[Server]:
        """The 2010 Hub Transport servers of a site, by name (the sender tries them in turn)."""
        low = site.lower()
        return sorted(
            (s for s in self.servers if s.site.lower() == low and s.is_hub),
            key=lambda s: s.name.lower(),
        )

    def is_hub_site(self, site: str) -> bool:
        low = site.lower()
        return any(s.hub_site_enabled for s in self.sites if s.name.lower() == low)


# ------------------------------------------------------------ least-cost paths


def least_cost_path(table: RoutingTable, source: str, target: str) -> list[str] | None:
    """Sites from ``source`` to ``target`` (both included), or None if not connected.

    Lowest summed cost (ExchangeCost if set, else the AD cost); ties: fewest
    hops, then the alphanumerically lower site just before the destination
    (spec 6.2), applied at every step so the answer is deterministic.
    """
    if source.lower() == target.lower():
        return [source]
    names = {s.name.lower(): s.name for s in table.sites}
    graph: dict[str, dict[str, int]] = {}
    for link in table.links:
        members = [m.lower() for m in link.sites]
        for a in members:
            for b in members:
                if a != b:
                    cost = link.effective_cost
                    old = graph.setdefault(a, {}).get(b)
                    if old is None or cost < old:
                        graph[a][b] = cost
    start, goal = source.lower(), target.lower()
    best: dict[str, tuple[int, int, str]] = {start: (0, 0, "")}
    previous: dict[str, str] = {}
    heap: list[tuple[int, int, str, str]] = [(0, 0, "", start)]
    done: set[str] = set()
    while heap:
        cost, hops, _, site = heapq.heappop(heap)
        if site in done:
            continue
        done.add(site)
        if site == goal:
            break
        for nxt, step in sorted(graph.get(site, {}).items()):
            label = (cost + step, hops + 1, site)
            if nxt not in best or label < best[nxt]:
                best[nxt] = label
                previous[nxt] = site
                heapq.heappush(heap, (label[0], label[1], site, nxt))
    if goal not in done:
        return None
    path = [goal]
    while path[-1] != start:
        path.append(previous[path[-1]])
    return [names.get(s, s) for s in reversed(path)]


def relay_site(table: RoutingTable, local_site: str, target_site: str) -> str | None:
    """The site to relay to for ``target_site``: the target itself, or the first hub site
    on the least-cost path (spec 6.2); None when the sites are not connected."""
    path = least_cost_path(table, local_site, target_site)
    if path is None:
        return None
    for site in path[1:-1]:
        if table.is_hub_site(site) and table.hubs(site):
            return site
    return path[-1]


# ---------------------------------------------------------------- recipients


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


def _to_site(table: RoutingTable, local: Server, site: str, why: str) -> RouteDecision:
    hop = relay_site(table, local.site, site)
    if hop is None:
        return UnreachableRoute(f"no route from site {local.site} to site {site} ({why})")
    if not table.hubs(hop):
        return UnreachableRoute(f"site {hop} has no Hub Transport server ({why})")
    return NextHop(DeliveryType.SMTP_RELAY_TO_REMOTE_AD_SITE, hop)


def route(table: RoutingTable, local: Server, address: str) -> RouteDecision:
    """The next hop of one recipient, as the categorizer on hub ``local`` decides it."""
    domain = _domain(address)
    accepted = next(
        (d for d in table.organization.accepted_domains if d.domain_name == domain), None
    )
    if accepted is not None:
        mailbox = table.mailbox(address)
        if mailbox is None:
            if accepted.domain_type is AcceptedDomainType.AUTHORITATIVE:
                return FailRecipient(RECIP_NOT_FOUND)
            return _external(table, local, address)
        server = table.mailbox_server(mailbox)
        if server is None:
            return UnreachableRoute(
                f"mailbox {mailbox.alias}: database {mailbox.database} has no server"
            )
        if server.site.lower() != local.site.lower():
            return _to_site(table, local, server.site, f"mailbox {mailbox.alias}")
        if server.version is ExchangeVersion.E2003:
            return NextHop(
                DeliveryType.SMTP_RELAY_TO_TI_RG,
                LEGACY_ROUTING_GROUP,
                key=f"tirg:{server.name.lower()}",
            )
        return NextHop(DeliveryType.MAPI_DELIVERY, server.fqdn)
    return _external(table, local, address)


def _address_space_match(space: str, domain: str) -> tuple[int, int] | None:
    """(specificity, cost) of an address space like ``SMTP:*.contoso.com;1`` for a domain."""
    kind, _, rest = space.partition(":")
    if kind.strip().upper() != "SMTP":
        return None
    pattern, _, cost_text = rest.partition(";")
    pattern = pattern.strip().lower()
    cost = int(cost_text) if cost_text.strip().isdigit() else 1
    if pattern == "*":
        return 0, cost
    if pattern.startswith("*."):
        suffix = pattern[1:]
        return (len(pattern), cost) if domain.endswith(suffix) else None
    return (len(pattern) + 1000, cost) if domain == pattern else None


def _external(table: RoutingTable, local: Server, address: str) -> RouteDecision:
    domain = _domain(address)
    best: tuple[tuple[int, int], SendConnector] | None = None
    for connector in table.send_connectors:
        if not connector.enabled:
            continue
        for space in connector.address_spaces:
            m = _address_space_match(space, domain)
            if m is None:
                continue
            rank = (-m[0], m[1])
            if best is None or (rank, connector.name.lower()) < (best[0], best[1].name.lower()):
                best = (rank, connector)
    if best is None:
        return UnreachableRoute(f"no send connector has an address space for {domain}")
    connector = best[1]
    sources = [s for s in (table.server(n) for n in connector.source_transport_servers) if s]
    if any(s.name.lower() == local.name.lower() for s in sources):
        if connector.smart_hosts:
            return NextHop(
                DeliveryType.SMART_HOST_CONNECTOR_DELIVERY,
                ",".join(connector.smart_hosts),
                key=f"connector:{connector.name.lower()}",
            )
        return NextHop(
            DeliveryType.DNS_CONNECTOR_DELIVERY,
            domain,
            key=f"connector:{connector.name.lower()}:{domain}",
        )
    # Relay to the nearest site that has a source server of the connector.
    reachable = []
    for s in sources:
        path = least_cost_path(table, local.site, s.site)
        if path is not None and table.hubs(s.site):
            reachable.append((len(path), s.site.lower(), s.site))
    if not reachable:
        return UnreachableRoute(f"send connector {connector.name}: no source server reachable")
    return _to_site(table, local, min(reachable)[2], f"send connector {connector.name}")
