"""EWS pull and streaming notifications, driven by exchangelib on two in-process CAS.

The servers are :mod:`tests.unit.access.test_ews_exchangelib`'s.  Mail is
delivered, moved and deleted through the store (as the hub and IMAP clients
do) and through EWS; each event is checked against what the store holds.
"""

from __future__ import annotations

import pytest
from exchangelib import Message
from exchangelib.errors import (
    ErrorExceededSubscriptionCount,
    ErrorExpiredSubscription,
    ErrorInvalidSubscription,
    ErrorInvalidWatermark,
    ErrorSubscriptionNotFound,
)
from exchangelib.folders import Folder
from exchangelib.properties import DeletedEvent, MovedEvent, StatusEvent
from exchangelib.services import GetEvents
from tests.unit.access.test_ews_exchangelib import (
    NY_EWS,
    ews_account,
    lab_names,
    mime,
    servers,
    url,
)
from tests.unit.access.test_ews_write import _account
from tests.unit.access.test_web_front import Lab

from sitemail.access.ews_handler import EwsHandler
from sitemail.access.ews_ids import folder_id, item_id
from sitemail.access.ews_notifications import MAX_EVENTS
from sitemail.access.ews_subscriptions import MAX_PER_MAILBOX
from sitemail.mailbox.records import FlagUpdate

__all__ = ["lab_names", "servers"]


def _kinds(events: list[object]) -> list[tuple[str, str | None]]:
    """Each event's class and the id of the item or folder it is about."""
    out: list[tuple[str, str | None]] = []
    for event in events:
        ident = getattr(event, "item_id", None) or getattr(event, "folder_id", None)
        out.append((type(event).__name__, ident.id if ident is not None else None))
    return sorted(out)


def test_pull_subscription_reports_what_the_store_changed(servers: Lab) -> None:
    lab = servers
    db = lab.stores["EX-FL1"]
    inbox_id = db.get_folder("adam", "inbox").id  # item ids name their folder
    account = _account(lab)
    inbox = account.inbox
    kept = db.deliver("adam", "n:0", mime("Before", "x")).message_id
    sub_id, mark = inbox.subscribe_to_pull()
    # Nothing yet: a StatusEvent, with a watermark for next time.
    (note,) = list(inbox.get_events(sub_id, mark))
    assert [type(e) for e in note.events] == [StatusEvent] and note.more_events is False
    mark = note.events[-1].watermark
    # A delivery, a read flag set through IMAP, a move out, a folder made below the Inbox.
    new = db.deliver("adam", "n:1", mime("New", "y")).message_id
    db.set_flags("adam", kept, FlagUpdate(seen=True))
    child = Folder(parent=inbox, name="Child")
    child.save()
    (note,) = list(inbox.get_events(sub_id, mark))
    child_id = next(f.id for f in db.list_folders("adam") if f.name == "Child")
    assert _kinds(note.events) == sorted(
        [
            ("CreatedEvent", item_id("adam", new, inbox_id)),
            ("NewMailEvent", item_id("adam", new, inbox_id)),
            ("ModifiedEvent", item_id("adam", kept, inbox_id)),
            ("CreatedEvent", folder_id("adam", child_id)),
        ]
    )
    assert all(
        e.parent_folder_id.id == folder_id("adam", db.get_folder("adam", "inbox").id)
        for e in note.events
    )
    previous, mark = mark, note.events[-1].watermark
    # A lost answer may be asked for again; an older watermark is refused.
    (again,) = list(inbox.get_events(sub_id, previous))
    assert _kinds(again.events) == _kinds(note.events)
    db.move("adam", new, child_id)
    db.delete("adam", kept, hard=True)
    (note,) = list(inbox.get_events(sub_id, mark))
    # The Child folder is not watched: the message that went there left the Inbox's view.
    assert _kinds(note.events) == sorted(
        [
            ("DeletedEvent", item_id("adam", kept, inbox_id)),
            ("DeletedEvent", item_id("adam", new, inbox_id)),
        ]
    )
    with pytest.raises(ErrorInvalidWatermark):
        list(inbox.get_events(sub_id, previous))
    # More events than one answer holds: the rest come with the next watermark.
    mark = note.events[-1].watermark
    many = [db.deliver("adam", f"n:many{i}", mime(f"Many {i}", "z")).message_id for i in range(30)]
    # (exchangelib's get_events() asks again with the same watermark while MoreEvents is
    # true, and gets the same answer again, as from Exchange: GetEvents itself is used.)
    first = GetEvents(account=account).get(subscription_id=sub_id, watermark=mark)
    assert len(first.events) == MAX_EVENTS and first.more_events is True
    again = GetEvents(account=account).get(subscription_id=sub_id, watermark=mark)
    assert _kinds(again.events) == _kinds(first.events)
    rest = GetEvents(account=account).get(
        subscription_id=sub_id, watermark=first.events[-1].watermark
    )
    assert rest.more_events is False
    assert _kinds(first.events + rest.events) == sorted(
        (kind, item_id("adam", n, inbox_id))
        for n in many
        for kind in ("CreatedEvent", "NewMailEvent")
    )
    # Another user's request never reads it (alice's mailbox, and EWS, are NY's).
    lab.set_vdir(NY_EWS, basic_authentication=True)
    alice = ews_account(url(lab, "ex-ny1.contoso.com"), "contoso\\alice", "alice@contoso.com")
    with pytest.raises(ErrorSubscriptionNotFound):
        list(alice.inbox.get_events(sub_id, mark))
    inbox.unsubscribe(sub_id)
    with pytest.raises(ErrorSubscriptionNotFound):
        inbox.unsubscribe(sub_id)
    with pytest.raises(ErrorSubscriptionNotFound):
        list(GetEvents(account=account).call(subscription_id=sub_id, watermark=mark))


