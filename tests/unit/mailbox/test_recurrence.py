"""Recurrence expansion (sitemail.mailbox.recurrence): patterns, ranges, exceptions, bounds."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import ValidationError

from sitemail.mailbox.item_records import (
    CalendarData,
    FreeBusy,
    ModifiedOccurrence,
    Pattern,
    Recurrence,
    Weekday,
    WeekIndex,
)
from sitemail.mailbox.recurrence import (
    MAX_STEPS,
    expand,
    first_and_last,
    occurrence_at,
    occurrence_dates,
    series_bounds,
)

WIDE = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def _series(start: datetime, rule: Recurrence, zone: str = "UTC", **extra: object) -> CalendarData:
    return CalendarData.model_validate(
        {
            "subject": "S",
            "start": start,
            "end": start + timedelta(minutes=30),
            "time_zone": zone,
            "recurrence": rule,
            **extra,
        }
    )


def _dates(rule: Recurrence, n: int) -> list[date]:
    return list(itertools.islice(occurrence_dates(rule), n))


def test_patterns_give_the_dates_exchange_gives() -> None:
    start = date(2030, 1, 1)  # a Tuesday
    daily = Recurrence(pattern=Pattern.DAILY, interval=3, start_date=start)
    assert _dates(daily, 3) == [date(2030, 1, 1), date(2030, 1, 4), date(2030, 1, 7)]
    # Every other week on Monday and Friday: the week of the start date counts first.
    weekly = Recurrence(
        pattern=Pattern.WEEKLY,
        interval=2,
        days_of_week=[Weekday.MONDAY, Weekday.FRIDAY],
        start_date=start,
    )
    assert _dates(weekly, 4) == [
        date(2030, 1, 4),
        date(2030, 1, 14),
        date(2030, 1, 18),
        date(2030, 1, 28),
    ]
    # The 31st falls on the last day of shorter months.
    monthly = Recurrence(pattern=Pattern.ABSOLUTE_MONTHLY, day_of_month=31, start_date=start)
    assert _dates(monthly, 3) == [date(2030, 1, 31), date(2030, 2, 28), date(2030, 3, 31)]
    last_friday = Recurrence(
        pattern=Pattern.RELATIVE_MONTHLY,
        days_of_week=[Weekday.FRIDAY],
        week_index=WeekIndex.LAST,
        start_date=start,
    )
    assert _dates(last_friday, 3) == [date(2030, 1, 25), date(2030, 2, 22), date(2030, 3, 29)]
    second_weekday = Recurrence(
        pattern=Pattern.RELATIVE_MONTHLY,
        days_of_week=[Weekday.WEEKDAY],
        week_index=WeekIndex.SECOND,
        start_date=start,
    )
    assert _dates(second_weekday, 2) == [date(2030, 1, 2), date(2030, 2, 4)]
    yearly = Recurrence(
        pattern=Pattern.ABSOLUTE_YEARLY, day_of_month=29, month=2, start_date=date(2030, 3, 1)
    )
    assert _dates(yearly, 3) == [date(2031, 2, 28), date(2032, 2, 29), date(2033, 2, 28)]
    thanksgiving = Recurrence(
        pattern=Pattern.RELATIVE_YEARLY,
        days_of_week=[Weekday.THURSDAY],
        week_index=WeekIndex.FOURTH,
        month=11,
        start_date=start,
    )
    assert _dates(thanksgiving, 2) == [date(2030, 11, 28), date(2031, 11, 27)]


def test_incomplete_or_contradictory_patterns_are_refused() -> None:
    with pytest.raises(ValidationError, match="needs days_of_week"):
        Recurrence(pattern=Pattern.WEEKLY, start_date=date(2030, 1, 1))
    with pytest.raises(ValidationError, match="not both"):
        Recurrence(
            pattern=Pattern.DAILY, start_date=date(2030, 1, 1), end_date=date(2030, 2, 1), count=3
        )
    with pytest.raises(ValidationError, match="ends before it starts"):
        Recurrence(pattern=Pattern.DAILY, start_date=date(2030, 1, 1), end_date=date(2029, 1, 1))
    with pytest.raises(ValidationError):
        Recurrence(pattern=Pattern.DAILY, start_date=date(2030, 1, 1), count=1000)


def test_wall_clock_time_is_kept_across_daylight_saving_changes() -> None:
    # 09:00 in New York: 14:00 UTC in winter, 13:00 UTC from 10 March 2030.
    rule = Recurrence(
        pattern=Pattern.WEEKLY,
        days_of_week=[Weekday.MONDAY],
        start_date=date(2030, 3, 4),
        count=2,
    )
    item = _series(datetime(2030, 3, 4, 14, tzinfo=UTC), rule, "Eastern Standard Time")
    found, more = expand(item, *WIDE, limit=10)
    assert [o.start for o in found] == [
        datetime(2030, 3, 4, 14, tzinfo=UTC),
        datetime(2030, 3, 11, 13, tzinfo=UTC),
    ]
    assert [o.end - o.start for o in found] == [timedelta(minutes=30)] * 2 and not more


def test_ranges_end_by_date_count_or_not_at_all() -> None:
    start = datetime(2030, 1, 1, 9, tzinfo=UTC)
    until = Recurrence(pattern=Pattern.DAILY, start_date=start.date(), end_date=date(2030, 1, 3))
    assert len(expand(_series(start, until), *WIDE, limit=100)[0]) == 3
    # A count includes deleted occurrences: the fourth of five is deleted, four remain.
    counted = Recurrence(pattern=Pattern.DAILY, start_date=start.date(), count=5)
    item = _series(start, counted, deleted=[start + timedelta(days=3)])
    found, _ = expand(item, *WIDE, limit=100)
    assert [o.index for o in found] == [1, 2, 3, 5]
    assert occurrence_at(item, 4) is None and occurrence_at(item, 6) is None
    assert series_bounds(item) == (start, start + timedelta(days=4, minutes=30))
    endless = Recurrence(pattern=Pattern.DAILY, start_date=start.date())
    forever = _series(start, endless)
    assert series_bounds(forever) == (start, None)
    first, last = first_and_last(forever)
    assert first is not None and first.start == start and last is None
    # Far from the start, a window still finds its occurrences, and the walk is bounded.
    window = (datetime(2080, 5, 1, tzinfo=UTC), datetime(2080, 5, 3, tzinfo=UTC))
    assert [o.start.day for o in expand(forever, *window, limit=10)[0]] == [1, 2]
    assert len(list(occurrence_dates(endless))) == MAX_STEPS


def test_modified_occurrences_move_in_and_out_of_windows_and_limits_cut() -> None:
    start = datetime(2030, 1, 7, 9, tzinfo=UTC)
    rule = Recurrence(pattern=Pattern.DAILY, start_date=start.date(), count=10)
    moved = ModifiedOccurrence(
        original_start=start + timedelta(days=5),
        start=start - timedelta(days=2),  # moved before the series began
        end=start - timedelta(days=2) + timedelta(hours=1),
        subject="Early",
        free_busy=FreeBusy.OOF,
    )
    item = _series(start, rule, modified=[moved])
    window = (start - timedelta(days=3), start + timedelta(days=1))
    found, more = expand(item, *window, limit=10)
    assert [(o.index, o.modified is not None) for o in found] == [(6, True), (1, False)]
    assert not more
    # Its original day no longer has it.
    day6 = (start + timedelta(days=5), start + timedelta(days=6))
    assert expand(item, *day6, limit=10)[0] == []
    found, more = expand(item, *WIDE, limit=3)
    assert [o.index for o in found] == [6, 1, 2] and more
    assert series_bounds(item)[0] == moved.start
    # A single appointment is its one occurrence; zero-length ones count at the start.
    single = CalendarData(start=start, end=start)
    assert [o.index for o in expand(single, start, start + timedelta(hours=1), limit=5)[0]] == [0]
    assert expand(single, start - timedelta(hours=1), start, limit=5)[0] == []
