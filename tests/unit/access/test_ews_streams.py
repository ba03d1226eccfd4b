"""Streaming notifications through NY's CAS for a Florida mailbox, as a client reads them.

The servers are :mod:`tests.unit.access.test_ews_exchangelib`'s.  A client
that stops reading after its first notification closes its connection to
NY; NY closes its own to FL, and the events that follow go to the client's
next stream, not to the closed one.  A quiet stream says it is open
(keep-alive envelopes) and ends with ``ConnectionStatus`` Closed in a
clean chunked answer through the proxy.
"""

from __future__ import annotations

import re
import time

import pytest
import requests
from exchangelib import Account, Message
from exchangelib.properties import CreatedEvent, DeletedEvent, ModifiedEvent, MovedEvent
from tests.unit.access.test_ews_exchangelib import NY_EWS, lab_names, mime, servers
from tests.unit.access.test_ews_write import _account
from tests.unit.access.test_web_front import PASSWORD, Lab

from sitemail.access.ews_handler import EwsHandler
from sitemail.access.ews_subscriptions import affinity_cookies
from sitemail.org.model import VirtualDirectoryKind

__all__ = ["lab_names", "servers"]


def _via_ny(lab: Lab) -> None:
    lab.set_vdir(
        NY_EWS,
        basic_authentication=True,
        external_url="https://mail.contoso.com/EWS/Exchange.asmx",
    )


def _events(notes: list[object], kind: type, ident: str) -> list[object]:
    found = []
    for note in notes:
        for event in getattr(note, "events", []):
            if isinstance(event, kind):
                item = event.old_item_id if isinstance(event, MovedEvent) else event.item_id
                if item is not None and item.id == ident:
                    found.append(event)
    return found


def test_a_client_that_stops_after_one_notification_gets_the_next_in_its_next_stream(
    servers: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(EwsHandler, "STREAM_MINUTE", 5.0)
    _via_ny(servers)
    account = _account(servers, "mail.contoso.com")
    drafts = account.drafts
    sub_id = drafts.subscribe_to_streaming()

    def one() -> list[object]:
        return list(
            drafts.get_streaming_events(sub_id, connection_timeout=1, max_notifications_returned=1)
        )

    item = Message(account=account, folder=drafts, subject="First", body="x")
    item.save()
    assert len(_events(one(), CreatedEvent, item.id)) == 1
    # The first stream's client has gone; the edit goes to the second stream.
    item.subject = "Second"
    item.save(update_fields=["subject"])
    assert len(_events(one(), ModifiedEvent, item.id)) == 1
    gone = item.id
    item.delete()
    notes = one()
    assert len(_events(notes, MovedEvent, gone) + _events(notes, DeletedEvent, gone)) == 1
    drafts.unsubscribe(sub_id)


def _stream_request(sub_id: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><s:Envelope '
        'xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages" '
        'xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Header>'
        '<t:RequestServerVersion Version="Exchange2010_SP2"/></s:Header><s:Body>'
        "<m:GetStreamingEvents><m:SubscriptionIds><t:SubscriptionId>"
        f"{sub_id}</t:SubscriptionId></m:SubscriptionIds>"
        "<m:ConnectionTimeout>1</m:ConnectionTimeout></m:GetStreamingEvents></s:Body></s:Envelope>"
    ).encode()


def _post_stream(account: Account, sub_id: str) -> requests.Response:
    # A session of exchangelib's: its adapter dials the test servers by their names.
    session = account.protocol.get_session()
    account.protocol.release_session(session)
    return session.post(
        account.protocol.service_endpoint,
        data=_stream_request(sub_id),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        auth=requests.auth.HTTPBasicAuth("contoso\\adam", PASSWORD),
        stream=True,
        timeout=30,
    )


def test_the_mailbox_site_ends_a_stream_whose_client_left_ny(
    servers: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No keep-alive is written within the test: only NY's noticing that its client left,
    # and closing its connection to FL, can end FL's stream before its minute is over.
    monkeypatch.setattr(EwsHandler, "STREAM_MINUTE", 60.0)
    _via_ny(servers)
    account = _account(servers, "mail.contoso.com")
    sub_id = account.inbox.subscribe_to_streaming()
    fl = servers.doors["EX-FL1"].handlers[VirtualDirectoryKind.EWS]
    assert isinstance(fl, EwsHandler)
    servers.stores["EX-FL1"].deliver("adam", "s:0", mime("First", "x"))
    answer = _post_stream(account, sub_id)
    next(answer.iter_content(None))  # the first notification: FL's stream is open
    assert fl._streams.get("adam")
    answer.close()
    deadline = time.monotonic() + 8  # FL looks every CHECK_SECONDS
    while fl._streams.get("adam") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not fl._streams.get("adam")
    account.inbox.unsubscribe(sub_id)


def test_a_quiet_stream_through_ny_keeps_alive_and_ends_cleanly(
    servers: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two seconds a minute, a keep-alive every half second.
    monkeypatch.setattr(EwsHandler, "STREAM_MINUTE", 2.0)
    monkeypatch.setattr(EwsHandler, "STREAM_KEEPALIVE", 0.5)
    _via_ny(servers)
    account = _account(servers, "mail.contoso.com")
    sub_id = account.inbox.subscribe_to_streaming()
    answer = _post_stream(account, sub_id)
    assert answer.headers.get("Transfer-Encoding") == "chunked"
    # Read to the end: a premature end would raise ChunkedEncodingError.
    text = b"".join(answer.iter_content(None)).decode()
    statuses = re.findall(r"<m:ConnectionStatus>(\w+)</m:ConnectionStatus>", text)
    assert statuses[-1] == "Closed" and statuses.count("Closed") == 1
    assert statuses.count("OK") >= 2  # keep-alives while nothing happened
    assert text.count("<s:Envelope") == len(statuses)
    account.inbox.unsubscribe(sub_id)


def test_a_subscription_request_asking_for_affinity_gets_the_cookie(servers: Lab) -> None:
    # exchangelib asks for affinity on Subscribe, GetEvents, GetStreamingEvents and
    # Unsubscribe; the cookie names the CAS of the mailbox's site, through NY or not.
    _via_ny(servers)
    for host, server in (("mail.contoso.com", "EX-FL1"), ("ex-fl1.contoso.com", "EX-FL1")):
        account = _account(servers, host)
        assert account.affinity_cookie is None
        with account.inbox.streaming_subscription() as sub_id:
            assert sub_id
        assert account.affinity_cookie == server
    # A request that does not ask gets none.
    assert affinity_cookies({"X-AnchorMailbox": "adam@contoso.com"}, "EX-FL1") == {}
    assert affinity_cookies({"X-PreferServerAffinity": "True"}, "EX-FL1") == {
        "X-BackEndOverrideCookie": "EX-FL1"
    }
