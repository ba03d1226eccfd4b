"""The troubleshooter names the System Attendant trap when proxying to Exchange 2003 fails.

A lab folder without running servers: the directory (from the seed), EX2003's
metabase and application log as the System Attendant and ``sitemail iis``
leave them, read by the live troubleshooter.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sitemail.clock import ManualClock
from sitemail.diagnose.findings import Finding, Severity
from sitemail.diagnose.live import troubleshoot_live
from sitemail.diagnose.rules_legacy import CAUSE
from sitemail.exchange2003.system_attendant import SystemAttendantService
from sitemail.iis.appcmd import run_appcmd
from sitemail.iis.esm import EsmView
from sitemail.iis.server_view import IisServerView
from sitemail.org.directory import Directory, open_directory
from sitemail.org.model import Server
from sitemail.org.topology import Topology
from sitemail.server.context import ProcessContext

SEED = Path(__file__).resolve().parents[3] / "examples" / "seed.yaml"
SET_IWA_ON = (
    'set config "Default Web Site/Microsoft-Server-ActiveSync" '
    "-section:windowsAuthentication /enabled:true"
)


def legacy_findings(lab_dir: Path) -> list[Finding]:
    report = troubleshoot_live(lab_dir, probes=False)
    return [f for f in report.findings if f.cause == CAUSE]


def test_off_in_esm_then_set_in_iis_only_then_reverted_then_fixed_in_esm(tmp_path: Path) -> None:
    d: Directory = open_directory(str(tmp_path / "directory.db"))
    with d.transaction():
        for obj in Topology.load(SEED).objects(hash_passwords=False):
            d.put(obj)
    home, clock = tmp_path / "servers" / "EX2003", ManualClock()
    ctx = ProcessContext("EX2003", "NY", "127.0.0.1", d, "", tmp_path, home, tmp_path, clock=clock)
    sa = SystemAttendantService(ctx)
    ex2003 = d.require(Server, "EX2003")
    esm, iis = EsmView(d, ex2003, home), IisServerView(d, ex2003, home)
    try:
        sa.tick()
        assert legacy_findings(tmp_path) == []  # the seed's EX2003 has it on
        esm.run("set Microsoft-Server-ActiveSync windows off")
        sa.tick()
        (off,) = legacy_findings(tmp_path)
        assert off.severity is Severity.ERROR and off.title.endswith(
            "is off on EX2003's Microsoft-Server-ActiveSync"
        )
        assert off.fixes[0].lines[0] == (
            "sitemail esm EX2003 set Microsoft-Server-ActiveSync windows on"
        )
        assert "not IIS Manager" in off.fixes[0].comment
        run_appcmd(iis, SET_IWA_ON)
        (iis_only,) = legacy_findings(tmp_path)
        assert iis_only.severity is Severity.WARNING
        assert "IIS Manager only" in iis_only.title and "every 15 minutes" in iis_only.summary
        assert any("AuthFlags AuthBasic | AuthNTLM" in e.text for e in iis_only.evidence)
        clock.advance(timedelta(minutes=15))
        assert sa.tick()
        (reverted,) = legacy_findings(tmp_path)
        assert reverted.severity is Severity.ERROR
        assert reverted.title.startswith("The System Attendant reverted")
        assert any("MSExchangeSA event 1005" in e.text for e in reverted.evidence)
        esm.run("set Microsoft-Server-ActiveSync windows on")
        sa.tick()
        assert legacy_findings(tmp_path) == []
    finally:
        d.close()
