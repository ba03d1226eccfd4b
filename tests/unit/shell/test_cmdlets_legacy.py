"""The 2010 shell's view of Exchange 2003 and 2007 servers (issue 18 item 4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.shell.test_cmdlets_configuration import has_row, listed, run

from sitemail.org.directory import Directory, open_directory
from sitemail.org.model import ExchangeVersion, Server, ServerRole
from sitemail.org.topology import Topology
from sitemail.shell.cmdlets.admin_client import AdminClient
from sitemail.shell.cmdlets.services import ExchangeServices

SEED = Path(__file__).resolve().parents[3] / "examples" / "seed.yaml"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ExchangeServices]:
    d: Directory = open_directory(str(tmp_path / "directory.db"))
    with d.transaction():
        for obj in Topology.load(SEED).objects(hash_passwords=False):
            d.put(obj)
        d.put(
            Server(
                name="EX2007",
                fqdn="ex2007.contoso.com",
                site="FL",
                version=ExchangeVersion.E2007,
                roles=[ServerRole.MAILBOX, ServerRole.CLIENT_ACCESS, ServerRole.HUB_TRANSPORT],
            )
        )
    yield ExchangeServices(d, tmp_path, AdminClient(tmp_path / "pki"), "EX-NY1")
    d.close()


def test_get_exchange_server_shows_2003_and_2007_with_their_versions(
    services: ExchangeServices,
) -> None:
    out = run(services, "Get-ExchangeServer").output
    assert has_row(out, "EX2003", "None", "Standard", "Version 6.5 (Build 7638.2: Service Pack 2)")
    assert has_row(
        out,
        "EX2007",
        "contoso.com/Configuration/Sites/FL",
        "Mailbox, ClientAccess, HubTransport",
        "Standard",
        "Version 8.3 (Build 83.6)",
    )
    ex2003 = listed(run(services, "Get-ExchangeServer EX2003 | Format-List").output)
    assert ex2003["IsExchange2007OrLater"] == "False" and ex2003["ServerRole"] == "None"


def test_owa_virtual_directories_of_2003_are_legacy_and_activesync_ones_are_not_shown(
    services: ExchangeServices,
) -> None:
    out = run(services, "Get-OwaVirtualDirectory | Format-Table Name,Server,OwaVersion").output
    assert has_row(out, "Exchange (Default Web Site)", "EX2003", "Exchange2003or2000")
    assert has_row(out, "Public (Default Web Site)", "EX2003", "Exchange2003or2000")
    assert has_row(out, "owa (Default Web Site)", "EX-NY1", "Exchange2010")
    exchange = listed(
        run(services, 'Get-OwaVirtualDirectory "EX2003\\Exchange*" | Format-List').output
    )
    assert exchange["MetabasePath"] == "IIS://ex2003.contoso.com/W3SVC/1/ROOT/Exchange"
    assert exchange["Exchange2003Url"] == "" and exchange["CrossSiteRedirectType"] == ""
    assert exchange["InternalAuthenticationMethods"] == "{Basic, Ntlm, WindowsIntegrated}"
    eas = run(services, "Get-ActiveSyncVirtualDirectory").output
    assert "EX-NY1" in eas and "EX2003" not in eas
    refused = run(
        services,
        'Set-ActiveSyncVirtualDirectory "EX2003\\Microsoft-Server-ActiveSync*" '
        "-WindowsAuthEnabled $true",
    )
    assert refused.errors


@pytest.fixture
def legacy_services(tmp_path: Path) -> Iterator[ExchangeServices]:
    """The organization of examples/legacy.yaml (Exchange 2007 in both sites, and EX2010)."""
    d: Directory = open_directory(str(tmp_path / "directory.db"))
    with d.transaction():
        for obj in Topology.load(SEED.with_name("legacy.yaml")).objects(hash_passwords=False):
            d.put(obj)
    yield ExchangeServices(d, tmp_path, AdminClient(tmp_path / "pki"), "EX2010")
    d.close()


def test_a_2007_owa_virtual_directory_has_no_2010_settings(
    legacy_services: ExchangeServices,
) -> None:
    br = listed(
        run(legacy_services, 'Get-OwaVirtualDirectory "EX07-BR\\owa*" | Format-List').output
    )
    assert br["OwaVersion"] == "Exchange2007" and br["WindowsAuthentication"] == "True"
    assert br["CrossSiteRedirectType"] == "" and br["LegacyRedirectType"] == ""
    refused = run(
        legacy_services,
        'Set-OwaVirtualDirectory "EX07-BR\\owa*" -CrossSiteRedirectType Silent',
    )
    assert "CrossSiteRedirectType can't be used" in refused.output
    assert "Exchange 2007" in refused.output
    # Exchange2003Url is 2007's too, and the 2010 switches of 2007's settings work.
    done = run(
        legacy_services,
        'Set-OwaVirtualDirectory "EX07-BR\\owa*" -WindowsAuthentication $false '
        "-Exchange2003Url https://ex2003.contoso.com/exchange",
    )
    assert not done.failed, done.output
    br = listed(
        run(legacy_services, 'Get-OwaVirtualDirectory "EX07-BR\\owa*" | Format-List').output
    )
    assert br["WindowsAuthentication"] == "False"
    assert br["Exchange2003Url"] == "https://ex2003.contoso.com/exchange"
    ecp = run(legacy_services, "Get-EcpVirtualDirectory").output
    assert "EX2010" in ecp and "EX07" not in ecp  # ECP came with 2010
