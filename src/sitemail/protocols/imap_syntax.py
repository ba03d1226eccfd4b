"""IMAP4rev1 values, as the core parses them and the front ends write them (RFC 3501 section 9).

- :class:`Atom` and :data:`Value`: command arguments (atoms, strings, lists);
- :class:`SequenceSet`: ``1:3,5,7:*``;
- :class:`FetchAttribute` and :class:`Section`: FETCH data items with
  ``BODY[<section>]<partial>``;
- :class:`SearchKey`: the SEARCH criteria tree;
- formatting: :func:`quote`, :func:`literal`, :func:`nstring`, :func:`imap_list`,
  :func:`format_internal_date`, :func:`parse_date_time`, and mailbox names in
  modified UTF-7 (:func:`encode_mailbox`, :func:`decode_mailbox`).

Pure functions and frozen values; nothing here reads or writes bytes of a session.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone

#: Deepest nesting of parentheses or search keys.
MAX_DEPTH = 32
#: Longest sequence set text accepted.
MAX_SEQUENCE_TEXT = 64 * 1024

# ============================================================== values


@dataclass(frozen=True, slots=True)
class Atom:
    """An atom as sent (flags, sequence sets and keywords are atoms too)."""

    text: str


Value = Atom | bytes | list["Value"]
"""An argument: an atom, a string (quoted or literal, as bytes), or a parenthesized list."""


# ============================================================== sequence sets


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """``1:3,5,7:*``: ranges whose ends may be ``*`` (None), the largest number in use."""

    ranges: tuple[tuple[int | None, int | None], ...]

    @classmethod
    def parse(cls, text: str) -> SequenceSet | None:
        if not text or len(text) > MAX_SEQUENCE_TEXT:
            return None
        ranges = []
        for part in text.split(","):
            ends = part.split(":")
            if len(ends) > 2:
                return None
            values = [_seq_number(e) for e in ends]
            if any(v is False for v in values):
                return None
            first = values[0]
            last = values[-1]
            assert first is not False and last is not False
            ranges.append((first, last))
        return cls(tuple(ranges))

    def contains(self, n: int, largest: int) -> bool:
        """Whether ``n`` is in the set when ``*`` stands for ``largest``."""
        for a, b in self.ranges:
            lo, hi = largest if a is None else a, largest if b is None else b
            if lo > hi:
                lo, hi = hi, lo
            if lo <= n <= hi:
                return True
        return False

    def members(self, candidates: Sequence[int]) -> list[int]:
        """The sorted ``candidates`` (numbers in use) that are in the set."""
        if not candidates:
            return []
        largest = max(candidates)
        return [n for n in candidates if self.contains(n, largest)]

    def __str__(self) -> str:
        def end(v: int | None) -> str:
            return "*" if v is None else str(v)

        return ",".join(end(a) if a == b else f"{end(a)}:{end(b)}" for a, b in self.ranges)


def _seq_number(text: str) -> int | bool | None:
    if text == "*":
        return None
    if text.isascii() and text.isdigit() and len(text) <= 10:
        value = int(text)
        if 1 <= value <= 0xFFFFFFFF:
            return value
    return False


def format_sequence(numbers: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``1:3,7`` (for COPYUID and APPENDUID)."""
    out: list[str] = []
    run: list[int] = []
    for n in sorted(numbers):
        if run and n == run[-1] + 1:
            run.append(n)
            continue
        if run:
            out.append(str(run[0]) if len(run) == 1 else f"{run[0]}:{run[-1]}")
        run = [n]
    if run:
        out.append(str(run[0]) if len(run) == 1 else f"{run[0]}:{run[-1]}")
    return ",".join(out)


# ============================================================== FETCH attributes


@dataclass(frozen=True, slots=True)
class Section:
    """``BODY[<part>.<specifier> (<fields>)]``: part numbers, then what of that part."""

    part: tuple[int, ...] = ()
    specifier: str = ""  # "" | HEADER | HEADER.FIELDS | HEADER.FIELDS.NOT | TEXT | MIME
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        text = ".".join(str(p) for p in self.part)
        if self.specifier:
            text = f"{text}.{self.specifier}" if text else self.specifier
        if self.fields:
            text += " (" + " ".join(self.fields) + ")"
        return text


@dataclass(frozen=True, slots=True)
class FetchAttribute:
    """One FETCH data item.  ``name`` is upper case (``BODY`` also for ``BODY.PEEK``)."""

    name: str
    section: Section | None = None
    peek: bool = False
    partial: tuple[int, int] | None = None

    @property
    def response_name(self) -> str:
        """How the answer names the item (RFC 3501 7.4.2: the origin octet only, no PEEK)."""
        if self.section is None:
            return self.name
        text = f"{self.name}[{self.section}]"
        if self.partial is not None:
            text += f"<{self.partial[0]}>"
        return text

    @property
    def sets_seen(self) -> bool:
        """Fetching it marks the message read (RFC 3501 6.4.5)."""
        if self.name in ("RFC822", "RFC822.TEXT"):
            return True
        return self.name == "BODY" and self.section is not None and not self.peek


