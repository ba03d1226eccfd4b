"""FindItem's QueryString (AQS) and FindFolder's restrictions and paging, through exchangelib.

The servers are :mod:`tests.unit.access.test_ews_exchangelib`'s; what each
query finds is compared with the messages and folders the store holds.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from exchangelib import Mailbox, Message, Q
from exchangelib.errors import ErrorUnsupportedQueryFilter
from exchangelib.folders import FolderCollection
from tests.unit.access.test_ews_exchangelib import FL_EWS, LabNamesAdapter, lab_names, servers, url
from tests.unit.access.test_ews_write import _account
from tests.unit.access.test_web_front import PASSWORD, Lab

from sitemail.access.ews_ids import folder_id
from sitemail.access.ews_soap import MESSAGES_NS, SOAP_NS, TYPES_NS
from sitemail.mailbox.records import FlagUpdate

__all__ = ["lab_names", "servers"]


def _mail(subject: str, body: str, sender: str, to: str = "Adam Fl <adam@contoso.com>") -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{abs(hash(subject + body))}@contoso.com>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}\r\n"
    ).encode()


def test_query_strings_find_what_the_store_holds(servers: Lab) -> None:
    lab = servers
    db = lab.stores["EX-FL1"]
    now = datetime.now(UTC)
    old = datetime(2024, 3, 1, 12, tzinfo=UTC)
    for subject, body, sender, when in (
        ("Quarterly plan", "Budget for Tampa", "Bob Ny <bob@contoso.com>", now),
        ("Plans for lunch", "Pizza downtown", "Carl <carl@contoso.com>", now),
        ("Product development", "Roadmap review", "Bob Ny <bob@contoso.com>", old),
        ("Weekly report", "Nothing about plans", "Fiona <fiona@contoso.com>", old),
    ):
        db.append("adam", "inbox", _mail(subject, body, sender), received_at=when)
    inbox = _account(lab).inbox

    def found(query: str) -> list[str]:
        return sorted(i.subject for i in inbox.filter(query).only("subject"))

    everything = sorted(i.subject for i in db.list_messages("adam", "inbox").items)
    assert len(everything) == 4
    # A word starts words of the subject; a phrase is words in a row.
    assert found("subject:plan") == ["Plans for lunch", "Quarterly plan"]
    assert found('subject:"quarterly plan"') == ["Quarterly plan"]
    assert found("subject:(product development)") == ["Product development"]
    # Senders by name or address, bodies through the store's text search.
    assert found("from:bob") == ["Product development", "Quarterly plan"]
    assert found("from:carl@contoso.com") == ["Plans for lunch"]
    assert found("body:tampa") == ["Quarterly plan"]
    assert found("content:pizza OR body:roadmap") == ["Plans for lunch", "Product development"]
    # A term without a property: subject, people or text.
    assert found("plans") == ["Plans for lunch", "Weekly report"]
    # Operators, explicit and implied.
    assert found("from:bob AND NOT subject:product") == ["Quarterly plan"]
    assert found("from:bob subject:plan") == ["Quarterly plan"]
    assert found("(from:carl OR from:fiona) NOT body:pizza") == ["Weekly report"]
    # Dates.
    assert found("received:today") == ["Plans for lunch", "Quarterly plan"]
    assert found("received:3/1/2024") == ["Product development", "Weekly report"]
    assert found("received:<2024-03-02 from:fiona") == ["Weekly report"]
    assert found(f"received:2024-02-29..{now.strftime('%Y-%m-%d')}") == everything
    assert found("received:2024-02-29..2024-03-01") == ["Product development", "Weekly report"]
    assert found("kind:email") == everything and found("kind:meetings") == []
    # A colon in a word that names no keyword is part of the word; punctuation alone
    # looks for nothing.
    db.append(
        "adam", "inbox", _mail("Build 12:30 v1.2:beta - done", "x", "Carl <carl@contoso.com>")
    )
    assert found("subject:Build 12:30 v1.2:beta - done") == ["Build 12:30 v1.2:beta - done"]
    assert found("v1.2:be AND :30") == ["Build 12:30 v1.2:beta - done"]
    assert found('subject:"12:30 v1.2"') == ["Build 12:30 v1.2:beta - done"]
    # What 2010's AQS does not have, or this server does not run, is refused.
    for refused in (
        "attachment:report",
        "category:red",
        "isread:true",
        "subject:(plan",
        'subject:"plan',
        "received:soon",
    ):
        with pytest.raises(ErrorUnsupportedQueryFilter):
            found(refused)


def _post(lab: Lab, operation: str) -> ET.Element:
    """A raw EWS request (exchangelib sends no fractional views nor groups), its RootFolder."""
    lab.set_vdir(FL_EWS, basic_authentication=True)
    session = requests.Session()
    session.mount("https://", LabNamesAdapter())
    answer = session.post(
        url(lab, "ex-fl1.contoso.com"),
        data=(
            f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP_NS}" '
            f'xmlns:t="{TYPES_NS}" xmlns:m="{MESSAGES_NS}"><s:Header><t:RequestServerVersion '
            f'Version="Exchange2010_SP2"/></s:Header><s:Body>{operation}</s:Body></s:Envelope>'
        ).encode(),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        auth=("contoso\\adam", PASSWORD),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    found = ET.fromstring(answer.content).find(f".//{{{MESSAGES_NS}}}RootFolder")
    assert found is not None, answer.text
    return found


def test_find_folder_restricts_and_pages(servers: Lab) -> None:
    lab = servers
    db = lab.stores["EX-FL1"]
    account = _account(lab)
    made = [db.create_folder("adam", f"Sub {i}", "inbox") for i in range(5)]
    for n in range(2):
        db.append("adam", made[1].id, _mail(f"In sub {n}", "x", "Bob <bob@contoso.com>"))
    db.create_folder("adam", "Deep 1", made[4].id)
    inbox = FolderCollection(account=account, folders=[account.inbox])

    def names(**kwargs: Any) -> list[str]:
        return sorted(f.name for f in inbox.find_folders(**kwargs))

    # Restrictions on what FindFolder shows of a folder (exchangelib traverses deep).
    assert names(q=Q(name="sub 3")) == ["Sub 3"]
    assert names(q=Q(total_count__gt=0)) == ["Sub 1"]
    assert names(q=Q(name__startswith="Deep"), depth="Deep") == ["Deep 1"]
    assert names(q=Q(child_folder_count=1) | Q(name="Sub 0")) == ["Sub 0", "Sub 4"]
    # Indexed paging: two at a time through all of them, or a slice.
    children = sorted(f.name for f in db.list_folders("adam") if f.parent_id == made[0].parent_id)
    assert names(page_size=2, depth="Shallow") == children == [f"Sub {i}" for i in range(5)]
    assert names(page_size=2, offset=3, depth="Shallow") == ["Sub 3", "Sub 4"]
    assert names(page_size=4, depth="Deep") == sorted([*children, "Deep 1"])
    # Fractional paging: from two fifths of the view, two folders.
    inbox_ref = '<t:DistinguishedFolderId Id="inbox"/>'
    root = _post(
        lab,
        '<m:FindFolder Traversal="Shallow"><m:FolderShape><t:BaseShape>Default</t:BaseShape>'
        '</m:FolderShape><m:FractionalPageFolderView MaxEntriesReturned="2" Numerator="2" '
        f'Denominator="5"/><m:ParentFolderIds>{inbox_ref}</m:ParentFolderIds></m:FindFolder>',
    )
    shown = [e.text for e in root.iter(f"{{{TYPES_NS}}}DisplayName")]
    assert shown == ["Sub 2", "Sub 3"]
    assert (root.get("NumeratorOffset"), root.get("AbsoluteDenominator")) == ("4", "5")
    assert root.get("IncludesLastItemInRange") == "false"
    # And of items: the second half of a two-message folder.
    sub1 = f'<t:FolderId Id="{folder_id("adam", made[1].id)}"/>'
    root = _post(
        lab,
        '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
        '</m:ItemShape><m:FractionalPageItemView MaxEntriesReturned="5" Numerator="1" '
        f'Denominator="2"/><m:ParentFolderIds>{sub1}</m:ParentFolderIds></m:FindItem>',
    )
    assert len(list(root.iter(f"{{{TYPES_NS}}}ItemId"))) == 1
    assert (root.get("NumeratorOffset"), root.get("AbsoluteDenominator")) == ("2", "2")
    assert root.get("IncludesLastItemInRange") == "true"


def test_find_item_groups_by_a_property_and_by_conversation(servers: Lab) -> None:
    lab = servers
    db = lab.stores["EX-FL1"]
    for subject, sender, day in (
        ("Plan", "bob@contoso.com", 1),
        ("RE: Plan", "carl@contoso.com", 4),
        ("Lunch", "bob@contoso.com", 2),
        ("Fwd: Lunch", "fiona@contoso.com", 3),
    ):
        when = datetime(2024, 3, day, 12, tzinfo=UTC)
        db.append("adam", "inbox", _mail(subject, "x", sender), received_at=when)
    shape = "<m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape>"
    parent = '<m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds>'

    def groups(grouping: str, view: str = "") -> list[tuple[str | None, list[str | None]]]:
        root = _post(
            lab, f'<m:FindItem Traversal="Shallow">{shape}{view}{grouping}{parent}</m:FindItem>'
        )
        return [
            (
                g.findtext(f"{{{TYPES_NS}}}GroupIndex"),
                [e.text for e in g.iter(f"{{{TYPES_NS}}}Subject")],
            )
            for g in root.iter(f"{{{TYPES_NS}}}GroupedItems")
        ]

    # By sender, the group with the latest message first.
    by_sender = groups(
        '<m:GroupBy Order="Descending"><t:FieldURI FieldURI="message:From"/>'
        '<t:AggregateOn Aggregate="Maximum"><t:FieldURI FieldURI="item:DateTimeReceived"/>'
        "</t:AggregateOn></m:GroupBy>"
    )
    assert by_sender == [
        ("carl@contoso.com", ["RE: Plan"]),
        ("fiona@contoso.com", ["Fwd: Lunch"]),
        ("bob@contoso.com", ["Lunch", "Plan"]),
    ]
    # By conversation: RE:/Fwd: left out of the topic.
    assert groups(
        "<m:DistinguishedGroupBy><t:StandardGroupBy>ConversationTopic</t:StandardGroupBy>"
        "</m:DistinguishedGroupBy>"
    ) == [("Plan", ["RE: Plan", "Plan"]), ("Lunch", ["Fwd: Lunch", "Lunch"])]
    # Paging counts items, not groups: the second and third item split across two groups.
    assert groups(
        "<m:DistinguishedGroupBy><t:StandardGroupBy>ConversationTopic</t:StandardGroupBy>"
        "</m:DistinguishedGroupBy>",
        '<m:IndexedPageItemView MaxEntriesReturned="2" Offset="1" BasePoint="Beginning"/>',
    ) == [("Plan", ["Plan"]), ("Lunch", ["Fwd: Lunch"])]
    assert len(db.list_messages("adam", "inbox").items) == 4


def test_mapi_properties_by_tag_are_the_stores_facts(servers: Lab) -> None:
    # Gateways (DavMail) read a mailbox through MAPI tags: folders by PR_CONTAINER_CLASS,
    # their counts and next UID; messages by their IMAP UID, size, flags and delivery time.
    lab = servers
    db = lab.stores["EX-FL1"]
    _account(lab)  # turns Basic on
    notes = db.create_folder("adam", "Notes to self", "inbox")
    for n in range(3):
        db.append("adam", notes.id, _mail(f"Note {n}", "x", "Bob <bob@contoso.com>"))
    uids = {m.subject: m.uid for m in db.list_messages("adam", notes.id).items}
    tag = '<t:ExtendedFieldURI PropertyTag="{}" PropertyType="{}"/>'.format
    mail_class = tag("0x3613", "String")
    root = _post(
        lab,
        '<m:FindFolder Traversal="Deep"><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape>'
        f'<t:AdditionalProperties><t:FieldURI FieldURI="folder:DisplayName"/>{mail_class}'
        f"{tag('0x3602', 'Integer')}{tag('0x360a', 'Boolean')}{tag('0x6751', 'Integer')}"
        "</t:AdditionalProperties></m:FolderShape><m:Restriction><t:And><t:IsEqualTo>"
        f'{mail_class}<t:FieldURIOrConstant><t:Constant Value="IPF.Note"/>'
        "</t:FieldURIOrConstant></t:IsEqualTo><t:IsGreaterThan>"
        f'{tag("0x3602", "Integer")}<t:FieldURIOrConstant><t:Constant Value="2"/>'
        "</t:FieldURIOrConstant></t:IsGreaterThan></t:And></m:Restriction>"
        '<m:ParentFolderIds><t:DistinguishedFolderId Id="msgfolderroot"/></m:ParentFolderIds>'
        "</m:FindFolder>",
    )
    folders = list(root.iter(f"{{{TYPES_NS}}}Folder"))
    assert [f.findtext(f"{{{TYPES_NS}}}DisplayName") for f in folders] == ["Notes to self"]
    values = {
        p.find(f"{{{TYPES_NS}}}ExtendedFieldURI").get("PropertyTag"): p.findtext(
            f"{{{TYPES_NS}}}Value"
        )
        for p in folders[0].iter(f"{{{TYPES_NS}}}ExtendedProperty")
    }
    assert values == {
        "0x3613": "IPF.Note",
        "0x3602": "3",
        "0x360a": "false",
        "0x6751": str(max(uids.values()) + 1),
    }
    # Items by IMAP UID, newest UID first, with the read bit of PR_MESSAGE_FLAGS (tag order).
    note1 = next(m.id for m in db.list_messages("adam", notes.id).items if m.subject == "Note 1")
    db.set_flags("adam", note1, FlagUpdate(seen=True))
    root = _post(
        lab,
        '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
        f'<t:AdditionalProperties><t:FieldURI FieldURI="item:Subject"/>{tag("0xe23", "Integer")}'
        f"{tag('0x0e07', 'Integer')}</t:AdditionalProperties></m:ItemShape>"
        '<m:SortOrder><t:FieldOrder Order="Descending">'
        f"{tag('0x0e23', 'Integer')}</t:FieldOrder></m:SortOrder><m:ParentFolderIds>"
        f'<t:FolderId Id="{folder_id("adam", notes.id)}"/></m:ParentFolderIds></m:FindItem>',
    )
    shown = [
        (i.findtext(f"{{{TYPES_NS}}}Subject"), [v.text for v in i.iter(f"{{{TYPES_NS}}}Value")])
        for i in root.iter(f"{{{TYPES_NS}}}Message")
    ]
    assert shown == [
        (f"Note {n}", ["1" if n == 1 else "0", str(uids[f"Note {n}"])]) for n in (2, 1, 0)
    ]


def test_a_recipient_without_a_name_is_named_by_its_address_and_found_so(servers: Lab) -> None:
    # Exchange gives every recipient a Name; a client searches by the name it was given.
    account = _account(servers)
    subject = "Sent v1.2:beta 12:30"
    Message(
        account=account,
        folder=account.sent,
        subject=subject,
        body="b",
        to_recipients=[Mailbox(email_address="adam@contoso.com")],
    ).send_and_save()
    sent = account.sent.get(subject=subject)
    (to,) = sent.to_recipients
    assert (to.name, to.email_address) == ("adam@contoso.com", "adam@contoso.com")
    assert account.sent.get(f"To:{to.name} AND Subject:{subject}").id == sent.id
    assert account.sent.get(f'To:"{to.name}" AND Subject:{subject}').id == sent.id
    assert account.sent.get(f"Participants:{to.name} AND Subject:{subject}").id == sent.id
