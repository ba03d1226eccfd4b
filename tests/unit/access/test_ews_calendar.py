"""Calendar items, contacts, tasks and free/busy through EWS, driven by exchangelib's own API.

The servers are :mod:`tests.unit.access.test_ews_exchangelib`'s two in-process
Client Access servers (EX-NY1 with alice's mailbox, EX-FL1 with adam's);
every assertion on what the server answers is matched by one on what the
mailbox database holds.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from exchangelib import (
    Account,
    Attendee,
    CalendarItem,
    Contact,
    EWSDateTime,
    EWSTimeZone,
    Mailbox,
    Task,
)
from exchangelib.errors import (
    ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange,
    ErrorCalendarOccurrenceIsDeletedFromRecurrence,
    ErrorCalendarViewRangeTooBig,
    ErrorExceededFindCountLimit,
    ErrorInvalidOperation,
    ErrorIrresolvableConflict,
    ErrorNameResolutionNoResults,
)
from exchangelib.indexed_properties import EmailAddress, PhoneNumber
from exchangelib.items import AcceptItem, DeclineItem
from exchangelib.properties import ReferenceItemId
from exchangelib.recurrence import (
    DailyPattern,
    Recurrence,
    RelativeMonthlyPattern,
    WeeklyPattern,
)
from tests.unit.access.test_ews_exchangelib import (
    FL_EWS,
    NY_EWS,
    ews_account,
    lab_names,
    servers,
    url,
)
from tests.unit.access.test_web_front import Lab

from sitemail.access.ews_ids import item_id
from sitemail.mailbox.item_records import FreeBusy, ItemKind, Pattern, ResponseType, TaskStatus

__all__ = ["lab_names", "servers"]

COPENHAGEN = EWSTimeZone("Europe/Copenhagen")  # Windows: "Romance Standard Time"
UTC_TZ = EWSTimeZone("UTC")


def _adam(lab: Lab) -> Account:
    lab.set_vdir(FL_EWS, basic_authentication=True)
    return ews_account(url(lab, "ex-fl1.contoso.com"), "contoso\\adam", "adam@contoso.com")


def test_a_recurring_meeting_is_created_expanded_changed_and_deleted(servers: Lab) -> None:
    lab = servers
    db = lab.stores["EX-FL1"]
    account = _adam(lab)
    # Mondays and Wednesdays at 09:00 Copenhagen time, ten times, across the DST change
    # of 31 March 2030.
    start = EWSDateTime(2030, 3, 18, 9, tzinfo=COPENHAGEN)
    item = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Standup",
        start=start,
        end=start + timedelta(minutes=30),
        location="Room 1",
        legacy_free_busy_status="Tentative",
        required_attendees=[Attendee(mailbox=Mailbox(email_address="alice@contoso.com"))],
        recurrence=Recurrence(
            pattern=WeeklyPattern(interval=1, weekdays=[1, 3]), start=start.date(), number=10
        ),
    )
    item.save(send_meeting_invitations="SendToNone")
    (stored,) = db.list_typed("adam", "calendar").items
    data = stored.calendar
    assert data is not None and stored.kind is ItemKind.CALENDAR
    assert data.time_zone == "Romance Standard Time" and data.free_busy is FreeBusy.TENTATIVE
    assert data.recurrence is not None and data.recurrence.pattern is Pattern.WEEKLY
    assert data.recurrence.count == 10 and [a.address for a in data.required] == [
        "alice@contoso.com"
    ]
    assert data.organizer is not None and data.organizer.address == "adam@contoso.com"
    # It is a message of the Calendar folder too (IMAP sees an iCalendar item).
    (as_message,) = db.list_messages("adam", "calendar").items
    assert as_message.id == stored.id and as_message.subject == "Standup"
    assert b"RRULE:FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,WE;COUNT=10" in db.read_raw("adam", stored.id)

    master = account.calendar.get(id=item.id)
    assert master.type == "RecurringMaster" and master.subject == "Standup"
    assert master.recurrence.boundary.number == 10
    assert b"RRULE:FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,WE;COUNT=10" in master.mime_content
    assert master.first_occurrence.start == datetime(2030, 3, 18, 8, tzinfo=UTC)
    assert master.last_occurrence.start == datetime(2030, 4, 17, 7, tzinfo=UTC)
    # The view expands the series: 09:00 local is 08:00 UTC before the change, 07:00 after.
    window = (EWSDateTime(2030, 3, 18, tzinfo=UTC_TZ), EWSDateTime(2030, 4, 8, tzinfo=UTC_TZ))
    view = list(account.calendar.view(*window))
    assert [(o.start.hour, o.type) for o in view] == [(8, "Occurrence")] * 4 + [
        (7, "Occurrence")
    ] * 2
    # One occurrence moved and renamed (an exception), another deleted.
    moved = view[1]
    moved.subject = "Moved standup"
    moved.start += timedelta(hours=2)
    moved.end += timedelta(hours=2)
    moved.save()
    view[2].delete()
    data = db.get_typed("adam", stored.id).calendar
    assert data is not None
    assert [(m.subject, m.start.hour) for m in data.modified] == [("Moved standup", 10)]
    assert data.deleted == [datetime(2030, 3, 25, 8, tzinfo=UTC)]
    view = list(account.calendar.view(*window))
    assert [(o.start.day, o.type, o.subject) for o in view] == [
        (18, "Occurrence", "Standup"),
        (20, "Exception", "Moved standup"),
        (27, "Occurrence", "Standup"),
        (1, "Occurrence", "Standup"),
        (3, "Occurrence", "Standup"),
    ]
    master = account.calendar.get(id=item.id)
    assert [o.original_start.day for o in master.modified_occurrences] == [20]
    # Occurrences by index (OccurrenceItemId) and back to the master (RecurringMasterItemId).
    second = master.occurrence(2)
    second.refresh()
    assert (second.type, second.subject, second.start.hour) == ("Exception", "Moved standup", 10)
    back = second.recurring_master()
    back.refresh()
    assert back.type == "RecurringMaster" and back.id == item.id
    with pytest.raises(ErrorCalendarOccurrenceIsDeletedFromRecurrence):
        master.occurrence(3).refresh()
    with pytest.raises(ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange):
        master.occurrence(11).refresh()
    assert [d.start.day for d in master.deleted_occurrences] == [25]
    # Saving the master with every property sent again, unchanged, keeps its exceptions.
    master = account.calendar.get(id=item.id)
    master.save()
    data = db.get_typed("adam", stored.id).calendar
    assert data is not None and len(data.modified) == 1 and len(data.deleted) == 1
    # The master changes with a new ChangeKey; the old one is a conflict.
    old_key = master.changekey
    master.location = "Room 2"
    master.save(update_fields=["location"])
    assert db.get_typed("adam", stored.id).calendar.location == "Room 2"  # type: ignore[union-attr]
    stale = CalendarItem(account=account, folder=account.calendar, id=item.id, changekey=old_key)
    stale.location = "Room 3"
    with pytest.raises(ErrorIrresolvableConflict):
        stale.save(update_fields=["location"])
    # Moved to Deleted Items: gone from the calendar, kept there with its record.
    master.move_to_trash()
    assert list(account.calendar.view(*window)) == []
    assert db.list_typed("adam", "calendar").total == 0
    (trashed,) = db.list_typed("adam", "deleteditems").items
    assert trashed.calendar is not None and trashed.calendar.location == "Room 2"


def test_calendar_view_bounds_and_singles(servers: Lab) -> None:
    lab = servers
    db = lab.stores["EX-FL1"]
    account = _adam(lab)
    day = EWSDateTime(2030, 6, 3, tzinfo=UTC_TZ)
    for hour in (9, 11, 14):
        CalendarItem(
            account=account,
            folder=account.calendar,
            subject=f"At {hour}",
            start=day + timedelta(hours=hour),
            end=day + timedelta(hours=hour + 1),
        ).save(send_meeting_invitations="SendToNone")
    # The last Friday of each month, with no end.
    CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Review",
        start=EWSDateTime(2030, 1, 25, 15, tzinfo=UTC_TZ),
        end=EWSDateTime(2030, 1, 25, 16, tzinfo=UTC_TZ),
        recurrence=Recurrence(
            pattern=RelativeMonthlyPattern(interval=1, weekday=5, week_number=5),
            start=EWSDateTime(2030, 1, 25, tzinfo=UTC_TZ).date(),
        ),
    ).save(send_meeting_invitations="SendToNone")
    assert db.list_typed("adam", "calendar").total == 4
    june = list(account.calendar.view(day, day + timedelta(days=30)))
    assert [(o.subject, o.start.day, o.type) for o in june] == [
        ("At 9", 3, "Single"),
        ("At 11", 3, "Single"),
        ("At 14", 3, "Single"),
        ("Review", 28, "Occurrence"),
    ]
    # MaxEntriesReturned cuts the view; FindItem without a view lists singles and masters.
    assert [
        o.subject for o in account.calendar.view(day, day + timedelta(days=1), max_items=2)
    ] == [
        "At 9",
        "At 11",
    ]
    assert sorted(i.type for i in account.calendar.all()) == ["RecurringMaster"] + ["Single"] * 3
    # Far from the first occurrence, the endless series still lands on the last Friday.
    (late,) = list(
        account.calendar.view(
            EWSDateTime(2034, 11, 1, tzinfo=UTC_TZ), EWSDateTime(2034, 12, 1, tzinfo=UTC_TZ)
        )
    )
    assert (late.start.month, late.start.day) == (11, 24)
    # A window longer than two years is refused.
    with pytest.raises(ErrorCalendarViewRangeTooBig):
        list(account.calendar.view(day, day + timedelta(days=800)))
    # Two daily series make more than 1000 occurrences in two years: refused without
    # MaxEntriesReturned, cut with it.
    for hour in (7, 8):
        CalendarItem(
            account=account,
            folder=account.calendar,
            subject=f"Daily {hour}",
            start=day + timedelta(hours=hour),
            end=day + timedelta(hours=hour, minutes=15),
            recurrence=Recurrence(pattern=DailyPattern(interval=1), start=day.date()),
        ).save(send_meeting_invitations="SendToNone")
    two_years = (day, day + timedelta(days=700))
    with pytest.raises(ErrorExceededFindCountLimit):
        list(account.calendar.view(*two_years))
    assert len(list(account.calendar.view(*two_years, max_items=50))) == 50


def test_meeting_requests_go_to_mail_submission(servers: Lab) -> None:
    lab = servers
    db = lab.stores["EX-FL1"]
    account = _adam(lab)
    start = EWSDateTime(2030, 2, 4, 10, tzinfo=UTC_TZ)
    meeting = CalendarItem(
        account=account,
        folder=account.calendar,
        subject="Budget <review>",
        start=start,
        end=start + timedelta(hours=1),
        required_attendees=[Attendee(mailbox=Mailbox(email_address="alice@contoso.com"))],
        optional_attendees=[Attendee(mailbox=Mailbox(email_address="larry@contoso.com"))],
    )
    meeting.save(send_meeting_invitations="SendToAllAndSaveCopy")
    (stored,) = db.list_typed("adam", "calendar").items
    assert stored.calendar is not None and stored.calendar.meeting_request_sent
    # The request waits in the Outbox for Mail Submission, to be filed in Sent Items.
    (request,) = db.list_messages("adam", "outbox").items
    assert request.subject == "Budget <review>" and not request.flags.deleted
    assert [a.address for a in request.to] == ["alice@contoso.com"]
    assert [a.address for a in request.cc] == ["larry@contoso.com"]
    raw = db.read_raw("adam", request.id)
    assert b"method=REQUEST" in raw and b"METHOD:REQUEST" in raw
    assert f"UID:{stored.calendar.uid}".encode() in raw
    assert account.calendar.get(id=meeting.id).meeting_request_was_sent is True
    # An update sent to the attendees goes as a new request (a higher SEQUENCE); a delete
    # with cancellations sends METHOD:CANCEL.
    meeting.location = "Board room"
    meeting.save(update_fields=["location"], send_meeting_invitations="SendOnlyToAll")
    meeting.delete(send_meeting_cancellations="SendOnlyToAll")
    assert db.list_typed("adam", "calendar").total == 0
    outbox = sorted(db.list_messages("adam", "outbox").items, key=lambda i: i.id)
    assert len(outbox) == 3
    update, cancel = (db.read_raw("adam", i.id) for i in outbox[1:])
    assert b"METHOD:REQUEST" in update and b"LOCATION:Board room" in update
    assert b"SEQUENCE:1" in update and outbox[1].flags.deleted  # SendOnly: no copy kept
    assert b"METHOD:CANCEL" in cancel and b"STATUS:CANCELLED" in cancel
    assert outbox[2].subject == "Canceled: Budget <review>"


def test_contacts_and_tasks(servers: Lab) -> None:
    lab = servers
    db = lab.stores["EX-FL1"]
    account = _adam(lab)
    contact = Contact(
        account=account,
        folder=account.contacts,
        display_name="Jane Doe",
        given_name="Jane",
        surname="Doe",
        company_name="Acme",
        job_title="CEO",
        email_addresses=[EmailAddress(label="EmailAddress1", email="jane@acme.example")],
        phone_numbers=[PhoneNumber(label="BusinessPhone", phone_number="+1 555 0100")],
    )
    contact.save()
    (stored,) = db.list_typed("adam", "contacts").items
    assert stored.contact is not None and stored.contact.company == "Acme"
    assert stored.contact.emails == {"EmailAddress1": "jane@acme.example"}
    assert b"BEGIN:VCARD" in db.read_raw("adam", stored.id)
    contact.job_title = "CTO"
    contact.phone_numbers = [
        PhoneNumber(label="BusinessPhone", phone_number="+1 555 0100"),
        PhoneNumber(label="MobilePhone", phone_number="+1 555 0199"),
    ]
    contact.save()
    (fresh,) = list(account.contacts.all())
    assert fresh.display_name == "Jane Doe" and fresh.job_title == "CTO"
    assert {p.label: p.phone_number for p in fresh.phone_numbers} == {
        "BusinessPhone": "+1 555 0100",
        "MobilePhone": "+1 555 0199",
    }
    assert [e.email for e in fresh.email_addresses] == ["jane@acme.example"]
    assert db.get_typed("adam", stored.id).contact.job_title == "CTO"  # type: ignore[union-attr]
    assert b"TITLE:CTO" in account.contacts.get(id=contact.id).mime_content
    # ResolveNames finds the contact beside the directory's mailboxes, unless told not to.
    (found,) = account.protocol.resolve_names(["jane"])
    assert (found.email_address, found.mailbox_type) == ("jane@acme.example", "Contact")
    ((mailbox, full),) = account.protocol.resolve_names(["Doe"], return_full_contact_data=True)
    assert mailbox.name == "Jane Doe" and full.job_title == "CTO"
    (none,) = account.protocol.resolve_names(["jane"], search_scope="ActiveDirectory")
    assert isinstance(none, ErrorNameResolutionNoResults)
    assert [r.email_address for r in account.protocol.resolve_names(["ali"])] == [
        "alice@contoso.com"
    ]

    due = EWSDateTime(2030, 3, 1, tzinfo=UTC_TZ)
    task = Task(
        account=account,
        folder=account.tasks,
        subject="File taxes",
        due_date=due.date(),
        percent_complete=Decimal(40),
        status="InProgress",
    )
    task.save()
    (kept,) = db.list_typed("adam", "tasks").items
    assert kept.task is not None and kept.task.percent_complete == 40.0
    assert kept.task.due_date == datetime(2030, 3, 1, tzinfo=UTC)
    task.status = "Completed"
    task.save(update_fields=["status"])
    (done,) = list(account.tasks.all())
    assert done.status == "Completed" and done.is_complete is True
    assert done.percent_complete == Decimal(100) and done.complete_date is not None
    final = db.get_typed("adam", kept.id).task
    assert final is not None and final.status is TaskStatus.COMPLETED
    task.delete()
    contact.delete()
    assert (
        db.list_typed("adam", "tasks").total == 0 and db.list_typed("adam", "contacts").total == 0
    )


def test_busy_times_of_a_mailbox_in_the_other_site_reach_the_availability_service(
    servers: Lab,
) -> None:
    lab = servers
    adam = _adam(lab)
    start = EWSDateTime(2030, 1, 7, 9, tzinfo=UTC_TZ)
    CalendarItem(
        account=adam,
        folder=adam.calendar,
        subject="Dentist",
        location="Tampa",
        start=start,
        end=start + timedelta(hours=1),
        legacy_free_busy_status="OOF",
    ).save(send_meeting_invitations="SendToNone")
    CalendarItem(
        account=adam,
        folder=adam.calendar,
        subject="Daily",
        start=start + timedelta(hours=2),
        end=start + timedelta(hours=2, minutes=30),
    ).save(send_meeting_invitations="SendToNone")
    CalendarItem(
        account=adam,
        folder=adam.calendar,
        subject="Free lunch",
        start=start + timedelta(hours=3),
        end=start + timedelta(hours=4),
        legacy_free_busy_status="Free",
    ).save(send_meeting_invitations="SendToNone")
    # Alice, whose mailbox is in NY, asks NY's Client Access server; adam's calendar is in FL.
    lab.set_vdir(NY_EWS, basic_authentication=True)
    alice = ews_account(url(lab, "ex-ny1.contoso.com"), "contoso\\alice", "alice@contoso.com")
    views = list(
        alice.protocol.get_free_busy_info(
            accounts=[("adam@contoso.com", "Required", False), (alice, "Organizer", False)],
            start=start - timedelta(hours=1),
            end=start + timedelta(hours=4),
            merged_free_busy_interval=30,
            requested_view="DetailedMerged",
        )
    )
    adams, alices = views
    # Half hours from 08:00: OOF 09:00-10:00, busy 11:00-11:30; the free lunch is not busy.
    assert adams.merged == "0033002000"
    assert [(e.start.hour, e.end.hour, e.busy_type) for e in adams.calendar_events] == [
        (9, 10, "OOF"),
        (11, 11, "Busy"),
    ]
    # Others see times and busy types only (a calendar's Default permission): the detailed
    # view asked for is answered as the free/busy one.
    assert adams.view_type == "FreeBusyMerged" and adams.calendar_events[0].details is None
    assert alices.merged == "0" * 10 and not alices.calendar_events
    # Adam sees the details of his own calendar.
    (own,) = adam.protocol.get_free_busy_info(
        accounts=[(adam, "Organizer", False)],
        start=start,
        end=start + timedelta(hours=1),
        merged_free_busy_interval=30,
        requested_view="DetailedMerged",
    )
    assert own.view_type == "DetailedMerged" and own.merged == "33"
    details = own.calendar_events[0].details
    assert (details.subject, details.location) == ("Dentist", "Tampa")
    # NY's store was never asked for adam's mailbox (it is not provisioned there).
    assert "adam" not in lab.stores["EX-NY1"].mailboxes()


def test_an_attendee_in_the_other_site_answers_the_request_and_is_busy(servers: Lab) -> None:
    lab = servers
    fl, ny = lab.stores["EX-FL1"], lab.stores["EX-NY1"]
    adam = _adam(lab)
    start = EWSDateTime(2030, 5, 6, 14, tzinfo=UTC_TZ)
    for subject, hour in (("Planning", 0), ("Retro", 3)):
        CalendarItem(
            account=adam,
            folder=adam.calendar,
            subject=subject,
            location="Tampa",
            start=start + timedelta(hours=hour),
            end=start + timedelta(hours=hour + 1),
            required_attendees=[Attendee(mailbox=Mailbox(email_address="alice@contoso.com"))],
        ).save(send_meeting_invitations="SendOnlyToAll")
    # Transport's part: the requests reach alice's Inbox in NY.
    for request in fl.list_messages("adam", "outbox").items:
        ny.deliver("alice", f"test:{request.id}", fl.read_raw("adam", request.id))
    lab.set_vdir(NY_EWS, basic_authentication=True)
    alice = ews_account(url(lab, "ex-ny1.contoso.com"), "contoso\\alice", "alice@contoso.com")
    requests = {m.subject: m for m in alice.inbox.all()}
    accepted = AcceptItem(
        account=alice,
        reference_item_id=ReferenceItemId(
            id=requests["Planning"].id, changekey=requests["Planning"].changekey
        ),
    ).send()
    DeclineItem(
        account=alice,
        reference_item_id=ReferenceItemId(
            id=requests["Retro"].id, changekey=requests["Retro"].changekey
        ),
    ).send()
    # The accepted meeting is in alice's calendar (busy, her answer recorded); the declined
    # one is not; both requests went to Deleted Items.
    (kept,) = ny.list_typed("alice", "calendar").items
    data = kept.calendar
    assert data is not None and data.subject == "Planning" and data.free_busy is FreeBusy.BUSY
    assert [(a.address, a.response) for a in data.required] == [
        ("alice@contoso.com", ResponseType.ACCEPT)
    ]
    assert data.organizer is not None and data.organizer.address == "adam@contoso.com"
    assert accepted.id == item_id("alice", kept.id, kept.folder_id)
    assert sorted(m.subject for m in ny.list_messages("alice", "deleteditems").items) == [
        "Planning",
        "Retro",
    ]
    # Her answers go to the organizer as METHOD:REPLY (copies kept: SendAndSaveCopy).
    replies = {
        m.subject: ny.read_raw("alice", m.id) for m in ny.list_messages("alice", "outbox").items
    }
    assert set(replies) == {"Accepted: Planning", "Declined: Retro"}
    assert b"METHOD:REPLY" in replies["Accepted: Planning"]
    assert b"PARTSTAT=ACCEPTED" in replies["Accepted: Planning"]
    assert b"PARTSTAT=DECLINED" in replies["Declined: Retro"]
    # Adam, asking FL's Client Access server, sees alice busy at the accepted time only.
    (view,) = adam.protocol.get_free_busy_info(
        accounts=[("alice@contoso.com", "Required", False)],
        start=start,
        end=start + timedelta(hours=4),
        merged_free_busy_interval=60,
        requested_view="FreeBusyMerged",
    )
    assert view.merged == "2000"


def test_calendar_contacts_and_tasks_folders_take_restrictions_and_sort_orders(
    servers: Lab,
) -> None:
    # What scripts do: calendar.filter(start__gte=...), contacts.filter(surname=...).
    lab = servers
    db = lab.stores["EX-FL1"]
    account = _adam(lab)
    day = EWSDateTime(2031, 5, 5, 9, tzinfo=UTC_TZ)
    for n, subject in enumerate(("Early", "Middle", "Late")):
        CalendarItem(
            account=account,
            folder=account.calendar,
            subject=subject,
            start=day + timedelta(days=n),
            end=day + timedelta(days=n, hours=1),
            location="Room 2" if n else "Room 1",
        ).save(send_meeting_invitations="SendToNone")
    assert len(db.list_typed("adam", "calendar").items) == 3
    later = account.calendar.filter(start__gte=day + timedelta(days=1)).order_by("-start")
    assert [i.subject for i in later] == ["Late", "Middle"]
    assert [i.subject for i in account.calendar.filter(location="Room 1")] == ["Early"]
    assert [i.subject for i in account.calendar.filter(subject__icontains="mid")] == ["Middle"]
    for given, surname in (("Jane", "Doe"), ("John", "Roe")):
        Contact(
            account=account,
            folder=account.contacts,
            display_name=f"{given} {surname}",
            given_name=given,
            surname=surname,
        ).save()
    assert [c.given_name for c in account.contacts.filter(surname="Roe")] == ["John"]
    Task(account=account, folder=account.tasks, subject="Open", status="InProgress").save()
    Task(account=account, folder=account.tasks, subject="Done", status="Completed").save()
    assert [t.subject for t in account.tasks.filter(subject="Done")] == ["Done"]
    assert [t.subject for t in account.tasks.all().order_by("subject")] == ["Done", "Open"]
    # A CalendarView takes no restriction (Exchange documents it; clients expect this code).
    with pytest.raises(ErrorInvalidOperation):
        list(account.calendar.view(day, day + timedelta(days=7)).filter(subject="Early"))
