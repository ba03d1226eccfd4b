"""The store client's calls for what a folder holds beside its name.

A mix-in of :class:`~sitemail.mailbox.store_client.StoreClient`: the routes
are :mod:`.store_api_folders`'; errors are the store's, as for messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar, cast
from urllib.parse import quote

import aiohttp
from pydantic import ValidationError

from sitemail.lru import LruCache
from sitemail.mailbox.errors import StoreUnavailable
from sitemail.mailbox.records import FolderView, ItemProperties, Record
from sitemail.mailbox.store_reading import MAX_JSON_RESPONSE, read_capped, validated

__all__ = ["KEPT_SIZE", "KEPT_VIEWS", "FolderPropertyCalls"]

#: Answers a client keeps (about 10 KB each for a page of 20), and the largest kept.
KEPT_VIEWS = 256
KEPT_SIZE = 64 * 1024

K = TypeVar("K", bound=Record)


class FolderPropertyCalls:
    """A folder's properties, over the client's request plumbing."""

    #: StoreClient._json: (method, mailbox, path, params=, json_body=) -> the JSON answer.
    _json: Callable[..., Awaitable[Any]]
    #: StoreClient._request: (method, mailbox, path, params=, headers=) -> the response.
    _request: Callable[..., AbstractAsyncContextManager[aiohttp.ClientResponse]]
    #: The answers this client keeps (folder views, message pages), by request, with
    #: the store's ETag.
    _views: LruCache[tuple[object, ...], tuple[str, Record]]

    async def folder_view(
        self, mailbox: str, folder: int | str, *, offset: int = 0, limit: int = 50
    ) -> FolderView:
        """The folder tree, ``folder`` and a page of it (newest first), in one call."""
        params = {"offset": str(offset), "limit": str(limit)}
        path = f"/folders/{quote(str(folder), safe='')}/view"
        return await self._kept_get(FolderView, mailbox, path, params)

    async def _kept_get(self, cls: type[K], mailbox: str, path: str, params: dict[str, str]) -> K:
        """A GET answer the store tags (:func:`~.store_api_folders.kept_answer`), kept.

        The last KEPT_VIEWS answers (each at most KEPT_SIZE) are kept parsed with
        their ETags; the store answers 304 when nothing was committed to the
        database since, and the answer is then neither read nor parsed again.
        Records are frozen, so every caller may have the same one.
        """
        key = (mailbox.casefold(), path, tuple(sorted(params.items())))
        kept = self._views.get(key)
        headers = {"If-None-Match": kept[0]} if kept is not None else None
        async with self._request("GET", mailbox, path, params=params, headers=headers) as response:
            etag = response.headers.get("ETag")
            if response.status == 304 and kept is not None and etag == kept[0]:
                return cast(K, kept[1])
            text = await read_capped(response, MAX_JSON_RESPONSE)
        answer = validated(cls, text)
        if etag is not None and len(text) <= KEPT_SIZE:
            self._views.put(key, (etag, answer))
        return answer

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
