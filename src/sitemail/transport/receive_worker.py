"""A receive worker process: SMTP sessions handed over by the transport process.

Forked by the hub's zygote (:mod:`sitemail.transport.worker_zygote`, this
module run as ``python -m sitemail.transport.receive_worker --server NAME
--zygote-fd N ...``, which has imported all of it once) for
:class:`sitemail.transport.receive_workers.ReceiveWorkers`, with its two
channels (:mod:`sitemail.transport.worker_ipc`).  It serves each
connection it is given with the transport's own
:class:`~sitemail.transport.receive_session.ReceiveSession` (same connectors,
permissions, TLS, Exchange Server authentication, protocol log files), writes
and fsyncs the message body into the queue's spool folder itself, and has the
transport process commit the envelope before it answers 250.  It exits when
the transport process closes the channels (stop, restart) or dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import os
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sitemail.clock import SYSTEM_CLOCK
from sitemail.mailflow.envelope import (
    AcceptError,
    AcceptOutcomeUnknown,
    Envelope,
    SpoolWriter,
)
from sitemail.mailflow.protocol_log import SESSION_IDS, NullProtocolLog, ProtocolLog
from sitemail.org.cached_directory import CachedDirectory
from sitemail.org.directory import Directory, open_directory
from sitemail.org.model import ReceiveConnector
from sitemail.org.pki import PeerVerifier
from sitemail.org.version_facts import facts_for
from sitemail.server import event_loop
from sitemail.server import zygote as worker_zygote
from sitemail.server.context import ProcessContext
from sitemail.server.line_connection import time_out
from sitemail.server.worker_processes import die_with_parent, log_as, set_title
from sitemail.transport.queue.spool import SpoolFile, unlink_quietly
from sitemail.transport.receive_config import (
    ACCEPT_THREADS,
    ReceiveConfig,
    ReceiveEnvironment,
    load_config,
    receive_log_limits,
    tls_contexts,
)
from sitemail.transport.receive_listeners import serve_connection
from sitemail.transport.worker_ipc import (
    IpcError,
    envelope_to_wire,
    frame,
    read_frame,
    receive_handoff,
)

log = logging.getLogger("sitemail.transport.worker")

# A commit takes milliseconds; a transport process that has not answered in this long
# is stuck, and the client is better told 451 than kept waiting.
ANSWER_TIMEOUT = 120.0


class RemoteAcceptor:
    """Spools here, commits in the transport process (``accept`` over the RPC channel)."""

    def __init__(self, spool_dir: Path, writer: asyncio.StreamWriter, shadow_id: str) -> None:
        self.spool_dir = spool_dir
        self.writer = writer
        self.shadow_id = shadow_id  # the queue database's; it changes only with the file
        self._requests = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._gone = False
        # Frames asked for in one turn of the event loop, written together at its end.
        self._out: list[bytes] = []
        # Sealing is an fsync: off the event loop, and many at once.
        self._pool = ThreadPoolExecutor(ACCEPT_THREADS, thread_name_prefix="seal")

    def send(self, message: tuple[object, ...]) -> None:
        """Send ``message`` to the transport process at the end of this turn of the loop.

        The sessions of one turn (a message ending here, a session closing there)
        share one write, and the transport process one wake-up to read them.  A
        write that fails is not told to anyone here: the channel is then broken,
        and :meth:`lost` (or the answer's timer) ends whatever waits for an answer.
        """
        if not self._out:
            asyncio.get_running_loop().call_soon(self._flush)
        self._out.append(frame(message))

    def _flush(self) -> None:
        data = b"".join(self._out)
        self._out.clear()
        if self.writer.is_closing():
            return
        try:
            self.writer.write(data)
        except (OSError, ConnectionError, RuntimeError) as exc:
            log.debug("the transport process's channel is gone: %s", exc)

    def open_spool(self) -> SpoolWriter:
        return SpoolFile(self.spool_dir)

    async def accept(self, spool: SpoolWriter, envelope: Envelope) -> int:
        if not isinstance(spool, SpoolFile):
            raise AcceptError("this spool writer was not opened by this worker")
        if not envelope.recipients:
            spool.abort()
            raise AcceptError("a message needs at least one recipient")
        loop = asyncio.get_running_loop()
        # A small body travels to the transport process, which keeps it in the queue
        # database; a large one is fsynced here first (off the loop: it waits on disk).
        inline = spool.take_inline()
        if inline is None:
            try:
                await loop.run_in_executor(self._pool, spool.seal)
            except Exception as exc:
                spool.abort()
                raise AcceptError(f"could not write the message to disk: {exc}") from exc
        if self._gone:
            # Nothing was sent: the message is certainly not queued, and 451 says so.
            unlink_quietly(spool.path)
            raise AcceptError("the transport process is gone")
        request = next(self._requests)
        answer: asyncio.Future[Any] = loop.create_future()
        self._waiting[request] = answer
        wire = envelope_to_wire(envelope)
        timer = loop.call_later(ANSWER_TIMEOUT, time_out, answer)  # one timer per message
        try:
            self.send(("accept", request, spool.name, spool.size, wire, inline))
            return int(await answer)
        except TimeoutError:
            # It may yet commit it: no reply at all, never a refusal (see AcceptOutcomeUnknown).
            raise AcceptOutcomeUnknown("the transport process did not answer in time") from None
        except (OSError, ConnectionError) as exc:
            raise AcceptOutcomeUnknown(f"the transport process is gone: {exc}") from exc
        finally:
            timer.cancel()
            self._waiting.pop(request, None)

    async def take_discards(self, peer: str, limit: int) -> list[int]:
        """XQDISCARD's answer, from the queue in the transport process (ShadowDesk)."""
        if self._gone:
            return []
        loop = asyncio.get_running_loop()
        request = next(self._requests)
        answer: asyncio.Future[Any] = loop.create_future()
        self._waiting[request] = answer
        try:
            self.send(("discards", request, peer, limit))
            async with asyncio.timeout(ANSWER_TIMEOUT):
                ids = await answer
        except (TimeoutError, OSError, ConnectionError, AcceptError, AcceptOutcomeUnknown):
            # Nothing told: the notifications stay queued there for the next XQDISCARD.
            return []
        finally:
            self._waiting.pop(request, None)
        return [int(i) for i in ids]

    def answered(self, message: tuple[object, ...]) -> None:
        kind, request = message[0], message[1]
        waiter = self._waiting.get(request) if isinstance(request, int) else None
        if waiter is None or waiter.done():
            return
        if (kind == "accepted" and isinstance(message[2], int)) or (
            kind == "discards" and isinstance(message[2], list)
        ):
            waiter.set_result(message[2])
        else:
            waiter.set_exception(AcceptError(str(message[2])))

    def lost(self) -> None:
        """The transport process is gone: what it was asked may or may not be committed."""
        self._gone = True
        for waiter in self._waiting.values():
            if not waiter.done():
                waiter.set_exception(AcceptOutcomeUnknown("the transport process is gone"))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class Worker:
    def __init__(self, args: argparse.Namespace, directory: Directory) -> None:
        self.args = args
        self.directory = directory
        self.config: ReceiveConfig = load_config(directory, args.server)
        self.handoff = socket.socket(fileno=args.handoff_fd)
        self.handoff.setblocking(False)
        self.sessions: set[asyncio.Task[None]] = set()
        self.done = asyncio.Event()
        self.acceptor: RemoteAcceptor | None = None
        self.env: ReceiveEnvironment | None = None
        self.rpc: asyncio.StreamWriter | None = None

    async def run(self) -> None:
        args = self.args
        reader, self.rpc = await asyncio.open_unix_connection(
            sock=socket.socket(fileno=args.rpc_fd)
        )
        self.acceptor = RemoteAcceptor(Path(args.spool), self.rpc, args.shadow_id)
        self.env = self._environment(self.acceptor)
        loop = asyncio.get_running_loop()
        loop.add_reader(self.handoff.fileno(), self._on_handoff)
        answers = asyncio.ensure_future(self._answers(reader))
        try:
            await self.done.wait()
        finally:
            loop.remove_reader(self.handoff.fileno())
            answers.cancel()
            for task in list(self.sessions):
                task.cancel()
            await asyncio.gather(answers, *self.sessions, return_exceptions=True)
            self.acceptor.lost()
            self.acceptor.close()
            self.env.protocol_log.close()

    def _environment(self, acceptor: RemoteAcceptor) -> ReceiveEnvironment:
        args = self.args
        settings = self.config.server.transport
        path = settings.receive_protocol_log_path
        home = Path(args.home)
        protocol_log: ProtocolLog | NullProtocolLog = (
            ProtocolLog.receive(
                home / path,
                clock=SYSTEM_CLOCK,
                limits=receive_log_limits(settings),
                version=facts_for(self.config.server.version).log_version,
            )
            if path
            else NullProtocolLog(SYSTEM_CLOCK)
        )
        pki = Path(args.pki)
        starttls, anonymous = tls_contexts(pki, args.server)
        return ReceiveEnvironment(
            directory=self.directory,
            clock=SYSTEM_CLOCK,
            acceptor=acceptor,
            pki_dir=pki,
            port_offset=args.port_offset,
            protocol_log=protocol_log,
            verifier=PeerVerifier.from_file(pki / "ca.pem", clock=SYSTEM_CLOCK),
            starttls_context=starttls,
            anonymous_tls_context=anonymous,
            shadow=acceptor,
        )

    async def _answers(self, reader: asyncio.StreamReader) -> None:
        assert self.acceptor is not None
        try:
            while (message := await read_frame(reader)) is not None:
                self.acceptor.answered(message)
        except (IpcError, OSError) as exc:
            log.error("the transport process's channel broke: %s", exc)
        finally:
            self.acceptor.lost()
            self.done.set()

    def _on_handoff(self) -> None:
        while not self.done.is_set():
            try:
                packet = receive_handoff(self.handoff)
            except (BlockingIOError, InterruptedError):
                return
            except (IpcError, OSError) as exc:
                log.error("bad hand-off from the transport process: %s", exc)
                self.done.set()
                return
            if packet is None:
                self.done.set()  # the transport process stopped or died
                return
            message, fds = packet
            if message[0] == "config":
                self.config = load_config(self.directory, self.args.server)
                log_ = self.env.protocol_log if self.env is not None else None
                if isinstance(log_, ProtocolLog):
                    # Set-TransportServer's ReceiveProtocolLogMax* apply without a restart.
                    log_.set_limits(receive_log_limits(self.config.server.transport))
            elif message[0] == "session" and len(fds) == 1:
                self._start_session(message[1], message[2], fds[0])
            else:
                for fd in fds:
                    socket.close(fd)
                log.error("unexpected hand-off %r", message[0])

    def _start_session(self, token: int, connector_id: str, fd: int) -> None:
        # Family and type given: the transport process only hands over TCP over IPv4
        # (receive connector bindings are IPv4), and no syscall asks the descriptor.
        conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM, fileno=fd)
        conn.setblocking(False)
        connector = _find(self.config.connectors, connector_id)
        if connector is None:
            # Removed between admission and now: as for no connector, no banner.
            conn.close()
            self._closed(token)
            return
        task = asyncio.ensure_future(self._session(token, connector, conn))
        self.sessions.add(task)
        task.add_done_callback(self.sessions.discard)

    async def _session(self, token: int, connector: ReceiveConnector, conn: socket.socket) -> None:
        assert self.env is not None
        try:
            await serve_connection(self.env, self.config, connector, conn)
        finally:
            self._closed(token)

    def _closed(self, token: int) -> None:
        if self.acceptor is not None:
            self.acceptor.send(("closed", token))


