"""What the HTTPS front end writes down: the IIS request log and the decision log.

- ``inetpub/logs/LogFiles/W3SVC1/u_exYYMMDD.log`` in the server's folder: one
  line per request in IIS's W3C extended format (the fields of IIS 7.5's
  default set), as on the Client Access server of Exchange 2010.
- ``Logging/ClientAccess/DecisionYYYYMMDD.log``: one JSON line per
  proxy-or-redirect decision and per proxy failure (protocol, user, where the
  request came in, the outcome, its reason and target).  This is what the
  troubleshooter reads to say why a user was proxied, redirected or refused.

Lines are appended one at a time, each with one ``write`` on a file opened
for appending, so the W3SVC's worker processes (:mod:`.workers`) can write
the same files without one line cutting into another; a crash loses at most
the line being written.  The header of a new file is written by whichever
process creates it, under a lock, once.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["AccessLogs"]

W3C_FIELDS = (
    "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
    "cs(User-Agent) sc-status sc-substatus sc-win32-status time-taken"
)


class _DailyFile:
    def __init__(self, folder: Path, prefix: str, suffix: str, header: list[str]) -> None:
        self.folder = folder
        self.prefix = prefix
        self.suffix = suffix
        self.header = header
        self._day = ""
        self._date = (0, 0, 0)
        self._fd: int | None = None

    def write(self, when: datetime, line: str) -> None:
        # The file's name is looked at again when the date moves (strftime per line
        # was a tenth of a log line's cost).
        ymd = (when.year, when.month, when.day)
        if ymd != self._date or self._fd is None:
            day = when.strftime(self.suffix)
            self._date = ymd
        else:
            day = self._day
        if day != self._day or self._fd is None:
            self.close()
            self.folder.mkdir(parents=True, exist_ok=True)
            path = self.folder / f"{self.prefix}{day}.log"
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._day = day
            if self.header:
                date = when.strftime("%Y-%m-%d %H:%M:%S")
                head = "".join(h.replace("{date}", date) + "\n" for h in self.header)
                # Another worker may be creating the same file: the first one heads it.
                fcntl.flock(self._fd, fcntl.LOCK_EX)
                try:
                    if os.fstat(self._fd).st_size == 0:
                        _write_all(self._fd, head.encode())
                finally:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
        _write_all(self._fd, (line + "\n").encode())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _write_all(fd: int, data: bytes) -> None:
    """One ``write`` (appended whole, so lines of other processes never cut into it)."""
    written = os.write(fd, data)
    if written != len(data):  # a full disk; the rest would land after another's line
        raise OSError(f"wrote {written} of {len(data)} bytes of a log line")


_W3C_BLANKS = str.maketrans({" ": "+", "\n": "+", "\r": "+"})


def _w3c(value: str | None) -> str:
    """W3C fields have no spaces: IIS writes '-' for empty and '+' for a space."""
    if not value:
        return "-"
    text = value[:2000]
    if " " in text or "\n" in text or "\r" in text:
        text = text.translate(_W3C_BLANKS)
    return text


def json_record(record: dict[str, Any]) -> str:
    """A decision log record as the compact JSON object its line holds (time aside)."""
    if not record:
        raise ValueError("a decision record names at least its outcome")
    return json.dumps(record, separators=(",", ":"))


class AccessLogs:
    """The two logs of one server's front end (``home`` is the server's folder)."""

    def __init__(self, home: Path) -> None:
        self._lock = threading.Lock()
        self._iis = _DailyFile(
            home / "inetpub" / "logs" / "LogFiles" / "W3SVC1",
            "u_ex",
            "%y%m%d",
            [
                "#Software: Microsoft Internet Information Services 7.5",
                "#Version: 1.0",
                "#Date: {date}",
                f"#Fields: {W3C_FIELDS}",
            ],
        )
        self._decisions = _DailyFile(home / "Logging" / "ClientAccess", "Decision", "%Y%m%d", [])
        self.decision_folder = home / "Logging" / "ClientAccess"

    def request(
        self,
        when: datetime,
        *,
        server_ip: str,
        method: str,
        path: str,
        query: str,
        port: int,
        user: str | None,
        client_ip: str,
        user_agent: str,
        status: int,
        millis: int,
    ) -> None:
        # date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip
        # cs(User-Agent) sc-status sc-substatus sc-win32-status time-taken
        line = (
            f"{when.year:04d}-{when.month:02d}-{when.day:02d} "
            f"{when.hour:02d}:{when.minute:02d}:{when.second:02d} "
            f"{_w3c(server_ip)} {_w3c(method)} {_w3c(path)} {_w3c(query)} {int(port)} "
            f"{_w3c(user)} {_w3c(client_ip)} {_w3c(user_agent)} {int(status)} 0 0 {int(millis)}"
        )
        with self._lock:
            self._iis.write(when, line)

    def decision(self, when: datetime, record: dict[str, Any]) -> None:
        self.decision_json(when, json_record(record))

    def decision_json(self, when: datetime, record: str) -> None:
        """A decision whose record (a JSON object without its time) is ``record``."""
        line = '{"time":"' + when.isoformat() + '",' + record[1:]
        with self._lock:
            self._decisions.write(when, line)

    def close(self) -> None:
        with self._lock:
            self._iis.close()
            self._decisions.close()
