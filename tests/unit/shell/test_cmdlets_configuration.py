"""The configuration cmdlets on a directory of the seed organization, without a lab."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sitemail.org.directory import Directory, open_directory
from sitemail.org.lockout import AccountLockouts
from sitemail.org.model import (
    LoggingLevel,
    Mailbox,
    Organization,
    PopImapSettings,
    ReceiveConnector,
    Server,
    SiteLink,
    VirtualDirectory,
)
from sitemail.org.passwords import verify_password
from sitemail.org.topology import Topology
from sitemail.shell import ScriptResult, run_script
from sitemail.shell.cmdlets import exchange_registry
from sitemail.shell.cmdlets.admin_client import AdminClient
from sitemail.shell.cmdlets.services import ExchangeServices
from sitemail.shell.completion import complete

SEED = Path(__file__).resolve().parents[3] / "examples" / "seed.yaml"


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Directory]:
    d = open_directory(str(tmp_path / "directory.db"))
    with d.transaction():
        for obj in Topology.load(SEED).objects(hash_passwords=False):
            d.put(obj)
    yield d
    d.close()


@pytest.fixture
def services(directory: Directory, tmp_path: Path) -> ExchangeServices:
    return ExchangeServices(directory, tmp_path, AdminClient(tmp_path / "pki"), "EX-NY1")


def run(services: ExchangeServices, text: str) -> ScriptResult:
    return run_script(text, services, exchange_registry(), width=250)


def has_row(output: str, *cells: str) -> bool:
    """A table row with these cells in order, however wide the columns are."""
    pattern = r"\s+".join(re.escape(c) for c in cells)
    return any(re.fullmatch(pattern, line.strip()) for line in output.splitlines())


def listed(output: str) -> dict[str, str]:
    """Format-List's ``Name : Value`` lines as a dict (one-line values)."""
    found = (re.fullmatch(r"(\w+)\s+:(?: (.*))?", line) for line in output.splitlines())
    return {m[1]: m[2] or "" for m in found if m}


def connector(directory: Directory, identity: str) -> ReceiveConnector:
    return directory.require(ReceiveConnector, identity)


# ------------------------------------------------------------ receive connectors


def test_get_receive_connector_shows_the_two_default_connectors(
    services: ExchangeServices,
) -> None:
    result = run(services, "Get-ReceiveConnector -Server EX-FL1")
    assert not result.failed, result.output
    lines = result.output.splitlines()
    assert lines[1].split() == ["Identity", "Bindings", "Enabled"]
    assert has_row(result.output, "EX-FL1\\Default EX-FL1", "{0.0.0.0:25}", "True")
    assert has_row(result.output, "EX-FL1\\Client EX-FL1", "{0.0.0.0:587}", "True")
    assert "EX-NY1" not in result.output


def test_format_list_shows_exchange_names_and_value_formats(services: ExchangeServices) -> None:
    result = run(services, 'Get-ReceiveConnector "EX-FL1\\Default EX-FL1" | Format-List')
    shown = listed(result.output)
    assert (
        shown["AuthMechanism"] == "Tls, Integrated, BasicAuth, BasicAuthRequireTLS, ExchangeServer"
    )
    assert shown["PermissionGroups"] == "ExchangeUsers, ExchangeServers, ExchangeLegacyServers"
    assert shown["RemoteIPRanges"] == "{0.0.0.0-255.255.255.255}"
    assert shown["Bindings"] == "{0.0.0.0:25}"
    assert shown["MaxMessageSize"] == "10 MB (10,485,760 bytes)"
    assert shown["ConnectionTimeout"] == "00:10:00"
    assert shown["MessageRateLimit"] == "unlimited"
    assert shown["Fqdn"] == "ex-fl1.contoso.com"
    assert shown["Banner"] == ""
    assert shown["Identity"] == "EX-FL1\\Default EX-FL1"


