"""A W3SVC worker process: the whole web site, accepting on the socket its server process bound.

:class:`~.workers.WebWorkers` takes the workers its server process forked
before its event loop (:func:`prefork`), or starts ``python -m
sitemail.access.web.worker --server NAME ... --zygote-fd N``: a zygote
(:mod:`sitemail.server.zygote`) that imports the web site and forks each worker.
Either way a worker gets the listening socket, a pipe carrying the shared
secret, and its arguments with the request.  A worker runs the same
:class:`~.service.W3svcService` as a server process without workers, on that
socket, with the state its siblings share (:class:`~.workers.SharedWebState`).
SIGTERM ends it cleanly (open requests get :data:`~.service.SHUTDOWN_TIMEOUT`
to finish); it dies with its parent (its server process, or its zygote, which dies
with its server process).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path

from sitemail.access.http_protocols import register_http_protocols
from sitemail.access.web.service import W3svcService
from sitemail.access.web.workers import MODULE, SECRET_BYTES, SharedWebState, web_worker_count
from sitemail.org.cached_directory import CachedDirectory
from sitemail.org.directory import open_directory
from sitemail.server import event_loop
from sitemail.server.context import ProcessContext
from sitemail.server.watcher import DirectoryWatcher
from sitemail.server.worker_processes import die_with_parent, log_as, set_title
from sitemail.server.zygote import prefork_server_workers, quiet_collector, serve

log = logging.getLogger("sitemail.w3svc.worker")


def _zygote_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=MODULE)
    p.add_argument("--server", required=True)
    # Only shown: with it a zygote's command line names its server's folder (ps, the lab).
    p.add_argument("--home")
    for name in ("parent", "zygote-fd"):
        p.add_argument(f"--{name}", type=int, required=True)
    return p


def _worker_parser() -> argparse.ArgumentParser:
    """A worker's own arguments: they come with each spawn request (worker_arguments)."""
    p = argparse.ArgumentParser(prog=f"{MODULE} (worker)")
    for name in ("server", "site", "address", "directory", "base-dir", "home", "pki", "state"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--workers", type=int, required=True)
    p.add_argument("--port-offset", type=int, default=0)
    p.add_argument("--header-wait", type=float, required=True)
    p.add_argument("--max-connections-per-address", type=int, required=True)
    return p


def _read_secret(fd: int) -> bytes:
    with os.fdopen(fd, "rb") as pipe:
        secret = pipe.read(SECRET_BYTES + 1)
    if len(secret) != SECRET_BYTES:
        raise SystemExit(f"W3SVC worker: expected a {SECRET_BYTES}-byte secret on the pipe")
    return secret


async def _serve(
    ctx: ProcessContext, args: argparse.Namespace, listener: socket.socket, shared: SharedWebState
) -> None:
    watcher = DirectoryWatcher(ctx.directory)
    service = W3svcService(
        ctx,
        watcher,
        header_wait=args.header_wait,
        max_connections_per_address=args.max_connections_per_address,
        listener=listener,
        shared=shared,
    )
    register_http_protocols(service)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await service.start()
    watcher.start()
    quiet_collector()
    try:
        await stop.wait()
    finally:
        await watcher.stop()
        await service.stop()


def run_zygote(server: str, parent: int, control_fd: int, *, once: bool = False) -> int:
    """The zygote: the web site is imported; fork a worker per request (with ``once``,
    forked by the server process itself: become the worker of the first)."""
    die_with_parent(parent)
    log_as(server, "W3SVC worker" if once else "W3SVC worker zygote")
    # Ctrl-C in a terminal reaches the whole process group: the server process
    # decides when the service stops, and SIGTERM tells each worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    zygote = os.getpid()
    with contextlib.suppress(ImportError):
        import uvloop  # noqa: F401 - loaded before the fork, shared by every worker

    def run_worker(index: int, fds: list[int], arguments: list[str]) -> int:
        listen_fd, secret_fd = fds
        die_with_parent(parent if once else zygote)
        args = _worker_parser().parse_args(arguments)
        # Told apart from a zygote by its command line (ps, the lab's tests).
        set_title(f"{MODULE} --server {args.server} --home {args.home} --worker {index}")
        log_as(args.server, f"W3SVC worker {index}")
        # A peer gone mid-answer is EPIPE for that connection, never this process's death.
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        secret = _read_secret(secret_fd)
        shared = SharedWebState(Path(args.state), secret, args.workers)
        listener = socket.socket(fileno=listen_fd)
        directory = CachedDirectory(open_directory(args.directory))
        ctx = ProcessContext(
            name=args.server,
            site=args.site,
            address=args.address,
            directory=directory,
            directory_url=args.directory,
            base_dir=Path(args.base_dir),
            home=Path(args.home),
            pki_dir=Path(args.pki),
            port_offset=args.port_offset,
        )
        try:
            event_loop.run(_serve(ctx, args, listener, shared))
        finally:
            directory.close()
        return 0

    return serve(control_fd, 2, run_worker, once=once)


def prefork(server: str, home: Path) -> bool:
    """Fork this Client Access server's W3SVC workers from its own process, before its
    event loop (:func:`~sitemail.server.zygote.prefork_workers`).

    The workers then share the server process's pages, the web site among them
    (imported here for that), instead of a zygote's that imported everything a second
    time; :class:`~.workers.WebWorkers` takes them when the W3SVC starts, and starts a
    zygote only to replace one.  Nothing is forked without workers to fork.
    """
    return prefork_server_workers(MODULE, web_worker_count(), server, home, run_zygote)


def main(argv: list[str] | None = None) -> int:
    """The zygote started as an interpreter of its own (``python -m``)."""
    args = _zygote_parser().parse_args(argv)
    return run_zygote(args.server, args.parent, args.zygote_fd)


if __name__ == "__main__":
    sys.exit(main())
