"""Inbox rules at delivery: the pure decision, and the store acting on it in the delivery."""

from __future__ import annotations

import email
import email.header
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sitemail.mailbox.database import StoreDatabase
from sitemail.mailbox.inbox_rules import Disposition, RuleMessage, disposition
from sitemail.mailbox.mailbox_settings import InboxRules, SettingName
from sitemail.mailbox.rule_forward import LOOP_HEADER

NOW = datetime(2030, 3, 4, 9, tzinfo=UTC)
MESSAGE = RuleMessage(
    sender="bob@contoso.com",
    sender_name="Bob Ny",
    to=("adam@contoso.com",),
    cc=("list@contoso.com",),
    recipient_names=("Adam Fl",),
    subject="Weekly numbers",
    body="the figures for march",
    has_attachments=False,
    size=20_000,
    received=NOW,
)


def rules(*given: dict[str, Any]) -> InboxRules:
    return InboxRules.model_validate(
        {
            "rules": [
                {"rule_id": str(i), "display_name": f"r{i}", "priority": i, **rule}
                for i, rule in enumerate(given, start=1)
            ]
        }
    )


MOVE_5 = {"MoveToFolder": {"folder": "5"}}


@pytest.mark.parametrize(
    ("conditions", "applies"),
    [
        ({"FromAddresses": ["BOB@contoso.com"]}, True),
        ({"FromAddresses": ["carl@contoso.com"]}, False),
        ({"SentToAddresses": ["list@contoso.com"]}, True),
        ({"SentToAddresses": ["other@contoso.com"]}, False),
        ({"ContainsSubjectStrings": ["zzz", "NUMBERS"]}, True),
        ({"ContainsSubjectStrings": ["zzz"]}, False),
        ({"ContainsSenderStrings": ["bob ny"]}, True),
        ({"ContainsRecipientStrings": ["adam fl"]}, True),
        ({"ContainsBodyStrings": ["march"]}, True),
        ({"ContainsSubjectOrBodyStrings": ["figures"]}, True),
        ({"HasAttachments": True}, False),
        ({"WithinSizeRange": {"MinimumSize": "10", "MaximumSize": "30"}}, True),
        ({"WithinSizeRange": {"MinimumSize": "30", "MaximumSize": "40"}}, False),
        (
            {
                "WithinDateRange": {
                    "StartDateTime": "2030-03-01T00:00:00Z",
                    "EndDateTime": "2030-04-01T00:00:00Z",
                }
            },
            True,
        ),
        # All conditions must hold.
        ({"FromAddresses": ["bob@contoso.com"], "ContainsSubjectStrings": ["zzz"]}, False),
        # One that cannot be told here keeps the rule from acting.
        ({"FromAddresses": ["bob@contoso.com"], "Categories": ["x"]}, False),
        ({"SentToMe": True}, False),
        ({}, True),
    ],
)
def test_a_rule_applies_when_all_its_conditions_hold(
    conditions: dict[str, Any], applies: bool
) -> None:
    outcome = disposition(rules({"conditions": conditions, "actions": MOVE_5}), MESSAGE)
    assert (outcome.move_to == 5) is applies


def test_exceptions_disabled_rules_priority_and_stop_processing() -> None:
    excepted = {"exceptions": {"ContainsSubjectStrings": ["weekly"]}, "actions": MOVE_5}
    assert disposition(rules(excepted), MESSAGE) == Disposition()
    unknown = {"exceptions": {"IsSigned": True}, "actions": MOVE_5}
    assert disposition(rules(unknown), MESSAGE) == Disposition()
    assert disposition(rules({"is_enabled": False, "actions": MOVE_5}), MESSAGE) == Disposition()
    first = {"actions": {"MoveToFolder": {"folder": "7"}, "MarkAsRead": True}}
    second = {"actions": {**MOVE_5, "CopyToFolder": {"folder": "9"}}}
    both = disposition(rules(first, second), MESSAGE)
    assert (both.move_to, both.mark_as_read, both.copy_to, both.applied) == (
        7,
        True,
        (9,),
        ("1", "2"),
    )
    stop = {"actions": {"MarkAsRead": True, "StopProcessingRules": True}}
    assert disposition(rules(stop, second), MESSAGE).applied == ("1",)


