"""The organizer cancels a meeting (CancelCalendarItem), and response objects without the
item they answer, through exchangelib against the in-process Client Access servers of
:mod:`tests.unit.access.test_ews_exchangelib`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from exchangelib import Account, Attendee, CalendarItem, EWSDateTime, EWSTimeZone, Mailbox
from exchangelib.errors import (
    ErrorInvalidRecipients,
    ErrorInvalidReferenceItem,
    ErrorIrresolvableConflict,
    ErrorItemNotFound,
    ErrorMissingInformationReferenceItemId,
)
from exchangelib.items import AcceptItem, BulkCreateResult, DeclineItem
from tests.unit.access.test_ews_exchangelib import FL_EWS, ews_account, lab_names, servers, url
from tests.unit.access.test_web_front import Lab

__all__ = ["lab_names", "servers"]

UTC_TZ = EWSTimeZone("UTC")


def _adam(lab: Lab) -> Account:
    lab.set_vdir(FL_EWS, basic_authentication=True)
    return ews_account(url(lab, "ex-fl1.contoso.com"), "contoso\\adam", "adam@contoso.com")


def test_the_organizer_cancels_a_meeting(servers: Lab) -> None:
    db = servers.stores["EX-FL1"]
    adam = _adam(servers)
    start = EWSDateTime(2030, 3, 4, 10, tzinfo=UTC_TZ)
    meeting = CalendarItem(
        account=adam,
        folder=adam.calendar,
        subject="Offsite",
        start=start,
        end=start + timedelta(hours=1),
        required_attendees=[
            Attendee(mailbox=Mailbox(email_address="alice@contoso.com")),
            Attendee(mailbox=Mailbox(email_address="adam@contoso.com")),
        ],
    ).save(send_meeting_invitations="SendToNone")
    stale = meeting.changekey
    meeting.location = "Beach"
    meeting.save(update_fields=["location"], send_meeting_invitations="SendToNone")
    with pytest.raises(ErrorIrresolvableConflict):
        meeting.changekey = stale
        meeting.cancel()
    meeting.refresh()
    answer = meeting.cancel()
    assert isinstance(answer, BulkCreateResult)
    # The meeting left the organizer's calendar for Deleted Items ...
    assert db.list_typed("adam", "calendar").total == 0
    # ... and the attendees' cancellation waits for Mail Submission, a copy to be kept.
    (sent,) = db.list_messages("adam", "outbox").items
    assert sent.subject == "Canceled: Offsite" and not sent.flags.deleted
    assert [a.address for a in sent.to] == ["alice@contoso.com"]
    raw = db.read_raw("adam", sent.id)
    assert b"METHOD:CANCEL" in raw and b"STATUS:CANCELLED" in raw
    # Its id named it in the Calendar: it names nothing now, as Exchange's ids change when
    # an item moves; the answer's id is where it is, marked cancelled, not cancelled twice.
    with pytest.raises(ErrorItemNotFound):
        meeting.cancel()
    (kept,) = db.list_typed("adam", "deleteditems").items
    assert kept.calendar is not None and kept.calendar.cancelled
    moved = adam.trash.get(id=answer.id)
    assert moved.is_cancelled and moved.subject == "Offsite"
    with pytest.raises(ErrorInvalidReferenceItem):
        moved.cancel()


def test_a_meeting_with_no_one_but_its_organizer_has_no_one_to_cancel_for(servers: Lab) -> None:
    adam = _adam(servers)
    start = EWSDateTime(2030, 3, 5, 10, tzinfo=UTC_TZ)
    for attendees in ([], [Attendee(mailbox=Mailbox(email_address="adam@contoso.com"))]):
        alone = CalendarItem(
            account=adam,
            folder=adam.calendar,
            subject="Focus",
            start=start,
            end=start,
            required_attendees=attendees,
        ).save(send_meeting_invitations="SendToNone")
        with pytest.raises(ErrorInvalidRecipients):
            alone.cancel()
    assert servers.stores["EX-FL1"].list_typed("adam", "calendar").total == 2


def test_a_response_object_names_the_item_it_answers(servers: Lab) -> None:
    adam = _adam(servers)
    for response in (AcceptItem, DeclineItem):
        with pytest.raises(ErrorMissingInformationReferenceItemId):
            response(account=adam).send()
