"""UpdateItem and CreateItem on message fields and extended properties, driven by exchangelib,
checked in what the server answers and in what the mailbox database holds: the re-rendered
MIME (as IMAP reads it), the new UID, and the properties kept beside the content."""

from __future__ import annotations

import pytest
from exchangelib import HTMLBody, Mailbox, Message
from exchangelib.errors import (
    ErrorInvalidChangeKey,
    ErrorInvalidPropertyUpdateSentMessage,
    ErrorInvalidRequest,
)
from exchangelib.extended_properties import ExtendedProperty
from exchangelib.properties import ItemId
from exchangelib.services import UpdateItem
from tests.unit.access.test_ews_exchangelib import (
    FL_EWS,
    ews_account,
    lab_names,
    mime,
    servers,
    url,
)
from tests.unit.access.test_web_front import Lab

from sitemail.access.ews_message_fields import FieldChange, apply_changes, header_props
from sitemail.mailbox.database import StoreDatabase

__all__ = ["lab_names", "servers"]


class Tracking(ExtendedProperty):
    """A named property of the PublicStrings set, as Outlook add-ins keep their data."""

    distinguished_property_set_id = "PublicStrings"
    property_name = "sitemail-tracking"
    property_type = "Integer"


class Labels(ExtendedProperty):
    """A multi-valued property by tag (0x3001 is not used by messages: a test value)."""

    property_tag = 0x6703
    property_type = "StringArray"


@pytest.fixture
def account(servers: Lab):  # type: ignore[no-untyped-def]
    servers.set_vdir(FL_EWS, basic_authentication=True)
    Message.register("tracking", Tracking)
    Message.register("labels", Labels)
    try:
        yield ews_account(url(servers, "ex-fl1.contoso.com"), "contoso\\adam", "adam@contoso.com")
    finally:
        Message.deregister("tracking")
        Message.deregister("labels")


def _raw(db: StoreDatabase, message_id: int) -> bytes:
    return db.read_raw("adam", message_id)


def test_a_drafts_fields_are_rendered_into_its_mime(servers: Lab, account) -> None:  # type: ignore[no-untyped-def]
    db = servers.stores["EX-FL1"]
    draft = Message(
        account=account,
        folder=account.drafts,
        subject="Plan",
        body="first",
        categories=["Blue", "Tampa"],
        importance="High",
        sensitivity="Private",
        to_recipients=[Mailbox(email_address="alice@contoso.com", name="Alice Ny")],
        reminder_is_set=True,
        reminder_minutes_before_start=15,
    )
    draft.save()
    (stored,) = db.list_messages("adam", "drafts").items
    raw = _raw(db, stored.id)
    assert b"Keywords: Blue, Tampa" in raw and b"Importance: high" in raw
    assert b"Sensitivity: Private" in raw
    # Reminders have no MIME header: the store keeps them beside the content.
    assert db.get_properties("adam", stored.id).properties == {
        "item:ReminderIsSet": "true",
        "item:ReminderMinutesBeforeStart": "15",
        "message:IsResponseRequested": "false",  # exchangelib sends it
    }
    fresh = account.drafts.get(id=draft.id)
    assert fresh.categories == ["Blue", "Tampa"] and fresh.importance == "High"
    assert fresh.sensitivity == "Private" and fresh.reminder_minutes_before_start == 15
    assert fresh.to_recipients[0].mailbox_type == "Mailbox"  # a mailbox of the directory
    # Set, append and delete: the subject, an HTML body, Cc appended, categories deleted.
    old_key = draft.changekey
    draft.subject = "Plan B \u2713"
    draft.body = HTMLBody("<p>second</p>")
    draft.cc_recipients = [Mailbox(email_address="carl@fabrikam.com")]
    draft.categories = None
    draft.importance = "Low"
    draft.save(update_fields=["subject", "body", "cc_recipients", "categories", "importance"])
    assert draft.changekey != old_key
    changed = db.get_message("adam", stored.id)
    # The same item under the same id, new content, a new UID for IMAP.
    assert changed.subject == "Plan B \u2713" and changed.uid != stored.uid
    assert [a.address for a in changed.cc] == ["carl@fabrikam.com"]
    raw = _raw(db, stored.id)
    assert b"Keywords" not in raw and b"Importance: low" in raw and b"text/html" in raw
    assert b"Sensitivity: Private" in raw  # what was not changed stays
    fresh = account.drafts.get(id=draft.id)
    assert fresh.subject == "Plan B \u2713" and "<p>second</p>" in fresh.body
    assert fresh.categories is None and fresh.importance == "Low"
    # The categories are kept where a restriction finds them.
    draft.categories = ["Green"]
    draft.save(update_fields=["categories"])
    assert [m.subject for m in account.drafts.filter(categories__contains=["green"])] == [
        "Plan B \u2713"
    ]
    assert list(account.drafts.filter(categories__contains=["Blue"])) == []