def test_identity_by_name_alone_and_its_errors(services: ExchangeServices) -> None:
    result = run(services, 'Get-ReceiveConnector "Client EX-NY1" | Format-List Identity')
    assert "EX-NY1\\Client EX-NY1" in result.output
    result = run(services, 'Get-ReceiveConnector "No Such"')
    assert result.errors == (
        "Get-ReceiveConnector : The operation couldn't be performed because object 'No Such' "
        "couldn't be found.",
    )
    result = run(services, "Set-ReceiveConnector Default* -Enabled $false")
    assert result.errors == (
        "Set-ReceiveConnector : The operation couldn't be performed because 'Default*' matches "
        "multiple entries.",
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("-AuthMechanism None,Tls", "The AuthMechanism value None can't be combined"),
        ("-AuthMechanism Tls,BasicAuthRequireTLS", "requires BasicAuth and Tls"),
        ("-AuthMechanism BasicAuth,BasicAuthRequireTLS", "requires BasicAuth and Tls"),
        (
            "-AuthMechanism Tls,ExternalAuthoritative -PermissionGroups ExchangeUsers",
            "requires the ExchangeServers permission group",
        ),
        (
            "-AuthMechanism Integrated,ExternalAuthoritative -PermissionGroups ExchangeServers",
            "ExternalAuthoritative can only be combined with Tls",
        ),
        ("-AuthMechanism Integrated -RequireTLS $true", "RequireTLS can't be $true unless"),
        ("-Bindings 0.0.0.0:25,0.0.0.0:587", "conflict with the settings on"),
        ("-Banner 'Welcome'", 'The Banner must start with "220 "'),
        ("-Bindings 0.0.0.0", "The value of property 'Bindings' is not valid"),
        ("-RemoteIPRanges 10.0.0.9-10.0.0.1", "The value of property 'RemoteIPRanges'"),
    ],
)
def test_set_receive_connector_refuses_what_exchange_refuses(
    services: ExchangeServices, directory: Directory, arguments: str, message: str
) -> None:
    before = connector(directory, "EX-FL1\\Default EX-FL1")
    result = run(services, f'Set-ReceiveConnector "EX-FL1\\Default EX-FL1" {arguments}')
    assert result.failed
    assert len(result.errors) == 1
    assert result.errors[0].startswith("Set-ReceiveConnector : ")
    assert message in result.errors[0]
    assert connector(directory, "EX-FL1\\Default EX-FL1") == before


def test_conflicting_ranges_name_the_other_connector(services: ExchangeServices) -> None:
    # Client EX-FL1 listens on 587 for every address: the same binding and range clash.
    result = run(services, 'Set-ReceiveConnector "Default EX-FL1" -Bindings 0.0.0.0:587')
    assert result.errors == (
        "Set-ReceiveConnector : The values that you specified for the Bindings and "
        'RemoteIPRanges parameters conflict with the settings on Receive connector "EX-FL1\\'
        'Client EX-FL1". Connectors that share a binding must have RemoteIPRanges that are '
        "different and either disjoint or nested; change the bindings or the ranges.",
    )


def test_set_multivalued_properties_replace_or_edit(
    services: ExchangeServices, directory: Directory
) -> None:
    result = run(
        services,
        'Set-ReceiveConnector "Default EX-FL1" -RemoteIPRanges 127.1.0.0/16, 127.2.0.0/16; '
        'Set-ReceiveConnector "Default EX-FL1" -Bindings @{Add="127.2.0.11:2525"}; '
        'Set-ReceiveConnector "Default EX-FL1" -PermissionGroups '
        "ExchangeUsers,ExchangeServers,ExchangeLegacyServers,AnonymousUsers; "
        'Set-ReceiveConnector "Default EX-FL1" -AuthMechanism Tls,Integrated,BasicAuth,'
        "BasicAuthRequireTLS",
    )
    assert not result.failed, result.output
    changed = connector(directory, "EX-FL1\\Default EX-FL1")
    assert changed.remote_ip_ranges == ["127.1.0.0/16", "127.2.0.0/16"]
    assert changed.bindings == ["0.0.0.0:25", "127.2.0.11:2525"]
    assert [g.value for g in changed.permission_groups] == [
        "AnonymousUsers",
        "ExchangeUsers",
        "ExchangeServers",
        "ExchangeLegacyServers",
    ]
    assert [a.value for a in changed.auth_mechanism] == [
        "Tls",
        "Integrated",
        "BasicAuth",
        "BasicAuthRequireTLS",
    ]


