"""The path probe on real sockets: two short SMTP conversations that send no mail.

Connection 1: greeting, ``EHLO``, ``STARTTLS`` when it was neither
advertised nor visibly masked (forced STARTTLS), ``XYZZY`` unless the server
is an Exchange server (which never echoes), ``HELP``, ``NO`` + ``OP`` in two
segments, a ``NOOP``, a 400-byte ``NOOP`` line, ``QUIT``.  Connection 2, at
the same time (unless ``long_line=False``): greeting, ``EHLO``, a 600-byte
``NOOP`` line, and ``QUIT`` if the connection is still there.  Never
``MAIL``, ``RCPT`` or ``DATA``.

Refused commands cost time on Exchange: a receive connector delays every
failing reply to an anonymous client by its TarpitInterval (5 s), so the
probe sends no refused command it can do without, runs its two
conversations side by side, and waits longer than a tarpit for each reply.
A reply that does not come in time ends the conversation (a late reply
would be read as the answer to the next command).

Everything is bounded: one deadline for the whole probe, a timeout per
reply, at most :data:`MAX_BYTES` read per connection and
:data:`MAX_REPLY_LINES` lines per reply.  The result is judged by
:func:`sitemail.diagnose.probe.judge`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from dataclasses import dataclass

from sitemail.diagnose.probe import (
    LONG_LINE_LENGTH,
    MEDIUM_LINE_LENGTH,
    PROBE_HELO,
    UNKNOWN_VERB,
    Exchange,
    ProbeResult,
    ProbeTranscript,
    ehlo_keywords,
    is_exchange,
    judge,
    masked_keywords,
)
from sitemail.protocols.smtp.reply import is_last_reply_line, reply_code

MAX_BYTES = 64 * 1024
MAX_REPLY_LINES = 100
MAX_LINE = 4096
#: Wait between the two halves of the split NOOP (asa-esmtp.md §8 item 4: about 300 ms).
SPLIT_DELAY = 0.3


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    helo: str = PROBE_HELO
    source: str | None = None
    """Local address to connect from (in the lab: an address inside the site)."""
    total_timeout: float = 45.0
    reply_timeout: float = 10.0
    connect_timeout: float = 5.0
    long_line: bool = True
    split_delay: float = SPLIT_DELAY


class _Budget(Exception):
    """The byte budget or the deadline is spent."""


class _Conversation:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, s: ProbeSettings
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.settings = s
        self.read = 0
        self.closed = False
        self.lost = False
        """A reply came late or not at all: the conversation is out of step."""

    async def reply(self) -> tuple[list[str] | None, bool]:
        """One reply's lines; (None, timed_out) when none came whole."""
        lines: list[str] = []
        while len(lines) < MAX_REPLY_LINES:
            try:
                raw = await asyncio.wait_for(self.reader.readline(), self.settings.reply_timeout)
            except TimeoutError:
                return (lines or None), True
            except (ValueError, asyncio.LimitOverrunError):
                raise _Budget("a reply line longer than the probe reads") from None
            except OSError:
                self.closed = True
                return (lines or None), False
            if not raw:
                self.closed = True
                return (lines or None), False
            self.read += len(raw)
            if self.read > MAX_BYTES:
                raise _Budget(f"more than {MAX_BYTES} bytes read")
            line = raw.decode("latin-1").rstrip("\r\n")
            lines.append(line)
            if is_last_reply_line(line):
                return lines, False
        return lines, False

    async def send(self, *parts: bytes, delay: float = 0.0) -> None:
        for i, part in enumerate(parts):
            if i and delay:
                await asyncio.sleep(delay)
            self.writer.write(part)
            await self.writer.drain()

    async def exchange(self, label: str, *parts: bytes, delay: float = 0.0) -> Exchange:
        ex = Exchange(label)
        try:
            await self.send(*parts, delay=delay)
        except OSError:
            ex.closed = self.closed = True
            return ex
        ex.reply, ex.timed_out = await self.reply()
        ex.closed = self.closed
        self.lost = self.lost or ex.timed_out
        return ex

    async def quit(self) -> bool:
        """Send QUIT; wait for its 221 only when the conversation is in step."""
        if self.closed:
            return False
        try:
            await self.send(b"QUIT\r\n")
        except OSError:
            return False
        if not self.lost:
            with contextlib.suppress(OSError, TimeoutError, _Budget):
                await self.reply()
        return True

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


