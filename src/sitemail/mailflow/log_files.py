"""Exchange-format CSV log files: naming, header, quoting, rotation, reading.

This is the one log writer of sitemail (DESIGN.md, "One way to do each
thing").  The SMTP protocol logs and the message tracking log are both
W3C-style files (exchange-2010.md §4.2, §4.3, §6.3)::

    #Software: Microsoft Exchange Server
    #Version: 14.0.0.0
    #Log-type: SMTP Receive Protocol Log
    #Date: 2019-01-25T00:03:58.478Z
    #Fields: date-time,connector-id,...
    <CSV rows, CRLF line ends>

File names are ``<PREFIX>yyyymmdd-N.LOG`` (UTC date, N from 1 each day, +1
when a file reaches MaxFileSize).  Old files are deleted circularly when they
pass MaxAge or the folder passes MaxDirectorySize.

Several processes may append to one folder, as all the transport components
of an Exchange server share one set of files per log.  Every write takes an
advisory ``flock`` on the folder itself (no extra lock file appears among the
logs), decides under the lock which file is current -- possibly one that
another process just opened -- and appends with ``O_APPEND``.  A restarted
process therefore continues in the newest file of the day (or the next
number), and never truncates or overwrites an existing file.

The reading half (:class:`LogFileReader`) lives here too, so that the format
is defined in one place; the troubleshooter's folder walking and typed rows
are in ``sitemail.diagnose.logs``.
"""

from __future__ import annotations

import csv
import fcntl
import itertools
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType

from sitemail.clock import SYSTEM_CLOCK, Clock

MB = 1024 * 1024

SOFTWARE = "Microsoft Exchange Server"
VERSION_2010 = "14.0.0.0"
CRLF = "\r\n"


# --------------------------------------------------------------------------
# Values, rows and headers
# --------------------------------------------------------------------------


def format_timestamp(moment: datetime) -> str:
    """``2019-01-25T00:03:58.478Z``: UTC, milliseconds, ``Z`` (spec §4.3)."""
    if moment.tzinfo is None:
        raise ValueError(
            f"log timestamp {moment.isoformat()} has no time zone; "
            "expected an aware datetime from sitemail.clock"
        )
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # %-formatting of the fields: a third of strftime's time, and every row of every log
    # (a tracking row per accepted message, a protocol log row per line) starts with it.
    return "%d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 - the year as strftime has it
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond // 1000,
    )


