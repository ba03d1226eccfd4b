"""A 2010 mailbox's whole folder hierarchy through EWS, driven by exchangelib on in-process CAS.

The root holds the Top of Information Store and Exchange's own folders beside
it (Common Views, Finder, Recoverable Items ...), which only EWS shows; a
folder keeps the class it was created with (or none); names are unique in
any case; a move gives a new ChangeKey; a soft delete keeps the item in
Recoverable Items\\Deletions.  Each assertion is checked in the mailbox
database too.
"""

from __future__ import annotations

import pytest
from exchangelib import UTC, Account, EWSDateTime, ExtendedProperty, Message
from exchangelib.errors import (
    ErrorDeleteDistinguishedFolder,
    ErrorFolderExists,
    ErrorInvalidRequest,
    ErrorInvalidUserInfo,
    ErrorItemNotFound,
    ErrorItemSave,
    ErrorNoPublicFolderReplicaAvailable,
    ErrorObjectTypeChanged,
)
from exchangelib.folders import (
    CommonViews,
    Folder,
    Messages,
    PublicFoldersRoot,
    RecoverableItemsDeletions,
    RootOfHierarchy,
    SearchFolders,
)
from exchangelib.properties import CalendarPermission, Permission, PermissionSet, UserId
from tests.unit.access.test_ews_exchangelib import FL_EWS, ews_account, lab_names, servers, url
from tests.unit.access.test_web_front import Lab

__all__ = ["lab_names", "servers"]


def _account(lab: Lab) -> Account:
    lab.set_vdir(FL_EWS, basic_authentication=True)
    return ews_account(url(lab, "ex-fl1.contoso.com"), "contoso\\adam", "adam@contoso.com")


def test_the_root_holds_exchanges_own_folders_beside_the_top_of_the_store(servers: Lab) -> None:
    account = _account(servers)
    root = account.root
    assert root.name == "root" and root.tree().startswith("root")
    assert account.calendar.absolute == "/root/Top of Information Store/Calendar"
    assert root.tois.folder_class is None
    names = {f.name for f in root.children}
    assert {"Top of Information Store", "Common Views", "Finder", "Recoverable Items"} <= names
    assert isinstance(root / "Common Views", CommonViews)
    assert (root / "Common Views").folder_class is None
    dumpster = account.recoverable_items_deletions
    assert isinstance(dumpster, RecoverableItemsDeletions) and dumpster.name == "Deletions"
    assert dumpster.parent.name == "Recoverable Items" and dumpster.parent.parent == root
    assert isinstance(root.get_default_folder(SearchFolders), SearchFolders)
    walked = [f.name for f in root.walk()]
    assert len(walked) >= 25 and walked.count("Deletions") == 1
    # Exchange's own folders stay: they are not the user's to delete.
    with pytest.raises(ErrorDeleteDistinguishedFolder):
        dumpster.delete()
    # Every other protocol sees the Top of Information Store only.
    db = servers.stores["EX-FL1"]
    assert "Common Views" not in {f.name for f in db.list_folders("adam")}
    every = db.list_folders("adam", everything=True)
    assert {f.name for f in every if not f.ipm} >= {"Common Views", "Deletions", "Finder"}
    # The organization has no public folders.
    with pytest.raises(ErrorNoPublicFolderReplicaAvailable):
        list(PublicFoldersRoot(account=account).get_children(account.inbox))


