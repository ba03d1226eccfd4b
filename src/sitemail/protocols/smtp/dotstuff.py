"""DATA transparency (RFC 5321 §4.5.2): streaming dot-unstuffing and dot-stuffing.

Receiving (:class:`DotDecoder`)
    Only ``CRLF . CRLF`` ends the data.  A "line" here is what follows a CRLF:
    a bare LF or a bare CR is content, never a line end, so ``\\n.\\n``,
    ``\\r.\\r``, ``\\n.\\r\\n`` and ``\\r\\n.\\n`` inside the data are content.
    That closes the SMTP smuggling attacks (a receiver and a downstream
    relay disagreeing about where a message ends).  Bare LF and bare CR are
    **kept as they are**, not normalised: the octets are the message, and
    the message meter reports whether a bare LF occurred so that policy can
    refuse such messages (as Postfix's ``smtpd_forbid_bare_newline`` does).
    A period that starts a line is removed (``..x`` -> ``.x``, ``.x`` -> ``x``).
    The decoder holds at most the two octets ``.\\r`` between calls.

Sending (:class:`DotEncoder`)
    CRLF, bare LF and bare CR each become CRLF (so whatever we relay is a
    clean CRLF stream and cannot be misread downstream), then a period
    starting a line is doubled.  :meth:`DotEncoder.finish` closes the last
    line and appends ``.\\r\\n``.  The encoder holds at most one CR between
    calls.
"""

from __future__ import annotations

from enum import Enum, auto

_CR, _LF, _DOT = 0x0D, 0x0A, 0x2E


class _D(Enum):
    BOL = auto()  # at the start of a line (after CRLF, or start of data)
    MID = auto()  # inside a line, last octet not CR
    CR = auto()  # inside a line, last octet CR
    DOT = auto()  # a '.' started the line; held back
    DOT_CR = auto()  # '.' then CR started the line; both held back
    DONE = auto()  # CRLF.CRLF seen


class DotDecoder:
    """Find the end of DATA and remove dot-stuffing, a slice at a time."""

    def __init__(self) -> None:
        self._state = _D.BOL

    @property
    def done(self) -> bool:
        """True once the terminating ``.CRLF`` has been consumed."""
        return self._state is _D.DONE

    def feed(self, data: bytes) -> tuple[bytes, int]:
        """Decode ``data``; return ``(content, consumed)``.

        ``consumed`` is ``len(data)`` unless the end of data was reached, in
        which case it counts the octets up to and including the final LF;
        whatever follows belongs to the next command.
        """
        out: list[bytes] = []
        state = self._state
        i, n = 0, len(data)
        while i < n and state is not _D.DONE:
            if state is _D.MID:
                # Fast path: everything up to the next CRLF-period is content.
                j = data.find(b"\r\n.", i)
                if j < 0:
                    tail = data[i:]
                    out.append(tail)
                    if tail.endswith(b"\r\n"):
                        state = _D.BOL
                    elif tail.endswith(b"\r"):
                        state = _D.CR
                    i = n
                else:
                    out.append(data[i : j + 2])
                    state = _D.DOT
                    i = j + 3
                continue
            b = data[i]
            i += 1
            if state is _D.BOL:
                if b == _DOT:
                    state = _D.DOT
                else:
                    out.append(bytes((b,)))
                    state = _D.CR if b == _CR else _D.MID
            elif state is _D.CR:
                out.append(bytes((b,)))
                state = _D.BOL if b == _LF else _D.CR if b == _CR else _D.MID
            elif state is _D.DOT:
                if b == _CR:
                    state = _D.DOT_CR
                else:
                    # The leading period is dropped; a bare LF after it is content.
                    out.append(bytes((b,)))
                    state = _D.MID
            else:  # _D.DOT_CR
                if b == _LF:
                    state = _D.DONE
                else:
                    # ".\r" then not LF: the period is dropped, the CR is content,
                    # and this octet is read again as following a CR.
                    out.append(b"\r")
                    state = _D.CR
                    i -= 1
        self._state = state
        return b"".join(out), i


class DotEncoder:
    """Normalise line ends to CRLF and dot-stuff, a chunk at a time."""

    def __init__(self) -> None:
        self._at_bol = True
        self._held_cr = False
        self._finished = False

    def encode(self, chunk: bytes) -> bytes:
        """Wire bytes for the next piece of the message."""
        if self._finished:
            raise ValueError("the body is already finished")
        if self._held_cr:
            chunk = b"\r" + chunk
            self._held_cr = False
        if chunk.endswith(b"\r"):
            # Might be the first half of a CRLF split across calls.
            self._held_cr = True
            chunk = chunk[:-1]
        if not chunk:
            return b""
        text = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        text = text.replace(b"\n.", b"\n..")
        if self._at_bol and text.startswith(b"."):
            text = b"." + text
        self._at_bol = text.endswith(b"\n")
        return text.replace(b"\n", b"\r\n")

    def finish(self) -> bytes:
        """Close the last line if needed and add the ``.CRLF`` terminator."""
        if self._finished:
            raise ValueError("the body is already finished")
        self._finished = True
        out = b""
        if self._held_cr or not self._at_bol:
            out = b"\r\n"
        return out + b".\r\n"


def dot_stuff(body: bytes) -> bytes:
    """One-shot :class:`DotEncoder`: the full wire form of ``body`` including ``.CRLF``."""
    enc = DotEncoder()
    return enc.encode(body) + enc.finish()


def dot_unstuff(wire: bytes) -> tuple[bytes, int] | None:
    """One-shot :class:`DotDecoder`: ``(content, consumed)`` or ``None`` if no terminator."""
    dec = DotDecoder()
    content, consumed = dec.feed(wire)
    return (content, consumed) if dec.done else None
