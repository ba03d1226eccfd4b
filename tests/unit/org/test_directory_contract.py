"""Contract tests every directory backend must pass: the embedded SQLite file and OpenLDAP.

The LDAP runs use one real slapd for the module (sitemail's schema, a free
loopback port) and a fresh base DN per test.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.slapd import Slapd

from sitemail.org.directory import Directory, ObjectExists, ObjectNotFound, open_directory
from sitemail.org.lockout import AccountLockout
from sitemail.org.model import (
    ReceiveConnector,
    Server,
    ServerRole,
    VirtualDirectory,
    VirtualDirectoryKind,
)
from sitemail.org.topology import Topology

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(scope="module")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    server = Slapd(tmp_path_factory.mktemp("slapd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "ldap"])
def directory_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of a fresh, empty directory of each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "directory.db")
    server: Slapd = request.getfixturevalue("slapd")
    return server.url(server.new_base())


@pytest.fixture
def directory(directory_url: str) -> Iterator[Directory]:
    d = open_directory(directory_url)
    yield d
    d.close()


def _server(name: str = "EX-NY1") -> Server:
    return Server(
        name=name,
        fqdn=f"{name}.contoso.com",
        site="NY",
        roles=[ServerRole.HUB_TRANSPORT, ServerRole.MAILBOX],
    )


def test_put_get_roundtrip_keeps_every_field(directory: Directory) -> None:
    rc = ReceiveConnector(server="EX-FL1", name="Default EX-FL1", max_hop_count=40)
    directory.put(rc)
    got = directory.get(ReceiveConnector, "EX-FL1\\Default EX-FL1")
    assert got == rc


def test_identities_are_case_insensitive_like_active_directory(directory: Directory) -> None:
    directory.put(_server())
    assert directory.get(Server, "ex-ny1") is not None
    with pytest.raises(ObjectExists):
        directory.create(_server("ex-ny1"))


def test_create_refuses_duplicates_and_delete_refuses_missing(directory: Directory) -> None:
    directory.create(_server())
    with pytest.raises(ObjectExists, match="already exists"):
        directory.create(_server())
    directory.delete(Server, "EX-NY1")
    with pytest.raises(ObjectNotFound, match="couldn't be found"):
        directory.delete(Server, "EX-NY1")
    with pytest.raises(ObjectNotFound):
        directory.require(Server, "EX-NY1")


def test_list_is_per_kind_and_ordered(directory: Directory) -> None:
    for name in ["EX-FL1", "EX-NY1", "EX2003"]:
        directory.put(_server(name))
    directory.put(ReceiveConnector(server="EX-FL1", name="Default EX-FL1"))
    assert [s.name for s in directory.list(Server)] == ["EX-FL1", "EX-NY1", "EX2003"]
    assert len(directory.list(ReceiveConnector)) == 1


def test_every_write_moves_the_change_counter(directory: Directory) -> None:
    start = directory.change_counter()
    directory.put(_server())
    rc = ReceiveConnector(server="EX-NY1", name="Default EX-NY1")
    directory.put(rc)
    directory.delete(ReceiveConnector, rc.identity)
    changes = directory.changes_since(start)
    assert [(c.kind, c.op) for c in changes] == [
        ("Server", "put"),
        ("ReceiveConnector", "put"),
        ("ReceiveConnector", "delete"),
    ]
    assert directory.change_counter() == changes[-1].counter


def test_transaction_is_all_or_nothing(directory: Directory) -> None:
    with pytest.raises(RuntimeError), directory.transaction():
        directory.put(_server("A"))
        raise RuntimeError("boom")
    assert directory.get(Server, "A") is None


def test_a_transaction_reads_its_own_writes_and_others_see_them_at_commit(
    directory_url: str,
) -> None:
    writer, reader = open_directory(directory_url), open_directory(directory_url)
    writer.put(_server("OLD"))
    start = reader.change_counter()
    with writer.transaction():
        writer.create(_server("NEW"))
        writer.delete(Server, "OLD")
        assert writer.get(Server, "new") is not None
        assert [s.name for s in writer.list(Server)] == ["NEW"]
        with pytest.raises(ObjectExists):
            writer.create(_server("NEW"))
        assert [s.name for s in reader.list(Server)] == ["OLD"]
        assert reader.changes_since(start) == []
    assert [s.name for s in reader.list(Server)] == ["NEW"]
    assert [(c.identity, c.op) for c in reader.changes_since(start)] == [
        ("NEW", "put"),
        ("OLD", "delete"),
    ]
    writer.close()
    reader.close()


def test_objects_are_independent_deleting_a_server_keeps_its_connectors(
    directory: Directory,
) -> None:
    directory.put(_server("EX-NY1"))
    rc = ReceiveConnector(server="EX-NY1", name="Default EX-NY1")
    directory.put(rc)
    directory.delete(Server, "EX-NY1")
    assert directory.get(Server, "EX-NY1") is None
    assert directory.list(Server) == []
    assert directory.list(ReceiveConnector) == [rc]
    directory.put(_server("EX-NY1"))
    assert [s.name for s in directory.list(Server)] == ["EX-NY1"]


def test_put_replaces_the_whole_object_even_its_type(directory: Directory) -> None:
    vdir = VirtualDirectory(
        server="EX-NY1",
        type=VirtualDirectoryKind.OWA,
        name="web (Default Web Site)",
        external_url="https://mail.contoso.com/owa",
    )
    directory.put(vdir)
    changed = vdir.model_copy(update={"type": VirtualDirectoryKind.ECP, "external_url": None})
    directory.put(changed)
    assert directory.require(VirtualDirectory, vdir.identity) == changed


def test_names_with_characters_ldap_escapes_round_trip(directory: Directory) -> None:
    names = ["Relay, partners + #1", " lead", 'quote"<x>;=\\back', "Ünïcode"]
    for name in names:
        directory.put(ReceiveConnector(server="EX-NY1", name=name))
    got = [rc.name for rc in directory.list(ReceiveConnector)]
    assert sorted(got) == sorted(names)
    for name in names:
        assert directory.get(ReceiveConnector, f"EX-NY1\\{name}") is not None
    assert directory.get(ReceiveConnector, "no backslash") is None


def test_seed_topology_loads_into_a_directory(directory: Directory) -> None:
    topo = Topology.load(EXAMPLES / "seed.yaml")
    with directory.transaction():
        for obj in topo.objects(hash_passwords=False):
            directory.create(obj)
    fl = directory.require(ReceiveConnector, "EX-FL1\\Default EX-FL1")
    assert fl.bindings == ["0.0.0.0:25"]


def _writer(url: str, start: int) -> None:
    d = open_directory(url)
    for i in range(start, start + 25):
        d.put(_server(f"S{i}"))
        # A read-modify-write, as every wrong password does: no two writers may both read
        # the same count and write the same next one.
        with d.transaction():
            record = d.get(AccountLockout, "adam") or AccountLockout(user="adam")
            record.bad_pwd_count += 1
            d.put(record)
    d.close()


def test_many_processes_write_at_once_without_losing_a_write(directory_url: str) -> None:
    open_directory(directory_url).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(directory_url, i * 100)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    d = open_directory(directory_url)
    assert len(d.list(Server)) == 100
    assert d.require(AccountLockout, "adam").bad_pwd_count == 100
    assert d.change_counter() == 200
    d.close()