def test_a_folder_keeps_its_class_and_its_name_is_unique_in_any_case(servers: Lab) -> None:
    account = _account(servers)
    db = servers.stores["EX-FL1"]
    plain = Folder(parent=account.inbox, name="PLAIN").save()
    plain.refresh()  # a Folder made without a class comes back as one
    assert type(plain) is Folder and plain.folder_class is None
    mail = Messages(parent=account.inbox, name="Mail").save()
    mail.refresh()
    assert mail.folder_class == "IPF.Note"
    assert {
        f.name: f.folder_class
        for f in db.list_folders("adam")
        if f.well_known is None and f.system is None
    } == {
        "Mail": "IPF.Note",
        "PLAIN": "",
    }
    with pytest.raises(ErrorFolderExists) as refused:
        Folder(parent=account.inbox, name="plain").save()
    assert "Could not create folder 'plain'" in refused.value.args[0]
    with pytest.raises(ErrorObjectTypeChanged):
        mail.folder_class = "IPF.Other"
        mail.save(update_fields=["folder_class"])
    # A move gives the folder a new ChangeKey, and the same id.
    before = (mail.id, mail.changekey)
    mail.move(plain)
    assert mail.id == before[0] and mail.changekey != before[1]
    assert "Inbox/PLAIN/Mail" in {f.path for f in db.list_folders("adam")}
    # A deleted folder's id names nothing UpdateFolder can bind.
    gone = (mail.id, mail.changekey)
    mail.delete()
    mail.id, mail.changekey = gone
    with pytest.raises(ErrorItemNotFound):
        mail.save()


def test_a_soft_delete_keeps_the_item_in_recoverable_items(servers: Lab) -> None:
    account = _account(servers)
    db = servers.stores["EX-FL1"]
    item = Message(account=account, folder=account.inbox, subject="Keep me", body="x").save()
    gone = (item.id, item.changekey)
    item.soft_delete()
    (missing,) = list(account.fetch(ids=[gone]))
    assert isinstance(missing, ErrorItemNotFound)
    assert account.inbox.filter(subject="Keep me").count() == 0
    assert account.trash.filter(subject="Keep me").count() == 0
    assert [i.subject for i in account.recoverable_items_deletions.all()] == ["Keep me"]
    # Outside EWS the dumpster is out of sight: a search of the mailbox does not find it.
    assert db.get_folder("adam", "recoverableitemsdeletions").total == 1
    assert db.search("adam", "Keep me").total == 0
    # From the dumpster, a soft delete is for good.
    (kept,) = list(account.recoverable_items_deletions.all())
    kept.soft_delete()
    assert db.get_folder("adam", "recoverableitemsdeletions").total == 0
    # Emptying a folder softly keeps its items there too; its own folders stay.
    issues = account.root.tois / "Sync Issues"
    Message(account=account, folder=issues, subject="Issue", body="x").save()
    Folder(parent=issues, name="Mine").save()
    issues.empty(delete_sub_folders=True, delete_type="SoftDelete")
    assert [i.subject for i in account.recoverable_items_deletions.all()] == ["Issue"]
    assert sorted(f.name for f in issues.children) == [
        "Conflicts",
        "Local Failures",
        "Server Failures",
    ]


def test_a_folder_keeps_its_permissions_and_extended_properties(servers: Lab) -> None:
    account = _account(servers)
    db = servers.stores["EX-FL1"]
    folder = Folder(parent=account.inbox, name="Shared").save()
    folder.refresh()
    # A new folder has Exchange 2010's two entries, without rights.
    users = [p.user_id.distinguished_user for p in folder.permission_set.permissions]
    assert users == ["Default", "Anonymous"]
    folder.permission_set = PermissionSet(
        permissions=[
            Permission(
                user_id=UserId(primary_smtp_address="alice@contoso.com"),
                can_create_items=True,
                is_folder_visible=True,
                edit_items="Owned",
                delete_items="Owned",
                read_items="FullDetails",
            )
        ]
    )
    folder.save(update_fields=["permission_set"])
    folder.refresh()
    (alice,) = [p for p in folder.permission_set.permissions if p.user_id.primary_smtp_address]
    assert alice.user_id.primary_smtp_address == "alice@contoso.com"
    assert (alice.can_create_items, alice.edit_items, alice.read_items) == (
        True,
        "Owned",
        "FullDetails",
    )
    shared = next(f.id for f in db.list_folders("adam") if f.name == "Shared")
    kept = db.get_folder_properties("adam", shared)
    assert [e["user"] for e in kept.properties["permissions"]] == [
        "Default",
        "Anonymous",
        "alice@contoso.com",
    ]
    # Someone outside the organization cannot be given rights.
    folder.permission_set = PermissionSet(
        permissions=[Permission(user_id=UserId(primary_smtp_address="eve@example.net"))]
    )
    with pytest.raises(ErrorInvalidUserInfo):
        folder.save(update_fields=["permission_set"])

    class Marker(ExtendedProperty):
        property_set_id = "c11ff724-aa03-4555-9952-8fa248a11c3e"
        property_name = "sitemail-marker"
        property_type = "String"

    class Size(ExtendedProperty):
        property_tag = 0x0E08
        property_type = "Long"

    Folder.register("marker", Marker)
    Folder.register("size", Size)
    try:
        folder.marker = "blue"
        folder.save(update_fields=["marker"])
        folder.refresh()
        assert folder.marker == "blue"
        assert [f.marker for f in account.inbox.children if f.name == "Shared"] == ["blue"]
        Message(account=account, folder=folder, subject="Sized", body="x" * 500).save()
        folder.refresh()
        assert folder.size == db.get_folder("adam", shared).size > 500
    finally:
        Folder.deregister("marker")
        Folder.deregister("size")
    RootOfHierarchy.register("size", Size)
    try:
        account.root.refresh()
        assert account.root.size >= folder.size
    finally:
        RootOfHierarchy.deregister("size")


