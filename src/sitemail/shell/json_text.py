"""Objects as JSON (ConvertTo-Json and ``sitemail shell --json``).

Sizes, time spans and flag sets are written as the text Exchange shows for
them, which is what a script reading the JSON compares against.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from .records import Record
from .values import ByteSize, FlagsValue, to_string


def json_value(value: object, depth: int) -> object:
    """A JSON-ready copy of ``value``; below ``depth`` levels, objects become their text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, ByteSize | FlagsValue | timedelta):
        return to_string(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        if depth < 0:
            return to_string(value)
        return [json_value(v, depth - 1) for v in value]
    if isinstance(value, Record):
        if depth < 0:
            return str(value)
        return {name: json_value(v, depth - 1) for name, v in value.items()}
    if isinstance(value, Mapping):
        if depth < 0:
            return to_string(value)
        return {to_string(k): json_value(v, depth - 1) for k, v in value.items()}
    return to_string(value)


def to_json(objects: Sequence[object], *, depth: int = 2, compress: bool = False) -> str:
    """One object as itself, several as an array (as ConvertTo-Json does)."""
    data = (
        json_value(objects[0], depth) if len(objects) == 1 else json_value(list(objects), depth + 1)
    )
    if compress:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return json.dumps(data, indent=2, ensure_ascii=False)