_SIMPLE_ATTRIBUTES = frozenset(
    {
        "FLAGS",
        "UID",
        "RFC822.SIZE",
        "INTERNALDATE",
        "ENVELOPE",
        "BODYSTRUCTURE",
        "BODY",
        "RFC822",
        "RFC822.HEADER",
        "RFC822.TEXT",
    }
)
#: FETCH's macros (RFC 3501 6.4.5), only valid as the whole item list.
FETCH_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}
_SECTION_ITEM = re.compile(
    r"(?i)^(BODY(?:\.PEEK)?)\[([^\]]*)\](?:<([0-9]{1,10})\.([0-9]{1,10})>)?$"
)
_SPECIFIERS = ("HEADER.FIELDS.NOT", "HEADER.FIELDS", "HEADER", "TEXT", "MIME")


def parse_fetch_attribute(text: str) -> FetchAttribute | None:
    upper = text.upper()
    if upper in _SIMPLE_ATTRIBUTES:
        return FetchAttribute(upper)
    m = _SECTION_ITEM.match(text)
    if m is None:
        return None
    section = _parse_section(m.group(2))
    if section is None:
        return None
    partial = None
    if m.group(3) is not None:
        count = int(m.group(4))
        if count == 0:
            return None
        partial = (int(m.group(3)), count)
    return FetchAttribute("BODY", section, peek=m.group(1).upper() == "BODY.PEEK", partial=partial)


def _parse_section(text: str) -> Section | None:
    spec, _, fields_text = text.partition(" ")
    part: list[int] = []
    specifier = ""
    words = spec.split(".") if spec else []
    i = 0
    while i < len(words) and words[i].isascii() and words[i].isdigit():
        if len(words[i]) > 5 or int(words[i]) == 0:
            return None
        part.append(int(words[i]))
        i += 1
    rest = ".".join(words[i:]).upper()
    if rest:
        if rest not in _SPECIFIERS:
            return None
        if rest == "MIME" and not part:
            return None
        specifier = rest
    fields: tuple[str, ...] = ()
    if specifier.startswith("HEADER.FIELDS"):
        inner = fields_text.strip()
        if not (inner.startswith("(") and inner.endswith(")")):
            return None
        names = inner[1:-1].split()
        if not names or any(not _is_field_name(n) for n in names):
            return None
        fields = tuple(n.strip('"').upper() for n in names)
    elif fields_text.strip():
        return None
    return Section(tuple(part), specifier, fields)


def _is_field_name(name: str) -> bool:
    name = name.strip('"')
    return bool(name) and all(33 <= ord(c) <= 126 and c != ":" for c in name)


# ============================================================== SEARCH keys


@dataclass(frozen=True, slots=True)
class SearchKey:
    """One search criterion.  ``kind`` is the key in upper case; ``AND`` holds a list.

    ``value`` is a string (BCC/BODY/CC/FROM/SUBJECT/TEXT/TO, KEYWORD), a
    ``(field, string)`` pair (HEADER), a date (BEFORE/ON/SINCE/SENT*), an
    int (LARGER/SMALLER), or a :class:`SequenceSet` (UID, and ``SEQ`` for
    a bare set of message numbers).
    """

    kind: str
    value: object = None
    children: tuple[SearchKey, ...] = ()


_FLAG_KEYS = frozenset(
    [
        "ALL",
        "ANSWERED",
        "DELETED",
        "DRAFT",
        "FLAGGED",
        "NEW",
        "OLD",
        "RECENT",
        "SEEN",
        "UNANSWERED",
        "UNDELETED",
        "UNDRAFT",
        "UNFLAGGED",
        "UNSEEN",
    ]
)
_STRING_KEYS = frozenset(["BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"])
_DATE_KEYS = frozenset(["BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"])
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


def parse_search_date(text: str) -> date | None:
    """``1-Feb-1994`` (RFC 3501 date)."""
    m = re.fullmatch(r"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})", text)
    if m is None or m.group(2).upper() not in _MONTHS:
        return None
    try:
        return date(int(m.group(3)), _MONTHS.index(m.group(2).upper()) + 1, int(m.group(1)))
    except ValueError:
        return None


