"""The Exchange Management Shell on a running seed lab: every shell line of SCENARIOS.md.

The tests run in file order on one lab: the read-only cmdlets first, then
story 1 (stuck in Retry behind the ASAs, the seed's logging line, the ASA
fix, the seed's Retry-Queue pipeline), then what needs mail to flow between
the sites (Test-Mailflow), then story 2's Set-*VirtualDirectory lines and the
interactive shell.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pexpect
import pytest
from tests.conftest import RunningLab, in_mailbox, owa_page, stays, submit_as

pytestmark = pytest.mark.lab

T = TypeVar("T")

NY1, FL1 = "127.1.0.11", "127.2.0.11"
PASSWORD = "Pa55word!"
PROMPT = "[PS] C:\\Windows\\system32>"
LAST_ERROR = (
    '451 4.4.0 Primary target IP address responded with: "451 5.7.3 Cannot achieve Exchange '
    'Server authentication." Attempted failover to alternate host, but that did not succeed. '
    "Either there are no alternate hosts, or delivery failed to all alternate hosts."
)
ASA_LINES = "\n".join(
    [
        "config t",
        "policy-map global_policy",
        "class inspection_default",
        "no inspect esmtp",
        "exit",
        "exit",
        "exit",
        "wr me",
    ]
)
# `sitemail shell`, the command a person types.
SHELL = ["-m", "sitemail", "shell"]


def shell(
    lab: RunningLab, line: str, *, server: str | None = None, as_json: bool = False
) -> subprocess.CompletedProcess[str]:
    """``sitemail shell -c LINE`` on the lab, as a person would run it."""
    args = [sys.executable, *SHELL, "--dir", str(lab.dir), "-c", line, "--width", "250"]
    if server is not None:
        args += ["--server", server]
    if as_json:
        args.append("--json")
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def ok(lab: RunningLab, line: str, *, server: str | None = None) -> str:
    """The output of a line that must succeed (exit 0, nothing on stderr)."""
    result = shell(lab, line, server=server)
    assert result.returncode == 0 and result.stderr == "", (line, result.stdout, result.stderr)
    return result.stdout


def objects(lab: RunningLab, line: str) -> list[dict[str, Any]]:
    result = shell(lab, line, as_json=True)
    assert result.returncode == 0, (line, result.stderr)
    if not result.stdout.strip():
        return []
    data = json.loads(result.stdout)
    return data if isinstance(data, list) else [data]


def header(output: str) -> list[str]:
    """A table's column names."""
    return next(line.split() for line in output.splitlines() if line.strip())


def has_row(output: str, *cells: str) -> bool:
    """A table row with these cells in order, however wide the columns are."""
    pattern = r"\s+".join(re.escape(c) for c in cells)
    return any(re.fullmatch(pattern, line.strip()) for line in output.splitlines())


