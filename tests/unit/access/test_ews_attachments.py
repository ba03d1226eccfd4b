"""CreateAttachment, GetAttachment and DeleteAttachment driven by exchangelib, checked in the
answers and in the mailbox database: attachments are MIME parts of the stored message."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import requests
from exchangelib import FileAttachment, HTMLBody, ItemAttachment, Message
from exchangelib.errors import ErrorInvalidAttachmentId
from exchangelib.services import GetAttachment
from tests.unit.access.test_ews_exchangelib import FL_EWS, ews_account, lab_names, servers, url
from tests.unit.access.test_ews_write import _account
from tests.unit.access.test_web_front import PASSWORD, Lab

from sitemail.access.ews_body import bodies_in_body_type, html_to_text
from sitemail.access.ews_soap import MESSAGES_NS as MNS
from sitemail.access.ews_soap import TYPES_NS as TNS

__all__ = ["lab_names", "servers"]


def test_files_and_messages_are_attached_read_and_detached(servers: Lab) -> None:
    servers.set_vdir(FL_EWS, basic_authentication=True)
    db = servers.stores["EX-FL1"]
    account = ews_account(url(servers, "ex-fl1.contoso.com"), "contoso\\adam", "adam@contoso.com")
    draft = Message(account=account, folder=account.drafts, subject="Report", body="see att")
    content = "Hello from unicode \u00e6\u00f8\u00e5".encode()
    draft.attach(FileAttachment(name="notes.txt", content=content))
    inner = Message(
        account=account,
        subject="Inner",
        body="inside",
        sensitivity="Private",
        categories=["Attached"],
        to_recipients=["alice@contoso.com"],
    )
    draft.attach(ItemAttachment(name="forwarded", item=inner))
    draft.save()  # CreateItem, then CreateAttachment as exchangelib does for 2010
    (stored,) = db.list_messages("adam", "drafts").items
    assert stored.has_attachments
    raw = db.read_raw("adam", stored.id)
    assert b'filename="notes.txt"' in raw and b"message/rfc822" in raw and b"see att" in raw
    assert db.get_message("adam", stored.id).subject == "Report"
    # The answer's RootItemChangeKey is the item's new one.
    fresh = account.drafts.get(id=draft.id)
    assert fresh.changekey == draft.changekey
    by_name = {a.name: a for a in fresh.attachments}
    assert sorted(by_name) == ["forwarded", "notes.txt"]
    assert by_name["notes.txt"].content == content
    assert by_name["forwarded"].item.subject == "Inner"
    attached = by_name["forwarded"].item
    assert attached.body == "inside" and attached.sensitivity == "Private"
    assert attached.categories == ["Attached"]
    assert [(r.email_address, r.mailbox_type) for r in attached.to_recipients] == [
        ("alice@contoso.com", "Mailbox")
    ]
    # Detaching one leaves the other, found by its id although its place changed.
    gone = by_name["notes.txt"]
    gone_id = gone.attachment_id
    fresh.detach(gone)
    raw = db.read_raw("adam", stored.id)
    assert b"notes.txt" not in raw and b"message/rfc822" in raw
    again = account.drafts.get(id=draft.id)
    assert [a.name for a in again.attachments] == ["forwarded"]
    assert again.attachments[0].item.subject == "Inner"
    # An id of a detached attachment is refused as Exchange refuses it.
    orphan = FileAttachment(parent_item=again, attachment_id=gone_id, name="notes.txt")
    with pytest.raises(ErrorInvalidAttachmentId), orphan.fp as fp:
        fp.read()


def test_an_attached_html_message_is_given_as_text_when_text_is_asked(servers: Lab) -> None:
    # Exchange converts an HTML body for a shape with BodyType Text: a line per block, CRLF.
    account = _account(servers)
    parent = Message(account=account, folder=account.drafts, subject="Parent", body="p")
    inner = Message(
        account=account, subject="Inner", body=HTMLBody("<html><body>Hello HTML</body></html>")
    )
    attachment = ItemAttachment(name="inner", item=inner)
    parent.attach(attachment)
    parent.save()
    got = GetAttachment(account=account).get(
        items=[attachment.attachment_id],
        include_mime_content=False,
        body_type="Text",
        filter_html_content=None,
        additional_fields=[],
    )
    assert got.item.body == "Hello HTML\r\n"
    best = GetAttachment(account=account).get(
        items=[attachment.attachment_id],
        include_mime_content=False,
        body_type=None,
        filter_html_content=None,
        additional_fields=[],
    )
    assert best.item.body == "<html><body>Hello HTML</body></html>"


def test_html_is_read_as_text_a_line_per_block() -> None:
    html = (
        "<html><head><title>t</title><style>p{}</style></head><body><p>One  two</p>"
        "<div>Three<br>Four</div><ul><li>a</li><li>b &amp; c</li></ul>"
        "<pre>x\n  y</pre><script>no()</script></body></html>"
    )
    assert html_to_text(html) == "One two\r\nThree\r\nFour\r\na\r\nb & c\r\nx\r\n  y\r\n"
    assert html_to_text("") == ""


def test_an_item_attached_within_an_attached_item_is_read_at_every_level(servers: Lab) -> None:
    account = _account(servers)
    drafts = account.drafts
    levels = [Message(account=account, folder=drafts, subject=f"Level {n}") for n in range(4)]
    # Each level is saved and then attached to the one above it, as exchangelib does.
    for inner, outer in zip(levels[:0:-1], levels[-2::-1], strict=True):
        inner.save()
        outer.attach(ItemAttachment(name=inner.subject, item=inner))
    levels[0].save()
    fresh = drafts.get(id=levels[0].id)
    item = fresh
    for n in range(1, 4):
        (attachment,) = item.attachments
        assert attachment.name == f"Level {n}"
        item = attachment.item
        assert item.subject == f"Level {n}"
    assert item.attachments == []


def test_an_attached_item_keeps_its_reminder_and_response_request(servers: Lab) -> None:
    account = _account(servers)
    inner = Message(
        account=account,
        folder=account.drafts,
        subject="Reminded",
        reminder_is_set=True,
        reminder_minutes_before_start=68,
        is_response_requested=True,
    )
    inner.save()
    outer = Message(account=account, folder=account.drafts, subject="Outer")
    outer.save()
    outer.attach(ItemAttachment(name="reminded", item=inner))
    (attachment,) = account.drafts.get(id=outer.id).attachments
    got = attachment.item
    assert (got.reminder_is_set, got.reminder_minutes_before_start) == (True, 68)
    assert got.is_response_requested is True
    # One attached without them reads as Exchange's defaults.
    plain = Message(account=account, folder=account.drafts, subject="Plain")
    plain.save()
    outer.attach(ItemAttachment(name="plain", item=plain))
    fresh = account.drafts.get(id=outer.id)
    (second,) = [a for a in fresh.attachments if a.name == "plain"]
    assert (second.item.reminder_is_set, second.item.reminder_minutes_before_start) == (False, 0)


def test_getitem_gives_an_html_body_as_text_when_the_shape_asks(servers: Lab) -> None:
    account = _account(servers)
    item = Message(
        account=account,
        folder=account.drafts,
        subject="Html",
        body=HTMLBody("<html><body><p>One</p><p>Two</p></body></html>"),
    )
    item.save()
    request = ET.fromstring(
        f'<m:GetItem xmlns:m="{MNS}" xmlns:t="{TNS}"><m:ItemShape>'
        "<t:BaseShape>IdOnly</t:BaseShape><t:BodyType>{}</t:BodyType>"
        '<t:AdditionalProperties><t:FieldURI FieldURI="item:Body"/></t:AdditionalProperties>'
        f'</m:ItemShape><m:ItemIds><t:ItemId Id="{item.id}"/></m:ItemIds></m:GetItem>'
    )

    def body(kind: str) -> tuple[str | None, str | None]:
        shape = request.find(f"{{{MNS}}}ItemShape/{{{TNS}}}BodyType")
        assert shape is not None
        shape.text = kind
        answer = account.protocol.get_session()
        account.protocol.release_session(answer)
        response = answer.post(
            account.protocol.service_endpoint,
            data=_soap(ET.tostring(request, encoding="unicode")),
            headers={"Content-Type": "text/xml; charset=utf-8"},
            auth=requests.auth.HTTPBasicAuth("contoso\\adam", PASSWORD),
            timeout=30,
        )
        found = ET.fromstring(response.content).find(f".//{{{TNS}}}Body")
        assert found is not None
        return found.get("BodyType"), found.text

    assert body("Text") == ("Text", "One\r\nTwo\r\n")
    assert body("Best") == ("HTML", "<html><body><p>One</p><p>Two</p></body></html>")


def _soap(inner: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><s:Envelope '
        f'xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:t="{TNS}"><s:Header>'
        '<t:RequestServerVersion Version="Exchange2010_SP2"/></s:Header>'
        f"<s:Body>{inner}</s:Body></s:Envelope>"
    ).encode()


def test_html_bodies_of_an_answer_become_text_only_when_text_is_asked() -> None:
    answer = ET.fromstring(
        f'<m:GetItemResponse xmlns:m="{MNS}" xmlns:t="{TNS}"><t:Body BodyType="HTML">'
        '&lt;b&gt;x&lt;/b&gt;</t:Body><t:Body BodyType="Text">y</t:Body></m:GetItemResponse>'
    )
    asked = ET.fromstring(
        f'<m:GetItem xmlns:m="{MNS}" xmlns:t="{TNS}"><m:ItemShape><t:BodyType>Text'
        "</t:BodyType></m:ItemShape></m:GetItem>"
    )
    converted = bodies_in_body_type(answer, asked)
    assert [(b.get("BodyType"), b.text) for b in converted] == [("Text", "x\r\n"), ("Text", "y")]
