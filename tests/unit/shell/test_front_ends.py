"""The front ends: tab completion, ``main`` for ``sitemail shell -c``, scripts from files."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path

import pytest

from sitemail.shell import (
    BY_PROPERTY_NAME,
    BoundParameters,
    EnumType,
    FlagsType,
    Invocation,
    Parameter,
    Record,
    Registry,
    ShellOptions,
    cmdlet,
    main,
)
from sitemail.shell.completion import complete

LEVEL = EnumType("Microsoft.Exchange.Data.ProtocolLoggingLevel", ["None", "Verbose"])
AUTH = FlagsType("Microsoft.Exchange.Data.AuthMechanisms", ["None", "Tls", "Integrated"])


@cmdlet("Get-TransportServer")
def get_transport_server(
    item: object | None, params: BoundParameters, inv: Invocation[list[str]]
) -> Iterable[object]:
    return [Record("TransportServer", [("Identity", name)]) for name in inv.services]


@cmdlet(
    "Set-TransportServer",
    Parameter("Identity", position=0, mandatory=True, pipeline=BY_PROPERTY_NAME),
    Parameter("IntraOrgConnectorProtocolLoggingLevel", LEVEL),
    Parameter("IntraOrgProtocolLoggingLevel", LEVEL),
    Parameter("AuthMechanism", AUTH),
)
def set_transport_server(
    item: object | None, params: BoundParameters, inv: Invocation[list[str]]
) -> None:
    inv.write_host(f"{params['Identity']}: {params.get('IntraOrgProtocolLoggingLevel')}")


def registry() -> Registry[list[str]]:
    reg: Registry[list[str]] = Registry()
    reg.extend([get_transport_server, set_transport_server])
    return reg


def texts(line: str) -> list[str]:
    return [c.text for c in complete(line, registry(), ["remotesite"])]


def test_completes_cmdlet_names_and_aliases_case_insensitively() -> None:
    assert texts("get-tr") == ["Get-TransportServer"]
    assert texts("Get-TransportServer | set-t") == ["Set-TransportServer"]
    assert "Format-Table" in texts("Get-TransportServer | Format-")
    assert texts("$x = (fo") == ["foreach", "ForEach-Object", "Format-List", "Format-Table"]


@pytest.mark.parametrize("dash", ["-", "–", "—"])
def test_completes_parameters_after_every_dash_kind(dash: str) -> None:
    found = complete(f"Set-TransportServer {dash}IntraOrgP", registry())
    assert [c.text for c in found] == [f"{dash}IntraOrgProtocolLoggingLevel"]
    assert found[0].replace == len(f"{dash}IntraOrgP")
    assert f"{dash}ErrorAction" in texts(f"Set-TransportServer {dash}e")


def test_completes_enum_values_after_a_parameter() -> None:
    assert texts("Set-TransportServer –IntraOrgProtocolLoggingLevel ") == ["None", "Verbose"]
    assert texts("Set-TransportServer -IntraOrgProtocolLoggingLevel v") == ["Verbose"]
    assert texts("Set-TransportServer -IntraOrgProtocolLoggingLevel:n") == ["None"]
    assert texts("Set-TransportServer -AuthMechanism Tls,I") == ["Integrated"]
    assert texts("Set-TransportServer -Identity ") == []


def test_completes_variables_and_nothing_inside_quotes() -> None:
    assert texts("Set-TransportServer $rem") == ["$remotesite"]
    assert texts("Set-TransportServer $t") == ["$true"]
    assert texts("Set-TransportServer 'Get-") == []


def test_main_runs_a_command_and_exits_zero() -> None:
    out, err = io.StringIO(), io.StringIO()
    status = main(
        ["-c", "Get-TransportServer | Set-TransportServer –IntraOrgProtocolLoggingLevel Verbose"],
        ["EX-NY1", "EX-FL1"],
        registry(),
        stdout=out,
        stderr=err,
    )
    assert status == 0
    assert out.getvalue() == "EX-NY1: Verbose\nEX-FL1: Verbose\n"
    assert err.getvalue() == ""


def test_main_reports_errors_on_stderr_and_exits_one() -> None:
    out, err = io.StringIO(), io.StringIO()
    status = main(
        ShellOptions(command="Set-TransportServer EX-NY1 -IntraOrgProtocolLoggingLevel Loud"),
        ["EX-NY1"],
        registry(),
        stdout=out,
        stderr=err,
    )
    assert status == 1
    assert out.getvalue() == ""
    assert err.getvalue().startswith(
        "Set-TransportServer : Cannot bind parameter 'IntraOrgProtocolLoggingLevel'."
    )
    assert err.getvalue().count("\n") == 1


def test_main_runs_a_script_file_and_piped_stdin(tmp_path: Path) -> None:
    script = tmp_path / "logging.ps1"
    script.write_text(
        "# turn logging on\nGet-TransportServer |\n  Set-TransportServer "
        "-IntraOrgProtocolLoggingLevel Verbose\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    assert main(["-f", str(script)], ["EX-NY1"], registry(), stdout=out) == 0
    assert out.getvalue() == "EX-NY1: Verbose\n"
    out = io.StringIO()
    stdin = io.StringIO("Get-TransportServer | % Identity")
    assert main([], ["EX-FL1"], registry(), stdin=stdin, stdout=out) == 0
    assert out.getvalue() == "EX-FL1\n"
    err = io.StringIO()
    assert main(["-f", str(tmp_path / "missing.ps1")], [], registry(), stderr=err) == 1
    assert "Cannot read the script" in err.getvalue()


def test_main_json_option_writes_objects_as_json() -> None:
    out = io.StringIO()
    status = main(
        ["--json", "-c", "Get-TransportServer"], ["EX-NY1", "EX-FL1"], registry(), stdout=out
    )
    assert status == 0
    assert json.loads(out.getvalue()) == [{"Identity": "EX-NY1"}, {"Identity": "EX-FL1"}]
