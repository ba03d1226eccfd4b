"""FindItem restrictions and sort orders, as exchangelib's filter() and order_by() send them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from exchangelib import Q
from exchangelib.errors import ErrorUnsupportedPathForQuery
from tests.unit.access.test_ews_exchangelib import (
    FL_EWS,
    ews_account,
    lab_names,
    mime,
    servers,
    url,
)
from tests.unit.access.test_web_front import Lab

from sitemail.access.ews_responses import Refused
from sitemail.access.ews_restriction import parse_restriction
from sitemail.access.ews_soap import TYPES_NS
from sitemail.mailbox.database import StoreDatabase

__all__ = ["lab_names", "servers"]


def test_exchangelib_filters_and_orders_a_folder(servers: Lab) -> None:
    lab = servers
    lab.set_vdir(FL_EWS, basic_authentication=True)
    db: StoreDatabase = lab.stores["EX-FL1"]
    subjects = ["Budget 2027", "budget review", "Lunch", "Quarterly BUDGET", "Travel"]
    for i, subject in enumerate(subjects):
        db.deliver("adam", f"restrict:{i}", mime(subject, f"Body of {subject}"))
    lunch = next(m for m in db.list_messages("adam", "inbox", limit=50).items
                 if m.subject == "Lunch")  # fmt: skip
    db.store_flags("adam", lunch.folder_id, [lunch.uid], add=["seen"])
    account = ews_account(url(lab, "ex-fl1.contoso.com"), "contoso\\adam", "adam@contoso.com")
    inbox = account.inbox

    found = inbox.filter(subject__icontains="budget").order_by("subject")
    assert [m.subject for m in found] == ["Budget 2027", "budget review", "Quarterly BUDGET"]
    assert inbox.filter(subject__icontains="budget").count() == 3
    assert {m.subject for m in inbox.filter(subject__istartswith="budget")} == {
        "Budget 2027",
        "budget review",
    }
    assert {m.subject for m in inbox.filter(is_read=True)} == {"Lunch"}
    assert {m.subject for m in inbox.filter(~Q(is_read=True))} == set(subjects) - {"Lunch"}
    assert [m.subject for m in inbox.filter(Q(subject="Lunch") | Q(subject="Travel"))
            .order_by("-subject")] == ["Travel", "Lunch"]  # fmt: skip
    since = datetime.now(UTC) - timedelta(hours=1)
    assert inbox.filter(datetime_received__gt=since).count() == len(subjects)
    assert inbox.filter(datetime_received__lt=since).count() == 0
    # Paging applies after the restriction and the order.
    page = list(inbox.filter(subject__icontains="budget").order_by("-subject")[1:3])
    assert [m.subject for m in page] == ["budget review", "Budget 2027"]
    # The body is searched too (each message's text read); a property sitemail does not hold
    # is refused as Exchange refuses it.
    assert {m.subject for m in inbox.filter(body__contains="Body of Lunch")} == {"Lunch"}
    with pytest.raises(ErrorUnsupportedPathForQuery):
        list(inbox.filter(conversation_topic="Lunch"))


def _restriction(xml: str) -> ET.Element:
    return ET.fromstring(
        f'<m:Restriction xmlns:m="urn:m" xmlns:t="{TYPES_NS}">{xml}</m:Restriction>'
    )


def test_a_constant_of_the_wrong_type_and_an_unknown_operator_are_refused() -> None:
    with pytest.raises(Refused) as bad:
        parse_restriction(_restriction(
            '<t:IsEqualTo><t:FieldURI FieldURI="message:IsRead"/>'
            '<t:FieldURIOrConstant><t:Constant Value="maybe"/></t:FieldURIOrConstant></t:IsEqualTo>'
        ))  # fmt: skip
    assert bad.value.code == "ErrorInvalidValueForProperty"
    with pytest.raises(Refused) as unknown:
        parse_restriction(_restriction(
            '<t:Excludes><t:FieldURI FieldURI="item:Size"/><t:Bitmask Value="1"/></t:Excludes>'
        ))  # fmt: skip
    assert unknown.value.code == "ErrorUnsupportedQueryFilter"
