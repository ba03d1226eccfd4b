"""The store API's routes for typed items: calendar items, contacts and tasks.

Routes (beside :mod:`.store_api`'s, with the same guard: organization
servers only, the mailbox checked to be on this server)::

    POST /mailboxes/{mb}/folders/{f}/items          {"kind", "record"} -> TypedItem
    GET  /mailboxes/{mb}/folders/{f}/items?kind&offset&limit       TypedItemPage
    GET  /mailboxes/{mb}/folders/{f}/calendar?start&end            {"items": [TypedItem]}
    GET  /mailboxes/{mb}/items/{id}                                 TypedItem
    PUT  /mailboxes/{mb}/items/{id}                 {"record", "modseq"?} -> TypedItem
    POST /mailboxes/{mb}/items/kinds                {"ids": [...]} -> {"kinds": {id: kind}}

Deleting, moving and copying a typed item are the message routes' (a
typed item is a message).  Records travel as the JSON of
:mod:`.item_records` and are validated here before the database sees them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from aiohttp import web

from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.database_items import MAX_KIND_IDS, parse_record
from sitemail.mailbox.errors import InvalidRequest
from sitemail.mailbox.item_records import ItemKind
from sitemail.mailbox.limits import MAX_PAGE_SIZE
from sitemail.mailbox.locate import MailboxLocation
from sitemail.mailbox.store_backend import StoreBackend
from sitemail.mailbox.store_json import record_response, records_response

__all__ = ["item_routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MailboxOf = Callable[[web.Request], Awaitable[tuple[StoreDatabase, MailboxLocation]]]
JsonBody = Callable[[web.Request], Awaitable[dict[str, object]]]
_MAX_ID = 2**63 - 1


def item_routes(
    backend: StoreBackend, mailbox_of: MailboxOf, json_body: JsonBody, base: str
) -> list[tuple[str, str, Handler]]:
    """The (method, path, handler) rows of the typed item routes under ``base``."""
    routes = _ItemRoutes(backend, mailbox_of, json_body)
    folder = f"{base}/folders/{{folder}}"
    return [
        ("POST", f"{folder}/items", routes.create),
        ("GET", f"{folder}/items", routes.list_items),
        ("GET", f"{folder}/calendar", routes.calendar),
        ("POST", f"{base}/items/kinds", routes.kinds),
        ("GET", f"{base}/items/{{id}}", routes.get),
        ("PUT", f"{base}/items/{{id}}", routes.replace),
    ]


class _ItemRoutes:
    def __init__(self, backend: StoreBackend, mailbox_of: MailboxOf, json_body: JsonBody) -> None:
        self.backend = backend
        self.mailbox_of = mailbox_of
        self.json_body = json_body

    async def create(self, request: web.Request) -> web.StreamResponse:
        db, where = await self.mailbox_of(request)
        folder = _folder(request)
        body = await self.json_body(request)
        record = parse_record(_kind(body.get("kind")), body.get("record"))
        item = await self.backend.run(lambda: db.create_typed(where.alias, folder, record))
        return record_response(item, status=201)

    async def list_items(self, request: web.Request) -> web.StreamResponse:
        db, where = await self.mailbox_of(request)
        folder = _folder(request)
        text = request.query.get("kind")
        kind = _kind(text) if text else None
        offset = _int(request, "offset", 0, _MAX_ID)
        limit = _int(request, "limit", 100, MAX_PAGE_SIZE, low=1)
        page = await self.backend.run(
            lambda: db.list_typed(where.alias, folder, kind=kind, offset=offset, limit=limit)
        )
        return record_response(page)

    async def calendar(self, request: web.Request) -> web.StreamResponse:
        db, where = await self.mailbox_of(request)
        folder = _folder(request)
        start, end = _time(request, "start"), _time(request, "end")
        items = await self.backend.run(lambda: db.calendar_items(where.alias, folder, start, end))
        return records_response("items", items)

    async def get(self, request: web.Request) -> web.StreamResponse:
        db, where = await self.mailbox_of(request)
        item_id = _item_id(request)
        item = await self.backend.run(lambda: db.get_typed(where.alias, item_id))
        return record_response(item)

    async def replace(self, request: web.Request) -> web.StreamResponse:
        db, where = await self.mailbox_of(request)
        item_id = _item_id(request)
        body = await self.json_body(request)
        current = await self.backend.run(lambda: db.get_typed(where.alias, item_id))
        record = parse_record(current.kind, body.get("record"))
        modseq = body.get("modseq")
        if modseq is not None and (isinstance(modseq, bool) or not isinstance(modseq, int)):
            raise InvalidRequest('"modseq" must be a whole number or null')
        item = await self.backend.run(
            lambda: db.replace_typed(where.alias, item_id, record, expected_modseq=modseq)
        )
        return record_response(item)

    async def kinds(self, request: web.Request) -> web.StreamResponse:
        db, where = await self.mailbox_of(request)
        body = await self.json_body(request)
        ids = body.get("ids")
        if not isinstance(ids, list) or len(ids) > MAX_KIND_IDS:
            raise InvalidRequest(f'"ids" must be a list of at most {MAX_KIND_IDS} message ids')
        if not all(isinstance(i, int) and not isinstance(i, bool) and i > 0 for i in ids):
            raise InvalidRequest('"ids" must hold positive whole numbers')
        found = await self.backend.run(lambda: db.typed_kinds(where.alias, ids))
        return web.json_response({"kinds": {str(k): v.value for k, v in found.items()}})


def _kind(value: object) -> ItemKind:
    try:
        return ItemKind(str(value))
    except ValueError:
        kinds = ", ".join(k.value for k in ItemKind)
        raise InvalidRequest(f"kind must be one of {kinds}") from None


def _folder(request: web.Request) -> int | str:
    text = request.match_info["folder"]
    if not text or len(text) > 64:
        raise InvalidRequest("folder must be a folder id or a well-known folder name")
    if text.isdigit():
        if not 0 < int(text) <= _MAX_ID:
            raise InvalidRequest(f"folder id {text[:40]} is out of range")
        return int(text)
    return text


def _item_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isdigit() or len(text) > 19 or not 0 < int(text) <= _MAX_ID:
        raise InvalidRequest(f"item id {text[:40]!r} is not a positive integer")
    return int(text)


def _int(request: web.Request, name: str, default: int, high: int, *, low: int = 0) -> int:
    text = request.query.get(name)
    if not text:
        return default
    if not text.isdigit() or len(text) > 19 or not low <= int(text) <= high:
        raise InvalidRequest(f"?{name}= must be a whole number from {low} to {high}")
    return int(text)


def _time(request: web.Request, name: str) -> datetime:
    text = request.query.get(name, "")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"?{name}= must be an ISO 8601 time with a UTC offset") from None
    if value.tzinfo is None:
        raise InvalidRequest(f"?{name}= must carry a UTC offset")
    return value