def _find(connectors: list[ReceiveConnector], identity: str) -> ReceiveConnector | None:
    for connector in connectors:
        if connector.identity == identity and connector.enabled:
            return connector
    return None


def _zygote_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sitemail.transport.receive_worker")
    p.add_argument("--server", required=True)
    # Only shown: with it a zygote's command line names its server's folder (ps, the lab).
    p.add_argument("--home")
    p.add_argument("--parent", type=int, required=True)
    # The pair the transport process asks for workers on (worker_zygote.serve).
    p.add_argument("--zygote-fd", type=int, required=True)
    return p


def _worker_parser() -> argparse.ArgumentParser:
    """A worker's own arguments: they come with each spawn request (worker_arguments)."""
    p = argparse.ArgumentParser(prog="sitemail.transport.receive_worker (worker)")
    p.add_argument("--server", required=True)
    p.add_argument("--directory", required=True)
    p.add_argument("--home", required=True)
    p.add_argument("--pki", required=True)
    p.add_argument("--port-offset", type=int, default=0)
    p.add_argument("--spool", required=True)
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--shadow-id", required=True)
    return p


def worker_arguments(ctx: ProcessContext, spool: Path, shadow_id: str, workers: int) -> list[str]:
    return [
        "--server",
        ctx.name,
        "--directory",
        ctx.directory_url,
        "--home",
        str(ctx.home),
        "--pki",
        str(ctx.pki_dir),
        "--port-offset",
        str(ctx.port_offset),
        "--spool",
        str(spool),
        "--workers",
        str(workers),
        "--shadow-id",
        shadow_id,
    ]


