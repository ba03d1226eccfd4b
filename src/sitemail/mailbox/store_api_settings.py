"""The store API's routes for mailbox settings (automatic replies, Inbox rules, delegates).

Routes (beside :mod:`.store_api`'s, with the same guard)::

    GET /mailboxes/{mb}/settings/{name}                      {"value": {...} | null}
    PUT /mailboxes/{mb}/settings/{name}   {"value", "expected"?} -> {"value": {...}}

A PUT with ``expected`` (null included) writes only over that document and
is 409 otherwise (:mod:`.database_settings`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.errors import InvalidRequest
from sitemail.mailbox.locate import MailboxLocation
from sitemail.mailbox.mailbox_settings import SettingName, setting_name
from sitemail.mailbox.store_backend import StoreBackend

__all__ = ["settings_routes"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MailboxOf = Callable[[web.Request], Awaitable[tuple[StoreDatabase, MailboxLocation]]]
JsonBody = Callable[[web.Request], Awaitable[dict[str, object]]]


def settings_routes(
    backend: StoreBackend, mailbox_of: MailboxOf, json_body: JsonBody, base: str
) -> list[tuple[str, str, Handler]]:
    """The (method, path, handler) rows of the settings routes under ``base``."""

    def name_of(request: web.Request) -> SettingName:
        return setting_name(request.match_info["name"])

    async def get(request: web.Request) -> web.StreamResponse:
        db, where = await mailbox_of(request)
        name = name_of(request)
        value = await backend.run(lambda: db.get_setting(where.alias, name))
        return web.json_response({"value": value})

    async def put(request: web.Request) -> web.StreamResponse:
        db, where = await mailbox_of(request)
        name = name_of(request)
        body = await json_body(request)
        value, check = body.get("value"), "expected" in body
        expected = body.get("expected")
        if not isinstance(value, dict) or not (expected is None or isinstance(expected, dict)):
            raise InvalidRequest('"value" (and "expected", if given) must be JSON objects')
        stored = await backend.run(
            lambda: db.put_setting(where.alias, name, value, expected=expected, check=check)
        )
        return web.json_response({"value": stored})

    path = f"{base}/settings/{{name}}"
    return [("GET", path, get), ("PUT", path, put)]
