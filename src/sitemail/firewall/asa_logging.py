"""The ASA's buffered log: what ``show logging`` prints and ``clear logging buffer`` empties.

The firewall writes every syslog message to ``syslog.log`` and to this
buffer, with the same time stamp.  The buffer is bounded in bytes as the
ASA's is (``logging buffer-size``, 4096 bytes by default): the oldest
messages go first.  The lab's firewalls log as if ``logging enable``,
``logging timestamp`` and ``logging buffered debugging`` were configured.
Pure.
"""

from __future__ import annotations

from collections import deque

__all__ = ["DEFAULT_BUFFER_SIZE", "LogBuffer", "logging_report"]

#: ``logging buffer-size`` default, in bytes.
DEFAULT_BUFFER_SIZE = 4096


class LogBuffer:
    """The last messages logged, within ``size`` bytes."""

    def __init__(self, size: int = DEFAULT_BUFFER_SIZE) -> None:
        self.size = size
        self._lines: deque[str] = deque()
        self._used = 0
        self.logged = 0  # messages logged since the last clear (the header's count)

    def add(self, line: str) -> None:
        """One stamped line, ``Jan 02 2026 10:11:12: %ASA-6-302013: ...``."""
        self.logged += 1
        size = len(line) + 1
        if size > self.size:
            return
        while self._used + size > self.size:
            self._used -= len(self._lines.popleft()) + 1
        self._lines.append(line)
        self._used += size

    def lines(self) -> list[str]:
        return list(self._lines)

    def clear(self) -> None:
        """``clear logging buffer``."""
        self._lines.clear()
        self._used = 0
        self.logged = 0


#: [unv] the settings ``show logging`` prints before the messages, for the lab's logging
#: (``{count}``: messages logged to the buffer).
REPORT_HEAD = (
    "Syslog logging: enabled\n"
    "    Facility: 20\n"
    "    Timestamp logging: enabled\n"
    "    Hide Username logging: enabled\n"
    "    Standby logging: disabled\n"
    "    Debug-trace logging: disabled\n"
    "    Console logging: disabled\n"
    "    Monitor logging: disabled\n"
    "    Buffer logging: level debugging, {count} messages logged\n"
    "    Trap logging: disabled\n"
    "    Permit-hostdown logging: disabled\n"
    "    History logging: disabled\n"
    "    Device ID: disabled\n"
    "    Mail logging: disabled\n"
    "    ASDM logging: disabled\n"
)


def logging_report(buffer: LogBuffer) -> str:
    """``show logging``: the settings, then the buffered messages, oldest first."""
    return REPORT_HEAD.format(count=buffer.logged) + "".join(f"{line}\n" for line in buffer.lines())
