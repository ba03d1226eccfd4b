"""The few SMTP sessions of a protocol log file that matter, found at C speed.

:func:`select_sessions` selects a session (the rows of one session-id in the file)
when A. a row holds a marker (:data:`MARKERS`; ``to connect`` not as the end of
``attempting to connect``, the first row of every SmtpSend session); B. SmtpReceive:
a ``<`` row with data ``QUIT`` (any case) at sequence-number <= 24, or a ``*`` row
whose data lists ``SMTPAcceptAnyRecipient`` among permission names at <= 3;
C. SmtpSend: a ``-`` row at <= 3; D. a row of it starts in the first or last
:data:`EDGE` bytes; E. it is one of the first :data:`SAMPLES` sessions whose
sequence-number-0 row is in the file.

Only C loops over whole buffers touch every byte: markers are searched in a copy
reduced by ``bytes.translate`` (bytes no marker holds dropped, ``5``/``4`` and
``X``/``*`` folded: 20-40% of the bytes, 6 searches for 10 markers), made by blocks
so that a hit sends an exact search to its block only; ``+``, ``#`` and ``"`` are
found at memchr speed.  The rows of a selected session are found by searching back
(to its sequence-number-0 row) and forward (to its ``-`` row) for ``,<session-id>``.

:func:`select_sessions_reference` selects the same by parsing every row as
:class:`~sitemail.mailflow.log_files.LogFileReader` does; the fast path falls back
to it for what it does not model (a ``#Fields`` line other than the 2010 one, a
quoted value across lines, an odd session-id).  They differ only for a session with
rows more than :data:`WINDOW` bytes apart, or an id reused in one file.
"""

from __future__ import annotations

import mmap
import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sitemail.diagnose.logs import hitscan
from sitemail.diagnose.logs.files import LogKind
from sitemail.diagnose.logs.protocol import ProtocolRow
from sitemail.diagnose.logs.sessions import SmtpSession
from sitemail.mailflow.log_files import MAX_RECORD_CHARS, MAX_RECORD_LINES, LogHeader, split_quoted
from sitemail.mailflow.protocol_log import PROTOCOL_LOG_FIELDS

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["EDGE", "MARKERS", "SAMPLES", "WINDOW", "FileScan"]
__all__ += ["select_sessions", "select_sessions_reference"]

#: Bytes whose presence in a row selects its session (criterion A).
MARKERS: tuple[bytes, ...] = tuple(
    b" 5.7.| 4.|XXX|***|ailed|ecognized|to connect|Connection dropped|Unrecognized|Cannot"
    .split(b"|")
)  # fmt: skip
#: Every SmtpSend session starts ``*,,attempting to connect``: not a marker hit.
ROUTINE = b"attempting to connect"
_TO_CONNECT = b"to connect"
_ROUTINE_HEAD = ROUTINE[: -len(_TO_CONNECT)]
EDGE = 8 * 1024
SAMPLES = 4
WINDOW = 8 * 1024 * 1024
QUIT_MAX_SEQUENCE = 24
ANY_RECIPIENT = "SMTPAcceptAnyRecipient"
#: The data of a ``Set Session Permissions`` row: permission names, space-separated.
#: (Written as a pattern of its own, Hyperscan checks it three times faster than "any
#: text before the name".)
_GRANTS_ANY_RECIPIENT = re.compile(r"[0-9A-Za-z ]*" + ANY_RECIPIENT)
ANY_RECIPIENT_MAX_SEQUENCE = 3
SHORT_SEND_MAX_SEQUENCE = 3
#: Bytes per block of the reduced copy (a hit costs an exact search of its block).
CHUNK = 32 * 1024
#: Bytes per block of line counts on the Hyperscan path.
LINE_BLOCK = 256 * 1024

