"""Directory properties under their Exchange names: how each shows and how Set- changes it.

Each noun (receive connector, transport server, virtual directory, ...) lists
its properties once as :class:`Field` entries; the Get- cmdlet builds its
records from them and the Set- cmdlet its parameters and its changes, so a
property's name, display format and parameter type cannot drift apart.

Model attributes are the Exchange names in snake_case
(``RemoteIPRanges`` -> ``remote_ip_ranges``, see :mod:`sitemail.org.model`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from pydantic import BaseModel, ValidationError

from sitemail.shell import (
    BoundParameters,
    ByteSize,
    FlagsValue,
    MultiValuedUpdate,
    Parameter,
    ParamType,
    Record,
)
from sitemail.shell.values import to_string

from .param_types import UNLIMITED, size_bytes, unlimited_int

M = TypeVar("M", bound=BaseModel)

#: plain: as stored; size: bytes shown as ``10 MB (10,485,760 bytes)``; unlimited: ``None``
#: shown as ``unlimited``; flags: a list shown as ``Tls, Integrated``; multi: a list shown
#: in braces and changed with ``@{Add=...; Remove=...}``.
Kind = Literal["plain", "size", "unlimited", "flags", "multi"]

_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(exchange_name: str) -> str:
    """``RemoteIPRanges`` -> ``remote_ip_ranges``; ``SuppressXAnonymousTls`` -> ``..._x_...``."""
    return _WORD_BREAK.sub("_", exchange_name).lower()


@dataclass(frozen=True)
class Field:
    """One property: its Exchange name, model attribute, display kind, and Set- parameter type.

    ``param`` None makes the property read-only.
    """

    name: str
    param: ParamType | None = None
    kind: Kind = "plain"
    attr: str = ""
    aliases: tuple[str, ...] = ()
    help: str = ""

    @property
    def attribute(self) -> str:
        return self.attr or snake_case(self.name)

    def show(self, value: object) -> object:
        """The model's value as the EMS shows it."""
        if self.kind == "size":
            return ByteSize(value) if isinstance(value, int) else UNLIMITED
        if self.kind == "unlimited":
            return UNLIMITED if value is None else plain(value)
        if self.kind == "flags":
            items = value if isinstance(value, list | tuple) else ()
            return FlagsValue(tuple(to_string(plain(v)) for v in items))
        return plain(value)

    def stored(self, value: object, current: object) -> object:
        """A converted parameter value as the model stores it."""
        if self.kind == "size":
            return size_bytes(value)
        if self.kind == "unlimited":
            return unlimited_int(value)
        if self.kind == "flags":
            return list(value.names) if isinstance(value, FlagsValue) else []
        if self.kind == "multi" and isinstance(value, MultiValuedUpdate):
            items = current if isinstance(current, list | tuple) else ()
            return [to_string(v) for v in value.apply(items)]
        if value == UNLIMITED:
            return None
        return value

    def parameter(self) -> Parameter:
        assert self.param is not None
        return Parameter(self.name, self.param, aliases=self.aliases, help=self.help)


def plain(value: object) -> object:
    """Enums as their names, lists as tuples (shown in braces), anything else as is."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return tuple(plain(v) for v in value)
    return value


def items(obj: BaseModel, fields: Sequence[Field]) -> list[tuple[str, object]]:
    """The (Exchange name, shown value) pairs of ``obj``."""
    return [(f.name, f.show(getattr(obj, f.attribute))) for f in fields]


def make_record(
    type_name: str, properties: Iterable[tuple[str, object]], overrides: Mapping[str, object]
) -> Record:
    """A record of ``properties`` in order, with some values replaced (computed ones)."""
    keyed = {k.casefold(): v for k, v in overrides.items()}
    return Record(type_name, [(n, keyed.get(n.casefold(), v)) for n, v in properties])


def set_parameters(fields: Sequence[Field]) -> tuple[Parameter, ...]:
    return tuple(f.parameter() for f in fields if f.param is not None)


class ChangeRejected(Exception):
    """A Set- or New- cmdlet asked for a value the model refuses; the message says why."""


def changes(obj: BaseModel, fields: Sequence[Field], params: BoundParameters) -> dict[str, object]:
    """The model attributes the bound parameters change, with their new stored values."""
    out: dict[str, object] = {}
    for f in fields:
        if f.param is not None and f.name in params:
            out[f.attribute] = f.stored(params[f.name], getattr(obj, f.attribute))
    return out


def updated(obj: M, update: Mapping[str, object], fields: Sequence[Field] = ()) -> M:
    """A validated copy of ``obj`` with ``update`` applied; ChangeRejected names the property."""
    data = obj.model_dump()
    data.update(update)
    try:
        return type(obj).model_validate(data)
    except ValidationError as error:
        raise ChangeRejected(validation_message(error, fields)) from None


def validation_message(error: ValidationError, fields: Sequence[Field] = ()) -> str:
    """pydantic's first complaint, with the Exchange property name in front."""
    names = {f.attribute: f.name for f in fields}
    first = error.errors()[0]
    location = [str(part) for part in first.get("loc", ())]
    attribute = location[0] if location else ""
    name = names.get(attribute) or "".join(p.capitalize() for p in attribute.split("_"))
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"The value of property '{name}' is not valid: {message}." if name else message
