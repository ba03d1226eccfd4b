"""SyncFolderItems and SyncFolderHierarchy, driven by exchangelib's sync API on two in-process CAS.

The servers are :mod:`tests.unit.access.test_ews_exchangelib`'s.  Changes
are made through the store (as a delivery or an IMAP client makes them) as
well as through EWS, and each sync is checked against what the store holds.
"""

from __future__ import annotations

import base64

import pytest
from exchangelib import Message
from exchangelib.errors import ErrorInvalidSyncStateData, ErrorSchemaValidation
from exchangelib.folders import Folder
from exchangelib.properties import ItemId
from exchangelib.services import SyncFolderItems
from tests.unit.access.test_ews_exchangelib import NY_EWS, lab_names, mime, servers
from tests.unit.access.test_ews_write import _account
from tests.unit.access.test_web_front import Lab

from sitemail.access.ews_ids import folder_id, item_id
from sitemail.access.ews_sync_state import ItemEntry, apply_items, diff_items
from sitemail.mailbox.records import Flags, FlagUpdate, UidEntry

__all__ = ["lab_names", "servers"]


def test_sync_folder_items_reports_what_the_store_changed(servers: Lab) -> None:
    lab = servers
    db = lab.stores["EX-FL1"]
    account = _account(lab)
    inbox = account.inbox
    # An item's id names its folder (ews_ids), in every change as in GetItem.
    inbox_id = db.get_folder("adam", "inbox").id
    ids = [db.deliver("adam", f"sync:{i}", mime(f"Sync {i}", "x")).message_id for i in range(3)]
    # One call gives at most MaxChangesReturned, and says whether that was all.
    service = SyncFolderItems(account=account)
    first = list(
        service.call(
            folder=inbox,
            shape="IdOnly",
            additional_fields=None,
            sync_state=None,
            ignore=None,
            max_changes_returned=2,
            sync_scope="NormalItems",
        )
    )
    assert [kind for kind, _ in first] == ["create", "create"]
    assert service.includes_last_item_in_range is False
    # The schema bounds MaxChangesReturned to 1-512.
    with pytest.raises(ErrorSchemaValidation):
        list(inbox.sync_items(max_changes_returned=513))
    # exchangelib goes on until the last one; the three messages are created once each.
    changes = list(inbox.sync_items(max_changes_returned=2))
    assert sorted((k, i.subject) for k, i in changes) == [
        ("create", "Sync 0"),
        ("create", "Sync 1"),
        ("create", "Sync 2"),
    ]
    assert {i.id for _, i in changes} == {item_id("adam", n, inbox_id) for n in ids}
    assert list(inbox.sync_items()) == []
    # Read through IMAP's STORE, deleted, moved out, delivered: each is its change.
    db.set_flags("adam", ids[0], FlagUpdate(seen=True))
    db.set_flags("adam", ids[1], FlagUpdate(flagged=True))
    db.delete("adam", ids[2], hard=True)
    moved = db.deliver("adam", "sync:3", mime("Sync 3", "y")).message_id
    db.move("adam", moved, "junkemail")
    new = db.deliver("adam", "sync:4", mime("Sync 4", "z")).message_id
    changes = list(inbox.sync_items())
    kinds = {(k, i[0].id if k == "read_flag_change" else i.id) for k, i in changes}
    assert kinds == {
        ("read_flag_change", item_id("adam", ids[0], inbox_id)),
        ("update", item_id("adam", ids[1], inbox_id)),
        ("delete", item_id("adam", ids[2], inbox_id)),
        ("create", item_id("adam", new, inbox_id)),
    }
    (read,) = [i for k, i in changes if k == "read_flag_change"]
    assert read[1] is True and db.get_message("adam", ids[0]).flags.seen
    # The moved message is a Create in the folder it went to.
    assert [(k, i.subject) for k, i in account.junk.sync_items()] == [("create", "Sync 3")]
    # Ignored ids are left out, and an id this server did not give is no error.
    db.set_flags("adam", new, FlagUpdate(seen=True))
    assert (
        list(
            inbox.sync_items(ignore=[ItemId(id=item_id("adam", new, inbox_id)), ItemId(id="AAA=")])
        )
        == []
    )
    assert list(inbox.sync_items()) == []
    # A state is the server's own: changed, for another folder, or made up, it is refused.
    state = inbox.item_sync_state
    raw = bytearray(base64.b64decode(state))
    raw[-1] ^= 1
    for forged in (base64.b64encode(bytes(raw)).decode(), "bm90IGEgc3RhdGU=", state[:-4]):
        with pytest.raises(ErrorInvalidSyncStateData):
            list(inbox.sync_items(sync_state=forged))
    with pytest.raises(ErrorInvalidSyncStateData):
        list(account.junk.sync_items(sync_state=state))
    with pytest.raises(ErrorInvalidSyncStateData):
        list(_account(lab).drafts.sync_items(sync_state=state))


