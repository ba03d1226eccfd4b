"""The store client's calls for what a folder holds beside its name.

A mix-in of :class:`~sitemail.mailbox.store_client.StoreClient`: the routes
are :mod:`.store_api_folders`'; errors are the store's, as for messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import quote

import aiohttp
from pydantic import ValidationError

from sitemail.lru import LruCache
from sitemail.mailbox.errors import StoreUnavailable
from sitemail.mailbox.records import FolderView, ItemProperties
from sitemail.mailbox.store_reading import MAX_JSON_RESPONSE, read_capped, validated

__all__ = ["KEPT_VIEWS", "FolderPropertyCalls"]

#: Folder views a client keeps (about 10 KB each for a page of 20).
KEPT_VIEWS = 256


class FolderPropertyCalls:
    """A folder's properties, over the client's request plumbing."""

    #: StoreClient._json: (method, mailbox, path, params=, json_body=) -> the JSON answer.
    _json: Callable[..., Awaitable[Any]]
    #: StoreClient._request: (method, mailbox, path, params=, headers=) -> the response.
    _request: Callable[..., AbstractAsyncContextManager[aiohttp.ClientResponse]]
    #: The folder views this client has, by request, with the store's ETag.
    _views: LruCache[tuple[str, str, int, int], tuple[str, FolderView]]

    async def folder_view(
        self, mailbox: str, folder: int | str, *, offset: int = 0, limit: int = 50
    ) -> FolderView:
        """The folder tree, ``folder`` and a page of it (newest first), in one call.

        The last KEPT_VIEWS answers are kept with their ETags; the store answers 304
        when nothing was committed to the database since (a refreshed page is then
        neither read nor parsed again).
        """
        key = (mailbox.casefold(), str(folder), offset, limit)
        kept = self._views.get(key)
        params = {"offset": str(offset), "limit": str(limit)}
        path = f"/folders/{quote(str(folder), safe='')}/view"
        headers = {"If-None-Match": kept[0]} if kept is not None else None
        async with self._request("GET", mailbox, path, params=params, headers=headers) as response:
            etag = response.headers.get("ETag")
            if response.status == 304 and kept is not None and etag == kept[0]:
                return kept[1]
            text = await read_capped(response, MAX_JSON_RESPONSE)
        view = validated(FolderView, text)
        if etag is not None:
            self._views.put(key, (etag, view))
        return view

    async def get_folder_properties(self, mailbox: str, folder: int | str) -> ItemProperties:
        body = await self._json("GET", mailbox, _path(folder))
        return _properties(body)

    async def set_folder_properties(
        self, mailbox: str, folder: int | str, properties: dict[str, Any]
    ) -> ItemProperties:
        body = await self._json("PUT", mailbox, _path(folder), json_body={"properties": properties})
        return _properties(body)


def _path(folder: int | str) -> str:
    return f"/folders/{quote(str(folder), safe='')}/properties"


def _properties(body: Any) -> ItemProperties:
    try:
        return ItemProperties.model_validate(body)
    except ValidationError as exc:
        raise StoreUnavailable(f"the store answered malformed folder properties: {exc}") from None
