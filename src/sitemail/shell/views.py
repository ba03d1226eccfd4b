"""Default views: which columns a type shows in a table, which properties in a list.

As in PowerShell, an object whose type has no view shows as a table when it
has at most four properties and as a list otherwise.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Column:
    """A table column: the property, its header, an optional fixed width and alignment.

    Without a width the column is as wide as its content; without an
    alignment, numbers go right and everything else left.
    """

    property: str
    label: str | None = None
    width: int | None = None
    align: Literal["left", "right"] | None = None

    @builtins.property
    def header(self) -> str:
        return self.label or self.property


@dataclass(frozen=True)
class TableView:
    type_name: str
    columns: tuple[Column, ...]

    @classmethod
    def of(cls, type_name: str, *columns: str | Column) -> TableView:
        """``TableView.of("Queue", "Identity", "DeliveryType", Column("Status", width=7))``."""
        return cls(type_name, tuple(c if isinstance(c, Column) else Column(c) for c in columns))


@dataclass(frozen=True)
class ListView:
    type_name: str
    properties: tuple[str, ...]

    @classmethod
    def of(cls, type_name: str, *properties: str) -> ListView:
        return cls(type_name, properties)


View = TableView | ListView


class ViewRegistry:
    """Views by type name (compared without regard to case)."""

    def __init__(self) -> None:
        self._tables: dict[str, TableView] = {}
        self._lists: dict[str, ListView] = {}

    def add(self, view: View) -> None:
        if isinstance(view, TableView):
            self._tables[view.type_name.casefold()] = view
        else:
            self._lists[view.type_name.casefold()] = view

    def extend(self, views: Sequence[View]) -> None:
        for view in views:
            self.add(view)

    def table(self, type_name: str) -> TableView | None:
        return self._tables.get(type_name.casefold())

    def list(self, type_name: str) -> ListView | None:
        return self._lists.get(type_name.casefold())