def test_a_received_message_keeps_its_recipients(servers: Lab, account) -> None:  # type: ignore[no-untyped-def]
    db = servers.stores["EX-FL1"]
    db.deliver("adam", "fields:1", mime("Report", "body"))
    (item,) = list(account.inbox.all())
    item.categories = ["Read later"]
    item.save(update_fields=["categories"])
    (stored,) = db.list_messages("adam", "inbox").items
    assert header_props(_raw(db, stored.id)).categories == ["Read later"]
    assert b"From: Bob Ny <bob@contoso.com>" in _raw(db, stored.id)
    # Recipients of a message that was sent are not the client's to change.
    item.to_recipients = [Mailbox(email_address="eve@fabrikam.com")]
    with pytest.raises(ErrorInvalidPropertyUpdateSentMessage):
        UpdateItem(account=account).get(
            items=[(item, ["to_recipients"])],
            conflict_resolution="AlwaysOverwrite",
            message_disposition="SaveOnly",
            send_meeting_invitations_or_cancellations="SendToNone",
            suppress_read_receipts=True,
        )
    assert [a.address for a in db.get_message("adam", stored.id).to] == ["adam@contoso.com"]


def test_extended_properties_are_set_read_copied_and_deleted(servers: Lab, account) -> None:  # type: ignore[no-untyped-def]
    db = servers.stores["EX-FL1"]
    draft = Message(account=account, folder=account.drafts, subject="Ext", tracking=7)
    draft.save()
    (stored,) = db.list_messages("adam", "drafts").items
    kept = db.get_properties("adam", stored.id).properties["extended"]
    assert kept == {
        "set:publicstrings:name:sitemail-tracking": {
            "uri": {
                "DistinguishedPropertySetId": "PublicStrings",
                "PropertyName": "sitemail-tracking",
                "PropertyType": "Integer",
            },
            "value": "7",
        }
    }
    # Given back only when asked for, as Exchange does.
    assert account.drafts.get(id=draft.id).tracking == 7
    (bare,) = list(account.drafts.filter(subject="Ext").only("subject"))
    assert bare.tracking is None
    draft.tracking = 8
    draft.labels = ["a", "b"]
    draft.save(update_fields=["tracking", "labels"])
    fresh = account.drafts.get(id=draft.id)
    assert fresh.tracking == 8 and fresh.labels == ["a", "b"]
    # A copy has the properties too; deleting the property leaves the copy's.
    copy = draft.copy(account.inbox)
    assert copy is not None
    draft.tracking = None
    draft.save(update_fields=["tracking"])
    assert account.drafts.get(id=draft.id).tracking is None
    (copied,) = db.list_messages("adam", "inbox").items
    assert "set:publicstrings:name:sitemail-tracking" in db.get_properties(
        "adam", copied.id
    ).properties.get("extended", {})
    draft.delete()
    with db._lock:
        rows = db._conn.execute("SELECT message_id FROM message_properties").fetchall()
    assert [r[0] for r in rows] == [copied.id]
    # Restrictions and sort orders read the properties kept beside the content.
    for number in (3, 1, 2):
        Message(
            account=account, folder=account.drafts, subject=f"N{number}", tracking=number
        ).save()
    assert [m.subject for m in account.drafts.filter(tracking__gt=1).order_by("-tracking")] == [
        "N3",
        "N2",
    ]
    assert [m.subject for m in account.drafts.filter(tracking=1)] == ["N1"]
    # A ChangeKey this server never gave is refused, the other items of the request go on.
    first, second = list(account.drafts.filter(tracking__gt=1).order_by("tracking"))
    second.changekey = "XXX"
    results = account.bulk_delete([first, second])
    assert results[0] is True and isinstance(results[1], ErrorInvalidChangeKey)
    # An id that is not an item's stays malformed, whatever the properties.
    (bad,) = account.fetch(ids=[ItemId(id="bm90LWFuLWlk", changekey="x")])
    assert type(bad).__name__ == "ErrorInvalidIdMalformed"


