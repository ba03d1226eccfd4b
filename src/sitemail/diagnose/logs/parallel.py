""":func:`~sitemail.diagnose.logs.prefilter.select_sessions` over many files, on all cores.

Each file is read *and* scanned in a worker process (the parent never holds a
file's bytes), at most two files per worker are in flight, and results come
back in input order as they are ready, so memory stays bounded by a few files
whatever the number of files.

Items are ``(label, loader, kind)``: ``loader()`` returns the file's bytes.
With more than one worker the loader is pickled to the worker, so it must be
a picklable callable -- a module-level function, a ``functools.partial`` of
one, or a :class:`FileBytes` / :class:`ZipMemberBytes` -- not a lambda or a
closure.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import zipfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sitemail.diagnose.logs.files import LogKind
from sitemail.diagnose.logs.prefilter import FileScan, select_sessions
from sitemail.diagnose.logs.protocol import ProtocolRow
from sitemail.diagnose.logs.sessions import SmtpSession
from sitemail.mailflow.log_files import log_encoding, utf8_log_bytes

__all__ = ["MAX_WORKERS", "FileBytes", "ZipMemberBytes", "scan_files"]

#: Workers by default: the cores, at most this many.
MAX_WORKERS = 4
#: Files in flight per worker: enough queued that the workers stay busy while the
#: caller does its own work (see ``idle``); each holds a map, not a copy, and its
#: result (digests) is small.
_IN_FLIGHT = 16

Item = tuple[str, Callable[[], bytes | mmap.mmap], LogKind]
# A FileScan as sent back by a worker: plain lists and tuples pickle in half the time
# of ProtocolRow objects.  (rows, sessions_total, bytes, sessions), each session
# (complete, line numbers, values of its rows).
_Packed = tuple[int, int, int, list[tuple[bool, list[int], list[list[str]]]], list[Any]]


@dataclass(frozen=True, slots=True)
class FileBytes:
    """A picklable loader: the bytes of a file, mapped rather than read.

    A map costs no copy and no fresh pages to fault in: on 1 GB of logs, reading
    into new buffers spent about a second of system time that a map does not.  The
    scan gets an :class:`mmap.mmap` (the prefilter takes bytes or a map); an empty
    file, which cannot be mapped, gives ``b""``.  Exchange appends to a log and never
    shortens one, so a map of a file still being written stays valid.
    """

    path: Path | str

    def __call__(self) -> bytes | mmap.mmap:
        with open(self.path, "rb") as file:
            if os.fstat(file.fileno()).st_size == 0:
                return b""
            if log_encoding(file.read(4)) != "utf-8":
                # A UTF-16 copy (a log saved by a Windows tool): read and made UTF-8.
                file.seek(0)
                return utf8_log_bytes(file.read())
            return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)


@dataclass(frozen=True, slots=True)
class ZipMemberBytes:
    """A picklable loader: the bytes of one member of a zip archive."""

    archive: Path | str
    member: str

    def __call__(self) -> bytes:
        with zipfile.ZipFile(self.archive) as archive:
            return utf8_log_bytes(archive.read(self.member))


Finish = Callable[[SmtpSession], Any]


def _whole(session: SmtpSession) -> bool:
    """The session starts (sequence-number 0) and ends (``-``) in this file."""
    return session.complete and session.rows[0].values[3] == "0"


def _scan(
    label: str, loader: Callable[[], bytes | mmap.mmap], kind: LogKind, finish: Finish | None
) -> FileScan:
    data = loader()
    try:
        scan = select_sessions(data, label, kind)
    finally:
        if isinstance(data, mmap.mmap):
            # The scan keeps decoded text only; a view still held would keep the map
            # open until collected, which is harmless.
            with contextlib.suppress(BufferError):
                data.close()
    if finish is not None:
        # Sessions whole in the file are finished here, in the worker; the caller joins
        # the rest (cut by a rotation) across files.
        kept = []
        for session in scan.sessions:
            if _whole(session):
                result = finish(session)
                if result is not None:
                    scan.finished.append(result)
            else:
                kept.append(session)
        scan.sessions = kept
    return scan


def _scan_packed(
    label: str, loader: Callable[[], bytes | mmap.mmap], kind: LogKind, finish: Finish | None
) -> _Packed:
    scan = _scan(label, loader, kind, finish)
    sessions = [
        (s.complete, [r.line for r in s.rows], [r.values for r in s.rows]) for s in scan.sessions
    ]
    return scan.rows, scan.sessions_total, scan.bytes, sessions, scan.finished


def _unpack(packed: _Packed, label: str, kind: LogKind) -> FileScan:
    rows, started, size, packed_sessions, finished = packed
    sessions = [
        SmtpSession(
            kind,
            values[0][1],
            values[0][2],
            [ProtocolRow(v, label, n, kind) for n, v in zip(lines, values, strict=True)],
            complete=complete,
        )
        for complete, lines, values in packed_sessions
    ]
    return FileScan(sessions, rows, started, size, finished)


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, MAX_WORKERS))


def scan_files(
    items: Iterable[Item],
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
    finish: Finish | None = None,
    idle: Callable[[], None] | None = None,
) -> Iterator[FileScan]:
    """The :class:`FileScan` of each item, in input order.

    ``workers`` defaults to the number of cores (at most :data:`MAX_WORKERS`);
    1 scans in this process.  ``progress`` is called after each file with the
    bytes scanned so far.  An exception of a loader or of the scan is raised
    here when that file's turn comes; closing the iterator early cancels the
    files not started.  ``finish`` (a picklable function) is applied in the worker to
    every selected session whole in its file; its results come in
    :attr:`FileScan.finished` (None results dropped) instead of the sessions.
    ``idle`` is called once the workers have their first files (in this process:
    before the first file).
    """
    count = default_workers() if workers is None else max(1, workers)
    done = 0
    if count == 1:
        if idle is not None:
            idle()
        for label, loader, kind in items:
            scan = _scan(label, loader, kind, finish)
            done += scan.bytes
            if progress is not None:
                progress(done)
            yield scan
        return
    pending: deque[tuple[Future[_Packed], str, LogKind]] = deque()
    source = iter(items)
    with ProcessPoolExecutor(max_workers=count) as pool:

        def submit() -> bool:
            for label, loader, kind in source:
                pending.append(
                    (pool.submit(_scan_packed, label, loader, kind, finish), label, kind)
                )
                return True
            return False

        try:
            while len(pending) < count * _IN_FLIGHT and submit():
                pass
            if idle is not None:
                idle()
            while pending:
                future, label, kind = pending.popleft()
                scan = _unpack(future.result(), label, kind)
                submit()
                done += scan.bytes
                if progress is not None:
                    progress(done)
                yield scan
        finally:
            for future, _label, _kind in pending:
                future.cancel()
