"""Where EWS pull and streaming subscriptions live: a table of the Client Access server that
serves the mailbox.

Exchange 2010 keeps a subscription on the Client Access server that made
it, and a client needs affinity to that server for GetEvents (exchangelib
sends the ``X-BackEndOverrideCookie`` it is given).  In sitemail a request
for a mailbox of another site is proxied to the mailbox's site, so the
subscription is made, read and ended on the same CAS there whichever CAS
the client reached (NY's CAS proxies adam's GetEvents to FL as it proxied
his Subscribe).  The table is a SQLite file that the W3SVC's worker
processes share (:func:`~sitemail.access.web.workers.shared_table_file`),
so any worker may take the next request.

Each row is one subscription: whose it is, what it watches, when it
expires, and the snapshot of the watched folders as of its newest
watermark (see :mod:`.ews_notifications`).  Rows are bounded per mailbox
and per server, and dropped an hour after they expire.  An ended
(unsubscribed) row is kept until then as well, so that a client may start
a new subscription from its last watermark, as Exchange allows.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sitemail.access.web.workers import shared_table_file

__all__ = [
    "AFFINITY_COOKIE",
    "MAX_PER_MAILBOX",
    "Subscription",
    "Subscriptions",
    "affinity_cookies",
    "is_subscription_id",
    "new_id",
]

#: Live subscriptions one mailbox may have (Exchange 2010's throttling policy bounds them
#: too, EWSMaxSubscriptions; unverified that its default is this number).
MAX_PER_MAILBOX = 20
#: Subscriptions one server keeps, ended ones included.
MAX_PER_SERVER = 5000
#: How long an expired or ended subscription is kept for a new one to start from its
#: watermark.
KEEP_SECONDS = 3600.0
_ID = re.compile(r"[A-Za-z0-9_-]{48}")
#: The cookie that names the server keeping a client's subscriptions, given to a client
#: that asks for affinity (``X-PreferServerAffinity: true``) and sent back by it, as
#: Microsoft documents for notifications.  Unverified: that 2010 SP3 sets it (the
#: documentation is 2013's); the client's request is routed by its mailbox either way.
AFFINITY_COOKIE = "X-BackEndOverrideCookie"


@dataclass
class Subscription:
    id: str
    alias: str
    kind: str  # "pull" or "streaming"
    folders: list[int] | None  # None: every folder (SubscribeToAllFolders)
    events: list[str]  # EventType names: NewMailEvent, CreatedEvent ...
    timeout: float  # seconds of silence after which it expires
    expires: float  # clock time
    seq: int = 0  # the newest watermark's number
    snapshot: dict[str, Any] = field(default_factory=dict)
    previous: dict[str, Any] = field(default_factory=dict)  # the answer to seq - 1, for a retry
    pending: list[dict[str, Any]] = field(default_factory=list)  # events not yet given out
    ended: bool = False


class Subscriptions:
    """The subscriptions one server keeps (``path``: the file its workers share)."""

    def __init__(self, *, path: Path | None = None) -> None:
        self._db = shared_table_file(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS ews_subscriptions (id TEXT PRIMARY KEY, alias TEXT NOT "
            "NULL, expires REAL NOT NULL, ended INTEGER NOT NULL, seq INTEGER NOT NULL, "
            "body TEXT NOT NULL)"
        )
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS ews_subscriptions_by_alias ON ews_subscriptions (alias)"
        )

    def close(self) -> None:
        self._db.close()

    def live(self, alias: str, now: float) -> int:
        row = self._db.execute(
            "SELECT count(*) FROM ews_subscriptions WHERE alias = ? AND ended = 0 AND expires > ?",
            (alias.casefold(), now),
        ).fetchone()
        return int(row[0])

    def add(self, sub: Subscription, now: float) -> bool:
        """Keep a new subscription; False when its mailbox has the most it may have."""
        self._db.execute("DELETE FROM ews_subscriptions WHERE expires < ?", (now - KEEP_SECONDS,))
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if self.live(sub.alias, now) >= MAX_PER_MAILBOX:
                self._db.execute("ROLLBACK")
                return False
            self._db.execute(
                "INSERT INTO ews_subscriptions VALUES (?, ?, ?, 0, ?, ?)",
                (sub.id, sub.alias.casefold(), sub.expires, sub.seq, _dump(sub)),
            )
            self._db.execute(
                "DELETE FROM ews_subscriptions WHERE rowid IN (SELECT rowid FROM "
                "ews_subscriptions ORDER BY expires LIMIT max(0, (SELECT count(*) FROM "
                "ews_subscriptions) - ?))",
                (MAX_PER_SERVER,),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return True

    def get(self, sub_id: str) -> Subscription | None:
        row = self._db.execute(
            "SELECT body, ended FROM ews_subscriptions WHERE id = ?", (sub_id,)
        ).fetchone()
        if row is None:
            return None
        sub = _load(row[0])
        sub.ended = bool(row[1])
        return sub

    def save(self, sub: Subscription, seen_seq: int) -> bool:
        """Store ``sub`` if nobody advanced it past ``seen_seq`` meanwhile (another worker)."""
        cursor = self._db.execute(
            "UPDATE ews_subscriptions SET expires = ?, seq = ?, body = ? "
            "WHERE id = ? AND seq = ? AND ended = 0",
            (sub.expires, sub.seq, _dump(sub), sub.id, seen_seq),
        )
        return cursor.rowcount == 1

    def end(self, sub_id: str) -> bool:
        cursor = self._db.execute(
            "UPDATE ews_subscriptions SET ended = 1 WHERE id = ? AND ended = 0", (sub_id,)
        )
        return cursor.rowcount == 1


def new_id() -> str:
    """A subscription id: opaque and unguessable, as Exchange's are."""
    return secrets.token_urlsafe(36)


def is_subscription_id(text: str) -> bool:
    """Whether ``text`` has the form of an id :func:`new_id` makes (48 base64url characters)."""
    return _ID.fullmatch(text) is not None


def _dump(sub: Subscription) -> str:
    return json.dumps(
        {
            "id": sub.id,
            "alias": sub.alias,
            "kind": sub.kind,
            "folders": sub.folders,
            "events": sub.events,
            "timeout": sub.timeout,
            "expires": sub.expires,
            "seq": sub.seq,
            "snapshot": sub.snapshot,
            "previous": sub.previous,
            "pending": sub.pending,
        },
        separators=(",", ":"),
    )


def _load(text: str) -> Subscription:
    data = json.loads(text)
    return Subscription(**data)


def affinity_cookies(headers: Mapping[str, str], server: str) -> dict[str, str]:
    """The affinity cookie for a request's answer when it asks for one: ``server`` is the
    Client Access server that keeps the subscriptions (the mailbox's site's)."""
    if headers.get("X-PreferServerAffinity", "").strip().lower() != "true":
        return {}
    return {AFFINITY_COOKIE: server}
