"""Finding Exchange transport logs and telling what each file is.

Exchange 2007 (``#Version: 8.x``), 2010 (``14.x``) and 2013+ (``15.x``, hourly
names, ``#Log-Type``) all write the same W3C-style header; the kind of a file
comes from its ``#Log-type`` line, else from its name prefix and folder, and
its columns from its ``#Fields:`` line.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sitemail.diagnose.logs.tracking_export import is_tracking_export
from sitemail.mailflow.log_files import LogHeader, parse_log_file_name, read_header
from sitemail.mailflow.protocol_log import RECEIVE_LOG_TYPE, SEND_LOG_TYPE
from sitemail.mailflow.tracking_log import TRACKING_LOG_TYPE


class LogKind(StrEnum):
    SMTP_RECEIVE = "SmtpReceive"
    SMTP_SEND = "SmtpSend"
    MESSAGE_TRACKING = "MessageTracking"
    UNKNOWN = "Unknown"


PROTOCOL_KINDS = frozenset({LogKind.SMTP_RECEIVE, LogKind.SMTP_SEND})

_BY_LOG_TYPE = {
    RECEIVE_LOG_TYPE.casefold(): LogKind.SMTP_RECEIVE,
    SEND_LOG_TYPE.casefold(): LogKind.SMTP_SEND,
    TRACKING_LOG_TYPE.casefold(): LogKind.MESSAGE_TRACKING,
}


def exchange_release(version: str) -> str | None:
    """``#Version`` to a product: 8.x 2007, 14.x 2010, 15.00 2013, 15.01 2016,
    15.02 2019; None when unknown."""
    parts = version.strip().split(".")
    try:
        major = int(parts[0])
        minor = int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        return None
    if major == 8:
        return "2007"
    if major == 14:
        return "2010"
    if major == 15:
        return {0: "2013", 1: "2016", 2: "2019"}.get(minor, "15.x")
    return None


def detect_kind(header: LogHeader, path: Path) -> LogKind:
    """The kind of a log from its header, falling back to its name and folder."""
    by_type = _BY_LOG_TYPE.get(header.log_type.strip().casefold())
    if by_type is not None:
        return by_type
    if header.log_type:
        return LogKind.UNKNOWN  # another Exchange log (routing, POP3, agents...)
    name = parse_log_file_name(path.name)
    prefix = name.prefix if name else ""
    folder = path.parent.name.casefold()
    fields = set(header.fields)
    if prefix.startswith("MSGTRK") or "event-id" in fields:
        return LogKind.MESSAGE_TRACKING
    if prefix == "RECV" or (folder == "smtpreceive" and "session-id" in fields):
        return LogKind.SMTP_RECEIVE
    if prefix == "SEND" or (folder == "smtpsend" and "session-id" in fields):
        return LogKind.SMTP_SEND
    return LogKind.UNKNOWN


@dataclass(frozen=True, slots=True)
class ExchangeLogFile:
    path: Path
    header: LogHeader
    kind: LogKind
    export: bool = False
    """Get-MessageTrackingLog's output saved with Export-Csv, not a log file
    (:mod:`.tracking_export`)."""

    @property
    def release(self) -> str | None:
        return exchange_release(self.header.version)


def inspect_log_file(path: Path | str) -> ExchangeLogFile:
    """Read a file's header and say what it is."""
    path = Path(path)
    if is_tracking_export(path):
        return ExchangeLogFile(path, LogHeader(), LogKind.MESSAGE_TRACKING, export=True)
    header = read_header(path)
    return ExchangeLogFile(path, header, detect_kind(header, path))


def _sort_key(path: Path) -> tuple[int, str, str, int, str]:
    # Chronological within a folder, so that a session that crosses a file
    # rotation is read in order; names that are not Exchange's sort last.
    name = parse_log_file_name(path.name)
    if name is None:
        return (1, "", "", 0, path.name)
    return (0, name.period_start.isoformat(), name.prefix, name.number, path.name)


def find_log_files(
    paths: Path | str | Iterable[Path | str],
    kinds: Collection[LogKind] | None = None,
) -> Iterator[ExchangeLogFile]:
    """The log files at ``paths`` (files, or folders walked recursively).

    A file named explicitly is always inspected; inside folders only
    ``*.log`` files are, and ``*.csv`` ones (Export-Csv of Get-MessageTrackingLog).
    Files of other kinds than ``kinds`` (and of unknown kind, unless asked for)
    are left out.
    """
    wanted = frozenset(kinds) if kinds is not None else None
    for root in [Path(paths)] if isinstance(paths, str | os.PathLike) else map(Path, paths):
        candidates = _walk(root) if root.is_dir() else [root]
        for path in candidates:
            info = inspect_log_file(path)
            if wanted is None and info.kind is LogKind.UNKNOWN:
                continue
            if wanted is None or info.kind in wanted:
                yield info


def _walk(folder: Path) -> Iterator[Path]:
    for directory, subdirs, names in os.walk(folder):
        subdirs.sort()
        logs = [Path(directory, n) for n in names if n.lower().endswith((".log", ".csv"))]
        yield from sorted(logs, key=_sort_key)
