"""Property lists as Select-Object, Sort-Object and the Format cmdlets take them.

An item is a name (wildcards allowed: ``*``, ``Max*``), a script block
(``{$_.MessageCount * 2}``), or a calculated property
``@{Name="Count"; Expression={...}}`` (also ``N``/``L``/``Label`` and ``E``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .errors import RuntimeShellError
from .operators import get_member, has_wildcard, wildcard_match
from .records import Record
from .scriptblock import ScriptBlockValue
from .values import to_string


@dataclass(frozen=True)
class PropertySpec:
    label: str
    get: Callable[[object], object]
    width: int | None = None
    align: str | None = None


def property_names(value: object) -> list[str]:
    if isinstance(value, Record):
        return value.names()
    if isinstance(value, Mapping):
        return [to_string(k) for k in value]
    if isinstance(value, str):
        return ["Length"]
    return []


def _getter(name: str) -> Callable[[object], object]:
    return lambda obj: get_member(obj, name)


def _block_getter(block: ScriptBlockValue) -> Callable[[object], object]:
    def get(obj: object) -> object:
        out = block.invoke(obj)
        return None if not out else out[0] if len(out) == 1 else out

    return get


def resolve(items: Sequence[object], sample: Sequence[object]) -> list[PropertySpec]:
    """Turn a property list into getters, expanding wildcards over ``sample``'s names."""
    known: list[str] = []
    for obj in sample:
        for name in property_names(obj):
            if name.casefold() not in (k.casefold() for k in known):
                known.append(name)
    specs: list[PropertySpec] = []
    for item in items:
        if isinstance(item, ScriptBlockValue):
            specs.append(PropertySpec(item.text, _block_getter(item)))
        elif isinstance(item, Mapping):
            specs.append(_calculated(item))
        else:
            pattern = to_string(item)
            if has_wildcard(pattern):
                specs.extend(
                    PropertySpec(name, _getter(name))
                    for name in known
                    if wildcard_match(pattern, name)
                )
            else:
                label = next((k for k in known if k.casefold() == pattern.casefold()), pattern)
                specs.append(PropertySpec(label, _getter(label)))
    return specs


def _calculated(table: Mapping[object, object]) -> PropertySpec:
    label: str | None = None
    getter: Callable[[object], object] | None = None
    width: int | None = None
    align: str | None = None
    for key, value in table.items():
        k = to_string(key).casefold()
        if k in ("name", "n", "label", "l"):
            label = to_string(value)
        elif k in ("expression", "e"):
            if isinstance(value, ScriptBlockValue):
                getter = _block_getter(value)
                label = label or value.text
            else:
                getter = _getter(to_string(value))
                label = label or to_string(value)
        elif k == "width" and isinstance(value, int):
            width = value
        elif k in ("alignment", "align"):
            align = to_string(value).casefold()
        else:
            raise RuntimeShellError(
                f'The "{to_string(key)}" key is not valid in a calculated property. Use Name '
                'and Expression, such as @{Name="Size"; Expression={$_.MessageCount}}.'
            )
    if getter is None:
        raise RuntimeShellError(
            "A calculated property needs an Expression key, such as "
            '@{Name="Size"; Expression={$_.MessageCount}}.'
        )
    return PropertySpec(label or "", getter, width, align)