def test_rendering_keeps_other_headers_and_attachments() -> None:
    raw = (
        b"From: Bob <bob@contoso.com>\r\nTo: adam@contoso.com\r\nSubject: Old\r\n"
        b"X-Custom: kept\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nold body\r\n"
        b'--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="a.pdf"'
        b"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n"
    )
    from xml.etree.ElementTree import Element

    subject = Element("{http://schemas.microsoft.com/exchange/services/2006/types}Subject")
    subject.text = "x" * 300
    body = Element("{http://schemas.microsoft.com/exchange/services/2006/types}Body")
    body.text = "new body"
    out = apply_changes(
        raw, [FieldChange("set", "item:Subject", subject), FieldChange("set", "item:Body", body)]
    )
    assert b"X-Custom: kept" in out and b'filename="a.pdf"' in out and b"JVBERi0=" in out
    assert b"new body" in out and b"old body" not in out
    assert b"Subject: " + b"x" * 255 + b"\r\n" in out  # Exchange keeps 255 characters


def test_replies_and_forwards_answer_the_original(servers: Lab, account) -> None:  # type: ignore[no-untyped-def]
    db = servers.stores["EX-FL1"]
    db.deliver("adam", "fields:reply", mime("Budget", "the numbers"))
    (original,) = list(account.inbox.all())
    original.create_reply(subject="Re: Budget", body="Looks good").save(account.drafts)
    (draft,) = db.list_messages("adam", "drafts").items
    assert draft.subject == "Re: Budget" and [a.address for a in draft.to] == ["bob@contoso.com"]
    raw = db.read_raw("adam", draft.id)
    assert f"In-Reply-To: {original.message_id}".encode() in raw
    assert b"Looks good" in raw and b"the numbers" in raw  # the original, quoted
    # Reply all answers the sender and the other recipients, never the user; it is sent.
    original.reply_all(subject="Re: Budget", body="All")
    (sent,) = db.list_messages("adam", "outbox").items
    assert [a.address for a in sent.to] == ["bob@contoso.com"]
    assert [a.address for a in sent.cc] == ["carl@contoso.com"]
    # A forward goes to whom it is given, without In-Reply-To.
    original.create_forward(
        subject="FW: Budget", body="FYI", to_recipients=["fiona@contoso.com"]
    ).save(account.drafts)
    forward = next(m for m in db.list_messages("adam", "drafts").items if m.subject == "FW: Budget")
    assert [a.address for a in forward.to] == ["fiona@contoso.com"]
    assert b"In-Reply-To" not in db.read_raw("adam", forward.id)


def test_items_are_exported_and_uploaded_whole(servers: Lab, account) -> None:  # type: ignore[no-untyped-def]
    db = servers.stores["EX-FL1"]
    draft = Message(
        account=account,
        folder=account.drafts,
        subject="Export  me",  # two spaces, kept as written
        body="all of it",
        categories=["Kept"],
        tracking=5,
        is_read=True,
    )
    draft.save()
    (data,) = account.export([draft])
    assert isinstance(data, str)
    # CreateNew: a new item with the same content, properties, flags and received time.
    ((new_id, new_key),) = account.upload([(account.inbox, data)])
    assert new_id != draft.id
    uploaded = account.inbox.get(id=new_id)
    assert uploaded.subject == "Export  me" and uploaded.categories == ["Kept"]
    assert uploaded.tracking == 5 and uploaded.is_read is True
    (original,) = db.list_messages("adam", "drafts").items
    (copy,) = db.list_messages("adam", "inbox").items
    assert b"Subject: Export  me\r\n" in db.read_raw("adam", original.id)
    assert [m.subject for m in account.drafts.filter(subject="Export  me")] == ["Export  me"]
    assert copy.received_at == original.received_at
    assert db.read_raw("adam", copy.id) == db.read_raw("adam", original.id)
    # Update: the same item, a new ChangeKey; data this server did not export is refused.
    ((same_id, newer_key),) = account.upload([(account.inbox, ((new_id, new_key), False, data))])
    assert same_id == new_id and newer_key != new_key
    with pytest.raises(ErrorInvalidRequest):
        account.upload([(account.inbox, "bm90IGFuIGV4cG9ydA==")])


def test_categories_stay_with_the_senders_copy(servers: Lab, account) -> None:  # type: ignore[no-untyped-def]
    db = servers.stores["EX-FL1"]
    Message(
        account=account,
        subject="Tagged",
        body="x",
        categories=["Mine"],
        to_recipients=["adam@contoso.com"],
    ).send_and_save()
    (submitted,) = db.list_messages("adam", "outbox").items
    (kept,) = db.list_messages("adam", "sentitems").items
    assert b"Keywords" not in db.read_raw("adam", submitted.id)
    assert header_props(db.read_raw("adam", kept.id)).categories == ["Mine"]
    assert not kept.flags.draft and kept.flags.seen and submitted.flags.deleted
