"""Contract tests every directory backend must pass (the LDAP backend will run them too)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest

from sitemail.org.directory import Directory, ObjectExists, ObjectNotFound, open_directory
from sitemail.org.model import ReceiveConnector, Server, ServerRole
from sitemail.org.topology import Topology

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(params=["sqlite"])
def directory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Directory]:
    d = open_directory(str(tmp_path / "directory.db"))
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


def test_seed_topology_loads_into_a_directory(directory: Directory) -> None:
    topo = Topology.load(EXAMPLES / "seed.yaml")
    with directory.transaction():
        for obj in topo.objects(hash_passwords=False):
            directory.create(obj)
    fl = directory.require(ReceiveConnector, "EX-FL1\\Default EX-FL1")
    assert fl.bindings == ["0.0.0.0:25"]


def _writer(path: str, start: int) -> None:
    d = open_directory(path)
    for i in range(start, start + 25):
        d.put(_server(f"S{i}"))
    d.close()


def test_many_processes_write_at_once_without_losing_a_write(tmp_path: Path) -> None:
    path = str(tmp_path / "directory.db")
    open_directory(path).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, i * 100)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    d = open_directory(path)
    assert len(d.list(Server)) == 100
    assert d.change_counter() == 100
    d.close()