def deliver(db: StoreDatabase, subject: str, sender: str = "bob@contoso.com") -> int:
    raw = (
        f"From: Bob <{sender}>\r\nTo: adam@contoso.com\r\nSubject: {subject}\r\n"
        "Message-ID: <" + subject.replace(" ", ".") + "@contoso.com>\r\n\r\nHello\r\n"
    ).encode()
    return db.deliver("adam", f"{subject}:adam", raw).message_id


def subjects(db: StoreDatabase, folder: str) -> list[str]:
    return sorted(m.subject for m in db.list_messages("adam", folder).items)


def test_the_store_applies_the_rules_in_the_delivery(tmp_path: Path) -> None:
    db = StoreDatabase(tmp_path / "db.sqlite")
    projects = db.create_folder("adam", "Projects")
    archive = db.create_folder("adam", "Archive")
    gone = db.create_folder("adam", "Gone")
    db.delete_folder("adam", gone.id)
    rule_list = [
        {"conditions": {"ContainsSubjectStrings": ["spam"]}, "actions": {"PermanentDelete": True}},
        {"conditions": {"FromAddresses": ["junk@fabrikam.com"]}, "actions": {"Delete": True}},
        {
            "conditions": {"ContainsSubjectStrings": ["project"]},
            "actions": {
                "MoveToFolder": {"folder": str(projects.id)},
                "CopyToFolder": {"folder": str(archive.id)},
                "MarkAsRead": True,
                "StopProcessingRules": True,
            },
        },
        {"conditions": {"ContainsSubjectStrings": ["plan"]}, "actions": {"MarkAsRead": True}},
        {
            "conditions": {"ContainsSubjectStrings": ["old"]},
            "actions": {"MoveToFolder": {"folder": str(gone.id)}},
        },
    ]
    db.put_setting("adam", SettingName.INBOX_RULES, rules(*rule_list).model_dump(mode="json"))
    deliver(db, "Project plan")
    deliver(db, "Lunch")
    deliver(db, "Ad", sender="junk@fabrikam.com")
    deliver(db, "Old thread")
    assert deliver(db, "Cheap spam") == 0
    assert subjects(db, "inbox") == ["Lunch", "Old thread"]
    assert subjects(db, str(projects.id)) == ["Project plan"]
    assert subjects(db, str(archive.id)) == ["Project plan"]
    assert subjects(db, "deleteditems") == ["Ad"]
    (moved,) = db.list_messages("adam", projects.id).items
    assert moved.flags.seen  # MarkAsRead; the "plan" rule came after StopProcessingRules
    # A hub that delivers the permanently deleted message again does not bring it back.
    again = db.deliver("adam", "Cheap spam:adam", b"Subject: Cheap spam\r\n\r\nx\r\n")
    assert again.duplicate and again.folder_id is None
    assert all("spam" not in s for f in ("inbox", "deleteditems") for s in subjects(db, f))


@pytest.mark.parametrize(
    ("name", "to", "cc", "applies"),
    [
        ("SentToMe", ("adam@contoso.com",), (), True),
        ("SentToMe", ("x@contoso.com",), ("a.fl@contoso.com",), False),
        ("SentCcMe", ("x@contoso.com",), ("a.fl@contoso.com",), True),
        ("SentToOrCcMe", ("x@contoso.com",), ("a.fl@contoso.com",), True),
        ("SentToOrCcMe", ("x@contoso.com",), (), False),
        ("SentOnlyToMe", ("adam@contoso.com",), (), True),
        ("SentOnlyToMe", ("adam@contoso.com", "x@contoso.com"), (), False),
        ("SentOnlyToMe", ("adam@contoso.com",), ("x@contoso.com",), False),
        ("NotSentToMe", ("x@contoso.com",), (), True),
        ("NotSentToMe", ("adam@contoso.com",), (), False),
    ],
)
def test_sent_to_me_conditions_by_the_mailbox_addresses(
    name: str, to: tuple[str, ...], cc: tuple[str, ...], applies: bool
) -> None:
    message = replace(MESSAGE, to=to, cc=cc, me=("adam@contoso.com", "a.fl@contoso.com"))
    outcome = disposition(rules({"conditions": {name: True}, "actions": MOVE_5}), message)
    assert (outcome.move_to == 5) is applies


