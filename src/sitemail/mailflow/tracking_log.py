"""The message tracking log (exchange-2010.md §6.3): writer, reader, search.

Files ``MSGTRKyyyymmdd-N.LOG`` under ``TransportRoles/Logs/MessageTracking``,
``#Log-type: Message Tracking Log``, the 2010 field list exactly.  The hub
writes one :class:`TrackingEntry` per event (RECEIVE, SEND, DELIVER...);
``Get-MessageTrackingLog`` calls :func:`search_tracking_log`.

The reader follows each file's ``#Fields:`` line, so it also reads the 2007
field list (the 2010 one without its last five fields) and the 2013+ list
(with ``network-message-id``, ``transport-traffic-type``, ``log-id``,
``schema-version``); fields that are not in the 2010 list are kept in
:attr:`TrackingEntry.extra`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.mailflow.log_files import (
    MB,
    VERSION_2010,
    LogFileReader,
    LogFileSettings,
    LogLimits,
    LogWriter,
    format_timestamp,
    parse_log_file_name,
    parse_timestamp,
)

TRACKING_LOG_TYPE = "Message Tracking Log"
TRACKING_PREFIX = "MSGTRK"
TRACKING_LOG_SUBDIR = Path("TransportRoles", "Logs", "MessageTracking")

# The 2010 field list, from a real 2010 file (§6.3).
TRACKING_LOG_FIELDS: tuple[str, ...] = (
    "date-time",
    "client-ip",
    "client-hostname",
    "server-ip",
    "server-hostname",
    "source-context",
    "connector-id",
    "source",
    "event-id",
    "internal-message-id",
    "message-id",
    "recipient-address",
    "recipient-status",
    "total-bytes",
    "recipient-count",
    "related-recipient-address",
    "reference",
    "message-subject",
    "sender-address",
    "return-path",
    "message-info",
    "directionality",
    "tenant-id",
    "original-client-ip",
    "original-server-ip",
    "custom-data",
)

# Set-TransportServer MessageTrackingLog* 2010 defaults (§6.3).
TRACKING_LOG_LIMITS = LogLimits(
    max_file_size=10 * MB, max_directory_size=1000 * MB, max_age=timedelta(days=30)
)

# Exchange joins multi-valued fields (recipients, their statuses) with ";".
MULTI_VALUE_SEPARATOR = ";"


class TrackingEventId(StrEnum):
    RECEIVE = "RECEIVE"
    SUBMIT = "SUBMIT"
    SEND = "SEND"
    DELIVER = "DELIVER"
    FAIL = "FAIL"
    DEFER = "DEFER"
    DSN = "DSN"
    EXPAND = "EXPAND"
    RESOLVE = "RESOLVE"
    REDIRECT = "REDIRECT"
    TRANSFER = "TRANSFER"
    BADMAIL = "BADMAIL"
    POISONMESSAGE = "POISONMESSAGE"
    DUPLICATEDELIVER = "DUPLICATEDELIVER"
    HAREDIRECTFAIL = "HAREDIRECTFAIL"
    NOTIFYMAPI = "NOTIFYMAPI"
    # Shadow redundancy.  Unverified for 2010: these are the names later Exchange
    # documentation gives (a shadow copy resubmitted; discarded once delivered).
    RESUBMIT = "RESUBMIT"
    HADISCARD = "HADISCARD"


class TrackingSource(StrEnum):
    # The list is general knowledge (§6.3), not read from a 2010 page.
    SMTP = "SMTP"
    STOREDRIVER = "STOREDRIVER"
    ROUTING = "ROUTING"
    DSN = "DSN"
    AGENT = "AGENT"
    QUEUE = "QUEUE"
    POISONMESSAGE = "POISONMESSAGE"
    REDUNDANCY = "REDUNDANCY"  # shadow redundancy (unverified name)


def tracking_log_dir(server_dir: Path | str, subdir: Path = TRACKING_LOG_SUBDIR) -> Path:
    return Path(server_dir) / subdir


def tracking_log_settings(limits: LogLimits = TRACKING_LOG_LIMITS) -> LogFileSettings:
    return LogFileSettings(TRACKING_PREFIX, TRACKING_LOG_TYPE, TRACKING_LOG_FIELDS, limits)


@dataclass(frozen=True, slots=True)
class TrackingEntry:
    """One row of a message tracking log.

    ``event_id`` and ``source`` are plain strings so that real logs with
    later values (2013's AGENTINFO, HARECEIVE...) still read; sitemail's own
    writers pass :class:`TrackingEventId` / :class:`TrackingSource` members.
    ``path`` and ``line`` say where a row was read (0/"" for new rows).
    """

    timestamp: datetime
    event_id: str
    source: str
    message_id: str = ""
    sender_address: str = ""
    recipient_address: tuple[str, ...] = ()
    recipient_status: tuple[str, ...] = ()
    client_ip: str = ""
    client_hostname: str = ""
    server_ip: str = ""
    server_hostname: str = ""
    source_context: str = ""
    connector_id: str = ""
    internal_message_id: str = ""
    total_bytes: int | None = None
    recipient_count: int | None = None
    related_recipient_address: str = ""
    reference: str = ""
    message_subject: str = ""
    return_path: str = ""
    message_info: str = ""
    directionality: str = ""
    tenant_id: str = ""
    original_client_ip: str = ""
    original_server_ip: str = ""
    custom_data: str = ""
    extra: tuple[tuple[str, str], ...] = ()
    path: str = field(default="", compare=False)
    line: int = field(default=0, compare=False)

    def values(self) -> list[str]:
        """The row in :data:`TRACKING_LOG_FIELDS` order."""
        return [
            format_timestamp(self.timestamp),
            self.client_ip,
            self.client_hostname,
            self.server_ip,
            self.server_hostname,
            self.source_context,
            self.connector_id,
            str(self.source),
            str(self.event_id),
            self.internal_message_id,
            self.message_id,
            MULTI_VALUE_SEPARATOR.join(self.recipient_address),
            MULTI_VALUE_SEPARATOR.join(self.recipient_status),
            "" if self.total_bytes is None else str(self.total_bytes),
            "" if self.recipient_count is None else str(self.recipient_count),
            self.related_recipient_address,
            self.reference,
            self.message_subject,
            self.sender_address,
            self.return_path,
            self.message_info,
            self.directionality,
            self.tenant_id,
            self.original_client_ip,
            self.original_server_ip,
            self.custom_data,
        ]


# --------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------


class MessageTrackingLog:
    """The tracking log files of one server."""

    def __init__(
        self,
        directory: Path | str,
        *,
        clock: Clock = SYSTEM_CLOCK,
        limits: LogLimits = TRACKING_LOG_LIMITS,
        settings: LogFileSettings | None = None,
        subject_logging_enabled: bool = True,
        version: str = VERSION_2010,
    ) -> None:
        """``version``: the header's ``#Version`` (the server's, org/version_facts.py)."""
        self.clock = clock
        # Set-TransportServer -MessageTrackingLogSubjectLoggingEnabled (§6.3).
        self.subject_logging_enabled = subject_logging_enabled
        if settings is None:
            settings = replace(tracking_log_settings(limits), version=version)
        self.writer = LogWriter(directory, settings, clock)

    @property
    def directory(self) -> Path:
        return self.writer.directory

    @property
    def settings(self) -> LogFileSettings:
        return self.writer.settings

    def set_limits(self, limits: LogLimits) -> None:
        """MaxFileSize / MaxDirectorySize / MaxAge changed by Set-TransportServer."""
        self.writer.set_limits(limits)

    def write(self, entry: TrackingEntry) -> None:
        self.write_many([entry])

    def write_many(self, entries: Sequence[TrackingEntry]) -> None:
        """Several rows in one append (the events of one queue commit)."""
        if not self.subject_logging_enabled:
            entries = [replace(e, message_subject="") if e.message_subject else e for e in entries]
        self.writer.write_rows([e.values() for e in entries])

    def log(
        self,
        event_id: TrackingEventId,
        source: TrackingSource,
        *,
        message_id: str = "",
        sender_address: str = "",
        recipients: Sequence[str] = (),
        recipient_status: Sequence[str] = (),
        **details: str | int | None,
    ) -> TrackingEntry:
        """Write an event stamped with the clock's time and return it.

        ``details`` are the other :class:`TrackingEntry` fields by name
        (``server_hostname=``, ``connector_id=``, ``total_bytes=``...).
        ``recipient_count`` defaults to the number of recipients.
        """
        entry = self.entry(
            event_id,
            source,
            message_id=message_id,
            sender_address=sender_address,
            recipients=recipients,
            recipient_status=recipient_status,
            **details,
        )
        self.write(entry)
        return entry

    def entry(
        self,
        event_id: TrackingEventId,
        source: TrackingSource,
        *,
        message_id: str = "",
        sender_address: str = "",
        recipients: Sequence[str] = (),
        recipient_status: Sequence[str] = (),
        **details: str | int | None,
    ) -> TrackingEntry:
        """The entry :meth:`log` would write, stamped now, not written."""
        unknown = set(details) - _DETAIL_FIELDS
        if unknown:
            raise TypeError(
                f"unknown tracking field(s) {sorted(unknown)}; "
                f"expected some of {sorted(_DETAIL_FIELDS)}"
            )
        return TrackingEntry(
            timestamp=self.clock.now(),
            event_id=TrackingEventId(event_id),
            source=TrackingSource(source),
            message_id=message_id,
            sender_address=sender_address,
            recipient_address=tuple(recipients),
            recipient_status=tuple(recipient_status),
            recipient_count=len(recipients) if recipients else None,
            **details,  # type: ignore[arg-type]
        )

    def close(self) -> None:
        self.writer.close()


_DETAIL_FIELDS = frozenset(TrackingEntry.__dataclass_fields__) - {
    "timestamp",
    "event_id",
    "source",
    "message_id",
    "sender_address",
    "recipient_address",
    "recipient_status",
    "extra",
    "path",
    "line",
}


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------

_ATTRIBUTES = {name: name.replace("-", "_") for name in TRACKING_LOG_FIELDS}
_ATTRIBUTES["date-time"] = "timestamp"


class TrackingColumns:
    """Where each field sits in the rows under one ``#Fields:`` line."""

    __slots__ = ("extra", "fields", "index")

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = tuple(fields)
        self.index = {name: i for i, name in enumerate(self.fields)}
        self.extra = tuple(
            (name, i) for i, name in enumerate(self.fields) if name not in _ATTRIBUTES
        )

    def get(self, values: Sequence[str], name: str) -> str:
        i = self.index.get(name)
        return values[i] if i is not None else ""

    def entry(self, values: Sequence[str], path: str = "", line: int = 0) -> TrackingEntry:
        """Build the typed row; raises ValueError on a malformed date or count."""
        get = self.get
        recipients = _split_multi(get(values, "recipient-address"))
        return TrackingEntry(
            timestamp=parse_timestamp(get(values, "date-time")),
            event_id=get(values, "event-id"),
            source=get(values, "source"),
            message_id=get(values, "message-id"),
            sender_address=get(values, "sender-address"),
            recipient_address=recipients,
            recipient_status=_split_statuses(get(values, "recipient-status"), len(recipients)),
            client_ip=get(values, "client-ip"),
            client_hostname=get(values, "client-hostname"),
            server_ip=get(values, "server-ip"),
            server_hostname=get(values, "server-hostname"),
            source_context=get(values, "source-context"),
            connector_id=get(values, "connector-id"),
            internal_message_id=get(values, "internal-message-id"),
            total_bytes=_int_or_none(get(values, "total-bytes")),
            recipient_count=_int_or_none(get(values, "recipient-count")),
            related_recipient_address=get(values, "related-recipient-address"),
            reference=get(values, "reference"),
            message_subject=get(values, "message-subject"),
            return_path=get(values, "return-path"),
            message_info=get(values, "message-info"),
            directionality=get(values, "directionality"),
            tenant_id=get(values, "tenant-id"),
            original_client_ip=get(values, "original-client-ip"),
            original_server_ip=get(values, "original-server-ip"),
            custom_data=get(values, "custom-data"),
            extra=tuple((name, values[i]) for name, i in self.extra),
            path=path,
            line=line,
        )


