"""A zygote forked from this process (prefork): taken by Zygote.start, forks workers that get
their arguments with the request, is reaped here, and is replaced by a started one when gone."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sitemail.server import zygote as zygote_module
from sitemail.server.worker_processes import set_title
from sitemail.server.zygote import Zygote, prefork, prefork_workers, serve

MODULE = "tests.unit.server.zygote_probe"


def _report(index: int, fds: list[int], arguments: list[str]) -> int:
    # What the worker was given travels back over the descriptor it was handed.
    with socket.socket(fileno=fds[0]) as out:
        out.sendall(f"{index} {' '.join(arguments)} {os.getppid()} {os.getpid()}".encode())
    return 0


def _run_zygote(control_fd: int) -> int:
    return serve(control_fd, 1, _report)


def _run_once(control_fd: int) -> int:
    return serve(control_fd, 1, _report, once=True)


def _single_threaded(case: Callable[[], None]) -> None:
    """Run ``case`` in a process that runs this thread alone: prefork forks nothing in a
    process that runs others (a test worker's, a thread another test left), so then in a
    child forked from this thread, whose failure shows its traceback here."""
    if threading.active_count() == 1:
        case()
        return
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            case()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the test failed in its child (see above)"


@pytest.fixture
def single_threaded() -> Iterator[None]:
    yield
    left = zygote_module._PREFORKED.pop(MODULE, None)
    if left is not None:
        left[1].close()
    for pid, control in zygote_module._PREFORKED_WORKERS.pop(MODULE, []):
        control.close()
        os.waitpid(pid, 0)
    gc.unfreeze()  # prefork froze everything of this test process


def test_a_preforked_zygote_forks_workers_with_their_arguments(single_threaded: None) -> None:
    def case() -> None:
        assert prefork(MODULE, _run_zygote)
        assert not prefork(MODULE, _run_zygote)  # one per module

        async def main() -> None:
            zygote = Zygote(MODULE, [], "probe", ["--spool", "/x"])
            await zygote.start()
            assert zygote.running and zygote.process is not None
            zygote_pid = zygote.process.pid
            assert MODULE not in zygote_module._PREFORKED
            mine, theirs = socket.socketpair()
            worker = await zygote.spawn(3, [theirs.fileno()])
            theirs.close()
            said = await asyncio.get_running_loop().run_in_executor(None, mine.recv, 200)
            mine.close()
            assert said.decode() == f"3 --spool /x {zygote_pid} {worker.pid}"
            await worker.wait()
            await zygote.stop()
            # This process's child: it was reaped here, with its status.
            with pytest.raises(ChildProcessError):
                os.waitpid(zygote_pid, os.WNOHANG)

        asyncio.run(main())

    _single_threaded(case)


def test_preforked_workers_become_the_workers_with_no_zygote(single_threaded: None) -> None:
    def case() -> None:
        assert prefork_workers(MODULE, 3, _run_once)
        assert not prefork_workers(MODULE, 1, _run_once)  # once per module

        async def main() -> None:
            zygote = Zygote(MODULE, [], "probe", ["--spool", "/x"])
            await zygote.start()
            assert zygote.process is None and not zygote.running  # no zygote was started
            waiting = [process for process, _ in zygote._waiting]
            # One dies before it is asked: the next one takes its place.
            os.kill(waiting[0].pid, signal.SIGKILL)
            await asyncio.wait_for(waiting[0].wait(), 10)
            for index in (0, 1):
                mine, theirs = socket.socketpair()
                worker = await zygote.spawn(index, [theirs.fileno()])
                theirs.close()
                said = await asyncio.get_running_loop().run_in_executor(None, mine.recv, 200)
                mine.close()
                # The preforked process itself is the worker, a child of this process.
                assert worker is waiting[index + 1]
                assert said.decode() == f"{index} --spool /x {os.getpid()} {worker.pid}"
                assert await asyncio.wait_for(worker.wait(), 10) == 0  # reaped here
            await zygote.stop()
            assert zygote._waiting == []

        asyncio.run(main())

    _single_threaded(case)


def test_preforked_workers_not_asked_end_with_stop(single_threaded: None) -> None:
    def case() -> None:
        assert prefork_workers(MODULE, 2, _run_once)

        async def main() -> None:
            zygote = Zygote(MODULE, [], "probe")
            await zygote.start()
            waiting = [process for process, _ in zygote._waiting]
            await zygote.stop()
            assert all(p.ended and p.returncode == 0 for p in waiting)

        asyncio.run(main())

    _single_threaded(case)


def test_a_preforked_zygote_that_died_is_seen_to_end(single_threaded: None) -> None:
    def case() -> None:
        assert prefork(MODULE, _run_zygote)

        async def main() -> None:
            zygote = Zygote(MODULE, [], "probe")
            await zygote.start()
            assert zygote.process is not None
            os.kill(zygote.process.pid, signal.SIGKILL)
            await asyncio.wait_for(zygote.process.wait(), 10)
            assert not zygote.running
            assert zygote.process.returncode == -signal.SIGKILL
            await zygote.stop()

        asyncio.run(main())

    _single_threaded(case)


def test_set_title_is_the_command_line() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        ok = set_title("probe --home /tmp/here")
        os.write(write, b"1" if ok else b"0")
        os.close(write)
        signal.pause()
        os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 1) == b"1"
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert raw.rstrip(b"\0") == b"probe --home /tmp/here"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(read)


def test_a_worker_quiets_its_collector_after_start_up() -> None:
    """What a worker built at start-up is frozen and the youngest generation waits longer;
    run in a child so that this test process keeps its own collector as it was."""
    import multiprocessing
    from multiprocessing.connection import Connection

    from sitemail.server.zygote import WORKER_GC_THRESHOLD, quiet_collector

    def child(out: Connection) -> None:
        before = gc.get_freeze_count()
        built = [[n] for n in range(1000)]  # start-up's objects
        quiet_collector()
        out.send((before, gc.get_freeze_count(), gc.get_threshold(), len(built)))

    receiving, sending = multiprocessing.get_context("fork").Pipe(duplex=False)
    process = multiprocessing.get_context("fork").Process(target=child, args=(sending,))
    process.start()
    before, after, threshold, _ = receiving.recv()
    process.join(10)
    assert process.exitcode == 0
    assert after >= before + 1000
    assert threshold[0] == WORKER_GC_THRESHOLD
    assert threshold[1:] == gc.get_threshold()[1:]
