"""Exchange's own folders in the mailbox database: provisioned, kept apart, upgraded into."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.errors import FolderProtected, InvalidRequest
from sitemail.mailbox.schema import SCHEMA_VERSION
from sitemail.mailbox.system_folders import SYSTEM_FOLDERS

RAW = b"From: a@contoso.com\r\nTo: adam@contoso.com\r\nSubject: Kept\r\n\r\nbody\r\n"


def test_a_new_mailbox_has_them_beside_the_top_of_the_store(tmp_path: Path) -> None:
    db = StoreDatabase(tmp_path / "db.sqlite")
    every = db.list_folders("adam", everything=True)
    own = {f.system: f for f in every if f.system is not None}
    assert set(own) == {s.key for s in SYSTEM_FOLDERS}
    beside = [f for f in own.values() if not f.ipm]
    assert all(f.folder_class == "" and f.well_known is None for f in beside)
    assert own["syncissues"].ipm and own["conflicts"].path == "Sync Issues/Conflicts"
    assert own["conversationactions"].folder_class == "IPF.Configuration"
    deletions = own["recoverableitemsdeletions"]
    assert deletions.path == "Recoverable Items/Deletions"
    assert deletions.parent_id == own["recoverableitemsroot"].id
    assert own["searchfolders"].name == "Finder" and own["searchfolders"].parent_id is None
    # What IMAP, POP, OWA and ActiveSync read is the Top of Information Store only.
    shown = db.list_folders("adam")
    assert all(f.ipm for f in shown) and len(shown) == 11 + 6
    assert [f.id for f in every[: len(shown)]] == [f.id for f in shown]
    # A user's folder at the top may have a system folder's name: another level.
    assert db.create_folder("adam", "Views").ipm
    assert db.get_folder("adam", "recoverableitemsdeletions").ipm is False


def test_they_stay_and_their_items_are_out_of_a_mailbox_search(tmp_path: Path) -> None:
    db = StoreDatabase(tmp_path / "db.sqlite")
    for action in (
        lambda: db.delete_folder("adam", "recoverableitemsroot"),
        lambda: db.rename_folder("adam", "searchfolders", "Other"),
        lambda: db.move_folder("adam", "commonviews", "inbox"),
    ):
        with pytest.raises(FolderProtected):
            action()
    placed = db.append("adam", "inbox", RAW)
    assert db.search("adam", "Kept").total == 1
    db.move("adam", placed.message_id, "recoverableitemsdeletions")
    assert db.search("adam", "Kept").total == 0
    assert db.search("adam", "Kept", folder="recoverableitemsdeletions").total == 1
    with pytest.raises(InvalidRequest):
        db.get_folder("adam", "nosuchfolder")


def test_a_folder_keeps_the_class_it_was_made_with(tmp_path: Path) -> None:
    db = StoreDatabase(tmp_path / "db.sqlite")
    assert db.create_folder("adam", "Mail").folder_class == "IPF.Note"
    assert db.create_folder("adam", "Plain", None, "").folder_class == ""
    assert db.get_folder("adam", "calendar").folder_class == "IPF.Appointment"
    with pytest.raises(InvalidRequest):
        db.create_folder("adam", "Bad", None, " IPF.Note")


def test_a_version_2_database_gains_them_and_keeps_its_folders(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = StoreDatabase(path)
    projects = db.create_folder("adam", "Projects", "inbox")
    db.close()
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM folders WHERE system IS NOT NULL")
    conn.execute("DROP INDEX folders_system")
    conn.execute("DROP TABLE folder_properties")
    conn.execute("ALTER TABLE folders DROP COLUMN system")
    conn.execute("ALTER TABLE folders DROP COLUMN folder_class")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    db = StoreDatabase(path)
    assert db._conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert db.get_folder("adam", projects.id).folder_class == "IPF.Note"
    assert db.get_folder("adam", "recoverableitemsdeletions").path == "Recoverable Items/Deletions"
    assert len(db.list_folders("adam", everything=True)) == 12 + len(SYSTEM_FOLDERS)


def test_a_users_folder_of_a_default_folders_name_becomes_it(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    db = StoreDatabase(path)
    mine = db.get_folder("adam", "syncissues")
    db.append("adam", mine.id, RAW)
    db.close()
    conn = sqlite3.connect(path)  # as if the user made it before Sync Issues was provisioned
    conn.execute("DELETE FROM folders WHERE system IN ('conflicts', 'localfailures')")
    conn.execute("DELETE FROM folders WHERE system = 'serverfailures'")
    conn.execute(
        "UPDATE folders SET system=NULL, name='sync issues', name_key='sync issues' WHERE id=?",
        (mine.id,),
    )
    conn.commit()
    conn.close()
    db = StoreDatabase(path)
    adopted = db.get_folder("adam", mine.id)
    assert (adopted.system, adopted.total, adopted.name) == ("syncissues", 1, "sync issues")
    assert db.get_folder("adam", "conflicts").parent_id == mine.id