_FIELDS = len(PROTOCOL_LOG_FIELDS)
_BOM = b"\xef\xbb\xbf"
_NL, _COMMA, _HASH = 10, 44, 35
Seqs = frozenset[bytes]
#: A file's bytes: read, or mapped (no copy; see ``parallel.FileBytes``).
Data = bytes | mmap.mmap
#: Below this many bytes a slice and ``bytes.count`` beat a NumPy call.
_SMALL = 16 * 1024
Values = list[str] | None


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
    finished: list[Any] = field(default_factory=list)
    """What the caller's ``finish`` made of the sessions whole in this file (see
    :func:`~sitemail.diagnose.logs.parallel.scan_files`); they are then not in
    :attr:`sessions`."""


def _alphabet() -> tuple[bytes, bytes]:
    """(table, delete) for ``bytes.translate``: marker bytes but ``T`` ``U`` stay, with
    ``<`` and line ends; ``5``->``4``, ``X``->``*``, ``Q``->``q``, ``I``->``i``."""
    table = bytearray(range(256))
    table[ord("5")], table[ord("X")] = ord("4"), ord("*")
    table[ord("Q")], table[ord("I")] = ord("q"), ord("i")
    keep = ({table[c] for c in b"".join(MARKERS)} | set(b"<\nqi")) - set(b"TUu")
    delete = bytes(c for c in range(256) if table[c] not in keep or c in b"TUu")
    return bytes(table), delete


_TABLE, _DELETE = _alphabet()


def _reduce(text: bytes) -> bytes:
    return text.translate(_TABLE, _DELETE)


def _marker_groups() -> list[tuple[bytes, list[bytes]]]:
    """(reduced needle, the markers it stands for): a marker occurs only where its
    reduced form occurs in the reduced copy, and so does any part of that form."""
    groups: list[tuple[bytes, list[bytes]]] = []
    for marker in sorted(set(MARKERS) - {_TO_CONNECT}, key=lambda m: (len(_reduce(m)), m)):
        if any(other in marker for other in MARKERS if other != marker):
            continue  # Unrecognized: its hits are hits of ecognized
        image = _reduce(marker)
        group = next((g for g in groups if g[0] in image), None)
        if group is None:
            groups.append((image, [marker]))
        else:
            group[1].append(marker)
    return groups


_GROUPS = _marker_groups()
#: A part of ``to connect`` that cannot overlap itself, so counts are exact.
_TO_CONNECT_PART = _reduce(b"o connec")
_QUIT_NEEDLES = (b",<,quit", b',<,"quit')
_QUIT_REDUCED = _reduce(b",<,QUIT")
_ANY_RECIPIENT_BYTES = ANY_RECIPIENT.encode()
_ANY_RECIPIENT_REDUCED = _reduce(_ANY_RECIPIENT_BYTES)
_FIELD_ENDS = frozenset((b",", b"\r", b"\n", b""))
_SHORT_SEQUENCES, _QUIT_SEQUENCES, _ANY_SEQUENCES = (
    frozenset(str(n).encode() for n in range(limit + 1))
    for limit in (SHORT_SEND_MAX_SEQUENCE, QUIT_MAX_SEQUENCE, ANY_RECIPIENT_MAX_SEQUENCE)
)


def _at_most(text: str, seqs: Seqs) -> bool:
    """The sequence-number ``text`` is one of ``seqs`` (written as Exchange does)."""
    return text.isascii() and text.encode() in seqs


def _structural(values: list[str], kind: LogKind) -> bool:
    """Criteria B and C on one row."""
    event, data = values[6], values[7]
    if kind is LogKind.SMTP_SEND:
        return event == "-" and _at_most(values[3], _SHORT_SEQUENCES)
    if kind is not LogKind.SMTP_RECEIVE:
        return False
    if event == "<":
        quits = data[:4].isascii() and data[:4].lower() == "quit"
        return quits and _at_most(values[3], _QUIT_SEQUENCES)
    any_recipient = event == "*" and _GRANTS_ANY_RECIPIENT.match(data) is not None
    return any_recipient and _at_most(values[3], _ANY_SEQUENCES)


def _unroutine(text: bytes, at: int) -> bool:
    """The ``to connect`` at ``at`` is not the end of ``attempting to connect``."""
    return text[max(0, at - len(_ROUTINE_HEAD)) : at] != _ROUTINE_HEAD


