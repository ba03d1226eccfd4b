"""Worker processes forked from one pre-loaded process (a zygote), sharing its memory.

A worker started as an interpreter of its own imports its whole stack before
its first connection: a receive worker (the organization model, the SMTP
stack, TLS, the queue) about 50 MB of RSS and a fifth of a second, a W3SVC
worker (aiohttp and the whole web site) about 75 MB and two thirds of a
second, nearly all of it the same bytes in every worker.  A server instead
starts one zygote per kind of worker (``python -m <worker module>
--zygote-fd N ...``) that imports them once, takes its objects out of the
cyclic garbage collector's reach (``gc.freeze``: a collection in a child
would write to every object's header and so copy every page) and forks a
worker for each request.  The workers share the zygote's pages: measured on
the receive workers, a zygote and four forked workers held 37 MB of PSS in
all (87 MB without the freeze), where five interpreters hold about 250 MB.

A server process that knows before its event loop starts that it will want
workers may instead fork the zygote from itself (:func:`prefork`, while it has
one thread and no loop): the zygote then shares the server process's own
pages (the organization model, TLS, the queue, everything both import) as
well, instead of an interpreter's worth of copies of them.  A preforked
zygote that dies is replaced by a started one.

Better still, it may fork its first workers themselves (:func:`prefork_workers`):
each child waits as a zygote would, but becomes the worker on the one request it
gets instead of forking it.  No zygote runs then, and the pages that the server
process and every worker have written to since the fork are not kept a third time
by a zygote that only waits (about 8 MB on a hub with two receive workers).  Only
when a worker must be replaced is a zygote started, as an interpreter of its own.

The server process asks over a SOCK_SEQPACKET pair: ``("spawn", index,
arguments)`` with the descriptors the worker is to hold (``arguments``: the
worker's command-line arguments, which a zygote forked before the server
process knew them, its queue for instance, could not have been given); the
zygote answers with the worker's pid.  The server process watches each worker through a pidfd
(readable when the process has ended; a signal sent through it cannot reach
another process that reused the pid).  The zygote ends when the server
process closes the pair or dies (PR_SET_PDEATHSIG), and its workers then end
with it (the same, set in each worker).  The zygote runs no event loop and
no thread, so a fork copies nothing half-done.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import NoReturn, Protocol

from sitemail.server.fd_passing import IpcError, receive_handoff, send_handoff
from sitemail.server.worker_processes import set_title

__all__ = [
    "ForkedProcess",
    "Zygote",
    "prefork",
    "prefork_server_workers",
    "prefork_workers",
    "quiet_collector",
    "serve",
]

log = logging.getLogger("sitemail.server.zygote")

READY = b"ready"
#: Starting the zygote imports everything a worker needs once; a slow disk may take seconds.
START_TIMEOUT = 60.0
#: A fork answers in milliseconds; a zygote that does not is stuck and is replaced.
SPAWN_TIMEOUT = 10.0


# --- the server process's side -------------------------------------------------------


class ForkedProcess:
    """A worker forked by the zygote: what the server process needs of a child process.

    The zygote, not this process, is its parent and reaps it, so its exit
    status is not known here (``returncode`` stays None); its end is.  With
    ``reap`` (a zygote this process forked itself) this process reaps it.
    """

    def __init__(self, pid: int, *, reap: bool = False) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._reap = reap  # a child of this process (a preforked zygote): its status is ours
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._ended: asyncio.Future[None] = loop.create_future()
        self._fd = -1
        try:
            self._fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._ended.set_result(None)  # gone already
            return
        loop.add_reader(self._fd, self._on_end)

    def _on_end(self) -> None:
        self._close()
        if self._reap:
            with contextlib.suppress(ChildProcessError):
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
        if not self._ended.done():
            self._ended.set_result(None)

    def _close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1

    @property
    def ended(self) -> bool:
        return self._ended.done()

    async def wait(self) -> int | None:
        await asyncio.shield(self._ended)
        return self.returncode

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, number: int) -> None:
        if self._fd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._fd, number)


class Zygote:
    """The server process's handle on a zygote: start it, ask it for workers.

    ``module``: the worker's module (run as ``python -m module ... --zygote-fd N``);
    ``arguments``: the command-line arguments every worker shares (server, folders,
    ...); ``label``: what the log and errors call it ("receive worker", "W3SVC worker").
    """

    def __init__(
        self, module: str, arguments: list[str], label: str, worker_arguments: Sequence[str] = ()
    ) -> None:
        self.module = module
        self.arguments = arguments
        self.worker_arguments = tuple(worker_arguments)  # with every spawn request
        self.label = label
        self.process: asyncio.subprocess.Process | ForkedProcess | None = None
        self._control: socket.socket | None = None
        self._lock = asyncio.Lock()
        # Workers forked by prefork_workers, each waiting for its one request.
        self._waiting: list[tuple[ForkedProcess, socket.socket]] = []

    @property
    def running(self) -> bool:
        process = self.process
        if process is None or self._control is None:
            return False
        if isinstance(process, ForkedProcess):
            return not process.ended
        return process.returncode is None

    async def start(self) -> None:
        waiting = _PREFORKED_WORKERS.pop(self.module, None)
        if waiting:
            # Workers of their own: no zygote until one of them must be replaced.
            for pid, control in waiting:
                self._waiting.append((ForkedProcess(pid, reap=True), control))
            for _, control in self._waiting:
                if await self._answer(control) != READY:
                    await self.stop()
                    raise OSError(f"the {self.label} forked from this process did not start")
            log.info(
                "%ss forked from this process (pids %s)",
                self.label,
                ", ".join(str(p.pid) for p, _ in self._waiting),
            )
            return
        preforked = _PREFORKED.pop(self.module, None)
        if preforked is not None:
            pid, control = preforked
            self.process = ForkedProcess(pid, reap=True)
            await self._ready(control)
            log.info("%s zygote forked from this process (pid %d)", self.label, pid)
            return
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                *self.arguments,
                "--zygote-fd",
                str(child.fileno()),
                pass_fds=(child.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
            )
        finally:
            child.close()
        await self._ready(parent)
        log.info("%s zygote started (pid %d)", self.label, self.process.pid)

    async def _ready(self, parent: socket.socket) -> None:
        self._control = parent
        answer = await self._answer(parent)
        if answer != READY:
            await self.stop()
            raise OSError(f"the {self.label} zygote did not start ({answer!r})")

    @staticmethod
    async def _answer(control: socket.socket, timeout: float = START_TIMEOUT) -> bytes:
        """What the other end says next; b"" when it ended, was silent or broke."""
        control.setblocking(False)
        try:
            return await asyncio.wait_for(
                asyncio.get_running_loop().sock_recv(control, 64), timeout
            )
        except (TimeoutError, OSError):
            return b""

    async def _take_waiting(self, index: int, fds: Sequence[int]) -> ForkedProcess | None:
        """A worker forked by prefork_workers made worker ``index``; None when none is left."""
        while self._waiting:
            process, control = self._waiting.pop(0)
            try:
                if process.ended:
                    continue
                try:
                    send_handoff(control, ("spawn", index, self.worker_arguments), *fds)
                except (OSError, IpcError):
                    answer = b""
                else:
                    answer = await self._answer(control, SPAWN_TIMEOUT)
                if answer == str(process.pid).encode():
                    return process
                process.kill()  # it broke its one request: another one serves
            finally:
                control.close()
        return None

    async def spawn(self, index: int, fds: Sequence[int]) -> ForkedProcess:
        """A new worker holding copies of ``fds`` (this process keeps its own)."""
        async with self._lock:
            forked = await self._take_waiting(index, fds)
            if forked is not None:
                return forked
            if not self.running:
                # Gone (killed, or its workers' parent died with it): a new one.
                await self.stop()
                await self.start()
            control = self._control
            assert control is not None
            try:
                send_handoff(control, ("spawn", index, self.worker_arguments), *fds)
                answer = await asyncio.wait_for(
                    asyncio.get_running_loop().sock_recv(control, 64), SPAWN_TIMEOUT
                )
                pid = int(answer)
            except (OSError, IpcError, TimeoutError, ValueError) as exc:
                await self.stop()
                raise OSError(f"the {self.label} zygote did not fork worker {index}") from exc
            return ForkedProcess(pid)

    async def stop(self) -> None:
        """Close the pair (the zygote ends) and wait for it; kill it if it does not.
        Workers still waiting for their request end the same way."""
        waiting, self._waiting = self._waiting, []
        for _, control in waiting:
            control.close()
        for worker, _ in waiting:
            try:
                await asyncio.wait_for(worker.wait(), 5.0)
            except TimeoutError:
                worker.kill()
                await worker.wait()
        if self._control is not None:
            self._control.close()
            self._control = None
        process, self.process = self.process, None
        if process is None:
            return
        try:
            await asyncio.wait_for(process.wait(), 5.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


#: Zygotes forked by :func:`prefork` and not yet taken by a :class:`Zygote` (by module).
_PREFORKED: dict[str, tuple[int, socket.socket]] = {}


def prefork(module: str, run_zygote: Callable[[int], int]) -> bool:
    """Fork the zygote of ``module`` from this process now: ``run_zygote(control_fd)``
    runs in the child, and :meth:`Zygote.start` of that module takes it.

    Only before this process starts its event loop or any thread (a fork copies
    one thread; a lock another held would stay held forever in the child): with
    more than one thread it forks nothing and says False (the zygote is then
    started as an interpreter of its own).  The child never returns to the
    caller: it leaves with ``os._exit``, so nothing this process opened (a
    database connection, its pid file) is closed or removed by it.
    """
    if threading.active_count() > 1 or module in _PREFORKED:
        return False
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # What both processes hold from now on stays shared only if neither collection
    # writes to it (see serve()): this process's own objects are left alone too.
    gc.collect()
    gc.freeze()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        parent.close()
        _child(lambda: run_zygote(child.detach()))
    child.close()
    _PREFORKED[module] = (pid, parent)
    return True


#: Workers forked by :func:`prefork_workers` and not yet taken by a :class:`Zygote`.
_PREFORKED_WORKERS: dict[str, list[tuple[int, socket.socket]]] = {}


def prefork_workers(module: str, count: int, run_zygote: Callable[[int], int]) -> bool:
    """Fork ``count`` workers of ``module`` from this process now, each a zygote for one
    request (``run_zygote(control_fd)`` runs :func:`serve` with ``once``):
    :meth:`Zygote.start` takes them and :meth:`Zygote.spawn` makes each a worker.

    As :func:`prefork`: only while this process runs one thread, and a child never
    returns to the caller.
    """
    if count < 1 or threading.active_count() > 1 or module in _PREFORKED_WORKERS:
        return False
    gc.collect()
    gc.freeze()
    sys.stdout.flush()
    sys.stderr.flush()
    forked: list[tuple[int, socket.socket]] = []
    for _ in range(count):
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            parent.close()
            # A sibling's channel, or another pool's, is not this worker's (holding one
            # would keep that worker from seeing its server process close it).
            for _, other in forked:
                other.close()
            for pool in _PREFORKED_WORKERS.values():
                for _, other in pool:
                    other.close()
            for _, other in _PREFORKED.values():
                other.close()
            _child(partial(run_zygote, child.detach()))
        child.close()
        forked.append((pid, parent))
    _PREFORKED_WORKERS[module] = forked
    return True


class RunZygote(Protocol):
    """A worker module's zygote: ``run_zygote(server, parent, control_fd, once=...)``."""

    def __call__(self, server: str, parent: int, control_fd: int, *, once: bool = False) -> int: ...


