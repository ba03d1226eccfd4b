"""PowerShell's operator semantics: comparisons, wildcards, arithmetic, members.

Comparisons convert the right operand to the left operand's type and compare
strings without regard to case, as PowerShell does; a list on the left
filters (``@(1,2,3) -gt 1`` is ``2,3``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from functools import lru_cache

from .errors import ConversionError, RuntimeShellError
from .lexer import parse_number
from .records import Record
from .values import ByteSize, FlagsValue, parse_timespan, to_bool, to_string, type_name

COMPARISONS = frozenset(
    {
        "eq",
        "ne",
        "gt",
        "ge",
        "lt",
        "le",
        "like",
        "notlike",
        "match",
        "notmatch",
        "contains",
        "notcontains",
        "in",
        "notin",
    }
)
_MAX_REPEAT = 10_000_000
_FILTERING = frozenset({"eq", "ne", "gt", "ge", "lt", "le", "like", "notlike", "match", "notmatch"})


def compare(op: str, left: object, right: object) -> object:
    """Apply a comparison operator (``eq``, ``ceq``, ``like``, ...)."""
    case_sensitive = op.startswith("c") and op[1:] in COMPARISONS
    base = op[1:] if case_sensitive else op
    if base in ("contains", "notcontains"):
        found = any(_equal(item, right, case_sensitive) for item in _as_items(left))
        return found if base == "contains" else not found
    if base in ("in", "notin"):
        found = any(_equal(item, left, case_sensitive) for item in _as_items(right))
        return found if base == "in" else not found
    if base in _FILTERING and isinstance(left, list | tuple):
        return [item for item in left if _scalar_compare(base, item, right, case_sensitive)]
    return _scalar_compare(base, left, right, case_sensitive)


def _as_items(value: object) -> list[object]:
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, FlagsValue):
        return list(value.names)
    return [value]


def _scalar_compare(op: str, left: object, right: object, case_sensitive: bool) -> bool:
    if op == "eq":
        return _equal(left, right, case_sensitive)
    if op == "ne":
        return not _equal(left, right, case_sensitive)
    if op in ("like", "notlike"):
        matched = _wildcard(to_string(right), case_sensitive).fullmatch(to_string(left)) is not None
        return matched if op == "like" else not matched
    if op in ("match", "notmatch"):
        try:
            pattern = re.compile(to_string(right), 0 if case_sensitive else re.IGNORECASE)
        except re.error as error:
            raise RuntimeShellError(
                f"The regular expression pattern {to_string(right)} is not valid: {error}."
            ) from None
        matched = pattern.search(to_string(left)) is not None
        return matched if op == "match" else not matched
    order = _order(left, right, case_sensitive)
    if order is None:
        raise RuntimeShellError(
            f'Could not compare "{to_string(left)}" to "{to_string(right)}". Both must be '
            "numbers, strings, dates, sizes or time spans."
        )
    return {"gt": order > 0, "ge": order >= 0, "lt": order < 0, "le": order <= 0}[op]


def _equal(left: object, right: object, case_sensitive: bool) -> bool:
    if left is None or right is None:
        return left is None and right is None
    try:
        converted = convert_like(left, right)
    except ConversionError:
        return False
    if isinstance(left, str) and isinstance(converted, str):
        return left == converted if case_sensitive else left.casefold() == converted.casefold()
    if isinstance(left, FlagsValue) and isinstance(converted, FlagsValue):
        return {n.casefold() for n in left.names} == {n.casefold() for n in converted.names}
    return left == converted


def _order(left: object, right: object, case_sensitive: bool) -> int | None:
    if left is None or right is None:
        if left is None and right is None:
            return 0
        return -1 if left is None else 1
    try:
        converted = convert_like(left, right)
    except ConversionError:
        return None
    a: object = left
    b: object = converted
    if isinstance(a, str) and isinstance(b, str) and not case_sensitive:
        a, b = a.casefold(), b.casefold()
    try:
        return int((a > b) - (a < b))  # type: ignore[operator]
    except TypeError:
        return None


def convert_like(left: object, right: object) -> object:
    """Convert ``right`` to the type of ``left`` (PowerShell's rule for comparisons)."""
    if isinstance(left, bool):
        return to_bool(right)
    if isinstance(left, int | float):
        if isinstance(right, int | float) and not isinstance(right, bool):
            return right
        if isinstance(right, bool):
            return int(right)
        if isinstance(right, ByteSize):
            return right.bytes
        number = parse_number(to_string(right).strip())
        if number is None:
            raise ConversionError(f'Cannot convert value "{to_string(right)}" to a number.')
        return number
    if isinstance(left, str):
        return to_string(right)
    if isinstance(left, ByteSize):
        if isinstance(right, ByteSize):
            return right
        if isinstance(right, int | float) and not isinstance(right, bool):
            return ByteSize(int(right))
        return ByteSize.parse(to_string(right))
    if isinstance(left, timedelta):
        if isinstance(right, timedelta):
            return right
        return parse_timespan(to_string(right))
    if isinstance(left, FlagsValue):
        if isinstance(right, FlagsValue):
            return right
        names = [p.strip() for p in to_string(right).split(",") if p.strip()]
        return FlagsValue(tuple(names))
    if isinstance(left, datetime):
        if isinstance(right, datetime):
            return right
        raise ConversionError(f'Cannot convert value "{to_string(right)}" to a date.')
    return right


@lru_cache(maxsize=256)
def _wildcard(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    return re.compile(wildcard_regex(pattern), 0 if case_sensitive else re.IGNORECASE | re.DOTALL)


def wildcard_regex(pattern: str) -> str:
    """A PowerShell wildcard (``*``, ``?``, ``[a-c]``, backtick escapes) as a regex."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "`" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end > i + 1:
                body = pattern[i + 1 : end].replace("\\", "\\\\")
                out.append("[" + body + "]")
                i = end + 1
                continue
            out.append(re.escape(ch))
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def wildcard_match(pattern: str, text: str) -> bool:
    """Case-insensitive wildcard match, as ``-like`` and ``Get-Command Get-*`` use."""
    return _wildcard(pattern, False).fullmatch(text) is not None


def has_wildcard(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def arithmetic(op: str, left: object, right: object) -> object:
    """``+ - * / %`` with PowerShell's left-operand-decides rule."""
    if op == "+":
        if isinstance(left, list | tuple):
            return [*left, *(right if isinstance(right, list | tuple) else [right])]
        if isinstance(left, str):
            return left + to_string(right)
        if isinstance(left, timedelta) and isinstance(right, timedelta):
            return left + right
        if isinstance(left, datetime) and isinstance(right, timedelta):
            return left + right
        if left is None:
            return right
    if op == "-" and isinstance(left, timedelta | datetime) and isinstance(right, timedelta):
        return left - right
    if op == "*" and isinstance(left, str | list | tuple):
        count = int(_number(right, op))
        if count * len(left) > _MAX_REPEAT:
            raise RuntimeShellError(f"The result would be longer than {_MAX_REPEAT} items.")
        return left * count if isinstance(left, str) else list(left) * count
    a, b = _number(left, op), _number(right, op)
    if op == "+":
        return _tidy(a + b)
    if op == "-":
        return _tidy(a - b)
    if op == "*":
        return _tidy(a * b)
    if b == 0:
        raise RuntimeShellError("Attempted to divide by zero.")
    if op == "/":
        return _tidy(a / b)
    return _tidy(a % b)


def _tidy(value: int | float) -> int | float:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    return value


def _number(value: object, op: str) -> int | float:
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, ByteSize):
        return value.bytes
    number = parse_number(to_string(value).strip())
    if number is None:
        raise RuntimeShellError(
            f"The '{op}' operator cannot use \"{to_string(value)}\" ({type_name(value)}): "
            "a number was expected."
        )
    return number


def negate(value: object) -> object:
    if isinstance(value, timedelta):
        return -value
    return _tidy(-_number(value, "-"))


# ------------------------------------------------------------------ members


def get_member(value: object, name: str) -> object:
    """``value.Name``: a record's property, a list's elements' property, a few built-ins."""
    key = name.casefold()
    if isinstance(value, Record):
        return value.get(name)
    if isinstance(value, list | tuple):
        if key in ("count", "length"):
            return len(value)
        found = [get_member(item, name) for item in value]
        found = [v for v in found if v is not None]
        return found[0] if len(found) == 1 else (found or None)
    if isinstance(value, Mapping):
        if key == "count":
            return len(value)
        if key == "keys":
            return list(value.keys())
        if key == "values":
            return list(value.values())
        return mapping_get(value, name)
    if isinstance(value, str):
        return len(value) if key == "length" else None
    if isinstance(value, timedelta):
        member = _TIMESPAN_MEMBERS.get(key)
        return None if member is None else member(value)
    if isinstance(value, ByteSize):
        return value.bytes if key in ("bytes", "value") else None
    if isinstance(value, datetime):
        return {
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
        }.get(key)
    if isinstance(value, FlagsValue):
        return None
    return None


def mapping_get(mapping: Mapping[object, object], name: str) -> object:
    for key, entry in mapping.items():
        if isinstance(key, str) and key.casefold() == name.casefold():
            return entry
    return None


_TIMESPAN_MEMBERS: dict[str, Callable[[timedelta], object]] = {
    "days": lambda t: t.days,
    "hours": lambda t: t.seconds // 3600,
    "minutes": lambda t: (t.seconds // 60) % 60,
    "seconds": lambda t: t.seconds % 60,
    "totaldays": lambda t: t.total_seconds() / 86400,
    "totalhours": lambda t: t.total_seconds() / 3600,
    "totalminutes": lambda t: t.total_seconds() / 60,
    "totalseconds": lambda t: t.total_seconds(),
}


def call_method(value: object, name: str, arguments: list[object]) -> object:
    """The few .NET methods administrators use in one-liners."""
    key = name.casefold()
    if key == "tostring" and not arguments:
        return to_string(value)
    if isinstance(value, str):
        text = value
        args = [to_string(a) for a in arguments]
        simple: dict[str, Callable[[], object]] = {
            "toupper": text.upper,
            "tolower": text.lower,
            "trim": lambda: text.strip() if not args else text.strip(args[0]),
            "startswith": lambda: text.casefold().startswith(args[0].casefold()),
            "endswith": lambda: text.casefold().endswith(args[0].casefold()),
            "contains": lambda: args[0] in text,
            "replace": lambda: text.replace(args[0], args[1]),
            "split": lambda: text.split(args[0]) if args else text.split(),
            "indexof": lambda: text.find(args[0]),
            "substring": lambda: (
                text[int(args[0]) :]
                if len(args) == 1
                else text[int(args[0]) : int(args[0]) + int(args[1])]
            ),
        }
        if key in simple:
            try:
                return simple[key]()
            except (IndexError, ValueError):
                raise RuntimeShellError(
                    f'Cannot find an overload for "{name}" and the argument count: '
                    f'"{len(arguments)}".'
                ) from None
    if isinstance(value, ByteSize) and key in ("tobytes", "tokb", "tomb", "togb", "totb"):
        unit = "B" if key == "tobytes" else key[2:].upper()
        return value.to_unit(unit)
    raise RuntimeShellError(
        f"Method invocation failed because [{type_name(value)}] does not contain a method "
        f"named '{name}'."
    )