def test_a_subscription_to_every_folder_sees_moves_and_starts_from_a_watermark(
    servers: Lab,
) -> None:
    lab = servers
    db = lab.stores["EX-FL1"]
    account = _account(lab)
    sub_id, mark = account.subscribe_to_pull(event_types=["MovedEvent", "DeletedEvent"])
    message = db.deliver("adam", "m:0", mime("Moving", "x")).message_id
    (note,) = list(account.inbox.get_events(sub_id, mark))
    assert [type(e) for e in note.events] == [StatusEvent]  # no Created asked for
    mark = note.events[-1].watermark
    db.move("adam", message, "junkemail")
    (note,) = list(account.inbox.get_events(sub_id, mark))
    (moved,) = note.events
    junk, inbox = db.get_folder("adam", "junkemail"), db.get_folder("adam", "inbox")
    # The moved item's id names its new folder, the old one its old folder.
    assert isinstance(moved, MovedEvent) and moved.item_id.id == item_id("adam", message, junk.id)
    assert moved.old_item_id.id == item_id("adam", message, inbox.id)
    assert moved.parent_folder_id.id == folder_id("adam", junk.id)
    assert moved.old_parent_folder_id.id == folder_id("adam", inbox.id)
    mark = moved.watermark
    account.unsubscribe(sub_id)
    # A new subscription from the ended one's watermark sees what happened since.
    db.delete("adam", message, hard=True)
    sub2, mark2 = account.subscribe_to_pull(event_types=["DeletedEvent"], watermark=mark)
    (note,) = list(account.inbox.get_events(sub2, mark2))
    assert [(type(e), e.item_id.id) for e in note.events] == [
        (DeletedEvent, item_id("adam", message, junk.id))
    ]
    # A streaming subscription is not read with GetEvents.
    stream_id = account.inbox.subscribe_to_streaming()
    with pytest.raises(ErrorInvalidSubscription):
        list(account.inbox.get_events(stream_id, mark2))
    account.unsubscribe(stream_id)
    # A mailbox has at most MAX_PER_MAILBOX live subscriptions (an ended one is not counted).
    for _ in range(MAX_PER_MAILBOX - 1):
        account.inbox.subscribe_to_pull(event_types=["NewMailEvent"])
    with pytest.raises(ErrorExceededSubscriptionCount):
        account.inbox.subscribe_to_pull(event_types=["NewMailEvent"])


def test_a_pull_subscription_expires_after_its_timeout(
    servers: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A Timeout minute lasts a millisecond here: the subscription is gone by the next call.
    monkeypatch.setattr(EwsHandler, "STREAM_MINUTE", 0.001)
    account = _account(servers)
    sub_id, mark = account.inbox.subscribe_to_pull(timeout=1)
    with pytest.raises(ErrorExpiredSubscription):
        list(account.inbox.get_events(sub_id, mark))


def test_streaming_notifications_arrive_while_the_stream_is_open(
    servers: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = servers
    # A ConnectionTimeout minute lasts three seconds here, so that the stream closes soon.
    monkeypatch.setattr(EwsHandler, "STREAM_MINUTE", 3.0)
    lab.set_vdir(
        NY_EWS,
        basic_authentication=True,
        external_url="https://mail.contoso.com/EWS/Exchange.asmx",
    )
    db = lab.stores["EX-FL1"]
    inbox_id = db.get_folder("adam", "inbox").id  # item ids name their folder
    # Through NY's CAS, proxied to FL's, where adam's mailbox and subscriptions are.
    account = _account(lab, "mail.contoso.com")
    sub_id = account.inbox.subscribe_to_streaming()
    first = db.deliver("adam", "s:0", mime("First", "x")).message_id
    seen: list[tuple[str, str | None]] = []
    later: int | None = None
    for note in account.inbox.get_streaming_events(sub_id, connection_timeout=1):
        seen += _kinds(note.events)
        if later is None:
            # The stream is open and waiting on the store: this one arrives meanwhile.
            later = db.deliver("adam", "s:1", mime("Later", "y")).message_id
    assert later is not None
    assert sorted(seen) == sorted(
        [
            ("CreatedEvent", item_id("adam", first, inbox_id)),
            ("NewMailEvent", item_id("adam", first, inbox_id)),
            ("CreatedEvent", item_id("adam", later, inbox_id)),
            ("NewMailEvent", item_id("adam", later, inbox_id)),
        ]
    )
    account.inbox.unsubscribe(sub_id)
    with pytest.raises(ErrorSubscriptionNotFound):
        account.inbox.unsubscribe(sub_id)


def test_an_edited_item_is_a_modified_event(servers: Lab) -> None:
    # UpdateItem gives the message a new UID in the store under the same id: one
    # ModifiedEvent, not a Deleted and a Created (nor a move within the folder).
    account = _account(servers)
    drafts = account.drafts
    sub_id, mark = drafts.subscribe_to_pull()
    item = Message(account=account, folder=drafts, subject="First", body="x")
    item.save()
    (note,) = list(drafts.get_events(sub_id, mark))
    assert _kinds(note.events) == [("CreatedEvent", item.id)]
    mark = note.events[-1].watermark
    item.subject = "Second"
    item.save(update_fields=["subject"])
    (note,) = list(drafts.get_events(sub_id, mark))
    assert _kinds(note.events) == [("ModifiedEvent", item.id)]
    drafts.unsubscribe(sub_id)
