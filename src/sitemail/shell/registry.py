"""The set of cmdlets a shell knows, with their aliases and views."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Generic, TypeVar

from .cmdlet import CmdletDefinition
from .views import View, ViewRegistry

C = TypeVar("C")


class Registry(Generic[C]):
    """Cmdlets by name and alias (any case), for services of type ``C``.

    A new registry holds the built-in cmdlets (Where-Object, Format-Table,
    Get-Help, ...) unless ``builtins=False``.
    """

    def __init__(self, *, builtins: bool = True) -> None:
        self._by_name: dict[str, CmdletDefinition[C]] = {}
        self._by_alias: dict[str, CmdletDefinition[C]] = {}
        self.views = ViewRegistry()
        if builtins:
            from .builtin_cmdlets import BUILTINS  # late: they import this package's API

            self.extend(BUILTINS)

    def add(self, definition: CmdletDefinition[C]) -> None:
        info = definition.info
        for key in (info.name, *info.aliases):
            if key.casefold() in self._by_name or key.casefold() in self._by_alias:
                raise ValueError(f"a command named {key!r} is already registered")
        self._by_name[info.name.casefold()] = definition
        for alias in info.aliases:
            self._by_alias[alias.casefold()] = definition
        self.views.extend(definition.views)

    def extend(self, definitions: Iterable[CmdletDefinition[C]]) -> None:
        for definition in definitions:
            self.add(definition)

    def add_view(self, view: View) -> None:
        self.views.add(view)

    def find(self, name: str) -> CmdletDefinition[C] | None:
        key = name.casefold()
        return self._by_name.get(key) or self._by_alias.get(key)

    def definitions(self) -> list[CmdletDefinition[C]]:
        return sorted(self._by_name.values(), key=lambda d: d.info.name.casefold())

    def command_names(self) -> list[str]:
        """Every cmdlet name and alias, as declared."""
        names = [d.info.name for d in self._by_name.values()]
        names += [alias for d in self._by_name.values() for alias in d.info.aliases]
        return sorted(names, key=str.casefold)

    def suggest(self, name: str) -> str | None:
        """The closest known name, for "did you mean" in errors."""
        names = [d.info.name for d in self._by_name.values()]
        lowered = {n.casefold(): n for n in names}
        close = difflib.get_close_matches(name.casefold(), list(lowered), n=1, cutoff=0.8)
        return lowered[close[0]] if close else None
