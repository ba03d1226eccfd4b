"""The console's SMTP conversation page: a hub's send sessions, and one of them from both ends.

Drawn on the server, every log text escaped.  The conversation is a table in
time order: the sending hub's row (what it sent, ``>``, or read, ``<``), what
the firewalls did with the line, and the receiving hub's row; the characters
one end logged and the other did not are in ``<mark>`` (the firewall's
rewrite: the masked banner, ``XXXXXXXA`` for ``STARTTLS``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import urlencode

from .auth import ConsoleSession
from .capture_view import CAPTURES, conversation_lines, parse_dump
from .conversation import NOTE, TO_RECEIVER, Runs, Step, align, marked_against, rewrites
from .pages import layout


def _marked(runs: Runs) -> str:
    return "".join(
        f'<mark class="rewritten">{escape(text)}</mark>' if changed else escape(text)
        for text, changed in runs
    )


def _time(row: Mapping[str, Any] | None) -> str:
    if row is None:
        return ""
    text = str(row.get("date_time") or "")
    return escape(text.partition("T")[2].rstrip("Z")[:12] or text)


def _cell(row: Mapping[str, Any] | None, runs: Runs) -> str:
    if row is None:
        return "<td></td>"
    event = escape(str(row.get("event") or ""))
    context = str(row.get("context") or "")
    note = f' <span class="context">({escape(context)})</span>' if context else ""
    return f'<td class="line"><span class="event">{event}</span> {_marked(runs)}{note}</td>'


def _step_row(step: Step) -> str:
    arrow = {TO_RECEIVER: "&rarr;", NOTE: ""}.get(step.direction, "&larr;")
    css = ' class="rewritten"' if step.rewritten else ""
    what = escape(step.firewall)
    return (
        f"<tr{css}><td>{_time(step.sender)}</td>{_cell(step.sender, step.sender_runs)}"
        f'<td class="firewall">{arrow} {what}</td>'
        f"{_cell(step.receiver, step.receiver_runs)}<td>{_time(step.receiver)}</td></tr>"
    )


def _last_line(session: Mapping[str, Any]) -> str:
    rows = [r for r in session.get("rows", []) if r.get("event") in ("<", "*")]
    return str(rows[-1].get("data", "")) if rows else ""


def sessions_list(found: Mapping[str, Any]) -> str:
    rows = []
    for s in found.get("sessions", []):
        link = "/conversations?" + urlencode(
            {"server": s.get("server", ""), "session": s.get("session_id", "")}
        )
        rows.append(
            f"<tr><td>{escape(str(s.get('server')))}</td><td>{escape(str(s.get('start')))}</td>"
            f"<td>{escape(str(s.get('connector_id')))}</td>"
            f"<td>{escape(str(s.get('remote_endpoint')))}</td>"
            f"<td>{escape(_last_line(s))}</td>"
            f'<td><a href="{escape(link)}" aria-label="Show the conversation of session '
            f'{escape(str(s.get("session_id")))}">{escape(str(s.get("session_id")))}</a></td></tr>'
        )
    errors = "".join(f'<p class="error">{escape(e)}</p>' for e in found.get("errors", []))
    return (
        f'{errors}<table id="send-sessions" aria-label="SmtpSend sessions">'
        "<caption>The hubs' newest SmtpSend sessions</caption><thead><tr>"
        '<th scope="col">Hub</th><th scope="col">Start</th><th scope="col">Connector</th>'
        '<th scope="col">Remote endpoint</th><th scope="col">Last line read or noted</th>'
        '<th scope="col">Session (select for the conversation)</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _rows_said(session: Mapping[str, Any] | None) -> list[str]:
    return [
        str(r.get("data", "")) for r in (session or {}).get("rows", []) if r.get("event") == ">"
    ]


def captures_view(found: Mapping[str, Any], captures: Mapping[str, Mapping[str, str]]) -> str:
    """What each firewall interface passed of this conversation (the console's captures),
    each line marked where it differs from what the hub that said it logged."""
    client = str(found["send"].get("local_endpoint") or "").rpartition(":")[0]
    said_by_sender = _rows_said(found["send"])
    said_by_receiver = _rows_said(found.get("receive"))
    tables = []
    # Along the way the mail went: the sending site's firewall inside then outside, the
    # receiving site's outside then inside.
    order = {name: i for i, name in enumerate(found.get("firewalls", []))}
    for firewall, dumps in sorted(captures.items(), key=lambda c: order.get(c[0], 99)):
        sides = ("inside", "outside") if order.get(firewall) == 0 else ("outside", "inside")
        for interface in sides:
            dump = dumps.get(interface, "")
            lines = conversation_lines(parse_dump(dump), client)
            if not lines:
                continue
            there = [x for x in lines if x.to_server]
            back = [x for x in lines if not x.to_server]
            runs = dict(
                zip(
                    [id(x) for x in there] + [id(x) for x in back],
                    marked_against([x.text for x in there], said_by_sender)
                    + marked_against([x.text for x in back], said_by_receiver),
                    strict=True,
                )
            )
            rows = "".join(
                f"<tr><td>{escape(x.time)}</td>"
                f"<td>{'&rarr; to receiver' if x.to_server else '&larr; to sender'}</td>"
                f'<td class="line">{_marked(runs[id(x)])}</td></tr>'
                for x in lines
            )
            label = f"{firewall} {interface}"
            tables.append(
                f'<table class="capture" aria-label="Captured on {escape(label)}">'
                f"<caption>{escape(label)}: show capture {escape(CAPTURES[interface])} dump"
                '</caption><thead><tr><th scope="col">Time</th><th scope="col">Direction</th>'
                '<th scope="col">Line as it crossed (marked: not what the hub that said it '
                f"logged)</th></tr></thead><tbody>{rows}</tbody></table>"
            )
    if not tables:
        return (
            '<p class="hint" id="no-capture">No capture holds this conversation. Press '
            "<b>Record the next conversation</b>, then open the next session.</p>"
        )
    return (
        '<section aria-labelledby="captures-title"><h2 id="captures-title">What the firewalls '
        f"passed</h2>{''.join(tables)}</section>"
    )


def conversation_view(found: Mapping[str, Any]) -> str:
    send = found["send"]
    receive = found.get("receive")
    steps = align(send.get("rows", []), receive.get("rows", []) if receive else [])
    receiver = found.get("receiver")
    firewalls = ", ".join(found.get("firewalls", [])) or "none"
    changed = rewrites(steps)
    summary = (
        f"{changed} line{'s' if changed != 1 else ''} rewritten between the two hubs"
        if receive
        else "No receiving hub logged this conversation (it never reached one)."
    )
    errors = "".join(f'<p class="error">{escape(e)}</p>' for e in found.get("errors", []))
    head = (
        '<th scope="col">Time</th>'
        f'<th scope="col">Sending hub {escape(str(found["sender"]))} (SmtpSend '
        f"{escape(str(send.get('session_id')))})</th>"
        f'<th scope="col">Firewalls {escape(firewalls)}</th>'
        f'<th scope="col">Receiving hub {escape(str(receiver or "-"))}'
        + (f" (SmtpReceive {escape(str(receive.get('session_id')))})" if receive else "")
        + '</th><th scope="col">Time</th>'
    )
    return (
        f'<p id="conversation-summary" role="status">{escape(summary)}</p>{errors}'
        '<table id="conversation" aria-label="The conversation from both ends">'
        "<caption>What each hub logged, in time order; marked: what the firewall rewrote"
        f"</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(_step_row(s) for s in steps)}</tbody></table>"
    )


def _record_form(session: ConsoleSession, recorded: Sequence[Mapping[str, Any]]) -> str:
    done = ""
    if recorded:
        said = []
        for r in recorded:
            if r.get("error") or not r.get("ok"):
                said.append(f"{r.get('name')}: {r.get('error') or r.get('transcript')}")
            else:
                said.append(f"{r.get('name')}: capturing SMTP on inside and outside")
        done = f'<p id="record-status" role="status">{escape("; ".join(said))}</p>'
    return (
        '<form method="post" action="/conversations/record" class="record">'
        f'<input type="hidden" name="csrf" value="{escape(session.csrf)}">'
        '<button type="submit">Record the next conversation</button> '
        '<span class="hint">starts (or empties) a capture of SMTP on both interfaces of each '
        f"firewall</span></form>{done}"
    )


def conversations_page(
    session: ConsoleSession,
    *,
    listing: Mapping[str, Any] | None = None,
    conversation: Mapping[str, Any] | None = None,
    error: str | None = None,
    captures: Mapping[str, Mapping[str, str]] | None = None,
    recorded: Sequence[Mapping[str, Any]] = (),
) -> str:
    parts = [
        """<p class="hint">One SMTP conversation across the firewalls: a session of a hub's
SmtpSend log beside the receiving hub's SmtpReceive log of it. Where the two ends logged
different text, the firewall rewrote it (ESMTP inspection masks the banner and the keywords
it does not know).</p>""",
        _record_form(session, recorded),
    ]
    if error:
        parts.append(f'<p class="error" role="alert">{escape(error)}</p>')
    if conversation is not None:
        parts.append(conversation_view(conversation))
        parts.append(captures_view(conversation, captures or {}))
        parts.append('<p><a href="/conversations">All send sessions</a></p>')
    if listing is not None:
        parts.append(sessions_list(listing))
    return layout("SMTP conversations", "\n".join(parts), session, "/conversations")


__all__ = ["conversation_view", "conversations_page", "sessions_list"]