def prefork_server_workers(
    module: str, count: int, server: str, home: Path, run_zygote: RunZygote
) -> bool:
    """:func:`prefork_workers` for a server process's pool of ``module``: each child shows
    ``<module> --server <server> --home <home>`` as its command line (the lab tells its
    processes apart by it; a worker adds its index) and becomes a worker of this process."""
    if count < 1:
        return False
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401 - the event loop's module, shared by every worker
    parent = os.getpid()

    def run(control_fd: int) -> int:
        set_title(f"{module} --server {server} --home {home}")
        return run_zygote(server, parent, control_fd, once=True)

    return prefork_workers(module, count, run)


#: Container allocations between two collections of the youngest generation in a worker
#: that serves requests (CPython's default, 700, set one off every request or two).
WORKER_GC_THRESHOLD = 20_000


def quiet_collector() -> None:
    """For a worker whose start-up is done: what it has built is left out of collections
    from now on (``gc.freeze``, as the zygote did with its imports), and the youngest
    generation waits for :data:`WORKER_GC_THRESHOLD` allocations.  A request's garbage
    is almost all freed by reference counting; the collector only looks for cycles."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(WORKER_GC_THRESHOLD, middle, oldest)


def _child(run: Callable[[], int]) -> NoReturn:
    """A forked child's whole life: ``run``, then out with its code, never back into the
    parent's stack (no atexit, no finally of the parent's: its files and pid are not ours)."""
    code = 1
    try:
        code = run()
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


# --- the zygote process ------------------------------------------------------------------


def serve(
    control_fd: int,
    fd_count: int,
    run_worker: Callable[[int, list[int], list[str]], int],
    *,
    once: bool = False,
) -> int:
    """The zygote's loop: fork ``run_worker(index, fds, arguments)`` for each request
    carrying ``fd_count`` descriptors.  With ``once`` (:func:`prefork_workers`) the first
    request is run here, by this process, which answers with its own pid."""
    control = socket.socket(fileno=control_fd)
    control.setblocking(True)
    gc.collect()
    gc.freeze()
    if not once:
        # Workers are reaped by the kernel: the server process watches them by pidfd.
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    control.send(READY)
    while True:
        try:
            packet = receive_handoff(control)
        except (IpcError, OSError) as exc:
            log.error("bad request from the server process: %s", exc)
            return 1
        if packet is None:
            return 0  # the server process closed the pair or is gone
        message, fds = packet
        if (
            message[0] != "spawn"
            or len(message) != 3
            or len(fds) != fd_count
            or not all(isinstance(a, str) for a in message[2])
        ):
            for fd in fds:
                os.close(fd)
            control.send(b"-")  # not a pid: the server process reads it as a failure
            continue
        if once:
            control.send(str(os.getpid()).encode())
            control.close()
            return run_worker(int(message[1]), list(fds), list(message[2]))
        pid = os.fork()
        if pid == 0:
            control.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _child(partial(run_worker, int(message[1]), list(fds), list(message[2])))
        for fd in fds:
            os.close(fd)
        control.send(str(pid).encode())
