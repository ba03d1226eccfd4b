"""The queue database, ``<home>/queue/mail.que`` (Exchange's own is mail.que too).

The main tables:

- ``queues``: one row per queue; the three special ones always exist,
  delivery queues come and go (their ``id`` is the ``<SERVER>\\<n>`` number,
  never reused: AUTOINCREMENT);
- ``messages``: one row per accepted message (its envelope, the spool file);
- ``items``: a message in one queue (Exchange's "mail item" per next hop):
  its id is the last part of the message identity;
- ``recipients``: one row per recipient, pointing at the item that holds it;
- ``shadows``/``discards``: shadow redundancy bookkeeping (:mod:`.shadow`).

Message and item ids come from one counter, so the InternalId given at
accept() is also the message's id in the Submission queue.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL UNIQUE,
    delivery_type TEXT NOT NULL,
    next_hop_domain TEXT NOT NULL,
    tls_domain TEXT NOT NULL DEFAULT '',
    next_hop_connector TEXT NOT NULL,
    suspended INTEGER NOT NULL DEFAULT 0,
    retry_count INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    last_retry_time REAL,
    next_retry_time REAL,
    retry_since REAL,   -- first failure of the current run (MaxIdleTimeBeforeResubmit)
    idle_since REAL     -- when the queue last became empty (QueueMaxIdleTime)
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    mail_from TEXT NOT NULL,
    internet_message_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    size INTEGER NOT NULL,
    body_file TEXT NOT NULL,
    received_at REAL NOT NULL,
    client_ip TEXT NOT NULL,
    client_hostname TEXT NOT NULL,
    connector_id TEXT NOT NULL,
    auth_as TEXT,
    body_type TEXT,
    ret TEXT,
    envid TEXT,
    source TEXT NOT NULL,
    headers TEXT NOT NULL,
    scl INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_time ON messages(received_at);
-- Bodies up to 64 KiB, made durable by the commit that queues them (as Exchange keeps
-- queued messages in mail.que); their spool file is a copy written without fsync, which
-- recovery writes again from here (version 2).
CREATE TABLE IF NOT EXISTS bodies (
    message_id INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL,
    queue_id INTEGER NOT NULL,
    locked INTEGER NOT NULL DEFAULT 0,        -- in flight: taken by a worker
    suspended INTEGER NOT NULL DEFAULT 0,
    pending_remove INTEGER NOT NULL DEFAULT 0, -- 1 without NDR, 2 with NDR, once unlocked
    crash_count INTEGER NOT NULL DEFAULT 0,
    retry_count INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    next_attempt REAL                          -- message-level retry (MessageRetryInterval)
);
CREATE INDEX IF NOT EXISTS items_by_queue ON items(queue_id, id);
CREATE INDEX IF NOT EXISTS items_by_message ON items(message_id);
CREATE TABLE IF NOT EXISTS recipients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL,
    item_id INTEGER NOT NULL,
    address TEXT NOT NULL,
    notify TEXT,
    orcpt TEXT,
    last_error TEXT NOT NULL DEFAULT '',
    delay_notified INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS recipients_by_item ON recipients(item_id);
CREATE INDEX IF NOT EXISTS recipients_by_message ON recipients(message_id);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
-- Shadow redundancy (version 3).  store_info holds this file's shadow id: a new
-- mail.que has a new one, which tells the hubs that shadow our messages that we
-- lost what they handed us.
CREATE TABLE IF NOT EXISTS store_info (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- An item of a shadow queue: kept after the next hop's 250, until it says it is done.
CREATE TABLE IF NOT EXISTS shadows (
    item_id INTEGER PRIMARY KEY,
    server TEXT NOT NULL,       -- the next hop's FQDN (lower case)
    shadow_id TEXT NOT NULL,    -- its shadow id when it took the message
    remote_id INTEGER NOT NULL, -- its InternalId for the message
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS shadows_by_remote ON shadows(server, remote_id);
-- Messages a shadowing hub handed us that are done here: told on its next XQDISCARD.
CREATE TABLE IF NOT EXISTS discards (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    peer TEXT NOT NULL,         -- the shadowing hub's server name (lower case)
    remote_id INTEGER NOT NULL, -- our InternalId of its message
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS discards_by_peer ON discards(peer, id);
"""


class SchemaVersionError(Exception):
    pass


def connect(path: Path) -> sqlite3.Connection:
    """Open (or create) the database: WAL, synchronous=FULL, explicit transactions."""
    # isolation_level=None: the store issues BEGIN IMMEDIATE/COMMIT itself, so a
    # transaction is exactly one state change.  check_same_thread=False: the
    # store serialises every use with its own lock (worker threads call it).
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        conn.close()
        raise SchemaVersionError(f"{path}: the file system refused WAL mode (got {mode!r})")
    # FULL: every commit fsyncs the WAL, so a committed message survives power loss.
    conn.execute("PRAGMA synchronous=FULL")
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version not in (0, 1, 2, SCHEMA_VERSION):
        conn.close()
        raise SchemaVersionError(
            f"{path} has queue schema version {version}; this sitemail reads version "
            f"{SCHEMA_VERSION}: move the file away or use a matching sitemail"
        )
    if version < SCHEMA_VERSION:
        # One transaction for the whole schema: one fsync instead of one per table.
        # Older files only lack tables (version 1 bodies, version 2 the shadow ones):
        # CREATE ... IF NOT EXISTS adds them.
        conn.executescript(f"BEGIN IMMEDIATE;{SCHEMA}PRAGMA user_version={SCHEMA_VERSION};COMMIT;")
    return conn
