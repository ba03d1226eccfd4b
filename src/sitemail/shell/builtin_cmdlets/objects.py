"""Object cmdlets: Where-Object, ForEach-Object, Select-Object, Sort-Object, Measure-Object."""

from __future__ import annotations

import functools
from collections.abc import Iterator

from ..cmdlet import BoundParameters, Cmdlet, Invocation, ProcessResult, cmdlet, stateful_cmdlet
from ..errors import ConversionError, RuntimeShellError
from ..operators import compare, convert_like, get_member
from ..params import BY_VALUE, INT, OBJECT, STRING, SWITCH, ListType, Parameter
from ..properties import resolve
from ..records import Record
from ..scriptblock import ScriptBlockValue
from ..values import ByteSize, to_bool, to_string, type_name

Inv = Invocation[object]

INPUT_OBJECT = Parameter(
    "InputObject",
    OBJECT,
    pipeline=BY_VALUE,
    help="The object to work on (usually from the pipeline).",
)
_WHERE_OPERATORS = (
    "EQ",
    "NE",
    "GT",
    "GE",
    "LT",
    "LE",
    "Like",
    "NotLike",
    "Match",
    "NotMatch",
    "Contains",
    "NotContains",
    "In",
    "NotIn",
)


@cmdlet(
    "Where-Object",
    Parameter(
        "FilterScript",
        OBJECT,
        position=0,
        aliases=("Property",),
        help="A script block that returns true for the objects to keep "
        '({$_.Status -eq "Retry"}), or a property name followed by an operator.',
    ),
    Parameter("Value", OBJECT, position=1, help="The value to compare the property with."),
    *(Parameter(op, SWITCH, help=f"Compare with -{op.lower()}.") for op in _WHERE_OPERATORS),
    INPUT_OBJECT,
    aliases=("where", "?"),
    synopsis="Selects objects from a collection based on their property values.",
    examples=(
        'Get-Queue | Where-Object {$_.Status -eq "Retry"} | Retry-Queue',
        "Get-Queue | where MessageCount -gt 0",
    ),
)
def where_object(item: object | None, params: BoundParameters, invocation: Inv) -> ProcessResult:
    if item is None:
        return None
    condition = params.get("FilterScript")
    if isinstance(condition, ScriptBlockValue):
        keep = to_bool(_unwrap(condition.invoke(item)))
    elif condition is None:
        raise RuntimeShellError(
            'Where-Object needs a condition, such as {$_.Status -eq "Retry"} or Status -eq Retry.'
        )
    else:
        value = get_member(item, to_string(condition))
        chosen = [op for op in _WHERE_OPERATORS if params.switch(op)]
        if not chosen:
            keep = to_bool(value)
        else:
            keep = to_bool(compare(chosen[0].lower(), value, params.get("Value")))
    return [item] if keep else None


def _unwrap(objects: list[object]) -> object:
    if not objects:
        return None
    return objects[0] if len(objects) == 1 else objects


class ForEachObject(Cmdlet[object]):
    def begin(self, params: BoundParameters, invocation: Inv) -> ProcessResult:
        return _run_block(params.get("Begin"), None)

    def process(
        self, item: object | None, params: BoundParameters, invocation: Inv
    ) -> ProcessResult:
        action = params.get("Process")
        if isinstance(action, ScriptBlockValue):
            return _flatten(action.invoke(item))
        if action is None:
            return None
        value = get_member(item, to_string(action))
        return _flatten([value])

    def end(self, params: BoundParameters, invocation: Inv) -> ProcessResult:
        return _run_block(params.get("End"), None)


FOR_EACH_OBJECT = stateful_cmdlet(
    ForEachObject,
    "ForEach-Object",
    Parameter(
        "Process",
        OBJECT,
        position=0,
        aliases=("MemberName",),
        help="A script block run for each object ({$_.Identity}), or a property name.",
    ),
    Parameter("Begin", OBJECT, help="A script block run before the first object."),
    Parameter("End", OBJECT, help="A script block run after the last object."),
    INPUT_OBJECT,
    aliases=("foreach", "%"),
    synopsis="Performs an operation against each item in a collection of input objects.",
    examples=("Get-Queue | ForEach-Object {$_.Identity}", "Get-Queue | % NextHopDomain"),
)


