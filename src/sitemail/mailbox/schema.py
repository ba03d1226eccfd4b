"""The SQL schema of a mailbox database file.

Layout choices, and why:

- **One row per message body, in the database** (``contents.data`` BLOB),
  not files beside it.  A delivery then is a single SQLite transaction: the
  bytes, the parsed summary, the message row and the delivery id commit
  together or not at all, so a crash can neither lose an acknowledged
  message nor leave a half one or an orphan file, and ``synchronous=FULL``
  in WAL mode makes the commit durable before the hub hears 201.  Messages
  are at most tens of MB (the organization's limit is 10 MB), well inside
  SQLite's 1 GB blob limit; they are written and read in chunks through
  incremental blob I/O (``zeroblob`` + ``blobopen``), so memory stays
  bounded either way.
- **Contents are shared between copies.**  A copy (IMAP COPY, OWA copy)
  adds a ``messages`` row pointing at the same ``contents`` row; a content
  is removed when its last message goes.  The BLOB is the last column, so
  reading the summary columns of a row never touches its overflow pages.
- **IDs only grow.**  ``AUTOINCREMENT`` keeps folder and message ids from
  being reused after deletes; a folder's ``uidnext`` only increases, and
  ``expunged`` keeps the UIDs that left a folder (IMAP VANISHED), with the
  per-mailbox modification sequence at which they left.
- **Item properties beside the content** (``message_properties``): what an
  EWS client sets that MIME has no header for (reminders, extended
  properties) is a JSON object per message, copied with the message and
  deleted with it; the content row stays the message as it arrived.
- **Delivery ids outlive their messages** (``deliveries``): a hub that
  retries a delivery after the user already deleted the first copy must
  still not bring it back.
- **Typed items are messages with a record** (version 2, ``item_records``):
  a calendar item, contact or task is a message whose content the store
  generated, plus one row keyed by that content holding the typed record
  (JSON) and, for calendar items, the UTC span its occurrences cover, so a
  calendar view reads only the items its window may touch.  Keyed by
  content, the record follows a copy; a trigger drops it with its content.
  A database of version 1 gains the table on opening (``ITEM_SCHEMA``).
- **Mailbox settings** (version 3, ``mailbox_settings``): what a mailbox keeps
  that is not a message (automatic replies, Inbox rules, delegates) is one
  JSON document per mailbox and name, validated by :mod:`.mailbox_settings`
  before it is written.  It lives beside the mailbox's messages, so every
  Client Access server reads the same settings through the mailbox's store,
  and delivery on this server can act on them.  A database of version 2
  gains the table on opening (``SETTINGS_SCHEMA``).
- **Exchange's own folders beside the user's** (version 4, ``FOLDER_COLUMNS``):
  a 2010 mailbox's root holds, beside the Top of Information Store, the
  folders clients never show (Common Views, Finder, Recoverable Items ...).
  They are rows like any folder, with ``system`` naming them and
  ``parent_key`` -1 at the root, so that their names never collide with the
  user's top-level folders and every reader of the mail tree leaves them out
  unless it asks.  ``folder_class`` is the container class a client gave
  (``''``: none); folders made before version 4 were mail folders.
  ``folder_properties`` holds what an EWS client sets on a folder beside its
  name (permissions, extended properties, user configurations), as
  ``message_properties`` does for messages.
"""

from __future__ import annotations

SCHEMA_VERSION = 4

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS mailboxes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    modseq INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS folders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    parent_id INTEGER REFERENCES folders(id),
    parent_key INTEGER NOT NULL,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    well_known TEXT,
    uidvalidity INTEGER NOT NULL,
    uidnext INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    UNIQUE (mailbox_id, parent_key, name_key)
);
CREATE UNIQUE INDEX IF NOT EXISTS folders_well_known
    ON folders(mailbox_id, well_known) WHERE well_known IS NOT NULL;
CREATE TABLE IF NOT EXISTS contents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    size INTEGER NOT NULL,
    header_size INTEGER NOT NULL,
    subject TEXT NOT NULL,
    from_json TEXT,
    to_json TEXT NOT NULL,
    cc_json TEXT NOT NULL,
    bcc_json TEXT NOT NULL,
    reply_to_json TEXT NOT NULL,
    sent_at INTEGER,
    internet_message_id TEXT,
    in_reply_to TEXT,
    has_attachments INTEGER NOT NULL,
    preview TEXT NOT NULL,
    search_text TEXT NOT NULL,
    structure TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    folder_id INTEGER NOT NULL REFERENCES folders(id),
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    seen INTEGER NOT NULL DEFAULT 0,
    answered INTEGER NOT NULL DEFAULT 0,
    flagged INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    draft INTEGER NOT NULL DEFAULT 0,
    content_id INTEGER NOT NULL REFERENCES contents(id),
    UNIQUE (folder_id, uid)
);
CREATE INDEX IF NOT EXISTS messages_by_received ON messages(folder_id, received_at, id);
CREATE INDEX IF NOT EXISTS messages_by_content ON messages(content_id);
CREATE INDEX IF NOT EXISTS messages_by_mailbox ON messages(mailbox_id, folder_id);
CREATE INDEX IF NOT EXISTS messages_by_modseq ON messages(folder_id, modseq);
CREATE TABLE IF NOT EXISTS deliveries (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    key TEXT NOT NULL,
    message_id INTEGER NOT NULL,
    delivered_at INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, key)
);
CREATE TABLE IF NOT EXISTS message_properties (
    message_id INTEGER PRIMARY KEY REFERENCES messages(id),
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS expunged (
    folder_id INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    PRIMARY KEY (folder_id, uid)
);
CREATE INDEX IF NOT EXISTS expunged_by_modseq ON expunged(folder_id, modseq);
"""

#: Statements of version 2, run one by one (a trigger's body holds semicolons).
ITEM_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS item_records (
        content_id INTEGER PRIMARY KEY REFERENCES contents(id),
        kind TEXT NOT NULL,
        record TEXT NOT NULL,
        span_start INTEGER,
        span_end INTEGER
    )""",
    "CREATE INDEX IF NOT EXISTS item_records_by_span ON item_records(kind, span_start)",
    """CREATE TRIGGER IF NOT EXISTS item_records_follow_contents AFTER DELETE ON contents
    BEGIN
        DELETE FROM item_records WHERE content_id = OLD.id;
    END""",
)

#: Statements of version 3.
SETTINGS_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS mailbox_settings (
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
        name TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (mailbox_id, name)
    )""",
)

#: Columns of version 4, added to a ``folders`` table that lacks them.
FOLDER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("system", "TEXT"),
    ("folder_class", "TEXT NOT NULL DEFAULT 'IPF.Note'"),
)

#: Statements of version 4 that run once the columns are there.
FOLDER_SCHEMA: tuple[str, ...] = (
    """CREATE UNIQUE INDEX IF NOT EXISTS folders_system
        ON folders(mailbox_id, system) WHERE system IS NOT NULL""",
    """CREATE TABLE IF NOT EXISTS folder_properties (
        folder_id INTEGER PRIMARY KEY REFERENCES folders(id),
        data TEXT NOT NULL
    )""",
)