def test_sync_folder_hierarchy_sees_folders_created_renamed_moved_and_deleted(
    servers: Lab,
) -> None:
    lab = servers
    db = lab.stores["EX-FL1"]
    account = _account(lab)
    inbox = account.inbox
    assert list(inbox.sync_hierarchy()) == []
    assert inbox.folder_sync_state is not None
    child = Folder(parent=inbox, name="Projects")
    child.save()
    (change,) = list(inbox.sync_hierarchy())
    assert change[0] == "create" and change[1].id == child.id and change[1].name == "Projects"
    # A rename through IMAP (the store), a move through EWS: each an update.
    made = next(f for f in db.list_folders("adam") if f.name == "Projects")
    db.rename_folder("adam", made.id, "Tampa")
    (change,) = list(inbox.sync_hierarchy())
    assert change[0] == "update" and change[1].name == "Tampa"
    deeper = db.create_folder("adam", "Deeper", "inbox")
    db.move_folder("adam", deeper.id, made.id)
    assert [(k, f.name) for k, f in inbox.sync_hierarchy()] == [("create", "Deeper")]
    db.move_folder("adam", deeper.id, "inbox")
    assert [(k, f.name) for k, f in inbox.sync_hierarchy()] == [("update", "Deeper")]
    # Deleted: the folder and what was below it.
    db.delete_folder("adam", made.id)
    assert [(k, f.id) for k, f in inbox.sync_hierarchy()] == [
        ("delete", folder_id("adam", made.id))
    ]
    # The whole mailbox from its root: every folder, once.
    everything = list(account.root.sync_hierarchy())
    assert {f.name for _, f in everything} == {f.name for f in db.list_folders("adam")}
    assert {k for k, _ in everything} == {"create"}


def test_sync_through_ny_for_a_florida_mailbox(servers: Lab) -> None:
    lab = servers
    lab.set_vdir(
        NY_EWS,
        basic_authentication=True,
        external_url="https://mail.contoso.com/EWS/Exchange.asmx",
    )
    account = _account(lab, "mail.contoso.com")
    assert list(account.inbox.sync_items()) == []
    Message(account=account, folder=account.inbox, subject="Via NY", body="x").save()
    db = lab.stores["EX-FL1"]
    ((kind, item),) = list(account.inbox.sync_items())
    assert kind == "create" and item.subject == "Via NY"
    assert [m.subject for m in db.list_messages("adam", "inbox").items] == ["Via NY"]


def test_an_edited_item_is_one_update_and_a_read_flag_a_read_flag_change(servers: Lab) -> None:
    # UpdateItem rewrites the message (the store gives it a new UID under the same id): a
    # client is told of one Update, as Exchange tells of an edit, not of a Delete and a Create.
    account = _account(servers)
    inbox = account.inbox
    list(inbox.sync_items())
    item = Message(account=account, folder=inbox, subject="First", body="x")
    item.save()
    assert [(k, i.id) for k, i in inbox.sync_items()] == [("create", item.id)]
    item.subject = "Second"
    item.save(update_fields=["subject"])
    assert [(k, i.id, i.subject) for k, i in inbox.sync_items()] == [("update", item.id, "Second")]
    item.is_read = not item.is_read
    item.save(update_fields=["is_read"])
    ((kind, (read_id, read)),) = list(inbox.sync_items())
    assert (kind, read_id.id, read) == ("read_flag_change", item.id, item.is_read)
    item_id_before = item.id
    item.delete()
    assert [(k, i.id) for k, i in inbox.sync_items()] == [("delete", item_id_before)]


def test_diff_items_reads_a_rewritten_message_as_one_update() -> None:
    def entry(uid: int, message_id: int, modseq: int, seen: bool = False) -> UidEntry:
        return UidEntry(uid=uid, message_id=message_id, flags=Flags(seen=seen), modseq=modseq)

    known = {1: ItemEntry.of(entry(1, 10, 5)), 2: ItemEntry.of(entry(2, 20, 5))}
    # UID 1's message came back as UID 3 (rewritten), UID 2 went, message 40 is new.
    changes = diff_items(known, [entry(3, 10, 9), entry(4, 40, 9)], [1, 2])
    assert [(c.kind, c.uid, c.entry.message_id, c.replaced) for c in changes] == [
        ("Delete", 2, 20, None),
        ("Update", 3, 10, 1),
        ("Create", 4, 40, None),
    ]
    apply_items(known, changes)
    assert sorted((u, e.message_id) for u, e in known.items()) == [(3, 10), (4, 40)]
    # Only the read flag changed: ReadFlagChange; a change already seen: none.
    changes = diff_items(known, [entry(3, 10, 10, seen=True), entry(4, 40, 9)], [])
    assert [(c.kind, c.uid) for c in changes] == [("ReadFlagChange", 3)]
