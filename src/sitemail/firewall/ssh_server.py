"""The ASA's SSH server: the same console as ``sitemail asa``, for OpenSSH and other clients.

Each firewall listens on its management address, port 22 (shifted by the
lab's offset, like every port).  Who may connect is the running
configuration's: an ``ssh A.B.C.D MASK IF`` line must cover the client on
the interface it arrives on (the one whose network holds the client's
address, else the inside for the firewall's own site, its /16, and the
outside for everyone else); anyone else is refused before the key exchange
(``%ASA-3-710003``).  Sign-in is by password against the ``username`` lines
(``%ASA-6-605005`` / ``605004``); a session starts in user mode
(``ASA-NY>``), where ``enable`` asks for the ``enable password``, and ends
after ``ssh timeout`` minutes without a line.  The host key is made once per
firewall, on its first SSH connection, and kept in its folder
(``ssh_host_ed25519_key``), so clients see the same key across restarts.
This module (asyncssh and the cryptography it loads) is imported on that first
connection too: the port itself is :mod:`.ssh_listener`'s, open from boot.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import asyncssh

from sitemail.firewall.asa_cli_mgmt import ssh_permitted
from sitemail.firewall.asa_passwords import verify_password

if TYPE_CHECKING:
    from sitemail.firewall.process import AsaDevice

__all__ = ["HOST_KEY_FILE", "arrival_interface", "host_key", "serve_connection"]

log = logging.getLogger("sitemail.firewall")

HOST_KEY_FILE = "ssh_host_ed25519_key"
#: The first line a session prints, as the ASA console does.
WELCOME = "Type help or '?' for a list of available commands.\n"

Syslog = Callable[[str], None]

# Read once per process (each connection asks for it).
_host_keys: dict[Path, asyncssh.SSHKey] = {}


def host_key(home: Path) -> asyncssh.SSHKey:
    """The firewall's host key, made on first use and kept (mode 0600) in its folder."""
    path = home / HOST_KEY_FILE
    kept = _host_keys.get(path)
    if kept is not None:
        return kept
    if path.exists():
        key = _host_keys[path] = asyncssh.read_private_key(str(path))
        return key
    key = asyncssh.generate_private_key("ssh-ed25519")
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.export_private_key())
    os.replace(tmp, path)
    _host_keys[path] = key
    return key


def arrival_interface(device: AsaDevice, client: str, management: str) -> str:
    """The interface an SSH connection from ``client`` arrives on."""
    address = ipaddress.IPv4Address(client)
    for interface in device.running.interfaces:
        if interface.nameif and interface.address is not None:
            ip, mask = interface.address
            if address in ipaddress.IPv4Network(f"{ip}/{mask}", strict=False):
                return interface.nameif
    site = ipaddress.IPv4Network(f"{management}/16", strict=False)
    return "inside" if address in site else "outside"


class _Server(asyncssh.SSHServer):
    """One SSH connection: the access check, then password sign-in."""

    def __init__(self, device: AsaDevice, management: str, port: int, syslog: Syslog) -> None:
        self.device = device
        self.management = management
        self.port = port
        self.syslog = syslog
        self.peer = ("0.0.0.0", 0)
        self.interface = "outside"

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        peer = conn.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1])) if peer else self.peer
        self.interface = arrival_interface(self.device, self.peer[0], self.management)
        if not ssh_permitted(self.device.running, self.peer[0], self.interface):
            self.syslog(
                f"%ASA-3-710003: TCP access denied by ACL from {self.peer[0]}/{self.peer[1]} "
                f"to {self.interface}:{self.management}/ssh"
            )
            conn.abort()

    def begin_auth(self, username: str) -> bool:
        return True  # a password is always asked for

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        user = self.device.running.user(username)
        ok = user is not None and verify_password(password, user.password_hash)
        word = "permitted" if ok else "denied"
        number = "605005" if ok else "605004"
        self.syslog(
            f"%ASA-6-{number}: Login {word} from {self.peer[0]}/{self.peer[1]} to "
            f'{self.interface}:{self.management}/ssh for user "{username}"'
        )
        return ok


async def _session(device: AsaDevice, process: asyncssh.SSHServerProcess[str]) -> None:
    """The console over one SSH channel: prompt, a line, the answer, the next prompt."""
    sid, cli = device.open_session(privileged=False)
    stdout = process.stdout
    try:
        stdout.write(WELCOME + cli.prompt)
        while True:
            timeout = device.running.ssh_timeout * 60.0
            try:
                line = await asyncio.wait_for(process.stdin.readline(), timeout)
            except TimeoutError:
                break
            except (asyncssh.BreakReceived, asyncssh.TerminalSizeChanged):
                continue
            if not line:
                break
            result, closed = device.feed(sid, line.rstrip("\r\n"))
            set_echo = getattr(process.channel, "set_echo", None)
            if set_echo is not None and process.get_terminal_type() is not None:
                # On a terminal asyncssh's line editor echoes; a password must not show.
                set_echo(not result.prompt.startswith("Password"))
            stdout.write(result.output + ("" if closed else result.prompt))
            if closed:
                break
    except (asyncssh.DisconnectError, BrokenPipeError, ConnectionError):
        pass
    finally:
        device.close_session(sid)
        with contextlib.suppress(Exception):
            process.exit(0)


async def serve_connection(
    device: AsaDevice, sock: socket.socket, management: str, port: int, syslog: Syslog
) -> None:
    """SSH on one connection accepted on ``management``:``port`` (:mod:`.ssh_listener`)."""

    def factory() -> asyncssh.SSHServer:
        return _Server(device, management, port, syslog)

    async def handle(process: asyncssh.SSHServerProcess[str]) -> None:
        await _session(device, process)

    # Returns once the client is signed in; the connection goes on by itself.
    await asyncssh.run_server(
        sock,
        server_factory=factory,
        server_host_keys=[host_key(device.home)],
        process_factory=handle,
    )
