"""The topology picture, drawn on the server as SVG.

One column per site, its firewall at the top (the site's way out), its
servers below; the site links join the firewalls with their costs, as mail
between sites crosses both firewalls; the Internet host sits above the
Internet-facing site's firewall.  The picture is put inline into the page so
that the page's script can colour it: every host's group has an id
(``host-<name>``) and ``data-kind``, and the texts that change (state, queue
length, inspection) have ids of their own.  The routing picture of
``sitemail routing --svg`` (:func:`sitemail.diagnose.routing_view.render_svg`)
is shown beside this one, not redrawn here.
"""

from __future__ import annotations

import itertools
from html import escape
from typing import Any

COLUMN = 360
TOP = 160  # below the Internet host
FIREWALL_H = 62
SERVER_H = 96
GAP = 18


def _slug(name: str) -> str:
    """An id-safe form of a host name (names are letters, digits and hyphens already)."""
    return "".join(c if c.isalnum() or c == "-" else "_" for c in name)


def _host(kind: str, name: str, x: float, y: float, h: float, lines: list[tuple[str, str]]) -> str:
    """A clickable box: a group with a label for screen readers and keyboard focus."""
    slug = _slug(name)
    texts = []
    for i, (tid, text) in enumerate(lines):
        id_attr = f' id="{tid}-{slug}"' if tid else ""
        css = "name" if i == 0 else "detail"
        texts.append(
            f'<text x="{x + 12:.0f}" y="{y + 22 + 17 * i:.0f}"{id_attr} class="{css}">'
            f"{escape(text)}</text>"
        )
    return (
        f'<g id="host-{slug}" class="host {kind}" data-kind="{kind}" data-name="{escape(name)}" '
        f'tabindex="0" role="button" aria-label="{escape(kind)} {escape(name)}: show details">'
        f'<rect x="{x:.0f}" y="{y:.0f}" width="{COLUMN - 40}" height="{h:.0f}" rx="8"/>'
        + "".join(texts)
        + "</g>"
    )


def render_topology(topology: dict[str, Any]) -> str:
    sites: list[str] = topology["sites"]
    servers: list[dict[str, Any]] = topology["servers"]
    firewalls: dict[str, str] = {f["site"]: f["name"] for f in topology["firewalls"]}
    per_site = {s: [v for v in servers if v["site"] == s] for s in sites}
    tallest = max((len(v) for v in per_site.values()), default=0)
    width = max(COLUMN * len(sites), COLUMN) + 40
    height = TOP + FIREWALL_H + 40 + tallest * (SERVER_H + GAP) + 40
    sites_drawn: list[str] = []  # under the links, which run across the site frames
    parts: list[str] = []
    firewall_mid: dict[str, tuple[float, float]] = {}
    for i, site in enumerate(sites):
        x = 20 + COLUMN * i
        sites_drawn.append(
            f'<rect class="site" x="{x + 5}" y="{TOP - 30}" width="{COLUMN - 10}" '
            f'height="{height - TOP + 10}" rx="12"/>'
            f'<text class="site-name" x="{x + 20}" y="{TOP - 8}">Site {escape(site)}</text>'
        )
        y = TOP + 10
        fw = firewalls.get(site)
        if fw is not None:
            parts.append(
                _host(
                    "firewall",
                    fw,
                    x + 20,
                    y,
                    FIREWALL_H,
                    [("", fw), ("insp", "inspect esmtp: ...")],
                )
            )
            firewall_mid[site.casefold()] = (x + COLUMN / 2, y + FIREWALL_H / 2)
        y += FIREWALL_H + 40
        for server in per_site[site]:
            lines = [
                ("", server["name"]),
                ("", str(server["roles"] or "")),
                ("", str(server["version"] or "")),
                ("state", "state: ..."),
            ]
            if server["hub"]:
                lines.append(("queue", "queued: ..."))
            parts.append(_host("server", server["name"], x + 20, y, SERVER_H, lines))
            y += SERVER_H + GAP
    links: list[str] = []
    for link in topology["links"]:
        ends = [firewall_mid.get(s.casefold()) for s in link["sites"]]
        points = [e for e in ends if e is not None]
        for (x1, y1), (x2, y2) in itertools.pairwise(points):
            below = y1 + FIREWALL_H / 2 + 24  # in the gap between firewalls and servers
            links.append(
                f'<line class="link" x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}"/>'
                f'<text class="link-label" x="{(x1 + x2) / 2:.0f}" y="{below:.0f}" '
                f'text-anchor="middle">{escape(link["name"])} cost {link["cost"]}</text>'
            )
    for host in topology["internet"]:
        left = 20 + (width - 40 - (COLUMN - 40)) / 2
        parts.append(
            _host(
                "internet",
                host["name"],
                left,
                20,
                FIREWALL_H,
                [("", f"{host['name']} (the Internet)"), ("state", "state: ...")],
            )
        )
        if sites and sites[0].casefold() in firewall_mid:
            # Drawn to the first site's firewall: topology files list the Internet-facing
            # site first (the seed's NY), and the picture needs no more than that.
            fx, fy = firewall_mid[sites[0].casefold()]
            links.append(
                f'<line class="link internet" x1="{left + (COLUMN - 40) / 2:.0f}" '
                f'y1="{20 + FIREWALL_H}" x2="{fx:.0f}" y2="{fy - FIREWALL_H / 2:.0f}"/>'
            )
    title = f"Organization {topology['organization']}: sites, site links, servers and firewalls"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="topology" role="group" '
        f'aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif">'
        f"<title>{escape(title)}</title>"
        + "".join(sites_drawn)
        + "".join(links)
        + "".join(parts)
        + "</svg>"
    )
