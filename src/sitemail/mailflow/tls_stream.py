"""A client stream whose plaintext ends where its TLS begins (STARTTLS, X-ANONYMOUSTLS).

Anything a server sends in plaintext after its 220 to STARTTLS must never be
read as if it had come through TLS (RFC 3207 section 4.2; the CVE-2011-0411
class of response injection).  The SMTP client core drops what it holds past
the 220; what the stream received and the sender has not read yet is dropped
here, before the handshake.  asyncio's public API does not say what a
:class:`asyncio.StreamReader` holds, so :class:`CountingReader` counts what it
was fed and what was read from it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable, Sized
from typing import SupportsIndex


class CountingReader(asyncio.StreamReader):
    """A stream reader that knows how many octets it holds unread.

    Read it with :meth:`read` only: the other read methods are not counted.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(limit=limit)
        self._fed = 0
        self._taken = 0

    def feed_data(self, data: Iterable[SupportsIndex]) -> None:
        self._fed += len(data) if isinstance(data, Sized) else len(bytes(data))
        super().feed_data(data)

    async def read(self, n: int = -1) -> bytes:
        data = await super().read(n)
        self._taken += len(data)
        return data

    @property
    def unread(self) -> int:
        """Octets received and not read yet."""
        return self._fed - self._taken

    async def drop_unread(self) -> int:
        """Drop what the reader holds (without waiting: those octets are here); their count."""
        held = self.unread
        if held:
            await self.read(held)
        return held


async def open_connection(
    host: str, port: int, *, local_addr: tuple[str, int] | None, limit: int
) -> tuple[CountingReader, asyncio.StreamWriter]:
    """:func:`asyncio.open_connection`, with a :class:`CountingReader`."""
    loop = asyncio.get_running_loop()
    reader = CountingReader(limit)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport, _ = await loop.create_connection(lambda: protocol, host, port, local_addr=local_addr)
    return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


async def start_tls(
    reader: CountingReader,
    writer: asyncio.StreamWriter,
    context: ssl.SSLContext,
    *,
    server_hostname: str,
    timeout: float,
) -> int:
    """Drop the plaintext the stream holds, then do the TLS handshake; the octets dropped.

    Nothing between the drop and the handshake waits, so no plaintext can slip
    in between: ``start_tls`` stops the transport's plain reads before it first
    waits (hence :func:`asyncio.timeout`, which runs it in this task, rather
    than :func:`asyncio.wait_for`, which would start it in another one later).
    """
    dropped = await reader.drop_unread()
    async with asyncio.timeout(timeout):
        await writer.start_tls(context, server_hostname=server_hostname)
    return dropped
