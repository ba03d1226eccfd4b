"""Every row the prefilter needs, found in one pass by Hyperscan (a multi-pattern DFA).

CPython's ``bytes.find`` costs about 1 ns a byte for each needle, and the
prefilter has ten markers and four row shapes to look for: searched one by
one, that alone is several times what ``grep`` spends on the whole file.
Hyperscan, Intel's regular-expression library that intrusion-detection
systems use for the same job, matches all of them at once at several GB/s;
Python is called only on a hit.  The row shapes are written as patterns on
the CSV columns themselves (``,<seq>,<local>,<remote>,<event>,``), so a
QUIT is a hit only at a low sequence-number, and a ``-`` row only early in a
send session: the routine rows of ordinary traffic cost nothing.

Hyperscan exists for x86-64 only; :data:`AVAILABLE` is False elsewhere (or
when the ``hyperscan`` wheel is missing) and the prefilter then searches with
``bytes.find`` (slower, the same selection).  Set ``SITEMAIL_HYPERSCAN=0`` to
force that path.
"""

from __future__ import annotations

import mmap
import os
import re
from collections.abc import Callable
from typing import Any

from sitemail.diagnose.logs.files import LogKind

try:  # pragma: no cover - depends on the platform
    import hyperscan

    AVAILABLE = os.environ.get("SITEMAIL_HYPERSCAN", "1") != "0"
except ImportError:  # pragma: no cover
    hyperscan = None  # type: ignore[assignment]
    AVAILABLE = False

__all__ = ["AVAILABLE", "CONNECT", "Hits", "scan"]

# Pattern ids.
MARKER, QUIT, ANY_RECIPIENT, SHORT_SEND, CONNECT, ODD_QUOTES = range(6)

#: Every SmtpSend session starts ``*,,attempting to connect``: not a marker hit.
_ROUTINE = b"attempting to connect"
_ROUTINE_HEAD = _ROUTINE[: -len(b"to connect")]


def _not_after(head: bytes) -> str:
    """A pattern for "not preceded by ``head``" (Hyperscan has no look-behind): for
    each length k of a tail of ``head``, that tail preceded by a line start or by
    anything but the byte before it in ``head``."""
    parts = []
    for k in range(len(head)):
        tail = head[len(head) - k :].decode("ascii")
        before = chr(head[len(head) - k - 1])
        parts.append(f"(?:^|[^{re.escape(before)}\\n]){re.escape(tail)}")
    return "(?:" + "|".join(parts) + ")"


#: Criterion A: the markers (``to connect`` not as the end of ``attempting to connect``).
#: A run of X or asterisks (a masked banner or EHLO keyword) is one hit at its end, not
#: one at every character: a callback into Python costs as much as scanning 1 KB.
_MARKERS = (
    rb" 5\.7\.| 4\.|XXX(?:[^X]|$)|\*\*\*(?:[^*]|$)|ailed|ecognized|Connection dropped"
    rb"|Unrecognized|Cannot|" + _not_after(_ROUTINE_HEAD).encode() + rb"to connect"
)
#: Criterion B (receive): QUIT at sequence-number <= 24; anonymous rights with
#: SMTPAcceptAnyRecipient at <= 3.  Criterion C (send): a ``-`` row at <= 3.
_QUIT = rb",(?:[0-9]|1[0-9]|2[0-4]),[^,\n]*,[^,\n]*,<,\"?quit"
_ANY_RECIPIENT = rb",[0-3],[^,\n]*,[^,\n]*,\*,[0-9A-Za-z ]*SMTPAcceptAnyRecipient"
_SHORT_SEND = rb",[0-3],[^,\n]*,[^,\n]*,-(?:,|\r|\n|$)"
#: A connection: Exchange writes its row as ``...,+,,`` (event ``+``, no data).  A
#: structural pattern (seven columns) costs Hyperscan five times as much.
_CONNECT = rb",\+,,"
#: A line with an odd number of quotes: a quoted value runs across a line end (or is
#: cut short), which the fast path does not model.  Every received session's banner
#: is quoted (its date has a comma), so checking pairs in Python costs a millisecond
#: a file; as a pattern it costs nothing.
_ODD_QUOTES = rb'^[^"\n]*"(?:[^"\n]*"[^"\n]*")*[^"\n]*$'


def _compile(kind: LogKind) -> Any:
    patterns = [(_MARKERS, MARKER, 0), (_CONNECT, CONNECT, 0), (_ODD_QUOTES, ODD_QUOTES, 0)]
    if kind is LogKind.SMTP_RECEIVE:
        patterns += [
            (_QUIT, QUIT, hyperscan.HS_FLAG_CASELESS),
            (_ANY_RECIPIENT, ANY_RECIPIENT, 0),
        ]
    elif kind is LogKind.SMTP_SEND:
        patterns.append((_SHORT_SEND, SHORT_SEND, 0))
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(
        expressions=[p for p, _, _ in patterns],
        ids=[i for _, i, _ in patterns],
        elements=len(patterns),
        # ^ and $ match at line ends, as in a log file; one hit a row is enough for the
        # markers (their session is selected either way).
        flags=[f | hyperscan.HS_FLAG_MULTILINE for _, _, f in patterns],
    )
    return db


_DATABASES: dict[LogKind, Any] = {}


class Hits:
    """Where the interesting rows end, how many connections (``+`` rows) there were, and
    whether a line has an odd number of quotes."""

    __slots__ = ("connects", "ends", "odd_quotes")

    def __init__(self) -> None:
        self.ends: list[int] = []
        self.connects = 0
        self.odd_quotes = False


def scan(data: bytes | mmap.mmap, start: int, kind: LogKind) -> Hits:
    """One pass over ``data[start:]``: the end offsets of marker and row-shape hits (a
    row may appear more than once) and the number of ``+`` rows."""
    db = _DATABASES.get(kind)
    if db is None:
        db = _DATABASES[kind] = _compile(kind)
    hits = Hits()
    ends = hits.ends

    with memoryview(data) as whole, whole[start:] as view:  # no copy of the file

        def on_hit(pattern: int, _from: int, to: int, _flags: int, _context: object) -> None:
            if pattern == CONNECT:
                hits.connects += 1
            elif pattern == ODD_QUOTES:
                hits.odd_quotes = True
            else:
                ends.append(to)

        handler: Callable[..., None] = on_hit
        db.scan(view, match_event_handler=handler)
    if start:
        hits.ends = [start + end for end in ends]
    return hits


def pattern_check() -> None:
    """Compile every database once (a bad pattern fails loudly in the tests)."""
    for kind in (LogKind.SMTP_SEND, LogKind.SMTP_RECEIVE):
        _DATABASES[kind] = _compile(kind)
