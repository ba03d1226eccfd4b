"""Built-in cmdlets and the console's text, through a fake Get-Queue."""

from __future__ import annotations

import json
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitemail.shell import (
    BoundParameters,
    Column,
    Invocation,
    ListView,
    Record,
    Registry,
    TableView,
    cmdlet,
    run_script,
)

QUEUE = "Microsoft.Exchange.Data.QueueViewer.ExtensibleQueueInfo"
LAST_ERROR = (
    '451 4.4.0 Primary target IP address responded with: "451 5.7.3 Cannot achieve Exchange '
    'Server authentication." Attempted failover to alternate host, but that did not succeed. '
    "Either there are no alternate hosts, or delivery failed to all alternate hosts."
)


def queue(
    identity: str, delivery: str, status: str, count: int, hop: str, error: str = ""
) -> Record:
    return Record(
        QUEUE,
        [
            ("Identity", identity),
            ("DeliveryType", delivery),
            ("Status", status),
            ("MessageCount", count),
            ("NextHopDomain", hop),
            ("LastError", error or None),
            ("RetryCount", 3 if error else 0),
        ],
    )


QUEUES = [
    queue("EX-NY1\\Submission", "Undefined", "Ready", 0, "Submission"),
    queue("EX-NY1\\3", "SmtpRelayToRemoteAdSite", "Retry", 2, "FL", LAST_ERROR),
    queue("EX-NY1\\4", "MapiDelivery", "Ready", 11, "ex-ny1.contoso.com"),
]


@cmdlet(
    "Get-Queue",
    views=[
        TableView.of(
            QUEUE,
            Column("Identity", width=23),
            Column("DeliveryType", width=15),
            Column("Status", width=7),
            Column("MessageCount", width=13, align="left"),
            "NextHopDomain",
        )
    ],
    synopsis="Lists the queues.",
)
def get_queue(
    item: object | None, params: BoundParameters, inv: Invocation[object]
) -> Iterable[object]:
    return list(QUEUES)


@cmdlet("Get-Wide", synopsis="An object with many properties and no view.")
def get_wide(
    item: object | None, params: BoundParameters, inv: Invocation[object]
) -> Iterable[object]:
    return [Record("Test.Wide", [(f"P{i}", i) for i in range(6)])]


@cmdlet("Get-Narrow")
def get_narrow(
    item: object | None, params: BoundParameters, inv: Invocation[object]
) -> Iterable[object]:
    return [
        Record("Test.Narrow", [("Name", "a"), ("Size", 5)]),
        Record("Test.Narrow", [("Name", "bbbbbb"), ("Size", 12345)]),
    ]


def run(text: str, width: int = 120) -> str:
    registry: Registry[object] = Registry()
    registry.extend([get_queue, get_wide, get_narrow])
    result = run_script(text, None, registry, width=width)
    assert not result.failed, result.output
    return result.output


def test_get_queue_default_view_is_the_exchange_table() -> None:
    # Widths and alignment as in Exchange's own view (the 2007/2010 sample in the spec).
    assert run("Get-Queue") == (
        "\n"
        "Identity                DeliveryType    Status  MessageCount  NextHopDomain\n"
        "--------                ------------    ------  ------------  -------------\n"
        "EX-NY1\\Submission       Undefined       Ready   0             Submission\n"
        "EX-NY1\\3                SmtpRelayToR... Retry   2             FL\n"
        "EX-NY1\\4                MapiDelivery    Ready   11            ex-ny1.contoso.com\n"
        "\n"
    )


def test_objects_without_a_view_show_as_table_up_to_four_properties_else_as_list() -> None:
    assert run("Get-Narrow") == ("\nName    Size\n----    ----\na          5\nbbbbbb 12345\n\n")
    wide = run("Get-Wide")
    assert wide.startswith("\nP0 : 0\nP1 : 1\n")
    assert "P5 : 5" in wide


def test_format_list_aligns_names_and_wraps_long_values() -> None:
    out = run("Get-Queue | Where-Object {$_.Status -eq 'Retry'} | fl Identity,LastError", width=60)
    lines = out.splitlines()
    assert lines[1] == "Identity  : EX-NY1\\3"
    assert lines[2].startswith("LastError : 451 4.4.0 Primary target IP address")
    assert all(len(line) < 60 for line in lines)
    assert lines[3].startswith("            ")  # continuation under the value column
    assert "alternate hosts." in out


def test_format_list_star_shows_every_property_and_registered_list_views_apply() -> None:
    out = run("Get-Queue | select -First 1 | fl *")
    assert "RetryCount    : 0" in out and "LastError     :" in out
    registry: Registry[object] = Registry()
    registry.extend([get_queue])
    registry.add_view(ListView.of(QUEUE, "Identity", "Status"))
    result = run_script("Get-Queue | Format-List", None, registry)
    assert "Identity : EX-NY1\\Submission\nStatus   : Ready\n" in result.output
    assert "NextHopDomain" not in result.output


