"""A receive buffer that hands out lines with a hard bound, or raw octets.

Both ends of the SMTP core read from one :class:`ReceiveBuffer` because the
same byte stream switches between lines (commands, replies) and raw octets
(DATA bodies, BDAT chunks).  A line longer than the bound is never held in
full: once the bound is passed without a line feed the buffer drops what it
has, keeps a short prefix for the logs, and skips to the end of the line,
which it then reports once as a :class:`LineOverflow`.
"""

from __future__ import annotations

from dataclasses import dataclass

# Compact the bytearray only when the consumed head is large, so reading a
# big buffer in small slices stays linear instead of quadratic.
_COMPACT_AT = 1 << 16


@dataclass(frozen=True, slots=True)
class LineOverflow:
    """A line longer than the bound, consumed up to and including its LF."""

    length: int
    """Octets of the whole line, terminator included."""
    prefix: bytes
    """The first octets of the line (as many as the bound), for logs and diagnosis."""


@dataclass(slots=True)
class _Skip:
    prefix: bytes
    length: int


class ReceiveBuffer:
    """Bytes received and not yet consumed."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._start = 0
        self._scanned = 0  # octets after _start already known to hold no LF
        self._skip: _Skip | None = None

    def __len__(self) -> int:
        return len(self._data) - self._start

    @property
    def skipping(self) -> bool:
        """True while the rest of an overlong line is being thrown away."""
        return self._skip is not None

    def append(self, data: bytes) -> None:
        self._data += data

    def peek(self, n: int) -> bytes:
        """Up to ``n`` octets from the front, without consuming them."""
        return bytes(self._data[self._start : self._start + n])

    def consume(self, n: int) -> None:
        """Drop ``n`` octets from the front."""
        self._start += min(n, len(self))
        self._scanned = 0
        if self._start == len(self._data):
            self._data.clear()
            self._start = 0
        elif self._start >= _COMPACT_AT and self._start * 2 >= len(self._data):
            del self._data[: self._start]
            self._start = 0

    def read(self, n: int) -> bytes:
        """Take up to ``n`` octets from the front."""
        out = self.peek(n)
        self.consume(len(out))
        return out

    def clear(self) -> int:
        """Drop everything (and any line being skipped); return how many octets were held."""
        held = len(self)
        self.consume(held)
        self._skip = None
        return held

    def read_line(self, limit: int) -> bytes | LineOverflow | None:
        """Take one LF-terminated line of at most ``limit`` octets (terminator included).

        Returns the line with its terminator, a :class:`LineOverflow` for a
        longer line once its LF has arrived, or ``None`` if no whole line is
        there yet.  Memory held is at most ``limit`` octets plus what the
        caller appended since the last call.
        """
        if self._skip is not None:
            lf = self._data.find(b"\n", self._start)
            if lf < 0:
                self._skip.length += len(self)
                self.consume(len(self))
                return None
            n = lf - self._start + 1
            self.consume(n)
            overflow = LineOverflow(self._skip.length + n, self._skip.prefix)
            self._skip = None
            return overflow
        lf = self._data.find(b"\n", self._start + self._scanned)
        if lf < 0:
            held = len(self)
            if held >= limit:
                # Already at the bound with no LF: the line cannot fit.
                self._skip = _Skip(self.peek(limit), held)
                self.consume(held)
            else:
                self._scanned = held
            return None
        n = lf - self._start + 1
        line = self.read(n)
        if n > limit:
            return LineOverflow(n, line[:limit])
        return line
