"""Where the shell's text goes: the output, error, warning and verbose streams."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, TextIO

Stream = Literal["output", "error", "warning", "verbose", "host"]


class Host(Protocol):
    """Receives text blocks (without a final newline), one call per block."""

    def write(self, stream: Stream, text: str) -> None: ...


@dataclass
class BufferHost:
    """Keeps everything, in order (for ``run_script`` and tests)."""

    entries: list[tuple[Stream, str]] = field(default_factory=list)

    def write(self, stream: Stream, text: str) -> None:
        self.entries.append((stream, text))

    def text(self, *streams: Stream) -> str:
        """The blocks of the given streams (all if none), as a console would show them."""
        chosen = [t for s, t in self.entries if not streams or s in streams]
        return "".join(t + "\n" for t in chosen)


@dataclass
class StreamHost:
    """Writes output and host text to one stream and the rest to another (stdout/stderr)."""

    out: TextIO
    err: TextIO

    def write(self, stream: Stream, text: str) -> None:
        target = self.out if stream in ("output", "host") else self.err
        target.write(text + "\n")
        target.flush()


class NullHost:
    def write(self, stream: Stream, text: str) -> None:
        return None


def decorate(stream: Stream, text: str) -> str:
    """The prefix PowerShell puts on warning and verbose lines."""
    if stream == "warning":
        return f"WARNING: {text}"
    if stream == "verbose":
        return f"VERBOSE: {text}"
    return text
