"""The part of the store API that EWS uses for calendar items, contacts and tasks."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from pydantic import BaseModel

from sitemail.mailbox.item_records import ItemKind, TypedItem, TypedItemPage

__all__ = ["TypedItemStore"]


class TypedItemStore(Protocol):
    """:class:`~sitemail.mailbox.store_client_items.TypedItemCalls`, as EWS sees it."""

    async def create_typed(
        self, mailbox: str, folder: int | str, kind: ItemKind, record: BaseModel
    ) -> TypedItem: ...

    async def get_typed(self, mailbox: str, item_id: int) -> TypedItem: ...

    async def replace_typed(
        self, mailbox: str, item_id: int, record: BaseModel, *, expected_modseq: int | None = None
    ) -> TypedItem: ...

    async def list_typed(
        self,
        mailbox: str,
        folder: int | str,
        *,
        kind: ItemKind | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> TypedItemPage: ...

    async def calendar_items(
        self, mailbox: str, folder: int | str, start: datetime, end: datetime
    ) -> list[TypedItem]: ...

    async def typed_kinds(self, mailbox: str, ids: Collection[int]) -> dict[int, ItemKind]: ...
