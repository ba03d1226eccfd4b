"""A local console for processes that are not Exchange servers (firewalls, the Internet host).

Like a serial console: a Unix socket in the lab folder, readable only by its
owner (mode 0600), one JSON object per line each way.  It needs no
certificate because only someone who can open the lab folder can reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ConsoleHandler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

MAX_LINE = 1024 * 1024
# Unix socket paths are limited to 107 bytes; fall back to a short link when deeper.
_SUN_PATH_MAX = 100


class ConsoleError(Exception):
    pass


async def serve_console(path: Path, handlers: dict[str, ConsoleHandler]) -> asyncio.AbstractServer:
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), timeout=3600)
                except (TimeoutError, ValueError):
                    break
                if not line:
                    break
                try:
                    request = json.loads(line)
                    handler = handlers.get(str(request.get("cmd")))
                    if handler is None:
                        reply: dict[str, Any] = {
                            "error": f"unknown console command {request.get('cmd')!r}; "
                            f"expected one of {', '.join(sorted(handlers))}"
                        }
                    else:
                        reply = await handler(request)
                except Exception as exc:  # one bad request must not kill the console
                    reply = {"error": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()

    short = _short_path(path)
    server = await asyncio.start_unix_server(on_client, path=str(short), limit=MAX_LINE)
    os.chmod(short, 0o600)
    if short != path:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        path.symlink_to(short)
    return server


def _short_path(path: Path) -> Path:
    if len(str(path)) <= _SUN_PATH_MAX:
        return path
    import hashlib

    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return Path("/tmp") / f"sitemail-{digest}.sock"


class ConsoleClient:
    """A blocking client: one connection, requests answered in order."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        target = path.resolve() if path.is_symlink() else path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(str(target))
        except OSError as exc:
            self._sock.close()
            raise ConsoleError(f"cannot reach the console at {path}: {exc.strerror}") from None
        self._file = self._sock.makefile("rwb")

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        self._file.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        self._file.flush()
        line = self._file.readline(MAX_LINE)
        if not line:
            raise ConsoleError("the console closed the connection")
        reply = json.loads(line)
        if not isinstance(reply, dict):
            raise ConsoleError("the console sent something that is not a JSON object")
        return reply

    def close(self) -> None:
        self._file.close()
        self._sock.close()

    def __enter__(self) -> ConsoleClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