def test_set_without_a_change_warns_as_exchange_does(
    services: ExchangeServices, directory: Directory
) -> None:
    result = run(services, 'Set-ReceiveConnector "Default EX-FL1" -Enabled $true')
    assert not result.failed
    assert (
        "WARNING: The command completed successfully but no settings of "
        "'EX-FL1\\Default EX-FL1' have been modified." in result.output
    )


def test_new_receive_connector_by_usage_nested_ranges_rename_and_remove(
    services: ExchangeServices, directory: Directory
) -> None:
    result = run(
        services,
        'New-ReceiveConnector "Relay EX-NY1" -Server EX-NY1 -Usage Internet '
        "-Bindings 0.0.0.0:25 -RemoteIPRanges 127.99.5.0/24",
    )
    assert not result.failed, result.output
    assert has_row(result.output, "EX-NY1\\Relay EX-NY1", "{0.0.0.0:25}", "True")
    created = connector(directory, "EX-NY1\\Relay EX-NY1")
    assert [a.value for a in created.auth_mechanism] == ["Tls"]
    assert [g.value for g in created.permission_groups] == ["AnonymousUsers"]
    # Nested in Internet EX-NY1's 127.99.0.0/16: allowed.  Straddling it: refused.
    straddling = run(
        services,
        "New-ReceiveConnector Straddle -Server EX-NY1 -Bindings 0.0.0.0:25 "
        "-RemoteIPRanges 127.98.0.0-127.99.0.5",
    )
    assert "conflict with the settings on" in straddling.errors[0]
    assert directory.get(ReceiveConnector, "EX-NY1\\Straddle") is None
    renamed = run(services, 'Set-ReceiveConnector "EX-NY1\\Relay EX-NY1" -Name "Partners EX-NY1"')
    assert not renamed.failed, renamed.output
    assert directory.get(ReceiveConnector, "EX-NY1\\Relay EX-NY1") is None
    assert directory.get(ReceiveConnector, "EX-NY1\\Partners EX-NY1") is not None
    run(services, 'Remove-ReceiveConnector "EX-NY1\\Partners EX-NY1" -WhatIf')
    assert directory.get(ReceiveConnector, "EX-NY1\\Partners EX-NY1") is not None
    run(services, 'Remove-ReceiveConnector "EX-NY1\\Partners EX-NY1"')
    assert directory.get(ReceiveConnector, "EX-NY1\\Partners EX-NY1") is None


def test_new_receive_connector_only_on_a_2010_hub(services: ExchangeServices) -> None:
    result = run(services, "New-ReceiveConnector X -Server EX2003 -Bindings 0.0.0.0:2525")
    assert "doesn't have the Exchange 2010 Hub Transport role" in result.errors[0]


# ------------------------------------------------------------- transport servers


def test_the_seed_line_turns_intra_org_logging_on_and_off(
    services: ExchangeServices, directory: Directory
) -> None:
    result = run(
        services, "Get-TransportServer | Set-TransportServer –IntraOrgProtocolLoggingLevel Verbose"
    )
    assert not result.failed, result.output
    levels = {
        s.name: s.transport.intra_org_connector_protocol_logging_level
        for s in directory.list(Server)
    }
    assert levels == {"EX-FL1": "Verbose", "EX-NY1": "Verbose", "EX2003": "None"}
    shown = run(services, "Get-TransportServer").output
    assert has_row(shown, "EX-NY1", "Verbose", "True")
    assert has_row(shown, "EX-FL1", "Verbose", "True")
    assert "EX2003" not in shown
    run(services, "Get-TransportServer | Set-TransportServer –IntraOrgProtocolLoggingLevel None")
    assert all(
        s.transport.intra_org_connector_protocol_logging_level is LoggingLevel.NONE
        for s in directory.list(Server)
    )


