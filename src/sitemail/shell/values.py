"""Value types of the shell (sizes, time spans, flag sets) and their text forms.

The text forms follow what Exchange 2010 shows: ``10 MB (10,485,760 bytes)``
for a size, ``1.00:00:00`` for a time span, ``Tls, Integrated`` for a flags
enum, ``{a, b}`` for a list in a table cell.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from .errors import ConversionError
from .records import Record

_SIZE_UNITS = (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("B", 1))
_SIZE_RE = re.compile(
    r"(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>b|kb|mb|gb|tb)?(?:\s*\(\s*[\d,]+\s*bytes\s*\))?",
    re.IGNORECASE,
)
_TIMESPAN_RE = re.compile(
    r"(?P<sign>-)?(?:(?P<days>\d+)\.)?(?P<hours>\d{1,2}):(?P<minutes>\d{1,2})"
    r"(?::(?P<seconds>\d{1,2})(?:\.(?P<fraction>\d{1,7}))?)?"
)
_ENUMERATION_LIMIT = 4  # PowerShell's $FormatEnumerationLimit


@dataclass(frozen=True, order=True)
class ByteSize:
    """A byte quantity (Exchange's ByteQuantifiedSize)."""

    bytes: int

    @classmethod
    def parse(cls, text: str) -> ByteSize:
        """``10MB``, ``10 MB``, ``10485760``, ``1.5GB``, ``10 MB (10,485,760 bytes)``."""
        match = _SIZE_RE.fullmatch(text.strip())
        if match is None:
            raise ConversionError(
                f'The value "{text}" is not a valid size. Use a number of bytes or a number '
                "with a unit B, KB, MB, GB or TB, such as 10MB."
            )
        unit = (match["unit"] or "B").upper()
        multiplier = dict(_SIZE_UNITS)[unit]
        return cls(int(float(match["num"]) * multiplier))

    def to_unit(self, unit: str) -> int:
        """Whole units, rounded down (ToMB() and friends)."""
        return self.bytes // dict(_SIZE_UNITS)[unit.upper()]

    def __str__(self) -> str:
        for unit, size in _SIZE_UNITS:
            if self.bytes >= size or unit == "B":
                amount = round(self.bytes / size, 3)
                shown = f"{amount:.3f}".rstrip("0").rstrip(".")
                return f"{shown} {unit} ({self.bytes:,} bytes)"
        raise AssertionError("unreachable")


@dataclass(frozen=True)
class FlagsValue:
    """A set of names from a flags enum, in the enum's declared order (``Tls, Integrated``)."""

    names: tuple[str, ...]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.casefold() in (n.casefold() for n in self.names)

    def __str__(self) -> str:
        return ", ".join(self.names)


def parse_timespan(text: str) -> timedelta:
    """.NET TimeSpan text: ``[-][d.]hh:mm[:ss[.fffffff]]`` or a whole number of days."""
    stripped = text.strip()
    if stripped.lstrip("-").isdigit():
        return timedelta(days=int(stripped))
    match = _TIMESPAN_RE.fullmatch(stripped)
    if match is None:
        raise ConversionError("String was not recognized as a valid TimeSpan.")
    hours, minutes = int(match["hours"]), int(match["minutes"])
    seconds = int(match["seconds"] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ConversionError(
            "The TimeSpan could not be parsed because at least one of the numeric components "
            "is out of range or contains too many digits."
        )
    fraction = (match["fraction"] or "").ljust(7, "0")
    span = timedelta(
        days=int(match["days"] or 0),
        hours=hours,
        minutes=minutes,
        seconds=seconds,
        microseconds=int(fraction) // 10,
    )
    return -span if match["sign"] else span


def format_timespan(span: timedelta) -> str:
    """``[-][d.]hh:mm:ss[.fffffff]``, as .NET prints a TimeSpan."""
    sign = "-" if span < timedelta(0) else ""
    span = abs(span)
    hours, rest = divmod(span.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"{hours:02}:{minutes:02}:{seconds:02}"
    if span.days:
        text = f"{span.days}.{text}"
    if span.microseconds:
        text += f".{span.microseconds * 10:07}"
    return sign + text


def format_datetime(moment: datetime) -> str:
    """en-US general date/time, as the EMS prints it (``1/5/2024 3:04:05 PM``)."""
    hour = moment.hour % 12 or 12
    suffix = "AM" if moment.hour < 12 else "PM"
    return (
        f"{moment.month}/{moment.day}/{moment.year} "
        f"{hour}:{moment.minute:02}:{moment.second:02} {suffix}"
    )


def format_number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def to_string(value: object) -> str:
    """A value as text, the way PowerShell converts it to a string."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, timedelta):
        return format_timespan(value)
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, list | tuple):
        return " ".join(to_string(item) for item in value)
    if isinstance(value, Mapping):
        return "System.Collections.Hashtable"
    return str(value)


def to_display(value: object) -> str:
    """A value as a table cell or list entry shows it (collections in braces)."""
    if isinstance(value, list | tuple):
        shown = [to_display(item) for item in value[:_ENUMERATION_LIMIT]]
        more = "..." if len(value) > _ENUMERATION_LIMIT else ""
        return "{" + ", ".join(shown) + more + "}"
    return to_string(value)


def to_bool(value: object) -> bool:
    """PowerShell truthiness."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value != ""
    if isinstance(value, list | tuple):
        if len(value) == 1:
            return to_bool(value[0])
        return len(value) > 0
    if isinstance(value, timedelta):
        return True
    return True


def type_name(value: object) -> str:
    """The .NET-style type name PowerShell would show for the value."""
    if value is None:
        return "$null"
    if isinstance(value, Record):
        return value.type_name
    if isinstance(value, bool):
        return "System.Boolean"
    if isinstance(value, int):
        return "System.Int32" if -(2**31) <= value < 2**31 else "System.Int64"
    if isinstance(value, float):
        return "System.Double"
    if isinstance(value, str):
        return "System.String"
    if isinstance(value, list | tuple):
        return "System.Object[]"
    if isinstance(value, Mapping):
        return "System.Collections.Hashtable"
    if isinstance(value, timedelta):
        return "System.TimeSpan"
    if isinstance(value, datetime):
        return "System.DateTime"
    if isinstance(value, ByteSize):
        return "Microsoft.Exchange.Data.ByteQuantifiedSize"
    named = getattr(value, "type_name", None)
    if isinstance(named, str):
        return named
    return type(value).__name__


def flatten(values: Iterable[object]) -> list[object]:
    """Unroll one level of lists, as a pipeline does with an array it receives."""
    out: list[object] = []
    for value in values:
        if isinstance(value, list | tuple):
            out.extend(value)
        else:
            out.append(value)
    return out
