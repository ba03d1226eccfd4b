"""W3SVC worker processes: the web site on every core, one listening socket, shared sessions.

One Python process serves HTTPS on one core (Python runs one thread of
Python code at a time).  IIS runs its web site in worker processes
(``w3wp.exe``) behind one HTTP.sys queue; here the W3SVC of the server
process binds the listening socket and starts N worker processes
(:mod:`.worker`) that inherit it and accept from it, each one the whole web
site (TLS, OWA, ECP, EWS, ActiveSync, Autodiscover).  The kernel gives each
connection to one worker; a connection waiting in the backlog of a worker
that dies is taken by another, since the backlog belongs to the socket.

What a user's next request needs, whichever worker takes it, is shared
(:class:`SharedWebState`): the forms sessions (sign-in in one worker,
sign-out in any) and ActiveSync's sync states live in SQLite files of one
folder that the service empties at each start, under a secret that it makes
at each start and hands to its workers over a pipe (never on a command
line).  Account lockout counts are the directory's, as before.

The connections one client address holds are counted for the server in a
shared table too (:mod:`.connection_guard`); when a worker dies, its share
is dropped.  Per worker, with the limit divided by the number of workers: a
client address's wrong passwords (:mod:`sitemail.access.throttle`).  The
wrong passwords counted for a typed name that is no account stay per worker
at the full count (they protect no password; they make such a name look
locked out as an account does).

A worker that dies is started again (less and less often if it dies
young); stopping the service stops every worker; a worker whose server
process is killed dies with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from sitemail.access.web.connection_guard import SharedAddressCounts
from sitemail.server import listening
from sitemail.server.context import ProcessContext
from sitemail.server.worker_processes import worker_count
from sitemail.server.zygote import ForkedProcess, Zygote

__all__ = [
    "WORKERS_VARIABLE",
    "SharedWebState",
    "WebWorkers",
    "shared_table_file",
    "web_worker_count",
]

log = logging.getLogger("sitemail.w3svc.workers")

#: ``SITEMAIL_W3SVC_PROCESSES``: how many W3SVC worker processes a Client Access
#: server runs (0: the server process serves the web site itself).
WORKERS_VARIABLE = "SITEMAIL_W3SVC_PROCESSES"
RESPAWN_DELAY = 0.5
MAX_RESPAWN_DELAY = 30.0
STABLE_AFTER = 10.0
STOP_TIMEOUT = 10.0
SECRET_BYTES = 32
#: Connections waiting to be accepted by some worker (HTTP.sys's queue is longer).
BACKLOG = 511
#: How long a worker waits for another that is writing a shared table.
BUSY_TIMEOUT = 5.0


#: The workers' module (run as ``python -m`` for a zygote of its own).
MODULE = "sitemail.access.web.worker"


def worker_arguments(
    ctx: ProcessContext, shared: SharedWebState, *, header_wait: float, max_per_address: int
) -> list[str]:
    return [
        "--server", ctx.name,
        "--site", ctx.site,
        "--address", ctx.address,
        "--directory", ctx.directory_url,
        "--base-dir", str(ctx.base_dir),
        "--home", str(ctx.home),
        "--pki", str(ctx.pki_dir),
        "--port-offset", str(ctx.port_offset),
        "--state", str(shared.folder),
        "--workers", str(shared.workers),
        "--header-wait", str(header_wait),
        "--max-connections-per-address", str(max_per_address),
    ]  # fmt: skip


def web_worker_count(environ: dict[str, str] | None = None) -> int:
    """Workers to start (:func:`~sitemail.server.worker_processes.worker_count`)."""
    return worker_count(WORKERS_VARIABLE, environ)


@dataclass(frozen=True)
class SharedWebState:
    """What the workers of one W3SVC share: a folder of state files, a secret, their number."""

    folder: Path
    secret: bytes
    workers: int

    @property
    def sessions_file(self) -> Path:
        return self.folder / "sessions.db"

    @property
    def sync_states_file(self) -> Path:
        return self.folder / "activesync-states.db"

    @property
    def connections_file(self) -> Path:
        return self.folder / "connections.db"

    def divided(self, limit: int) -> int:
        """A per-server limit as each worker applies it (never below one)."""
        return max(1, limit // self.workers)


def shared_table_file(path: Path | None) -> sqlite3.Connection:
    """A SQLite database of state the workers share (``path``), or of this process (None).

    No statement waits on the disk: the state dies with the service anyway
    (each start begins with an empty folder), so nothing is fsynced.  Each
    statement is its own transaction unless the caller says ``BEGIN``.
    """
    db = sqlite3.connect(
        str(path) if path is not None else ":memory:",
        isolation_level=None,
        check_same_thread=False,
        timeout=BUSY_TIMEOUT,
    )
    if path is not None:
        _wal(db)
        db.execute("PRAGMA synchronous=OFF")
    return db


def _wal(db: sqlite3.Connection) -> None:
    """Switch the file to WAL.  Workers start together and open the same new files: the
    switch takes the file for itself, and SQLite answers "database is locked" at once to
    the others (the busy timeout does not cover it), so it is tried again for a while."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def listening_socket(address: str, port: int) -> socket.socket:
    return listening.listening_socket(address, port, BACKLOG)


