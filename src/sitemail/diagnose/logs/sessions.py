"""Grouping protocol log rows into SMTP sessions, in bounded memory.

Rows of concurrent sessions interleave in a log.  A session is emitted when
its ``-`` (disconnect) row arrives; when more than ``max_open_sessions`` are
open, the one that started first is emitted unfinished, and a session longer
than ``max_rows_per_session`` is emitted in parts.  So memory stays bounded
by those two numbers, whatever the size of the logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sitemail.diagnose.logs.files import LogKind
from sitemail.diagnose.logs.protocol import ProtocolRow
from sitemail.mailflow.protocol_log import ProtocolEvent

DEFAULT_MAX_OPEN_SESSIONS = 10_000
DEFAULT_MAX_ROWS_PER_SESSION = 10_000

_DISCONNECT = ProtocolEvent.DISCONNECT.value


@dataclass(slots=True)
class SmtpSession:
    """The rows of one SMTP session, in log order.

    ``complete`` is True when the session's disconnect row was seen;
    ``continued`` when earlier rows of it were emitted as another part.
    """

    kind: LogKind
    connector_id: str
    session_id: str
    rows: list[ProtocolRow] = field(default_factory=list)
    complete: bool = False
    continued: bool = False

    @property
    def local_endpoint(self) -> str:
        return next((r.local_endpoint for r in self.rows if r.local_endpoint), "")

    @property
    def remote_endpoint(self) -> str:
        return next((r.remote_endpoint for r in self.rows if r.remote_endpoint), "")

    @property
    def start(self) -> datetime | None:
        return self.rows[0].timestamp if self.rows else None

    @property
    def end(self) -> datetime | None:
        return self.rows[-1].timestamp if self.rows else None

    def lines(self, event: str | None = None) -> list[str]:
        """The data of its rows, or of the rows with one event character."""
        return [r.data for r in self.rows if event is None or r.event == event]


def group_sessions(
    rows: Iterable[ProtocolRow],
    *,
    max_open_sessions: int = DEFAULT_MAX_OPEN_SESSIONS,
    max_rows_per_session: int = DEFAULT_MAX_ROWS_PER_SESSION,
) -> Iterator[SmtpSession]:
    """Sessions from rows, each emitted as soon as it is finished.

    Sessions are told apart by log kind, connector-id and session-id.
    """
    if max_open_sessions < 1 or max_rows_per_session < 1:
        raise ValueError("max_open_sessions and max_rows_per_session must be at least 1")
    # Keyed by session-id alone (a string: cheap to hash); a session-id seen
    # again with another kind or connector is rare enough for a slow path.
    # dicts keep insertion order: the first key is the oldest open session.
    open_sessions: dict[str | tuple[LogKind, str, str], SmtpSession] = {}
    for row in rows:
        values = row.values
        key: str | tuple[LogKind, str, str] = values[2]
        session = open_sessions.get(key)
        if session is not None and (
            session.connector_id != values[1] or session.kind is not row.kind
        ):
            key = (row.kind, values[1], values[2])
            session = open_sessions.get(key)
        if session is None:
            session = SmtpSession(row.kind, values[1], values[2])
            open_sessions[key] = session
            if len(open_sessions) > max_open_sessions:
                oldest = open_sessions.pop(next(iter(open_sessions)))
                if oldest.rows:
                    yield oldest
        session.rows.append(row)
        if values[6] == _DISCONNECT:
            del open_sessions[key]
            session.complete = True
            yield session
        elif len(session.rows) >= max_rows_per_session:
            del open_sessions[key]
            yield session
            open_sessions[key] = SmtpSession(row.kind, values[1], values[2], continued=True)
    # Unfinished sessions (the log ended, or was cut) come last.
    yield from (s for s in open_sessions.values() if s.rows)