def wait_for(probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: {probe}")
        time.sleep(0.5)


# ------------------------------------------------------------------- story 1, step 3-4


def test_get_receive_connector_on_ex_fl1_shows_the_defaults(seed_lab: RunningLab) -> None:
    table = ok(seed_lab, "Get-ReceiveConnector", server="EX-FL1")
    assert header(table) == ["Identity", "Bindings", "Enabled"]
    assert has_row(table, "EX-FL1\\Default EX-FL1", "{0.0.0.0:25}", "True")
    assert has_row(table, "EX-FL1\\Client EX-FL1", "{0.0.0.0:587}", "True")
    default, client = objects(
        seed_lab, "Get-ReceiveConnector -Server EX-FL1 | Sort-Object Name -Descending"
    )
    assert default["Name"] == "Default EX-FL1"
    assert default["RemoteIPRanges"] == ["0.0.0.0-255.255.255.255"]
    assert (
        default["AuthMechanism"]
        == "Tls, Integrated, BasicAuth, BasicAuthRequireTLS, ExchangeServer"
    )
    assert default["PermissionGroups"] == "ExchangeUsers, ExchangeServers, ExchangeLegacyServers"
    assert client["Bindings"] == ["0.0.0.0:587"]
    assert client["PermissionGroups"] == "ExchangeUsers"


def test_test_net_connection_from_ny_shows_the_asa_masking(seed_lab: RunningLab) -> None:
    (result,) = objects(seed_lab, "Test-NetConnection ex-fl1 -Port 25")
    assert result["TcpTestSucceeded"] is True
    assert result["SourceAddress"] == NY1
    assert result["RemoteAddress"] == "127.1.2.11"  # ASA-NY's address for EX-FL1
    assert result["Banner"].startswith("220 ****")
    assert "ex-fl1" not in result["Banner"].lower()
    ehlo = result["EhloResponse"].splitlines()
    assert "250-XXXXXXXA" in ehlo
    assert not any("STARTTLS" in line or "X-EXPS" in line for line in ehlo)
    # Inside NY there is no firewall: the banner is Exchange's own.
    (local,) = objects(seed_lab, "Test-NetConnection ex-ny1 -Port 25")
    assert local["Banner"].startswith(
        "220 ex-ny1.contoso.com Microsoft ESMTP MAIL Service ready at"
    )
    text = ok(seed_lab, "Test-NetConnection ex-fl1 -Port 25")
    assert "TcpTestSucceeded : True" in text


def test_test_smtp_connectivity_tries_every_binding(seed_lab: RunningLab) -> None:
    table = ok(seed_lab, "Test-SmtpConnectivity EX-FL1")
    assert header(table) == ["Server", "ReceiveConnector", "Binding", "EndPoint", "StatusCode"]
    assert has_row(table, "EX-FL1", "Default EX-FL1", "0.0.0.0:25", f"{FL1}:25", "Success")
    assert has_row(table, "EX-FL1", "Client EX-FL1", "0.0.0.0:587", f"{FL1}:587", "Success")
    details = {
        r["ReceiveConnector"]: r["Details"]
        for r in objects(seed_lab, "Test-SmtpConnectivity EX-FL1")
    }
    assert details["Default EX-FL1"].startswith(
        "220 ex-fl1.contoso.com Microsoft ESMTP MAIL Service"
    )


def test_get_service_on_another_server(seed_lab: RunningLab) -> None:
    table = ok(seed_lab, "Get-Service MSExchangeTransport -ComputerName EX-FL1")
    assert header(table) == ["Status", "Name", "DisplayName"]
    assert has_row(table, "Running", "MSExchangeTransport", "Microsoft Exchange Transport")


# ------------------------------------------------------------- story 1, steps 2, 5, 7-9


def test_story_one_through_the_shell(seed_lab: RunningLab) -> None:
    lab = seed_lab
    ok(lab, "Get-TransportServer | Set-TransportServer –IntraOrgProtocolLoggingLevel Verbose")
    levels = {
        s["Name"]: s["IntraOrgConnectorProtocolLoggingLevel"]
        for s in objects(lab, "Get-TransportServer")
    }
    assert levels == {"EX-NY1": "Verbose", "EX-FL1": "Verbose"}
    lab.changes_live()  # both hubs now send with Verbose logging

    submit_as("alice", ["adam@contoso.com"], "ny-to-fl@shell")

    def retrying() -> dict[str, Any] | None:
        found = objects(lab, 'Get-Queue -Filter {Status -eq "Retry"}')
        return found[0] if found else None

    queue = wait_for(retrying)
    assert queue["Identity"].startswith("EX-NY1\\")
    assert (queue["DeliveryType"], queue["NextHopDomain"]) == ("SmtpRelayToRemoteAdSite", "FL")
    assert queue["LastError"] == LAST_ERROR
    table = ok(lab, "Get-Queue")
    assert has_row(table, queue["Identity"], "SmtpRelayToRemoteAdSite", "Retry", "1", "FL")
    (message,) = objects(lab, f"Get-Message -Queue {queue['Identity']}")
    assert message["FromAddress"] == "alice@contoso.com"

    send_log = lab.dir / "servers/EX-NY1/TransportRoles/Logs/ProtocolLogs/SmtpSend"
    logged = "\n".join(p.read_text() for p in sorted(send_log.glob("SEND*.LOG")))
    assert "XXXXXXXA" in logged
    assert "451 5.7.3 Cannot achieve Exchange Server authentication" in logged

    for firewall in ("ASA-NY", "ASA-FL"):
        assert "[OK]" in lab.run("asa", firewall, "-c", ASA_LINES).stdout

    assert ok(lab, 'Get-Queue | Where-Object {$_.Status -eq "Retry"} | Retry-Queue') == ""
    wait_for(lambda: in_mailbox(lab, "EX-FL1", "FL-DB1", "ny-to-fl@shell"))
    stays(lambda: in_mailbox(lab, "EX-FL1", "FL-DB1", "ny-to-fl@shell") == 1, "delivered once")

    events = objects(lab, "Get-MessageTrackingLog -MessageId ny-to-fl@shell")
    # In time order across both hubs: EX-NY1 received and sent it, EX-FL1 received and
    # delivered it (its RECEIVE may come before EX-NY1 logs the SEND).
    seen = [
        (e["EventId"], str(e["ServerHostname"]).split(".")[0].upper())
        for e in events
        if e["EventId"] != "DEFER"
    ]
    assert sorted(seen) == sorted(
        [
            ("RECEIVE", "EX-NY1"),
            ("SEND", "EX-NY1"),
            ("RECEIVE", "EX-FL1"),
            ("DELIVER", "EX-FL1"),
        ]
    )
    assert seen[0] == ("RECEIVE", "EX-NY1") and seen[-1] == ("DELIVER", "EX-FL1")
    assert events[-1]["Recipients"] == ["adam@contoso.com"]

    ok(lab, "Get-TransportServer | Set-TransportServer –IntraOrgProtocolLoggingLevel None")
    levels = {
        s["Name"]: s["IntraOrgConnectorProtocolLoggingLevel"]
        for s in objects(lab, "Get-TransportServer")
    }
    assert levels == {"EX-NY1": "None", "EX-FL1": "None"}


def test_test_mailflow_local_and_to_the_other_site(seed_lab: RunningLab) -> None:
    # Runs after the ASA fix above: mail flows between the sites.
    (local,) = objects(seed_lab, "Test-Mailflow -ExecutionTimeout 60")
    assert (local["TestMailflowResult"], local["IsRemoteTest"]) == ("Success", False)
    text = ok(seed_lab, "Test-Mailflow EX-NY1 -TargetMailboxServer EX-FL1 -ExecutionTimeout 60")
    assert header(text) == ["TestMailflowResult", "MessageLatencyTime", "IsRemoteTest"]
    assert re.search(r"^Success\s+00:00:\d\d(\.\d{7})?\s+True$", text, re.MULTILINE), text
    assert "SystemMailbox" not in ok(seed_lab, "Get-Mailbox")


GET_LINES = [
    ("Get-ExchangeServer", ["Name", "Site", "ServerRole", "Edition", "AdminDisplayVersion"]),
    (
        "Get-TransportServer",
        ["Name", "IntraOrgConnectorProtocolLoggingLevel", "MessageTrackingLogEnabled"],
    ),
    ("Get-AdSite", ["Name", "HubSiteEnabled"]),
    ("Get-AdSiteLink", ["Name", "Cost", "ADCost", "ExchangeCost", "MaxMessageSize", "Sites"]),
    ("Get-MailboxDatabase", ["Name", "Server", "Recovery", "ReplicationType"]),
    ("Get-Mailbox", ["Name", "Alias", "ServerName", "ProhibitSendQuota"]),
    ("Get-OwaVirtualDirectory", ["Name", "Server"]),
    ("Get-EcpVirtualDirectory", ["Name", "Server"]),
    ("Get-ActiveSyncVirtualDirectory", ["Name", "Server"]),
    ("Get-WebServicesVirtualDirectory", ["Name", "Server"]),
    (
        "Get-PopSettings",
        ["UnencryptedOrTLSBindings", "SSLBindings", "LoginType", "X509CertificateName"],
    ),
    (
        "Get-ImapSettings",
        ["UnencryptedOrTLSBindings", "SSLBindings", "LoginType", "X509CertificateName"],
    ),
    ("Get-Queue", ["Identity", "DeliveryType", "Status", "MessageCount", "NextHopDomain"]),
    ("Get-Message", ["Identity", "FromAddress", "Status", "Queue", "Subject"]),
    ("Get-MessageTrackingLog", ["EventId", "Source", "Sender", "Recipients", "MessageSubject"]),
    ("Get-Service", ["Status", "Name", "DisplayName"]),
]


@pytest.mark.parametrize(("line", "columns"), GET_LINES, ids=[g[0] for g in GET_LINES])
def test_every_get_cmdlet_answers_with_its_default_view(
    seed_lab: RunningLab, line: str, columns: list[str]
) -> None:
    output = ok(seed_lab, line)
    if line == "Get-Message" and not output.strip():
        return  # every queue is empty by now: Exchange prints nothing either
    assert header(output) == columns


def test_configuration_changes_reach_the_running_servers(seed_lab: RunningLab) -> None:
    lab = seed_lab
    ok(lab, 'Set-ReceiveConnector "EX-FL1\\Default EX-FL1" -Banner "220 FL relay ready"')

    def default_banner() -> str | None:
        rows = objects(lab, "Test-SmtpConnectivity EX-FL1")
        found = [r["Details"] for r in rows if r["ReceiveConnector"] == "Default EX-FL1"]
        return found[0] if found and found[0] == "220 FL relay ready" else None

    wait_for(default_banner, timeout=15)
    ok(lab, 'Set-ReceiveConnector "EX-FL1\\Default EX-FL1" -Banner $null')
    # A new mailbox gets mail at once: the hubs and the store see it without a restart.
    ok(
        lab,
        "New-Mailbox -Name 'Frank Fl' -Alias frank -Database FL-DB1 -Password "
        "(ConvertTo-SecureString -String 'Pa55word!' -AsPlainText -Force)",
    )
    lab.changes_live()  # the hubs and the store know frank
    submit_as("alice", ["frank@contoso.com"], "to-frank@shell")
    wait_for(lambda: in_mailbox(lab, "EX-FL1", "FL-DB1", "to-frank@shell"))
    # Suspend-Queue holds a queue's mail; Resume-Queue lets it go.
    ok(lab, "Suspend-Queue EX-NY1\\Submission")
    (suspended,) = objects(lab, "Get-Queue EX-NY1\\Submission")
    assert suspended["Status"] == "Suspended"
    ok(lab, "Get-Queue -Filter {Status -eq 'Suspended'} | Resume-Queue")
    (resumed,) = objects(lab, "Get-Queue EX-NY1\\Submission")
    assert resumed["Status"] != "Suspended"


def test_restart_service_restarts_transport_and_it_comes_back(seed_lab: RunningLab) -> None:
    restarted = ok(seed_lab, "Restart-Service MSExchangeTransport -PassThru")
    assert has_row(restarted, "Running", "MSExchangeTransport", "Microsoft Exchange Transport")
    queues = {q["Identity"] for q in objects(seed_lab, "Get-Queue -Server EX-NY1")}
    assert "EX-NY1\\Submission" in queues


# ---------------------------------------------------------------------- story 2, step 3


def test_set_virtual_directories_turn_proxy_into_redirection(seed_lab: RunningLab) -> None:
    # FL's ExternalUrl is $null: NY's CAS proxies, and adam reads his Inbox at NY's URL.
    before = owa_page(NY1, "adam")
    assert "Inbox" in before and "redirect-link" not in before
    ok(
        seed_lab,
        'Set-OwaVirtualDirectory "EX-FL1\\owa (Default Web Site)" '
        "-ExternalUrl https://ex-fl1.contoso.com/owa",
    )
    ok(
        seed_lab,
        'Set-ActiveSyncVirtualDirectory "EX-FL1\\Microsoft-Server-ActiveSync (Default Web Site)" '
        "-ExternalUrl https://ex-fl1.contoso.com/Microsoft-Server-ActiveSync",
    )
    (eas,) = objects(seed_lab, "Get-ActiveSyncVirtualDirectory -Server EX-FL1")
    assert eas["ExternalUrl"] == "https://ex-fl1.contoso.com/Microsoft-Server-ActiveSync"
    # Active/Active: NY now shows the redirection page with FL's URL (Manual).

    def redirected() -> str | None:
        shown = owa_page(NY1, "adam")
        return shown if "redirect-link" in shown else None

    page = wait_for(redirected, 15)
    assert 'href="https://ex-fl1.contoso.com/owa" id="redirect-link"' in page


# ------------------------------------------------------------------ the interactive shell


def test_interactive_shell_types_the_seed_line_with_tab(
    seed_lab: RunningLab, tmp_path: Path
) -> None:
    env = {**os.environ, "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm"}
    child = pexpect.spawn(
        sys.executable,
        [*SHELL, "--dir", str(seed_lab.dir), "--history-file", str(tmp_path / "history")],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(24, 200),
    )
    try:
        child.expect_exact("Get-Command lists the cmdlets")
        child.expect_exact(PROMPT)
        # The terminal may draw typed text and completions in pieces: wait for each
        # completed part only, then check the result by running the line.
        # Get-TransportConfig is there too (as in the EMS): one more letter picks the server.
        child.send("Get-TransportS\t")
        child.expect_exact("erver")
        child.send(" | Set-TransportS\t")
        child.expect_exact("erver")
        child.send(" –IntraOrgProtocolLoggingLevel Verb\t")
        child.expect_exact("ose")
        child.send("\r")
        child.expect_exact(PROMPT)
        child.sendline(
            "Get-TransportServer | Format-Table Name,IntraOrgConnectorProtocolLoggingLevel"
        )
        child.expect(r"EX-NY1\s+Verbose")
        child.expect_exact(PROMPT)
        child.sendline("Get-Help Retry-Queue")
        child.expect_exact("Retry-Queue [[-Identity] <String>]")
        child.expect_exact(PROMPT)
        child.sendline("Set-TransportServer EX-NY1 -IntraOrgProtocolLoggingLevel Loud")
        child.expect_exact("Unable to match the identifier name Loud")
        child.expect_exact(PROMPT)
        child.sendline(
            "Get-TransportServer | Set-TransportServer –IntraOrgProtocolLoggingLevel None"
        )
        child.expect_exact(PROMPT)
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    history = (tmp_path / "history").read_text(encoding="utf-8")
    assert (
        "Get-TransportServer | Set-TransportServer –IntraOrgProtocolLoggingLevel Verbose" in history
    )
