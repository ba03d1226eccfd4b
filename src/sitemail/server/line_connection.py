"""One client connection of a line protocol (SMTP, POP3, IMAP4), as its session sees it.

A :class:`LineConnection` keeps what the client sent in a receive buffer of
its own, bounded: past ``max_buffer`` octets it stops reading from the
socket until the session took them.  Because the buffer is its own (not
asyncio's ``StreamReader``'s), it knows exactly which octets are pending
when a session accepts STARTTLS, and drops them: bytes a client sent after
the command, before the go-ahead, are plaintext that must never count as
commands inside TLS (RFC 3207 section 4.2, the CVE-2011-0411 command
injection).  The upgrade is the public ``loop.start_tls``.

Below the connection is a :class:`Link`: :class:`SocketLink` (an asyncio
protocol) in the servers, a memory pipe in the tests, so that a session is
played as bytes in and bytes out without sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from typing import Any, Protocol, cast

log = logging.getLogger("sitemail.server.line")

#: Octets of client input held before reading from the socket pauses.
MAX_BUFFER = 64 * 1024
#: Longest a TLS handshake may take (STARTTLS, and implicit TLS on SSL ports).
TLS_HANDSHAKE_TIMEOUT = 30.0


class SessionClosing(Exception):
    """The session ends (after what was just sent); the server closes the connection."""


class TlsHandshakeFailed(SessionClosing):
    """The TLS handshake after the go-ahead failed or timed out: the session is over."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"TLS handshake failed: {cause!r}")
        self.cause = cause


class Link(Protocol):
    """What carries a connection's bytes: a socket transport, or a test's memory pipe."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    async def start_tls(self, context: ssl.SSLContext, timeout: float) -> None:
        """Run the server side of a TLS handshake; reading resumes inside TLS."""
        ...

    def get_extra_info(self, name: str) -> Any: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


class LineConnection:
    """A client connection: bounded reads with timeouts, writes, and STARTTLS."""

    def __init__(self, link: Link, *, max_buffer: int = MAX_BUFFER) -> None:
        self.link = link
        self.max_buffer = max_buffer
        self._buffer = bytearray()
        self._eof = False
        self._paused = False  # reading paused because the buffer is full
        self._waiter: asyncio.Future[None] | None = None
        # Replies written in one turn of the event loop, sent together (see write).
        self._out: list[bytes] = []
        self.plaintext_discarded = 0
        """Octets dropped because they came after a STARTTLS go-ahead in plaintext."""

    # --- fed by the link

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= self.max_buffer and not self._paused:
            self._paused = True
            self.link.pause_reading()
        self._wake()

    def feed_eof(self) -> None:
        self._eof = True
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- used by the session

    @property
    def pending(self) -> int:
        """Octets received and not yet read."""
        return len(self._buffer)

    async def read(self, timeout: float | None = None) -> bytes:
        """What the client sent (at most ``max_buffer`` octets); ``b""`` once it closed.

        Raises :class:`TimeoutError` when nothing came for ``timeout`` seconds.
        Cancelling a read loses nothing: the octets stay for the next one.
        """
        if not self._buffer and not self._eof:
            self.flush()  # never wait for the client with our answer still held back
            loop = asyncio.get_running_loop()
            waiter = loop.create_future()
            self._waiter = waiter
            # One timer on the waiter, not asyncio.timeout (a context manager, the current
            # task, a cancellation turned into TimeoutError) nor wait_for (a task): every
            # command of every session waits here.
            timer = None if timeout is None else loop.call_later(timeout, time_out, waiter)
            try:
                await waiter
            finally:
                if timer is not None:
                    timer.cancel()
                if self._waiter is waiter:
                    self._waiter = None
        data = bytes(self._buffer[: self.max_buffer])
        del self._buffer[: len(data)]
        if self._paused and len(self._buffer) < self.max_buffer:
            self._paused = False
            self.link.resume_reading()
        return data

    def write(self, data: bytes) -> None:
        """Send ``data``: at the latest in the next turn of the event loop.

        The replies to a pipelined group (RSET, MAIL, RCPT...) are answered
        without waiting in between: held until the loop turns (or a drain, a
        read, a close), they leave in one segment, as RFC 2920 section 3.2 asks of
        a server, instead of one send and one segment each through every relay
        on the way back.
        """
        if not self._out:
            try:
                asyncio.get_running_loop().call_soon(self._flush_soon)
            except RuntimeError:  # no loop runs (a test's synchronous use): send now
                self.link.write(data)
                return
        self._out.append(data)

    def _flush_soon(self) -> None:
        # Nobody to tell here: a connection that broke meanwhile fails the next drain.
        try:
            self.flush()
        except (OSError, RuntimeError) as exc:
            log.debug("reply not sent: %s", exc)

    def flush(self) -> None:
        """Send what :meth:`write` holds."""
        if self._out:
            data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
            self._out.clear()
            self.link.write(data)

    async def drain(self) -> None:
        self.flush()
        await self.link.drain()

    async def start_tls(
        self, context: ssl.SSLContext, go_ahead: bytes, *, timeout: float = TLS_HANDSHAKE_TIMEOUT
    ) -> None:
        """Send ``go_ahead`` (the 220 / OK / +OK), drop pending plaintext, and do the handshake.

        Reading stops before the go-ahead is written: the client starts its
        handshake as soon as it reads it, and those bytes must reach the TLS
        layer, not this buffer.  Whatever the buffer holds then was sent in
        plaintext after the command, and is dropped.  Raises
        :class:`TlsHandshakeFailed` if the handshake fails or takes longer
        than ``timeout``.
        """
        self.flush()
        self.link.pause_reading()
        self._paused = False  # the upgrade resumes reading, inside TLS
        self.write(go_ahead)
        try:
            await self.drain()
        except (OSError, ssl.SSLError) as exc:
            raise TlsHandshakeFailed(exc) from None
        self.plaintext_discarded += len(self._buffer)
        self._buffer.clear()
        try:
            async with asyncio.timeout(timeout):
                await self.link.start_tls(context, timeout)
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            log.debug("TLS handshake with %s failed: %s", self.peer, exc)
            raise TlsHandshakeFailed(exc) from None

    # --- what the connection is

    def get_extra_info(self, name: str) -> Any:
        return self.link.get_extra_info(name)

    @property
    def peer(self) -> tuple[str, int] | None:
        peer = self.get_extra_info("peername")
        return (peer[0], peer[1]) if peer else None

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        tls = self.get_extra_info("ssl_object")
        return tls if isinstance(tls, ssl.SSLObject) else None

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.flush()  # a last reply (221, 421) before the close
        self.link.close()

    async def wait_closed(self) -> None:
        await self.link.wait_closed()


def time_out(waiter: asyncio.Future[Any]) -> None:
    """A timer's end: what waits on ``waiter`` gets :class:`TimeoutError` (if still waiting)."""
    if not waiter.done():
        waiter.set_exception(TimeoutError())


