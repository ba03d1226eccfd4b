"""Discovery cmdlets: Get-Help, Get-Command, Get-Member."""

from __future__ import annotations

from ..cmdlet import BoundParameters, Invocation, ProcessResult, cmdlet
from ..errors import CmdletError, CommandNotFoundError
from ..formatting import FormattedText
from ..help_text import help_lines, syntax_line
from ..operators import has_wildcard, wildcard_match
from ..params import STRING, SWITCH, ListType, Parameter
from ..records import Record
from ..values import to_display, type_name
from ..views import Column, TableView
from .objects import INPUT_OBJECT

Inv = Invocation[object]

COMMAND_TYPE = "System.Management.Automation.CmdletInfo"
HELP_TYPE = "HelpInfoShort"
MEMBER_TYPE = "Microsoft.PowerShell.Commands.MemberDefinition"


@cmdlet(
    "Get-Help",
    Parameter("Name", STRING, position=0, help="The cmdlet (or a wildcard pattern)."),
    Parameter("Detailed", SWITCH, help="Also describe each parameter and show the examples."),
    Parameter("Full", SWITCH, help="Everything (same as -Detailed here)."),
    Parameter("Examples", SWITCH, help="Only the examples."),
    Parameter("Parameter", STRING, help="Only this parameter's description."),
    aliases=("help", "man"),
    synopsis="Displays information about cmdlets.",
    examples=("Get-Help Set-TransportServer -Detailed", "Get-Help *Queue*"),
    views=(TableView.of(HELP_TYPE, "Name", "Category", "Synopsis"),),
)
def get_help(item: object | None, params: BoundParameters, invocation: Inv) -> ProcessResult:
    shell = invocation.shell
    name = params.typed("Name", str)
    if name is None or has_wildcard(name):
        pattern = name or "*"
        return [
            Record(
                HELP_TYPE,
                [("Name", info.name), ("Category", "Cmdlet"), ("Synopsis", info.synopsis)],
            )
            for info in shell.command_infos()
            if wildcard_match(pattern, info.name)
        ]
    info = shell.find_command(name)
    if info is None:
        raise CmdletError(
            f"Get-Help could not find {name} in a help file in this session. "
            "Type Get-Command to list the cmdlets."
        )
    lines = help_lines(
        info,
        detailed=params.switch("Detailed") or params.switch("Full"),
        examples_only=params.switch("Examples"),
        parameter=params.typed("Parameter", str),
    )
    return [FormattedText(tuple(lines))]


@cmdlet(
    "Get-Command",
    Parameter("Name", ListType(STRING), position=0, help="Names or wildcard patterns."),
    Parameter("Verb", STRING, help="Only cmdlets with this verb (wildcards allowed)."),
    Parameter("Noun", STRING, help="Only cmdlets with this noun (wildcards allowed)."),
    aliases=("gcm",),
    synopsis="Gets the cmdlets this shell knows.",
    examples=("Get-Command -Noun Queue", "Get-Command Set-*", "Get-Command -Verb Get"),
    views=(
        TableView.of(
            COMMAND_TYPE, Column("CommandType", width=11), Column("Name", width=28), "Definition"
        ),
    ),
)
def get_command(item: object | None, params: BoundParameters, invocation: Inv) -> ProcessResult:
    shell = invocation.shell
    names = params.get("Name")
    patterns = [str(n) for n in names] if isinstance(names, tuple) and names else ["*"]
    verb = params.typed("Verb", str, "*")
    noun = params.typed("Noun", str, "*")
    found: list[Record] = []
    for pattern in patterns:
        matched = False
        for info in shell.command_infos():
            if not (wildcard_match(verb, info.verb) and wildcard_match(noun, info.noun)):
                continue
            if wildcard_match(pattern, info.name):
                matched = True
                found.append(
                    Record(
                        COMMAND_TYPE,
                        [
                            ("CommandType", "Cmdlet"),
                            ("Name", info.name),
                            ("Definition", syntax_line(info)),
                        ],
                    )
                )
            elif pattern != "*":
                for alias in info.aliases:
                    if wildcard_match(pattern, alias):
                        matched = True
                        found.append(
                            Record(
                                COMMAND_TYPE,
                                [
                                    ("CommandType", "Alias"),
                                    ("Name", alias),
                                    ("Definition", info.name),
                                ],
                            )
                        )
        if not matched and not has_wildcard(pattern):
            invocation.write_error(str(CommandNotFoundError(pattern)))
    return found


@cmdlet(
    "Get-Member",
    INPUT_OBJECT,
    aliases=("gm",),
    synopsis="Lists the properties of the objects it receives.",
    examples=("Get-Queue | Get-Member",),
    views=(TableView.of(MEMBER_TYPE, "Name", "MemberType", "Definition"),),
)
def get_member_cmdlet(
    item: object | None, params: BoundParameters, invocation: Inv
) -> ProcessResult:
    if not isinstance(item, Record):
        return None
    out: list[object] = [FormattedText(("", f"   TypeName: {item.type_name}"))]
    for name, value in item.items():
        out.append(
            Record(
                MEMBER_TYPE,
                [
                    ("Name", name),
                    ("MemberType", "Property"),
                    ("Definition", f"{type_name(value)} {name}={to_display(value)}"),
                ],
            )
        )
    return out


DEFINITIONS = (get_help, get_command, get_member_cmdlet)
