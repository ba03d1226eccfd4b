"""The databases that acknowledge mail are opened as their docs say: WAL, synchronous=FULL.

In WAL mode, ``synchronous=FULL`` syncs the WAL at every commit; NORMAL (or OFF)
does not, and a power cut could then take back a commit the server already
acknowledged (a 250, a delivery).  A kill -9 cannot show the difference, so
this reads the setting from the live connection each store opens, for a new
file and for one that exists already.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.submission_journal import SubmissionJournal
from sitemail.transport.queue import QueueStore

FULL = 2  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA


def queue_connection(folder: Path) -> tuple[sqlite3.Connection, Callable[[], None]]:
    store = QueueStore.open(folder, server="EX01", fqdn="ex01.contoso.com")
    return store._db(), store.close


def mailbox_connection(folder: Path) -> tuple[sqlite3.Connection, Callable[[], None]]:
    database = StoreDatabase(folder / "DB1.db")
    return database._conn, database.close


def journal_connection(folder: Path) -> tuple[sqlite3.Connection, Callable[[], None]]:
    journal = SubmissionJournal(folder / "submission.db")
    return journal._conn, journal.close


@pytest.mark.parametrize(
    "opened",
    [queue_connection, mailbox_connection, journal_connection],
    ids=["queue mail.que", "mailbox database", "submission journal"],
)
def test_every_commit_is_synced(
    tmp_path: Path, opened: Callable[[Path], tuple[sqlite3.Connection, Callable[[], None]]]
) -> None:
    for reopening in (False, True):  # a new file, then the same file again
        conn, close = opened(tmp_path)
        try:
            level = int(conn.execute("PRAGMA synchronous").fetchone()[0])
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        finally:
            close()
        assert mode == "wal", f"journal_mode {mode} (reopened: {reopening})"
        assert level >= FULL, f"synchronous={level}, weaker than FULL (reopened: {reopening})"
