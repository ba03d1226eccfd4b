"""What every pool of worker processes of a server shares: how many, and dying with the parent.

Python runs one thread of Python code at a time, so a service that must use
more than one core runs worker processes (the hub's receive workers, the
W3SVC's web workers), children of the server process.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
from collections.abc import Mapping
from pathlib import Path

__all__ = ["MAX_AUTOMATIC_WORKERS", "die_with_parent", "log_as", "set_title", "worker_count"]

MAX_AUTOMATIC_WORKERS = 4
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def worker_count(variable: str, environ: Mapping[str, str] | None = None) -> int:
    """Workers to start: ``variable`` if set, else one per usable CPU (up to 4), else 0.

    With a single CPU a worker would only add a hop, so the server process
    serves itself.
    """
    env = os.environ if environ is None else environ
    value = env.get(variable, "").strip()
    if value:
        try:
            count = int(value)
        except ValueError:
            raise ValueError(f"{variable}={value!r} is not a number of processes") from None
        if not 0 <= count <= 64:
            raise ValueError(f"{variable}={count} is outside 0..64")
        return count
    cpus = len(os.sched_getaffinity(0))
    return min(cpus, MAX_AUTOMATIC_WORKERS) if cpus > 1 else 0


def die_with_parent(parent: int) -> None:
    """Exit as soon as the server process is gone, whatever this process is doing.

    Closed channels or a stop signal tell a running worker; this covers a
    worker still starting (or stuck) when its parent was killed, so that no
    orphan ever holds a client's connection open without serving it.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(0)  # the parent died before the line above


def log_as(server: str, who: str) -> None:
    """Log lines of a worker process (or its zygote) say which server and which worker."""
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s {server} {who} %(levelname)s %(message)s",
        force=True,
    )


def set_title(title: str) -> bool:
    """Show ``title`` as this process's command line (``ps``, /proc/PID/cmdline).

    A process forked from a server process without exec (a preforked zygote)
    still shows the server's command line, and tools that tell processes apart
    by it (the lab, its tests) would count it as the server.  The kernel reads
    the command line from the memory of the arguments the process started with
    (its bounds are fields 48 and 49 of /proc/self/stat); Python keeps copies of
    them, so the title is written over them, cut to their length, and the rest
    zeroed.  False when that cannot be done (the title is then unchanged).
    """
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        # Field 48 of the man page is the 46th after the command name's ")".
        start, end = int(fields[45]), int(fields[46])
    except (OSError, IndexError, ValueError):
        return False
    size = end - start
    if size < 2:
        return False
    data = title.encode(errors="replace")[: size - 1]
    ctypes.memmove(start, data.ljust(size, b"\0"), size)
    return True