def test_transport_server_values_and_ranges(
    services: ExchangeServices, directory: Directory, tmp_path: Path
) -> None:
    result = run(
        services,
        "Set-TransportServer EX-NY1 -MessageExpirationTimeout 1.00:00:00 "
        "-TransientFailureRetryCount 3 -SendProtocolLogMaxFileSize 20MB",
    )
    assert not result.failed, result.output
    settings = directory.require(Server, "EX-NY1").transport
    assert settings.transient_failure_retry_count == 3
    assert settings.send_protocol_log_max_file_size == 20 * 1024 * 1024
    shown = listed(run(services, "Get-TransportServer EX-NY1 | Format-List").output)
    assert shown["MessageExpirationTimeout"] == "1.00:00:00"
    assert shown["SendProtocolLogMaxFileSize"] == "20 MB (20,971,520 bytes)"
    send_log = tmp_path / "servers" / "EX-NY1" / "TransportRoles/Logs/ProtocolLogs/SmtpSend"
    assert shown["SendProtocolLogPath"] == str(send_log)
    refused = run(services, "Set-TransportServer EX-NY1 -TransientFailureRetryCount 16")
    assert "greater than the maximum allowed range of 15" in refused.errors[0]
    missing = run(services, "Set-TransportServer EX2003 -PoisonThreshold 3")
    assert "object 'EX2003' couldn't be found" in missing.errors[0]


def test_transport_config_shadow_redundancy_settings(
    services: ExchangeServices, directory: Directory
) -> None:
    shown = listed(run(services, "Get-TransportConfig | Format-List").output)
    # The 2010 SP1+ defaults.
    assert shown["ShadowRedundancyEnabled"] == "True"
    assert shown["ShadowHeartbeatTimeoutInterval"] == "00:15:00"
    assert shown["ShadowHeartbeatRetryCount"] == "3"
    assert shown["ShadowMessageAutoDiscardInterval"] == "2.00:00:00"
    result = run(
        services,
        "Set-TransportConfig -ShadowHeartbeatTimeoutInterval 00:00:02 "
        "-ShadowHeartbeatRetryCount 2 -ShadowRedundancyEnabled $false",
    )
    assert not result.failed, result.output
    [org] = directory.list(Organization)
    assert org.shadow_heartbeat_timeout_interval == timedelta(seconds=2)
    assert (org.shadow_heartbeat_retry_count, org.shadow_redundancy_enabled) == (2, False)
    refused = run(services, "Set-TransportConfig -ShadowHeartbeatRetryCount 0")
    assert "less than the minimum allowed range of 1" in refused.errors[0]


# ------------------------------------------------------------ servers and sites


def test_get_exchange_server_shows_sites_roles_and_versions(services: ExchangeServices) -> None:
    result = run(services, "Get-ExchangeServer")
    lines = result.output.splitlines()
    assert lines[1].split() == ["Name", "Site", "ServerRole", "Edition", "AdminDisplayVersion"]
    assert has_row(
        result.output,
        "EX-NY1",
        "contoso.com/Configuration/Sites/NY",
        "Mailbox, ClientAccess, HubTransport",
        "Standard",
        "Version 14.3 (Build 123.4)",
    )
    assert "EX2003" in result.output and "Version 6.5" in result.output


def test_site_links_exchange_cost(services: ExchangeServices, directory: Directory) -> None:
    run(services, "Set-AdSiteLink NY-FL -ExchangeCost 10")
    assert directory.require(SiteLink, "NY-FL").exchange_cost == 10
    shown = run(services, "Get-AdSiteLink").output
    assert has_row(
        shown,
        "NY-FL",
        "10",
        "100",
        "10",
        "unlimited",
        "{contoso.com/Configuration/Sites/NY, contoso.com/Configuration/Sites/FL}",
    )
    run(services, "Get-AdSiteLink | Set-AdSiteLink -ExchangeCost $null")
    assert directory.require(SiteLink, "NY-FL").exchange_cost is None
    assert "Name HubSiteEnabled" in run(services, "Get-AdSite").output


# ---------------------------------------------------- virtual directories, POP3


