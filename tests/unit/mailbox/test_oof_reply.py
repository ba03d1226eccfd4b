"""Automatic replies at delivery: who gets one, once, and what it says."""

from __future__ import annotations

import email
from pathlib import Path
from typing import Any

import pytest

from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.item_records import ContactData
from sitemail.mailbox.mailbox_settings import SettingName
from sitemail.mailbox.oof_reply import OofContext, parse_header, reply_wanted

OWNER = OofContext(
    "adam@contoso.com", "Adam Fl", ("adam@contoso.com", "a.fl@contoso.com"), ("contoso.com",)
)


@pytest.mark.parametrize(
    ("header", "sender", "wanted"),
    [
        ("Subject: hi\r\n", "bob@contoso.com", True),
        ("Auto-Submitted: no\r\n", "bob@contoso.com", True),
        ("Auto-Submitted: auto-replied\r\n", "bob@contoso.com", False),
        ("Precedence: bulk\r\n", "bob@contoso.com", False),
        ("List-Id: <news.contoso.com>\r\n", "bob@contoso.com", False),
        ("X-Auto-Response-Suppress: OOF, DR\r\n", "bob@contoso.com", False),
        ("Content-Type: multipart/report; report-type=delivery-status\r\n", "x@y.com", False),
        ("Subject: hi\r\n", "MAILER-DAEMON@fabrikam.com", False),
        ("Subject: hi\r\n", "owner-list@fabrikam.com", False),
        ("Subject: hi\r\n", "news-request@fabrikam.com", False),
        ("Subject: hi\r\n", "a.fl@contoso.com", False),
        ("Subject: hi\r\n", "", False),
    ],
)
def test_machines_lists_and_the_mailbox_itself_are_not_answered(
    header: str, sender: str, wanted: bool
) -> None:
    assert reply_wanted(parse_header(f"{header}\r\n".encode()), sender, OWNER) is wanted


def oof(**changes: Any) -> dict[str, Any]:
    return {
        "state": "Enabled",
        "external_audience": "All",
        "internal_reply": "Away until Monday",
        "external_reply": "Out of the office",
        "owner": {
            "address": "adam@contoso.com",
            "name": "Adam Fl",
            "addresses": ["adam@contoso.com"],
            "internal_domains": ["contoso.com"],
        },
        **changes,
    }


def deliver(db: StoreDatabase, sender: str, subject: str, extra: str = "") -> None:
    raw = (
        f"From: Someone <{sender}>\r\nTo: adam@contoso.com\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@x>\r\n{extra}\r\nHello\r\n"
    ).encode()
    db.deliver("adam", f"{subject}:{sender}", raw)


def replies(db: StoreDatabase) -> list[email.message.Message]:
    out = db.list_messages("adam", "outbox", limit=100).items
    assert all(m.flags.deleted and m.flags.seen for m in out)  # sent without a copy
    out = sorted(out, key=lambda m: m.id)
    return [email.message_from_bytes(db.read_raw("adam", m.id)) for m in out]


def test_each_sender_is_answered_once_with_the_reply_of_its_audience(tmp_path: Path) -> None:
    db = StoreDatabase(tmp_path / "db.sqlite")
    deliver(db, "bob@contoso.com", "Before")
    db.put_setting("adam", SettingName.OOF, oof())
    deliver(db, "bob@contoso.com", "Lunch")
    deliver(db, "bob@contoso.com", "Lunch again")
    deliver(db, "eve@fabrikam.com", "Offer")
    deliver(db, "news@fabrikam.com", "Digest", "List-Id: <digest.fabrikam.com>\r\n")
    sent = replies(db)
    assert [(r["To"], r["Subject"]) for r in sent] == [
        ("bob@contoso.com", "Automatic reply: Lunch"),
        ("eve@fabrikam.com", "Automatic reply: Offer"),
    ]
    bob, eve = sent
    assert bob.get_payload(decode=True).decode().strip() == "Away until Monday"
    assert eve.get_payload(decode=True).decode().strip() == "Out of the office"
    assert bob["Auto-Submitted"] == "auto-replied" and bob["In-Reply-To"] == "<Lunch@x>"
    assert bob["From"] == "Adam Fl <adam@contoso.com>"
    # New settings answer everyone once again.
    db.put_setting("adam", SettingName.OOF, oof(internal_reply="Back Tuesday"))
    deliver(db, "bob@contoso.com", "Third")
    assert len(replies(db)) == 3


def test_external_audience_none_known_and_disabled(tmp_path: Path) -> None:
    db = StoreDatabase(tmp_path / "db.sqlite")
    db.put_setting("adam", SettingName.OOF, oof(external_audience="None"))
    deliver(db, "eve@fabrikam.com", "One")
    assert replies(db) == []
    db.create_typed(
        "adam",
        "contacts",
        ContactData(display_name="Eve", emails={"EmailAddress1": "Eve@fabrikam.com"}),
    )
    db.put_setting("adam", SettingName.OOF, oof(external_audience="Known"))
    deliver(db, "eve@fabrikam.com", "Two")
    deliver(db, "mallory@fabrikam.com", "Three")
    assert [r["To"] for r in replies(db)] == ["eve@fabrikam.com"]
    db.put_setting("adam", SettingName.OOF, oof(state="Disabled"))
    deliver(db, "carl@contoso.com", "Four")
    assert len(replies(db)) == 1
    # Settings written without who the mailbox is (not by EWS) answer no one.
    db.put_setting("adam", SettingName.OOF, oof(owner=None))
    deliver(db, "carl@contoso.com", "Five")
    assert len(replies(db)) == 1
