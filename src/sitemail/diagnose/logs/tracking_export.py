"""Message tracking as administrators often send it: ``Get-MessageTrackingLog | Export-Csv``.

The Exchange Management Shell writes the cmdlet's objects, not the log files:
a ``#TYPE Microsoft.Exchange.Management.TransportLogSearchTasks.MessageTrackingEvent``
line (absent with ``-NoTypeInformation``), a header of property names
(``"Timestamp","ClientIp",...,"EventId",...,"Recipients","RecipientStatus",...``),
then one quoted CSV record per event.  What differs from the log files:

- the names are the objects' properties (``EventId``, ``Sender``, ``Recipients``);
  they map onto the log's fields (``event-id``, ``sender-address``,
  ``recipient-address``) and the rows are read with the log's own columns;
- ``Timestamp`` is written in the shell's culture and local time, without a zone
  (``12/6/2026 10:00:01 AM`` in en-US, ``06.12.2026 10:00:01`` in de-DE); it is read
  as UTC, so times agree within the file, which is all the tracking rules compare;
- a multi-valued property (``Recipients``, ``RecipientStatus``, ``Reference``) comes
  out as ``System.String[]`` unless the administrator joined it (``-join ';'``);
  the placeholder reads as nothing, a joined list is split on ``;`` or ``,``;
- the file may be ASCII, UTF-8 (PowerShell 7) or UTF-16 (``Out-File``, ``>``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from sitemail.mailflow.log_files import log_encoding
from sitemail.mailflow.tracking_log import (
    MULTI_VALUE_SEPARATOR,
    TrackingColumns,
    TrackingEntry,
)

TYPE_NAME = "Microsoft.Exchange.Management.TransportLogSearchTasks.MessageTrackingEvent"
#: How much of a file is read to tell an export from anything else.
_PEEK = 4096
#: The largest record (a message with thousands of recipients joined in one value).
_MAX_FIELD = 16 * 1024 * 1024

# The properties whose names do not turn into the log's field names by themselves.
_FIELDS = {
    "timestamp": "date-time",
    "sender": "sender-address",
    "recipients": "recipient-address",
    "eventdata": "custom-data",
}
_MULTI = frozenset({"recipient-address", "recipient-status", "reference"})
_PLACEHOLDER = re.compile(r"^System\.[A-Za-z.]+\[\]$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

# Culture formats the shell writes a DateTime in, most common first; a date like
# 06/12/2026 reads month first, as en-US writes it, unless that cannot be a date.
_TIME_FORMATS = (
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %I:%M:%S %p",
    "%d.%m.%Y %H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%d-%m-%Y %H:%M:%S",
)


def field_name(prop: str) -> str:
    """The log field a property holds: ``ClientIp`` -> ``client-ip``."""
    plain = prop.strip().strip('"')
    known = _FIELDS.get(plain.casefold())
    if known is not None:
        return known
    return _CAMEL.sub("-", plain).casefold()


def _header(line: str) -> list[str] | None:
    names = next(csv.reader([line]), [])
    folded = {n.strip().casefold() for n in names}
    return names if {"eventid", "timestamp"} <= folded else None


def is_tracking_export(path: Path) -> bool:
    """Whether ``path`` is Export-Csv output of Get-MessageTrackingLog."""
    try:
        with path.open("rb") as file:
            head = file.read(_PEEK)
    except OSError:
        return False
    text = head.decode(log_encoding(head[:4]), errors="replace").lstrip("\ufeff")
    lines = text.splitlines()
    if not lines:
        return False
    if lines[0].startswith("#TYPE"):
        return TYPE_NAME.casefold() in lines[0].casefold()
    return _header(lines[0]) is not None


def parse_export_time(text: str) -> datetime:
    """A Timestamp as the shell wrote it; ValueError when no known culture fits."""
    value = text.strip()
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        for fmt in _TIME_FORMATS:
            try:
                parsed = datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"not a time the shell writes: {value!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _multi(value: str) -> str:
    if _PLACEHOLDER.match(value.strip()):
        return ""
    parts = re.split(r"[;,]\s*", value.strip()) if "@" in value else [value.strip()]
    return MULTI_VALUE_SEPARATOR.join(p for p in parts if p)


def read_tracking_export(path: Path | str) -> Iterator[TrackingEntry]:
    """The events of one export, lazily; rows that are not events are skipped."""
    path = Path(path)
    with path.open("rb") as peek:
        encoding = log_encoding(peek.read(4))
    csv.field_size_limit(_MAX_FIELD)
    with path.open("r", encoding=encoding, errors="replace", newline="") as file:
        reader = csv.reader(file)
        columns: TrackingColumns | None = None
        fields: list[str] = []
        for record in reader:
            line = reader.line_num
            if not record or (columns is None and record[0].lstrip("\ufeff").startswith("#")):
                continue
            if columns is None:
                names = [n.lstrip("\ufeff") for n in record]
                if _header(",".join(f'"{n}"' for n in names)) is None:
                    return  # not an export after all
                fields = [field_name(n) for n in names]
                columns = TrackingColumns(fields)
                continue
            values = [*record[: len(fields)], *[""] * (len(fields) - len(record))]
            for i, name in enumerate(fields):
                if name in _MULTI:
                    values[i] = _multi(values[i])
            try:
                when = parse_export_time(columns.get(values, "date-time"))
                values[fields.index("date-time")] = when.isoformat().replace("+00:00", "Z")
                yield columns.entry(values, str(path), line)
            except ValueError:
                continue