def test_forwarding_rules_send_through_the_outbox_once(tmp_path: Path) -> None:
    db = StoreDatabase(tmp_path / "db.sqlite")
    document = rules(
        {
            "conditions": {"ContainsSubjectStrings": ["invoice"]},
            "actions": {"ForwardToRecipients": ["books@fabrikam.com"]},
        },
        {
            "conditions": {"ContainsSubjectStrings": ["invoice"]},
            "actions": {"ForwardAsAttachmentToRecipients": ["audit@fabrikam.com"]},
        },
    ).model_dump(mode="json")
    # Without the mailbox's addresses (rules not written by EWS) nothing is forwarded.
    db.put_setting("adam", SettingName.INBOX_RULES, document)
    deliver(db, "Invoice 1")
    assert db.list_messages("adam", "outbox").items == []
    db.put_setting(
        "adam", SettingName.INBOX_RULES, {**document, "owner_addresses": ["adam@contoso.com"]}
    )
    deliver(db, "Invoice 2")
    out = sorted(db.list_messages("adam", "outbox").items, key=lambda m: m.id)
    assert all(m.flags.deleted for m in out)  # sent without a copy
    inline, attached = (email.message_from_bytes(db.read_raw("adam", m.id)) for m in out)
    assert (inline["To"], inline["Subject"]) == ("books@fabrikam.com", "FW: Invoice 2")
    assert inline["From"] == "adam@contoso.com"
    assert inline[LOOP_HEADER] == "adam@contoso.com"
    assert "Subject: Invoice 2" in inline.get_payload(decode=True).decode()
    assert attached["To"] == "audit@fabrikam.com"
    parts = [p.get_content_type() for p in attached.walk()]
    assert "message/rfc822" in parts
    assert subjects(db, "inbox") == ["Invoice 1", "Invoice 2"]  # the original stays
    # What this mailbox forwarded before is not forwarded again (no loop).
    raw = (
        f"From: books@fabrikam.com\r\nTo: adam@contoso.com\r\nSubject: FW: Invoice 3\r\n"
        f"{LOOP_HEADER}: adam@contoso.com\r\n\r\nagain\r\n"
    ).encode()
    db.deliver("adam", "loop:adam", raw)
    assert len(db.list_messages("adam", "outbox").items) == 2


def test_rules_that_cannot_be_read_never_cost_a_message(tmp_path: Path) -> None:
    db = StoreDatabase(tmp_path / "db.sqlite")
    db.put_setting("adam", SettingName.INBOX_RULES, rules({"actions": MOVE_5}).model_dump())
    db.put_setting("adam", SettingName.OOF, {"state": "Enabled", "internal_reply": "x"})
    with db._write() as conn:  # as a newer sitemail might have written them
        conn.execute("UPDATE mailbox_settings SET data='{\"rules\": 3}'")
    deliver(db, "Still here")
    assert subjects(db, "inbox") == ["Still here"]


def test_categories_and_importance_are_written_into_the_header(tmp_path: Path) -> None:
    db = StoreDatabase(tmp_path / "db.sqlite")
    marks = {"AssignCategories": ["Projects", "Caf\u00e9"], "MarkImportance": "High"}
    db.put_setting("adam", SettingName.INBOX_RULES, rules({"actions": marks}).model_dump())
    raw = (
        b"From: bob@contoso.com\r\nTo: adam@contoso.com\r\nSubject: Plan\r\n"
        b"Keywords: Old, Projects\r\nX-Priority: 5\r\n\r\nBody stays\r\n"
    )
    placed = db.deliver("adam", "marks:adam", raw)
    stored = email.message_from_bytes(db.read_raw("adam", placed.message_id))
    keywords = str(email.header.make_header(email.header.decode_header(stored["Keywords"])))
    assert keywords == "Old, Projects, Caf\u00e9"
    assert stored["Importance"] == "high" and stored["X-Priority"] is None
    assert stored["Subject"] == "Plan" and stored.get_payload() == "Body stays\r\n"