def _marked(raw: bytes) -> bool:
    """Criterion A on the bytes of one row."""
    if any(m in raw for m in MARKERS if m != _TO_CONNECT):
        return True
    at = raw.find(_TO_CONNECT)
    while at >= 0 and not _unroutine(raw, at):
        at = raw.find(_TO_CONNECT, at + 1)
    return at >= 0


def _fit(parts: list[str], wanted: int, terminated: bool) -> Values:
    """A row's values as LogFileReader makes them: surplus joined into the last field,
    short rows padded; None for a last line cut short (no line end)."""
    size = len(parts)
    if not wanted or size == wanted:
        return parts
    if size > wanted:
        parts[wanted - 1 :] = [",".join(parts[wanted - 1 :])]
        return parts
    return parts + [""] * (wanted - size) if terminated else None


def _split(line: bytes, terminated: bool) -> Values:
    text = line.decode("utf-8", "replace")
    return _fit(split_quoted(text) if '"' in text else text.split(","), _FIELDS, terminated)


def _session(kind: LogKind, rows: list[ProtocolRow]) -> SmtpSession:
    first, complete = rows[0].values, any(r.values[6] == "-" for r in rows)
    return SmtpSession(kind, first[1], first[2], rows, complete=complete)


def _order(fields: tuple[str, ...]) -> list[int] | None:
    if fields == PROTOCOL_LOG_FIELDS:
        return None
    index = {name: i for i, name in enumerate(fields or PROTOCOL_LOG_FIELDS)}
    return [index.get(name, -1) for name in PROTOCOL_LOG_FIELDS]


def _records(data: bytes) -> Iterator[tuple[int, int, list[str], bytes]]:
    """(offset, line number, canonical values, raw bytes) of every row, read as
    LogFileReader reads (``#Fields`` anywhere, quoted values across lines, short and
    long rows, a last row cut short)."""
    lines = data.split(b"\n")
    newline_at_end = lines[-1] == b""
    if newline_at_end:
        lines.pop()
    count, fields, order = len(lines), tuple[str, ...](), _order(())
    offset = i = 0
    while i < count:
        raw, start, number = lines[i], offset, i + 1
        offset, i = offset + len(raw) + 1, i + 1
        line = (raw.removeprefix(_BOM) if number == 1 else raw).rstrip(b"\r\n")
        text = line.decode("utf-8", "replace")
        if not text or text[0] == "#":
            fields = LogHeader(fields=fields).with_line(text).fields if text else fields
            order = _order(fields)
            continue
        terminated, raws = i < count or newline_at_end, [line]
        if text.count('"') % 2:  # a quoted value runs on: _continue_record()
            texts, quotes, size = [text], text.count('"'), len(text)
            while True:
                if i >= count:
                    terminated = False
                    break
                raws.append(lines[i].rstrip(b"\r\n"))
                texts.append(raws[-1].decode("utf-8", "replace"))
                offset, i = offset + len(lines[i]) + 1, i + 1
                quotes, size = quotes + texts[-1].count('"'), size + len(texts[-1])
                if quotes % 2 == 0 or len(texts) >= MAX_RECORD_LINES or size >= MAX_RECORD_CHARS:
                    terminated = i < count or newline_at_end
                    break
            text = "\n".join(texts)
        parts = split_quoted(text) if '"' in text else text.split(",")
        values = _fit(parts, len(fields), terminated)
        if values is None:
            continue
        if order is not None:
            values = [values[j] if 0 <= j < len(values) else "" for j in order]
        yield start, number, values, b"\n".join(raws)


