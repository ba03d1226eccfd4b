"""Reading what ``strace -f -yy`` saw a server do, to check the order of its writes and syncs.

The tests that prove "on stable storage before the reply" run a server under
``strace -f -yy -s 8192 -o FILE -e trace=...`` (:func:`strace_command`) and ask
the calls it recorded: which write carried a message's bytes into which file,
which fsync/fdatasync of that file followed, and which write put the reply on
which TCP connection.  ``-yy`` prints every descriptor as what it is (a path,
or ``TCP:[local->remote]``), so no descriptor table is kept here, and ``-f``
follows every thread and child process (receive workers).

Order is the order of the lines strace wrote: it serialises what it sees, and
a call another thread interrupted is printed twice (``<unfinished ...>`` where
it began, ``<... NAME resumed>`` where it returned).  A call therefore began at
``start`` and returned at ``end`` (line numbers); "A returned before B began"
is ``a.end < b.start``.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

WRITES = ("write", "pwrite64", "writev", "pwritev", "pwritev2", "sendto", "sendmsg")
SYNCS = ("fsync", "fdatasync")
TRACED = (*WRITES, *SYNCS)

_PREFIX = re.compile(r"^(\d+)\s+(.*)$")
_UNFINISHED = re.compile(r"^(\w+)\((.*) <unfinished \.\.\.>$")
_RESUMED = re.compile(r"^<\.\.\. (\w+) resumed>(.*)$")
_COMPLETE = re.compile(r"^(\w+)\((.*)$")
# The end of a call: ") = 64", ")          = 0", ") = -1 EIO (Input/output error)", ") = 3</a>",
# or ") = ?" when the process died in it (never a success).
_RESULT = re.compile(
    r"\)\s+=\s+(-?\d+|\?)(?:<.*>(?:\(deleted\))?)?(?: E[A-Z0-9]+ \(.*\)| <unavailable>)?$"
)
# The first argument as -yy shows it: 5</a/path>, 7</a/path>(deleted), 9<TCP:[a:p->b:q]>.
_FD = re.compile(r"^\d+<((?:TCP|TCPv6|UDP|UNIX-STREAM|UNIX):\[[^\]]*\]|[^>]*)>")
_TCP = re.compile(r"^TCP:\[([\d.]+:\d+)->([\d.]+:\d+)\]$")


class TraceError(AssertionError):
    """The trace could not be read as strace writes it."""


@dataclass(frozen=True)
class Call:
    """One system call: who made it, on what, what it printed, when it began and returned."""

    pid: int
    name: str
    target: str  # what its first argument is: a path, or TCP:[local->remote]
    text: str  # the arguments as strace printed them (strings cut at -s)
    result: int
    start: int
    end: int

    @property
    def ok(self) -> bool:
        return self.result >= 0

    @property
    def is_write(self) -> bool:
        return self.name in WRITES

    @property
    def is_sync(self) -> bool:
        return self.name in SYNCS

    @property
    def tcp(self) -> tuple[str, str] | None:
        """(local, remote) ``ip:port`` of a TCP socket, else None."""
        match = _TCP.match(self.target)
        return (match.group(1), match.group(2)) if match else None


def strace_command(trace: Path, command: Sequence[str]) -> list[str]:
    """``command`` run under strace, recording the writes and syncs of every thread."""
    strace = shutil.which("strace")
    if strace is None:
        raise AssertionError("strace is not installed: run `bash scripts/install.sh test`")
    return [
        strace,
        "-f",  # every thread and child process
        "-yy",  # descriptors as paths and TCP endpoints
        "-s",
        "8192",  # the whole of a SQLite page written (with its WAL frame header)
        "-o",
        str(trace),
        "-e",
        "trace=" + ",".join(TRACED),
        "--seccomp-bpf",  # stop only at the traced calls: the server runs at speed
        *command,
    ]


def parse(text: str) -> list[Call]:
    """The traced calls of a ``strace -f -yy`` output file, in the order they began."""
    calls: list[Call] = []
    open_calls: dict[tuple[int, str], tuple[int, str]] = {}  # (pid, name) -> (start, args)
    for number, raw in enumerate(text.splitlines()):
        prefix = _PREFIX.match(raw)
        if prefix is None:
            raise TraceError(f"line {number + 1} has no process id (was -f given?): {raw!r}")
        pid, rest = int(prefix.group(1)), prefix.group(2)
        if rest.startswith(("---", "+++")):
            continue  # a signal, or a process that exited
        unfinished = _UNFINISHED.match(rest)
        if unfinished:
            open_calls[(pid, unfinished.group(1))] = (number, unfinished.group(2))
            continue
        resumed = _RESUMED.match(rest)
        if resumed:
            name = resumed.group(1)
            begun = open_calls.pop((pid, name), None)
            if begun is None:
                raise TraceError(f"line {number + 1} resumes a call that never began: {raw!r}")
            calls.append(_call(pid, name, begun[1] + resumed.group(2), begun[0], number, raw))
            continue
        complete = _COMPLETE.match(rest)
        if complete is None:
            raise TraceError(f"line {number + 1} is not a system call: {raw!r}")
        calls.append(_call(pid, complete.group(1), complete.group(2), number, number, raw))
    calls.sort(key=lambda c: c.start)
    return calls


def _call(pid: int, name: str, args: str, start: int, end: int, raw: str) -> Call:
    result = _RESULT.search(args)
    if result is None:
        raise TraceError(f"no result in line {start + 1}: {raw!r}")
    value = -1 if result.group(1) == "?" else int(result.group(1))
    target = _FD.match(args)
    return Call(pid, name, target.group(1) if target else "", args, value, start, end)


def first(calls: Iterable[Call], predicate: Callable[[Call], bool]) -> Call | None:
    return next((c for c in calls if predicate(c)), None)


def last(calls: Sequence[Call], predicate: Callable[[Call], bool]) -> Call | None:
    return next((c for c in reversed(calls) if predicate(c)), None)


def sync_between(calls: Iterable[Call], target: str, after: Call, before: Call) -> Call | None:
    """A successful fsync/fdatasync of ``target`` that began after ``after`` returned and
    returned before ``before`` began: what ``after`` wrote was on disk before ``before``."""
    return first(
        calls,
        lambda c: (
            c.is_sync
            and c.ok
            and c.target == target
            and c.start > after.end
            and c.end < before.start
        ),
    )
