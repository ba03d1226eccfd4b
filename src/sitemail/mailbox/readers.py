"""Connections to a mailbox database file, and readers of stored message bytes.

A reader opens its own connection and read transaction: it sees the message
as it was when opened, even if the message is deleted while the bytes are
still on their way to a client, and it never holds the database's writer
lock between chunks (WAL lets one writer run beside any number of readers).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sitemail.mailbox.errors import MessageNotFound
from sitemail.mailbox.messages import TransferDecoder
from sitemail.mailbox.records import MimePart
from sitemail.mailbox.sources import CHUNK_SIZE


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the store's settings: WAL, synchronous=FULL, rows by name."""
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.create_function("sm_contains", 2, _contains, deterministic=True)
    return conn


def _contains(haystack: str | None, needle: str) -> bool:
    """Case-insensitive containment for search (SQLite's LIKE folds ASCII only)."""
    return haystack is not None and needle in haystack.casefold()


class RawReader:
    """Reads a stored message's bytes in chunks, from a snapshot of the database."""

    def __init__(
        self,
        path: Path,
        mailbox: str,
        message_id: int,
        start: int,
        length: int | None,
    ) -> None:
        self._conn = connect(path)
        self._blob: sqlite3.Blob | None = None
        try:
            # The read transaction pins a snapshot: the bytes stay readable to
            # the end even if the message is deleted meanwhile.
            self._conn.execute("BEGIN")
            row = self._conn.execute(
                "SELECT m.content_id, c.size FROM messages m JOIN contents c ON c.id=m.content_id "
                "JOIN mailboxes b ON b.id=m.mailbox_id WHERE m.id=? AND b.name=?",
                (message_id, mailbox),
            ).fetchone()
            if row is None:
                raise MessageNotFound(f"mailbox {mailbox} has no message {message_id}")
            self.total_size = int(row[1])
            self._blob = self._conn.blobopen("contents", "data", int(row[0]), readonly=True)
        except BaseException:
            self.close()
            raise
        self.start = min(start, self.total_size)
        end = self.total_size if length is None else min(self.total_size, self.start + length)
        self.size = end - self.start
        self._position = self.start
        self._end = end
        self._blob.seek(self.start)

    def read(self, size: int = CHUNK_SIZE) -> bytes:
        """Up to ``size`` bytes; ``b""`` at the end."""
        if self._blob is None or self._position >= self._end:
            return b""
        count = min(size, self._end - self._position)
        data = self._blob.read(count)
        self._position += len(data)
        return data

    def close(self) -> None:
        if self._blob is not None:
            self._blob.close()
            self._blob = None
        try:
            if self._conn.in_transaction:
                self._conn.execute("COMMIT")
        finally:
            self._conn.close()

    def __enter__(self) -> RawReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PartReader:
    """Reads one MIME part's decoded body in chunks."""

    def __init__(self, part: MimePart, raw: RawReader) -> None:
        self.part = part
        self._raw = raw
        self._decoder = TransferDecoder(part.transfer_encoding)
        self._done = False

    def read(self, size: int = CHUNK_SIZE) -> bytes:
        """The next decoded chunk; ``b""`` at the end (a chunk may be empty only then)."""
        while not self._done:
            data = self._raw.read(size)
            if not data:
                self._done = True
                return self._decoder.flush()
            decoded = self._decoder.feed(data)
            if decoded:
                return decoded
        return b""

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> PartReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
