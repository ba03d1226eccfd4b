"""The Mail Submission service's memory of what it handed to a hub, kept beside the databases.

One SQLite file per mailbox server, ``<mailbox folder>/MailSubmission.sqlite``
(the ``.sqlite`` extension keeps it apart from the ``<DB>.db`` database
files).  A row per submitted message, keyed by database, mailbox and
Message-ID, records which recipients a hub has accepted.  It is written
(``synchronous=FULL``) as soon as a hub's 250 arrives, before the message
leaves the Outbox, so that:

- after a crash between the hand-off and the move to Sent Items, the
  message is moved without being sent again;
- a message put in the Outbox again (the same Message-ID: submitted twice,
  or copied back from Sent Items) is filed without being sent twice;
- when a hub took some recipients and deferred others, a retry sends only
  to the others.

The one window left is between the hub's 250 and this write (a crash
there sends the message again on restart); real Exchange has the same
window, which its store's duplicate detection covers.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

JOURNAL_FILE = "MailSubmission.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    database TEXT NOT NULL,
    mailbox TEXT NOT NULL,
    message_key TEXT NOT NULL,
    state TEXT NOT NULL,
    accepted TEXT NOT NULL,
    hub TEXT NOT NULL,
    updated_us INTEGER NOT NULL,
    PRIMARY KEY (database, mailbox, message_key)
)
"""


class SubmissionState(StrEnum):
    PARTIAL = "partial"
    """A hub accepted some recipients; the others are still to be sent."""
    DONE = "done"
    """Every recipient was handed off (or refused for good): never send again."""


@dataclass(frozen=True, slots=True)
class SubmissionRecord:
    state: SubmissionState
    accepted: frozenset[str]
    """Recipients (case-folded) a hub has taken or refused for good."""
    hub: str


class SubmissionJournal:
    """The journal file of one mailbox server; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def get(self, database: str, mailbox: str, key: str) -> SubmissionRecord | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT state, accepted, hub FROM submissions "
                "WHERE database=? AND mailbox=? AND message_key=?",
                (database.casefold(), mailbox.casefold(), key),
            ).fetchone()
        if row is None:
            return None
        return SubmissionRecord(SubmissionState(row[0]), frozenset(json.loads(row[1])), row[2])

    def record(
        self,
        database: str,
        mailbox: str,
        key: str,
        *,
        state: SubmissionState,
        accepted: frozenset[str],
        hub: str,
        now_us: int,
    ) -> None:
        """Remember what the hubs have taken so far (durable when this returns)."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO submissions(database, mailbox, message_key, state, accepted, hub, "
                "updated_us) VALUES (?,?,?,?,?,?,?) ON CONFLICT(database, mailbox, message_key) "
                "DO UPDATE SET state=excluded.state, accepted=excluded.accepted, "
                "hub=excluded.hub, updated_us=excluded.updated_us",
                (
                    database.casefold(),
                    mailbox.casefold(),
                    key,
                    state.value,
                    json.dumps(sorted(accepted)),
                    hub,
                    now_us,
                ),
            )

    def prune(self, older_than_us: int) -> int:
        """Forget submissions finished before then (nobody resubmits a message that old)."""
        with self._lock:
            cur = self._conn.execute(
                "DELETE FROM submissions WHERE state=? AND updated_us < ?",
                (SubmissionState.DONE.value, older_than_us),
            )
            return int(cur.rowcount)
