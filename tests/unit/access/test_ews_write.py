"""EWS operations that change a mailbox, driven by exchangelib's own API on two in-process CAS.

The servers are :mod:`tests.unit.access.test_ews_exchangelib`'s; every
assertion is also checked in the mailbox database, not only in what the
server answers.
"""

from __future__ import annotations

import pytest
from exchangelib import (
    BASIC,
    DELEGATE,
    Account,
    Build,
    Configuration,
    Credentials,
    HTMLBody,
    Mailbox,
    Message,
    Version,
)
from exchangelib.errors import (
    ErrorCannotDeleteObject,
    ErrorDeleteDistinguishedFolder,
    ErrorFolderExists,
    ErrorFolderNotFound,
    ErrorInvalidIdMalformed,
    ErrorIrresolvableConflict,
    ErrorItemNotFound,
    ErrorMoveDistinguishedFolder,
)
from exchangelib.folders import Folder
from exchangelib.properties import FolderId, ItemId
from exchangelib.services import GetFolder
from tests.unit.access.test_ews_exchangelib import (
    FL_EWS,
    NY_EWS,
    ews_account,
    lab_names,
    mime,
    servers,
    url,
)
from tests.unit.access.test_web_front import PASSWORD, Lab

from sitemail.mailbox.database import StoreDatabase

__all__ = ["lab_names", "servers"]


def _account(lab: Lab, host: str = "ex-fl1.contoso.com") -> Account:
    lab.set_vdir(FL_EWS, basic_authentication=True)
    return ews_account(url(lab, host), "contoso\\adam", "adam@contoso.com")


def _subjects(db: StoreDatabase, folder: str) -> list[str]:
    return sorted(i.subject for i in db.list_messages("adam", folder, limit=100).items)


def _only(folder: Folder) -> Message:
    """The one message of a folder."""
    (item,) = list(folder.all())
    assert item.subject == "Plan"
    return item


def test_messages_are_created_read_updated_moved_copied_and_deleted(servers: Lab) -> None:
    lab = servers
    db = lab.stores["EX-FL1"]
    account = _account(lab)
    draft = Message(
        account=account,
        folder=account.drafts,
        subject="Plan",
        body=HTMLBody("<p>Tampa</p>"),
        to_recipients=[Mailbox(email_address="fiona@contoso.com", name="Fiona Fl")],
    )
    draft.save()
    assert _subjects(db, "drafts") == ["Plan"]
    (stored,) = db.list_messages("adam", "drafts").items
    # exchangelib sends IsRead (false unless set), which the store keeps.
    assert stored.flags.draft and not stored.flags.seen
    assert [a.address for a in stored.to] == ["fiona@contoso.com"]
    # GetItem with the shapes and additional properties clients ask for.
    fresh = account.drafts.get(id=draft.id)
    assert fresh.subject == "Plan" and "<p>Tampa</p>" in fresh.body and fresh.is_read is False
    assert b"Subject: Plan" in fresh.mime_content
    (only,) = list(account.drafts.filter().only("subject", "is_read"))
    assert only.subject == "Plan" and only.is_read is False and only.body is None
    # UpdateItem: IsRead, with a new ChangeKey; an old ChangeKey is a conflict.
    old_key = draft.changekey
    draft.is_read = True
    draft.save(update_fields=["is_read"])
    assert draft.changekey != old_key
    assert db.get_message("adam", stored.id).flags.seen is True
    stale = Message(account=account, folder=account.drafts, id=draft.id, changekey=old_key)
    stale.is_read = False
    with pytest.raises(ErrorIrresolvableConflict):
        stale.save(update_fields=["is_read"])
    assert db.get_message("adam", stored.id).flags.seen is True
    # The subject is written into the draft's MIME: the store holds the new bytes under the
    # same id (a new UID for IMAP), and the old ChangeKey no longer fits.
    draft.subject = "Plan B"
    draft.save(update_fields=["subject"])
    assert db.get_message("adam", stored.id).subject == "Plan B"
    assert b"Subject: Plan B" in db.read_raw("adam", stored.id)
    assert db.get_message("adam", stored.id).uid != stored.uid
    draft.subject = "Plan"
    draft.save(update_fields=["subject"])
    # MoveItem answers the item's new id (Exchange's ids change with the folder): the old
    # one no longer finds it; CopyItem makes a new item.
    old_id = draft.id
    draft.move(account.inbox)
    assert _subjects(db, "inbox") == ["Plan"] and _subjects(db, "drafts") == []
    assert draft.id != old_id and account.inbox.get(id=draft.id).subject == "Plan"
    (moved_away,) = account.fetch(ids=[ItemId(id=old_id)])
    assert isinstance(moved_away, ErrorItemNotFound)
    copy_id = draft.copy(account.junk)
    assert copy_id is not None and _subjects(db, "junkemail") == ["Plan"]
    # DeleteItem: to Deleted Items, and for good.
    moved = _only(account.inbox)
    moved.move_to_trash()
    assert _subjects(db, "deleteditems") == ["Plan"] and _subjects(db, "inbox") == []
    trashed = _only(account.trash)
    trashed_id = trashed.id
    trashed.delete()
    assert _subjects(db, "deleteditems") == []
    copied = _only(account.junk)
    # (exchangelib's soft_delete() wants the dumpster folder first, which 2010 SP3 has and
    # sitemail's store does not: the DeleteItem itself is asked for here.)
    assert account.bulk_delete(ids=[copied], delete_type="SoftDelete") == [True]
    assert _subjects(db, "junkemail") == []
    # What is gone is not found; what is not an id is malformed.
    with pytest.raises(ErrorItemNotFound):
        account.trash.get(id=trashed_id)
    (refused,) = account.fetch(ids=[ItemId(id="not-an-id==", changekey="x")])
    assert isinstance(refused, ErrorInvalidIdMalformed)