def _run_block(block: object, dollar_under: object) -> list[object]:
    if isinstance(block, ScriptBlockValue):
        return _flatten(block.invoke(dollar_under))
    return []


def _flatten(values: list[object]) -> list[object]:
    out: list[object] = []
    for value in values:
        if isinstance(value, list | tuple):
            out.extend(value)
        elif value is not None:
            out.append(value)
    return out


class SelectObject(Cmdlet[object]):
    def __init__(self) -> None:
        self.seen = 0
        self.kept: list[object] = []
        self.unique_keys: list[str] = []

    def process(
        self, item: object | None, params: BoundParameters, invocation: Inv
    ) -> ProcessResult:
        if item is None:
            return None
        self.seen += 1
        skip = params.typed("Skip", int, 0)
        if self.seen <= skip:
            return None
        first = params.typed("First", int)
        if first is not None and self.seen - skip > first:
            return None
        selected = list(self._select(item, params))
        if params.switch("Unique") or params.get("Last") is not None:
            self.kept.extend(selected)
            return None
        return selected

    def _select(self, item: object, params: BoundParameters) -> Iterator[object]:
        expand = params.typed("ExpandProperty", str)
        if expand is not None:
            if isinstance(item, Record) and not item.has(expand):
                raise RuntimeShellError(
                    f'Property "{expand}" cannot be found. The object has: '
                    f"{', '.join(item.names())}."
                )
            value = get_member(item, expand)
            if isinstance(value, list | tuple):
                yield from value
            elif value is not None:
                yield value
            return
        properties = params.get("Property")
        if not isinstance(properties, tuple):
            yield item
            return
        specs = resolve(properties, [item])
        yield Record(
            "Selected." + type_name(item), [(spec.label, spec.get(item)) for spec in specs]
        )

    def end(self, params: BoundParameters, invocation: Inv) -> ProcessResult:
        kept = self.kept
        if params.switch("Unique"):
            unique: list[object] = []
            keys: set[str] = set()
            for obj in kept:
                key = repr(obj) if isinstance(obj, Record) else to_string(obj).casefold()
                if key not in keys:
                    keys.add(key)
                    unique.append(obj)
            kept = unique
        last = params.typed("Last", int)
        if last is not None:
            kept = kept[-last:] if last > 0 else []
        return kept


SELECT_OBJECT = stateful_cmdlet(
    SelectObject,
    "Select-Object",
    Parameter(
        "Property",
        ListType(OBJECT),
        position=0,
        help="Properties to keep: names (wildcards allowed), script blocks, or "
        '@{Name="..."; Expression={...}}.',
    ),
    Parameter("ExpandProperty", STRING, help="Output this property's value instead of the object."),
    Parameter("First", INT, help="Keep only this many objects from the start."),
    Parameter("Last", INT, help="Keep only this many objects from the end."),
    Parameter("Skip", INT, help="Leave out this many objects from the start."),
    Parameter("Unique", SWITCH, help="Leave out repeated objects."),
    INPUT_OBJECT,
    aliases=("select",),
    synopsis="Selects objects or object properties.",
    examples=(
        "Get-Queue | Select-Object Identity,Status -First 2",
        "Get-TransportServer | Select-Object -ExpandProperty Name",
    ),
)


def _order(a: object, b: object) -> int:
    """Sort-Object's comparison: $null first, like types by value, otherwise as text."""
    if a is None or b is None:
        return (a is not None) - (b is not None)
    try:
        converted = convert_like(a, b)
        left: object = a
        if isinstance(left, str) and isinstance(converted, str):
            left, converted = left.casefold(), converted.casefold()
        if isinstance(left, ByteSize) and isinstance(converted, ByteSize):
            left, converted = left.bytes, converted.bytes
        return int((left > converted) - (left < converted))  # type: ignore[operator]
    except (ConversionError, TypeError):
        x, y = to_string(a).casefold(), to_string(b).casefold()
        return (x > y) - (x < y)


