"""The ASA's SSH port: open from boot, the SSH server loaded on its first connection.

The SSH server (:mod:`.ssh_server`: asyncssh, and the cryptography it loads) costs
a firewall process about half a second of CPU and 10 MB to import, and most lab
firewalls never see an SSH client.  So the port is bound here at boot, as before
(a port already taken is still known at once), and each connection accepted is
handed to the SSH server, imported on the first one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from sitemail.server.listening import listening_socket

if TYPE_CHECKING:
    from sitemail.firewall.process import AsaDevice

log = logging.getLogger("sitemail.firewall")

#: Connections waiting to be accepted (asyncssh's own default).
BACKLOG = 100
#: After an accept fails (out of descriptors): the connection waits in the backlog.
ACCEPT_RETRY = 0.1


class SshListener:
    """Accepts on ``address``:``port`` and runs SSH on every connection."""

    def __init__(
        self, device: AsaDevice, address: str, port: int, syslog: Callable[[str], None]
    ) -> None:
        self.device = device
        self.address = address
        self.port = port
        self.syslog = syslog
        self._sock: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._connections: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Bind and listen (OSError if the port is taken); accept from now on."""
        self._sock = listening_socket(self.address, self.port, BACKLOG, blocking=False)
        self._accepting = asyncio.ensure_future(self._accept(self._sock))

    def close(self) -> None:
        """Stop listening (the connections signed in go on until they end)."""
        if self._accepting is not None:
            self._accepting.cancel()
        if self._sock is not None:
            self._sock.close()

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as exc:
                log.warning("cannot accept SSH on %s:%d: %s", self.address, self.port, exc)
                await asyncio.sleep(ACCEPT_RETRY)
                continue
            task = asyncio.ensure_future(self._serve(conn))
            self._connections.add(task)
            task.add_done_callback(self._connections.discard)

    async def _serve(self, conn: socket.socket) -> None:
        from sitemail.firewall.ssh_server import serve_connection

        try:
            await serve_connection(self.device, conn, self.address, self.port, self.syslog)
        except Exception as exc:  # one client's failure, whatever it is
            # Refused by the ssh lines, a failed key exchange, a client gone: that
            # connection only (the refusals are in the syslog already).
            log.debug("SSH connection on %s:%d ended: %r", self.address, self.port, exc)
            with contextlib.suppress(OSError):
                conn.close()