def test_set_owa_and_activesync_external_urls(
    services: ExchangeServices, directory: Directory
) -> None:
    result = run(
        services,
        'Set-OwaVirtualDirectory "EX-FL1\\owa (Default Web Site)" '
        "-ExternalUrl https://ex-fl1.contoso.com/owa; "
        'Set-ActiveSyncVirtualDirectory "EX-FL1\\Microsoft-Server-ActiveSync (Default Web Site)" '
        "-ExternalUrl https://ex-fl1.contoso.com/Microsoft-Server-ActiveSync "
        "-WindowsAuthEnabled $true",
    )
    assert not result.failed, result.output
    vdirs = {v.identity: v for v in directory.list(VirtualDirectory)}
    assert vdirs["EX-FL1\\owa (Default Web Site)"].external_url == "https://ex-fl1.contoso.com/owa"
    eas = vdirs["EX-FL1\\Microsoft-Server-ActiveSync (Default Web Site)"]
    assert eas.external_url == "https://ex-fl1.contoso.com/Microsoft-Server-ActiveSync"
    shown = listed(
        run(services, "Get-OwaVirtualDirectory -Server EX-FL1 | Format-List *Url").output
    )
    assert shown["ExternalUrl"] == "https://ex-fl1.contoso.com/owa"
    cleared = run(services, 'Set-OwaVirtualDirectory "EX-FL1\\owa*" -ExternalUrl $null')
    assert not cleared.failed
    assert (
        directory.require(VirtualDirectory, "EX-FL1\\owa (Default Web Site)").external_url is None
    )


def test_virtual_directory_rules(services: ExchangeServices, directory: Directory) -> None:
    bad = run(services, 'Set-OwaVirtualDirectory "EX-NY1\\owa*" -ExternalUrl mail.contoso.com')
    assert "The value of property 'ExternalUrl' is not valid" in bad.errors[0]
    ambiguous = run(services, 'Set-EcpVirtualDirectory "ecp (Default Web Site)" -ExternalUrl $null')
    assert "matches multiple entries" in ambiguous.errors[0]
    run(services, 'Set-EcpVirtualDirectory "EX-FL1\\ecp*" -FormsAuthentication $true')
    ecp = directory.require(VirtualDirectory, "EX-FL1\\ecp (Default Web Site)")
    assert (ecp.forms_authentication, ecp.basic_authentication) == (True, True)
    assert (ecp.windows_authentication, ecp.digest_authentication) == (False, False)
    digest = run(services, 'Set-EcpVirtualDirectory "EX-FL1\\ecp*" -DigestAuthentication $true')
    assert "can't be enabled together with FormsAuthentication" in digest.errors[0]


def test_pop_and_imap_settings(services: ExchangeServices, directory: Directory) -> None:
    shown = run(services, "Get-PopSettings").output
    assert has_row(shown, "{0.0.0.0:110}", "{0.0.0.0:995}", "SecureLogin", "ex-ny1.contoso.com")
    run(services, "Set-PopSettings -LoginType PlainTextLogin")
    assert directory.require(PopImapSettings, "EX-NY1\\POP3").login_type == "PlainTextLogin"
    run(services, "Get-ImapSettings -Server EX-FL1 | Set-ImapSettings -ProxyTargetPort 1143")
    assert directory.require(PopImapSettings, "EX-FL1\\IMAP4").proxy_target_port == 1143
    bad = run(services, "Set-ImapSettings -SSLBindings 0.0.0.0:99999")
    assert "The value of property 'Bindings' is not valid" in bad.errors[0]


