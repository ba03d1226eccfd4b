"""The console's mail-flow pages: message tracking with a message's path.

Drawn on the server from the cmdlets' objects, every value escaped, so the
pages work without the page script; forms are GETs (a search changes
nothing), so they need no CSRF token and a search can be bookmarked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from .auth import ConsoleSession
from .backend import CmdletResult
from .pages import layout
from .path_svg import status_of

_LABELS = {
    "sender": ("Sender", "alice@contoso.com"),
    "recipients": ("Recipients (comma-separated)", "adam@contoso.com"),
    "subject": ("Subject contains", ""),
    "message_id": ("Message-ID", "<id@contoso.com>"),
    "start": ("Start", "1/5/2024 3:00 PM"),
    "end": ("End", "2024-01-05T16:00"),
}

_COLUMNS = ("Timestamp", "EventId", "Source", "ServerHostname", "Sender", "Recipients")


def _cell(value: object) -> str:
    if isinstance(value, list | tuple):
        value = ", ".join(str(v) for v in value)
    return escape("" if value is None else str(value))


def _events_table(events: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(f'<th scope="col">{c}</th>' for c in (*_COLUMNS, "Status", "MessageSubject"))
    rows = []
    for e in events:
        cells = "".join(f"<td>{_cell(e.get(c))}</td>" for c in _COLUMNS)
        cells += f"<td>{escape(status_of(e) if e.get('RecipientStatus') else '')}</td>"
        cells += f"<td>{_cell(e.get('MessageSubject'))}</td>"
        message_id = str(e.get("MessageId") or "")
        link = (
            f'<a href="/tracking?{escape(urlencode({"path": message_id}))}" '
            f'aria-label="Show the path of {escape(message_id)}">{escape(message_id)}</a>'
            if message_id
            else ""
        )
        rows.append(f"<tr>{cells}<td>{link}</td></tr>")
    return (
        '<table id="events" aria-label="Tracking events"><caption>Events</caption>'
        f'<thead><tr>{head}<th scope="col">MessageId (select for its path)</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _ran(result: CmdletResult) -> str:
    errors = "".join(f'<p class="error" role="alert">{escape(e)}</p>' for e in result.errors)
    return f'<p class="ran">Ran <code>{escape(result.command)}</code></p>{errors}'


def tracking_page(
    session: ConsoleSession,
    form: Mapping[str, str],
    *,
    result: CmdletResult | None = None,
    path: tuple[str, CmdletResult, str] | None = None,
    error: str | None = None,
) -> str:
    fields = []
    for name, (label, example) in _LABELS.items():
        hint = f' placeholder="{escape(example)}"' if example else ""
        size = 5376 if name == "recipients" else 256
        fields.append(
            f'<label for="f-{name}">{escape(label)}</label>'
            f'<input id="f-{name}" name="{name}" maxlength="{size}" '
            f'value="{escape(form.get(name, ""))}"{hint}>'
        )
    parts = [
        """<p class="hint">Searches the message tracking logs of every Hub Transport server with
Get-MessageTrackingLog. Select a Message-ID for the message's way across hubs and sites.</p>""",
        '<form method="get" action="/tracking" class="search" role="search" '
        f'aria-label="Search the tracking logs">{"".join(fields)}'
        '<button type="submit">Search</button></form>',
    ]
    if error:
        parts.append(f'<p class="error" role="alert">{escape(error)}</p>')
    if path is not None:
        message_id, found, picture = path
        parts.append(
            '<section aria-labelledby="path-heading">'
            f'<h2 id="path-heading">The way of {escape(message_id)}</h2>{_ran(found)}'
            f'<figure class="path">{picture}<figcaption>Each hub is a column under its site; '
            "each event a box with its time, EventId, Source and status; the arrows follow "
            "time.</figcaption></figure></section>"
        )
    if result is not None:
        parts.append(_ran(result) + _events_table(result.objects))
    return layout("Message tracking", "\n".join(parts), session, "/tracking")


__all__ = ["tracking_page"]
