"""The folder tree of a mailbox, read and checked inside a database transaction.

Functions here take the open connection and never commit: the
:class:`~sitemail.mailbox.database.StoreDatabase` method that calls them owns
the transaction.
"""

from __future__ import annotations

import sqlite3

from sitemail.mailbox.errors import FolderExists, FolderNotFound, FolderProtected, InvalidRequest
from sitemail.mailbox.limits import MAX_FOLDER_DEPTH
from sitemail.mailbox.records import Folder, WellKnownFolder
from sitemail.mailbox.rows import MailboxRow, folder_counts, to_folder
from sitemail.mailbox.system_folders import system_folder

FolderRef = int | str
"""A folder: its id, a well-known folder's name (``"inbox"``, ``"sentitems"`` ...) or
a system folder's key (``"recoverableitemsdeletions"`` ...)."""

#: ``parent_key`` of the folders at the root of the mailbox, beside the Top of
#: Information Store (whose folders have ``parent_key`` 0): Exchange's own.
ROOT_KEY = -1

# Exchange shows the default folders in this order under the top of the store.
WELL_KNOWN_ORDER = (
    WellKnownFolder.INBOX,
    WellKnownFolder.DRAFTS,
    WellKnownFolder.SENT_ITEMS,
    WellKnownFolder.DELETED_ITEMS,
    WellKnownFolder.JUNK_EMAIL,
    WellKnownFolder.OUTBOX,
    WellKnownFolder.CALENDAR,
    WellKnownFolder.CONTACTS,
    WellKnownFolder.JOURNAL,
    WellKnownFolder.NOTES,
    WellKnownFolder.TASKS,
)


def folder_row(conn: sqlite3.Connection, box: MailboxRow, ref: FolderRef) -> sqlite3.Row:
    """The folder's row; FolderNotFound if the mailbox has no such folder."""
    if isinstance(ref, str) and ref.isdigit():
        ref = int(ref)
    if isinstance(ref, int):
        row = conn.execute(
            "SELECT * FROM folders WHERE id=? AND mailbox_id=?", (ref, box.id)
        ).fetchone()
    elif (system := system_folder(ref)) is not None:
        row = conn.execute(
            "SELECT * FROM folders WHERE mailbox_id=? AND system=?", (box.id, system.key)
        ).fetchone()
    else:
        try:
            well_known = WellKnownFolder(ref.lower())
        except ValueError:
            names = ", ".join(w.value for w in WellKnownFolder)
            raise InvalidRequest(
                f"folder {ref[:80]!r} is neither a folder id nor a well-known folder ({names})"
            ) from None
        row = conn.execute(
            "SELECT * FROM folders WHERE mailbox_id=? AND well_known=?",
            (box.id, well_known.value),
        ).fetchone()
    if row is None:
        raise FolderNotFound(f"mailbox {box.name} has no folder {ref}")
    assert isinstance(row, sqlite3.Row)
    return row


def folder_id(conn: sqlite3.Connection, box: MailboxRow, ref: FolderRef) -> int:
    return int(folder_row(conn, box, ref)["id"])


def check_free(
    conn: sqlite3.Connection,
    box: MailboxRow,
    parent_id: int | None,
    name: str,
    *,
    exclude: int | None = None,
    at_root: bool = False,
) -> None:
    """FolderExists if ``parent_id`` already holds a folder of that name (any case)."""
    parent_key = ROOT_KEY if at_root else parent_id or 0
    row = conn.execute(
        "SELECT id FROM folders WHERE mailbox_id=? AND parent_key=? AND name_key=?",
        (box.id, parent_key, name.casefold()),
    ).fetchone()
    if row is not None and int(row[0]) != exclude:
        where = "at the top of the mailbox" if parent_id is None else "in that folder"
        raise FolderExists(f"a folder named {name!r} already exists {where} of mailbox {box.name}")


def check_user_folder(row: sqlite3.Row, action: str) -> None:
    if row["well_known"] is not None or row["system"] is not None:
        raise FolderProtected(
            f"{row['name']} is a default folder of the mailbox and cannot be {action}"
        )


def ancestors(conn: sqlite3.Connection, folder_id: int) -> list[int]:
    """The folder's parent, grandparent ... up to the top."""
    chain: list[int] = []
    current: int | None = folder_id
    while current is not None and len(chain) <= MAX_FOLDER_DEPTH + 1:
        row = conn.execute("SELECT parent_id FROM folders WHERE id=?", (current,)).fetchone()
        current = None if row is None or row[0] is None else int(row[0])
        if current is not None:
            chain.append(current)
    return chain


def subtree(conn: sqlite3.Connection, folder_id: int) -> list[int]:
    """The folder and all below it, parents before children."""
    out = [folder_id]
    index = 0
    while index < len(out):
        out += [
            int(r[0])
            for r in conn.execute("SELECT id FROM folders WHERE parent_id=?", (out[index],))
        ]
        index += 1
    return out


def subtree_height(conn: sqlite3.Connection, folder_id: int) -> int:
    """Levels from the folder down to its deepest subfolder (1 for a leaf)."""
    children = [
        int(r[0]) for r in conn.execute("SELECT id FROM folders WHERE parent_id=?", (folder_id,))
    ]
    return 1 + max((subtree_height(conn, c) for c in children), default=0)


def all_folders(
    conn: sqlite3.Connection, box: MailboxRow, *, everything: bool = False
) -> list[Folder]:
    """The folders of the Top of Information Store, parents before children; default
    folders first, then by name.  ``everything`` adds Exchange's own folders at the
    root after them (``ipm`` false)."""
    rows = conn.execute("SELECT * FROM folders WHERE mailbox_id=?", (box.id,)).fetchall()
    counts = folder_counts(conn, box)
    by_parent: dict[int | str | None, list[sqlite3.Row]] = {}
    for row in rows:
        at_root = row["parent_id"] is None and row["parent_key"] == ROOT_KEY
        by_parent.setdefault("root" if at_root else row["parent_id"], []).append(row)
    order = {w.value: i for i, w in enumerate(WELL_KNOWN_ORDER)}

    def sort_key(row: sqlite3.Row) -> tuple[int, str]:
        return (order.get(row["well_known"], len(order)), str(row["name_key"]))

    out: list[Folder] = []

    def visit(parent: int | str | None, prefix: str, ipm: bool) -> None:
        for row in sorted(by_parent.get(parent, []), key=sort_key):
            path = f"{prefix}{row['name']}"
            out.append(to_folder(row, path, counts.get(int(row["id"]), (0, 0, 0)), ipm))
            visit(int(row["id"]), path + "/", ipm)

    visit(None, "", True)
    if everything:
        visit("root", "", False)
    return out


def folder_record(conn: sqlite3.Connection, row: sqlite3.Row) -> Folder:
    """One folder with its path and counts."""
    names = [str(row["name"])]
    top_key = int(row["parent_key"])
    for ancestor in ancestors(conn, int(row["id"])):
        parent = conn.execute(
            "SELECT name, parent_key FROM folders WHERE id=?", (ancestor,)
        ).fetchone()
        names.append(str(parent[0]))
        top_key = int(parent[1])
    total, unread, size = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(m.seen = 0), 0), COALESCE(SUM(c.size), 0) "
        "FROM messages m JOIN contents c ON c.id = m.content_id WHERE m.folder_id=?",
        (row["id"],),
    ).fetchone()
    path = "/".join(reversed(names))
    return to_folder(row, path, (int(total), int(unread), int(size)), top_key != ROOT_KEY)
