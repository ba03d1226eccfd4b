"""Recurrence expansion: the occurrences of a recurring calendar item, in a bounded window.

Exchange expands a recurring master into occurrences where a client asks
for a calendar view (EWS FindItem with CalendarView, the availability
service, OWA's calendar); the store keeps only the master with its pattern,
its range and its exceptions.  :func:`expand` does the same here:

- Occurrences repeat at the master's **wall-clock** start time in the
  master's time zone, so a 09:00 weekly meeting stays at 09:00 local across
  a DST change (its UTC time moves); the duration is kept as is.
- A numbered range counts occurrences from the start of the series,
  *deleted ones included* (as Outlook and Exchange count them), so a series
  is walked from its first date even when the window starts later.
- **Exceptions**: a deleted occurrence is left out; a modified one is
  given with its own start, end and changes, and is in the window by its
  new times, wherever its original time was.
- **Bounds**: the walk stops at the window's end, the range's end, and at
  :data:`MAX_STEPS` periods; a caller also gives ``limit``, the most
  occurrences it wants.  Nothing here is unbounded whatever the pattern.

Relative patterns ("the last Friday", "the second weekday") follow EWS:
``Day`` is any day, ``Weekday`` Monday to Friday, ``WeekendDay`` Saturday
and Sunday; ``Last`` is the last matching day of the month.  An absolute
monthly pattern on the 31st falls on the last day of shorter months
(Outlook's rule; unverified for Exchange's server-side expansion).
"""

from __future__ import annotations

import calendar as _calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sitemail.mailbox.item_records import (
    CalendarData,
    ModifiedOccurrence,
    Pattern,
    Recurrence,
    WeekIndex,
)
from sitemail.mailbox.windows_zones import zone_of

__all__ = [
    "MAX_STEPS",
    "Occurrence",
    "expand",
    "first_and_last",
    "has_index",
    "modified_occurrences",
    "occurrence_at",
    "occurrence_dates",
    "series_bounds",
]

#: Most periods (days, weeks, months, years) one expansion walks.
MAX_STEPS = 40_000

_INDEX = {
    WeekIndex.FIRST: 0,
    WeekIndex.SECOND: 1,
    WeekIndex.THIRD: 2,
    WeekIndex.FOURTH: 3,
    WeekIndex.LAST: -1,
}


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of a series: 1-based ``index`` in the series, times in UTC."""

    index: int
    original_start: datetime
    start: datetime
    end: datetime
    modified: ModifiedOccurrence | None = None


def occurrence_dates(rule: Recurrence) -> Iterator[date]:
    """The dates of the series in order, before the range's end is applied (bounded walk)."""
    start = rule.start_date
    steps = 0
    if rule.pattern is Pattern.DAILY:
        day = start
        while steps < MAX_STEPS:
            yield day
            day += timedelta(days=rule.interval)
            steps += 1
        return
    if rule.pattern is Pattern.WEEKLY:
        days = set().union(*(d.python_days() for d in rule.days_of_week))
        first = rule.first_day_of_week.python_days()
        week_start_day = min(first) if len(first) == 1 else 0
        # The week that holds the start date, beginning on FirstDayOfWeek.
        week = start - timedelta(days=(start.weekday() - week_start_day) % 7)
        while steps < MAX_STEPS:
            for offset in range(7):
                day = week + timedelta(days=offset)
                if day >= start and day.weekday() in days:
                    yield day
            week += timedelta(weeks=rule.interval)
            steps += 1
        return
    yearly = rule.pattern in (Pattern.ABSOLUTE_YEARLY, Pattern.RELATIVE_YEARLY)
    step = 12 * rule.interval if yearly else rule.interval
    year, month = start.year, rule.month if yearly and rule.month else start.month
    if yearly and month < start.month:
        year += 1
    while steps < MAX_STEPS and year <= 9999:
        day_in = _day_in_month(rule, year, month)
        if day_in is not None and day_in >= start:
            yield day_in
        month += step
        year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
        steps += 1


def _day_in_month(rule: Recurrence, year: int, month: int) -> date | None:
    last = _calendar.monthrange(year, month)[1]
    if rule.pattern in (Pattern.ABSOLUTE_MONTHLY, Pattern.ABSOLUTE_YEARLY):
        assert rule.day_of_month is not None
        return date(year, month, min(rule.day_of_month, last))
    assert rule.week_index is not None
    wanted = set().union(*(d.python_days() for d in rule.days_of_week))
    matching = [
        date(year, month, d) for d in range(1, last + 1) if date(year, month, d).weekday() in wanted
    ]
    index = _INDEX[rule.week_index]
    if index >= len(matching):
        return None
    return matching[index]


def _at(day: date, item: CalendarData, zone: ZoneInfo) -> datetime:
    """The occurrence on ``day``: the master's local start time that day, in UTC."""
    local = item.start.astimezone(zone)
    wall = datetime.combine(day, local.time().replace(tzinfo=None), tzinfo=zone)
    return wall.astimezone(UTC)


def _series(item: CalendarData) -> Iterator[tuple[int, datetime]]:
    """(index, original start) of every occurrence of the range, deleted ones included."""
    rule = item.recurrence
    assert rule is not None
    zone = zone_of(item.time_zone)
    for index, day in enumerate(occurrence_dates(rule), start=1):
        if rule.count is not None and index > rule.count:
            return
        if rule.end_date is not None and day > rule.end_date:
            return
        yield index, _at(day, item, zone)


