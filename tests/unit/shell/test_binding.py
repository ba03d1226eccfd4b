"""Parameter binding and pipelines, through fake cmdlets on an in-memory list."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from sitemail.shell import (
    BY_PROPERTY_NAME,
    BY_VALUE,
    FILTER,
    INT,
    SIZE,
    STRING,
    SWITCH,
    TIMESPAN,
    BoundParameters,
    ByteSize,
    EnumType,
    FlagsType,
    FlagsValue,
    IntType,
    Invocation,
    MultiValuedType,
    MultiValuedUpdate,
    Parameter,
    Record,
    RecordFilter,
    Registry,
    TableView,
    cmdlet,
    run_script,
)

THING = "Test.Thing"
LEVEL = EnumType("Microsoft.Exchange.Data.ProtocolLoggingLevel", ["None", "Verbose"])
AUTH = FlagsType(
    "Microsoft.Exchange.Data.AuthMechanisms", ["None", "Tls", "Integrated", "ExchangeServer"]
)


@dataclass
class Things:
    """The fake services: a list of records, and what Set-Thing was called with."""

    items: list[Record] = field(default_factory=list)
    calls: list[dict[str, object]] = field(default_factory=list)


def thing(identity: str, status: str = "Ready", count: int = 0) -> Record:
    return Record(
        THING,
        [
            ("Identity", identity),
            ("Status", status),
            ("MessageCount", count),
            ("Level", "None"),
            ("RemoteIPRanges", ("0.0.0.0-255.255.255.255",)),
        ],
    )


@cmdlet(
    "Get-Thing",
    Parameter("Identity", STRING, position=0),
    Parameter("Filter", FILTER),
    views=[TableView.of(THING, "Identity", "Status", "MessageCount")],
)
def get_thing(
    item: object | None, params: BoundParameters, inv: Invocation[Things]
) -> Iterable[object]:
    wanted = params.typed("Identity", str)
    query = params.typed("Filter", RecordFilter)
    for record in inv.services.items:
        if wanted is not None and str(record["Identity"]).casefold() != wanted.casefold():
            continue
        if query is None or query.matches(record):
            yield record


@cmdlet(
    "Set-Thing",
    Parameter("Identity", STRING, position=0, mandatory=True, pipeline=BY_VALUE | BY_PROPERTY_NAME),
    Parameter("IntraOrgProtocolLoggingLevel", LEVEL),
    Parameter("IntraOrgConnectorProtocolLoggingLevel", LEVEL),
    Parameter("RemoteIPRanges", MultiValuedType(STRING)),
    Parameter("AuthMechanism", AUTH),
    Parameter("Enabled", SWITCH),
    Parameter("MaxMessageSize", SIZE),
    Parameter("ConnectionTimeout", TIMESPAN),
    Parameter("MaxHopCount", IntType(1, 500)),
    Parameter("Port", INT, aliases=("p",)),
    supports_should_process=True,
)
def set_thing(item: object | None, params: BoundParameters, inv: Invocation[Things]) -> None:
    inv.services.calls.append(dict(params.items()))
    for index, record in enumerate(inv.services.items):
        if str(record["Identity"]).casefold() == str(params["Identity"]).casefold():
            if not inv.should_process(str(record["Identity"]), "Set-Thing"):
                return
            update = params.get("RemoteIPRanges")
            current = record["RemoteIPRanges"]
            if isinstance(update, MultiValuedUpdate) and isinstance(current, tuple):
                record = record.replace(RemoteIPRanges=update.apply(current))
            if "IntraOrgProtocolLoggingLevel" in params:
                record = record.replace(Level=params["IntraOrgProtocolLoggingLevel"])
            inv.services.items[index] = record
            return
    inv.write_error(
        f"The operation couldn't be performed because object "
        f"'{params['Identity']}' couldn't be found."
    )


def run(text: str, things: Things | None = None) -> tuple[str, Things, bool]:
    things = things or Things([thing("EX-NY1\\Submission"), thing("EX-NY1\\3", "Retry", 4)])
    registry: Registry[Things] = Registry()
    registry.extend([get_thing, set_thing])
    result = run_script(text, things, registry, width=100)
    return result.output, things, result.failed


def test_seed_line_with_en_dash_binds_identity_by_property_name() -> None:
    output, things, failed = run("Get-Thing | Set-Thing –IntraOrgProtocolLoggingLevel Verbose")
    assert not failed, output
    assert [c["Identity"] for c in things.calls] == ["EX-NY1\\Submission", "EX-NY1\\3"]
    assert [r["Level"] for r in things.items] == ["Verbose", "Verbose"]


def test_where_object_filters_the_stream_before_the_set() -> None:
    _, things, failed = run(
        'Get-Thing | Where-Object {$_.Status -eq "Retry"} | Set-Thing -IntraOrgP verbose'
    )
    assert not failed
    assert [c["Identity"] for c in things.calls] == ["EX-NY1\\3"]
    assert things.calls[0]["IntraOrgProtocolLoggingLevel"] == "Verbose"  # canonical case


def test_strings_bind_by_value_from_the_pipeline() -> None:
    _, things, failed = run("'EX-NY1\\3' | Set-Thing -Enabled")
    assert not failed
    assert things.calls == [{"Identity": "EX-NY1\\3", "Enabled": True}]


def test_switch_colon_false_and_bool_values() -> None:
    _, things, _ = run("Set-Thing EX-NY1\\3 -Enabled:$false")
    assert things.calls[0]["Enabled"] is False
    _, things, _ = run("Set-Thing EX-NY1\\3 -Enabled")
    assert things.calls[0]["Enabled"] is True


def test_switch_followed_by_a_value_leaves_the_value_positional() -> None:
    _, things, failed = run("Set-Thing -Enabled $false")
    # As in PowerShell, $false then binds to Identity (position 0) and the switch is on.
    assert things.calls[0]["Enabled"] is True
    assert things.calls[0]["Identity"] == "False"
    assert failed  # no such thing


def test_multivalued_hashtable_adds_and_removes() -> None:
    _, things, failed = run(
        'Set-Thing EX-NY1\\3 -RemoteIPRanges @{Add="10.0.0.1","10.0.0.2"; '
        "Remove='0.0.0.0-255.255.255.255'}"
    )
    assert not failed
    assert things.items[1]["RemoteIPRanges"] == ("10.0.0.1", "10.0.0.2")


def test_multivalued_list_replaces() -> None:
    _, things, _ = run("Set-Thing EX-NY1\\3 -RemoteIPRanges 10.1.0.0/16, 10.2.0.0/16")
    assert things.items[1]["RemoteIPRanges"] == ("10.1.0.0/16", "10.2.0.0/16")


def test_multivalued_hashtable_with_an_unknown_key_is_refused() -> None:
    output, _, failed = run('Set-Thing EX-NY1\\3 -RemoteIPRanges @{Append="1.1.1.1"}')
    assert failed
    assert 'The hashtable key "Append" is not valid. Use Add or Remove' in output


def test_sizes_time_spans_and_flags_are_converted() -> None:
    _, things, failed = run(
        "Set-Thing EX-NY1\\3 -MaxMessageSize 10MB -ConnectionTimeout 1.00:05:00 "
        "-AuthMechanism 'Tls, exchangeserver'"
    )
    assert not failed
    call = things.calls[0]
    assert call["MaxMessageSize"] == ByteSize(10 * 1024 * 1024)
    assert str(call["MaxMessageSize"]) == "10 MB (10,485,760 bytes)"
    assert call["ConnectionTimeout"] == timedelta(days=1, minutes=5)
    assert call["AuthMechanism"] == FlagsValue(("Tls", "ExchangeServer"))
    _, things, _ = run("Set-Thing EX-NY1\\3 -MaxMessageSize '20 MB' -AuthMechanism Integrated,Tls")
    assert things.calls[0]["MaxMessageSize"] == ByteSize(20 * 1024 * 1024)
    assert things.calls[0]["AuthMechanism"] == FlagsValue(("Tls", "Integrated"))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "Set-Thing EX-NY1\\3 -IntraOrgProtocolLoggingLevel Foo",
            "Set-Thing : Cannot bind parameter 'IntraOrgProtocolLoggingLevel'. "
            "Cannot convert value "
            '"Foo" to type "Microsoft.Exchange.Data.ProtocolLoggingLevel". Error: "Unable to match '
            "the identifier name Foo to a valid enumerator name. Specify one of the following "
            'enumerator names and try again: None, Verbose"',
        ),
        (
            "Set-Thing EX-NY1\\3 -IntraOrg Verbose",
            "Set-Thing : Parameter cannot be processed because the parameter name 'IntraOrg' is "
            "ambiguous. Possible matches include: -IntraOrgProtocolLoggingLevel "
            "-IntraOrgConnectorProtocolLoggingLevel.",
        ),
        (
            "Set-Thing EX-NY1\\3 -Colour Red",
            "Set-Thing : A parameter cannot be found that matches parameter name 'Colour'.",
        ),
        (
            "Set-Thing EX-NY1\\3 extra",
            "Set-Thing : A positional parameter cannot be found that accepts argument 'extra'.",
        ),
        (
            "Set-Thing -Enabled",
            "Set-Thing : Cannot process command because of one or more missing mandatory "
            "parameters: Identity.",
        ),
        (
            "Set-Thing EX-NY1\\3 -Port",
            "Set-Thing : Missing an argument for parameter 'Port'. Specify a parameter of type "
            "'System.Int32' and try again.",
        ),
        (
            "Set-Thing EX-NY1\\3 -Port abc",
            "Set-Thing : Cannot bind parameter 'Port'. Cannot convert value \"abc\" to type "
            '"System.Int32". Error: "Input string was not in a correct format."',
        ),
        (
            "Set-Thing EX-NY1\\3 -MaxHopCount 501",
            "Set-Thing : Cannot validate argument on parameter 'MaxHopCount'. The 501 argument is "
            "greater than the maximum allowed range of 500.",
        ),
        (
            "Set-Thing EX-NY1\\3 -ConnectionTimeout 5min",
            "Set-Thing : Cannot bind parameter 'ConnectionTimeout'. Cannot convert value \"5min\" "
            'to type "System.TimeSpan". Error: "String was not recognized as a valid TimeSpan."',
        ),
        (
            "Set-Thing EX-NY1\\3 -Port 1 -p 2",
            "Set-Thing : Cannot bind parameter because parameter 'Port' is specified "
            "more than once.",
        ),
        (
            "Set-Thing a,b",
            "Set-Thing : Cannot convert 'System.Object[]' to the type "
            "'System.String' required by parameter 'Identity'. Specified method is not supported.",
        ),
        (
            "Set-Thing EX-NY1\\3 -Enabled:maybe",
            "Set-Thing : Cannot process argument transformation on parameter 'Enabled'. Cannot "
            'convert value "System.String" to type "System.Boolean". '
            "Boolean parameters accept only "
            "Boolean values and numbers, such as $True, $False, 1 or 0.",
        ),
        (
            "Get-Thingz",
            "The term 'Get-Thingz' is not recognized as the name of a cmdlet, function, script "
            "file, or operable program.",
        ),
    ],
)
def test_binding_errors_read_like_powershell(line: str, message: str) -> None:
    output, things, failed = run(line)
    assert failed
    assert message in output
    error_lines = [ln for ln in output.splitlines() if ln]
    assert len(error_lines) == 1  # one readable line
    assert things.calls == []


def test_unknown_command_suggests_the_closest_name() -> None:
    output, _, _ = run("Get-Thingz")
    assert "Did you mean 'Get-Thing'?" in output


def test_parameter_names_are_case_insensitive_prefixes_and_aliases() -> None:
    _, things, failed = run("set-thing -identity EX-NY1\\3 -MAXMES 1KB -P 25 -cONNECTIONt 00:01:00")
    assert not failed
    assert things.calls[0]["Port"] == 25
    assert things.calls[0]["MaxMessageSize"] == ByteSize(1024)
    assert things.calls[0]["ConnectionTimeout"] == timedelta(minutes=1)


def test_non_terminating_errors_do_not_stop_the_pipeline() -> None:
    output, things, failed = run("'nope', 'EX-NY1\\3' | Set-Thing -Enabled")
    assert failed
    assert "Set-Thing : The operation couldn't be performed because object 'nope'" in output
    assert [c["Identity"] for c in things.calls] == ["nope", "EX-NY1\\3"]


def test_error_action_silently_continue_hides_the_error_and_stop_ends_the_pipeline() -> None:
    output, _, failed = run("'nope' | Set-Thing -Enabled -ErrorAction SilentlyContinue")
    assert output == "" and not failed
    _, things, failed = run("'nope', 'EX-NY1\\3' | Set-Thing -Enabled -EA Stop")
    assert failed
    assert [c["Identity"] for c in things.calls] == ["nope"]


def test_what_if_changes_nothing_and_says_so() -> None:
    output, things, failed = run(
        "Set-Thing EX-NY1\\3 -IntraOrgProtocolLoggingLevel Verbose -WhatIf"
    )
    assert not failed
    assert 'What if: Performing operation "Set-Thing" on Target "EX-NY1\\3".' in output
    assert things.items[1]["Level"] == "None"


def test_confirm_false_is_accepted() -> None:
    _, things, failed = run(
        "Set-Thing EX-NY1\\3 -IntraOrgProtocolLoggingLevel Verbose -Confirm:$false"
    )
    assert not failed
    assert things.items[1]["Level"] == "Verbose"


def test_filter_parameter_reads_opath_script_blocks_and_strings() -> None:
    output, _, failed = run('Get-Thing -Filter {Status -eq "Retry"}')
    assert not failed
    assert "EX-NY1\\3" in output and "Submission" not in output
    output, _, _ = run("Get-Thing -Filter \"MessageCount -gt 1 -and Status -like 're*'\"")
    assert "EX-NY1\\3" in output and "Submission" not in output
    output, _, failed = run("Get-Thing -Filter 'Status -eq'")
    assert failed
    assert "Cannot bind parameter 'Filter'" in output


def test_variables_and_parenthesized_pipelines() -> None:
    output, things, failed = run(
        '$remotesite = (Get-Thing | where {$_.Status -like "ret*"}).Identity\n'
        "Set-Thing $remotesite -Port 1\n"
        "$remotesite"
    )
    assert not failed, output
    assert things.calls[0]["Identity"] == "EX-NY1\\3"
    assert output.strip() == "EX-NY1\\3"


def test_statements_after_an_error_still_run() -> None:
    _, things, failed = run("Get-Nothing; Set-Thing EX-NY1\\3 -Port 2")
    assert failed
    assert things.calls and things.calls[0]["Port"] == 2