class SortObject(Cmdlet[object]):
    def __init__(self) -> None:
        self.items: list[object] = []

    def process(
        self, item: object | None, params: BoundParameters, invocation: Inv
    ) -> ProcessResult:
        if item is not None:
            self.items.append(item)
        return None

    def end(self, params: BoundParameters, invocation: Inv) -> ProcessResult:
        properties = params.get("Property")
        specs = resolve(properties, self.items[:1]) if isinstance(properties, tuple) else []
        keys = {
            id(obj): [spec.get(obj) for spec in specs] if specs else [obj] for obj in self.items
        }

        def order(a: object, b: object) -> int:
            for x, y in zip(keys[id(a)], keys[id(b)], strict=True):
                result = _order(x, y)
                if result:
                    return result
            return 0

        ordered = sorted(
            self.items, key=functools.cmp_to_key(order), reverse=params.switch("Descending")
        )
        if params.switch("Unique"):
            unique: list[object] = []
            for obj in ordered:
                if not unique or order(unique[-1], obj) != 0:
                    unique.append(obj)
            ordered = unique
        return ordered


SORT_OBJECT = stateful_cmdlet(
    SortObject,
    "Sort-Object",
    Parameter(
        "Property",
        ListType(OBJECT),
        position=0,
        help="Properties to sort by (names or script blocks), in order of importance.",
    ),
    Parameter("Descending", SWITCH, help="Sort from largest to smallest."),
    Parameter("Unique", SWITCH, help="Leave out repeated values."),
    INPUT_OBJECT,
    aliases=("sort",),
    synopsis="Sorts objects by property values.",
    examples=("Get-Queue | Sort-Object MessageCount -Descending",),
)


class MeasureObject(Cmdlet[object]):
    def __init__(self) -> None:
        self.count = 0
        self.values: list[float] = []

    def process(
        self, item: object | None, params: BoundParameters, invocation: Inv
    ) -> ProcessResult:
        if item is None:
            return None
        self.count += 1
        name = params.typed("Property", str)
        if name is not None:
            value = get_member(item, name)
            if isinstance(value, ByteSize):
                value = value.bytes
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.values.append(value)
            elif value is not None:
                try:
                    number = convert_like(0, value)
                except ConversionError:
                    raise RuntimeShellError(
                        f'Input object "{to_string(value)}" is not numeric.'
                    ) from None
                if isinstance(number, int | float):
                    self.values.append(number)
        return None

    def end(self, params: BoundParameters, invocation: Inv) -> ProcessResult:
        values = self.values

        def tidy(value: float) -> object:
            return int(value) if float(value).is_integer() else value

        return [
            Record(
                "Microsoft.PowerShell.Commands.GenericMeasureInfo",
                [
                    ("Count", self.count),
                    (
                        "Average",
                        tidy(sum(values) / len(values))
                        if params.switch("Average") and values
                        else None,
                    ),
                    ("Sum", tidy(sum(values)) if params.switch("Sum") else None),
                    ("Maximum", tidy(max(values)) if params.switch("Maximum") and values else None),
                    ("Minimum", tidy(min(values)) if params.switch("Minimum") and values else None),
                    ("Property", params.get("Property")),
                ],
            )
        ]


MEASURE_OBJECT = stateful_cmdlet(
    MeasureObject,
    "Measure-Object",
    Parameter("Property", STRING, position=0, help="The numeric property to measure."),
    Parameter("Sum", SWITCH, help="Add up the values."),
    Parameter("Average", SWITCH, help="Average the values."),
    Parameter("Maximum", SWITCH, help="Find the largest value."),
    Parameter("Minimum", SWITCH, help="Find the smallest value."),
    INPUT_OBJECT,
    aliases=("measure",),
    synopsis="Counts objects, and sums, averages or finds the extremes of a numeric property.",
    examples=("(Get-Queue | Measure-Object).Count", "Get-Queue | Measure-Object MessageCount -Sum"),
)


DEFINITIONS = (where_object, FOR_EACH_OBJECT, SELECT_OBJECT, SORT_OBJECT, MEASURE_OBJECT)