class WebWorkers:
    """The worker processes of one W3SVC, all accepting on ``listener``."""

    def __init__(
        self,
        ctx: ProcessContext,
        listener: socket.socket,
        shared: SharedWebState,
        *,
        header_wait: float,
        max_connections_per_address: int,
    ) -> None:
        if shared.workers < 1:
            raise ValueError("a pool of W3SVC workers needs at least one")
        self.ctx = ctx
        self.listener = listener
        self.shared = shared
        self.header_wait = header_wait
        self.max_connections_per_address = max_connections_per_address
        self._processes: list[ForkedProcess | None] = [None] * shared.workers
        self._supervisors: list[asyncio.Task[None]] = []
        self._stopping = False
        # The workers are forked from the server process (worker.prefork) or from one
        # zygote that imported the web site once (server.zygote): two thirds of a second
        # and most of 75 MB saved per worker.
        self._zygote = Zygote(
            MODULE,
            ["--server", ctx.name, "--home", str(ctx.home), "--parent", str(os.getpid())],
            "W3SVC worker",
            worker_arguments(
                ctx,
                shared,
                header_wait=header_wait,
                max_per_address=max_connections_per_address,
            ),
        )

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._processes if p is not None and not p.ended]

    async def start(self) -> None:
        await self._zygote.start()
        for index in range(self.shared.workers):
            self._processes[index] = await self._spawn(index)
            self._supervisors.append(asyncio.ensure_future(self._supervise(index)))

    async def stop(self) -> None:
        self._stopping = True
        for task in self._supervisors:
            task.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)
        try:
            await self._stop_workers()
        finally:
            await self._zygote.stop()

    async def _stop_workers(self) -> None:
        running = [p for p in self._processes if p is not None and not p.ended]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()  # the worker closes its connections and exits
        for process in running:
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                log.warning("W3SVC worker (pid %d) did not stop; killing it", process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()

    async def _spawn(self, index: int) -> ForkedProcess:
        # The secret goes through a pipe: a command line is readable by every user.
        secret_r, secret_w = os.pipe()
        try:
            os.write(secret_w, self.shared.secret)
            os.close(secret_w)
            process = await self._zygote.spawn(index, [self.listener.fileno(), secret_r])
        finally:
            os.close(secret_r)
        log.info("W3SVC worker %d started (pid %d)", index, process.pid)
        return process

    def _forget(self, pid: int) -> None:
        db = shared_table_file(self.shared.connections_file)
        try:
            SharedAddressCounts(db).forget(pid)
        finally:
            db.close()

    async def _supervise(self, index: int) -> None:
        delay = RESPAWN_DELAY / 2
        while True:
            process = self._processes[index]
            assert process is not None
            started = time.monotonic()
            await process.wait()
            if self._stopping:
                return
            log.error("W3SVC worker %d (pid %d) ended; starting it again", index, process.pid)
            # One that dies young (a bad certificate, a broken installation) is started
            # again less and less often, not twice a second forever; meanwhile the
            # other workers take the connections.
            # Its connections died with it: they no longer count against their addresses.
            await asyncio.to_thread(self._forget, process.pid)
            young = time.monotonic() - started < STABLE_AFTER
            delay = min(delay * 2, MAX_RESPAWN_DELAY) if young else RESPAWN_DELAY
            while True:
                await asyncio.sleep(delay)
                try:
                    self._processes[index] = await self._spawn(index)
                    break
                except OSError as exc:
                    log.error("cannot start W3SVC worker %d: %s", index, exc)
                    delay = min(delay * 2, MAX_RESPAWN_DELAY)