MODULE = "sitemail.transport.receive_worker"


def run_zygote(server: str, parent: int, control_fd: int, *, once: bool = False) -> int:
    """The zygote: everything a worker needs is imported; fork one per request (with
    ``once``, forked by the transport process itself: become the worker of the first)."""
    die_with_parent(parent)
    log_as(server, "worker" if once else "zygote")
    # Ctrl-C in a terminal reaches the whole process group: the transport process
    # decides when sessions end, and closing the channels tells this one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    zygote = os.getpid()
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401 - loaded before the fork, shared by every worker

    def run_worker(index: int, fds: list[int], arguments: list[str]) -> int:
        handoff_fd, rpc_fd = fds
        die_with_parent(parent if once else zygote)
        args = _worker_parser().parse_args(arguments)
        # Told apart from a zygote by its command line (ps, the lab's tests).
        # (Named in full: run as ``python -m``, this module's __name__ is "__main__".)
        set_title(f"{MODULE} --server {args.server} --home {args.home} --worker {index}")
        log_as(args.server, f"receive worker {index}")
        args.index, args.handoff_fd, args.rpc_fd = index, handoff_fd, rpc_fd
        # Session ids stay unique across the processes that share the log files.
        SESSION_IDS.share(index + 1, args.workers + 1)
        directory = CachedDirectory(open_directory(args.directory))
        try:
            event_loop.run(Worker(args, directory).run())
        finally:
            directory.close()
        return 0

    return worker_zygote.serve(control_fd, 2, run_worker, once=once)


def prefork_zygote(server: str, home: Path) -> bool:
    """Fork this hub's receive workers from the transport's own process, before its
    event loop (:func:`~sitemail.server.zygote.prefork_workers`).

    The workers then share this process's pages (the organization model, TLS, the
    SMTP stack and the queue it imported once) instead of holding an interpreter's
    copy of their own; :class:`ReceiveWorkers` takes them when it starts, and starts
    a zygote only to replace one.  Nothing is forked without workers to fork, or when
    this process runs a thread already.
    """
    from sitemail.transport.receive_workers import receive_worker_count

    count = receive_worker_count()
    if count:
        # The transport service's own modules: imported before the fork, they are shared.
        import sitemail.transport.service  # noqa: F401
    return worker_zygote.prefork_server_workers(MODULE, count, server, home, run_zygote)


def main(argv: list[str] | None = None) -> int:
    """The zygote started as an interpreter of its own (``python -m``)."""
    args = _zygote_parser().parse_args(argv)
    return run_zygote(args.server, args.parent, args.zygote_fd)


if __name__ == "__main__":
    sys.exit(main())