def test_sending_goes_to_the_outbox_as_owa_sends(servers: Lab) -> None:
    lab = servers
    db = lab.stores["EX-FL1"]
    account = _account(lab)
    Message(
        account=account, subject="Copy kept", body="a", to_recipients=["fiona@contoso.com"]
    ).send_and_save()
    Message(account=account, subject="No copy", body="b", to_recipients=["fiona@contoso.com"]).send(
        save_copy=False
    )
    draft = Message(
        account=account,
        folder=account.drafts,
        subject="From drafts",
        body="c",
        to_recipients=["fiona@contoso.com"],
    )
    draft.save()
    draft.send()
    outbox = {i.subject: i for i in db.list_messages("adam", "outbox").items}
    assert sorted(outbox) == ["Copy kept", "From drafts", "No copy"]
    assert _subjects(db, "drafts") == []
    # The copies are in Sent Items when the requests are answered; what was submitted is
    # flagged deleted, so that the Mail Submission service drops it once sent.
    assert _subjects(db, "sentitems") == ["Copy kept", "From drafts"]
    assert all(item.flags.deleted for item in outbox.values())
    for item in outbox.values():
        db.complete_submission("adam", item.id, save_copy=not item.flags.deleted)
    assert _subjects(db, "sentitems") == ["Copy kept", "From drafts"]
    assert _subjects(db, "outbox") == []
    raw = db.read_raw("adam", db.list_messages("adam", "sentitems").items[0].id)
    assert b"From: Adam User <adam@contoso.com>" in raw and b"To: fiona@contoso.com" in raw


def test_folders_are_created_renamed_moved_emptied_and_deleted(servers: Lab) -> None:
    lab = servers
    db = lab.stores["EX-FL1"]
    account = _account(lab)
    projects = Folder(parent=account.inbox, name="Projects")
    projects.save()
    assert [
        f.path for f in db.list_folders("adam") if f.well_known is None and f.system is None
    ] == ["Inbox/Projects"]
    with pytest.raises(ErrorFolderExists):
        Folder(parent=account.inbox, name="projects").save()
    projects.name = "Tampa"
    projects.save()
    assert db.get_folder("adam", projects_id(db)).name == "Tampa"
    projects.move(account.junk)
    assert [
        f.path for f in db.list_folders("adam") if f.well_known is None and f.system is None
    ] == ["Junk E-Mail/Tampa"]
    # EmptyFolder removes its messages.
    db.append("adam", projects_id(db), mime("One", "1"))
    db.append("adam", projects_id(db), mime("Two", "2"))
    projects.empty()
    assert db.get_folder("adam", projects_id(db)).total == 0
    # The default folders stay where they are.
    with pytest.raises(ErrorDeleteDistinguishedFolder):
        account.inbox.delete()
    with pytest.raises(ErrorMoveDistinguishedFolder):
        account.drafts.move(account.junk)
    with pytest.raises(ErrorCannotDeleteObject):
        account.root.tois.delete()
    gone = FolderId(id=projects.id, changekey=projects.changekey)
    projects.delete()
    assert [f for f in db.list_folders("adam") if f.well_known is None and f.system is None] == []
    (missing,) = GetFolder(account=account).call(
        folders=[gone], additional_fields=[], shape="IdOnly"
    )
    assert isinstance(missing, ErrorFolderNotFound)


