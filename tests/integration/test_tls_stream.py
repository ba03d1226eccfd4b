"""The sender's stream drops the plaintext a server sent after its 220 to STARTTLS.

Octets that reached the stream's reader but not the SMTP client core (they
arrived after the sender read the 220) must not be read as the first reply
inside TLS (RFC 3207 section 4.2).  On loopback, 127.0.0.1, port chosen by
the system.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from sitemail.mailflow.tls_stream import CountingReader, open_connection, start_tls
from sitemail.org.pki import OrganizationPki, anonymous_tls_client_context, server_ssl_context

T = TypeVar("T")

GO = b"220 2.0.0 SMTP server ready\r\n"
INJECTED = b"250 injected in plaintext\r\n"
INSIDE = b"250 EX02.contoso.com Hello\r\n"


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, 20)

    return asyncio.run(bounded())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> OrganizationPki:
    org = OrganizationPki.open_or_create(tmp_path_factory.mktemp("pki"), "Contoso")
    org.ensure_server("EX02", "EX02.contoso.com")
    return org


def test_counting_reader_knows_what_it_holds() -> None:
    async def scenario() -> None:
        reader = CountingReader(1024)
        assert reader.unread == 0
        assert await asyncio.wait_for(reader.drop_unread(), 1) == 0  # nothing held: no wait
        reader.feed_data(GO + INJECTED)
        assert await reader.read(len(GO)) == GO
        assert reader.unread == len(INJECTED)
        assert await reader.drop_unread() == len(INJECTED)
        assert reader.unread == 0
        reader.feed_data(INSIDE)
        reader.feed_eof()
        assert await reader.read(1024) == INSIDE
        assert await reader.read(1024) == b""

    run(scenario())


def test_plaintext_after_the_220_is_never_read_inside_tls(pki: OrganizationPki) -> None:
    server_context = server_ssl_context(pki.server_files("EX02"))

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(GO + INJECTED)
        await writer.drain()
        await writer.start_tls(server_context)
        assert await reader.readline() == b"EHLO EX01.contoso.com\r\n"
        writer.write(INSIDE)
        await writer.drain()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    async def scenario() -> tuple[int, bytes]:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await open_connection(
                "127.0.0.1", port, local_addr=None, limit=64 * 1024
            )
            got = b""
            while len(got) < len(GO):
                got += await reader.read(len(GO) - len(got))
            assert got == GO
            # The injected reply sits in the reader, unread, when the handshake starts.
            while reader.unread < len(INJECTED):
                await asyncio.sleep(0.01)
            dropped = await start_tls(
                reader,
                writer,
                anonymous_tls_client_context(None),
                server_hostname="EX02.contoso.com",
                timeout=10,
            )
            writer.write(b"EHLO EX01.contoso.com\r\n")
            await writer.drain()
            first = await reader.read(1024)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return dropped, first

    dropped, first = run(scenario())
    assert dropped == len(INJECTED)
    assert first == INSIDE
