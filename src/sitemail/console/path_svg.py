"""A message's way across hubs and sites, drawn on the server as SVG.

The events are Get-MessageTrackingLog's, already merged from every hub in
time order.  Each hub is a column, the hubs grouped under their site; each
event is a box in the column of the hub that logged it (its ServerHostname),
one row per event so that time runs down the picture, and arrows join the
events in time order, so a hop between hubs is an arrow across columns (and
across sites when the message crossed a site link).  A box shows the event's
time, EventId and Source, and its status: the RecipientStatus (for DEFER,
the LastError word for word) or else the recipients.  Every text is escaped;
the full status is in the box's ``<title>`` and ``aria-label`` where the box
has to cut it short.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

COLUMN = 330
BOX_W = COLUMN - 30
ROW = 64
BOX_H = 48
TOP = 96
LEFT = 20
#: Characters of a status that fit in one box; the rest is in its title.
STATUS_CHARS = 44
#: The column of events whose server is none of the directory's hubs.
ELSEWHERE = "(other)"


@dataclass(frozen=True)
class Hub:
    name: str
    site: str
    fqdn: str


def _server_of(event: Mapping[str, Any], hubs: Sequence[Hub]) -> str:
    """The hub that logged the event: its ServerHostname, by name or FQDN, in any case."""
    host = str(event.get("ServerHostname") or "").casefold()
    for hub in hubs:
        if host in (hub.name.casefold(), hub.fqdn.casefold()):
            return hub.name
    first = host.split(".")[0]
    return next((h.name for h in hubs if h.name.casefold() == first), ELSEWHERE)


def _time(value: object) -> str:
    """``2026-12-06T23:40:01.123456`` -> ``23:40:01.123``: the day is the same along a path."""
    text = str(value or "")
    _, sep, clock = text.partition("T")
    if not sep:
        return text
    clock = clock.split("+")[0]
    head, dot, fraction = clock.partition(".")
    return head + (dot + fraction[:3] if dot else "")


def _words(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value if v)
    return str(value or "")


def status_of(event: Mapping[str, Any]) -> str:
    """What the box says after the EventId: the RecipientStatus, else the recipients."""
    return _words(event.get("RecipientStatus")) or _words(event.get("Recipients"))


def render_path(events: Sequence[Mapping[str, Any]], hubs: Sequence[Hub]) -> str:
    used = {_server_of(e, hubs) for e in events}
    columns = list(hubs)
    if ELSEWHERE in used:
        columns.append(Hub(ELSEWHERE, "", ""))
    x_of = {h.name: LEFT + i * COLUMN for i, h in enumerate(columns)}
    width = LEFT * 2 + COLUMN * max(len(columns), 1)
    height = TOP + ROW * max(len(events), 1) + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="path" class="path" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="path-title">',
        f'<title id="path-title">The message\'s way: {len(events)} events in time order</title>',
        '<defs><marker id="arrowhead" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" '
        'markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/></marker>'
        "</defs>",
    ]
    # Sites: one frame around the columns of their hubs, in the directory's order.
    index = 0
    while index < len(columns):
        site = columns[index].site
        span = 1
        while index + span < len(columns) and columns[index + span].site == site:
            span += 1
        x = x_of[columns[index].name] - 8
        parts.append(
            f'<rect class="site" x="{x}" y="8" width="{COLUMN * span - 14}" '
            f'height="{height - 16}" rx="10"/>'
            f'<text class="site-name" x="{x + 12}" y="32">'
            f"{escape('Site ' + site if site else 'Elsewhere')}</text>"
        )
        index += span
    for hub in columns:
        parts.append(
            f'<text class="hub-name" x="{x_of[hub.name] + 4}" y="62">{escape(hub.name)}</text>'
            f'<line class="lane" x1="{x_of[hub.name] + BOX_W / 2:.0f}" y1="72" '
            f'x2="{x_of[hub.name] + BOX_W / 2:.0f}" y2="{height - 14}"/>'
        )
    centres: list[tuple[float, float]] = []
    for row, event in enumerate(events):
        server = _server_of(event, hubs)
        x, y = x_of[server], TOP + row * ROW
        centres.append((x + BOX_W / 2, y))
        event_id = str(event.get("EventId") or "")
        source = str(event.get("Source") or "")
        status = status_of(event)
        shown = status if len(status) <= STATUS_CHARS else status[: STATUS_CHARS - 3] + "..."
        line1 = f"{_time(event.get('Timestamp'))}  {event_id}" + (f" ({source})" if source else "")
        label = f"{server}: {line1}. {status}"
        css = "event event-" + "".join(c for c in event_id if c.isalnum())
        parts.append(
            f'<g class="{css}" data-server="{escape(server)}" data-event="{escape(event_id)}" '
            f'aria-label="{escape(label)}"><title>{escape(label)}</title>'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6"/>'
            f'<text class="event-head" x="{x + 8}" y="{y + 19}">{escape(line1)}</text>'
            f'<text class="event-status" x="{x + 8}" y="{y + 38}">{escape(shown)}</text></g>'
        )
    # Arrows last, over the boxes' edges: from each event to the next one in time.
    for (x1, y1), (x2, y2) in itertools.pairwise(centres):
        parts.append(
            f'<line class="step" x1="{x1:.0f}" y1="{y1 + BOX_H}" x2="{x2:.0f}" '
            f'y2="{y2 - 2}" marker-end="url(#arrowhead)"/>'
        )
    if not events:
        parts.append(f'<text class="empty" x="{LEFT}" y="{TOP + 20}">No events.</text>')
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["ELSEWHERE", "Hub", "render_path", "status_of"]
