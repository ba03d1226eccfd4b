"""The troubleshooter names the 2007-to-2007 fault: Windows authentication off on the target.

A lab folder without running servers: the directory of examples/legacy.yaml,
changed as IIS Manager (``sitemail iis``) or the shell changes it, read by the
live troubleshooter.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sitemail.diagnose.findings import Finding, FixKind, Severity
from sitemail.diagnose.live import troubleshoot_live
from sitemail.diagnose.rules_exchange2007 import CAUSE
from sitemail.iis.appcmd import run_appcmd
from sitemail.iis.server_view import IisServerView
from sitemail.org.directory import Directory, open_directory
from sitemail.org.model import Server, VirtualDirectory
from sitemail.org.topology import Topology

LEGACY = Path(__file__).resolve().parents[3] / "examples" / "legacy.yaml"
BR_OWA = "EX07-BR\\owa (Default Web Site)"


def findings(lab_dir: Path) -> list[Finding]:
    report = troubleshoot_live(lab_dir, probes=False)
    return [f for f in report.findings if f.cause == CAUSE]


@pytest.fixture
def directory(tmp_path: Path) -> Iterator[Directory]:
    d: Directory = open_directory(str(tmp_path / "directory.db"))
    with d.transaction():
        for obj in Topology.load(LEGACY).objects(hash_passwords=False):
            d.put(obj)
    yield d
    d.close()


def set_vdir(d: Directory, identity: str, **changes: object) -> None:
    v = d.require(VirtualDirectory, identity)
    d.put(v.model_copy(update=changes))


def test_windows_authentication_off_in_iis_manager_on_the_branch_cas(
    tmp_path: Path, directory: Directory
) -> None:
    assert findings(tmp_path) == []  # legacy.yaml has it on
    iis = IisServerView(directory, directory.require(Server, "EX07-BR"), tmp_path)
    run_appcmd(
        iis,
        'set config "Default Web Site/owa" -section:windowsAuthentication /enabled:false '
        "/commit:apphost",
    )
    (off,) = findings(tmp_path)
    assert off.severity is Severity.ERROR and off.subject == BR_OWA
    assert off.title == f"Integrated Windows authentication is off on {BR_OWA}"
    # Both Internet-facing front ends proxy BRANCH's OWA users there.
    assert off.summary.startswith("EX07-HQ, EX2010 proxy Outlook Web Access")
    assert "https://ex07-br.contoso.com/owa" in off.summary
    iis_fix, shell_fix = off.fixes
    assert iis_fix.lines == (
        'sitemail iis EX07-BR set config "Default Web Site/owa" '
        "-section:windowsAuthentication /enabled:true /commit:apphost",
    )
    assert shell_fix.kind is FixKind.SHELL
    assert shell_fix.lines == (
        f'Set-OwaVirtualDirectory -Identity "{BR_OWA}" -WindowsAuthentication $true',
    )


def test_an_internet_facing_branch_is_redirected_to_but_ews_still_proxies(
    tmp_path: Path, directory: Directory
) -> None:
    for kind in ("owa", "EWS"):
        set_vdir(directory, f"EX07-BR\\{kind} (Default Web Site)", windows_authentication=False)
    set_vdir(directory, BR_OWA, external_url="https://branch.contoso.com/owa")
    (ews,) = findings(tmp_path)
    assert ews.subject == "EX07-BR\\EWS (Default Web Site)"
    assert ews.fixes[1].lines == (
        'Set-WebServicesVirtualDirectory -Identity "EX07-BR\\EWS (Default Web Site)" '
        "-WindowsAuthentication $true",
    )


def test_a_2007_site_nobody_proxies_to_is_no_finding(tmp_path: Path, directory: Directory) -> None:
    set_vdir(directory, BR_OWA, windows_authentication=False)
    # Without an ExternalUrl on any OWA there is no Internet-facing front end to proxy.
    for server in ("EX2010", "EX07-HQ"):
        set_vdir(directory, f"{server}\\owa (Default Web Site)", external_url=None)
    assert findings(tmp_path) == []
