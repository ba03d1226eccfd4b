"""Which lines of a DATA body an ESMTP body rule may match, found without Python per line.

The inspection engine forwards the body's whole lines in bulk and sends only
the lines found here through its per-line rules: lines longer than the body
line limit, the lines of a MIME ``Content-Type``/``Content-Disposition`` field
(with their folded continuations), and the line where the body length limit
is crossed.  The searches are C-level (``split``, ``find``, ``lower``); a
regular expression runs only where a long line is known to be.
"""

from __future__ import annotations

import functools
import re

__all__ = ["MIME_FIELD", "special_lines"]

#: The start of a MIME field that may name a file (matched at a line start).
MIME_FIELD = re.compile(rb"(?i)content-(?:type|disposition)\s*:")


@functools.lru_cache(maxsize=16)
def _long_line(limit: int) -> re.Pattern[bytes]:
    """Lines with more than ``limit`` bytes before their LF (anchored: a linear search)."""
    return re.compile(rb"(?m)^[^\n]{%d}" % (limit + 1))


def special_lines(
    body: bytes,
    *,
    line_limit: int | None,
    length_left: int | None,
    mime: bool,
    mime_field_open: bool,
) -> list[tuple[int, int]]:
    """``(start, stop)`` of each line of ``body`` (whole lines) a body rule may match, in order.

    ``line_limit`` is the body line rule's threshold (None: no such rule): lines
    with more bytes than that before their LF may break it; ``length_left`` is
    how many more bytes the body length rule allows (None: no such rule, or it
    already matched); ``mime`` whether MIME file names are checked;
    ``mime_field_open`` whether the line before ``body`` belonged to such a
    field (so a folded continuation may start ``body``).
    """
    if not body:
        return []
    spans: set[tuple[int, int]] = set()

    def line_at(start: int) -> tuple[int, int]:
        return start, body.index(b"\n", start) + 1

    # Measuring runs in C; the search for where the long lines are runs only when
    # there is one.
    if line_limit is not None and max(map(len, body.split(b"\n"))) > line_limit:
        for found in _long_line(line_limit).finditer(body):
            spans.add(line_at(found.start()))
    if length_left is not None:
        crossing = body.find(b"\n", max(0, length_left))
        if crossing >= 0:
            spans.add(line_at(body.rfind(b"\n", 0, crossing) + 1))
    if mime:
        for start in _mime_fields(body, mime_field_open):
            line = line_at(start)
            spans.add(line)
            # The field's folded continuation lines carry its parameters too.
            while line[1] < len(body) and body[line[1] : line[1] + 1] in (b" ", b"\t"):
                line = line_at(line[1])
                spans.add(line)
    return sorted(spans)


def _mime_fields(body: bytes, field_open: bool) -> list[int]:
    """Where the lines of ``body`` that may carry a MIME file name start."""
    starts = [0] if field_open or MIME_FIELD.match(body) else []
    lowered = body.lower()  # field names are case-insensitive; find is fast
    at = lowered.find(b"\ncontent-")
    while at >= 0:
        if MIME_FIELD.match(body, at + 1):
            starts.append(at + 1)
        at = lowered.find(b"\ncontent-", at + 1)
    return starts
