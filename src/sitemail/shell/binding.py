"""Parameter binding: named and positional arguments, then pipeline objects.

The order and the error messages are PowerShell's: named arguments first
(any unambiguous prefix of a name or alias, any case, any dash), then
positional ones by position, then, for each pipeline object, parameters that
take it by value or by property name, exact types before conversions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .cmdlet import CmdletInfo
from .errors import ArgumentRejected, BindingError, ConversionError
from .params import (
    BY_PROPERTY_NAME,
    BY_VALUE,
    SWITCH,
    EnumType,
    Parameter,
    PipelineInput,
    property_for,
)
from .records import Record
from .values import to_string

ACTION_PREFERENCE = EnumType(
    "System.Management.Automation.ActionPreference",
    ("SilentlyContinue", "Stop", "Continue", "Inquire", "Ignore"),
)
COMMON_PARAMETERS = (
    Parameter(
        "ErrorAction",
        ACTION_PREFERENCE,
        aliases=("EA",),
        help="What to do after a non-terminating error: Continue, SilentlyContinue, Stop.",
    ),
    Parameter(
        "WarningAction",
        ACTION_PREFERENCE,
        aliases=("WA",),
        help="What to do after a warning: Continue, SilentlyContinue, Stop.",
    ),
    Parameter("Verbose", SWITCH, aliases=("vb",), help="Show progress messages."),
    Parameter("Debug", SWITCH, aliases=("db",), help="Show debugging messages."),
)
SHOULD_PROCESS_PARAMETERS = (
    Parameter("WhatIf", SWITCH, aliases=("wi",), help="Say what would change; change nothing."),
    Parameter(
        "Confirm", SWITCH, aliases=("cf",), help="Ask before changing (accepted, not asked)."
    ),
)


@dataclass(frozen=True)
class NamedArgument:
    name: str
    value: object
    has_value: bool  # -Name:value (or a switch); otherwise the next positional may pair


@dataclass(frozen=True)
class PositionalArgument:
    value: object


Argument = NamedArgument | PositionalArgument


@dataclass
class StaticBinding:
    values: dict[str, object] = field(default_factory=dict)
    common: dict[str, object] = field(default_factory=dict)
    help_requested: bool = False


def all_parameters(info: CmdletInfo) -> tuple[Parameter, ...]:
    extra = SHOULD_PROCESS_PARAMETERS if info.supports_should_process else ()
    return (*info.parameters, *COMMON_PARAMETERS, *extra)


def resolve_parameter(info: CmdletInfo, name: str) -> Parameter:
    """The parameter that ``name`` (full, alias or unambiguous prefix) means."""
    key = name.casefold()
    parameters = all_parameters(info)
    for parameter in parameters:
        if any(alias.casefold() == key for alias in parameter.names()):
            return parameter
    matches = [p for p in parameters if any(a.casefold().startswith(key) for a in p.names())]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise BindingError(f"A parameter cannot be found that matches parameter name '{name}'.")
    shown = " ".join("-" + p.name for p in matches)
    raise BindingError(
        f"Parameter cannot be processed because the parameter name '{name}' is ambiguous. "
        f"Possible matches include: {shown}."
    )


def convert_argument(parameter: Parameter, value: object) -> object:
    if value is None and not parameter.type.is_switch:
        if parameter.mandatory:
            raise BindingError(
                f"Cannot bind argument to parameter '{parameter.name}' because it is null."
            )
        return None
    try:
        return parameter.type.convert(value)
    except ArgumentRejected as error:
        raise BindingError(error.message.replace("{parameter}", parameter.name)) from None
    except ConversionError as error:
        shown = (
            ",".join(to_string(v) for v in value)
            if isinstance(value, list | tuple)
            else to_string(value)
        )
        raise BindingError(
            f"Cannot bind parameter '{parameter.name}'. Cannot convert value \"{shown}\" to type "
            f'"{parameter.type.type_name}". Error: "{error.message}"'
        ) from None


def bind_arguments(info: CmdletInfo, arguments: Sequence[Argument]) -> StaticBinding:
    """Bind what was typed after the command name."""
    binding = StaticBinding()
    common_names = {p.name for p in (*COMMON_PARAMETERS, *SHOULD_PROCESS_PARAMETERS)}
    positional: list[object] = []
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        index += 1
        if isinstance(argument, PositionalArgument):
            positional.append(argument.value)
            continue
        if argument.name == "?":
            binding.help_requested = True
            continue
        parameter = resolve_parameter(info, argument.name)
        if argument.has_value:
            value = argument.value
        elif parameter.type.is_switch:
            value = True
        elif index < len(arguments) and isinstance(arguments[index], PositionalArgument):
            value = arguments[index].value
            index += 1
        else:
            raise BindingError(
                f"Missing an argument for parameter '{parameter.name}'. Specify a parameter of "
                f"type '{parameter.type.type_name}' and try again."
            )
        target = binding.common if parameter.name in common_names else binding.values
        if parameter.name in target:
            raise BindingError(
                f"Cannot bind parameter because parameter '{parameter.name}' is specified more "
                "than once. To provide multiple values to parameters that can accept multiple "
                'values, use the array syntax. For example, "-parameter value1,value2,value3".'
            )
        target[parameter.name] = convert_argument(parameter, value)
    slots = sorted(
        (p for p in info.parameters if p.position is not None and p.name not in binding.values),
        key=lambda p: p.position if p.position is not None else 0,
    )
    for offset, value in enumerate(positional):
        if not slots:
            raise BindingError(
                "A positional parameter cannot be found that accepts argument "
                f"'{to_string(value)}'."
            )
        parameter = slots.pop(0)
        if parameter.remaining:
            rest = positional[offset:]
            binding.values[parameter.name] = convert_argument(
                parameter, rest[0] if len(rest) == 1 else rest
            )
            break
        binding.values[parameter.name] = convert_argument(parameter, value)
    return binding


def missing_mandatory(info: CmdletInfo, bound: dict[str, object], *, pipeline: bool) -> list[str]:
    """Mandatory parameters still unbound (those a pipeline may still bind are left out
    while ``pipeline`` is true)."""
    return [
        p.name
        for p in info.parameters
        if p.mandatory
        and p.name not in bound
        and not (pipeline and p.pipeline != PipelineInput.NONE)
    ]


def missing_message(names: list[str]) -> str:
    return (
        "Cannot process command because of one or more missing mandatory parameters: "
        f"{' '.join(names)}."
    )


NOT_BINDABLE = (
    "The input object cannot be bound to any parameters for the command either because the "
    "command does not take pipeline input or the input and its properties do not match any of "
    "the parameters that take pipeline input."
)


def bind_pipeline_object(
    info: CmdletInfo, bound: dict[str, object], item: object
) -> dict[str, object]:
    """Parameters that ``item`` binds (by value, then by property name), or BindingError."""
    candidates = [
        p for p in info.parameters if p.pipeline != PipelineInput.NONE and p.name not in bound
    ]
    result: dict[str, object] = {}
    by_value_done = False
    failure: BindingError | None = None
    for convert in (False, True):
        for parameter in candidates:
            if parameter.name in result or by_value_done or not parameter.pipeline & BY_VALUE:
                continue
            if item is None:
                continue
            if not convert and not parameter.type.accepts_exact(item):
                continue
            try:
                result[parameter.name] = convert_argument(parameter, item)
                by_value_done = True
            except BindingError as error:
                failure = error
        if isinstance(item, Record):
            for parameter in candidates:
                if parameter.name in result or not parameter.pipeline & BY_PROPERTY_NAME:
                    continue
                found = property_for(parameter, item)
                # A piped object's empty properties are not bound: piping an object into
                # its Set- cmdlet must not clear settings it was not asked to change.
                value = None if found is None else item.get(found)
                if value is None:
                    continue
                if not convert and not parameter.type.accepts_exact(value):
                    continue
                try:
                    result[parameter.name] = convert_argument(parameter, value)
                except BindingError as error:
                    failure = error
    if not result:
        raise failure or BindingError(NOT_BINDABLE)
    return result
