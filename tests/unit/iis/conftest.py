"""The seed organization in a directory.db of the test's folder (a lab folder without processes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sitemail.org.directory import Directory, open_directory
from sitemail.org.topology import Topology

SEED = Path(__file__).resolve().parents[3] / "examples" / "seed.yaml"


@pytest.fixture
def seed_directory(tmp_path: Path) -> Iterator[Directory]:
    d = open_directory(str(tmp_path / "directory.db"))
    with d.transaction():
        for obj in Topology.load(SEED).objects(hash_passwords=False):
            d.put(obj)
    yield d
    d.close()