def test_pop_and_imap_connection_limits_and_timeouts(
    services: ExchangeServices, directory: Directory
) -> None:
    shown = listed(run(services, "Get-ImapSettings | Format-List").output)
    assert shown["MaxConnections"] == "2000"
    assert shown["MaxConnectionFromSingleIP"] == "2000"
    assert shown["MaxConnectionsPerUser"] == "16"
    assert shown["PreAuthenticatedConnectionTimeout"] == "00:01:00"
    assert shown["AuthenticatedConnectionTimeout"] == "00:30:00"
    run(
        services,
        "Set-PopSettings -MaxConnectionFromSingleIP 50 -PreAuthenticatedConnectionTimeout 00:00:20",
    )
    pop = directory.require(PopImapSettings, "EX-NY1\\POP3")
    assert pop.max_connection_from_single_ip == 50
    assert pop.pre_authenticated_connection_timeout.total_seconds() == 20
    # Exchange 2010's ranges: 1-25000 connections, 1-200 s before sign-in.
    assert run(services, "Set-ImapSettings -MaxConnectionsPerUser 0").errors
    assert run(services, "Set-ImapSettings -PreAuthenticatedConnectionTimeout 00:05:00").errors
    assert directory.require(PopImapSettings, "EX-NY1\\IMAP4").max_connections_per_user == 16


def test_locked_out_accounts_are_found_and_unlocked(
    services: ExchangeServices, directory: Directory
) -> None:
    lockouts = AccountLockouts(directory)
    assert run(services, "Search-ADAccount -LockedOut").output.strip() == ""
    for _ in range(lockouts.policy.threshold):
        lockouts.failed("adam")
    lockouts.failed("bob")  # one wrong password is no lockout
    found = run(services, "Search-ADAccount -LockedOut").output
    rows = [line for line in found.splitlines() if line.strip()][2:]
    assert len(rows) == 1 and re.match(r"Adam Fl\s+adam\s+True\s+5\s+\d", rows[0]), found
    result = run(services, "Search-ADAccount -LockedOut | Unlock-ADAccount")
    assert not result.errors
    assert lockouts.locked_for("adam") == 0
    assert run(services, "Unlock-ADAccount nobody").errors


# --------------------------------------------------------------------- mailboxes


def test_new_mailbox_stores_only_a_hash(services: ExchangeServices, directory: Directory) -> None:
    result = run(
        services,
        "New-Mailbox -Name 'Frank Fl' -Alias frank -Database FL-DB1 -Password "
        "(ConvertTo-SecureString -String 'S3cret!pw' -AsPlainText -Force)",
    )
    assert not result.failed, result.output
    assert has_row(result.output, "Frank Fl", "frank", "ex-fl1", "unlimited")
    frank = directory.require(Mailbox, "frank")
    assert frank.primary_smtp_address == "frank@contoso.com"
    assert frank.password_hash is not None and "S3cret!pw" not in frank.password_hash
    assert verify_password("S3cret!pw", frank.password_hash)
    plain = run(services, "New-Mailbox -Name Eve -Password 'clear'")
    assert 'to type "System.Security.SecureString"' in plain.errors[0]
    assert directory.get(Mailbox, "Eve") is None


def test_mailbox_addresses_are_unique(services: ExchangeServices, directory: Directory) -> None:
    taken = run(
        services,
        "$pw = ConvertTo-SecureString 'x' -AsPlainText -Force; "
        "New-Mailbox -Name Adam2 -PrimarySmtpAddress adam@contoso.com -Password $pw",
    )
    assert taken.errors == (
        'New-Mailbox : The proxy address "SMTP:adam@contoso.com" is already being used by the '
        'proxy addresses or LegacyExchangeDN of "contoso.com/Users/Adam Fl". Please choose '
        "another proxy address.",
    )
    run(services, 'Set-Mailbox adam -EmailAddresses @{Add="smtp:adam.f@contoso.com"}')
    assert directory.require(Mailbox, "adam").email_addresses == ["adam.f@contoso.com"]
    shown = run(services, "Get-Mailbox adam.f@contoso.com | Format-List EmailAddresses").output
    assert "{SMTP:adam@contoso.com, smtp:adam.f@contoso.com}" in shown
    clash = run(services, "Set-Mailbox bob -PrimarySmtpAddress adam.f@contoso.com")
    assert "is already being used" in clash.errors[0]


