"""FindItem's QueryString (AQS) and FindFolder's restrictions and paging, through exchangelib.

The servers are :mod:`tests.unit.access.test_ews_exchangelib`'s; what each
query finds is compared with the messages and folders the store holds.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from exchangelib.errors import ErrorUnsupportedQueryFilter
from tests.unit.access.test_ews_exchangelib import lab_names, servers
from tests.unit.access.test_ews_write import _account
from tests.unit.access.test_web_front import Lab

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
    # What 2010's AQS does not have, or this server does not run, is refused.
    for refused in ("attachment:report", "subject:(plan", 'subject:"plan', "received:soon"):
        with pytest.raises(ErrorUnsupportedQueryFilter):
            found(refused)
