"""The few SMTP sessions of a protocol log file that matter, found at C speed.

Most sessions of a busy log are healthy and alike; the rules need the odd
ones, a sample of the rest, and the sessions cut by file rotation.
:func:`select_sessions` finds them with whole-buffer ``bytes`` searches
(``find``/``count``/``translate``, C loops) and parses only the rows of the
sessions it selects.  A session (the rows of one session-id in the file) is
selected when

A. a row holds a marker of trouble (:data:`MARKERS`; ``to connect`` only when
   not part of ``attempting to connect``, the first row of every SmtpSend
   session); a marker in another field of the row counts too;
B. SmtpReceive: a ``<`` row with data ``QUIT`` (any case) at sequence-number
   <= 24, or a ``*`` row with ``SMTPAcceptAnyRecipient`` at <= 3;
C. SmtpSend: a ``-`` row at sequence-number <= 3;
D. one of its rows starts in the first or last 64 KiB of the file;
E. it is one of the first 16 sessions whose sequence-number-0 row is in the file.

Markers are looked for in a reduced copy of each 32 KiB block
(``bytes.translate`` drops the bytes no marker holds and folds a few
together, so that one search covers several markers over a third of the
bytes); only blocks whose reduced copy has a hit are searched exactly.  The
rows of a selected session are gathered by searching back (to its
sequence-number-0 row) and forward (to its ``-`` row) for ``,<session-id>``
within :data:`WINDOW` bytes of its first known row.

Files the fast path does not model (a ``#Fields`` line other than the 2010
one, a quoted value across lines, empty lines, a session-id that is not a
plain field) are read by :func:`select_sessions_reference`, the same
selection by a full parse; it reads rows exactly as
:class:`~sitemail.transport.log_files.LogFileReader` does.  The two differ
only for a session whose rows lie more than :data:`WINDOW` bytes apart, or
whose session-id is reused within one file (Exchange never does).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

from sitemail.diagnose.logs.files import LogKind
from sitemail.diagnose.logs.protocol import ProtocolRow
from sitemail.diagnose.logs.sessions import SmtpSession
from sitemail.transport.log_files import (
    MAX_RECORD_CHARS,
    MAX_RECORD_LINES,
    LogHeader,
    split_quoted,
)
from sitemail.transport.protocol_log import PROTOCOL_LOG_FIELDS

__all__ = [
    "EDGE",
    "MARKERS",
    "SAMPLES",
    "WINDOW",
    "FileScan",
    "select_sessions",
    "select_sessions_reference",
]

#: Bytes whose presence in a row selects its session (criterion A).
MARKERS: tuple[bytes, ...] = (
    b" 5.7.",
    b" 4.",
    b"XXX",
    b"***",
    b"ailed",
    b"ecognized",
    b"to connect",
    b"Connection dropped",
    b"Unrecognized",
    b"Cannot",
)
#: Every SmtpSend session starts ``*,,attempting to connect``: not a marker hit.
ROUTINE = b"attempting to connect"
_TO_CONNECT = b"to connect"
_ROUTINE_HEAD = ROUTINE[: -len(_TO_CONNECT)]
EDGE = 64 * 1024
SAMPLES = 16
WINDOW = 8 * 1024 * 1024
QUIT_MAX_SEQUENCE = 24
ANY_RECIPIENT = "SMTPAcceptAnyRecipient"
ANY_RECIPIENT_MAX_SEQUENCE = 3
SHORT_SEND_MAX_SEQUENCE = 3
CHUNK = 64 * 1024

_FIELDS = len(PROTOCOL_LOG_FIELDS)
_BOM = b"\xef\xbb\xbf"
_NL, _COMMA, _HASH = 10, 44, 35


@dataclass
class FileScan:
    sessions: list[SmtpSession]
    """The selected sessions, each with all its rows in the file, by first row."""
    rows: int
    """Lines of the file that are not ``#`` lines (its rows, unless it holds quoted
    values across lines or empty lines; Exchange writes neither)."""
    sessions_total: int
    """Sessions started in the file: its rows with event ``+``."""
    bytes: int


# -- the reduced alphabet -------------------------------------------------------


def _alphabet() -> tuple[bytes, bytes]:
    """(table, delete) for ``bytes.translate``: the bytes of the markers stay but for the
    frequent ``T`` and ``U``; ``5`` joins ``4`` and ``X`` joins ``*`` (one search for
    `` 4.``/`` 5.7.`` and ``***``/``XXX``); ``Q`` ``I`` fold to lower case (one search
    for QUIT in any case); ``<`` and line ends stay."""
    table = bytearray(range(256))
    table[ord("5")], table[ord("X")] = ord("4"), ord("*")
    table[ord("Q")], table[ord("I")] = ord("q"), ord("i")
    keep = {table[c] for c in b"".join(MARKERS)} | set(b"<\nqi")
    keep -= set(b"TUu")
    delete = bytes(c for c in range(256) if table[c] not in keep or c in b"TUu")
    return bytes(table), delete


_TABLE, _DELETE = _alphabet()


def _reduce(text: bytes) -> bytes:
    return text.translate(_TABLE, _DELETE)


def _marker_groups() -> tuple[tuple[bytes, tuple[bytes, ...]], ...]:
    """(reduced needle, markers it stands for): a marker occurs only where its reduced
    form occurs in the reduced text, and that holds any needle it contains."""
    groups: list[tuple[bytes, list[bytes]]] = []
    for marker in sorted(set(MARKERS) - {_TO_CONNECT}, key=lambda m: len(_reduce(m))):
        if any(other in marker for other in MARKERS if other != marker):
            continue  # Unrecognized: its hits are hits of ecognized
        image = _reduce(marker)
        for needle, members in groups:
            if needle in image:
                members.append(marker)
                break
        else:
            groups.append((image, [marker]))
    return tuple((needle, tuple(members)) for needle, members in groups)


_GROUPS = _marker_groups()
#: A part of ``to connect`` that cannot overlap itself, so counts are exact.
_TO_CONNECT_PART = _reduce(b"o connec")
_QUIT_NEEDLES = (b",<,quit", b',<,"quit')
_QUIT_REDUCED = _reduce(b",<,QUIT")
assert all(
    _QUIT_REDUCED
    in _reduce(b",<," + quote + bytes(c ^ 32 * (bit >> i & 1) for i, c in enumerate(b"QUIT")))
    for quote in (b"", b'"')
    for bit in range(16)
)
_ANY_RECIPIENT_BYTES = ANY_RECIPIENT.encode()
_ANY_RECIPIENT_REDUCED = _reduce(_ANY_RECIPIENT_BYTES)
_FIELD_ENDS = frozenset((b",", b"\r", b"\n", b""))
_SHORT_SEQUENCES = frozenset(str(n).encode() for n in range(SHORT_SEND_MAX_SEQUENCE + 1))


# -- rows and the criteria ------------------------------------------------------


def _sequence(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() else None


def _at_most(text: str, limit: int) -> bool:
    number = _sequence(text)
    return number is not None and number <= limit


def _structural(values: list[str], kind: LogKind) -> bool:
    """Criteria B and C on one row."""
    event = values[6]
    if kind is LogKind.SMTP_SEND:
        return event == "-" and _at_most(values[3], SHORT_SEND_MAX_SEQUENCE)
    if kind is not LogKind.SMTP_RECEIVE:
        return False
    if event == "<":
        head = values[7][:4]
        return head.isascii() and head.lower() == "quit" and _at_most(values[3], QUIT_MAX_SEQUENCE)
    return (
        event == "*"
        and ANY_RECIPIENT in values[7]
        and _at_most(values[3], ANY_RECIPIENT_MAX_SEQUENCE)
    )


def _unroutine(raw: bytes) -> bool:
    """``to connect`` somewhere not as the end of ``attempting to connect``."""
    at = raw.find(_TO_CONNECT)
    while at >= 0:
        if raw[max(0, at - len(_ROUTINE_HEAD)) : at] != _ROUTINE_HEAD:
            return True
        at = raw.find(_TO_CONNECT, at + 1)
    return False


def _marked(raw: bytes) -> bool:
    """Criterion A on the bytes of one row."""
    return any(m in raw for m in MARKERS if m != _TO_CONNECT) or _unroutine(raw)


def _split(line: bytes, terminated: bool) -> list[str] | None:
    """A canonical row's values as LogFileReader makes them; None for a last line cut
    short (no line end and too few fields)."""
    text = line.decode("utf-8", "replace")
    parts = split_quoted(text) if '"' in text else text.split(",")
    size = len(parts)
    if size != _FIELDS:
        if size > _FIELDS:
            parts[_FIELDS - 1 :] = [",".join(parts[_FIELDS - 1 :])]
        elif not terminated:
            return None
        else:
            parts.extend([""] * (_FIELDS - size))
    return parts


def _session(kind: LogKind, rows: list[ProtocolRow]) -> SmtpSession:
    first = rows[0].values
    complete = any(r.values[6] == "-" for r in rows)
    return SmtpSession(kind, first[1], first[2], rows, complete=complete)


# -- the reference: a full parse ------------------------------------------------


def _order(fields: tuple[str, ...]) -> list[int] | None:
    if fields == PROTOCOL_LOG_FIELDS:
        return None
    if not fields:
        return list(range(_FIELDS))
    index = {name: i for i, name in enumerate(fields)}
    return [index.get(name, -1) for name in PROTOCOL_LOG_FIELDS]


def _records(data: bytes) -> Iterator[tuple[int, int, list[str], bytes]]:
    """(byte offset, line number, canonical values, raw bytes) of every row, read as
    LogFileReader reads a file (quoted values across lines, ``#Fields`` in mid-file,
    short and long rows, a last row cut short)."""
    lines = data.split(b"\n")
    ends_with_newline = lines[-1] == b""
    if ends_with_newline:
        lines.pop()
    count = len(lines)
    fields: tuple[str, ...] = ()
    order = _order(fields)
    offset = i = 0
    while i < count:
        raw, start, number = lines[i], offset, i + 1
        offset += len(raw) + 1
        i += 1
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        line = raw.rstrip(b"\r\n")
        if not line:
            continue
        text = line.decode("utf-8", "replace")
        if text[0] == "#":
            fields = LogHeader(fields=fields).with_line(text).fields
            order = _order(fields)
            continue
        terminated = i < count or ends_with_newline
        raws = [line]
        if '"' in text and text.count('"') % 2:
            texts, quotes, size = [text], text.count('"'), len(text)
            while True:
                if i >= count:
                    terminated = False
                    break
                more = lines[i].rstrip(b"\r\n")
                offset += len(lines[i]) + 1
                i += 1
                more_text = more.decode("utf-8", "replace")
                texts.append(more_text)
                raws.append(more)
                quotes += more_text.count('"')
                size += len(more_text)
                if quotes % 2 == 0 or len(texts) >= MAX_RECORD_LINES or size >= MAX_RECORD_CHARS:
                    terminated = i < count or ends_with_newline
                    break
            text = "\n".join(texts)
        parts = split_quoted(text) if '"' in text else text.split(",")
        wanted, size = len(fields), len(parts)
        if wanted and size != wanted:
            if size > wanted:
                parts[wanted - 1 :] = [",".join(parts[wanted - 1 :])]
            elif not terminated:
                continue
            else:
                parts.extend([""] * (wanted - size))
        if order is not None:
            parts = [parts[j] if 0 <= j < len(parts) else "" for j in order]
        yield start, number, parts, b"\n".join(raws)


def select_sessions_reference(data: bytes, label: str, kind: LogKind) -> FileScan:
    """:func:`select_sessions` by parsing every row (slow; the oracle of the tests and
    the path for files the fast one does not model)."""
    by_id: dict[str, list[ProtocolRow]] = {}
    chosen: set[str] = set()
    samples: list[str] = []
    started, size = 0, len(data)
    lines = data.removeprefix(_BOM).split(b"\n")
    rows = sum(not line.startswith(b"#") for line in lines) - (lines[-1] == b"")
    for start, number, values, raw in _records(data):
        sid = values[2]
        by_id.setdefault(sid, []).append(ProtocolRow(values, label, number, kind))
        if values[6] == "+":
            started += 1
        if values[3] == "0" and len(samples) < SAMPLES and sid not in samples:
            samples.append(sid)
        if start < EDGE or start >= size - EDGE or _marked(raw) or _structural(values, kind):
            chosen.add(sid)
    chosen.update(samples)
    sessions = [_session(kind, r) for sid, r in by_id.items() if sid in chosen]
    return FileScan(sessions, rows, started, size)


# -- the fast path --------------------------------------------------------------


class _Unmodelled(Exception):
    """The file has something the fast path does not model: use the reference."""


def select_sessions(data: bytes, label: str, kind: LogKind) -> FileScan:
    """The sessions of one protocol log file that the rules need (see the module doc).

    ``data`` is the whole file; ``label`` becomes each row's ``path``.
    """
    try:
        return _Scan(data, label, kind).run()
    except _Unmodelled:
        return select_sessions_reference(data, label, kind)


class _Scan:
    def __init__(self, data: bytes, label: str, kind: LogKind) -> None:
        self.data = data
        self.size = len(data)
        self.label = label
        self.kind = kind
        # Parsed lines by offset: (values or None for a # or empty line, end of line).
        self.parsed: dict[int, tuple[list[str] | None, int]] = {}
        # Selected session-ids, with the offset of their first known row.
        self.chosen: dict[str, int] = {}
        # Fully parsed spans [start, stop) (the edges) and their rows by session-id.
        self.regions: list[tuple[int, int]] = []
        self.region_rows: dict[str, list[int]] = {}
        self.block_starts: list[int] = []
        self.block_lines: list[int] = []
        # 1-based line numbers of the lines of the regions.
        self.numbers: dict[int, int] = {}
        self.body = self.lines = self.mid_headers = self.header_lines = 0
        # Where the last line starts when it has no line end (else the size).
        last = data.rfind(b"\n") + 1
        self.last = last if last < self.size else self.size

    def run(self) -> FileScan:
        self.header()
        self.check_quotes()
        self.blocks()
        started = self.connects()
        if self.kind is LogKind.SMTP_SEND:
            self.short_sends()
        self.edges()
        self.samples()
        sessions = self.gather()
        return FileScan(sessions, self.lines - self.mid_headers, started, self.size)

    # -- rows --

    def line_start(self, at: int) -> int:
        return self.data.rfind(b"\n", 0, at) + 1

    def row(self, start: int) -> tuple[list[str] | None, int]:
        """(values, end of line) of the line at ``start``."""
        known = self.parsed.get(start)
        if known is None:
            end = self.data.find(b"\n", start)
            end = self.size if end < 0 else end
            known = self.parsed[start] = self.values(self.data[start:end], start, end)
        return known

    def values(self, raw: bytes, start: int, end: int) -> tuple[list[str] | None, int]:
        line = raw.rstrip(b"\r")
        if not line or line[0] == _HASH:
            return None, end
        return _split(line, end < self.size), end

    def choose(self, start: int) -> None:
        values = self.row(start)[0]
        if values is not None:
            known = self.chosen.get(values[2])
            if known is None or start < known:
                self.chosen[values[2]] = start

    def choose_if(self, start: int) -> None:
        values = self.row(start)[0]
        if values is not None and _structural(values, self.kind):
            self.choose(start)

    # -- the header and the shape of the file --

    def header(self) -> None:
        """Leading ``#`` lines; every ``#Fields`` line must be the 2010 one."""
        data, size = self.data, self.size
        at = len(_BOM) if data.startswith(_BOM) else 0
        fields: tuple[str, ...] = ()
        while at < size and data[at] == _HASH:
            end = data.find(b"\n", at)
            end = size if end < 0 else end
            fields = self.header_line(data[at:end], fields)
            at = end + 1
        if fields != PROTOCOL_LOG_FIELDS and at < size:
            raise _Unmodelled("no 2010 #Fields line before the first row")
        self.body = min(at, size)
        self.header_lines = data.count(b"\n", 0, self.body)
        hit = data.find(b"#", self.body)
        while hit >= 0:
            if data[hit - 1] == _NL:
                end = data.find(b"\n", hit)
                end = size if end < 0 else end
                self.header_line(data[hit:end], PROTOCOL_LOG_FIELDS)
                self.mid_headers += 1
                hit = end
            hit = data.find(b"#", hit + 1)

    @staticmethod
    def header_line(line: bytes, fields: tuple[str, ...]) -> tuple[str, ...]:
        text = line.rstrip(b"\r").decode("utf-8", "replace")
        new = LogHeader(fields=fields).with_line(text).fields
        if new != fields and new != PROTOCOL_LOG_FIELDS:
            raise _Unmodelled("a #Fields line other than the 2010 one")
        return new

    def check_quotes(self) -> None:
        """Quotes pair up within lines (no quoted value runs across a line end)."""
        find = self.data.find
        first = find(b'"', self.body)
        while first >= 0:
            second = find(b'"', first + 1)
            if second < 0 or find(b"\n", first, second) >= 0:
                raise _Unmodelled("a quoted value across lines")
            first = find(b'"', second + 1)

    # -- criteria A and B: the reduced copy --

    def blocks(self) -> None:
        """Reduce the body block by block (counting lines), search the joined reduced
        copy, and search exactly the blocks where it has a hit."""
        data, size, find = self.data, self.size, self.data.find
        starts, lines, parts = self.block_starts, self.block_lines, []
        offsets: list[int] = []
        start = self.body
        total = reduced_size = 0
        while start < size:
            end = find(b"\n", start + CHUNK)
            end = size if end < 0 else end + 1
            part = data[start:end].translate(_TABLE, _DELETE)
            starts.append(start)
            lines.append(total)
            offsets.append(reduced_size)
            total += part.count(b"\n")
            reduced_size += len(part)
            parts.append(part)
            start = end
        self.lines = total + (size > self.body and data[-1] != _NL)
        reduced = b"".join(parts)
        del parts
        bounds = [*starts, size]
        for needle, markers in _GROUPS:
            for i in _dirty(reduced, offsets, needle):
                for marker in markers:
                    self.markers(marker, bounds[i], bounds[i + 1])
        for i in _dirty(reduced, offsets, _TO_CONNECT_PART):
            low, high = offsets[i], offsets[i + 1] if i + 1 < len(offsets) else reduced_size
            if reduced.count(_TO_CONNECT_PART, low, high) > data.count(
                ROUTINE, bounds[i], bounds[i + 1]
            ):
                self.to_connect(bounds[i], bounds[i + 1])
        if self.kind is LogKind.SMTP_RECEIVE:
            for i in _dirty(reduced, offsets, _QUIT_REDUCED):
                lowered = data[bounds[i] : bounds[i + 1]].lower()
                for needle in _QUIT_NEEDLES:
                    self.structural(lowered, needle, bounds[i])
            for i in _dirty(reduced, offsets, _ANY_RECIPIENT_REDUCED):
                self.structural(data, _ANY_RECIPIENT_BYTES, 0, bounds[i], bounds[i + 1])

    def markers(self, marker: bytes, start: int, end: int) -> None:
        find = self.data.find
        hit = find(marker, start, end)
        while hit >= 0:
            self.choose(self.line_start(hit))
            stop = find(b"\n", hit, end)  # one hit a line is enough
            hit = -1 if stop < 0 else find(marker, stop, end)

    def to_connect(self, start: int, end: int) -> None:
        data = self.data
        hit = data.find(_TO_CONNECT, start, end)
        while hit >= 0:
            if data[max(0, hit - len(_ROUTINE_HEAD)) : hit] != _ROUTINE_HEAD:
                self.choose(self.line_start(hit))
            hit = data.find(_TO_CONNECT, hit + 1, end)

    def structural(
        self, text: bytes, needle: bytes, base: int, start: int = 0, end: int | None = None
    ) -> None:
        """Rows holding ``needle`` in ``text`` (``data``, or a block of it lowered, that
        starts at ``base``), judged by criteria B and C."""
        hit = text.find(needle, start, end)
        while hit >= 0:
            self.choose_if(self.line_start(base + hit))
            hit = text.find(needle, hit + 1, end)

    # -- sessions started, criterion C: memchr-speed scans --

    def connects(self) -> int:
        """Rows with event ``+`` (``+`` is rare: memchr speed)."""
        data, find, count = self.data, self.data.find, self.data.count
        rfind, ends, last = self.data.rfind, _FIELD_ENDS, self.last
        started = 0
        hit = find(b"+", self.body)
        while hit >= 0:
            if data[hit - 1] == _COMMA and data[hit + 1 : hit + 2] in ends:
                start = rfind(b"\n", 0, hit) + 1
                if find(b'"', start, hit) >= 0:
                    values = self.row(start)[0]
                    started += values is not None and values[6] == "+"
                elif count(b",", start, hit) == 6 and data[start] != _HASH:
                    started += start != last or self.row(start)[0] is not None
            hit = find(b"+", hit + 1)
        return started

    def short_sends(self) -> None:
        """Criterion C: ``-`` rows at sequence-number <= 3."""
        data, find, rfind, ends = self.data, self.data.find, self.data.rfind, _FIELD_ENDS
        hit = find(b",-", self.body)
        while hit >= 0:
            if data[hit + 2 : hit + 3] in ends:
                start = rfind(b"\n", 0, hit) + 1
                head = data[start:hit]
                if b'"' in head or (
                    head.count(b",") == 5 and head.split(b",", 4)[3] in _SHORT_SEQUENCES
                ):
                    self.choose_if(start)
            hit = find(b",-", hit + 2)

    # -- criteria D and E --

    def region(self, start: int, stop: int) -> None:
        """Parse every line starting in [start, stop) (``start`` a line start)."""
        data, size = self.data, self.size
        limit = data.find(b"\n", stop - 1)
        limit = size if limit < 0 else limit
        self.regions.append((start, stop))
        by_id, parsed, numbers = self.region_rows, self.parsed, self.numbers
        number = self.line_number(start)
        for raw in data[start:limit].split(b"\n"):
            end = start + len(raw)
            numbers[start] = number
            line = raw.rstrip(b"\r")
            if not line or line[0] == _HASH:
                parsed[start] = (None, end)
            else:
                text = line.decode("utf-8", "replace")
                values = split_quoted(text) if '"' in text else text.split(",")
                if len(values) != _FIELDS:
                    values = _split(line, end < size)  # type: ignore[assignment]
                parsed[start] = (values, end)
                if values is not None:
                    by_id.setdefault(values[2], []).append(start)
            start = end + 1
            number += 1
            if start >= stop:
                break

    def edges(self) -> None:
        """Criterion D: every row starting in the first or last EDGE bytes."""
        data, size, body = self.data, self.size, self.body
        if body >= size:
            return
        head_stop = max(body, min(EDGE, size))
        if body < head_stop:
            self.region(body, head_stop)
        tail = max(size - EDGE, head_stop)
        tail = data.find(b"\n", tail - 1) + 1 or size if tail > body else body
        if tail < size:
            self.region(tail, size)
        for sid, starts in self.region_rows.items():
            known = self.chosen.get(sid)
            if known is None or starts[0] < known:
                self.chosen[sid] = starts[0]

    def samples(self) -> None:
        """Criterion E: the first sessions whose sequence-number-0 row is here; past
        the first EDGE bytes only rows holding ``,0,`` (or ending ``,0``) can be."""
        seen: list[str] = []
        data, size = self.data, self.size
        start = self.body
        while start < size and len(seen) < SAMPLES:
            if start < EDGE:
                candidates = [start]
                end = self.row(start)[1] + 1
            else:
                end = data.find(b"\n", start + EDGE)
                end = size if end < 0 else end + 1
                found = {size - 2} if end == size and data.endswith(b",0") else set()
                for needle in (b",0,", b",0\r", b",0\n"):
                    hit = data.find(needle, start, end)
                    while hit >= 0:
                        found.add(hit)
                        hit = data.find(needle, hit + 1, end)
                candidates = sorted({self.line_start(hit) for hit in found})
            for line in candidates:
                values = self.row(line)[0]
                if values is not None and values[3] == "0" and values[2] not in seen:
                    seen.append(values[2])
                    self.choose(line)
                    if len(seen) == SAMPLES:
                        return
            start = end

    # -- gathering --

    def gather(self) -> list[SmtpSession]:
        found: list[list[tuple[int, list[str]]]] = []
        for sid, anchor in self.chosen.items():
            if not sid:
                raise _Unmodelled("an empty session-id")
            rows = {s: self.row(s)[0] for s in self.region_rows.get(sid, ())}
            rows[anchor] = self.row(anchor)[0]
            found.append(self.walk(sid, {s: v for s, v in rows.items() if v is not None}))
        found.sort(key=lambda rows: rows[0][0])
        numbers = self.line_numbers(sorted(start for rows in found for start, _v in rows))
        kind, label = self.kind, self.label
        return [
            _session(kind, [ProtocolRow(v, label, numbers[s], kind) for s, v in rows])
            for rows in found
        ]

    def region_of(self, start: int) -> tuple[int, int] | None:
        return next(((a, b) for a, b in self.regions if a <= start < b), None)

    def walk(self, sid: str, rows: dict[int, list[str]]) -> list[tuple[int, list[str]]]:
        """All rows of a session from some of them: back to its sequence-number-0 row,
        forward to its ``-`` row, at most WINDOW bytes each way (skipping the parsed
        regions, where its rows are known)."""
        data, needle = self.data, b"," + sid.encode()
        first = min(rows)
        if data.find(needle, first, self.row(first)[1]) < 0:
            raise _Unmodelled("a session-id that is not a plain field")
        region = self.region_of(first)
        if not any(v[3] == "0" for v in rows.values()):
            low = max(self.body, first - WINDOW)
            hit = data.rfind(needle, low, region[0] if region else first)
            while hit >= 0:
                start = self.line_start(hit)
                values = self.row(start)[0]
                if values is not None and values[2] == sid:
                    rows[start] = values
                    if values[3] == "0":
                        break
                hit = data.rfind(needle, low, start)
        ends = [s for s, v in rows.items() if v[6] == "-"]
        if not (ends and region and min(ends) < region[1]):
            high = min(self.size, first + WINDOW)
            hit = data.find(needle, region[1] if region else self.row(first)[1], high)
            while hit >= 0:
                start = self.line_start(hit)
                values, end = self.row(start)
                if values is not None and values[2] == sid:
                    rows[start] = values
                    if values[6] == "-":
                        break
                hit = data.find(needle, end, high)
        return sorted(rows.items())

    def line_number(self, start: int) -> int:
        """The 1-based line number of the line at ``start``."""
        index = max(0, bisect_right(self.block_starts, start) - 1)
        base = self.block_starts[index] if self.block_starts else self.body
        lines = self.block_lines[index] if self.block_lines else 0
        return self.header_lines + lines + self.data.count(b"\n", base, start) + 1

    def line_numbers(self, starts: list[int]) -> dict[int, int]:
        """Line numbers of line starts (sorted): those of the regions are known; the
        others count line ends from their block start or from the previous one."""
        data, blocks, known = self.data, self.block_starts, self.numbers
        numbers: dict[int, int] = {}
        previous, number = -1, 0
        for start in starts:
            if start in known:
                number = numbers[start] = known[start]
            else:
                base = blocks[bisect_right(blocks, start) - 1]
                if previous < base:
                    number = self.line_number(start)
                else:
                    number += data.count(b"\n", previous, start)
                numbers[start] = number
            previous = start
        return numbers


def _dirty(reduced: bytes, offsets: list[int], needle: bytes) -> list[int]:
    """Indexes of the blocks (starting at ``offsets`` in ``reduced``) holding ``needle``."""
    found: list[int] = []
    hit = reduced.find(needle)
    while hit >= 0:
        index = bisect_right(offsets, hit) - 1
        found.append(index)
        if index + 1 == len(offsets):
            break
        hit = reduced.find(needle, offsets[index + 1])
    return found
