"""The store client's calls for typed items (calendar items, contacts, tasks).

A mix-in of :class:`~sitemail.mailbox.store_client.StoreClient`: the routes
are :mod:`.store_api_items`'; errors are the store's, as for messages.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from sitemail.mailbox.errors import StoreUnavailable
from sitemail.mailbox.item_records import ItemKind, TypedItem, TypedItemPage

__all__ = ["TypedItemCalls"]

R = TypeVar("R", bound=BaseModel)
FolderArg = int | str


class TypedItemCalls:
    """Calls on typed items; the request plumbing is the client's."""

    async def _call(
        self,
        cls: type[R],
        method: str,
        mailbox: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Any = None,
        read_timeout: float | None = None,
    ) -> R:
        raise NotImplementedError  # StoreClient's

    async def _json(
        self,
        method: str,
        mailbox: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Any = None,
        read_timeout: float | None = None,
    ) -> Any:
        raise NotImplementedError  # StoreClient's

    async def create_typed(
        self, mailbox: str, folder: FolderArg, kind: ItemKind, record: BaseModel
    ) -> TypedItem:
        body = {"kind": kind.value, "record": record.model_dump(mode="json")}
        return await self._call(
            TypedItem, "POST", mailbox, f"/folders/{_seg(folder)}/items", json_body=body
        )

    async def get_typed(self, mailbox: str, item_id: int) -> TypedItem:
        return await self._call(TypedItem, "GET", mailbox, f"/items/{int(item_id)}")

    async def replace_typed(
        self,
        mailbox: str,
        item_id: int,
        record: BaseModel,
        *,
        expected_modseq: int | None = None,
    ) -> TypedItem:
        body = {"record": record.model_dump(mode="json"), "modseq": expected_modseq}
        return await self._call(TypedItem, "PUT", mailbox, f"/items/{int(item_id)}", json_body=body)

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
        return await self._call(
            TypedItemPage, "GET", mailbox, f"/folders/{_seg(folder)}/items", params=params
        )

    async def calendar_items(
        self, mailbox: str, folder: FolderArg, start: datetime, end: datetime
    ) -> list[TypedItem]:
        params = {"start": start.isoformat(), "end": end.isoformat()}
        body = await self._json("GET", mailbox, f"/folders/{_seg(folder)}/calendar", params=params)
        try:
            return [TypedItem.model_validate(i) for i in body["items"]]
        except (ValidationError, KeyError, TypeError) as exc:
            raise StoreUnavailable(f"the store answered a malformed item list: {exc}") from None

    async def typed_kinds(self, mailbox: str, ids: Collection[int]) -> dict[int, ItemKind]:
        body = await self._json("POST", mailbox, "/items/kinds", json_body={"ids": list(ids)})
        try:
            return {int(k): ItemKind(v) for k, v in body["kinds"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StoreUnavailable(f"the store answered malformed kinds: {exc}") from None


def _seg(folder: FolderArg) -> str:
    return quote(str(folder), safe="")
