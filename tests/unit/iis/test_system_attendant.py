"""Exchange 2003's System Attendant over the IIS metabase, driven by a manual clock.

The seed's warning played in process: a change made only in IIS (``sitemail
iis EX2003 set config ...``) is what the 2003 server serves until the next
DS2MB pass, which puts back the directory's (ESM's) setting and writes the
application log; a change made through ESM stays.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from tests.unit.iis.conftest import SEED

from sitemail.clock import ManualClock
from sitemail.exchange2003.event_log import EventLog
from sitemail.exchange2003.metabase import IisAuth, Metabase, MetabaseError
from sitemail.exchange2003.system_attendant import (
    EVENT_ID_METABASE_UPDATED,
    EVENT_SOURCE,
    SystemAttendantService,
)
from sitemail.iis.appcmd import run_appcmd
from sitemail.iis.esm import EsmView
from sitemail.iis.server_view import IisServerView
from sitemail.org.directory import Directory, open_directory
from sitemail.org.model import LabSettings, Server, VirtualDirectory
from sitemail.org.topology import Topology
from sitemail.server.context import ProcessContext

EAS = "EX2003\\Microsoft-Server-ActiveSync (Default Web Site)"
SET_IWA = (
    'set config "Default Web Site/Microsoft-Server-ActiveSync" '
    "-section:windowsAuthentication /enabled:{}"
)


@pytest.fixture
def directory(seed_directory: Directory) -> Directory:
    return seed_directory


def context(directory: Directory, home: Path, clock: ManualClock) -> ProcessContext:
    return ProcessContext(
        name="EX2003",
        site="NY",
        address="127.0.0.1",
        directory=directory,
        directory_url="",
        base_dir=home.parent,
        home=home,
        pki_dir=home.parent / "pki",
        clock=clock,
    )


def iis_windows(directory: Directory, home: Path) -> bool:
    """What the 2003 web service applies: the metabase's Integrated Windows authentication."""
    return Metabase(home).effective(directory, "EX2003")["Microsoft-Server-ActiveSync"].windows


def test_iis_only_change_lasts_until_the_next_pass_and_esm_change_stays(
    directory: Directory, tmp_path: Path
) -> None:
    home, clock = tmp_path / "EX2003", ManualClock()
    sa = SystemAttendantService(context(directory, home, clock))
    esm = EsmView(directory, directory.require(Server, "EX2003"), home)
    iis = IisServerView(directory, directory.require(Server, "EX2003"), home)
    # ESM turns Integrated Windows authentication off; the SA copies it to IIS at once.
    assert (
        "written to Active Directory" in esm.run("set Microsoft-Server-ActiveSync windows off")[0]
    )
    sa.tick()
    assert not iis_windows(directory, home)
    # The administrator turns it on in IIS Manager only: served at once...
    assert run_appcmd(iis, SET_IWA.format("true")).ok
    assert iis_windows(directory, home)
    assert "IIS applies Basic, Integrated Windows now" in esm.show("Microsoft-Server-ActiveSync")
    clock.advance(timedelta(minutes=14, seconds=59))
    assert sa.tick() == [] and iis_windows(directory, home)
    # ...until the pass 15 minutes after the last one (the default interval) puts it back.
    clock.advance(timedelta(seconds=1))
    (change,) = sa.tick()
    assert change.leaf == "Microsoft-Server-ActiveSync" and change.reverted
    assert change.before == IisAuth(False, True, True) and change.after == IisAuth(
        False, True, False
    )
    assert not iis_windows(directory, home)
    (event,) = EventLog(home).read()
    assert (event.source, event.event_id) == (EVENT_SOURCE, EVENT_ID_METABASE_UPDATED)
    assert "/LM/W3SVC/1/ROOT/Microsoft-Server-ActiveSync" in event.description
    assert "AuthBasic | AuthNTLM" in event.description and event.time == clock.now()
    assert "Event ID:\t1005" in esm.event_text()
    # Through ESM it reaches IIS at the next look (the directory changed) and stays.
    esm.run("set Microsoft-Server-ActiveSync windows on")
    (copied,) = sa.tick()
    assert copied.after.windows and not copied.reverted and iis_windows(directory, home)
    clock.advance(timedelta(hours=1))
    assert sa.tick() == [] and iis_windows(directory, home)
    # Only the put-back was logged: a change made in ESM reaches IIS quietly.
    assert len(EventLog(home).read()) == 1


