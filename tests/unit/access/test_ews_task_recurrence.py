"""Recurring tasks through exchangelib: an update that completes an occurrence (or moves a
fixed series) makes a one-off task of it, and the series moves on, as Exchange does."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from exchangelib import Account, Task
from exchangelib.recurrence import TaskRecurrence, WeeklyPattern, WeeklyRegeneration
from tests.unit.access.test_ews_exchangelib import FL_EWS, ews_account, lab_names, servers, url
from tests.unit.access.test_web_front import Lab

from sitemail.access.ews_responses import Refused
from sitemail.access.ews_soap import TYPES_NS
from sitemail.access.ews_task_recurrence import RECURRENCE, check_series
from sitemail.mailbox.item_records import TaskData

__all__ = ["lab_names", "servers"]


def _adam(lab: Lab) -> Account:
    lab.set_vdir(FL_EWS, basic_authentication=True)
    return ews_account(url(lab, "ex-fl1.contoso.com"), "contoso\\adam", "adam@contoso.com")


def test_completing_an_occurrence_makes_a_one_off_and_moves_the_series_on(servers: Lab) -> None:
    account = _adam(servers)
    mondays = TaskRecurrence(
        pattern=WeeklyPattern(interval=1, weekdays=[1]), start=date(2031, 3, 3), number=3
    )
    task = Task(
        account=account,
        folder=account.tasks,
        subject="Report",
        categories=["recurring"],
        recurrence=mondays,
    ).save()
    task.refresh()
    assert (task.is_recurring, task.change_count) == (True, 1)
    master_id = task.id

    # An update that changes nothing of the series makes no occurrence.
    task.subject = "Weekly report"
    assert task.save().id == master_id

    task.status = Task.COMPLETED
    done = task.save()
    assert done.id != master_id  # UpdateItem answers the one-off's id
    done.refresh()
    assert (done.is_recurring, done.status, done.subject) == (False, "Completed", "Weekly report")
    assert done.due_date == date(2031, 3, 3)
    master = account.tasks.get(id=master_id)
    assert (master.is_recurring, master.status, master.change_count) == (True, "NotStarted", 2)
    assert master.due_date == date(2031, 3, 10)  # the next Monday
    assert master.recurrence.boundary.number == 2
    assert account.tasks.filter(categories__contains=["recurring"]).count() == 2

    # A series whose start moves (a fixed pattern) makes a one-off of the current occurrence.
    master.recurrence.boundary.start = date(2031, 4, 7)
    moved = master.save()
    assert moved.id != master_id
    again = account.tasks.get(id=master_id)
    assert again.recurrence.boundary.number == 1
    assert account.tasks.filter(categories__contains=["recurring"]).count() == 3
    # The last occurrence completed leaves the task without a series, and no one-off.
    again.status = Task.COMPLETED
    assert again.save().id == master_id
    last = account.tasks.get(id=master_id)
    assert (last.is_recurring, last.status) == (False, "Completed")


def test_a_regenerating_task_comes_back_an_interval_after_it_is_completed(servers: Lab) -> None:
    account = _adam(servers)
    task = Task(
        account=account,
        folder=account.tasks,
        subject="Water the plants",
        recurrence=TaskRecurrence(
            pattern=WeeklyRegeneration(interval=2), start=date(2031, 3, 3), number=5
        ),
    ).save()
    master_id = task.id
    task.refresh()
    # Moving a regenerating task's start makes no occurrence.
    task.recurrence.boundary.start = date(2031, 3, 4)
    assert task.save().id == master_id
    task.status = Task.COMPLETED
    assert task.save().id != master_id
    master = account.tasks.get(id=master_id)
    today = datetime.now(UTC).date()
    assert master.due_date in (today + timedelta(days=14), today + timedelta(days=15))
    assert (master.recurrence.boundary.number, master.change_count) == (4, 2)


def test_a_recurrence_without_a_walkable_pattern_is_refused_when_set() -> None:
    ns = f'xmlns:t="{TYPES_NS}"'
    weekly_without_days = (
        f"<t:Recurrence {ns}><t:WeeklyRecurrence><t:Interval>1</t:Interval></t:WeeklyRecurrence>"
        "<t:NoEndRecurrence><t:StartDate>2031-03-03</t:StartDate></t:NoEndRecurrence>"
        "</t:Recurrence>"
    )
    with pytest.raises(Refused) as bad:
        check_series(TaskData(props={RECURRENCE: weekly_without_days}))
    assert bad.value.code == "ErrorInvalidRecurrence"
    no_range = (
        f"<t:Recurrence {ns}><t:DailyRegeneration><t:Interval>2</t:Interval>"
        "</t:DailyRegeneration></t:Recurrence>"
    )
    with pytest.raises(Refused) as missing:
        check_series(TaskData(props={RECURRENCE: no_range}))
    assert missing.value.code == "ErrorRecurrenceHasNoOccurrence"