def test_get_mailbox_and_databases(services: ExchangeServices, directory: Directory) -> None:
    directory.put(
        Mailbox(
            alias="SystemMailbox-0000",
            display_name="SystemMailbox-0000",
            primary_smtp_address="systemmailbox-0000@contoso.com",
            database="NY-DB1",
        )
    )
    mailboxes = run(services, "Get-Mailbox").output
    assert has_row(mailboxes, "Larry Legacy", "larry", "ex2003", "unlimited")
    assert "SystemMailbox" not in mailboxes
    assert "adam" in run(services, "Get-Mailbox -Server EX-FL1").output
    assert "alice" not in run(services, "Get-Mailbox -Server EX-FL1").output
    databases = run(services, "Get-MailboxDatabase").output
    assert has_row(databases, "NY-DB1", "EX-NY1", "False", "None")
    assert "EX2003-MBX" not in databases
    assert "EX2003-MBX" in run(services, "Get-MailboxDatabase -IncludePreExchange2010").output


# -------------------------------------------------------------------- discovery


ISSUE_CMDLETS = [
    "Get-ReceiveConnector",
    "Set-ReceiveConnector",
    "New-ReceiveConnector",
    "Remove-ReceiveConnector",
    "Get-TransportServer",
    "Set-TransportServer",
    "Get-ExchangeServer",
    "Get-AdSite",
    "Get-AdSiteLink",
    "Set-AdSiteLink",
    "Get-MailboxDatabase",
    "Get-Mailbox",
    "New-Mailbox",
    "Set-Mailbox",
    "Get-OwaVirtualDirectory",
    "Set-OwaVirtualDirectory",
    "Get-EcpVirtualDirectory",
    "Set-EcpVirtualDirectory",
    "Get-ActiveSyncVirtualDirectory",
    "Set-ActiveSyncVirtualDirectory",
    "Get-WebServicesVirtualDirectory",
    "Set-WebServicesVirtualDirectory",
    "Get-PopSettings",
    "Set-PopSettings",
    "Get-ImapSettings",
    "Set-ImapSettings",
    "Get-Queue",
    "Get-Message",
    "Retry-Queue",
    "Suspend-Queue",
    "Resume-Queue",
    "Remove-Message",
    "Get-MessageTrackingLog",
    "Test-Mailflow",
    "Test-SmtpConnectivity",
    "Get-Service",
    "Restart-Service",
    "Test-NetConnection",
    "Search-ADAccount",
    "Unlock-ADAccount",
]


def test_get_command_lists_every_cmdlet_of_the_issue(services: ExchangeServices) -> None:
    result = run(services, "Get-Command | ForEach-Object { $_.Name }")
    listed = set(result.output.split())
    assert [c for c in ISSUE_CMDLETS if c not in listed] == []
    queue = run(services, "Get-Command *-Queue").output
    assert all(n in queue for n in ("Get-Queue", "Retry-Queue", "Suspend-Queue", "Resume-Queue"))


def test_get_help_explains_parameters_and_values(services: ExchangeServices) -> None:
    text = run(
        services, "Get-Help Set-TransportServer -Parameter IntraOrgConnectorProtocolLoggingLevel"
    ).output
    assert "IntraOrgProtocolLoggingLevel" in text  # the alias the seed types
    assert "None" in text and "Verbose" in text
    detailed = run(services, "Get-Help Set-ReceiveConnector -Detailed").output
    assert "-AuthMechanism" in detailed and "-RemoteIPRanges" in detailed


def test_tab_completion_of_cmdlets_parameters_and_enum_values() -> None:
    registry = exchange_registry()

    def texts(line: str) -> list[str]:
        return [c.text for c in complete(line, registry)]

    assert texts("Get-TransportS") == ["Get-TransportServer"]
    assert texts("Get-TransportServer | Set-TransportServer –IntraOrgC") == [
        "–IntraOrgConnectorProtocolLoggingLevel"
    ]
    assert texts("Set-TransportServer EX-NY1 -IntraOrgProtocolLoggingLevel Verb") == ["Verbose"]
    assert texts("Set-ReceiveConnector x -AuthMechanism Tls,Exch") == ["ExchangeServer"]
    assert texts("Set-ReceiveConnector x -PermissionGroups Anon") == ["AnonymousUsers"]
    assert texts("Set-OwaVirtualDirectory x -CrossSiteRedirectType S") == ["Silent"]
