"""The Exchange Management Shell subset: language, runtime, built-ins, front ends.

Cmdlets are declared with :func:`cmdlet` (or :func:`stateful_cmdlet`) and
registered in a :class:`Registry`; :func:`main` is what ``sitemail shell``
calls, :func:`run_script` runs a script's text and returns what it printed.
"""

from .cmdlet import (
    BoundParameters,
    Cmdlet,
    CmdletDefinition,
    CmdletInfo,
    Example,
    Invocation,
    cmdlet,
    stateful_cmdlet,
)
from .errors import CmdletError, ParseError, ShellError
from .main import ShellOptions, main
from .params import (
    BOOL,
    BY_PROPERTY_NAME,
    BY_VALUE,
    FILTER,
    INT,
    OBJECT,
    SCRIPTBLOCK,
    SIZE,
    STRING,
    SWITCH,
    TIMESPAN,
    EnumType,
    FlagsType,
    IntType,
    ListType,
    MultiValuedType,
    MultiValuedUpdate,
    Parameter,
    ParamType,
    PipelineInput,
)
from .records import Record
from .registry import Registry
from .runtime import Runtime
from .script import ScriptResult, run_script
from .scriptblock import RecordFilter, ScriptBlockValue
from .values import ByteSize, FlagsValue
from .views import Column, ListView, TableView

__all__ = [
    "BOOL",
    "BY_PROPERTY_NAME",
    "BY_VALUE",
    "FILTER",
    "INT",
    "OBJECT",
    "SCRIPTBLOCK",
    "SIZE",
    "STRING",
    "SWITCH",
    "TIMESPAN",
    "BoundParameters",
    "ByteSize",
    "Cmdlet",
    "CmdletDefinition",
    "CmdletError",
    "CmdletInfo",
    "Column",
    "EnumType",
    "Example",
    "FlagsType",
    "FlagsValue",
    "IntType",
    "Invocation",
    "ListType",
    "ListView",
    "MultiValuedType",
    "MultiValuedUpdate",
    "ParamType",
    "Parameter",
    "ParseError",
    "PipelineInput",
    "Record",
    "RecordFilter",
    "Registry",
    "Runtime",
    "ScriptBlockValue",
    "ScriptResult",
    "ShellError",
    "ShellOptions",
    "TableView",
    "cmdlet",
    "main",
    "run_script",
    "stateful_cmdlet",
]