def test_the_first_pass_writes_the_metabase_without_events_and_the_interval_is_a_setting(
    directory: Directory, tmp_path: Path
) -> None:
    home, clock = tmp_path / "EX2003", ManualClock()
    directory.put(LabSettings(system_attendant_interval=timedelta(seconds=30)))
    sa = SystemAttendantService(context(directory, home, clock))
    assert Metabase(home).read() is None
    assert sa.tick() == []
    written = Metabase(home).read()
    assert written is not None and set(written) == {
        "Exchange",
        "Public",
        "Microsoft-Server-ActiveSync",
        "OMA",
    }
    assert written["OMA"] == IisAuth(False, True, False)
    text = (home / "inetsrv" / "MetaBase.xml").read_text()
    assert 'Location="/LM/W3SVC/1/ROOT/OMA" AuthFlags="AuthBasic"' in text
    assert EventLog(home).read() == []
    run_appcmd(
        IisServerView(directory, directory.require(Server, "EX2003"), home), SET_IWA.format("false")
    )
    clock.advance(30)
    assert [c.leaf for c in sa.tick()] == ["Microsoft-Server-ActiveSync"]


def test_a_damaged_metabase_is_rewritten_from_the_directory(
    directory: Directory, tmp_path: Path
) -> None:
    home = tmp_path / "EX2003"
    (home / "inetsrv").mkdir(parents=True)
    (home / "inetsrv" / "MetaBase.xml").write_text("<configuration")
    with pytest.raises(MetabaseError, match=r"MetaBase\.xml"):
        Metabase(home).read()
    SystemAttendantService(context(directory, home, ManualClock())).tick()
    assert iis_windows(directory, home)


def test_esm_refuses_later_servers_and_unknown_input(directory: Directory, tmp_path: Path) -> None:
    from sitemail.iis.console_cli import ConsoleCommandError

    with pytest.raises(ConsoleCommandError, match="Exchange 2010 server"):
        EsmView(directory, directory.require(Server, "EX-NY1"), tmp_path)
    esm = EsmView(directory, directory.require(Server, "EX2003"), tmp_path / "EX2003")
    text, ok = esm.run("set Microsoft-Server-ActiveSync digest on")
    assert not ok and "use anonymous, basic or windows" in text
    text, ok = esm.run("set OWA basic on")
    assert not ok and "has no virtual directory 'OWA'" in text
    text, ok = esm.run("set OMA basic maybe")
    assert not ok and "say on or off" in text
    tree, ok = esm.run("show")
    assert ok and "Exchange Virtual Server" in tree
    assert "Version 6.5 (Build 7638.2" in tree
    assert "OMA                           Basic\n" in tree
    esm.run("set OMA anonymous on")
    vdir = directory.require(VirtualDirectory, "EX2003\\OMA (Default Web Site)")
    assert vdir.anonymous_authentication


def test_the_topology_sets_the_interval_for_the_lab(tmp_path: Path) -> None:
    from sitemail.lab.supervisor import _seed_directory, plan_for
    from sitemail.org.topology import TopologyError

    text = SEED.read_text() + "\nlab:\n  system_attendant_interval: 60\n"
    topo = Topology.parse(text, "legacy.yaml")
    d = open_directory(str(tmp_path / "directory.db"))
    try:
        _seed_directory(d, topo, plan_for(topo), tmp_path, 0)
        settings = d.require(LabSettings, "lab")
        assert settings.system_attendant_interval == timedelta(minutes=1)
    finally:
        d.close()
    # On a 2003 server the eas key is its Microsoft-Server-ActiveSync.
    text = SEED.read_text().replace(
        "    databases: [EX2003-MBX]\n",
        "    databases: [EX2003-MBX]\n    virtual_directories:\n"
        "      eas: {windows_authentication: false}\n",
    )
    objects = Topology.parse(text, "t.yaml").objects(hash_passwords=False)
    iwa = {
        o.identity: o.windows_authentication
        for o in objects
        if isinstance(o, VirtualDirectory) and o.server == "EX2003"
    }
    assert iwa[EAS] is False and iwa["EX2003\\Exchange (Default Web Site)"] is True
    with pytest.raises(TopologyError, match="system_attendant_interval"):
        Topology.parse(SEED.read_text() + "\nlab:\n  system_attendant_interval: 0\n", "bad.yaml")


def test_ex2003_runs_the_system_attendant_first_and_it_copies_at_start(
    directory: Directory, tmp_path: Path
) -> None:
    import asyncio

    from sitemail.serve import _service, _services_for
    from sitemail.server.watcher import DirectoryWatcher

    ex2003 = directory.require(Server, "EX2003")
    assert _services_for(ex2003)[0] == "MSExchangeSA"
    ctx = context(directory, tmp_path / "EX2003", ManualClock())
    sa = _service("MSExchangeSA", ctx, ex2003, DirectoryWatcher(directory))
    assert isinstance(sa, SystemAttendantService)
    assert sa.display_name == "Microsoft Exchange System Attendant"

    async def cycle() -> None:
        await sa.start()
        assert Metabase(ctx.home).read() is not None  # the pass at start, before IIS
        await sa.stop()

    asyncio.run(cycle())
