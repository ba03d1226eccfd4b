"""Counting what flows through a message, without keeping it.

The server core feeds every content chunk of a message (DATA after
unstuffing, or the BDAT chunks) through a :class:`MessageMeter`, which
tracks the total size, the size of the header section (up to the first
empty line) and whether a bare LF occurred.  The limits come from the
receive connector (``MaxHeaderSize`` 262144, ``MaxMessageSize``); what to
answer (``552 5.3.4 ...``) is policy.
"""

from __future__ import annotations

#: Exchange 2010 receive connector default (MaxHeaderSize, spec §1.2).
DEFAULT_MAX_HEADER_SIZE = 262144


class MessageMeter:
    """Size, header size and bare-LF tracking for one message."""

    def __init__(
        self,
        max_header_size: int = DEFAULT_MAX_HEADER_SIZE,
        max_message_size: int | None = None,
    ) -> None:
        self.max_header_size = max_header_size
        self.max_message_size = max_message_size
        self.size = 0
        self.header_size: int | None = None
        """Octets before the empty line that ends the headers; ``None`` until found."""
        self.header_size_exceeded = False
        self.bare_lf = False
        """True once an LF not preceded by CR was seen."""
        self._tail = b""  # last two octets seen, for patterns split across chunks
        self._finished = False

    @property
    def size_exceeded(self) -> bool:
        return self.max_message_size is not None and self.size > self.max_message_size

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        before = self.size
        # The message start counts as a line start, hence the virtual LF.
        prefix = b"\n" if before == 0 else self._tail
        if not self.bare_lf:
            lfs = chunk.count(b"\n") - chunk.count(b"\r\n")
            if prefix.endswith(b"\r") and chunk.startswith(b"\n"):
                lfs -= 1
            self.bare_lf = lfs > 0
        if self.header_size is None and not self.header_size_exceeded:
            window = prefix + chunk
            hits = [p for p in (window.find(b"\n\r\n"), window.find(b"\n\n")) if p >= 0]
            if hits:
                self.header_size = before - len(prefix) + min(hits) + 1
                self.header_size_exceeded = self.header_size > self.max_header_size
            elif before + len(chunk) - 1 > self.max_header_size:
                # No empty line yet, so the header section is at least this long.
                self.header_size_exceeded = True
        self.size = before + len(chunk)
        self._tail = (prefix + chunk)[-2:]

    def finish(self) -> None:
        """End of message: a message without an empty line is all header."""
        if self._finished:
            return
        self._finished = True
        if self.header_size is None and not self.header_size_exceeded:
            self.header_size = self.size
            self.header_size_exceeded = self.size > self.max_header_size
