"""The store API's routes for what a folder holds beside its name.

Routes (beside :mod:`.store_api`'s, with the same guard)::

    GET  /mailboxes/{mb}/folders/{f}/properties                ItemProperties
    PUT  /mailboxes/{mb}/folders/{f}/properties  {"properties"} -> ItemProperties
    GET  /mailboxes/{mb}/folders/{f}/view?offset&limit          FolderView

A folder view is the folder tree, the folder and one page of it (newest
first), read at once: OWA shows all three on every page of a folder, and one
store call costs less than three.  Its answer is kept (the last
:data:`KEPT_VIEWS`, as bytes) under the database's version: a page asked again
with nothing committed to the file since is not read and written out again,
and a client that has it (``If-None-Match`` with its ETag) gets a 304.

The properties are a JSON object the access layer shapes (EWS keeps a folder's
permissions, extended properties and user configurations there); the store
keeps it whole, bounded in size, and drops it with the folder.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from sitemail.lru import LruCache
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
from sitemail.mailbox.store_json import record_bytes, record_response

__all__ = ["KEPT_SIZE", "KEPT_VIEWS", "folder_routes", "kept_answer"]

#: Answers kept by the store (folder views and message pages: about 10 KB each for a
#: page of 20), and the largest one kept.
KEPT_VIEWS = 256
KEPT_SIZE = 64 * 1024

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
        key = (db.name, where.alias.casefold(), "view", ref, offset, limit)
        return await kept_answer(
            backend,
            request,
            db,
            key,
            lambda: record_bytes(db.folder_view(where.alias, ref, offset=offset, limit=limit)),
        )

    path = f"{base}/folders/{{folder}}/properties"
    return [
        ("GET", path, get),
        ("PUT", path, put),
        ("GET", f"{base}/folders/{{folder}}/view", view),
    ]


# The ETag names this process, the database and its version: a client's copy
# tagged by another store process (a restart, a mailbox moved) never matches.
_RUN = secrets.token_hex(8)


async def kept_answer(
    backend: StoreBackend,
    request: web.Request,
    db: StoreDatabase,
    key: tuple[object, ...],
    read: Callable[[], bytes],
) -> web.Response:
    """The JSON answer ``read`` gives, kept under the database's version with an ETag.

    A client that has it (``If-None-Match``) gets a 304; an answer kept at the
    database's present version is sent again without reading.  Both are done
    here on the event loop when no thread holds the database; a read (or a busy
    database) goes to the store's threads.  Answers over :data:`KEPT_SIZE` are
    not kept.
    """
    client_has = request.headers.get("If-None-Match")

    def tag(version: tuple[int, int, int]) -> str:
        return '"' + ".".join(map(str, (_RUN, *version))) + '"'

    def load() -> tuple[str, bytes | None]:
        version = db.version()  # before the read: a later commit changes it
        etag = tag(version)
        if client_has == etag:
            return etag, None
        body = _kept(key, version)
        if body is None:
            body = read()
            if len(body) <= KEPT_SIZE:
                _VIEWS.put(key, (version, body))
        return etag, body

    now = db.version_if_free()
    kept = None if now is None else _kept(key, now)
    if now is not None and client_has == tag(now):
        etag, body = tag(now), None
    elif now is not None and kept is not None:
        etag, body = tag(now), kept
    else:
        etag, body = await backend.run(load)
    if body is None:
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(body=body, content_type="application/json", headers={"ETag": etag})


# One per store process: its keys name the database, and a version is the database's.
_VIEWS: LruCache[tuple[object, ...], tuple[tuple[int, int, int], bytes]] = LruCache(KEPT_VIEWS)


def _kept(key: tuple[object, ...], version: tuple[int, int, int]) -> bytes | None:
    """The answer kept for ``key`` if it was read at ``version``."""
    found = _VIEWS.get(key)
    return found[1] if found is not None and found[0] == version else None
