"""Where a message to store comes from, read in bounded chunks."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sitemail.mailbox.errors import InvalidRequest
from sitemail.mailbox.messages import MessageScanner, ParsedMessage

#: Bytes moved per step when a body is written or read.
CHUNK_SIZE = 256 * 1024

MessageSource = bytes | bytearray | memoryview | Path | IO[bytes]
"""A message to store: bytes, a file path, or a seekable binary file positioned at its start."""


@contextmanager
def opened(source: MessageSource) -> Iterator[tuple[IO[bytes], int, int]]:
    """The source as a seekable binary file, its start offset and its size."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        yield io.BytesIO(data), 0, len(data)
        return
    if isinstance(source, Path):
        with source.open("rb") as f:
            yield f, 0, f.seek(0, io.SEEK_END)
        return
    if not source.seekable():
        raise InvalidRequest("the message source must be seekable (spool it to a file first)")
    start = source.tell()
    size = source.seek(0, io.SEEK_END) - start
    yield source, start, size


def scan(stream: IO[bytes], start: int, size: int) -> ParsedMessage:
    """Parse ``size`` bytes of ``stream`` from ``start``, one chunk at a time."""
    scanner = MessageScanner()
    stream.seek(start)
    remaining = size
    while remaining:
        chunk = stream.read(min(CHUNK_SIZE, remaining))
        if not chunk:
            raise InvalidRequest("the message source ended before its size")
        scanner.feed(chunk)
        remaining -= len(chunk)
    return scanner.close()
