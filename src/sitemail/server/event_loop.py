"""Which asyncio event loop a sitemail server process runs.

uvloop (libuv under asyncio's API) when it is installed: a receive session
spends much of its time in the loop's socket and timer machinery, which
uvloop runs in C.  ``SITEMAIL_EVENT_LOOP=asyncio`` keeps the standard loop
(to compare, or to rule the loop out when something looks wrong).
"""

from __future__ import annotations

import asyncio
import os
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