class _SearchParser:
    def __init__(self, values: list[Value]) -> None:
        self.values = values
        self.i = 0

    def keys(self, depth: int = 0) -> list[SearchKey] | None:
        out = []
        while self.i < len(self.values):
            key = self.key(depth)
            if key is None:
                return None
            out.append(key)
        return out

    def _next(self) -> Value | None:
        if self.i >= len(self.values):
            return None
        value = self.values[self.i]
        self.i += 1
        return value

    def key(self, depth: int) -> SearchKey | None:
        if depth > MAX_DEPTH:
            return None
        value = self._next()
        if isinstance(value, list):
            inner = _SearchParser(value).keys(depth + 1)
            return SearchKey("AND", children=tuple(inner)) if inner else None
        if not isinstance(value, Atom):
            return None
        word = value.text.upper()
        if word in _FLAG_KEYS:
            return SearchKey(word)
        if word in _STRING_KEYS:
            text = self._string()
            return None if text is None else SearchKey(word, text)
        if word in ("KEYWORD", "UNKEYWORD"):
            flag = self._next()
            return SearchKey(word, flag.text) if isinstance(flag, Atom) else None
        if word == "HEADER":
            field_name, text = self._string(), self._string()
            if field_name is None or text is None:
                return None
            return SearchKey(word, (field_name, text))
        if word in _DATE_KEYS:
            date_text = self._string()
            when = parse_search_date(date_text) if date_text is not None else None
            return None if when is None else SearchKey(word, when)
        if word in ("LARGER", "SMALLER"):
            arg = self._next()
            if isinstance(arg, Atom) and arg.text.isascii() and arg.text.isdigit():
                return SearchKey(word, int(arg.text[:12]))
            return None
        if word == "UID":
            arg = self._next()
            seq = SequenceSet.parse(arg.text) if isinstance(arg, Atom) else None
            return None if seq is None else SearchKey("UID", seq)
        if word == "NOT":
            inner_key = self.key(depth + 1)
            return None if inner_key is None else SearchKey("NOT", children=(inner_key,))
        if word == "OR":
            left = self.key(depth + 1)
            right = self.key(depth + 1) if left is not None else None
            return (
                None if right is None or left is None else SearchKey("OR", children=(left, right))
            )
        seq = SequenceSet.parse(value.text)
        return None if seq is None else SearchKey("SEQ", seq)

    def _string(self) -> str | None:
        value = self._next()
        if isinstance(value, Atom):
            return value.text
        if isinstance(value, bytes):
            return value.decode("utf-8", errors="replace")
        return None


def parse_search_keys(values: list[Value]) -> list[SearchKey] | None:
    """SEARCH's criteria (after CHARSET), or None if they do not parse."""
    return _SearchParser(values).keys()


# ============================================================== formatting


def quote(value: str | bytes) -> bytes:
    """A string as IMAP sends it: quoted when it can be, else a literal."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if len(data) <= 1024 and all(0x20 <= c <= 0x7E for c in data):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return literal(data)


def literal(data: bytes) -> bytes:
    return b"{" + str(len(data)).encode() + b"}\r\n" + data


def nstring(value: str | bytes | None) -> bytes:
    return b"NIL" if value is None else quote(value)


def imap_list(items: Sequence[bytes | str]) -> bytes:
    parts = [i.encode("utf-8") if isinstance(i, str) else i for i in items]
    return b"(" + b" ".join(parts) + b")"


def format_internal_date(when: datetime) -> str:
    """``"17-Jul-1996 02:44:25 -0700"`` (quoted)."""
    moment = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    offset = moment.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    minutes = abs(minutes)
    month = _MONTHS[moment.month - 1].title()
    return (
        f'"{moment.day:2d}-{month}-{moment.year:04d} {moment:%H:%M:%S} '
        f'{sign}{minutes // 60:02d}{minutes % 60:02d}"'
    )


_DATE_TIME = re.compile(
    r"^ ?([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4}) "
    r"([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})$"
)


def parse_date_time(text: str) -> datetime | None:
    """APPEND's date-time ``"17-Jul-1996 02:44:25 -0700"`` (without the quotes)."""
    m = _DATE_TIME.match(text)
    if m is None or m.group(2).upper() not in _MONTHS:
        return None
    try:
        offset = timedelta(hours=int(m.group(8)), minutes=int(m.group(9)))
        zone = timezone(-offset if m.group(7) == "-" else offset)
        return datetime(
            int(m.group(3)),
            _MONTHS.index(m.group(2).upper()) + 1,
            int(m.group(1)),
            int(m.group(4)),
            int(m.group(5)),
            int(m.group(6)),
            tzinfo=zone,
        )
    except ValueError:
        return None


def encode_mailbox(name: str) -> str:
    """A mailbox name in IMAP's modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            raw = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(raw).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending.append(ch)
    flush()
    return "".join(out)


def decode_mailbox(name: str) -> str:
    """The inverse of :func:`encode_mailbox`; text that is not valid stays as it is."""
    if "&" not in name:
        return name
    out: list[str] = []
    i = 0
    while i < len(name):
        ch = name[i]
        if ch != "&":
            out.append(ch)
            i += 1
            continue
        end = name.find("-", i)
        if end < 0:
            return name
        chunk = name[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            b64 = chunk.replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            try:
                out.append(base64.b64decode(b64, validate=True).decode("utf-16-be"))
            except (ValueError, UnicodeDecodeError):
                return name
        i = end + 1
    return "".join(out)