def _split_multi(value: str) -> tuple[str, ...]:
    return tuple(part for part in value.split(MULTI_VALUE_SEPARATOR) if part) if value else ()


def _split_statuses(value: str, recipients: int) -> tuple[str, ...]:
    # A status text can itself hold ";" ("550 5.1.1 RESOLVER.ADR.ExRecipNotFound;
    # not found"), so split only when that gives one status per recipient.
    if not value:
        return ()
    parts = value.split(MULTI_VALUE_SEPARATOR)
    return tuple(parts) if len(parts) == recipients > 1 else (value,)


def _int_or_none(value: str) -> int | None:
    value = value.strip()
    return int(value) if value else None


def read_tracking_file(path: Path | str) -> Iterator[TrackingEntry]:
    """The entries of one tracking log file, lazily; malformed rows are skipped."""
    text_path = str(path)
    with LogFileReader(path) as reader:
        columns: TrackingColumns | None = None
        fields: tuple[str, ...] | None = None
        for line, values in reader:
            if reader.header.fields is not fields:
                fields = reader.header.fields
                columns = TrackingColumns(fields)
            assert columns is not None
            try:
                yield columns.entry(values, text_path, line)
            except ValueError:
                continue


def tracking_log_files(folder: Path | str) -> list[Path]:
    """The ``MSGTRK*`` files of a folder, oldest first."""
    found = []
    with os.scandir(folder) as entries:
        for item in entries:
            name = parse_log_file_name(item.name)
            if name is not None and name.prefix.startswith(TRACKING_PREFIX) and item.is_file():
                found.append((name.period_start, name.prefix, name.number, Path(item.path)))
    found.sort()
    return [path for *_, path in found]