def parse_timestamp(text: str) -> datetime:
    """Inverse of :func:`format_timestamp`; also takes 7-digit fractions."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1]
    if "." in value:
        # Python 3.11 accepts at most 6 fractional digits; .NET writes up to 7.
        head, _, frac = value.partition(".")
        value = f"{head}.{frac[:6]}"
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def quote_value(value: str) -> str:
    """CSV-quote a value when it holds a comma, a quote or a line break."""
    if _NEEDS_QUOTES.search(value) is None:
        return value
    return '"' + value.replace('"', '""') + '"'


def format_row(values: Sequence[str]) -> str:
    """One CSV row with its CRLF line end."""
    return ",".join(map(quote_value, values)) + CRLF


def split_row(line: str, field_count: int) -> list[str]:
    """Split one row (without its line end) into exactly ``field_count`` values.

    Real Exchange files write the last field (``context``) unquoted even when
    it holds commas, so a row that splits into more values than the header
    has fields gets the surplus joined back into the last field.  Short rows
    are padded with empty strings.  ``field_count`` 0 means "as many as
    there are".
    """
    # Fast path: most rows hold no quote at all, and str.split is C speed.
    parts = line.split(",") if '"' not in line else split_quoted(line)
    count = len(parts)
    if field_count <= 0 or count == field_count:
        return parts
    if count > field_count:
        tail = ",".join(parts[field_count - 1 :])
        del parts[field_count - 1 :]
        parts.append(tail)
        return parts
    parts.extend([""] * (field_count - count))
    return parts


def split_quoted(line: str) -> list[str]:
    """Split a row that holds quotes, with the csv module's C parser.

    csv refuses a line break outside quotes (a lone CR in a damaged file);
    such rows take the slow path instead of stopping the whole read.
    """
    try:
        return next(csv.reader((line,)), None) or [""]
    except csv.Error:
        return _split_quoted_slowly(line)


def _split_quoted_slowly(line: str) -> list[str]:
    fields: list[str] = []
    value: list[str] = []
    quoted = False
    i = 0
    while i < len(line):
        char = line[i]
        if quoted:
            if char != '"':
                value.append(char)
            elif line[i + 1 : i + 2] == '"':
                value.append('"')
                i += 1
            else:
                quoted = False
        elif char == ",":
            fields.append("".join(value))
            value = []
        elif char == '"' and not value:
            quoted = True
        else:
            value.append(char)
        i += 1
    fields.append("".join(value))
    return fields


@dataclass(frozen=True, slots=True)
class LogHeader:
    """The ``#`` lines of a log file.  Missing lines are empty strings."""

    software: str = ""
    version: str = ""
    log_type: str = ""
    date: str = ""
    fields: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """The header as written by Exchange 2010 (``#Log-type`` lower-case t)."""
        return [
            f"#Software: {self.software}",
            f"#Version: {self.version}",
            f"#Log-type: {self.log_type}",
            f"#Date: {self.date}",
            "#Fields: " + ",".join(self.fields),
        ]

    def text(self) -> str:
        return CRLF.join(self.lines()) + CRLF

    def with_line(self, line: str) -> LogHeader:
        """This header updated by one ``#Key: value`` line (keys case-blind:
        2013+ writes ``#Log-Type``)."""
        key, sep, value = line[1:].partition(":")
        if not sep:
            return self
        key = key.strip().lower()
        value = value.strip()
        if key == "fields":
            names = tuple(name.strip() for name in value.split(",")) if value else ()
            return LogHeader(self.software, self.version, self.log_type, self.date, names)
        if key == "software":
            return LogHeader(value, self.version, self.log_type, self.date, self.fields)
        if key == "version":
            return LogHeader(self.software, value, self.log_type, self.date, self.fields)
        if key == "log-type":
            return LogHeader(self.software, self.version, value, self.date, self.fields)
        if key == "date":
            return LogHeader(self.software, self.version, self.log_type, value, self.fields)
        return self


# --------------------------------------------------------------------------
# File names
# --------------------------------------------------------------------------

_FILE_NAME = re.compile(r"^([A-Za-z]+?)(\d{8})(\d{2})?-(\d+)\.log$", re.IGNORECASE)


@dataclass(frozen=True, slots=True, order=True)
class LogFileName:
    """A parsed ``RECV20190221-2.LOG`` / ``RECV2023020100-1.LOG`` name.

    Ordering is chronological within one prefix: period, then number.
    """

    prefix: str
    period_start: datetime
    number: int
    hourly: bool = field(compare=False)

    @property
    def period_end(self) -> datetime:
        return self.period_start + (timedelta(hours=1) if self.hourly else timedelta(days=1))


def parse_log_file_name(name: str) -> LogFileName | None:
    """Parse an Exchange log file name; None for any other name."""
    match = _FILE_NAME.match(name)
    if match is None:
        return None
    prefix, day, hour, number = match.groups()
    try:
        start = datetime.strptime(day + (hour or "00"), "%Y%m%d%H").replace(tzinfo=UTC)
    except ValueError:
        return None
    return LogFileName(prefix.upper(), start, int(number), hour is not None)


# --------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogLimits:
    """The per-server Set-TransportServer limits of one log (spec §4.2, §6.3).

    ``None`` means unlimited, as Exchange's ``unlimited`` value.
    """

    max_file_size: int = 10 * MB
    max_directory_size: int | None = 250 * MB
    max_age: timedelta | None = timedelta(days=30)

    def __post_init__(self) -> None:
        if self.max_file_size <= 0:
            raise ValueError(f"MaxFileSize {self.max_file_size} must be positive")
        if self.max_directory_size is not None and self.max_directory_size <= 0:
            raise ValueError(f"MaxDirectorySize {self.max_directory_size} must be positive")
        if self.max_age is not None and self.max_age <= timedelta(0):
            raise ValueError(f"MaxAge {self.max_age} must be positive")


