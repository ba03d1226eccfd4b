"""Rows of SmtpReceive / SmtpSend protocol logs, read lazily."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

from sitemail.diagnose.logs.files import (
    PROTOCOL_KINDS,
    ExchangeLogFile,
    LogKind,
    find_log_files,
)
from sitemail.mailflow.log_files import LogFileReader, parse_timestamp
from sitemail.mailflow.protocol_log import PROTOCOL_LOG_FIELDS


class ProtocolRow:
    """One protocol log row, with where it was read (to cite as evidence).

    ``values`` are in :data:`PROTOCOL_LOG_FIELDS` order whatever the file's
    column order; a field the file lacks is empty.
    """

    __slots__ = ("kind", "line", "path", "values")

    def __init__(self, values: list[str], path: str, line: int, kind: LogKind) -> None:
        self.values = values
        self.path = path
        self.line = line
        self.kind = kind

    @property
    def date_time(self) -> str:
        return self.values[0]

    @property
    def connector_id(self) -> str:
        return self.values[1]

    @property
    def session_id(self) -> str:
        return self.values[2]

    @property
    def sequence_number(self) -> int | None:
        text = self.values[3]
        return int(text) if text.isdigit() else None

    @property
    def local_endpoint(self) -> str:
        return self.values[4]

    @property
    def remote_endpoint(self) -> str:
        return self.values[5]

    @property
    def event(self) -> str:
        return self.values[6]

    @property
    def data(self) -> str:
        return self.values[7]

    @property
    def context(self) -> str:
        return self.values[8]

    @property
    def timestamp(self) -> datetime | None:
        try:
            return parse_timestamp(self.values[0])
        except ValueError:
            return None

    @property
    def location(self) -> str:
        """``path:line``, for a report's evidence."""
        return f"{self.path}:{self.line}"

    def __repr__(self) -> str:
        return f"ProtocolRow({self.location}, {','.join(self.values)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProtocolRow):
            return NotImplemented
        return (self.values, self.path, self.line, self.kind) == (
            other.values,
            other.path,
            other.line,
            other.kind,
        )

    __hash__ = None  # type: ignore[assignment]


def _reorder(fields: Sequence[str]) -> list[int] | None:
    """Column positions of the canonical fields, None when already canonical."""
    if tuple(fields) == PROTOCOL_LOG_FIELDS:
        return None  # the common case: the reader's values are used as they are
    if not fields:
        return list(range(len(PROTOCOL_LOG_FIELDS)))  # no #Fields line: assume 2010
    index = {name: i for i, name in enumerate(fields)}
    return [index.get(name, -1) for name in PROTOCOL_LOG_FIELDS]


def read_protocol_file(log: ExchangeLogFile) -> Iterator[ProtocolRow]:
    """The rows of one protocol log file."""
    path = str(log.path)
    kind = log.kind
    row = ProtocolRow
    with LogFileReader(log.path) as reader:
        header = reader.read_header()
        order = _reorder(header.fields)
        for line, values in reader:
            if reader.header is not header:  # a #Fields line in mid-file
                header = reader.header
                order = _reorder(header.fields)
            if order is not None:
                values = [values[i] if 0 <= i < len(values) else "" for i in order]
            yield row(values, path, line, kind)


def read_protocol_log(
    paths: Path | str | Iterable[Path | str],
    kinds: Collection[LogKind] = PROTOCOL_KINDS,
) -> Iterator[ProtocolRow]:
    """Every protocol log row under ``paths`` (files or folders), lazily.

    Folders are read file by file in name order (chronological for
    Exchange's names); ``kinds`` narrows to receive or send logs.
    """
    wanted = frozenset(kinds) & PROTOCOL_KINDS
    for log in find_log_files(paths, wanted):
        yield from read_protocol_file(log)