def read_tracking_log(folders: Path | str | Iterable[Path | str]) -> Iterator[TrackingEntry]:
    """Every entry of one folder (or several), file by file, oldest file first."""
    for folder in _as_paths(folders):
        for path in tracking_log_files(folder):
            yield from read_tracking_file(path)


def _as_paths(paths: Path | str | Iterable[Path | str]) -> list[Path]:
    if isinstance(paths, str | os.PathLike):
        return [Path(paths)]
    return [Path(p) for p in paths]


# --------------------------------------------------------------------------
# Search (Get-MessageTrackingLog)
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrackingQuery:
    """The filters of Get-MessageTrackingLog; ``None`` means "any".

    Comparisons ignore case.  ``message_id`` matches with or without its
    angle brackets.  ``recipients`` matches when any of them is among an
    entry's recipients.  ``start``/``end`` are inclusive.  ``server`` matches
    the entry's server-hostname by FQDN or by host name.  ``message_subject``
    is a substring match.
    """

    message_id: str | None = None
    sender: str | None = None
    recipients: tuple[str, ...] | None = None
    event_id: str | None = None
    source: str | None = None
    internal_message_id: str | None = None
    message_subject: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    server: str | None = None

    def matches(self, entry: TrackingEntry) -> bool:
        if self.event_id is not None and entry.event_id.casefold() != self.event_id.casefold():
            return False
        if self.source is not None and entry.source.casefold() != self.source.casefold():
            return False
        if self.message_id is not None and _message_id_key(entry.message_id) != _message_id_key(
            self.message_id
        ):
            return False
        if self.sender is not None and entry.sender_address.casefold() != self.sender.casefold():
            return False
        if self.recipients is not None:
            wanted = {r.casefold() for r in self.recipients}
            if not any(r.casefold() in wanted for r in entry.recipient_address):
                return False
        if self.internal_message_id is not None and (
            entry.internal_message_id != self.internal_message_id
        ):
            return False
        if self.message_subject is not None and (
            self.message_subject.casefold() not in entry.message_subject.casefold()
        ):
            return False
        if self.start is not None and entry.timestamp < self.start:
            return False
        if self.end is not None and entry.timestamp > self.end:
            return False
        return self.server is None or _same_server(entry.server_hostname, self.server)

    def may_hold(self, period_start: datetime, period_end: datetime) -> bool:
        """Whether a file covering this period can hold a match."""
        if self.start is not None and period_end <= self.start:
            return False
        return self.end is None or period_start <= self.end


def _message_id_key(value: str) -> str:
    return value.strip().removeprefix("<").removesuffix(">").casefold()


def _same_server(hostname: str, wanted: str) -> bool:
    host, want = hostname.casefold(), wanted.casefold()
    return host == want or host.split(".", 1)[0] == want.split(".", 1)[0]


def search_tracking_log(
    folders: Path | str | Iterable[Path | str],
    query: TrackingQuery = TrackingQuery(),
    *,
    result_size: int | None = 1000,
) -> Iterator[TrackingEntry]:
    """Entries of the folders' tracking logs that match ``query``, oldest first.

    ``result_size`` is Get-MessageTrackingLog's ``-ResultSize`` (default
    1000; ``None`` for Unlimited).  Files whose name dates lie outside
    ``start``..``end`` are not opened.
    """
    if result_size is not None and result_size <= 0:
        return
    found = 0
    for folder in _as_paths(folders):
        for path in tracking_log_files(folder):
            name = parse_log_file_name(path.name)
            if name is not None and not query.may_hold(name.period_start, name.period_end):
                continue
            for entry in read_tracking_file(path):
                if query.matches(entry):
                    yield entry
                    found += 1
                    if result_size is not None and found >= result_size:
                        return