async def _connect(
    host: str, port: int, s: ProbeSettings
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(
            host, port, local_addr=(s.source, 0) if s.source else None, limit=MAX_LINE
        ),
        s.connect_timeout,
    )
    sock = writer.get_extra_info("socket")
    if sock is not None:
        # Test 4 needs "NO" and "OP" to leave as two segments.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def _greet(conv: _Conversation, t: ProbeTranscript | None, s: ProbeSettings) -> bool:
    """Greeting and EHLO; False when the conversation cannot go on."""
    banner, _ = await conv.reply()
    if t is not None:
        t.banner = banner
        t.banner_closed = conv.closed and not banner
    if not banner or reply_code(banner[-1]) != 220:
        return False
    ehlo = await conv.exchange(f"EHLO {s.helo}", f"EHLO {s.helo}\r\n".encode())
    if t is not None:
        t.ehlo = ehlo
    return ehlo.code == 250 and not conv.closed


async def _first(host: str, port: int, t: ProbeTranscript, s: ProbeSettings) -> None:
    try:
        reader, writer = await _connect(host, port, s)
    except (OSError, TimeoutError) as exc:
        t.connect_error = str(exc) or type(exc).__name__
        return
    t.connected = True
    conv = _Conversation(reader, writer, s)
    try:
        if not await _greet(conv, t, s):
            t.quit_sent = await conv.quit()
            return
        assert t.ehlo is not None and t.ehlo.reply is not None
        masked = masked_keywords(t.ehlo.reply)
        if not masked and "STARTTLS" not in {k.upper() for k in ehlo_keywords(t.ehlo.reply)}:
            t.starttls = await conv.exchange("STARTTLS", b"STARTTLS\r\n")
            if t.starttls.code == 220:
                # The server started TLS although it did not advertise it: this
                # conversation cannot go on in plain text.
                t.notes.append("the server accepted STARTTLS it had not advertised")
                return
        steps: list[tuple[str, tuple[bytes, ...], float]] = []
        if not is_exchange(t.banner, t.ehlo.reply):
            steps.append(("unknown_verb", (f"{UNKNOWN_VERB}\r\n".encode(),), 0.0))
        steps += [
            ("help", (b"HELP\r\n",), 0.0),
            ("split_noop", (b"NO", b"OP\r\n"), s.split_delay),
            ("noop", (b"NOOP\r\n",), 0.0),
            ("medium_line", (_noop_line(MEDIUM_LINE_LENGTH),), 0.0),
        ]
        labels = {
            "unknown_verb": UNKNOWN_VERB,
            "help": "HELP",
            "split_noop": "NO | OP",
            "noop": "NOOP",
            "medium_line": f"NOOP <{MEDIUM_LINE_LENGTH}-byte line>",
        }
        for name, parts, delay in steps:
            if conv.closed or conv.lost:
                break
            setattr(t, name, await conv.exchange(labels[name], *parts, delay=delay))
        t.quit_sent = await conv.quit()
    except _Budget as exc:
        t.notes.append(f"stopped: {exc}")
    finally:
        t.bytes_read += conv.read
        await conv.close()


async def _second(host: str, port: int, t: ProbeTranscript, s: ProbeSettings) -> None:
    try:
        reader, writer = await _connect(host, port, s)
    except (OSError, TimeoutError) as exc:
        t.notes.append(f"second connection failed: {exc}")
        return
    conv = _Conversation(reader, writer, s)
    try:
        if not await _greet(conv, None, s):
            await conv.quit()
            return
        t.long_line = await conv.exchange(
            f"NOOP <{LONG_LINE_LENGTH}-byte line>", _noop_line(LONG_LINE_LENGTH)
        )
        await conv.quit()
    except _Budget as exc:
        t.notes.append(f"stopped: {exc}")
    finally:
        t.bytes_read += conv.read
        await conv.close()


def _noop_line(length: int) -> bytes:
    """``NOOP aaaa...`` of exactly ``length`` bytes with its CRLF."""
    return b"NOOP " + b"a" * (length - 7) + b"\r\n"


async def probe_transcript(
    host: str, port: int = 25, settings: ProbeSettings | None = None
) -> ProbeTranscript:
    s = settings or ProbeSettings()
    t = ProbeTranscript(target=f"{host}:{port}", source=s.source)
    started = time.monotonic()

    async def both() -> None:
        if not s.long_line:
            await _first(host, port, t, s)
            return
        # The second conversation starts with the first; it gives up by itself if the
        # server does not greet it or refuses EHLO.
        await asyncio.gather(_first(host, port, t, s), _second(host, port, t, s))

    try:
        await asyncio.wait_for(both(), s.total_timeout)
    except TimeoutError:
        t.notes.append(f"stopped after {s.total_timeout:.0f} s (the probe's time limit)")
    t.elapsed = time.monotonic() - started
    return t


async def probe(host: str, port: int = 25, settings: ProbeSettings | None = None) -> ProbeResult:
    """Probe ``host:port`` and judge what came back."""
    return judge(await probe_transcript(host, port, settings))


def parse_target(text: str, default_port: int = 25) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host:
        raise ValueError(f"no host in {text!r} (expected HOST or HOST:PORT)")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"port in {text!r} is not 1-65535")
    return host, int(port) if port else default_port
