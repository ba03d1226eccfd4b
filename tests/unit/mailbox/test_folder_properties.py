"""What a folder keeps beside its name in the mailbox database, and its size."""

from __future__ import annotations

from pathlib import Path

import pytest

from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.database_folders import MAX_FOLDER_PROPERTIES
from sitemail.mailbox.errors import FolderNotFound, InvalidRequest

RAW = b"From: a@contoso.com\r\nTo: adam@contoso.com\r\nSubject: Hi\r\n\r\nbody\r\n"


def test_properties_are_kept_replaced_and_dropped_with_the_folder(tmp_path: Path) -> None:
    db = StoreDatabase(tmp_path / "db.sqlite")
    folder = db.create_folder("adam", "Shared", "inbox")
    assert db.get_folder_properties("adam", folder.id).properties == {}
    done = db.set_folder_properties("adam", folder.id, {"permissions": [{"user": "Default"}]})
    assert done.modseq > folder.modseq
    assert db.get_folder("adam", folder.id).modseq == done.modseq  # a new ChangeKey
    assert db.get_folder_properties("adam", folder.id).properties == {
        "permissions": [{"user": "Default"}]
    }
    db.set_folder_properties("adam", "recoverableitemsroot", {"x": 1})
    assert db.get_folder_properties("adam", "recoverableitemsroot").properties == {"x": 1}
    with pytest.raises(InvalidRequest):
        db.set_folder_properties("adam", folder.id, {"big": "x" * MAX_FOLDER_PROPERTIES})
    db.set_folder_properties("adam", folder.id, {})
    assert db.get_folder_properties("adam", folder.id).properties == {}
    db.set_folder_properties("adam", folder.id, {"y": 2})
    db.delete_folder("adam", folder.id)
    with pytest.raises(FolderNotFound):
        db.get_folder_properties("adam", folder.id)
    rows = db._conn.execute(
        "SELECT COUNT(*) FROM folder_properties WHERE folder_id=?", (folder.id,)
    )
    assert rows.fetchone()[0] == 0


def test_a_folder_knows_the_bytes_of_its_messages(tmp_path: Path) -> None:
    db = StoreDatabase(tmp_path / "db.sqlite")
    assert db.get_folder("adam", "inbox").size == 0
    db.append("adam", "inbox", RAW)
    db.append("adam", "inbox", RAW)
    assert db.get_folder("adam", "inbox").size == 2 * len(RAW)
    inbox = next(f for f in db.list_folders("adam") if f.name == "Inbox")
    assert inbox.size == 2 * len(RAW)
