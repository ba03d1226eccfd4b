"""``sitemail routing``: what the Exchange Toolbox's routing log viewer shows.

Sites, site links and their costs (ExchangeCost when set), the hubs of each
site, receive and send connectors, and the route that least-cost routing
computes from every hub to every site (spec 6.2), as text, JSON and an SVG
picture.  Read from the directory with the transport's own routing
functions, so the view is what the hubs decide.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from html import escape
from typing import Any

from sitemail.org.directory import Directory
from sitemail.org.model import ReceiveConnector, SendConnector, Site, SiteLink
from sitemail.transport.routing import RoutingTable, least_cost_path, relay_site


@dataclass(frozen=True, slots=True)
class Route:
    hub: str
    from_site: str
    to_site: str
    path: tuple[str, ...] | None
    cost: int | None
    next_hop_site: str | None

    @property
    def text(self) -> str:
        if self.path is None:
            return f"{self.hub} ({self.from_site}) -> {self.to_site}: no route (Unreachable)"
        via = " -> ".join(self.path)
        hop = (
            f", relays to {self.next_hop_site}"
            if self.next_hop_site and self.next_hop_site != self.to_site
            else ""
        )
        return f"{self.hub} ({self.from_site}) -> {self.to_site}: {via} (cost {self.cost}{hop})"


@dataclass(slots=True)
class RoutingView:
    sites: list[Site]
    links: list[SiteLink]
    hubs: dict[str, list[str]]
    receive_connectors: list[ReceiveConnector]
    send_connectors: list[SendConnector]
    routes: list[Route] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "sites": [
                {"name": s.name, "hub_site": s.hub_site_enabled, "hubs": self.hubs.get(s.name, [])}
                for s in self.sites
            ],
            "site_links": [
                {
                    "name": link.name,
                    "sites": list(link.sites),
                    "cost": link.cost,
                    "exchange_cost": link.exchange_cost,
                }
                for link in self.links
            ],
            "receive_connectors": [
                {
                    "identity": c.identity,
                    "bindings": list(c.bindings),
                    "remote_ip_ranges": list(c.remote_ip_ranges),
                    "auth_mechanism": [m.value for m in c.auth_mechanism],
                    "permission_groups": [g.value for g in c.permission_groups],
                }
                for c in self.receive_connectors
            ],
            "send_connectors": [
                {
                    "name": c.name,
                    "address_spaces": list(c.address_spaces),
                    "source_transport_servers": list(c.source_transport_servers),
                    "smart_hosts": list(c.smart_hosts),
                }
                for c in self.send_connectors
            ],
            "routes": [
                {
                    "hub": r.hub,
                    "from_site": r.from_site,
                    "to_site": r.to_site,
                    "path": list(r.path) if r.path else None,
                    "cost": r.cost,
                    "next_hop_site": r.next_hop_site,
                }
                for r in self.routes
            ],
        }


def _cost(links: list[SiteLink], path: list[str]) -> int:
    total = 0
    for a, b in itertools.pairwise(path):
        costs = [
            link.effective_cost
            for link in links
            if a.lower() in {s.lower() for s in link.sites}
            and b.lower() in {s.lower() for s in link.sites}
        ]
        total += min(costs)
    return total


def build_view(directory: Directory) -> RoutingView:
    table = RoutingTable.read(directory)
    sites = [s for s in directory.list(Site) if not s.internet]
    hubs: dict[str, list[str]] = {}
    for s in table.servers:
        if s.is_hub:
            hubs.setdefault(s.site, []).append(s.name)
    view = RoutingView(
        sites,
        directory.list(SiteLink),
        {k: sorted(v) for k, v in hubs.items()},
        directory.list(ReceiveConnector),
        directory.list(SendConnector),
    )
    for hub in sorted((s for s in table.servers if s.is_hub), key=lambda s: s.name.lower()):
        for site in sites:
            if site.name.lower() == hub.site.lower():
                continue
            path = least_cost_path(table, hub.site, site.name)
            view.routes.append(
                Route(
                    hub.name,
                    hub.site,
                    site.name,
                    tuple(path) if path else None,
                    _cost(table.links, path) if path else None,
                    relay_site(table, hub.site, site.name),
                )
            )
    return view


def render_text(view: RoutingView) -> str:
    out = ["Sites"]
    for s in view.sites:
        hubs = ", ".join(view.hubs.get(s.name, [])) or "no Hub Transport server"
        out.append(f"  {s.name}{' (hub site)' if s.hub_site_enabled else ''}: {hubs}")
    out.append("Site links")
    for link in view.links:
        cost = f"cost {link.cost}"
        if link.exchange_cost is not None:
            cost += f", ExchangeCost {link.exchange_cost} (used)"
        out.append(f"  {link.name}: {' - '.join(link.sites)} ({cost})")
    if not view.links:
        out.append("  none")
    out.append("Receive connectors")
    for c in view.receive_connectors:
        out.append(
            f"  {c.identity}: {', '.join(c.bindings)} from {', '.join(c.remote_ip_ranges)}; "
            f"{', '.join(m.value for m in c.auth_mechanism)}; "
            f"{', '.join(g.value for g in c.permission_groups)}"
        )
    out.append("Send connectors")
    for sc in view.send_connectors:
        out.append(
            f"  {sc.name}: {', '.join(sc.address_spaces)} from "
            f"{', '.join(sc.source_transport_servers) or '-'}"
            + (f" via {', '.join(sc.smart_hosts)}" if sc.smart_hosts else " (DNS)")
        )
    out.append("Routes (least cost, as each hub computes them)")
    for r in view.routes:
        out.append(f"  {r.text}")
    return "\n".join(out) + "\n"


def render_svg(view: RoutingView) -> str:
    """Sites on a circle, links with their costs, hubs under each site, routes below."""
    n = max(len(view.sites), 1)
    width = 760
    radius = 0 if n == 1 else 170
    cx, cy = width / 2, 60 + radius + 40
    pos: dict[str, tuple[float, float]] = {}
    for i, s in enumerate(view.sites):
        angle = math.pi + 2 * math.pi * i / n
        pos[s.name.lower()] = (cx + radius * math.cos(angle), cy + radius * math.sin(angle))
    # Pull the drawing up to the title: with two sites the circle is a line.
    if pos:
        shift = min(y for _, y in pos.values()) - 100
        pos = {k: (x, y - shift) for k, (x, y) in pos.items()}
    bottom = max((y for _, y in pos.values()), default=100.0)
    parts: list[str] = []
    for link in view.links:
        members = [m.lower() for m in link.sites if m.lower() in pos]
        for a, b in itertools.pairwise(members):
            (x1, y1), (x2, y2) = pos[a], pos[b]
            parts.append(
                f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" '
                'stroke="#5b6b82" stroke-width="3"/>'
            )
            label = f"{link.name} cost {link.effective_cost}"
            parts.append(
                f'<text x="{(x1 + x2) / 2:.0f}" y="{(y1 + y2) / 2 - 10:.0f}" '
                f'text-anchor="middle" font-size="13" fill="#1f3a5f">{escape(label)}</text>'
            )
    for s in view.sites:
        x, y = pos[s.name.lower()]
        fill = "#ffe7b3" if s.hub_site_enabled else "#dbe8f7"
        parts.append(
            f'<circle cx="{x:.0f}" cy="{y:.0f}" r="42" fill="{fill}" stroke="#1f3a5f" '
            'stroke-width="2"/>'
        )
        parts.append(
            f'<text x="{x:.0f}" y="{y + 5:.0f}" text-anchor="middle" font-size="16" '
            f'font-weight="bold" fill="#1f3a5f">{escape(s.name)}</text>'
        )
        for j, hub in enumerate(view.hubs.get(s.name, []) or ["(no hub)"]):
            parts.append(
                f'<text x="{x:.0f}" y="{y + 62 + 16 * j:.0f}" text-anchor="middle" '
                f'font-size="13" fill="#333">{escape(hub)}</text>'
            )
    hubs_below = max((len(v) for v in view.hubs.values()), default=1)
    top = bottom + 80 + 16 * hubs_below
    parts.append(
        f'<text x="20" y="{top:.0f}" font-size="14" font-weight="bold" fill="#1d2330">Routes</text>'
    )
    for k, r in enumerate(view.routes):
        color = "#a61b1b" if r.path is None else "#1d2330"
        parts.append(
            f'<text x="20" y="{top + 20 + 18 * k:.0f}" font-size="13" fill="{color}">'
            f"{escape(r.text)}</text>"
        )
    height = top + 40 + 18 * len(view.routes)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0f}" '
        f'viewBox="0 0 {width} {height:.0f}" font-family="sans-serif">'
        f'<rect width="100%" height="100%" fill="#ffffff"/>'
        f'<text x="20" y="30" font-size="18" font-weight="bold" fill="#1f3a5f">'
        "Routing: sites, site links and costs</text>" + "".join(parts) + "</svg>\n"
    )
