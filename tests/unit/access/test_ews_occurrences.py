"""Occurrences of a series through EWS, driven by exchangelib: CalendarView expansion,
occurrences by id and by index, changed and deleted occurrences seen from the master, and
the master reached from an occurrence.

The servers are :mod:`tests.unit.access.test_ews_exchangelib`'s two in-process
Client Access servers (EX-FL1 holds adam's mailbox).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from exchangelib import Account, CalendarItem, EWSDateTime, EWSTimeZone
from exchangelib.errors import ErrorItemNotFound
from exchangelib.items.calendar_item import EXCEPTION, OCCURRENCE, RECURRING_MASTER
from exchangelib.recurrence import DailyPattern, DeletedOccurrence, Occurrence, Recurrence
from tests.unit.access.test_ews_exchangelib import FL_EWS, ews_account, lab_names, servers, url
from tests.unit.access.test_web_front import Lab

__all__ = ["lab_names", "servers"]

COPENHAGEN = EWSTimeZone("Europe/Copenhagen")


def _adam(lab: Lab) -> Account:
    lab.set_vdir(FL_EWS, basic_authentication=True)
    account = ews_account(url(lab, "ex-fl1.contoso.com"), "contoso\\adam", "adam@contoso.com")
    account.default_timezone = COPENHAGEN
    return account


def _series(account: Account, subject: str = "Daily") -> tuple[CalendarItem, EWSDateTime]:
    # Four days from 1 January 2016, 08:00-10:00 Copenhagen time.
    start = EWSDateTime(2016, 1, 1, 8, tzinfo=COPENHAGEN)
    master = CalendarItem(
        account=account,
        folder=account.calendar,
        subject=subject,
        start=start,
        end=start + timedelta(hours=2),
        recurrence=Recurrence(pattern=DailyPattern(interval=1), start=start.date(), number=4),
    ).save(send_meeting_invitations="SendToNone")
    return master, start


def _view(account: Account, start: EWSDateTime, days: int = 3) -> list[CalendarItem]:
    return list(account.calendar.view(start=start, end=start + timedelta(days=days, hours=2)))


def test_a_series_unfolds_into_its_occurrences(servers: Lab) -> None:
    adam = _adam(servers)
    master, start = _series(adam)
    master.refresh()
    assert master.type == RECURRING_MASTER and master.is_recurring is False
    assert (master.first_occurrence.start, master.last_occurrence.start) == (
        start,
        start + timedelta(days=3),
    )
    assert master.modified_occurrences is None and master.deleted_occurrences is None
    unfolded = _view(adam, start)
    assert [i.type for i in unfolded] == [OCCURRENCE] * 4
    assert all(i.is_recurring for i in unfolded)
    assert [i.start for i in unfolded] == [start + timedelta(days=d) for d in range(4)]
    assert unfolded[0].id == master.first_occurrence.id
    assert unfolded[3].id == master.last_occurrence.id
    # A changed pattern is what the view then shows.
    master.recurrence.pattern.interval = 2
    master.recurrence.boundary.number = 3
    master.save()
    assert [i.start for i in _view(adam, start, days=5)] == [
        start + timedelta(days=d) for d in (0, 2, 4)
    ]


def test_a_changed_occurrence_is_an_exception_of_the_master(servers: Lab) -> None:
    adam = _adam(servers)
    master, start = _series(adam)
    second = _view(adam, start)[1]
    second.start += timedelta(hours=1)
    second.end += timedelta(hours=1)
    second.save()
    master.refresh()
    (changed,) = master.modified_occurrences
    assert isinstance(changed, Occurrence) and changed.id == second.id
    assert (changed.start, changed.end) == (second.start, second.end)
    assert changed.original_start == second.start - timedelta(hours=1)
    assert master.deleted_occurrences is None
    unfolded = _view(adam, start)
    assert len(unfolded) == 4 and unfolded[1].type == EXCEPTION
    assert unfolded[1].original_start == second.start - timedelta(hours=1)


def test_a_deleted_occurrence_leaves_the_series(servers: Lab) -> None:
    adam = _adam(servers)
    master, start = _series(adam)
    third = _view(adam, start)[2]
    third.delete()
    master.refresh()
    assert master.modified_occurrences is None
    (deleted,) = master.deleted_occurrences
    assert isinstance(deleted, DeletedOccurrence) and deleted.start == third.start
    assert len(_view(adam, start)) == 3


def test_the_master_is_reached_from_an_occurrence(servers: Lab) -> None:
    adam = _adam(servers)
    master, start = _series(adam, "Master")
    third = _view(adam, start)[2]
    assert third.recurrence is None
    found = third.recurring_master()
    found.refresh()
    assert found.id == master.id and found.subject == "Master"
    assert found.recurrence == master.recurrence
    found = third.recurring_master()
    found.subject = "Renamed"
    found.save(update_fields=["subject"])
    found.delete()
    with pytest.raises(ErrorItemNotFound):
        master.delete()
    with pytest.raises(ErrorItemNotFound):
        third.delete()


def test_occurrences_by_index(servers: Lab) -> None:
    adam = _adam(servers)
    master, start = _series(adam, "Indexed")
    second = master.occurrence(index=2)
    second.start = start + timedelta(days=1, hours=1)
    second.end = start + timedelta(days=1, hours=3)
    second.save(update_fields=["start", "end"])
    second = master.occurrence(index=2)
    second.refresh()
    assert second.subject == "Indexed" and second.start == start + timedelta(days=1, hours=1)
    third = master.occurrence(index=3)
    third.refresh()
    master.occurrence(index=3).delete()
    master.refresh()
    assert len(master.modified_occurrences) == 1 and len(master.deleted_occurrences) == 1


def test_a_view_touching_an_item_at_its_start_holds_it(servers: Lab) -> None:
    adam = _adam(servers)
    first = EWSDateTime(2016, 1, 1, 8, tzinfo=COPENHAGEN)
    second = EWSDateTime(2016, 2, 1, 8, tzinfo=COPENHAGEN)
    for start in (first, second):
        CalendarItem(
            account=adam, folder=adam.calendar, start=start, end=start + timedelta(hours=2)
        ).save(send_meeting_invitations="SendToNone")
    # Exchange gives an item that ends just as the view starts, not one that starts just
    # as it ends.
    between = list(adam.calendar.view(start=first + timedelta(hours=2), end=second))
    assert [i.start for i in between] == [first]
    assert [i.start for i in adam.calendar.view(start=first, end=second)] == [first]
    # A series' occurrence is held the same way.
    _, start = _series(adam)
    held = list(
        adam.calendar.view(start=start + timedelta(days=1, hours=2), end=start + timedelta(days=2))
    )
    assert [i.start for i in held] == [start + timedelta(days=1)]
