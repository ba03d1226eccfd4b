"""Windows time zone ids (what EWS clients send in StartTimeZone) and their IANA zones.

EWS names time zones by their Windows registry id ("Romance Standard
Time"); Python's :mod:`zoneinfo` knows IANA names.  The table is the
"001" (main territory) rows of Unicode CLDR's windowsZones mapping for the
zones an organization most often meets; an id not in it is read as UTC,
and :func:`known` lets a caller refuse it instead.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

__all__ = ["WINDOWS_ZONES", "known", "zone_of"]

WINDOWS_ZONES: dict[str, str] = {
    "UTC": "UTC",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "W. Europe Standard Time": "Europe/Berlin",
    "Romance Standard Time": "Europe/Paris",
    "Central Europe Standard Time": "Europe/Budapest",
    "Central European Standard Time": "Europe/Warsaw",
    "GTB Standard Time": "Europe/Bucharest",
    "FLE Standard Time": "Europe/Kiev",
    "Russian Standard Time": "Europe/Moscow",
    "Israel Standard Time": "Asia/Jerusalem",
    "Egypt Standard Time": "Africa/Cairo",
    "South Africa Standard Time": "Africa/Johannesburg",
    "Arabian Standard Time": "Asia/Dubai",
    "India Standard Time": "Asia/Calcutta",
    "China Standard Time": "Asia/Shanghai",
    "Singapore Standard Time": "Asia/Singapore",
    "Tokyo Standard Time": "Asia/Tokyo",
    "Korea Standard Time": "Asia/Seoul",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "New Zealand Standard Time": "Pacific/Auckland",
    "Atlantic Standard Time": "America/Halifax",
    "Eastern Standard Time": "America/New_York",
    "Central Standard Time": "America/Chicago",
    "Mountain Standard Time": "America/Denver",
    "US Mountain Standard Time": "America/Phoenix",
    "Pacific Standard Time": "America/Los_Angeles",
    "Alaskan Standard Time": "America/Anchorage",
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "SA Pacific Standard Time": "America/Bogota",
    "E. South America Standard Time": "America/Sao_Paulo",
}


def known(windows_id: str) -> bool:
    return windows_id in WINDOWS_ZONES


def zone_of(windows_id: str) -> ZoneInfo:
    """The IANA zone of a Windows id (UTC for an id the table lacks)."""
    return ZoneInfo(WINDOWS_ZONES.get(windows_id, "UTC"))
