"""CAS-to-CAS proxying of a POP3 or IMAP4 session (spec 8.6): connect, sign in, relay.

When the user's mailbox is in another site, the receiving Client Access
server opens the protocol's SSL port (995 / 993, whatever port the client
used) on a Client Access server of that site, trusting only the
organization CA and checking the certificate names the target's FQDN,
signs in there with the user's own credentials (Exchange's POP3/IMAP4
proxy forwards them, as with Basic authentication), and from then on
copies bytes both ways until either side closes.

The relay holds at most one read (:data:`RELAY_CHUNK`, or the client
connection's buffer) per direction: it
reads again only after the other side took what was read, so a slow
reader slows the writer instead of filling memory.  A session with no
byte either way for ``idle_timeout`` is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sitemail.server.line_connection import LineConnection

#: Octets read at a time from either side of a relayed session.
RELAY_CHUNK = 64 * 1024
#: Longest line read from a back-end during sign-in.
MAX_BACKEND_LINE = 8 * 1024
CONNECT_TIMEOUT = 10.0
SIGN_IN_TIMEOUT = 30.0


class BackendError(Exception):
    """The target server could not be reached or refused the session; ``str`` says why."""


@dataclass
class Backend:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def line(self) -> bytes:
        """One line (with its end) from the back-end, bounded."""
        try:
            data = await asyncio.wait_for(self.reader.readline(), SIGN_IN_TIMEOUT)
        except (TimeoutError, ValueError, asyncio.LimitOverrunError) as exc:
            raise BackendError(f"no usable answer from the target server: {exc!r}") from None
        except (OSError, ssl.SSLError) as exc:
            raise BackendError(f"the target server's connection failed: {exc}") from None
        if not data:
            raise BackendError("the target server closed the connection")
        return data

    async def send(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), SIGN_IN_TIMEOUT)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            raise BackendError(f"cannot write to the target server: {exc}") from None

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)


async def open_backend(
    address: str,
    port: int,
    *,
    use_ssl: bool,
    server_hostname: str,
    context: ssl.SSLContext,
    local_address: str | None,
) -> Backend:
    """A connection to the target server (``address``: where this server reaches it)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                address,
                port,
                ssl=context if use_ssl else None,
                server_hostname=server_hostname if use_ssl else None,
                # From this server's own address, so that the firewalls relay it as
                # they do every connection between the sites.
                local_addr=(local_address, 0) if local_address else None,
                limit=MAX_BACKEND_LINE,
            ),
            CONNECT_TIMEOUT,
        )
    except ssl.SSLCertVerificationError as exc:
        raise BackendError(
            f"{server_hostname} ({address}:{port}) presented a certificate this server does "
            f"not trust: {exc.verify_message}"
        ) from None
    except (OSError, ssl.SSLError, TimeoutError) as exc:
        raise BackendError(
            f"cannot connect to {server_hostname} ({address}:{port}): {type(exc).__name__}: {exc}"
        ) from None
    return Backend(reader, writer)


async def relay(
    client: LineConnection,
    backend: Backend,
    *,
    idle_timeout: float,
    first_to_backend: bytes = b"",
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Copy bytes both ways until either side closes or nothing moves for ``idle_timeout``."""
    last = [monotonic()]

    async def pump(
        read: Callable[[], Awaitable[bytes]],
        write: Callable[[bytes], None],
        drain: Callable[[], Awaitable[None]],
    ) -> None:
        while True:
            try:
                data = await read()
            except (OSError, ssl.SSLError):
                return
            if not data:
                return
            last[0] = monotonic()
            try:
                write(data)
                await drain()
            except (OSError, ssl.SSLError):
                return

    if first_to_backend:
        backend.writer.write(first_to_backend)
    up = asyncio.ensure_future(pump(client.read, backend.writer.write, backend.writer.drain))
    down = asyncio.ensure_future(
        pump(lambda: backend.reader.read(RELAY_CHUNK), client.write, client.drain)
    )
    try:
        while True:
            remaining = idle_timeout - (monotonic() - last[0])
            if remaining <= 0:
                break
            done, _ = await asyncio.wait(
                {up, down}, timeout=remaining, return_when="FIRST_COMPLETED"
            )
            if done:
                break
    finally:
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)
        await backend.close()
