"""The store API's routes for what a folder holds beside its name.

Routes (beside :mod:`.store_api`'s, with the same guard)::

    GET  /mailboxes/{mb}/folders/{f}/properties                ItemProperties
    PUT  /mailboxes/{mb}/folders/{f}/properties  {"properties"} -> ItemProperties
    GET  /mailboxes/{mb}/folders/{f}/view?offset&limit          FolderView

A folder view is the folder tree, the folder and one page of it (newest
first), read at once: OWA shows all three on every page of a folder, and one
store call costs less than three.  The properties are a JSON object the
access layer shapes (EWS keeps a folder's permissions, extended properties and
user configurations there); the store keeps it whole, bounded in size, and
drops it with the folder.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.errors import InvalidRequest
from sitemail.mailbox.limits import MAX_PAGE_SIZE
from sitemail.mailbox.locate import MailboxLocation
from sitemail.mailbox.store_api_items import (
    _MAX_ID,
    _folder,  # the same bounds on a folder reference
    _int,
)
from sitemail.mailbox.store_backend import StoreBackend
from sitemail.mailbox.store_json import record_response

__all__ = ["folder_routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MailboxOf = Callable[[web.Request], Awaitable[tuple[StoreDatabase, MailboxLocation]]]
JsonBody = Callable[..., Awaitable[dict[str, object]]]


def folder_routes(
    backend: StoreBackend, mailbox_of: MailboxOf, json_body: JsonBody, base: str
) -> list[tuple[str, str, Handler]]:
    """The (method, path, handler) rows of the folder property routes under ``base``."""

    async def get(request: web.Request) -> web.StreamResponse:
        db, where = await mailbox_of(request)
        ref = _folder(request)
        found = await backend.run(lambda: db.get_folder_properties(where.alias, ref))
        return record_response(found)

    async def put(request: web.Request) -> web.StreamResponse:
        db, where = await mailbox_of(request)
        ref = _folder(request)
        body = await json_body(request, allow_empty=True)
        properties = body.get("properties", {})
        if not isinstance(properties, dict):
            raise InvalidRequest("properties must be a JSON object")
        done = await backend.run(lambda: db.set_folder_properties(where.alias, ref, properties))
        return record_response(done)

    async def view(request: web.Request) -> web.StreamResponse:
        db, where = await mailbox_of(request)
        ref = _folder(request)
        offset = _int(request, "offset", 0, _MAX_ID)
        limit = _int(request, "limit", 50, MAX_PAGE_SIZE, low=1)
        found = await backend.run(
            lambda: db.folder_view(where.alias, ref, offset=offset, limit=limit)
        )
        return record_response(found)

    path = f"{base}/folders/{{folder}}/properties"
    return [
        ("GET", path, get),
        ("PUT", path, put),
        ("GET", f"{base}/folders/{{folder}}/view", view),
    ]