def expand(
    item: CalendarData,
    start: datetime,
    end: datetime,
    *,
    limit: int,
    ending_at_start: bool = False,
) -> tuple[list[Occurrence], bool]:
    """The occurrences overlapping [start, end), at most ``limit``; and whether more were left.

    A single (non-recurring) item is its one occurrence, index 0.  An
    occurrence overlaps the window if it ends after ``start`` and starts
    before ``end``; a zero-length one at ``start`` counts (Exchange shows
    a zero-length appointment at the start of a view).  With
    ``ending_at_start``, one that ends just as the window starts counts too,
    as EWS's CalendarView gives it (observed of Exchange by exchangelib's
    suite; unverified of 2010 itself).
    """
    duration = item.end - item.start
    touching = ending_at_start
    if item.recurrence is None:
        if _overlaps(item.start, item.end, start, end, touching):
            return [Occurrence(0, item.start, item.start, item.end)], False
        return [], False
    deleted = {d.astimezone(UTC) for d in item.deleted}
    modified = {m.original_start.astimezone(UTC): m for m in item.modified}
    found: list[Occurrence] = []
    horizon = _far(end) if modified else end
    last_change = max(modified, default=datetime.min.replace(tzinfo=UTC))
    plain = 0
    for index, original in _series(item):
        if original >= horizon:
            break
        if original in deleted:
            continue
        change = modified.get(original)
        if change is not None:
            occ = Occurrence(index, original, change.start, change.end, change)
        else:
            occ = Occurrence(index, original, original, original + duration)
        if _overlaps(occ.start, occ.end, start, end, touching):
            found.append(occ)
            plain += change is None
            if plain > limit and original >= last_change:
                # Enough: every later occurrence is unmodified and starts after these.
                break
    found.sort(key=lambda o: (o.start, o.index))
    more = len(found) > limit
    return found[:limit], more


def _far(end: datetime) -> datetime:
    # A modified occurrence may have been moved into the window from up to a
    # year later (Outlook lets an occurrence move only between its
    # neighbours, so in practice far less): look that far past the window.
    return end + timedelta(days=366)


def _overlaps(s: datetime, e: datetime, start: datetime, end: datetime, touching: bool) -> bool:
    if touching:
        return s < end and e >= start
    if s == e:
        return start <= s < end
    return s < end and e > start


def series_bounds(item: CalendarData) -> tuple[datetime, datetime | None]:
    """When the item's time begins and ends (``None``: a series without end).

    The store indexes items by these, to find the ones a window may touch
    without expanding every series.
    """
    if item.recurrence is None:
        return item.start, item.end
    rule = item.recurrence
    first: datetime | None = None
    last_end: datetime | None = None
    if rule.count is None and rule.end_date is None:
        for _, original in _series(item):
            first = original
            break
        starts = [m.start for m in item.modified]
        return min([item.start, *(x for x in [first] if x), *starts]), None
    duration = item.end - item.start
    for _, original in _series(item):
        first = original if first is None else first
        last_end = original + duration
    lows = [item.start, *(m.start for m in item.modified)]
    highs = [item.end, *(m.end for m in item.modified)]
    if first is not None:
        lows.append(first)
    if last_end is not None:
        highs.append(last_end)
    return min(lows), max(highs)


def occurrence_at(item: CalendarData, index: int) -> Occurrence | None:
    """The occurrence with this 1-based index (``None``: no such one, or it was deleted)."""
    if item.recurrence is None or index < 1:
        return None
    deleted = {d.astimezone(UTC) for d in item.deleted}
    modified = {m.original_start.astimezone(UTC): m for m in item.modified}
    duration = item.end - item.start
    for number, original in _series(item):
        if number < index:
            continue
        if original in deleted:
            return None
        change = modified.get(original)
        if change is not None:
            return Occurrence(number, original, change.start, change.end, change)
        return Occurrence(number, original, original, original + duration)
    return None


def first_and_last(item: CalendarData) -> tuple[Occurrence | None, Occurrence | None]:
    """The series' first and last occurrences (last is ``None`` for a series without end)."""
    if item.recurrence is None:
        return None, None
    deleted = {d.astimezone(UTC) for d in item.deleted}
    modified = {m.original_start.astimezone(UTC): m for m in item.modified}
    duration = item.end - item.start
    first: Occurrence | None = None
    last: Occurrence | None = None
    endless = item.recurrence.count is None and item.recurrence.end_date is None
    for number, original in _series(item):
        if original in deleted:
            continue
        change = modified.get(original)
        occ = (
            Occurrence(number, original, change.start, change.end, change)
            if change is not None
            else Occurrence(number, original, original, original + duration)
        )
        first = first or occ
        if endless:
            return first, None
        last = occ
    return first, last


def modified_occurrences(item: CalendarData) -> list[Occurrence]:
    """The modified occurrences with their indexes, in series order."""
    if item.recurrence is None or not item.modified:
        return []
    modified = {m.original_start.astimezone(UTC): m for m in item.modified}
    out: list[Occurrence] = []
    for number, original in _series(item):
        change = modified.get(original)
        if change is not None:
            out.append(Occurrence(number, original, change.start, change.end, change))
            if len(out) == len(modified):
                break
    return out


def has_index(item: CalendarData, index: int) -> bool:
    """Whether the series has an occurrence numbered ``index``, deleted or not."""
    if item.recurrence is None or index < 1:
        return False
    return any(number == index for number, _ in _series(item))
