"""The hub's admin API route for its SMTP protocol log sessions (``POST /protocol-log``).

The console shows one SMTP conversation from both ends, and it reads no file
of a server, so the hub serves its own protocol logs' sessions through its
admin API (the admin certificate only, as every admin route).  The rows are
read with the troubleshooter's reader (:func:`read_protocol_log`,
:func:`group_sessions`), not a second parser.  The answer is bounded: at most
:data:`MAX_SESSIONS` sessions (the newest that match), :data:`MAX_ROWS` rows
each and :data:`MAX_DATA` characters of data per row.  The composition root
adds this route to hubs (``serve.py``): the admin API of the transport role
cannot import the tools above it.

Body (JSON, every key optional)::

    {"kind": "send" | "receive", "session_id": "08D...", "remote_ip": "127.1.0.11",
     "start": ISO time, "end": ISO time, "limit": 20}
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from sitemail.diagnose.logs import LogKind, SmtpSession, group_sessions, read_protocol_log
from sitemail.transport.admin_routes import transport_service

#: Sessions one answer holds at most (the newest that match).
MAX_SESSIONS = 100
#: Rows of one session in an answer; a longer session says ``truncated``.
MAX_ROWS = 400
#: Characters of one row's data (a protocol log line is short; a DATA line may not be).
MAX_DATA = 2000
DEFAULT_SESSIONS = 50

KINDS = {"send": LogKind.SMTP_SEND, "receive": LogKind.SMTP_RECEIVE}


def _folders(request: web.Request) -> dict[str, Path]:
    folders = getattr(transport_service(request), "protocol_log_folders", None)
    if not isinstance(folders, dict):
        raise web.HTTPServiceUnavailable(text="protocol logging is off on this server\n")
    return folders


def _time(text: object, name: str) -> datetime | None:
    if text in (None, ""):
        return None
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name}: expected an ISO 8601 time\n") from None
    if moment.tzinfo is None:
        raise web.HTTPBadRequest(text=f"{name}: expected a time with its UTC offset\n")
    return moment


def session_json(session: SmtpSession) -> dict[str, Any]:
    rows = session.rows[:MAX_ROWS]
    return {
        "kind": "send" if session.kind is LogKind.SMTP_SEND else "receive",
        "connector_id": session.connector_id,
        "session_id": session.session_id,
        "local_endpoint": session.local_endpoint,
        "remote_endpoint": session.remote_endpoint,
        "start": session.start.isoformat() if session.start else None,
        "end": session.end.isoformat() if session.end else None,
        "complete": session.complete,
        "truncated": len(session.rows) > len(rows),
        "rows": [
            {
                "date_time": r.date_time,
                "sequence_number": r.sequence_number,
                "event": r.event,
                "data": r.data[:MAX_DATA],
                "context": r.context[:MAX_DATA],
            }
            for r in rows
        ],
    }


def find_sessions(
    folder: Path,
    kind: LogKind,
    *,
    session_id: str | None = None,
    remote_ip: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = DEFAULT_SESSIONS,
) -> list[dict[str, Any]]:
    """The newest ``limit`` sessions of ``folder`` that match, oldest first."""
    kept: deque[SmtpSession] = deque(maxlen=limit)
    if not folder.is_dir():
        return []
    for session in group_sessions(read_protocol_log(folder, (kind,))):
        if session_id is not None and session.session_id != session_id:
            continue
        if remote_ip is not None and session.remote_endpoint.rpartition(":")[0] != remote_ip:
            continue
        if start is not None and (session.end is None or session.end < start):
            continue
        if end is not None and (session.start is None or session.start > end):
            continue
        kept.append(session)
    ordered = sorted(kept, key=lambda s: s.start or datetime.min.replace(tzinfo=UTC))
    return [session_json(s) for s in ordered]


async def _protocol_log(request: web.Request) -> web.Response:
    body: Any = await request.json() if request.can_read_body else {}
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="expected a JSON object\n")
    kind_name = str(body.get("kind", "send"))
    if kind_name not in KINDS:
        raise web.HTTPBadRequest(text="kind: expected send or receive\n")
    limit = body.get("limit", DEFAULT_SESSIONS)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_SESSIONS:
        raise web.HTTPBadRequest(text=f"limit: expected 1 to {MAX_SESSIONS}\n")
    session_id = body.get("session_id")
    remote_ip = body.get("remote_ip")
    for name, value in (("session_id", session_id), ("remote_ip", remote_ip)):
        if value is not None and (not isinstance(value, str) or len(value) > 64):
            raise web.HTTPBadRequest(text=f"{name}: expected a string of at most 64 characters\n")
    folder = _folders(request).get(kind_name)
    if folder is None:
        return web.json_response([])
    found = await asyncio.to_thread(
        find_sessions,
        folder,
        KINDS[kind_name],
        session_id=session_id,
        remote_ip=remote_ip,
        start=_time(body.get("start"), "start"),
        end=_time(body.get("end"), "end"),
        limit=limit,
    )
    return web.json_response(found)


def add_protocol_log_routes(app: web.Application) -> None:
    app.router.add_post("/protocol-log", _protocol_log)


__all__ = ["MAX_DATA", "MAX_ROWS", "MAX_SESSIONS", "add_protocol_log_routes", "find_sessions"]
