"""Which asyncio event loop a sitemail server process runs.

uvloop (libuv under asyncio's API) when it is installed: a receive session
spends much of its time in the loop's socket and timer machinery, which
uvloop runs in C.  ``SITEMAIL_EVENT_LOOP=asyncio`` keeps the standard loop
(to compare, or to rule the loop out when something looks wrong).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

VARIABLE = "SITEMAIL_EVENT_LOOP"


def run(main: Coroutine[Any, Any, T]) -> T:
    choice = os.environ.get(VARIABLE, "uvloop").strip().lower()
    if choice not in ("uvloop", "asyncio"):
        main.close()
        raise ValueError(f"{VARIABLE}={choice!r}: expected uvloop or asyncio")
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def stop_signal() -> asyncio.Event:
    """An event that SIGTERM or SIGINT sets: how the lab (or a user's Ctrl-C) stops a process.

    Call it inside the running loop; the process's own ``finally`` then stops its
    services in order instead of dying in the middle of a write.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
