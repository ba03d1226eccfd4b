"""The session runner of the line protocols: one loop for every SMTP, POP3 and IMAP4 session.

The grammar is a sans-I/O core (:mod:`sitemail.protocols.smtp`,
:mod:`~sitemail.protocols.pop3`, :mod:`~sitemail.protocols.imap`): bytes
in, events out.  What to answer is the session's (a handler in the
aiosmtpd sense: the hub's receive session, a plain MTA's, the POP3 and
IMAP4 front ends).  In between, :func:`run_session` does the same thing for
all of them: greet, read with the session's timeout, feed the core, hand
each event to the session, and end on the core's ConnectionClosed or when
the session raises :class:`SessionClosing`.  Reads, limits and STARTTLS are
the :class:`~.line_connection.LineConnection`'s.
"""

from __future__ import annotations

import contextlib
import ssl
from dataclasses import dataclass
from typing import Literal, Protocol

from sitemail.server.line_connection import LineConnection, SessionClosing

ClosedBy = Literal["Remote", "Local"]


class Core(Protocol):
    """A sans-I/O server core as the runner drives it."""

    def receive_data(self, data: bytes) -> None: ...

    def next_event(self) -> object: ...


@dataclass(frozen=True)
class CoreSignals:
    """How a core says "more bytes", "answer first" and "the client is gone"."""

    need_data: object
    paused: object
    closed: type


class LineSession(Protocol):
    """One protocol session: policy, over a core; :func:`run_session` does its I/O."""

    @property
    def core(self) -> Core: ...

    @property
    def signals(self) -> CoreSignals: ...

    async def begin(self) -> None:
        """Greet the client (the banner), before the first read."""
        ...

    def read_timeout(self) -> float:
        """How long the next read may wait; 0 or less: time is up already."""
        ...

    async def timed_out(self) -> None:
        """Nothing came in time: say so and raise :class:`SessionClosing`."""
        ...

    async def handle(self, event: object) -> None:
        """Answer one event of the core (raise :class:`SessionClosing` to end)."""
        ...

    async def end(self, closed_by: ClosedBy) -> None:
        """The session is over: give up what it holds (a message half received...)."""
        ...


async def run_session(conn: LineConnection, session: LineSession) -> None:
    """Run ``session`` on ``conn`` until the client closes or the session ends it."""
    await session.begin()
    await conn.drain()
    closed_by: ClosedBy = "Remote"
    signals = session.signals
    core = session.core
    try:
        while True:
            event = core.next_event()
            if event is signals.need_data:
                await conn.drain()
                core.receive_data(await _read(conn, session))
                continue
            if event is signals.paused:
                raise AssertionError("the session answers every event before the next")
            if isinstance(event, signals.closed):
                return
            await session.handle(event)
    except SessionClosing:
        closed_by = "Local"
    finally:
        await session.end(closed_by)
        with contextlib.suppress(OSError, ssl.SSLError):
            await conn.drain()


async def _read(conn: LineConnection, session: LineSession) -> bytes:
    timeout = session.read_timeout()
    if timeout > 0:
        try:
            return await conn.read(timeout)
        except TimeoutError:
            pass
    await session.timed_out()
    raise AssertionError("timed_out() must end the session")
