"""Windows time zones: their ids (what EWS and ActiveSync clients send), IANA zones and rules.

EWS names time zones by their Windows registry id ("Romance Standard
Time"); Python's :mod:`zoneinfo` knows IANA names.  The mapping is Unicode
CLDR's windowsZones table (its "001", main-territory rows) as the
``tzlocal`` package keeps it; the rules come from the system's tz database.

:func:`year_rule` says how a zone keeps time in one year the way Windows
describes it (TIME_ZONE_INFORMATION, EWS's TimeZoneDefinition): a standard
offset, and optionally a daylight delta with the two yearly changes as
"the n-th (or last) weekday of a month at a local time".  It is read off
the tz database's offsets for that year, not copied from Windows' registry,
so a zone whose Windows rule differs from tzdata's (unverified: e.g. a rule
Windows dates differently) follows tzdata.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tzlocal.windows_tz import win_tz

__all__ = ["WINDOWS_ZONES", "DayRule", "ZoneRule", "display_name", "known", "year_rule", "zone_of"]

#: Ids tzlocal adds that CLDR's windowsZones (and so Windows' registry as clients know it)
#: does not have; a client could not name them back.
_NOT_WINDOWS = frozenset(
    {"Alberta Standard Time", "British Columbia Standard Time", "Manitoba Standard Time"}
)

WINDOWS_ZONES: dict[str, str] = {
    windows_id: ("UTC" if iana == "Etc/UTC" else iana)
    for windows_id, iana in sorted(win_tz.items())
    if windows_id not in _NOT_WINDOWS
}


def known(windows_id: str) -> bool:
    return windows_id in WINDOWS_ZONES


def zone_of(windows_id: str) -> ZoneInfo:
    """The IANA zone of a Windows id (UTC for an id the table lacks)."""
    return ZoneInfo(WINDOWS_ZONES.get(windows_id, "UTC"))


@dataclass(frozen=True, slots=True)
class DayRule:
    """A yearly change: the ``occurrence``-th ``weekday`` of ``month`` (-1: the last one),
    at the local wall-clock ``time`` still in the offset before the change."""

    month: int
    weekday: int  # Monday 0, as datetime.weekday()
    occurrence: int
    time: timedelta


@dataclass(frozen=True, slots=True)
class ZoneRule:
    """A zone's time in one year: UTC offsets in minutes east of UTC, as Windows keeps them."""

    standard: int
    daylight: int  # the daylight offset's difference from standard (0: no daylight time)
    daylight_starts: DayRule | None
    standard_starts: DayRule | None


def _offset(zone: ZoneInfo, moment: datetime) -> timedelta:
    return moment.astimezone(zone).utcoffset() or timedelta()


def _changes(zone: ZoneInfo, year: int) -> list[tuple[datetime, timedelta, timedelta]]:
    """(UTC moment, offset before, offset after) of every change of offset in ``year``.

    Offsets are read a day apart and a changed day is halved down to the
    minute: some 370 readings a zone instead of one a minute.
    """
    out: list[tuple[datetime, timedelta, timedelta]] = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    before = _offset(zone, day)
    while day < end:
        following = day + timedelta(days=1)
        after = _offset(zone, following)
        if after != before:
            low, high = day, following  # offset(low) == before, offset(high) == after
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                middle = middle.replace(second=0, microsecond=0)
                if middle <= low:
                    middle = low + timedelta(minutes=1)
                if _offset(zone, middle) == before:
                    low = middle
                else:
                    high = middle
            out.append((high, before, _offset(zone, high)))
            before = _offset(zone, high)
            continue  # the same day may change again (never in tzdata; cheap to allow)
        day = following
    return out


def _day_rule(moment: datetime, before: timedelta) -> DayRule:
    local = (moment + before).replace(tzinfo=None)
    following_month = (local.replace(day=28) + timedelta(days=4)).replace(day=1)
    days_in_month = (following_month - timedelta(days=1)).day
    # A change in the last seven days of a month is "the last" such weekday, as the
    # yearly rules that fall there say (the last Sunday of March, of October).
    occurrence = -1 if local.day + 7 > days_in_month else (local.day - 1) // 7 + 1
    return DayRule(
        local.month,
        local.weekday(),
        occurrence,
        timedelta(hours=local.hour, minutes=local.minute),
    )


@functools.lru_cache(maxsize=1024)
def year_rule(windows_id: str, year: int) -> ZoneRule:
    """How the Windows zone ``windows_id`` keeps time in ``year`` (UTC for an unknown id)."""
    zone = zone_of(windows_id)
    changes = [c for c in _changes(zone, year) if c[0].year == year]
    rises = [c for c in changes if c[2] > c[1]]
    falls = [c for c in changes if c[2] < c[1]]
    if not rises or not falls:
        # No daylight time this year; a zone that moved for good keeps its year-end offset.
        standard = _offset(zone, datetime(year, 12, 31, 12, tzinfo=UTC))
        return ZoneRule(int(standard.total_seconds() // 60), 0, None, None)
    start, end = rises[0], falls[0]
    standard, summer = start[1], start[2]
    return ZoneRule(
        int(standard.total_seconds() // 60),
        int((summer - standard).total_seconds() // 60),
        _day_rule(start[0], start[1]),
        _day_rule(end[0], end[1]),
    )


def display_name(windows_id: str, year: int) -> str:
    """The zone's name as Windows forms it: its standard offset in ``year`` and its main
    city, "(UTC+01:00) Paris".

    Windows' own display names ("(UTC+01:00) Brussels, Copenhagen, Madrid,
    Paris") are localized registry strings not in the tz database; this is
    sitemail's composition in their form (unverified against any Windows).
    """
    if windows_id == "UTC":
        return "(UTC) Coordinated Universal Time"
    iana = WINDOWS_ZONES.get(windows_id, "UTC")
    minutes = year_rule(windows_id, year).standard
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    city = iana.rsplit("/", 1)[-1].replace("_", " ")
    if iana.startswith("Etc/"):
        city = windows_id
    return f"(UTC{sign}{hours:02d}:{rest:02d}) {city}"