def test_format_table_property_list_autosizes_and_truncates_to_width() -> None:
    out = run("Get-Queue | ft Identity,NextHopDomain,LastError -AutoSize", width=50)
    lines = out.splitlines()
    assert lines[1].split() == ["Identity", "NextHopDomain", "LastError"]
    assert all(len(line) <= 49 for line in lines)
    assert lines[4].endswith("...")


def test_where_object_simplified_syntax_and_aliases() -> None:
    assert "ex-ny1.contoso.com" in run("Get-Queue | where MessageCount -gt 10 | % NextHopDomain")
    assert (
        run(
            "Get-Queue | ? {$_.MessageCount -ge 2 -and -not ($_.Status -eq 'Ready')} "
            "| ForEach-Object {$_.Identity}"
        )
        == "EX-NY1\\3\n"
    )


def test_select_object_first_last_expand_and_calculated() -> None:
    assert run("Get-Queue | Select-Object -ExpandProperty NextHopDomain -Last 2") == (
        "FL\nex-ny1.contoso.com\n"
    )
    out = run(
        'Get-Queue | select Identity, @{Name="Double"; Expression={$_.MessageCount * 2}} -First 2'
    )
    assert out.splitlines()[1:5] == [
        "Identity          Double",
        "--------          ------",
        "EX-NY1\\Submission      0",
        "EX-NY1\\3               4",
    ]


def test_sort_and_measure() -> None:
    assert run("Get-Queue | sort MessageCount -Descending | % Identity") == (
        "EX-NY1\\4\nEX-NY1\\3\nEX-NY1\\Submission\n"
    )
    assert run("(Get-Queue | Measure-Object).Count") == "3\n"
    out = run("Get-Queue | Measure-Object MessageCount -Sum -Maximum")
    assert "Sum      : 13" in out and "Maximum  : 11" in out and "Count    : 3" in out


def test_convert_to_json_for_scripts() -> None:
    data = json.loads(run("Get-Queue | select Identity,MessageCount,LastError | ConvertTo-Json"))
    assert data[1] == {"Identity": "EX-NY1\\3", "MessageCount": 2, "LastError": LAST_ERROR}
    assert run("@{a=1} | ConvertTo-Json -Compress") == '{"a":1}\n'


def test_get_command_filters_by_noun_verb_and_wildcard() -> None:
    out = run("Get-Command -Noun Queue")
    assert "Get-Queue" in out and "Get-Wide" not in out
    names = run("Get-Command -Verb Format | % Name").split()
    assert names == ["Format-List", "Format-Table"]
    assert run("Get-Command Get-N* | % Name") == "Get-Narrow\n"
    assert "Alias" in run("Get-Command ft") and "Format-Table" in run("Get-Command ft")


def test_get_help_shows_syntax_parameters_and_examples() -> None:
    out = run("Get-Help Where-Object -Detailed")
    assert "NAME\n    Where-Object" in out
    assert "Where-Object [[-FilterScript] <Object>] [[-Value] <Object>]" in out
    assert "Accept pipeline input?      true (ByValue)" in out
    assert "EXAMPLE 1" in out and "Retry-Queue" in out
    assert "SYNTAX" in run("fl -?")
    assert "Get-Queue" in run("Get-Help *Queue")


def test_expressions_strings_and_arithmetic() -> None:
    assert run("$n = 3; \"queues: $n, next: $($n + 1)\"; 'no $n'") == (
        "queues: 3, next: 4\nno $n\n"
    )
    assert run("10MB / 1KB; 1,2,3 -gt 1; 'Retry' -like 'r*'; $null -eq $x") == (
        "10240\n2\n3\nTrue\nTrue\n"
    )
    assert run("@{Add='x'; Remove='y'}") == ("\nName   Value\n----   -----\nAdd    x\nRemove y\n\n")


def test_write_host_and_write_output() -> None:
    assert run("Write-Host Checking queues on EX-NY1; Write-Output a b") == (
        "Checking queues on EX-NY1\na\nb\n"
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("$true = 1", "Cannot overwrite variable true because it is read-only or constant."),
        (
            "'abc'.Frobnicate()",
            "Method invocation failed because [System.String] does not "
            "contain a method named 'Frobnicate'.",
        ),
        ("1 / 0", "Attempted to divide by zero."),
        ("Get-Help Get-Nothing", "Get-Help : Get-Help could not find Get-Nothing"),
        ("Get-Queue | select -ExpandProperty Nope", 'Property "Nope" cannot be found.'),
    ],
)
def test_runtime_errors(line: str, message: str) -> None:
    registry: Registry[object] = Registry()
    registry.extend([get_queue])
    result = run_script(line, None, registry)
    assert result.failed
    assert message in result.errors[0]


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("$_.{}()@;|,'\"-+*/% =?1aSQ\n")), max_size=30))
def test_no_input_makes_the_runtime_fail_internally(text: str) -> None:
    registry: Registry[object] = Registry()
    registry.extend([get_queue])
    result = run_script("Get-Queue | " + text, None, registry)
    assert not any("Internal error" in e for e in result.errors), result.errors
