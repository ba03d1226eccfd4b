"""Recurring tasks: when an update makes an occurrence of its own, as Exchange does.

A recurring task is one task (the master) whose due date is the current occurrence's;
its ``<t:Recurrence>`` is kept as the client gave it (:mod:`.ews_typed_props`).
Exchange generates a one-off task from the current occurrence when the master is
marked Completed, and, for a pattern that does not regenerate, when the recurrence's
start or end date changes.  The one-off gets the update without the recurrence; the
master moves to the next occurrence (of its pattern, or for a regenerating task the
interval after today), one occurrence fewer when the range is numbered, and its
ChangeCount goes up by one.  UpdateItem then answers the one-off's ItemId.  When no
occurrence is left, the update leaves the task as it is, without its recurrence.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice

from sitemail.access.ews_calendar import parse_recurrence
from sitemail.access.ews_contacts import settle_task
from sitemail.access.ews_responses import Refused
from sitemail.access.ews_soap import t
from sitemail.mailbox.item_records import TaskData, TaskStatus
from sitemail.mailbox.recurrence import occurrence_dates

__all__ = ["CHANGE_COUNT", "RECURRENCE", "check_series", "split_occurrence"]

RECURRENCE = "task:Recurrence"
#: Kept by the server alone: how many occurrences the task has made, plus one.
CHANGE_COUNT = "task:ChangeCount"
_REGENERATIONS = {
    "DailyRegeneration": "days",
    "WeeklyRegeneration": "weeks",
    "MonthlyRegeneration": "months",
    "YearlyRegeneration": "years",
}
_RANGES = ("NoEndRecurrence", "EndDateRecurrence", "NumberedRecurrence")
# Most dates walked to find the next occurrence of a pattern.
_MAX_WALK = 10_000


@dataclass(frozen=True)
class _Series:
    element: ET.Element
    regeneration: str | None  # "days" ... for a regenerating pattern
    interval: int
    start: date | None
    end: date | None
    count: int | None


def _series(text: str) -> _Series:
    element = ET.fromstring(text)
    pattern = next(iter(element), None)
    name = "" if pattern is None else pattern.tag.rpartition("}")[2]
    span = next((c for c in element if c.tag in {t(r) for r in _RANGES}), None)

    def day(tag: str) -> date | None:
        found = None if span is None else span.findtext(t(tag))
        return None if not found else date.fromisoformat(found.strip()[:10])

    count_text = None if span is None else span.findtext(t("NumberOfOccurrences"))
    interval = None if pattern is None else pattern.findtext(t("Interval"))
    return _Series(
        element=element,
        regeneration=_REGENERATIONS.get(name),
        interval=int(interval) if interval and interval.strip().isdigit() else 1,
        start=day("StartDate"),
        end=day("EndDate"),
        count=int(count_text) if count_text and count_text.strip().isdigit() else None,
    )


def check_series(task: TaskData) -> None:
    """Refuse (ErrorInvalidRecurrence ...) a task's recurrence that has no pattern or range
    sitemail can walk, when it is set rather than when an occurrence is due."""
    text = task.props.get(RECURRENCE)
    if text is None:
        return
    series = _series(text)
    if series.regeneration is None:
        parse_recurrence(series.element)
    elif series.start is None:
        raise Refused("ErrorRecurrenceHasNoOccurrence", "A recurrence needs a range.")


def _after(series: _Series, current: date, today: date) -> date | None:
    """The occurrence that follows ``current`` (None when the range has none left)."""
    if series.regeneration is not None:
        n = series.interval
        if series.regeneration in ("days", "weeks"):
            return today + timedelta(days=n * (7 if series.regeneration == "weeks" else 1))
        months = n * (12 if series.regeneration == "years" else 1)
        total = today.month - 1 + months
        year, month = today.year + total // 12, total % 12 + 1
        return date(year, month, min(today.day, monthrange(year, month)[1]))
    rule = parse_recurrence(series.element)
    for day in islice(occurrence_dates(rule), _MAX_WALK):
        if series.end is not None and day > series.end:
            return None
        if day > current:
            return day
    return None


def _with_count(series: _Series, count: int) -> str:
    for span in series.element:
        number = span.find(t("NumberOfOccurrences"))
        if number is not None:
            number.text = str(count)
    return ET.tostring(series.element, encoding="unicode")


def split_occurrence(
    old: TaskData, new: TaskData, now: datetime
) -> tuple[TaskData, TaskData | None]:
    """The master after an update from ``old`` to ``new``, and the one-off task the update
    generates (None when it generates none)."""
    new_text = new.props.get(RECURRENCE)
    old_text = old.props.get(RECURRENCE)
    if new_text is None or old_text is None:
        return new, None
    series, before = _series(new_text), _series(old_text)
    completed = new.status is TaskStatus.COMPLETED and old.status is not TaskStatus.COMPLETED
    moved = series.regeneration is None and (
        (series.start, series.end) != (before.start, before.end)
    )
    if not (completed or moved):
        return new, None
    props = {k: v for k, v in new.props.items() if k not in (RECURRENCE, CHANGE_COUNT)}
    current = old.due_date or (
        datetime.combine(before.start, time(0), tzinfo=UTC) if before.start else None
    )
    one_off = new.model_copy(
        update={"props": props, "due_date": current, "start_date": old.start_date or current}
    )
    # The next occurrence is the old series' (new dates count from the one after it on).
    following = _after(before, (current or now).date(), now.astimezone(UTC).date())
    left = None if series.count is None else series.count - 1
    if following is None or (left is not None and left < 1):
        return new.model_copy(update={"props": props}), None
    due = datetime.combine(following, (current or now).astimezone(UTC).timetz())
    master_props = dict(new.props)
    if left is not None:
        master_props[RECURRENCE] = _with_count(series, left)
    kept = old.props.get(CHANGE_COUNT)
    count = int(ET.fromstring(kept).text or "1") if kept else 1
    master_props[CHANGE_COUNT] = ET.tostring(_element(CHANGE_COUNT, str(count + 1)), "unicode")
    fields = new.model_dump() | {
        "props": master_props,
        "status": TaskStatus.NOT_STARTED,
        "percent_complete": 0.0,
        "complete_date": None,
        "due_date": due,
        "start_date": due,
    }
    master = TaskData.model_validate(settle_task(fields, now))
    return master, one_off


def _element(path: str, text: str) -> ET.Element:
    element = ET.Element(t(path.split(":", 1)[1]))
    element.text = text
    return element
