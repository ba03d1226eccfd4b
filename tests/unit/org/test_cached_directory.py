"""A server's read cache in front of the directory: fresh objects, changes seen within its bound."""

from __future__ import annotations

from pathlib import Path

import pytest

from sitemail.org.cached_directory import CachedDirectory, DerivedCache
from sitemail.org.directory import ObjectNotFound, open_directory
from sitemail.org.model import Site


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_another_process_write_is_seen_once_the_staleness_bound_passed(tmp_path: Path) -> None:
    ticks = Ticks()
    ours = CachedDirectory(open_directory(str(tmp_path / "d.db")), monotonic=ticks)
    theirs = open_directory(str(tmp_path / "d.db"))  # another server's process
    theirs.put(Site(name="NY"))
    ticks.now += 1
    assert [s.name for s in ours.list(Site)] == ["NY"]
    theirs.put(Site(name="FL"))
    theirs.delete(Site, "NY")
    # Within the bound the cache may answer from before; past it, never.
    ticks.now += ours.max_staleness
    assert [s.name for s in ours.list(Site)] == ["FL"]
    assert ours.get(Site, "ny") is None
    with pytest.raises(ObjectNotFound):
        ours.require(Site, "NY")


def test_what_it_returns_is_the_callers_own_and_its_own_writes_show_at_once(
    tmp_path: Path,
) -> None:
    ticks = Ticks()
    directory = CachedDirectory(open_directory(str(tmp_path / "d.db")), monotonic=ticks)
    directory.put(Site(name="NY"))
    first = directory.require(Site, "NY")
    first.name = "changed by a caller"
    assert directory.require(Site, "ny").name == "NY"
    directory.put(Site(name="FL"))  # no time passes: its own write shows at once
    assert [s.name for s in directory.list(Site)] == ["FL", "NY"]
    with directory.transaction():
        directory.delete(Site, "FL")
        assert directory.get(Site, "FL") is None  # inside: the backend's state
    assert [s.name for s in directory.list(Site)] == ["NY"]


def test_reads_within_the_bound_do_not_reach_the_backend(tmp_path: Path) -> None:
    ticks = Ticks()
    inner = open_directory(str(tmp_path / "d.db"))
    inner.put(Site(name="NY"))
    directory = CachedDirectory(inner, monotonic=ticks)
    assert directory.get(Site, "NY") is not None
    other = open_directory(str(tmp_path / "d.db"))
    other.delete(Site, "NY")
    assert directory.get(Site, "NY") is not None  # cached, inside the bound
    ticks.now += directory.max_staleness
    assert directory.get(Site, "NY") is None


def test_a_reader_that_saw_the_counter_move_reads_the_new_state(tmp_path: Path) -> None:
    # The Client Access front door re-reads its snapshot when the counter moves: what
    # it reads then must be the new state, or it would keep the old one until the next
    # change.
    ticks = Ticks()
    directory = CachedDirectory(open_directory(str(tmp_path / "d.db")), monotonic=ticks)
    other = open_directory(str(tmp_path / "d.db"))
    other.put(Site(name="NY"))
    ticks.now += 1
    before = directory.change_counter()
    assert [s.name for s in directory.list(Site)] == ["NY"]
    other.put(Site(name="FL"))
    assert directory.change_counter() != before  # no time passed
    assert [s.name for s in directory.list(Site)] == ["FL", "NY"]


def test_a_watcher_that_learns_of_changes_reads_the_new_state(tmp_path: Path) -> None:
    # The servers' directory watcher asks changes_since() and reloads the receive
    # connectors at once: a cached object read then would be applied as the change and
    # kept until the next one (a hub accepting a peer that Set-ReceiveConnector shut out).
    ticks = Ticks()
    directory = CachedDirectory(open_directory(str(tmp_path / "d.db")), monotonic=ticks)
    other = open_directory(str(tmp_path / "d.db"))
    other.put(Site(name="NY"))
    ticks.now += 1
    counter = directory.change_counter()
    assert [s.name for s in directory.list(Site)] == ["NY"]
    other.put(Site(name="FL"))  # no time passes
    changes = directory.changes_since(counter)
    assert [c.kind for c in changes] == [Site.kind]
    assert [s.name for s in directory.list(Site)] == ["FL", "NY"]


def test_a_derived_value_lives_only_as_long_as_the_counter_it_was_derived_under(
    tmp_path: Path,
) -> None:
    ticks = Ticks()
    ours = CachedDirectory(open_directory(str(tmp_path / "d.db")), monotonic=ticks)
    theirs = open_directory(str(tmp_path / "d.db"))
    places: DerivedCache[str, str] = DerivedCache(ours)
    theirs.put(Site(name="NY"))
    ticks.now += 1
    counter, known = places.get("adam")
    assert known is None and counter is None  # the cache's check is stale: not now
    ours.list(Site)  # a read refreshes the cache's counter ...
    counter, known = places.get("adam")
    assert counter is not None and known is None
    places.put("adam", counter, "EX-FL1")
    assert places.get("adam") == (counter, "EX-FL1")  # ... and under it the value holds
    theirs.put(Site(name="FL"))  # another process moves the counter
    assert places.get("adam")[1] == "EX-FL1"  # within the bound, as the cache itself
    ticks.now += ours.max_staleness
    assert places.get("adam") == (None, None)  # past it: read the directory again
    ours.list(Site)
    assert places.get("adam")[1] is None  # the new counter has no value yet
    ours.put(Site(name="LA"))  # this process's own write: forgotten at once
    assert places.get("adam") == (None, None)


def test_over_a_directory_without_a_cache_nothing_is_kept(tmp_path: Path) -> None:
    places: DerivedCache[str, str] = DerivedCache(open_directory(str(tmp_path / "d.db")))
    places.put("adam", 1, "EX-FL1")
    assert places.get("adam") == (None, None)
