"""The objects that flow through pipelines."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping


class Record:
    """An output object: a type name and ordered, case-insensitively named properties.

    The type name chooses the default view (``registry.views``), as a .NET
    type name chooses a format view in PowerShell. Exchange cmdlets may use
    the Exchange type names or shorter ones, as long as their views use the
    same names.
    """

    __slots__ = ("_properties", "type_name")

    def __init__(
        self, type_name: str, properties: Mapping[str, object] | Iterable[tuple[str, object]] = ()
    ) -> None:
        self.type_name = type_name
        self._properties: dict[str, tuple[str, object]] = {}
        items = properties.items() if isinstance(properties, Mapping) else properties
        for name, value in items:
            self._properties[name.casefold()] = (name, value)

    def __getitem__(self, name: str) -> object:
        return self._properties[name.casefold()][1]

    def get(self, name: str, default: object = None) -> object:
        entry = self._properties.get(name.casefold())
        return default if entry is None else entry[1]

    def has(self, name: str) -> bool:
        return name.casefold() in self._properties

    def canonical_name(self, name: str) -> str | None:
        """The property's name as the record spells it, or None if there is none."""
        entry = self._properties.get(name.casefold())
        return None if entry is None else entry[0]

    def names(self) -> list[str]:
        return [name for name, _ in self._properties.values()]

    def items(self) -> Iterator[tuple[str, object]]:
        return iter(self._properties.values())

    def replace(self, **changes: object) -> Record:
        """A copy with some properties changed (or added at the end)."""
        copy = Record(self.type_name, self.items())
        for name, value in changes.items():
            canonical = copy.canonical_name(name) or name
            copy._properties[name.casefold()] = (canonical, value)
        return copy

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return self.type_name == other.type_name and list(self.items()) == list(other.items())

    __hash__ = None  # type: ignore[assignment]  # mutable-looking value object

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={value!r}" for name, value in self.items())
        return f"Record({self.type_name!r}, {inner})"

    def __str__(self) -> str:
        """What PowerShell shows for the object inside a string or a table cell."""
        for key in ("Identity", "Name"):
            value = self.get(key)
            if value is not None:
                from .values import to_string  # late: values formats records too

                return to_string(value)
        return self.type_name