def test_user_configurations_live_in_their_folder(servers: Lab) -> None:
    account = _account(servers)
    db = servers.stores["EX-FL1"]
    folder = Messages(parent=account.inbox, name="Settings").save()
    with pytest.raises(ErrorItemNotFound):
        folder.get_user_configuration(name="Sitemail.Test")
    when = EWSDateTime(2026, 12, 7, 5, 30, tzinfo=UTC)
    dictionary = {"color": "blue", 7: True, True: ("a", "b"), b"k" * 4: when, "n": 2**40}
    folder.create_user_configuration(
        name="Sitemail.Test", dictionary=dictionary, xml_data=b"<a>1</a>", binary_data=b"\x00\x01"
    )
    got = folder.get_user_configuration(name="sitemail.test")  # names in any case
    assert got.dictionary == dictionary
    assert (got.xml_data, got.binary_data) == (b"<a>1</a>", b"\x00\x01")
    with pytest.raises(ErrorItemSave):
        folder.create_user_configuration(name="Sitemail.Test")
    with pytest.raises(ErrorItemNotFound):
        account.inbox.get_user_configuration(name="Sitemail.Test")
    folder.update_user_configuration(name="Sitemail.Test", xml_data=b"<b/>")
    only_xml = folder.get_user_configuration(name="Sitemail.Test", properties="XmlData")
    assert (only_xml.dictionary, only_xml.xml_data, only_xml.binary_data) == (None, b"<b/>", None)
    assert folder.get_user_configuration(name="Sitemail.Test").binary_data == b"\x00\x01"
    settings = next(f.id for f in db.list_folders("adam") if f.name == "Settings")
    assert list(db.get_folder_properties("adam", settings).properties["configurations"]) == [
        "sitemail.test"
    ]
    with pytest.raises(ErrorInvalidRequest):
        folder.create_user_configuration(name="IPM.Configuration.X")
    folder.delete_user_configuration(name="Sitemail.Test")
    with pytest.raises(ErrorItemNotFound):
        folder.delete_user_configuration(name="Sitemail.Test")
    assert db.get_folder_properties("adam", settings).properties == {}


def test_a_calendar_has_calendar_permissions(servers: Lab) -> None:
    account = _account(servers)
    calendar = account.calendar
    calendar.refresh()
    default = calendar.permission_set.calendar_permissions[0]
    assert default.user_id.distinguished_user == "Default"
    assert (default.calendar_permission_level, default.read_items) == (
        "FreeBusyTimeOnly",
        "TimeOnly",
    )
    calendar.permission_set = PermissionSet(
        calendar_permissions=[
            CalendarPermission(
                user_id=UserId(primary_smtp_address="alice@contoso.com"),
                calendar_permission_level="Reviewer",
            )
        ]
    )
    calendar.save(update_fields=["permission_set"])
    calendar.refresh()
    levels = {
        p.user_id.primary_smtp_address or p.user_id.distinguished_user: p.calendar_permission_level
        for p in calendar.permission_set.calendar_permissions
    }
    assert levels == {"Default": "None", "Anonymous": "None", "alice@contoso.com": "Reviewer"}