@dataclass(frozen=True, slots=True)
class LogFileSettings:
    """What one set of log files looks like."""

    prefix: str
    log_type: str
    fields: tuple[str, ...]
    limits: LogLimits = LogLimits()
    # Upper-case ".LOG" is what real 2007 and 2013+ files show; no 2010 file
    # name was found verbatim (spec §4.2, confidence medium), hence a setting.
    extension: str = ".LOG"
    # 2013+ start a file per hour (RECV2023020100-1.LOG); 2010 per day.
    hourly: bool = False
    software: str = SOFTWARE
    version: str = VERSION_2010
    # Real files are reported to begin with a UTF-8 byte order mark (a public
    # parser's BOM test uses an Exchange tracking log); unverified, so off by
    # default and the header is byte-for-byte the spec's.
    byte_order_mark: bool = False
    # Advisory flock per write so that several processes can share a folder.
    lock: bool = True

    def __post_init__(self) -> None:
        if not self.prefix.isalpha():
            raise ValueError(f"log file prefix {self.prefix!r} must be letters only, like RECV")
        if not self.fields:
            raise ValueError("a log needs at least one field")

    def period_start(self, moment: datetime) -> datetime:
        moment = moment.astimezone(UTC)
        if self.hourly:
            return moment.replace(minute=0, second=0, microsecond=0)
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)

    def file_name(self, period_start: datetime, number: int) -> str:
        stamp = f"{period_start:%Y%m%d%H}" if self.hourly else f"{period_start:%Y%m%d}"
        return f"{self.prefix}{stamp}-{number}{self.extension}"

    def header(self, created: datetime) -> LogHeader:
        return LogHeader(
            self.software, self.version, self.log_type, format_timestamp(created), self.fields
        )

    def header_bytes(self, created: datetime) -> bytes:
        data = self.header(created).text().encode("utf-8")
        return b"\xef\xbb\xbf" + data if self.byte_order_mark else data

    def owns(self, name: LogFileName) -> bool:
        return name.prefix == self.prefix.upper() and name.hourly == self.hourly


# --------------------------------------------------------------------------
# The writer
# --------------------------------------------------------------------------


@dataclass(slots=True)
class _Current:
    fd: int
    path: Path
    name: LogFileName
    header_size: int
    size: int
    period_end: datetime