def select_sessions_reference(data: Data, label: str, kind: LogKind) -> FileScan:
    """:func:`select_sessions` by parsing every row (the oracle of the tests, and the
    path for files the fast one does not model)."""
    data = data if isinstance(data, bytes) else data[:]
    by_id: dict[str, list[ProtocolRow]] = {}
    chosen: set[str] = set()
    samples: list[str] = []
    started, size = 0, len(data)
    lines = data.removeprefix(_BOM).split(b"\n")
    rows = sum(not line.startswith(b"#") for line in lines) - (lines[-1] == b"")
    for start, number, values, raw in _records(data):
        sid = values[2]
        by_id.setdefault(sid, []).append(ProtocolRow(values, label, number, kind))
        started += values[6] == "+"
        if values[3] == "0" and len(samples) < SAMPLES and sid not in samples:
            samples.append(sid)
        if start < EDGE or start >= size - EDGE or _marked(raw) or _structural(values, kind):
            chosen.add(sid)
    chosen.update(samples)
    sessions = [_session(kind, r) for sid, r in by_id.items() if sid in chosen]
    return FileScan(sessions, rows, started, size)


class _Unmodelled(Exception):
    """The file has something the fast path does not model: use the reference."""


def select_sessions(data: Data, label: str, kind: LogKind) -> FileScan:
    """The sessions of one protocol log file that the rules need (see the module doc).

    ``data`` is the whole file, as bytes or a map; ``label`` becomes each row's ``path``.
    """
    if not hitscan.AVAILABLE and not isinstance(data, bytes):
        data = data[:]  # the bytes.find path counts and translates whole buffers
    try:
        return _Scan(data, label, kind).run()
    except _Unmodelled:
        return select_sessions_reference(data, label, kind)


def _dirty(reduced: bytes, offsets: list[int], needle: bytes) -> list[int]:
    """The blocks (starting at ``offsets`` in ``reduced``) that hold ``needle``."""
    found: list[int] = []
    hit = reduced.find(needle)
    while hit >= 0:
        found.append(index := bisect_right(offsets, hit) - 1)
        hit = reduced.find(needle, offsets[index + 1]) if index + 1 < len(offsets) else -1
    return found


