"""Parameter declarations and the types that convert arguments for them.

A cmdlet declares its parameters with :class:`Parameter`; each has a
:class:`ParamType` that turns what the user typed (a bare word, a number, a
list, a hashtable) into the value the cmdlet receives, or says in
PowerShell's words why it cannot.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from .errors import ArgumentRejected, ConversionError, ParseError
from .lexer import parse_number
from .records import Record
from .scriptblock import RecordFilter, ScriptBlockValue
from .values import ByteSize, FlagsValue, parse_timespan, to_string, type_name

_ARRAY_REJECTED = (
    "Cannot convert 'System.Object[]' to the type '{type}' required by parameter "
    "'{{parameter}}'. Specified method is not supported."
)


class PipelineInput(enum.Flag):
    """How a parameter takes objects from the pipeline."""

    NONE = 0
    BY_VALUE = enum.auto()
    BY_PROPERTY_NAME = enum.auto()


BY_VALUE = PipelineInput.BY_VALUE
BY_PROPERTY_NAME = PipelineInput.BY_PROPERTY_NAME


class ParamType:
    """Base of parameter types. Subclasses override :meth:`convert`."""

    type_name = "System.Object"
    short_name = "Object"
    is_switch = False

    def convert(self, value: object) -> object:
        return value

    def accepts_exact(self, value: object) -> bool:
        """True if ``value`` needs no conversion (PowerShell binds those first)."""
        return True

    def completions(self) -> tuple[str, ...]:
        """Values the interactive shell offers after the parameter name."""
        return ()

    def syntax(self) -> str:
        """How ``Get-Help`` shows the type in a syntax line."""
        return f"<{self.short_name}>"

    def _scalar(self, value: object) -> object:
        """Unwrap a one-element list; refuse longer ones as PowerShell does."""
        if isinstance(value, list | tuple):
            if len(value) == 1:
                return value[0]
            raise ArgumentRejected(_ARRAY_REJECTED.format(type=self.type_name))
        return value


class StringType(ParamType):
    type_name = "System.String"
    short_name = "String"

    def convert(self, value: object) -> object:
        value = self._scalar(value)
        if value is None:
            return None
        return to_string(value)

    def accepts_exact(self, value: object) -> bool:
        return isinstance(value, str)


class ObjectType(ParamType):
    """Anything, unchanged (InputObject, -Value)."""

    def convert(self, value: object) -> object:
        return value


class IntType(ParamType):
    type_name = "System.Int32"
    short_name = "Int32"

    def __init__(self, minimum: int | None = None, maximum: int | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def convert(self, value: object) -> object:
        value = self._scalar(value)
        number: int | float | None
        if isinstance(value, bool):
            number = int(value)
        elif isinstance(value, int | float):
            number = value
        elif isinstance(value, str):
            number = parse_number(value.strip())
        elif isinstance(value, ByteSize):
            number = value.bytes
        else:
            number = None
        if number is None:
            raise ConversionError("Input string was not in a correct format.")
        result = round(number)
        if self.minimum is not None and result < self.minimum:
            raise ArgumentRejected(
                f"Cannot validate argument on parameter '{{parameter}}'. The {result} argument "
                f"is less than the minimum allowed range of {self.minimum}. Supply an argument "
                f"that is greater than or equal to {self.minimum} and then try the command again."
            )
        if self.maximum is not None and result > self.maximum:
            raise ArgumentRejected(
                f"Cannot validate argument on parameter '{{parameter}}'. The {result} argument "
                f"is greater than the maximum allowed range of {self.maximum}. Supply an argument "
                f"that is less than or equal to {self.maximum} and then try the command again."
            )
        return result

    def accepts_exact(self, value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)


class BoolType(ParamType):
    type_name = "System.Boolean"
    short_name = "Boolean"

    def convert(self, value: object) -> object:
        value = self._scalar(value)
        if value is None:
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return value != 0
        raise ArgumentRejected(
            "Cannot process argument transformation on parameter '{parameter}'. Cannot convert "
            f'value "{type_name(value)}" to type "System.Boolean". Boolean parameters accept '
            "only Boolean values and numbers, such as $True, $False, 1 or 0."
        )

    def accepts_exact(self, value: object) -> bool:
        return isinstance(value, bool)

    def completions(self) -> tuple[str, ...]:
        return ("$true", "$false")


class SwitchType(BoolType):
    """Present means true; ``-Name:$false`` turns it off."""

    type_name = "System.Management.Automation.SwitchParameter"
    short_name = "SwitchParameter"
    is_switch = True

    def completions(self) -> tuple[str, ...]:
        return ()

    def syntax(self) -> str:
        return ""


class EnumType(ParamType):
    """One name out of a fixed set, matched without regard to case."""

    def __init__(self, type_name: str, values: Iterable[str]) -> None:
        self.type_name = type_name
        self.short_name = type_name.rsplit(".", 1)[-1]
        self.values = tuple(values)
        self._by_key = {v.casefold(): v for v in self.values}

    def convert(self, value: object) -> object:
        value = self._scalar(value)
        if value is None:
            raise ConversionError(self._unmatched(""))
        text = to_string(value).strip()
        found = self._by_key.get(text.casefold())
        if found is None:
            raise ConversionError(self._unmatched(text))
        return found

    def _unmatched(self, text: str) -> str:
        return (
            f"Unable to match the identifier name {text} to a valid enumerator name. Specify "
            f"one of the following enumerator names and try again: {', '.join(self.values)}"
        )

    def accepts_exact(self, value: object) -> bool:
        return isinstance(value, str) and value in self.values

    def completions(self) -> tuple[str, ...]:
        return self.values

    def syntax(self) -> str:
        return "{" + " | ".join(self.values) + "}"


class FlagsType(EnumType):
    """A combination of names (``Tls, Integrated``): a comma list or one comma-separated string."""

    def convert(self, value: object) -> object:
        if value is None:
            return FlagsValue(())
        if isinstance(value, FlagsValue):
            items: list[object] = list(value.names)
        elif isinstance(value, list | tuple):
            items = list(value)
        else:
            items = [value]
        chosen: set[str] = set()
        for item in items:
            for part in to_string(item).split(","):
                name = part.strip()
                found = self._by_key.get(name.casefold())
                if found is None:
                    raise ConversionError(self._unmatched(name))
                chosen.add(found)
        return FlagsValue(tuple(v for v in self.values if v in chosen))

    def accepts_exact(self, value: object) -> bool:
        return isinstance(value, FlagsValue)

    def syntax(self) -> str:
        return f"<{self.short_name}[]>"


class ListType(ParamType):
    """Several values of one type; a single value becomes a list of one."""

    def __init__(self, item: ParamType) -> None:
        self.item = item
        self.type_name = item.type_name + "[]"
        self.short_name = item.short_name + "[]"

    def convert(self, value: object) -> object:
        if value is None:
            return ()
        items = value if isinstance(value, list | tuple) else [value]
        return tuple(self.item.convert(v) for v in items)

    def accepts_exact(self, value: object) -> bool:
        return isinstance(value, tuple)

    def completions(self) -> tuple[str, ...]:
        return self.item.completions()


@dataclass(frozen=True)
class MultiValuedUpdate:
    """What a multi-valued parameter asks for: a new list, or items to add and remove.

    ``-RemoteIPRanges 10.0.0.1,10.0.0.2`` replaces the list (as Exchange does);
    ``-RemoteIPRanges @{Add="10.0.0.3"; Remove="10.0.0.1"}`` edits it. Cmdlets
    call :meth:`apply` with the current value.
    """

    replace: tuple[object, ...] | None = None
    add: tuple[object, ...] = field(default=())
    remove: tuple[object, ...] = field(default=())

    def apply(self, current: Iterable[object]) -> tuple[object, ...]:
        result = list(self.replace if self.replace is not None else current)
        removing = {_item_key(v) for v in self.remove}
        result = [v for v in result if _item_key(v) not in removing]
        present = {_item_key(v) for v in result}
        for item in self.add:
            if _item_key(item) not in present:
                result.append(item)
                present.add(_item_key(item))
        return tuple(result)


def _item_key(value: object) -> object:
    return value.casefold() if isinstance(value, str) else to_string(value).casefold()


class MultiValuedType(ParamType):
    """A multi-valued property: a list replaces, ``@{Add=...; Remove=...}`` edits."""

    def __init__(self, item: ParamType) -> None:
        self.item = item
        self.type_name = f"Microsoft.Exchange.Data.MultiValuedProperty`1[{item.type_name}]"
        self.short_name = f"MultiValuedProperty[{item.short_name}]"

    def _items(self, value: object) -> tuple[object, ...]:
        if value is None:
            return ()
        items = value if isinstance(value, list | tuple) else [value]
        return tuple(self.item.convert(v) for v in items)

    def convert(self, value: object) -> object:
        if isinstance(value, MultiValuedUpdate):
            return value
        if isinstance(value, Mapping):
            add: tuple[object, ...] = ()
            remove: tuple[object, ...] = ()
            for key, entry in value.items():
                action = to_string(key).casefold()
                if action == "add":
                    add = self._items(entry)
                elif action == "remove":
                    remove = self._items(entry)
                else:
                    raise ConversionError(
                        f'The hashtable key "{to_string(key)}" is not valid. Use Add or Remove, '
                        'such as @{Add="value1","value2"; Remove="value3"}.'
                    )
            return MultiValuedUpdate(None, add, remove)
        return MultiValuedUpdate(self._items(value))

    def accepts_exact(self, value: object) -> bool:
        return isinstance(value, MultiValuedUpdate)

    def completions(self) -> tuple[str, ...]:
        return self.item.completions()


class SizeType(ParamType):
    """A byte quantity: ``10MB``, ``"10 MB"``, a number of bytes."""

    type_name = "Microsoft.Exchange.Data.ByteQuantifiedSize"
    short_name = "ByteQuantifiedSize"

    def convert(self, value: object) -> object:
        value = self._scalar(value)
        if isinstance(value, ByteSize):
            return value
        if isinstance(value, bool):
            raise ConversionError("A size must be a number of bytes or text such as 10MB.")
        if isinstance(value, int | float):
            if value < 0:
                raise ConversionError("A size cannot be negative.")
            return ByteSize(int(value))
        if isinstance(value, str):
            return ByteSize.parse(value)
        raise ConversionError("A size must be a number of bytes or text such as 10MB.")

    def accepts_exact(self, value: object) -> bool:
        return isinstance(value, ByteSize)


class TimeSpanType(ParamType):
    """A time span: ``00:05:00``, ``1.00:00:00`` (days.hours:minutes:seconds)."""

    type_name = "System.TimeSpan"
    short_name = "TimeSpan"

    def convert(self, value: object) -> object:
        value = self._scalar(value)
        if isinstance(value, timedelta):
            return value
        if isinstance(value, str):
            return parse_timespan(value)
        raise ConversionError(
            "A time span is written [d.]hh:mm:ss, such as 00:05:00 or 1.00:00:00."
        )

    def accepts_exact(self, value: object) -> bool:
        return isinstance(value, timedelta)


class ScriptBlockType(ParamType):
    type_name = "System.Management.Automation.ScriptBlock"
    short_name = "ScriptBlock"

    def convert(self, value: object) -> object:
        value = self._scalar(value)
        if isinstance(value, ScriptBlockValue):
            return value
        raise ConversionError('A script block is expected, such as { $_.Status -eq "Retry" }.')

    def accepts_exact(self, value: object) -> bool:
        return isinstance(value, ScriptBlockValue)


class FilterType(ParamType):
    """An OPATH filter: ``{Status -eq "Retry"}`` or the same text in quotes."""

    type_name = "System.String"
    short_name = "String"

    def convert(self, value: object) -> object:
        from .parser import parse_filter  # late: the parser is only needed for filters

        value = self._scalar(value)
        if isinstance(value, RecordFilter):
            return value
        text = value.text if isinstance(value, ScriptBlockValue) else to_string(value)
        try:
            return RecordFilter(text, parse_filter(text))
        except ParseError as error:
            raise ConversionError(
                f"The filter {text!r} is not valid: {error.message} A filter reads like "
                "Status -eq 'Retry' or MessageCount -gt 10."
            ) from None

    def accepts_exact(self, value: object) -> bool:
        return isinstance(value, RecordFilter)


STRING = StringType()
INT = IntType()
BOOL = BoolType()
SWITCH = SwitchType()
SIZE = SizeType()
TIMESPAN = TimeSpanType()
OBJECT = ObjectType()
SCRIPTBLOCK = ScriptBlockType()
FILTER = FilterType()


@dataclass(frozen=True)
class Parameter:
    """One parameter of a cmdlet.

    ``position`` makes it positional (0 is the first unnamed argument);
    ``pipeline`` lets it take pipeline objects by value and/or by property
    name (a piped object's property of the same name or alias).
    """

    name: str
    type: ParamType = STRING
    position: int | None = None
    mandatory: bool = False
    pipeline: PipelineInput = PipelineInput.NONE
    aliases: tuple[str, ...] = ()
    help: str = ""
    remaining: bool = False  # takes every positional argument left over, as a list

    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


def property_for(parameter: Parameter, record: Record) -> str | None:
    """The record's property that feeds ``parameter`` by property name, if any."""
    for name in parameter.names():
        found = record.canonical_name(name)
        if found is not None:
            return found
    return None
