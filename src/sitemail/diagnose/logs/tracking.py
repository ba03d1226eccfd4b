"""Message tracking log rows of real Exchange servers, read lazily.

The typed row is the transport's :class:`TrackingEntry` (the same one
Get-MessageTrackingLog returns), with the file and line it came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from sitemail.diagnose.logs.files import LogKind, find_log_files
from sitemail.diagnose.logs.tracking_export import read_tracking_export
from sitemail.mailflow.tracking_log import TrackingEntry, TrackingQuery, read_tracking_file


def read_tracking_rows(
    paths: Path | str | Iterable[Path | str], query: TrackingQuery | None = None
) -> Iterator[TrackingEntry]:
    """Every tracking log entry under ``paths`` (files or folders walked
    recursively), optionally only those that match ``query``."""
    for log in find_log_files(paths, (LogKind.MESSAGE_TRACKING,)):
        read = read_tracking_export if log.export else read_tracking_file
        for entry in read(log.path):
            if query is None or query.matches(entry):
                yield entry