class _Scan:
    def __init__(self, data: Data, label: str, kind: LogKind) -> None:
        self.data, self.size, self.label, self.kind = data, len(data), label, kind
        self._octets: npt.NDArray[np.uint8] | None = None
        # Lines parsed, by offset: (values, or None for a # or empty line; end of line).
        self.parsed: dict[int, tuple[Values, int]] = {}
        # Selected session-ids, with the offset of their first known row.
        self.chosen: dict[str, int] = {}
        # Spans [start, stop) whose lines are all parsed (the edges), their rows by id.
        self.regions: list[tuple[int, int]] = []
        self.region_rows: dict[str, list[int]] = {}
        self.numbers: dict[int, int] = {}  # line numbers of the lines of the regions
        self.block_starts: list[int] = []
        self.block_lines: list[int] = []  # lines before each block, in the body
        self.body = self.lines = self.mid_headers = self.header_lines = 0
        last = data.rfind(b"\n") + 1  # where the last line starts if it has no line end
        self.last = last if last < self.size else self.size

    def run(self) -> FileScan:
        self.header()
        if hitscan.AVAILABLE:
            started = self.hits()  # checks the quotes too
        else:
            self.check_quotes()
            self.blocks()
            started = self.connects()
            if self.kind is LogKind.SMTP_SEND:
                self.short_sends()
        self.edges()
        self.samples()
        sessions = self.gather()
        return FileScan(sessions, self.lines - self.mid_headers, started, self.size)

    def hits(self) -> int:
        """Criteria A to C in one Hyperscan pass (:mod:`.hitscan`); each row it proposes
        is judged by the same tests as the reference's.  Returns the ``+`` rows."""
        data, size, body = self.data, self.size, self.body
        found = hitscan.scan(data, body, self.kind)
        if found.odd_quotes:
            raise _Unmodelled("a quoted value across lines")
        # Line counts by blocks, once: a line number is then a count within its block.
        starts, lines, at, total = self.block_starts, self.block_lines, body, 0
        while at < size:
            end = data.find(b"\n", at + LINE_BLOCK)
            end = size if end < 0 else end + 1
            starts.append(at)
            lines.append(total)
            total += self.newlines(at, end)
            at = end
        self.lines = total + (size > body and data[-1] != _NL)
        seen: set[int] = set()
        for end in found.ends:
            start = self.line_start(end - 1)
            if start in seen:
                continue
            seen.add(start)
            values, stop = self.row(start)
            if values is not None and (_marked(data[start:stop]) or _structural(values, self.kind)):
                self.choose(start)
        return found.connects

    def read(self) -> bytes:
        """The file as bytes: the ``bytes.find`` path has them (:func:`select_sessions`)."""
        if not isinstance(self.data, bytes):
            raise TypeError("the bytes.find path needs the file's bytes, not a map")
        return self.data

    def line_start(self, at: int) -> int:
        return self.data.rfind(b"\n", 0, at) + 1

    def newlines(self, start: int, end: int) -> int:
        """Line ends in ``data[start:end]``: NumPy counts four times as fast as
        ``bytes.count``, and reads a map without copying it."""
        if end - start < _SMALL:
            return self.data[start:end].count(b"\n")
        # Imported here, not at the top: when workers scan, the parent never needs it
        # (it is a tenth of a second of the start-up, before the workers can begin).
        import numpy

        if self._octets is None:
            self._octets = numpy.frombuffer(self.data, numpy.uint8)
        return int(numpy.count_nonzero(self._octets[start:end] == _NL))

    def row(self, start: int) -> tuple[Values, int]:
        """(values, end of line) of the line at ``start``."""
        known = self.parsed.get(start)
        if known is None:
            end = self.data.find(b"\n", start)
            end = self.size if end < 0 else end
            known = self.parsed[start] = self.values(self.data[start:end], end)
        return known

    def values(self, raw: bytes, end: int) -> tuple[Values, int]:
        line = raw.rstrip(b"\r")
        return (None if not line or line[0] == _HASH else _split(line, end < self.size)), end

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

    def header(self) -> None:
        """Leading ``#`` lines, and ``#`` lines further on (memchr speed): every
        ``#Fields`` line must be the 2010 one."""
        data, size = self.data, self.size
        at = len(_BOM) if data[: len(_BOM)] == _BOM else 0
        fields: tuple[str, ...] = ()
        while at < size and data[at] == _HASH:
            end = data.find(b"\n", at)
            end = size if end < 0 else end
            fields = self.header_line(data[at:end], fields)
            at = end + 1
        if fields != PROTOCOL_LOG_FIELDS and at < size:
            raise _Unmodelled("no 2010 #Fields line before the first row")
        self.body = min(at, size)
        self.header_lines = self.newlines(0, self.body)
        hit = data.find(b"#", self.body)
        while hit >= 0:
            if data[hit - 1] == _NL:
                end = data.find(b"\n", hit)
                end = size if end < 0 else end
                self.header_line(data[hit:end], PROTOCOL_LOG_FIELDS)
                self.mid_headers, hit = self.mid_headers + 1, end
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

    def blocks(self) -> None:
        """Reduce the body block by block (counting lines), search the joined reduced
        copy, and search exactly the blocks where it has hits."""
        data, size = self.read(), self.size
        find = data.find
        starts, lines, parts, offsets = self.block_starts, self.block_lines, [], [0]
        start, total = self.body, 0
        while start < size:
            end = find(b"\n", start + CHUNK)
            end = size if end < 0 else end + 1
            part = data[start:end].translate(_TABLE, _DELETE)
            starts.append(start)
            lines.append(total)
            offsets.append(offsets[-1] + len(part))
            total += part.count(b"\n")
            parts.append(part)
            start = end
        self.lines = total + (size > self.body and data[-1] != _NL)
        reduced, ends, bounds = b"".join(parts), offsets[1:], [*starts, size]
        del parts, offsets[-1]
        for needle, markers in _GROUPS:
            for i in _dirty(reduced, offsets, needle):
                for marker in markers:
                    self.markers(marker, bounds[i], bounds[i + 1])
        for i in _dirty(reduced, offsets, _TO_CONNECT_PART):
            parts_here = reduced.count(_TO_CONNECT_PART, offsets[i], ends[i])
            if parts_here > data.count(ROUTINE, bounds[i], bounds[i + 1]):
                self.markers(_TO_CONNECT, bounds[i], bounds[i + 1], routine=True)
        if self.kind is not LogKind.SMTP_RECEIVE:
            return
        dirty = _dirty(reduced, offsets, _QUIT_REDUCED)
        quits = (b",<,QUIT", 0, _QUIT_SEQUENCES)
        upper = [self.structural(data, *quits, *bounds[i : i + 2]) for i in dirty]
        if dirty and reduced.count(_QUIT_REDUCED) > sum(upper):  # quit, "QUIT, ...
            for i, found in zip(dirty, upper, strict=True):
                if reduced.count(_QUIT_REDUCED, offsets[i], ends[i]) > found:
                    lowered = data[bounds[i] : bounds[i + 1]].lower()
                    for needle in _QUIT_NEEDLES:
                        self.structural(lowered, needle, bounds[i], _QUIT_SEQUENCES)
        for i in _dirty(reduced, offsets, _ANY_RECIPIENT_REDUCED):
            self.structural(data, _ANY_RECIPIENT_BYTES, 0, _ANY_SEQUENCES, *bounds[i : i + 2])

    def markers(self, marker: bytes, start: int, end: int, routine: bool = False) -> None:
        data = self.read()
        find = data.find
        hit = find(marker, start, end)
        while hit >= 0:
            if routine and not _unroutine(data, hit):
                hit = find(marker, hit + 1, end)
                continue
            self.choose(self.line_start(hit))
            stop = find(b"\n", hit, end)  # one hit a line is enough
            hit = -1 if stop < 0 else find(marker, stop, end)

    def structural(self, text: bytes, needle: bytes, base: int, seqs: Seqs, *span: int) -> int:
        """Rows holding ``needle`` in ``text`` (``data``, or a block of it lowered that
        starts at ``base``) judged by criterion B; the number of hits."""
        data, hits = self.data, 0
        hit = text.find(needle, *span)
        while hit >= 0:
            hits += 1
            line = self.line_start(base + hit)
            head = data[line : base + hit]
            # Most hits are late in their session: read the sequence-number in place.
            if b'"' in head or head.count(b",") < 5 or head.split(b",", 4)[3] in seqs:
                self.choose_if(line)
            hit = text.find(needle, hit + 1, *span[1:])
        return hits

    def connects(self) -> int:
        """Rows with event ``+`` (``+`` is rare: memchr speed)."""
        data = self.read()
        find, count = data.find, data.count
        started = 0
        hit = find(b"+", self.body)
        while hit >= 0:
            if data[hit - 1] == _COMMA and data[hit + 1 : hit + 2] in _FIELD_ENDS:
                start = self.line_start(hit)
                if find(b'"', start, hit) >= 0:
                    values = self.row(start)[0]
                    started += values is not None and values[6] == "+"
                elif count(b",", start, hit) == 6 and data[start] != _HASH:
                    started += start != self.last or self.row(start)[0] is not None
            hit = find(b"+", hit + 1)
        return started

    def short_sends(self) -> None:
        """Criterion C: ``-`` rows at sequence-number <= 3."""
        data, find = self.data, self.data.find
        hit = find(b",-", self.body)
        while hit >= 0:
            if data[hit + 2 : hit + 3] in _FIELD_ENDS:
                start = self.line_start(hit)
                head = data[start:hit]
                if b'"' in head or (
                    head.count(b",") == 5 and head.split(b",", 4)[3] in _SHORT_SEQUENCES
                ):
                    self.choose_if(start)
            hit = find(b",-", hit + 2)

    def region(self, start: int, stop: int) -> None:
        """Parse every line starting in [start, stop) (``start`` a line start)."""
        limit = self.data.find(b"\n", stop - 1)
        limit = self.size if limit < 0 else limit
        self.regions.append((start, stop))
        by_id, parsed, numbers, values_of = self.region_rows, self.parsed, self.numbers, self.values
        number = self.line_number(start)
        for raw in self.data[start:limit].split(b"\n"):
            end = start + len(raw)
            numbers[start] = number
            values = (parsed.get(start) or parsed.setdefault(start, values_of(raw, end)))[0]
            if values is not None:
                by_id.setdefault(values[2], []).append(start)
            start, number = end + 1, number + 1
            if start >= stop:
                break

    def edges(self) -> None:
        """Criterion D: every row starting in the first or last EDGE bytes."""
        data, size, body = self.data, self.size, self.body
        head = max(body, min(EDGE, size))
        if body < head:
            self.region(body, head)
        tail = max(size - EDGE, head)
        tail = data.find(b"\n", tail - 1) + 1 or size if tail > body else body
        if tail < size:
            self.region(tail, size)
        for sid, starts in self.region_rows.items():
            if sid not in self.chosen or starts[0] < self.chosen[sid]:
                self.chosen[sid] = starts[0]

    def samples(self) -> None:
        """Criterion E: the first sessions whose sequence-number-0 row is here; past
        the first EDGE bytes only rows holding ``,0,`` (or ending ``,0``) can be."""
        seen: list[str] = []
        data, size, start = self.data, self.size, self.body
        while start < size and len(seen) < SAMPLES:
            if start < EDGE:
                candidates, end = [start], self.row(start)[1] + 1
            else:
                end = data.find(b"\n", start + EDGE)
                end = size if end < 0 else end + 1
                found = {size - 2} if end == size and data[-2:] == b",0" else set()
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

    def gather(self) -> list[SmtpSession]:
        found: list[list[tuple[int, list[str]]]] = []
        for sid, anchor in self.chosen.items():
            if not sid:
                raise _Unmodelled("an empty session-id")
            known = [anchor, *self.region_rows.get(sid, ())]
            rows = {s: v for s in known if (v := self.row(s)[0]) is not None}
            found.append(self.walk(sid, rows))
        found.sort(key=lambda rows: rows[0][0])
        numbers = self.line_numbers(sorted(start for rows in found for start, _v in rows))
        kind, label = self.kind, self.label
        return [
            _session(kind, [ProtocolRow(v, label, numbers[s], kind) for s, v in rows])
            for rows in found
        ]

    def walk(self, sid: str, rows: dict[int, list[str]]) -> list[tuple[int, list[str]]]:
        """All rows of a session from some of them: back to its sequence-number-0 row,
        forward to its ``-`` row, WINDOW bytes at most (skipping the parsed regions)."""
        data, needle, first = self.data, b"," + sid.encode(), min(rows)
        if data.find(needle, first, self.row(first)[1]) < 0:
            raise _Unmodelled("a session-id that is not a plain field")
        region = next(((a, b) for a, b in self.regions if a <= first < b), None)
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

    def line_number(self, start: int, previous: int = -1, number: int = 0) -> int:
        """The line number of the line at ``start``: from the line count of its block,
        or from ``previous`` (a line start in the same block, at line ``number``)."""
        index = bisect_right(self.block_starts, start) - 1
        base = self.block_starts[index] if index >= 0 else self.body
        if previous >= base:
            return number + self.newlines(previous, start)
        lines = self.block_lines[index] if index >= 0 else 0
        return self.header_lines + lines + self.newlines(base, start) + 1

    def line_numbers(self, starts: list[int]) -> dict[int, int]:
        """Line numbers of sorted line starts (those of the regions are known)."""
        known, numbers, previous, number = self.numbers, dict[int, int](), -1, 0
        parsed, after = self.parsed, -1  # after: where the line after ``previous`` starts
        for start in starts:
            if start == after:
                number += 1  # the next line (rows of a session are often adjacent)
            else:
                number = known.get(start) or self.line_number(start, previous, number)
            numbers[previous := start] = number
            line = parsed.get(start)
            after = -1 if line is None else line[1] + 1
        return numbers
