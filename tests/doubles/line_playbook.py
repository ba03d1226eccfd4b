"""A client played from a script, under a real :class:`LineConnection`: sessions without sockets.

Each step of a :class:`Playbook` waits until the server has written some text
(after the previous step's) and then sends bytes, as a pipelining client
would; ``b""`` closes the client's side.  The link behaves as a socket does
where it matters to STARTTLS: while the server paused reading, what the
client sends waits (in the kernel, for a socket), and after the upgrade it
arrives as TLS payload.  No handshake happens: the test plays the bytes
inside TLS in clear.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from typing import Any

from sitemail.server.line_connection import LineConnection

Step = tuple[bytes, bytes]
"""(text the server must have sent, bytes the client sends then)."""


class Playbook:
    def __init__(
        self,
        steps: Sequence[Step],
        *,
        peer: tuple[str, int] = ("192.0.2.7", 40000),
        local: tuple[str, int] = ("192.0.2.1", 25),
    ) -> None:
        self.steps = list(steps)
        self.peer, self.local = peer, local
        self.sent = bytearray()  # everything the server wrote, in order
        self.tls_started_at: int | None = None  # len(sent) when the upgrade happened
        self.closed = False
        self._seen = 0
        self._paused = False
        self._held: list[bytes] = []
        self.connection = LineConnection(self)

    # --- what the test reads

    @property
    def transcript(self) -> str:
        return self.sent.decode("utf-8", errors="replace")

    @property
    def after_tls(self) -> str:
        assert self.tls_started_at is not None, "no TLS upgrade happened"
        return self.sent[self.tls_started_at :].decode("utf-8", errors="replace")

    # --- the client

    def _advance(self) -> None:
        while self.steps:
            expect, data = self.steps[0]
            found = self.sent.find(expect, self._seen)
            if found < 0:
                return
            self.steps.pop(0)
            self._seen = found + len(expect)
            self._send(data)

    def _send(self, data: bytes) -> None:
        if self._paused:
            self._held.append(data)
        elif data:
            self.connection.feed(data)
        else:
            self.connection.feed_eof()

    def _release(self) -> None:
        self._paused = False
        held, self._held = self._held, []
        for data in held:
            self._send(data)

    # --- Link

    def write(self, data: bytes) -> None:
        self.sent += data
        self._advance()

    async def drain(self) -> None:
        return None

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        self._release()

    async def start_tls(self, context: ssl.SSLContext, timeout: float) -> None:
        self.tls_started_at = len(self.sent)
        self._release()

    def get_extra_info(self, name: str) -> Any:
        return {"peername": self.peer, "sockname": self.local}.get(name)

    def close(self) -> None:
        self.closed = True

    async def wait_closed(self) -> None:
        return None
