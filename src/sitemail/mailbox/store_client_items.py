"""The store client's calls for typed items (calendar items, contacts, tasks).

A mix-in of :class:`~sitemail.mailbox.store_client.StoreClient`: the routes
are :mod:`.store_api_items`'; errors are the store's, as for messages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from sitemail.mailbox.errors import StoreUnavailable
from sitemail.mailbox.item_records import ItemKind, TypedItem, TypedItemPage

__all__ = ["TypedItemCalls"]

FolderArg = int | str


def _valid(cls: type[TypedItem] | type[TypedItemPage], body: Any) -> Any:
    try:
        return cls.model_validate(body)
    except ValidationError as exc:
        raise StoreUnavailable(f"the store answered a malformed {cls.__name__}: {exc}") from None


class TypedItemCalls:
    """Calls on typed items, over the client's request plumbing."""

    #: StoreClient._json: (method, mailbox, path, params=, json_body=) -> the JSON answer.
    _json: Callable[..., Awaitable[Any]]

    async def create_typed(
        self, mailbox: str, folder: FolderArg, kind: ItemKind, record: BaseModel
    ) -> TypedItem:
        body = {"kind": kind.value, "record": record.model_dump(mode="json")}
        answer = await self._json("POST", mailbox, f"/folders/{_seg(folder)}/items", json_body=body)
        item: TypedItem = _valid(TypedItem, answer)
        return item

    async def get_typed(self, mailbox: str, item_id: int) -> TypedItem:
        item: TypedItem = _valid(TypedItem, await self._json("GET", mailbox, f"/items/{item_id:d}"))
        return item

    async def replace_typed(
        self,
        mailbox: str,
        item_id: int,
        record: BaseModel,
        *,
        expected_modseq: int | None = None,
    ) -> TypedItem:
        body = {"record": record.model_dump(mode="json"), "modseq": expected_modseq}
        answer = await self._json("PUT", mailbox, f"/items/{item_id:d}", json_body=body)
        item: TypedItem = _valid(TypedItem, answer)
        return item

    async def list_typed(
        self,
        mailbox: str,
        folder: FolderArg,
        *,
        kind: ItemKind | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> TypedItemPage:
        params = {"offset": str(offset), "limit": str(limit)}
        if kind is not None:
            params["kind"] = kind.value
        answer = await self._json("GET", mailbox, f"/folders/{_seg(folder)}/items", params=params)
        page: TypedItemPage = _valid(TypedItemPage, answer)
        return page

    async def calendar_items(
        self, mailbox: str, folder: FolderArg, start: datetime, end: datetime
    ) -> list[TypedItem]:
        params = {"start": start.isoformat(), "end": end.isoformat()}
        body = await self._json("GET", mailbox, f"/folders/{_seg(folder)}/calendar", params=params)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise StoreUnavailable("the store answered a malformed item list")
        return [_valid(TypedItem, i) for i in items]

    async def typed_kinds(self, mailbox: str, ids: Collection[int]) -> dict[int, ItemKind]:
        body = await self._json("POST", mailbox, "/items/kinds", json_body={"ids": list(ids)})
        try:
            return {int(k): ItemKind(v) for k, v in body["kinds"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreUnavailable(f"the store answered malformed kinds: {exc}") from None


def _seg(folder: FolderArg) -> str:
    return quote(str(folder), safe="")
