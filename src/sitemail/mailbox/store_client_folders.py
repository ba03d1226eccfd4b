"""The store client's calls for what a folder holds beside its name.

A mix-in of :class:`~sitemail.mailbox.store_client.StoreClient`: the routes
are :mod:`.store_api_folders`'; errors are the store's, as for messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from sitemail.mailbox.errors import StoreUnavailable
from sitemail.mailbox.records import FolderView, ItemProperties

__all__ = ["FolderPropertyCalls"]


class FolderPropertyCalls:
    """A folder's properties, over the client's request plumbing."""

    #: StoreClient._json: (method, mailbox, path, params=, json_body=) -> the JSON answer.
    _json: Callable[..., Awaitable[Any]]
    #: StoreClient._call: (record class, method, mailbox, path, params=) -> the record.
    _call: Callable[..., Awaitable[Any]]

    async def folder_view(
        self, mailbox: str, folder: int | str, *, offset: int = 0, limit: int = 50
    ) -> FolderView:
        """The folder tree, ``folder`` and a page of it (newest first), in one call."""
        params = {"offset": str(offset), "limit": str(limit)}
        path = f"/folders/{quote(str(folder), safe='')}/view"
        view: FolderView = await self._call(FolderView, "GET", mailbox, path, params=params)
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