def projects_id(db: StoreDatabase) -> int:
    return next(f.id for f in db.list_folders("adam") if f.well_known is None and f.system is None)


def test_write_operations_are_proxied_from_ny_to_fl(servers: Lab) -> None:
    lab = servers
    lab.set_vdir(
        NY_EWS,
        basic_authentication=True,
        external_url="https://mail.contoso.com/EWS/Exchange.asmx",
    )
    account = _account(lab, "mail.contoso.com")
    Folder(parent=account.inbox, name="Via NY").save()
    saved = Message(account=account, folder=account.drafts, subject="Via NY", body="x").save()
    saved.move(account.inbox)
    assert [
        f.name
        for f in lab.stores["EX-FL1"].list_folders("adam")
        if f.well_known is None and f.system is None
    ] == ["Via NY"]
    assert _subjects(lab.stores["EX-FL1"], "inbox") == ["Via NY"]


def test_the_distinguished_folders_of_a_2010_mailbox_answer_with_their_class(
    servers: Lab,
) -> None:
    account = _account(servers)
    classes = {
        "calendar": "IPF.Appointment",
        "contacts": "IPF.Contact",
        "tasks": "IPF.Task",
        "notes": "IPF.StickyNote",
        "journal": "IPF.Journal",
        "inbox": "IPF.Note",
        "sentitems": "IPF.Note",
        "deleteditems": "IPF.Note",
        "drafts": "IPF.Note",
        "outbox": "IPF.Note",
        "junkemail": "IPF.Note",
    }
    folders = {
        name: getattr(account, attribute)
        for name, attribute in (
            ("calendar", "calendar"),
            ("contacts", "contacts"),
            ("tasks", "tasks"),
            ("notes", "notes"),
            ("journal", "journal"),
            ("inbox", "inbox"),
            ("sentitems", "sent"),
            ("deleteditems", "trash"),
            ("drafts", "drafts"),
            ("outbox", "outbox"),
            ("junkemail", "junk"),
        )
    }
    assert {name: f.folder_class for name, f in folders.items()} == classes
    assert folders["calendar"].name == "Calendar" and folders["notes"].name == "Notes"
    assert account.root.tois.folder_class is None  # the Top of Information Store has no class
    with pytest.raises(ErrorDeleteDistinguishedFolder):
        account.calendar.delete()


def test_a_client_speaking_the_2007_sp1_schema_changes_the_mailbox_too(servers: Lab) -> None:
    servers.set_vdir(FL_EWS, basic_authentication=True)
    config = Configuration(
        service_endpoint=url(servers, "ex-fl1.contoso.com"),
        credentials=Credentials("contoso\\adam", PASSWORD),
        auth_type=BASIC,
        version=Version(build=Build(8, 1, 240, 6)),  # RequestServerVersion Exchange2007_SP1
    )
    account = Account("adam@contoso.com", config=config, autodiscover=False, access_type=DELEGATE)
    assert account.version.api_version == "Exchange2007_SP1"
    Folder(parent=account.inbox, name="Old client").save()
    Message(account=account, folder=account.drafts, subject="2007", body="x").save()
    db = servers.stores["EX-FL1"]
    assert [
        f.name for f in db.list_folders("adam") if f.well_known is None and f.system is None
    ] == ["Old client"]
    assert _subjects(db, "drafts") == ["2007"]
