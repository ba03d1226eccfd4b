"""The transport part of a server's admin API: queues, messages and message tracking.

What Get-Queue, Get-Message, Retry-Queue, Suspend-/Resume-Queue,
Suspend-/Resume-Message, Remove-Message, Export-Message and
Get-MessageTrackingLog call.  Every answer carries Exchange's property
names, so the shell shows them as they are.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

from aiohttp import web

from sitemail.mailflow.tracking_log import TrackingEntry, TrackingQuery, search_tracking_log
from sitemail.server.admin_api import HOST_KEY
from sitemail.server.services import ServiceError
from sitemail.transport.queue import QueueError, QueueNotFoundError, QueueStore
from sitemail.transport.queue.errors import MessageNotFoundError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=_default),
        status=status,
        content_type="application/json",
    )


def _error(status: int, message: str) -> web.Response:
    return _json({"error": message}, status)


def _store(request: web.Request) -> QueueStore:
    host = request.app[HOST_KEY]
    try:
        service = host.get("MSExchangeTransport")
    except ServiceError:
        raise web.HTTPNotFound(text="this server has no Hub Transport role\n") from None
    store = getattr(service, "store", None)
    if not isinstance(store, QueueStore):
        raise web.HTTPServiceUnavailable(
            text="The Microsoft Exchange Transport service isn't running on this server.\n"
        )
    return store


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    data = await request.json()
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="expected a JSON object\n")
    return data


def _guard(handler: Callable[[web.Request], Awaitable[object]]) -> Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            result = await handler(request)
        except (QueueNotFoundError, MessageNotFoundError) as exc:
            return _error(404, str(exc))
        except QueueError as exc:
            return _error(409, str(exc))
        if isinstance(result, web.StreamResponse):
            return result
        return _json(result)

    return wrapped


def _props(obj: Any) -> dict[str, object]:
    return dict(obj.properties())


async def _queues(request: web.Request) -> object:
    store = _store(request)
    return [_props(q) for q in await asyncio.to_thread(store.get_queues)]


async def _queue_action(request: web.Request) -> object:
    store = _store(request)
    body = await _body(request)
    identity = str(body.get("identity", ""))
    action = request.match_info["action"]
    if action == "retry":
        resubmit = bool(body.get("resubmit", False))
        info = await asyncio.to_thread(store.retry_queue, identity, resubmit=resubmit)
    elif action == "suspend":
        info = await asyncio.to_thread(store.suspend_queue, identity)
    elif action == "resume":
        info = await asyncio.to_thread(store.resume_queue, identity)
    else:
        raise web.HTTPNotFound(text=f"unknown queue action {action}\n")
    return _props(info)


async def _messages(request: web.Request) -> object:
    store = _store(request)
    queue = request.query.get("queue") or None
    return [_props(m) for m in await asyncio.to_thread(store.get_messages, queue)]


async def _message_action(request: web.Request) -> object:
    store = _store(request)
    body = await _body(request)
    identity = str(body.get("identity", ""))
    action = request.match_info["action"]
    if action == "suspend":
        return _props(await asyncio.to_thread(store.suspend_message, identity))
    if action == "resume":
        return _props(await asyncio.to_thread(store.resume_message, identity))
    if action == "remove":
        with_ndr = bool(body.get("with_ndr", True))
        status = await asyncio.to_thread(store.remove_message, identity, with_ndr=with_ndr)
        return {"identity": identity, "status": status.value if status else "Removed"}
    if action == "export":
        data = await asyncio.to_thread(store.export_message, identity)
        return web.Response(body=data, content_type="message/rfc822")
    raise web.HTTPNotFound(text=f"unknown message action {action}\n")


def transport_service(request: web.Request) -> object:
    """This server's transport service (404 when it has no Hub Transport role)."""
    try:
        return request.app[HOST_KEY].get("MSExchangeTransport")
    except ServiceError:
        raise web.HTTPNotFound(text="this server has no Hub Transport role\n") from None


def _tracking_folder(request: web.Request) -> Path:
    folder = getattr(transport_service(request), "tracking_folder", None)
    if not isinstance(folder, Path):
        raise web.HTTPServiceUnavailable(text="message tracking is off on this server\n")
    return folder


def _when(text: object) -> datetime | None:
    return datetime.fromisoformat(str(text)) if text else None


def _tracking_properties(entry: TrackingEntry) -> dict[str, object]:
    """Get-MessageTrackingLog's properties, in its Format-List order."""
    return {
        "Timestamp": entry.timestamp,
        "ClientIp": entry.client_ip,
        "ClientHostname": entry.client_hostname,
        "ServerIp": entry.server_ip,
        "ServerHostname": entry.server_hostname,
        "SourceContext": entry.source_context,
        "ConnectorId": entry.connector_id,
        "Source": entry.source,
        "EventId": entry.event_id,
        "InternalMessageId": entry.internal_message_id,
        "MessageId": entry.message_id,
        "Recipients": list(entry.recipient_address),
        "RecipientStatus": list(entry.recipient_status),
        "TotalBytes": entry.total_bytes,
        "RecipientCount": entry.recipient_count,
        "RelatedRecipientAddress": entry.related_recipient_address,
        "Reference": entry.reference,
        "MessageSubject": entry.message_subject,
        "Sender": entry.sender_address,
        "ReturnPath": entry.return_path,
        "MessageInfo": entry.message_info,
    }


async def _tracking(request: web.Request) -> object:
    body = await _body(request)
    recipients = body.get("recipients")
    query = TrackingQuery(
        message_id=body.get("message_id") or None,
        sender=body.get("sender") or None,
        recipients=tuple(recipients) if recipients else None,
        event_id=body.get("event_id") or None,
        start=_when(body.get("start")),
        end=_when(body.get("end")),
        message_subject=body.get("message_subject") or None,
    )
    size = body.get("result_size", 1000)
    folder = _tracking_folder(request)

    def search() -> list[dict[str, object]]:
        if not folder.is_dir():  # nothing tracked on this server yet
            return []
        return [
            _tracking_properties(e) for e in search_tracking_log(folder, query, result_size=size)
        ]

    return await asyncio.to_thread(search)


def add_transport_routes(app: web.Application) -> None:
    app.router.add_get("/queues", _guard(_queues))
    app.router.add_post("/queues/{action}", _guard(_queue_action))
    app.router.add_get("/messages", _guard(_messages))
    app.router.add_post("/messages/{action}", _guard(_message_action))
    app.router.add_post("/tracking", _guard(_tracking))
