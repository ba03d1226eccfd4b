"""The run-time state of one box that its console reads and clears, besides the configuration.

Captures, the connection table, the buffered log and the clock they are read
with.  The firewall process owns one :class:`AsaRuntime` and shares it with
the relay (which fills it) and every console session (which shows it); a
unit test builds one by hand with a clock of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sitemail.firewall.asa_logging import LogBuffer
from sitemail.firewall.capture import Captures
from sitemail.firewall.conn_table import ConnTable

__all__ = ["AsaRuntime"]


@dataclass
class AsaRuntime:
    captures: Captures = field(default_factory=Captures)
    conns: ConnTable = field(default_factory=ConnTable)
    log: LogBuffer = field(default_factory=LogBuffer)
    clock: Callable[[], float] = time.time  # seconds since the epoch
