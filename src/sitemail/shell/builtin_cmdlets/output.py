"""Output cmdlets: Format-Table, Format-List, ConvertTo-Json, Out-*, Write-*."""

from __future__ import annotations

from collections.abc import Mapping

from ..cmdlet import BoundParameters, Cmdlet, Invocation, ProcessResult, cmdlet, stateful_cmdlet
from ..formatting import (
    FormattedText,
    format_default,
    list_specs,
    render_list,
    render_table,
    table_specs,
)
from ..json_text import to_json
from ..params import BY_VALUE, INT, OBJECT, SWITCH, ListType, Parameter
from ..properties import PropertySpec, resolve
from ..records import Record
from ..values import to_string
from .objects import INPUT_OBJECT

Inv = Invocation[object]

PROPERTY_LIST = Parameter(
    "Property",
    ListType(OBJECT),
    position=0,
    help="Properties to show: names (wildcards allowed, * for all), script blocks, or "
    '@{Name="..."; Expression={...}}.',
)


class _Collector(Cmdlet[object]):
    def __init__(self) -> None:
        self.items: list[object] = []

    def process(
        self, item: object | None, params: BoundParameters, invocation: Inv
    ) -> ProcessResult:
        if item is not None:
            self.items.append(item)
        return None


class FormatTable(_Collector):
    def end(self, params: BoundParameters, invocation: Inv) -> ProcessResult:
        if not self.items:
            return None
        properties = params.get("Property")
        specs: list[PropertySpec]
        if isinstance(properties, tuple):
            specs = resolve(properties, self.items)
        else:
            specs = table_specs(self.items[0], invocation.shell.views)
        lines = render_table(
            self.items,
            specs,
            invocation.shell.width,
            autosize=params.switch("AutoSize") or isinstance(properties, tuple),
            hide_headers=params.switch("HideTableHeaders"),
        )
        return [FormattedText(("", *lines, ""))]


FORMAT_TABLE = stateful_cmdlet(
    FormatTable,
    "Format-Table",
    PROPERTY_LIST,
    Parameter("AutoSize", SWITCH, help="Size each column to its content."),
    Parameter("HideTableHeaders", SWITCH, help="Leave out the header lines."),
    Parameter("Wrap", SWITCH, help="Accepted for compatibility; long values are cut with ..."),
    INPUT_OBJECT,
    aliases=("ft",),
    synopsis="Formats the output as a table.",
    examples=("Get-Queue | Format-Table Identity,Status,MessageCount -AutoSize",),
)


class FormatList(_Collector):
    def end(self, params: BoundParameters, invocation: Inv) -> ProcessResult:
        if not self.items:
            return None
        properties = params.get("Property")
        views = invocation.shell.views
        records = [i for i in self.items if isinstance(i, Record | Mapping)]
        if len(records) != len(self.items):
            lines = [to_string(i) for i in self.items]
            return [FormattedText(("", *lines, ""))]
        specs = [
            resolve(properties, [item])
            if isinstance(properties, tuple)
            else list_specs(item, views)
            for item in self.items
        ]
        lines = render_list(self.items, specs, invocation.shell.width)
        return [FormattedText(("", *lines, ""))]


FORMAT_LIST = stateful_cmdlet(
    FormatList,
    "Format-List",
    PROPERTY_LIST,
    INPUT_OBJECT,
    aliases=("fl",),
    synopsis="Formats the output as a list of properties, each on its own line.",
    examples=(
        "Get-ReceiveConnector | Format-List",
        "Get-Queue | fl Identity,LastError",
        "Get-TransportServer | fl *",
    ),
)


class ConvertToJson(_Collector):
    def process(
        self, item: object | None, params: BoundParameters, invocation: Inv
    ) -> ProcessResult:
        if item is None and "InputObject" in params:
            item = params.get("InputObject")
        if item is not None:
            self.items.append(item)
        return None

    def end(self, params: BoundParameters, invocation: Inv) -> ProcessResult:
        if not self.items:
            return None
        depth = params.typed("Depth", int, 2)
        return [to_json(self.items, depth=depth, compress=params.switch("Compress"))]


