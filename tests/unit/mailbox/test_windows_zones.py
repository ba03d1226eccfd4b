"""Windows time zones' yearly rules, read off the tz database (mailbox/windows_zones.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sitemail.mailbox.windows_zones import (
    WINDOWS_ZONES,
    DayRule,
    ZoneRule,
    display_name,
    known,
    year_rule,
)

SUNDAY = 6
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("windows_id", "rule"),
    [
        # The last Sunday of March at 02:00, of October at 03:00 (still summer time).
        (
            "Romance Standard Time",
            ZoneRule(60, 60, DayRule(3, SUNDAY, -1, 2 * H), DayRule(10, SUNDAY, -1, 3 * H)),
        ),
        # The second Sunday of March, the first of November, both at 02:00.
        (
            "Eastern Standard Time",
            ZoneRule(-300, 60, DayRule(3, SUNDAY, 2, 2 * H), DayRule(11, SUNDAY, 1, 2 * H)),
        ),
        # The southern summer: daylight time from October to April.
        (
            "AUS Eastern Standard Time",
            ZoneRule(600, 60, DayRule(10, SUNDAY, 1, 2 * H), DayRule(4, SUNDAY, 1, 3 * H)),
        ),
        # Half-hour offsets change at the local hour too, read to the minute.
        (
            "Cen. Australia Standard Time",
            ZoneRule(570, 60, DayRule(10, SUNDAY, 1, 2 * H), DayRule(4, SUNDAY, 1, 3 * H)),
        ),
        (
            "Lord Howe Standard Time",
            ZoneRule(630, 30, DayRule(10, SUNDAY, 1, 2 * H), DayRule(4, SUNDAY, 1, 2 * H)),
        ),
        ("India Standard Time", ZoneRule(330, 0, None, None)),
        ("UTC", ZoneRule(0, 0, None, None)),
    ],
)
def test_a_zones_rule_of_a_year(windows_id: str, rule: ZoneRule) -> None:
    assert year_rule(windows_id, 2026) == rule


def test_the_table_is_clients_windows_ids() -> None:
    assert len(WINDOWS_ZONES) > 130 and known("Romance Standard Time")
    assert not known("Alberta Standard Time") and not known("Europe/Paris")
    assert display_name("Romance Standard Time", 2026) == "(UTC+01:00) Paris"
    assert display_name("Newfoundland Standard Time", 2026) == "(UTC-03:30) St Johns"
    assert display_name("UTC", 2026) == "(UTC) Coordinated Universal Time"
    # An unknown id keeps UTC's time.
    assert year_rule("Mars Standard Time", 2026) == ZoneRule(0, 0, None, None)