class LogWriter:
    """Appends CSV rows to a rotating set of log files in one folder.

    Rows are flushed to the OS per call (diagnostic logs: no fsync).  Safe
    for threads and for several processes sharing the folder.
    """

    def __init__(
        self, directory: Path | str, settings: LogFileSettings, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.directory = Path(directory)
        self.settings = settings
        self.clock = clock
        self._mutex = threading.Lock()
        self._current: _Current | None = None
        self._dir_fd: int | None = None

    # -- public ------------------------------------------------------------

    @property
    def current_path(self) -> Path | None:
        """The file the last row went to."""
        current = self._current
        return current.path if current else None

    def set_limits(self, limits: LogLimits) -> None:
        """Set-TransportServer changes the limits of a running log (no restart)."""
        with self._mutex:
            self.settings = replace(self.settings, limits=limits)

    def write_row(self, values: Sequence[str]) -> None:
        self._write(format_row(values).encode("utf-8"))

    def write_rows(self, rows: Iterable[Sequence[str]]) -> None:
        """Several rows in one append, so they stay together in one file."""
        data = "".join(map(format_row, rows)).encode("utf-8")
        if data:
            self._write(data)

    def close(self) -> None:
        with self._mutex:
            if self._current is not None:
                os.close(self._current.fd)
                self._current = None
            if self._dir_fd is not None:
                os.close(self._dir_fd)
                self._dir_fd = None

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -----------------------------------------------------------

    def _write(self, data: bytes) -> None:
        # Syscalls are the cost of a row here: flock, fstat, write, unlock
        # when shared; write alone when not.
        with self._mutex:
            now = self.clock.now()
            dir_fd = self._dir_fd if self._dir_fd is not None else self._open_dir()
            locked = self.settings.lock
            if locked:
                fcntl.flock(dir_fd, fcntl.LOCK_EX)
            try:
                current = self._current
                if current is None or self._must_leave(current, now, len(data)):
                    current = self._select_file(now, self.settings.period_start(now), len(data))
                written = os.write(current.fd, data)
                if written < len(data):
                    _write_all(current.fd, data[written:])
                current.size += len(data)
            finally:
                if locked:
                    fcntl.flock(dir_fd, fcntl.LOCK_UN)

    def _open_dir(self) -> int:
        if self._dir_fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        return self._dir_fd

    def _must_leave(self, current: _Current, now: datetime, size: int) -> bool:
        if not current.name.period_start <= now < current.period_end:
            return True  # day (or hour) rollover
        if self.settings.lock:
            # Other processes append too: only the file itself knows its size.
            stat = os.fstat(current.fd)
            if stat.st_nlink == 0:
                return True  # deleted under us (circular logging of another process)
            current.size = stat.st_size
        if current.size + size > self.settings.limits.max_file_size:
            return current.size > current.header_size  # a huge row still goes somewhere
        # Processes whose rows differ in length may disagree for a row or two
        # on when a file is full; the one that leaves first starts N+1 and the
        # other joins it on its next full file: no number is ever reused.
        return False

    def _select_file(self, now: datetime, period: datetime, size: int) -> _Current:
        if self._current is not None:
            os.close(self._current.fd)
            self._current = None
        files = self._own_files()
        # The newest file of this period, whoever created it, with the name
        # it has on disk (its extension's case may differ from ours).
        newest = max(((n, p) for n, p in files if n.period_start == period), default=None)
        header_size = len(self.settings.header_bytes(now))
        chosen = self._reopen(newest[1], newest[0], header_size, size) if newest else None
        if chosen is None:
            number = newest[0].number if newest else 0
            chosen = self._create(now, period, number + 1, header_size)
            self._enforce_limits(files, now, chosen.path)
        self._current = chosen
        return chosen

    def _reopen(
        self, path: Path, name: LogFileName, header_size: int, size: int
    ) -> _Current | None:
        """Continue an existing file (restart, or another process's file)."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            return None
        length = os.fstat(fd).st_size
        if length + size > self.settings.limits.max_file_size and length > header_size:
            os.close(fd)
            return None
        # A crash can leave a half-written last row; end it so that our first
        # row starts on a line of its own.
        if length and _last_byte(path, length) != b"\n":
            _write_all(fd, CRLF.encode())
            length += len(CRLF)
        return _Current(fd, path, name, header_size, length, name.period_end)

    def _create(self, now: datetime, period: datetime, number: int, header_size: int) -> _Current:
        while True:
            path = self.directory / self.settings.file_name(period, number)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                number += 1  # only without the lock: someone else took it
                continue
            header = self.settings.header_bytes(now)
            _write_all(fd, header)
            name = LogFileName(self.settings.prefix.upper(), period, number, self.settings.hourly)
            return _Current(fd, path, name, header_size, len(header), name.period_end)

    def _own_files(self) -> list[tuple[LogFileName, Path]]:
        found: list[tuple[LogFileName, Path]] = []
        with os.scandir(self.directory) as entries:
            for entry in entries:
                name = parse_log_file_name(entry.name)
                if name is not None and self.settings.owns(name) and entry.is_file():
                    found.append((name, Path(entry.path)))
        found.sort()
        return found

    def _enforce_limits(
        self, files: list[tuple[LogFileName, Path]], now: datetime, keep: Path
    ) -> None:
        """Circular logging: drop the oldest files past MaxAge or MaxDirectorySize.

        Age is judged from the period in the file name (a file named for a
        day holds only that day's rows), so it follows the project clock
        rather than the file system's mtime.  Only files with this log's
        prefix are counted and deleted.
        """
        limits = self.settings.limits
        survivors: list[tuple[Path, int]] = []
        for name, path in files:
            if path == keep:
                continue
            if limits.max_age is not None and now - name.period_end > limits.max_age:
                _remove(path)
                continue
            try:
                survivors.append((path, path.stat().st_size))
            except FileNotFoundError:
                continue
        if limits.max_directory_size is None:
            return
        total = sum(size for _, size in survivors) + _size(keep)
        for path, size in survivors:  # oldest first
            if total <= limits.max_directory_size:
                break
            _remove(path)
            total -= size


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _last_byte(path: Path, length: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(length - 1)
        return handle.read(1)


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)  # another process may have got there first


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# --------------------------------------------------------------------------
# The reader
# --------------------------------------------------------------------------

# A quoted value may span lines; a stray quote must not make one record
# swallow the rest of a multi-gigabyte file.
MAX_RECORD_LINES = 64
MAX_RECORD_CHARS = 1 * MB


def log_encoding(head: bytes) -> str:
    """The encoding of a log file whose first bytes are ``head`` (4 are enough).

    Exchange writes UTF-8 (with or without a BOM).  A log that went through
    Windows tools on its way to us may be UTF-16: PowerShell 5's ``Out-File``
    and ``>`` write UTF-16LE with a BOM, Notepad's "Unicode" too; without a BOM
    the first field line (``#Software`` or ``#Fields``) still shows it, an ASCII
    character then a NUL.
    """
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"  # the codec reads the BOM and the byte order from it
    if len(head) >= 4 and head[1] == 0 and head[3] == 0 and head[0] and head[2]:
        return "utf-16-le"
    if len(head) >= 4 and head[0] == 0 and head[2] == 0 and head[1] and head[3]:
        return "utf-16-be"
    return "utf-8"


def utf8_log_bytes(data: bytes) -> bytes:
    """A log file's bytes as UTF-8, whatever :func:`log_encoding` says they are."""
    encoding = log_encoding(data[:4])
    if encoding == "utf-8":
        return data
    return data.decode(encoding, errors="replace").encode("utf-8")


class LogFileReader:
    """Streams the rows of one log file, in bounded memory.

    Iterating yields ``(line_number, values)`` with exactly
    ``len(header.fields)`` values per row (see :func:`split_row`).  The
    header follows the file: every ``#Fields:`` line changes the columns of
    the rows after it, so ``header`` is current for the row just yielded.
    Handles a UTF-8 BOM, UTF-16 (:func:`log_encoding`), CRLF or LF line ends,
    quoted values (also across lines) and a truncated last line: a final line without a line end is
    kept only when it has all its fields, otherwise counted in
    ``truncated_lines``.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.header = LogHeader()
        self.truncated_lines = 0
        with self.path.open("rb") as peek:
            encoding = log_encoding(peek.read(4))
        self._handle = self.path.open("r", encoding=encoding, errors="replace", newline="\n")
        first = self._handle.readline()
        # Raw lines read ahead of the iteration (the first line, for its BOM,
        # and the first row once read_header() has looked at it).
        self._ahead: list[str] = [first.removeprefix("\ufeff")] if first else []
        self._line_number = 0

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> LogFileReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def read_header(self) -> LogHeader:
        """Read the leading ``#`` lines (and no row) and return the header."""
        while True:
            raw = self._ahead.pop() if self._ahead else self._handle.readline()
            if not raw:
                return self.header
            if not raw.startswith("#"):
                self._ahead.append(raw)
                return self.header
            self._line_number += 1
            self.header = self.header.with_line(raw.rstrip("\r\n"))

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        # The hot loop of every log reader: kept flat, no per-row regex, and
        # str.split for the rows without quotes (nearly all of them).
        header = self.header
        count = len(header.fields)
        ahead, self._ahead = self._ahead, []
        numbered = enumerate(itertools.chain(ahead, self._handle), self._line_number + 1)
        for number, raw in numbered:
            line = raw.rstrip("\r\n")
            if not line:
                continue
            if line[0] == "#":
                header = self.header = header.with_line(line)
                count = len(header.fields)
                continue
            if '"' in line:
                if line.count('"') % 2:
                    line, raw = _continue_record(line, numbered)
                parts = split_quoted(line)
            else:
                parts = line.split(",")
            # Inline split_row(): same rules, without a call per row.
            size = len(parts)
            if size != count and count:
                if size > count:
                    parts[count - 1 :] = [",".join(parts[count - 1 :])]
                elif raw[-1:] != "\n":
                    self.truncated_lines += 1  # a last row cut short by a crash
                    continue
                else:
                    parts.extend([""] * (count - size))
            yield number, parts


def _continue_record(first: str, numbered: Iterator[tuple[int, str]]) -> tuple[str, str]:
    """Join the physical lines of a record whose quoted value holds line breaks.

    Returns the record and its last raw line (whose line end tells whether
    the file was cut inside the record).
    """
    parts = [first]
    quotes = first.count('"')
    size = len(first)
    for _number, raw in numbered:
        line = raw.rstrip("\r\n")
        parts.append(line)
        quotes += line.count('"')
        size += len(line)
        if quotes % 2 == 0 or len(parts) >= MAX_RECORD_LINES or size >= MAX_RECORD_CHARS:
            return "\n".join(parts), raw
    return "\n".join(parts), ""


def read_header(path: Path | str) -> LogHeader:
    """The header of a log file, reading only its first lines."""
    with LogFileReader(path) as reader:
        return reader.read_header()
