"""Receive worker processes: SMTP sessions on every core, one queue.

Python runs one thread of Python code at a time, so one process serves SMTP
sessions on one core however many a machine has.  Postfix, the peer of our
benchmark, runs an ``smtpd`` per session; Exchange's EdgeTransport.exe runs
its sessions on threads of every core.  Here the transport process keeps
everything that must be one (listening sockets, admission and connection
counts, the queue database, the tracking log, the pipeline) and hands each
admitted connection to one of N worker processes
(:mod:`sitemail.transport.receive_worker`), which run the very same
:class:`~sitemail.transport.receive_session.ReceiveSession`.  A worker
sends a small body's bytes (the queue database keeps them), or streams and
fsyncs a large one into the queue's spool folder, then has this process
commit it (:meth:`QueueStore.accept_spooled_group`, group commit across all
workers) and answers 250 only after the answer.

A worker that dies is started again; its sessions end (the clients see the
connection drop, never a 250 for a message that is not on disk).  When this
process dies, the workers see their channels close and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sitemail.mailflow.envelope import AcceptError, Envelope
from sitemail.org.model import ReceiveConnector
from sitemail.server.context import ProcessContext
from sitemail.server.worker_processes import worker_count
from sitemail.server.zygote import ForkedProcess, Zygote
from sitemail.transport.queue import QueueStore
from sitemail.transport.receive_worker import MODULE, worker_arguments
from sitemail.transport.worker_ipc import (
    IpcError,
    envelope_from_wire,
    frame,
    read_frame,
    send_handoff,
)

log = logging.getLogger("sitemail.transport.workers")

_ZYGOTE_MODULE = MODULE

#: ``SITEMAIL_RECEIVE_PROCESSES``: how many receive workers a hub runs (0: sessions
#: are served by the transport process itself).
WORKERS_VARIABLE = "SITEMAIL_RECEIVE_PROCESSES"
RESPAWN_DELAY = 0.5
MAX_RESPAWN_DELAY = 30.0
STABLE_AFTER = 10.0
STOP_TIMEOUT = 5.0


def receive_worker_count(environ: dict[str, str] | None = None) -> int:
    """Workers to start (:func:`~sitemail.server.worker_processes.worker_count`)."""
    return worker_count(WORKERS_VARIABLE, environ)


@dataclass
class _Worker:
    index: int
    process: ForkedProcess
    handoff: socket.socket
    writer: asyncio.StreamWriter
    sessions: dict[int, Callable[[], None]] = field(default_factory=dict)
    reader_task: asyncio.Task[None] | None = None
    alive: bool = True
    started: float = field(default_factory=time.monotonic)


class ReceiveWorkers:
    """The receive worker processes of one hub and the dispatch of sessions to them."""

    def __init__(self, ctx: ProcessContext, store: QueueStore, count: int) -> None:
        if count < 1:
            raise ValueError("a pool of receive workers needs at least one")
        self.ctx = ctx
        self.store = store
        self.count = count
        self.config_version = 0
        self._workers: list[_Worker | None] = [None] * count
        self._delays = [RESPAWN_DELAY / 2] * count
        self._tokens = itertools.count(1)
        # One group is committed at a time; the next one gathers meanwhile.
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="commit")
        self._pending: list[tuple[_Worker, tuple[object, ...]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._asking: set[asyncio.Task[None]] = set()  # discard requests being answered
        self._stopping = False
        # Until a worker is up (start, respawn) or when all are full, sessions are
        # served here: a connection is never dropped for want of a worker.
        self.fallback: Callable[[socket.socket, ReceiveConnector, Callable[[], None]], None]
        self.fallback = _refuse
        ctx = self.ctx
        self._zygote = Zygote(
            _ZYGOTE_MODULE,
            ["--server", ctx.name, "--home", str(ctx.home), "--parent", str(os.getpid())],
            "receive worker",
            # Its workers' own: a zygote forked before the queue opened could not know them.
            worker_arguments(ctx, store.spool_dir, store.shadow_id, count),
        )

    # --- life cycle

    async def start(self) -> None:
        await self._zygote.start()
        for index in range(self.count):
            self._workers[index] = await self._spawn(index)

    async def stop(self) -> None:
        self._stopping = True
        workers = [w for w in self._workers if w is not None]
        for worker in workers:
            self._retire(worker)
        for worker in workers:
            try:
                await asyncio.wait_for(worker.process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                log.warning("receive worker %d did not stop; killing it", worker.index)
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                await worker.process.wait()
            if worker.reader_task is not None:
                worker.reader_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker.reader_task
        if self._committer is not None:
            # Messages being committed get their answer (the worker may be gone).
            with contextlib.suppress(Exception):
                await self._committer
        self._pool.shutdown(wait=False, cancel_futures=True)
        await self._zygote.stop()

    async def _spawn(self, index: int) -> _Worker:
        parent_handoff, child_handoff = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        parent_rpc, child_rpc = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = await self._zygote.spawn(index, [child_handoff.fileno(), child_rpc.fileno()])
        except OSError:
            parent_handoff.close()
            parent_rpc.close()
            raise
        finally:
            child_handoff.close()
            child_rpc.close()
        parent_handoff.setblocking(False)
        reader, writer = await asyncio.open_unix_connection(sock=parent_rpc)
        worker = _Worker(index, process, parent_handoff, writer)
        worker.reader_task = asyncio.ensure_future(self._serve_worker(worker, reader))
        log.info("receive worker %d started (pid %d)", index, process.pid)
        return worker

    def _retire(self, worker: _Worker) -> None:
        """No more sessions for this worker; its open sessions no longer count."""
        if not worker.alive:
            return
        worker.alive = False
        with contextlib.suppress(OSError):
            worker.handoff.close()
        worker.writer.close()
        for release in worker.sessions.values():
            release()
        worker.sessions.clear()

    # --- dispatch (ReceiveListeners calls this for every admitted connection)

    def dispatch(
        self, conn: socket.socket, connector: ReceiveConnector, release: Callable[[], None]
    ) -> None:
        candidates = sorted(
            (w for w in self._workers if w is not None and w.alive),
            key=lambda w: len(w.sessions),
        )
        for worker in candidates:
            token = next(self._tokens)
            message = ("session", token, connector.identity, self.config_version)
            try:
                send_handoff(worker.handoff, message, conn.fileno())
            except (BlockingIOError, OSError, IpcError) as exc:
                log.debug("receive worker %d cannot take a session: %s", worker.index, exc)
                continue
            worker.sessions[token] = release
            conn.close()  # the worker holds its own descriptor now
            return
        self.fallback(conn, connector, release)

    def config_changed(self) -> None:
        """Connectors or the server changed: workers reload before their next session."""
        self.config_version += 1
        for worker in self._workers:
            if worker is not None and worker.alive:
                try:
                    send_handoff(worker.handoff, ("config", self.config_version))
                except (OSError, IpcError) as exc:
                    log.warning(
                        "receive worker %d missed a configuration change: %s", worker.index, exc
                    )
                    self._retire(worker)
                    with contextlib.suppress(ProcessLookupError):
                        worker.process.kill()

    # --- what a worker asks

    async def _serve_worker(self, worker: _Worker, reader: asyncio.StreamReader) -> None:
        try:
            while (message := await read_frame(reader)) is not None:
                kind = message[0]
                if kind == "accept":
                    self._pending.append((worker, message))
                    if self._committer is None or self._committer.done():
                        self._committer = asyncio.ensure_future(self._commit_pending())
                elif kind == "discards":
                    task = asyncio.ensure_future(self._discards(worker, message))
                    self._asking.add(task)
                    task.add_done_callback(self._asking.discard)
                elif kind == "closed":
                    release = worker.sessions.pop(message[1], None)
                    if release is not None:
                        release()
                else:
                    raise IpcError(f"unknown request {kind!r}")
        except (IpcError, ValueError, IndexError, OSError) as exc:
            log.error("receive worker %d broke its channel: %s", worker.index, exc)
        finally:
            self._retire(worker)
        returncode = await worker.process.wait()
        if self._stopping:
            return
        log.error(
            "receive worker %d (pid %d) ended%s; starting it again",
            worker.index,
            worker.process.pid,
            "" if returncode is None else f" with {returncode}",
        )
        # A worker that dies young (a broken installation, a bad certificate) is
        # started again less and less often, not twice a second forever.
        young = time.monotonic() - worker.started < STABLE_AFTER
        delay = min(self._delays[worker.index] * 2, MAX_RESPAWN_DELAY) if young else RESPAWN_DELAY
        self._delays[worker.index] = delay
        while not self._stopping:
            # Meanwhile the other workers (or this process, when none is left) serve.
            await asyncio.sleep(delay)
            if self._stopping:
                return
            try:
                self._workers[worker.index] = await self._spawn(worker.index)
                return
            except OSError as exc:
                log.error("cannot start receive worker %d: %s", worker.index, exc)
                delay = min(delay * 2, MAX_RESPAWN_DELAY)

    async def _discards(self, worker: _Worker, message: tuple[object, ...]) -> None:
        """XQDISCARD in a worker's session: the notifications held for that hub."""
        _, request, peer, limit = message
        if not isinstance(peer, str) or not isinstance(limit, int):
            log.error("receive worker %d sent a malformed discard request", worker.index)
            return
        ids = await asyncio.to_thread(self.store.take_discards, peer, limit)
        if worker.alive:
            with contextlib.suppress(OSError, ConnectionError):
                worker.writer.write(frame(("discards", request, ids)))

    async def _commit_pending(self) -> None:
        """Commit what the workers asked for, a group at a time (group commit).

        While one group is being committed the next gathers: under load each
        commit (one directory fsync, one WAL fsync) carries many messages.
        """
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            items: list[tuple[str, int, Envelope, bytes | None]] = []
            answers: list[tuple[_Worker, object, int | AcceptError | None]] = []
            for worker, message in batch:
                try:
                    _, request, name, size, wire, inline = message
                    if not (
                        isinstance(name, str)
                        and isinstance(size, int)
                        and (inline is None or isinstance(inline, bytes))
                    ):
                        raise IpcError("a malformed acceptance request")
                    items.append((name, size, envelope_from_wire(wire), inline))
                    answers.append((worker, request, None))
                except (IpcError, ValueError) as exc:
                    request = message[1] if len(message) > 1 else None
                    answers.append((worker, request, AcceptError(str(exc))))
            try:
                results = await loop.run_in_executor(
                    self._pool, self.store.accept_spooled_group, items
                )
            except Exception as exc:  # the database is gone: everybody hears why
                log.exception("committing messages of the receive workers failed")
                results = [AcceptError(f"{type(exc).__name__}: {exc}")] * len(items)
            outcomes = iter(results)
            out: dict[int, list[bytes]] = {}
            for worker, request, early in answers:
                outcome = early if early is not None else next(outcomes)
                answer = (
                    ("accepted", request, outcome)
                    if isinstance(outcome, int)
                    else ("refused", request, str(outcome))
                )
                out.setdefault(id(worker), []).append(frame(answer))
            for worker in {id(w): w for w, _ in batch}.values():
                if worker.alive and id(worker) in out:
                    with contextlib.suppress(OSError, ConnectionError):
                        worker.writer.write(b"".join(out[id(worker)]))


def _refuse(conn: socket.socket, connector: ReceiveConnector, release: Callable[[], None]) -> None:
    conn.close()
    release()
