"""Get-Help's text for a cmdlet, built from its declaration."""

from __future__ import annotations

from .binding import COMMON_PARAMETERS, SHOULD_PROCESS_PARAMETERS
from .cmdlet import CmdletInfo
from .params import Parameter


def syntax_line(info: CmdletInfo) -> str:
    """``Get-Thing [[-Identity] <String>] [-Force] [<CommonParameters>]``."""
    parts = [info.name]
    ordered = sorted(
        info.parameters,
        key=lambda p: (p.position is None, p.position if p.position is not None else 0),
    )
    for parameter in ordered:
        parts.append(_syntax_part(parameter))
    if info.supports_should_process:
        parts += ["[-WhatIf]", "[-Confirm]"]
    parts.append("[<CommonParameters>]")
    return " ".join(parts)


def _syntax_part(parameter: Parameter) -> str:
    type_text = parameter.type.syntax()
    name = f"-{parameter.name}"
    if parameter.position is not None:
        name = f"[{name}]"
    text = f"{name} {type_text}".rstrip()
    return text if parameter.mandatory else f"[{text}]"


def _indent(text: str, spaces: int = 4) -> list[str]:
    return [(" " * spaces + line).rstrip() for line in text.splitlines()] or [""]


def parameter_lines(parameter: Parameter) -> list[str]:
    type_text = parameter.type.syntax()
    lines = [f"    -{parameter.name} {type_text}".rstrip()]
    if parameter.help:
        lines += _indent(parameter.help, 8)
    lines.append("")
    pipeline = []
    if parameter.pipeline.value:
        from .params import BY_PROPERTY_NAME, BY_VALUE

        if parameter.pipeline & BY_VALUE:
            pipeline.append("ByValue")
        if parameter.pipeline & BY_PROPERTY_NAME:
            pipeline.append("ByPropertyName")
    rows = [
        ("Required?", "true" if parameter.mandatory else "false"),
        ("Position?", str(parameter.position + 1) if parameter.position is not None else "named"),
        ("Accept pipeline input?", f"true ({', '.join(pipeline)})" if pipeline else "false"),
    ]
    if parameter.aliases:
        rows.append(("Aliases", ", ".join(parameter.aliases)))
    values = parameter.type.completions()
    if values and not parameter.type.is_switch:
        rows.append(("Accepted values", ", ".join(values)))
    lines += [f"        {label:<28}{value}" for label, value in rows]
    lines.append("")
    return lines


def help_lines(
    info: CmdletInfo,
    *,
    detailed: bool = False,
    examples_only: bool = False,
    parameter: str | None = None,
) -> list[str]:
    if parameter is not None:
        from .binding import resolve_parameter

        return parameter_lines(resolve_parameter(info, parameter))
    lines = ["", "NAME", f"    {info.name}", ""]
    if examples_only:
        lines += ["SYNOPSIS", *_indent(info.synopsis or info.name), ""]
        lines += _examples(info)
        return lines
    lines += ["SYNOPSIS", *_indent(info.synopsis or f"{info.verb} {info.noun}."), "", ""]
    lines += ["SYNTAX", f"    {syntax_line(info)}", "", ""]
    if info.description or info.synopsis:
        lines += ["DESCRIPTION", *_indent(info.description or info.synopsis), "", ""]
    if detailed:
        lines.append("PARAMETERS")
        for p in info.parameters:
            lines += parameter_lines(p)
        if info.supports_should_process:
            for p in SHOULD_PROCESS_PARAMETERS:
                lines += parameter_lines(p)
        lines += [
            "    <CommonParameters>",
            "        This cmdlet supports the common parameters: "
            + ", ".join(p.name for p in COMMON_PARAMETERS)
            + ".",
            "",
        ]
        lines += _examples(info)
    if info.aliases:
        lines += ["ALIASES", f"    {', '.join(info.aliases)}", ""]
    lines += [
        "REMARKS",
        f'    To see the examples, type: "get-help {info.name} -examples".',
        f'    For more information, type: "get-help {info.name} -detailed".',
        "",
    ]
    return lines


def _examples(info: CmdletInfo) -> list[str]:
    if not info.examples:
        return ["    (no examples)", ""]
    lines: list[str] = []
    for number, example in enumerate(info.examples, 1):
        lines += [f"    -------------------------- EXAMPLE {number} --------------------------", ""]
        lines += [f"    {example.code}", ""]
        if example.remarks:
            lines += [*_indent(example.remarks), ""]
    return lines