# ---------------------------------------------------------------------------- sockets


class SocketLink(asyncio.Protocol):
    """The asyncio protocol under a :class:`LineConnection` of a server socket."""

    def __init__(self, on_open: Callable[[LineConnection], None], max_buffer: int) -> None:
        self.connection = LineConnection(self, max_buffer=max_buffer)
        self._on_open = on_open
        self.transport: asyncio.Transport | None = None
        self._tls = False
        self._lost = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # --- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._tls = transport.get_extra_info("sslcontext") is not None
        self._on_open(self.connection)

    def data_received(self, data: bytes) -> None:
        self.connection.feed(data)

    def eof_received(self) -> bool:
        self.connection.feed_eof()
        # Over plain TCP the half-closed connection stays open for our last replies
        # (TLS transports close on EOF whatever this returns).
        return not self._tls

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self.connection.feed_eof()
        self._release_drains()
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._release_drains()

    def _release_drains(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # --- Link

    def _transport(self) -> asyncio.Transport:
        assert self.transport is not None, "the link is not connected yet"
        return self.transport

    def write(self, data: bytes) -> None:
        self._transport().write(data)

    async def drain(self) -> None:
        if self._lost:
            raise ConnectionResetError("Connection lost")
        if self._write_paused:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            await waiter
            if self._lost:
                raise ConnectionResetError("Connection lost")

    def pause_reading(self) -> None:
        if not self._lost:
            self._transport().pause_reading()

    def resume_reading(self) -> None:
        if not self._lost:
            self._transport().resume_reading()

    async def start_tls(self, context: ssl.SSLContext, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        upgraded = await loop.start_tls(
            self._transport(), self, context, server_side=True, ssl_handshake_timeout=timeout
        )
        if upgraded is None:  # the transport closed under the handshake
            raise ConnectionResetError("the connection closed during the TLS handshake")
        self.transport = upgraded
        self._tls = True

    def get_extra_info(self, name: str) -> Any:
        return self._transport().get_extra_info(name)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)


#: Called with each new connection (it starts the session's task).
OnConnection = Callable[[LineConnection], None]


async def listen(
    address: str,
    port: int,
    on_connection: OnConnection,
    *,
    tls: ssl.SSLContext | None = None,
    max_buffer: int = MAX_BUFFER,
) -> asyncio.Server:
    """A listening socket whose connections are :class:`LineConnection` s.

    With ``tls`` the port speaks TLS from the first octet (POP3 on 995,
    IMAP4 on 993); the handshake is bounded by :data:`TLS_HANDSHAKE_TIMEOUT`.
    """
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SocketLink(on_connection, max_buffer),
        address,
        port,
        ssl=tls,
        ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if tls is not None else None,
        reuse_address=True,
    )


async def adopt(sock: socket.socket, *, max_buffer: int = MAX_BUFFER) -> LineConnection:
    """A :class:`LineConnection` for a socket accepted elsewhere (the server side of TLS)."""
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[LineConnection] = loop.create_future()
    await loop.connect_accepted_socket(lambda: SocketLink(opened.set_result, max_buffer), sock=sock)
    return await opened
