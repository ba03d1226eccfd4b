"""The mailbox database: folders, delivery, paging, flags, moves, UIDs, search, submission."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sitemail.clock import ManualClock
from sitemail.mailbox.database import StoreChange, StoreDatabase
from sitemail.mailbox.errors import (
    FolderExists,
    FolderNotFound,
    FolderProtected,
    InvalidRequest,
    MessageNotFound,
    MessageTooLarge,
    PartNotFound,
)
from sitemail.mailbox.records import Flags, FlagUpdate, WellKnownFolder

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def db(tmp_path: Path, clock: ManualClock) -> Iterator[StoreDatabase]:
    with StoreDatabase(tmp_path / "mailbox" / "DB01.db", clock=clock) as database:
        yield database


def message(
    subject: str = "Hello", body: str = "Hi there\n", sender: str = "bob@contoso.com"
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "alice@contoso.com"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{abs(hash(subject))}@contoso.com>"
    msg.set_content(body)
    return bytes(msg)


# --- folders ------------------------------------------------------------------


def test_new_mailbox_has_the_exchange_2010_default_folders(db: StoreDatabase) -> None:
    folders = db.list_folders("Alice")

    assert [f.name for f in folders] == [
        "Inbox",
        "Drafts",
        "Sent Items",
        "Deleted Items",
        "Junk E-Mail",
        "Outbox",
        "Calendar",
        "Contacts",
        "Journal",
        "Notes",
        "Tasks",
        # Exchange's own default folders in the Top of Information Store, by name.
        "Conversation Action Settings",
        "RSS Feeds",
        "Sync Issues",
        "Conflicts",
        "Local Failures",
        "Server Failures",
    ]
    assert [f.well_known for f in folders[:11]] == list(WellKnownFolder)
    assert all(f.system is not None for f in folders[11:])
    assert all(f.total == 0 and f.unread == 0 and f.uidnext == 1 for f in folders)
    assert db.mailboxes() == ["alice"]  # keyed by the alias, lower-cased


def test_user_folders_nest_rename_and_move(db: StoreDatabase) -> None:
    projects = db.create_folder("alice", "Projects", "inbox")
    alpha = db.create_folder("alice", "Alpha", projects.id)
    assert alpha.path == "Inbox/Projects/Alpha"
    assert db.find_folder("alice", "inbox/PROJECTS/alpha").id == alpha.id

    renamed = db.rename_folder("alice", projects.id, "Work")
    assert renamed.path == "Inbox/Work"
    assert db.get_folder("alice", alpha.id).path == "Inbox/Work/Alpha"

    moved = db.move_folder("alice", alpha.id, None)
    assert moved.path == "Alpha" and moved.parent_id is None
    paths = [f.path for f in db.list_folders("alice")]
    assert paths.index("Inbox/Work") < paths.index("Alpha")


def test_folder_names_are_unique_per_parent_ignoring_case(db: StoreDatabase) -> None:
    db.create_folder("alice", "Reports")
    with pytest.raises(FolderExists):
        db.create_folder("alice", "REPORTS")
    with pytest.raises(FolderExists):
        db.create_folder("alice", "inbox")
    db.create_folder("alice", "Reports", "inbox")  # another parent: fine


@pytest.mark.parametrize("name", ["", "   ", "a/b", " lead", "x" * 256, "tab\there"])
def test_bad_folder_names_are_refused(db: StoreDatabase, name: str) -> None:
    with pytest.raises(InvalidRequest):
        db.create_folder("alice", name)


def test_default_folders_cannot_be_renamed_moved_or_deleted(db: StoreDatabase) -> None:
    user = db.create_folder("alice", "Mine")
    with pytest.raises(FolderProtected):
        db.rename_folder("alice", "inbox", "Posteingang")
    with pytest.raises(FolderProtected):
        db.move_folder("alice", "sentitems", user.id)
    with pytest.raises(FolderProtected):
        db.delete_folder("alice", "deleteditems")


def test_a_folder_cannot_move_into_its_own_subtree(db: StoreDatabase) -> None:
    top = db.create_folder("alice", "Top")
    child = db.create_folder("alice", "Child", top.id)
    with pytest.raises(InvalidRequest):
        db.move_folder("alice", top.id, child.id)
    with pytest.raises(InvalidRequest):
        db.move_folder("alice", top.id, top.id)


def test_deleting_a_folder_removes_its_subtree_and_messages(db: StoreDatabase) -> None:
    top = db.create_folder("alice", "Top")
    child = db.create_folder("alice", "Child", top.id)
    placed = db.append("alice", child.id, message())

    removed = db.delete_folder("alice", top.id)

    assert removed == [top.id, child.id]
    assert {"Top", "Child"}.isdisjoint(f.name for f in db.list_folders("alice"))
    with pytest.raises(MessageNotFound):
        db.get_message("alice", placed.message_id)
    with pytest.raises(FolderNotFound):
        db.get_folder("alice", child.id)


def test_folders_of_one_mailbox_are_invisible_to_another(db: StoreDatabase) -> None:
    mine = db.create_folder("alice", "Private")
    with pytest.raises(FolderNotFound):
        db.get_folder("bob", mine.id)
    with pytest.raises(InvalidRequest):
        db.get_folder("alice", "nosuchwellknown")


# --- delivery -----------------------------------------------------------------


def test_delivery_is_stored_once_per_delivery_id(db: StoreDatabase) -> None:
    raw = message()
    first = db.deliver("alice", "00000001:alice@contoso.com", raw)
    again = db.deliver("alice", "00000001:alice@contoso.com", raw)
    other = db.deliver("alice", "00000002:alice@contoso.com", raw)

    assert not first.duplicate and again.duplicate and not other.duplicate
    assert again.message_id == first.message_id and again.uid == first.uid
    assert other.message_id != first.message_id
    inbox = db.get_folder("alice", "inbox")
    assert (inbox.total, inbox.unread) == (2, 2)


def test_redelivery_after_the_user_deleted_the_message_does_not_bring_it_back(
    db: StoreDatabase,
) -> None:
    first = db.deliver("alice", "7:alice@contoso.com", message())
    db.delete("alice", first.message_id, hard=True)

    again = db.deliver("alice", "7:alice@contoso.com", message())

    assert again.duplicate and again.message_id == first.message_id
    assert again.folder_id is None and again.uid is None
    assert db.get_folder("alice", "inbox").total == 0


def test_same_delivery_id_in_two_mailboxes_is_two_deliveries(db: StoreDatabase) -> None:
    a = db.deliver("alice", "9", message())
    b = db.deliver("bob", "9", message())
    assert not a.duplicate and not b.duplicate


def test_a_batch_is_stored_in_one_commit_each_recipient_answered_alone(tmp_path: Path) -> None:
    with StoreDatabase(tmp_path / "batch.db", max_message_size=2000) as small:
        small.deliver("alice", "1:alice", message("first"))
        changes: list[StoreChange] = []
        small.subscribe(changes.append)
        shared = tmp_path / "shared.eml"
        shared.write_bytes(message("shared"))
        big = b"Subject: x\r\n\r\n" + b"a" * 2000

        answers = small.deliver_many(
            [
                ("alice", "1:alice", message("first")),  # delivered before: a duplicate
                ("alice", "2:alice", shared),
                ("bob", "2:bob", shared),  # one file, two mailboxes
                ("bob", "3:bob", big),
                ("bob", "tab\tid", message("bad id")),
            ]
        )

        first, alice, bob, too_large, bad_id = answers
        assert not isinstance(first, Exception) and first.duplicate
        assert not isinstance(alice, Exception) and not alice.duplicate
        assert not isinstance(bob, Exception) and not bob.duplicate
        assert isinstance(too_large, MessageTooLarge) and isinstance(bad_id, InvalidRequest)
        assert [m.subject for m in small.list_messages("alice", "inbox").items] == [
            "shared",
            "first",
        ]
        assert [m.subject for m in small.list_messages("bob", "inbox").items] == ["shared"]
        # Subscribers (IMAP IDLE, EWS notifications) hear of both mailboxes.
        assert {c.mailbox for c in changes} == {"alice", "bob"}
        # A redelivered batch stores nothing again.
        again = small.deliver_many([("bob", "2:bob", shared)])
        assert not isinstance(again[0], Exception) and again[0].duplicate
        assert small.get_folder("bob", "inbox").total == 1


def test_raw_bytes_come_back_identical_including_every_byte_value(
    db: StoreDatabase, tmp_path: Path
) -> None:
    raw = b"Subject: binary\r\n\r\n" + bytes(range(256)) * 3000 + b"\r\n.\r\n\x00"
    spool = tmp_path / "spool.eml"
    spool.write_bytes(raw)

    result = db.deliver("alice", "bin", spool)

    assert db.read_raw("alice", result.message_id) == raw
    with db.open_raw("alice", result.message_id, start=5, length=100) as reader:
        assert reader.size == 100
        assert reader.read(1000) == raw[5:105]
        assert reader.read() == b""


def test_oversized_messages_are_refused(tmp_path: Path) -> None:
    with StoreDatabase(tmp_path / "small.db", max_message_size=1000) as small:
        with pytest.raises(MessageTooLarge):
            small.deliver("alice", "big", b"Subject: x\r\n\r\n" + b"a" * 1000)
        assert small.get_folder("alice", "inbox").total == 0


@pytest.mark.parametrize("bad", ["", "x" * 513, "tab\tid"])
def test_bad_delivery_ids_are_refused(db: StoreDatabase, bad: str) -> None:
    with pytest.raises(InvalidRequest):
        db.deliver("alice", bad, message())


def test_summary_and_structure_are_kept(db: StoreDatabase) -> None:
    msg = EmailMessage()
    msg["From"] = "Bob <bob@contoso.com>"
    msg["To"] = "alice@contoso.com"
    msg["Bcc"] = "audit@contoso.com"
    msg["Subject"] = "Report"
    msg.set_content("See attached.\n")
    msg.add_attachment(
        b"%PDF-1.4 \x00\xff" * 100, maintype="application", subtype="pdf", filename="r.pdf"
    )
    result = db.deliver("alice", "r", bytes(msg))

    detail = db.get_message("alice", result.message_id)

    assert detail.subject == "Report" and detail.has_attachments
    assert detail.from_address is not None and detail.from_address.name == "Bob"
    assert [a.address for a in detail.bcc] == ["audit@contoso.com"]
    assert detail.preview == "See attached."
    assert detail.received_at == START
    attachment = detail.structure.find("2")
    assert attachment is not None and attachment.filename == "r.pdf"
    with db.open_part("alice", result.message_id, "2") as part:
        decoded = b"".join(iter(part.read, b""))
    assert decoded == b"%PDF-1.4 \x00\xff" * 100
    with pytest.raises(PartNotFound):
        db.open_part("alice", result.message_id, "")  # the multipart itself has no body to give


def test_data_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "DB02.db"
    with StoreDatabase(path) as first:
        result = first.deliver("alice", "1", message("persist"))
        first.create_folder("alice", "Kept")
    with StoreDatabase(path) as again:
        assert again.get_message("alice", result.message_id).subject == "persist"
        assert again.find_folder("alice", "Kept").name == "Kept"
        assert again.deliver("alice", "1", message("persist")).duplicate


# --- listing ------------------------------------------------------------------


def test_messages_are_paged_newest_first(db: StoreDatabase, clock: ManualClock) -> None:
    for n in range(7):
        db.deliver("alice", f"id{n}", message(f"m{n}"))
        clock.advance(60)

    first = db.list_messages("alice", "inbox", limit=3)
    second = db.list_messages("alice", "inbox", offset=3, limit=3)
    last = db.list_messages("alice", "inbox", offset=6, limit=3)
    oldest = db.list_messages("alice", "inbox", limit=2, oldest_first=True)

    assert first.total == 7
    assert [m.subject for m in first.items] == ["m6", "m5", "m4"]
    assert [m.subject for m in second.items] == ["m3", "m2", "m1"]
    assert [m.subject for m in last.items] == ["m0"]
    assert [m.subject for m in oldest.items] == ["m0", "m1"]
    assert first.items[0].received_at == START + timedelta(minutes=6)


@pytest.mark.parametrize(("offset", "limit"), [(-1, 10), (0, 0), (0, 1001)])
def test_page_bounds_are_enforced(db: StoreDatabase, offset: int, limit: int) -> None:
    with pytest.raises(InvalidRequest):
        db.list_messages("alice", "inbox", offset=offset, limit=limit)


# --- flags, moves, copies, deletes ---------------------------------------------


def test_flags_change_and_unread_counts_follow(db: StoreDatabase) -> None:
    a = db.deliver("alice", "a", message("a"))
    db.deliver("alice", "b", message("b"))

    summary = db.set_flags("alice", a.message_id, FlagUpdate(seen=True, flagged=True))

    assert summary.flags == Flags(seen=True, flagged=True)
    assert summary.modseq > 0
    inbox = db.get_folder("alice", "inbox")
    assert (inbox.total, inbox.unread) == (2, 1)
    cleared = db.set_flags("alice", a.message_id, FlagUpdate(flagged=False))
    assert cleared.flags == Flags(seen=True)


def test_store_flags_on_uids_adds_removes_and_replaces(db: StoreDatabase) -> None:
    uids = [db.deliver("alice", str(n), message(str(n))).uid for n in range(3)]
    assert all(uid is not None for uid in uids)
    known = [u for u in uids if u is not None]

    added = db.store_flags("alice", "inbox", [*known, 999], add=["seen", "answered"])
    assert [e.uid for e in added] == known  # 999 does not exist: not reported
    assert all(e.flags == Flags(seen=True, answered=True) for e in added)

    removed = db.store_flags("alice", "inbox", known[:1], remove=["answered"])
    assert removed[0].flags == Flags(seen=True)

    replaced = db.store_flags("alice", "inbox", known[1:2], replace=["deleted"])
    assert replaced[0].flags == Flags(deleted=True)

    with pytest.raises(InvalidRequest):
        db.store_flags("alice", "inbox", known, add=["recent"])


def test_move_gives_a_new_uid_and_the_old_one_vanishes(db: StoreDatabase) -> None:
    delivered = db.deliver("alice", "m", message())
    archive = db.create_folder("alice", "Archive")
    before = db.get_folder("alice", "inbox").modseq

    placed = db.move("alice", delivered.message_id, archive.id)

    assert placed.message_id == delivered.message_id and placed.folder_id == archive.id
    assert placed.uid == 1
    changes = db.changes("alice", "inbox", before)
    assert changes.vanished == [delivered.uid] and changes.changed == []
    assert db.get_message("alice", delivered.message_id).folder_id == archive.id


def test_copy_shares_content_and_survives_deleting_the_original(db: StoreDatabase) -> None:
    raw = message("shared", "x" * 5000)
    original = db.deliver("alice", "o", raw)
    db.set_flags("alice", original.message_id, FlagUpdate(flagged=True))

    copy = db.copy("alice", original.message_id, "drafts")
    db.delete("alice", original.message_id, hard=True)

    assert copy.message_id != original.message_id
    assert db.read_raw("alice", copy.message_id) == raw
    copied = db.get_message("alice", copy.message_id)
    assert copied.flags.flagged and copied.received_at == START


def test_delete_moves_to_deleted_items_then_deletes_for_good(db: StoreDatabase) -> None:
    delivered = db.deliver("alice", "d", message())

    first = db.delete("alice", delivered.message_id)
    assert first is not None
    assert first.folder_id == db.get_folder("alice", "deleteditems").id

    second = db.delete("alice", delivered.message_id)
    assert second is None
    with pytest.raises(MessageNotFound):
        db.read_raw("alice", delivered.message_id)


def test_expunge_removes_only_messages_flagged_deleted(db: StoreDatabase) -> None:
    uids = [db.deliver("alice", str(n), message(str(n))).uid for n in range(4)]
    db.store_flags("alice", "inbox", [u for u in uids[:3] if u], add=["deleted"])

    only_first = db.expunge("alice", "inbox", [u for u in uids[:1] if u])
    rest = db.expunge("alice", "inbox")

    assert only_first.uids == uids[:1]
    assert rest.uids == uids[1:3]
    assert [e.uid for e in db.uids("alice", "inbox").entries] == uids[3:]


def test_a_message_of_another_mailbox_is_not_found(db: StoreDatabase) -> None:
    delivered = db.deliver("alice", "p", message())
    with pytest.raises(MessageNotFound):
        db.get_message("bob", delivered.message_id)
    with pytest.raises(MessageNotFound):
        db.read_raw("bob", delivered.message_id)
    with pytest.raises(MessageNotFound):
        db.move("bob", delivered.message_id, "drafts")


def test_a_reader_opened_before_a_delete_still_reads_the_whole_message(
    db: StoreDatabase,
) -> None:
    raw = message("snap", "y" * 600_000)
    delivered = db.deliver("alice", "s", raw)

    with db.open_raw("alice", delivered.message_id) as reader:
        head = reader.read(1000)
        db.delete("alice", delivered.message_id, hard=True)
        rest = b"".join(iter(reader.read, b""))

    assert head + rest == raw


# --- UIDs ---------------------------------------------------------------------


def test_uids_page_and_report_folder_state(db: StoreDatabase) -> None:
    for n in range(5):
        db.deliver("alice", str(n), message(str(n)))

    page = db.uids("alice", "inbox", since=1, limit=2)

    assert [e.uid for e in page.entries] == [2, 3] and page.more
    assert page.uidnext == 6
    assert page.uidvalidity == db.get_folder("alice", "inbox").uidvalidity
    assert not db.uids("alice", "inbox", since=3).more


def test_recreated_folder_gets_a_new_uidvalidity(db: StoreDatabase) -> None:
    first = db.create_folder("alice", "Temp")
    db.delete_folder("alice", first.id)
    second = db.create_folder("alice", "Temp")
    assert second.id != first.id
    assert second.uidvalidity > first.uidvalidity


def test_changes_report_flag_changes_additions_and_removals(db: StoreDatabase) -> None:
    a = db.deliver("alice", "a", message("a"))
    b = db.deliver("alice", "b", message("b"))
    mark = db.get_folder("alice", "inbox").modseq

    db.set_flags("alice", a.message_id, FlagUpdate(seen=True))
    c = db.deliver("alice", "c", message("c"))
    db.delete("alice", b.message_id)

    changes = db.changes("alice", "inbox", mark)
    assert [e.uid for e in changes.changed] == [a.uid, c.uid]
    assert changes.vanished == [b.uid]
    assert changes.modseq > mark
    assert db.changes("alice", "inbox", changes.modseq).changed == []


OPS = st.lists(
    st.tuples(
        st.sampled_from(["deliver", "move", "copy", "delete", "expunge"]), st.integers(0, 50)
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=25, deadline=None)
@given(OPS)
def test_uids_only_grow_and_are_never_reused_in_a_folder(ops: list[tuple[str, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp, StoreDatabase(Path(tmp) / "p.db") as db:
        other = db.create_folder("alice", "Other").id
        inbox = db.get_folder("alice", "inbox").id
        given_out: dict[int, list[int]] = {inbox: [], other: []}
        for n, (op, pick) in enumerate(ops):
            live = [e.message_id for f in (inbox, other) for e in db.uids("alice", f).entries]
            if op == "deliver" or not live:
                result = db.deliver("alice", f"d{n}", message(f"s{n}"))
                assert result.folder_id is not None and result.uid is not None
                given_out[result.folder_id].append(result.uid)
                continue
            target = live[pick % len(live)]
            where = db.get_message("alice", target).folder_id
            elsewhere = other if where == inbox else inbox
            if op == "move":
                placed = db.move("alice", target, elsewhere)
                given_out[placed.folder_id].append(placed.uid)
            elif op == "copy":
                placed = db.copy("alice", target, where)
                given_out[placed.folder_id].append(placed.uid)
            elif op == "delete":
                db.delete("alice", target, hard=True)
            else:
                db.set_flags("alice", target, FlagUpdate(deleted=True))
                db.expunge("alice", where)
        for folder, uids in given_out.items():
            assert uids == sorted(set(uids))  # strictly increasing: never repeated
            assert db.get_folder("alice", folder).uidnext > max(uids, default=0)


# --- append, search -------------------------------------------------------------


def test_append_keeps_flags_and_received_time(db: StoreDatabase) -> None:
    when = datetime(2025, 12, 24, 18, 0, tzinfo=UTC)
    placed = db.append(
        "alice", "sentitems", message("sent one"), flags=Flags(seen=True), received_at=when
    )

    sent = db.list_messages("alice", "sentitems")
    assert [m.id for m in sent.items] == [placed.message_id]
    assert sent.items[0].flags == Flags(seen=True)
    assert sent.items[0].received_at == when
    assert placed.uid == 1


def test_search_matches_subject_sender_and_text_ignoring_case(db: StoreDatabase) -> None:
    db.deliver("alice", "1", message("Quarterly ÜBERSICHT", "numbers inside"))
    db.deliver("alice", "2", message("Lunch", "see you at noon", sender="Zoë <zoe@fabrikam.com>"))
    draft = db.append("alice", "drafts", message("Draft", "the quarterly plan"))

    assert [m.subject for m in db.search("alice", "übersicht").items] == ["Quarterly ÜBERSICHT"]
    assert [m.subject for m in db.search("alice", "ZOË").items] == ["Lunch"]
    assert [m.subject for m in db.search("alice", "noon", fields=["text"]).items] == ["Lunch"]
    assert db.search("alice", "noon", fields=["subject"]).total == 0
    both = db.search("alice", "quarterly")
    assert both.total == 2
    in_drafts = db.search("alice", "quarterly", folder="drafts")
    assert [m.id for m in in_drafts.items] == [draft.message_id]
    with pytest.raises(InvalidRequest):
        db.search("alice", "   ")
    with pytest.raises(InvalidRequest):
        db.search("alice", "x", fields=["body"])


# --- submission, notifications ---------------------------------------------------


def test_submission_goes_outbox_then_sent_items(db: StoreDatabase) -> None:
    draft = db.append("alice", "drafts", message("to send"), flags=Flags(draft=True))
    in_outbox = db.submit("alice", draft.message_id)

    pending = db.pending_submissions()
    assert [(p.mailbox, p.message.id) for p in pending] == [("alice", draft.message_id)]
    assert in_outbox.folder_id == db.get_folder("alice", "outbox").id

    done = db.complete_submission("alice", draft.message_id)
    assert done is not None and done.folder_id == db.get_folder("alice", "sentitems").id
    assert db.get_message("alice", draft.message_id).flags.seen
    assert db.pending_submissions() == []
    assert db.complete_submission("alice", draft.message_id) == done  # a repeat changes nothing


def test_subscribers_hear_of_committed_changes_only(db: StoreDatabase) -> None:
    heard: list[StoreChange] = []
    unsubscribe = db.subscribe(heard.append)
    delivered = db.deliver("alice", "n", message())
    with pytest.raises(FolderExists):
        db.create_folder("alice", "Inbox")

    assert len(heard) == 1  # the delivery, not the failed folder creation
    assert heard[0].mailbox == "alice" and delivered.folder_id in heard[0].folder_ids
    assert heard[0].modseq == db.get_folder("alice", "inbox").modseq
    unsubscribe()
    db.deliver("alice", "n2", message())
    assert len(heard) == 1


def test_a_mailbox_of_an_older_store_gets_the_default_folders_it_lacks(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with StoreDatabase(path) as old:
        old.append("alice", "inbox", b"Subject: kept\r\n\r\nx\r\n")
        # As an older sitemail left it: mail folders only, and a "Notes" of the user's own.
        old._conn.execute(
            "DELETE FROM folders WHERE well_known IN ('calendar','contacts','journal','tasks')"
        )
        old._conn.execute("UPDATE folders SET well_known=NULL WHERE well_known='notes'")
        old._conn.commit()
        notes_id = old.find_folder("alice", "Notes").id
    with StoreDatabase(path) as again:
        folders = {f.well_known: f for f in again.list_folders("alice") if f.well_known}
        assert set(folders) == set(WellKnownFolder)
        assert folders[WellKnownFolder.CALENDAR].name == "Calendar"
        assert folders[WellKnownFolder.NOTES].id == notes_id  # adopted, not doubled
        assert again.get_folder("alice", "inbox").total == 1


def test_replaced_content_keeps_the_message_id_under_a_new_uid(db: StoreDatabase) -> None:
    raw = b"From: a@contoso.com\r\nSubject: One\r\n\r\nfirst\r\n"
    placed = db.append("adam", "drafts", raw, flags=Flags(draft=True))
    copy = db.copy("adam", placed.message_id, "inbox")
    db.set_properties("adam", placed.message_id, {"item:ReminderIsSet": "true"})
    before = db.get_folder("adam", "drafts").modseq
    new = db.replace("adam", placed.message_id, raw.replace(b"One", b"Two"))
    assert new.message_id == placed.message_id and new.uid != placed.uid
    assert db.get_message("adam", placed.message_id).subject == "Two"
    assert db.get_message("adam", placed.message_id).flags.draft  # flags stay
    assert db.get_properties("adam", placed.message_id).properties == {"item:ReminderIsSet": "true"}
    # IMAP sees the old UID vanish and the new one appear; the copy keeps the old content.
    changes = db.changes("adam", "drafts", before)
    assert changes.vanished == [placed.uid] and [c.uid for c in changes.changed] == [new.uid]
    assert db.get_message("adam", copy.message_id).subject == "One"
    with pytest.raises(InvalidRequest):
        db.set_properties("adam", placed.message_id, {"big": "x" * 200_000})
    with pytest.raises(MessageNotFound):
        db.replace("adam", 9999, raw)


def test_version_moves_on_every_commit_and_is_not_read_while_another_thread_holds_it(
    db: StoreDatabase,
) -> None:
    """The store answers a kept folder page on its event loop under this version: it must
    move on this connection's commits and on another process's, and the loop must never
    wait behind a thread that holds the database (a writer's fsync)."""
    db.ensure_mailbox("adam")
    first = db.version_if_free()
    assert first is not None and first == db.version()
    db.deliver("adam", "00000001:adam@contoso.com", message("one"))
    mine = db.version_if_free()
    assert mine is not None and mine != first
    other = StoreDatabase(db.path, name=db.name)  # another connection, as another process
    try:
        other.deliver("adam", "00000002:adam@contoso.com", message("two"))
    finally:
        other.close()
    theirs = db.version_if_free()
    assert theirs is not None and theirs != mine

    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db._lock:
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        assert db.version_if_free() is None
    finally:
        release.set()
        holder.join()
    assert db.version_if_free() == theirs
