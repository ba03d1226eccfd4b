"""Message bodies on disk: one spool file per accepted message.

A :class:`SpoolFile` streams the body to ``<home>/queue/spool/<uuid>.eml``
through a small write buffer, so memory stays bounded whatever the size.
:meth:`SpoolFile.seal` fsyncs it; the store fsyncs the directory (once for a
whole group of accepted messages) before it commits the message row, so a
committed row always has its file.  A file without a row is garbage from a
refused or interrupted transfer, which recovery deletes.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import BinaryIO

SPOOL_SUFFIX = ".eml"
WRITE_BUFFER = 64 * 1024
HEADER_LIMIT = 64 * 1024  # how much of the original a report quotes at most


class SpoolClosedError(Exception):
    pass


class SpoolFile:
    """A message body on its way to disk (implements ``submission.SpoolWriter``).

    The file is created only when the body outgrows :data:`WRITE_BUFFER` or
    at :meth:`seal`.  A body that never does is usually not written here at
    all: :meth:`take_inline` hands it to the queue database, and the session's
    event loop never waits on the spool directory (creating a file in a folder
    of thousands, while others fsync it, is the slowest step of receiving a
    small message).
    """

    def __init__(self, directory: Path) -> None:
        self.name = f"{uuid.uuid4().hex}{SPOOL_SUFFIX}"
        self.path = directory / self.name
        self._file: BinaryIO | None = None
        self._pending: bytearray | None = bytearray()  # None once closed
        self._size = 0
        self.sealed = False

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> None:
        pending = self._pending
        if pending is None:
            raise SpoolClosedError("this spool file was already sealed or aborted")
        self._size += len(data)
        if self._file is not None:
            self._file.write(data)
            return
        pending += data
        if len(pending) > WRITE_BUFFER:
            self._open()

    def _open(self) -> BinaryIO:
        file = open(self.path, "xb", buffering=WRITE_BUFFER)  # noqa: SIM115
        self._file = file
        if self._pending:
            file.write(self._pending)
            self._pending = bytearray()
        return file

    def take_inline(self) -> bytes | None:
        """The whole body if it never left memory (at most WRITE_BUFFER bytes), else None.

        Taking it closes the writer: the queue makes such a body durable in its
        database and writes the spool file as a copy (:func:`write_copy`).
        """
        if self._file is not None or self._pending is None:
            return None
        body, self._pending = bytes(self._pending), None
        return body

    def abort(self) -> None:
        """Discard the body (the session refused the message or went away)."""
        self._pending = None
        if self._file is not None:
            self._file.close()
            self._file = None
            if not self.sealed:
                unlink_quietly(self.path)

    def seal(self) -> None:
        """Write out, flush and fsync the body; afterwards the file is read-only for everyone."""
        if self._pending is None:
            raise SpoolClosedError("this spool file was already sealed or aborted")
        try:
            file = self._file or self._open()
            file.flush()
            os.fsync(file.fileno())
        except BaseException:
            self.abort()
            raise
        file.close()
        self._file = None
        self._pending = None
        self.sealed = True

    def __del__(self) -> None:
        # A writer dropped without accept() or abort(): close the descriptor.
        # The file itself stays until the next recovery, which removes it.
        if self._file is not None:
            self._file.close()


def write_spool_file(directory: Path, data: bytes) -> Path:
    """Write a whole body (a generated report) and fsync it and its directory."""
    spool = SpoolFile(directory)
    try:
        spool.write(data)
        spool.seal()
    except BaseException:
        spool.abort()
        raise
    fsync_directory(directory)
    return spool.path


def write_copy(path: Path, data: bytes) -> None:
    """A spool file whose durable original is in the queue database (no fsync).

    Written aside and renamed into place: whoever finds the name finds the
    whole body.
    """
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    try:
        with open(aside, "xb") as f:
            f.write(data)
        os.replace(aside, path)
    except BaseException:
        unlink_quietly(aside)
        raise


def fsync_directory(directory: Path) -> None:
    """Make the directory's entries (new or removed file names) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_header_block(path: Path, limit: int = HEADER_LIMIT) -> bytes:
    """The header block of a stored message (up to the empty line), bounded."""
    try:
        with open(path, "rb") as f:
            head = f.read(limit)
    except FileNotFoundError:
        return b""
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = head.find(separator)
        if end >= 0:
            return head[: end + len(separator) // 2]
    return head


def spool_names(directory: Path) -> set[str]:
    """Every file in the spool folder (recovery deletes those no message owns)."""
    return {entry.name for entry in os.scandir(directory) if entry.is_file()}


def unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