CONVERT_TO_JSON = stateful_cmdlet(
    ConvertToJson,
    "ConvertTo-Json",
    Parameter("InputObject", OBJECT, position=0, pipeline=BY_VALUE, help="The objects to convert."),
    Parameter("Depth", INT, help="How many levels of nested objects to include (default 2)."),
    Parameter("Compress", SWITCH, help="Write the JSON on one line."),
    synopsis="Converts objects to JSON text (sizes, time spans and flags as their text).",
    examples=("Get-Queue | ConvertTo-Json",),
)


class OutString(_Collector):
    def end(self, params: BoundParameters, invocation: Inv) -> ProcessResult:
        width = params.typed("Width", int, invocation.shell.width)
        lines = format_default(self.items, invocation.shell.views, width)
        return ["\n".join(lines) + "\n"] if lines else None


OUT_STRING = stateful_cmdlet(
    OutString,
    "Out-String",
    INPUT_OBJECT,
    Parameter("Width", INT, help="The line width (default: the console's)."),
    synopsis="Converts objects to the text the console would show.",
)


@cmdlet("Out-Null", INPUT_OBJECT, synopsis="Discards its input.")
def out_null(item: object | None, params: BoundParameters, invocation: Inv) -> ProcessResult:
    return None


@cmdlet(
    "Write-Output",
    Parameter(
        "InputObject",
        OBJECT,
        position=0,
        pipeline=BY_VALUE,
        remaining=True,
        help="The objects to write to the pipeline.",
    ),
    aliases=("echo", "write"),
    synopsis="Writes objects to the pipeline.",
)
def write_output(item: object | None, params: BoundParameters, invocation: Inv) -> ProcessResult:
    value = params.get("InputObject")
    if isinstance(value, list | tuple):
        return list(value)
    return [] if value is None else [value]


@cmdlet(
    "Write-Host",
    Parameter("Object", OBJECT, position=0, remaining=True, help="What to show."),
    Parameter("NoNewline", SWITCH, help="Accepted for compatibility."),
    Parameter("ForegroundColor", OBJECT, help="Accepted for compatibility; text is not colored."),
    Parameter("BackgroundColor", OBJECT, help="Accepted for compatibility."),
    Parameter("Separator", OBJECT, help="Text between the objects (default a space)."),
    INPUT_OBJECT,
    synopsis="Writes text to the console, not to the pipeline.",
)
def write_host(item: object | None, params: BoundParameters, invocation: Inv) -> ProcessResult:
    value = params.get("Object", item)
    separator = to_string(params.get("Separator", " "))
    if isinstance(value, list | tuple):
        invocation.write_host(separator.join(to_string(v) for v in value))
    else:
        invocation.write_host(to_string(value))
    return None


@cmdlet(
    "Write-Warning",
    Parameter("Message", OBJECT, position=0, mandatory=True, pipeline=BY_VALUE),
    synopsis="Writes a warning message.",
)
def write_warning(item: object | None, params: BoundParameters, invocation: Inv) -> ProcessResult:
    invocation.write_warning(to_string(params.get("Message")))
    return None


@cmdlet(
    "Write-Error",
    Parameter("Message", OBJECT, position=0, mandatory=True, pipeline=BY_VALUE),
    synopsis="Writes an error (the pipeline goes on).",
)
def write_error(item: object | None, params: BoundParameters, invocation: Inv) -> ProcessResult:
    invocation.write_error(to_string(params.get("Message")))
    return None


DEFINITIONS = (
    FORMAT_TABLE,
    FORMAT_LIST,
    CONVERT_TO_JSON,
    OUT_STRING,
    out_null,
    write_output,
    write_host,
    write_warning,
    write_error,
)
