"""SMTP Receive and SMTP Send protocol logs (exchange-2010.md §4).

One :class:`ProtocolLog` per server and direction: all receive connectors of
a server share one set of files, all send connectors (and the implicit
intra-organization send connector) another (§4.1).  A connection gets a
:class:`SessionLog` from :meth:`ProtocolLog.session`, which numbers its rows
from 0 under a 16-hex-digit session id::

    log = ProtocolLog.receive(receive_log_dir(server_dir), clock=clock)
    s = log.session("EX02\\\\Default EX02", "10.2.0.11:25", "10.1.0.11:41234",
                    level=connector.protocol_logging_level)
    s.connect()
    s.set_session_permissions(["SMTPSubmit", "SMTPAcceptAnySender"])
    s.sent("220 EX02.contoso.com Microsoft ESMTP MAIL Service ready at ...")
    s.received("EHLO EX01.contoso.com")
    s.sent(ehlo_reply_lines)          # one row per reply line
    s.disconnect("Local")

Whether a connector logs is the caller's setting (``ProtocolLoggingLevel``
None|Verbose, per connector); with ``None`` the session is a
:class:`NullSessionLog` that accepts the same calls and writes nothing, so
call sites never branch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from sitemail.clock import SYSTEM_CLOCK, Clock
from sitemail.mailflow.log_files import (
    MB,
    VERSION_2010,
    LogFileSettings,
    LogLimits,
    LogWriter,
    format_timestamp,
)
from sitemail.protocols.smtp.reply import is_last_reply_line, reply_code

PROTOCOL_LOG_FIELDS: tuple[str, ...] = (
    "date-time",
    "connector-id",
    "session-id",
    "sequence-number",
    "local-endpoint",
    "remote-endpoint",
    "event",
    "data",
    "context",
)

RECEIVE_LOG_TYPE = "SMTP Receive Protocol Log"
SEND_LOG_TYPE = "SMTP Send Protocol Log"
RECEIVE_PREFIX = "RECV"
SEND_PREFIX = "SEND"

# The connector-id of the implicit hub-to-hub send connector (§4.1; general
# knowledge, also seen in a third-party log fixture).
INTRA_ORG_SEND_CONNECTOR_ID = "Intra-Organization SMTP Send Connector"

# Folders under a lab server's directory.  DESIGN.md lays the lab out with
# "ProtocolLogs"; a real 2010 server writes "...\Logs\ProtocolLog\SmtpReceive"
# (§4.2).  Both are settings: pass another relative path to the helpers.
RECEIVE_LOG_SUBDIR = Path("TransportRoles", "Logs", "ProtocolLogs", "SmtpReceive")
SEND_LOG_SUBDIR = Path("TransportRoles", "Logs", "ProtocolLogs", "SmtpSend")

# ReceiveProtocolLogMaxFileSize / MaxDirectorySize / MaxAge 2010 defaults (§4.2).
PROTOCOL_LOG_LIMITS = LogLimits(
    max_file_size=10 * MB, max_directory_size=250 * MB, max_age=timedelta(days=30)
)

SESSION_PERMISSIONS_CONTEXT = "Set Session Permissions"
AUTH_INFORMATION = "<authentication information>"


def receive_log_dir(server_dir: Path | str, subdir: Path = RECEIVE_LOG_SUBDIR) -> Path:
    return Path(server_dir) / subdir


def send_log_dir(server_dir: Path | str, subdir: Path = SEND_LOG_SUBDIR) -> Path:
    return Path(server_dir) / subdir


class ProtocolLoggingLevel(StrEnum):
    """``-ProtocolLoggingLevel``: nothing between None and Verbose (§4.1)."""

    NONE = "None"
    VERBOSE = "Verbose"


class ProtocolEvent(StrEnum):
    CONNECT = "+"
    DISCONNECT = "-"
    SEND = ">"
    RECEIVE = "<"
    INFORMATION = "*"


class Direction(StrEnum):
    """Which side of SMTP this log's server plays."""

    RECEIVE = "SmtpReceive"  # server side: commands come in, replies go out
    SEND = "SmtpSend"  # client side: commands go out, replies come in


def protocol_log_settings(
    direction: Direction, limits: LogLimits = PROTOCOL_LOG_LIMITS
) -> LogFileSettings:
    """File settings of a receive or send protocol log (§4.2, §4.3).

    Change other settings (extension, hourly names) with dataclasses.replace.
    """
    if direction is Direction.RECEIVE:
        return LogFileSettings(RECEIVE_PREFIX, RECEIVE_LOG_TYPE, PROTOCOL_LOG_FIELDS, limits)
    return LogFileSettings(SEND_PREFIX, SEND_LOG_TYPE, PROTOCOL_LOG_FIELDS, limits)


# --------------------------------------------------------------------------
# Session ids
# --------------------------------------------------------------------------

_DOTNET_EPOCH = datetime(1, 1, 1, tzinfo=UTC)


def dotnet_ticks(moment: datetime) -> int:
    """100-ns ticks since 0001-01-01, the .NET DateTime representation."""
    delta = moment.astimezone(UTC) - _DOTNET_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10


class SessionIdSource:
    """16-hex-digit session ids like ``08D675E58CA1DA38``.

    Exchange's ids are the .NET ticks of the service start plus a counter,
    which is why consecutive sessions of a real log differ in the last
    digits; the same here, from the first id asked for.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next: int | None = None
        self._offset, self._stride = 0, 1

    def share(self, offset: int, stride: int) -> None:
        """Several processes of one server log into the same files (receive workers).

        Process ``offset`` of ``stride`` takes only ids congruent to ``offset``
        modulo ``stride``, so no two of them ever hand out the same id.
        """
        if not 0 <= offset < stride:
            raise ValueError(f"session id offset {offset} must be below the stride {stride}")
        with self._lock:
            self._offset, self._stride = offset, stride
            self._next = None

    def next_id(self, clock: Clock) -> str:
        with self._lock:
            if self._next is None:
                ticks = dotnet_ticks(clock.now())
                self._next = ticks - ticks % self._stride + self._offset
            value = self._next
            self._next = value + self._stride
        return f"{value & 0xFFFF_FFFF_FFFF_FFFF:016X}"


# One source per process, shared by every log, so ids stay unique across the
# receive and send logs of a server.
SESSION_IDS = SessionIdSource()


# --------------------------------------------------------------------------
# AUTH / X-EXPS redaction (§4.3)
# --------------------------------------------------------------------------


class AuthRedactor:
    """Keeps authentication blobs out of the log, as Exchange does.

    - the command is logged up to its mechanism, a trailing space standing
      for the removed blob: ``X-EXPS EXCHANGEAUTH SHA256 `` (§4.3; the hash
      algorithm is part of the EXCHANGEAUTH mechanism), ``AUTH LOGIN ``;
    - the client's continuation lines (AUTH LOGIN's base64 user name and
      password, NTLM/GSSAPI tokens) are not logged;
    - every 334 reply is logged as ``334 <authentication information>``; a 235
      reply as ``235 <authentication information>`` for EXCHANGEAUTH (whose
      235 carries a blob), verbatim for the other mechanisms (the decompiled
      AuthCommand logs LOGIN's ``235 2.7.0 Authentication successful``).
    """

    __slots__ = ("_active", "_exchange_auth")

    def __init__(self) -> None:
        self._active = False
        self._exchange_auth = False

    def command(self, line: str) -> str | None:
        """The client line to log, or None to log nothing."""
        if self._active:
            return None
        words = line.split(" ")
        verb = words[0].upper()
        if verb not in ("AUTH", "X-EXPS") or len(words) < 2:
            return line
        self._active = True
        self._exchange_auth = words[1].upper() == "EXCHANGEAUTH"
        kept = 3 if self._exchange_auth else 2
        if len(words) <= kept and not self._exchange_auth:
            return line
        return " ".join(words[:kept]) + " "

    def reply(self, line: str) -> str:
        """The server line to log."""
        if not self._active:
            return line
        code = reply_code(line)
        if code == 334:
            return f"334 {AUTH_INFORMATION}"
        if is_last_reply_line(line):
            self._active = False
        if code == 235 and self._exchange_auth:
            return f"235 {AUTH_INFORMATION}"
        return line


# --------------------------------------------------------------------------
# Session loggers
# --------------------------------------------------------------------------


class SessionLog(Protocol):
    """What an SMTP session calls; :class:`NullSessionLog` does nothing."""

    @property
    def session_id(self) -> str: ...

    def set_endpoints(self, local: str | None = None, remote: str | None = None) -> None: ...

    def connect(self, context: str = "") -> None: ...

    def disconnect(self, context: str = "Local") -> None: ...

    def sent(self, text: str | Sequence[str], context: str = "") -> None: ...

    def received(self, text: str | Sequence[str], context: str = "") -> None: ...

    def info(self, data: str = "", context: str = "") -> None: ...

    def set_session_permissions(self, rights: Iterable[str]) -> None: ...


def _reply_lines(text: str | Sequence[str]) -> list[str]:
    """A multi-line reply, as one string with line ends or as lines."""
    if isinstance(text, str):
        lines = text.replace("\r\n", "\n").split("\n")
        if len(lines) > 1 and lines[-1] == "":
            lines.pop()
        return lines
    return [line.rstrip("\r\n") for line in text]


class VerboseSessionLog:
    """The rows of one SMTP session in a protocol log."""

    __slots__ = (
        "_auth",
        "_clock",
        "_direction",
        "_sequence",
        "_writer",
        "connector_id",
        "local_endpoint",
        "remote_endpoint",
        "session_id",
    )

    def __init__(
        self,
        writer: LogWriter,
        direction: Direction,
        clock: Clock,
        connector_id: str,
        session_id: str,
        local_endpoint: str = "",
        remote_endpoint: str = "",
    ) -> None:
        self._writer = writer
        self._direction = direction
        self._clock = clock
        self._sequence = 0
        self._auth = AuthRedactor()
        self.connector_id = connector_id
        self.session_id = session_id
        self.local_endpoint = local_endpoint
        self.remote_endpoint = remote_endpoint

    def set_endpoints(self, local: str | None = None, remote: str | None = None) -> None:
        """Send side: the local endpoint is known only once connected."""
        if local is not None:
            self.local_endpoint = local
        if remote is not None:
            self.remote_endpoint = remote

    def connect(self, context: str = "") -> None:
        self._rows(ProtocolEvent.CONNECT, [""], context)

    def disconnect(self, context: str = "Local") -> None:
        """``Local`` when this server closed the connection, ``Remote`` otherwise."""
        self._rows(ProtocolEvent.DISCONNECT, [""], context)

    def sent(self, text: str | Sequence[str], context: str = "") -> None:
        """What this server wrote: one ``>`` row per line."""
        lines = _reply_lines(text)
        if self._direction is Direction.RECEIVE:
            logged = [self._auth.reply(line) for line in lines]
        else:
            logged = [x for x in map(self._auth.command, lines) if x is not None]
        self._rows(ProtocolEvent.SEND, logged, context)

    def received(self, text: str | Sequence[str], context: str = "") -> None:
        """What the peer wrote: one ``<`` row per line."""
        lines = _reply_lines(text)
        if self._direction is Direction.RECEIVE:
            logged = [x for x in map(self._auth.command, lines) if x is not None]
        else:
            logged = [self._auth.reply(line) for line in lines]
        self._rows(ProtocolEvent.RECEIVE, logged, context)

    def info(self, data: str = "", context: str = "") -> None:
        """An information row (``*``): TLS, certificates, failures..."""
        self._rows(ProtocolEvent.INFORMATION, [data], context)

    def set_session_permissions(self, rights: Iterable[str]) -> None:
        """``*,SMTPSubmit SMTPAcceptAnySender ...,Set Session Permissions``."""
        self.info(" ".join(rights), SESSION_PERMISSIONS_CONTEXT)

    def _rows(self, event: ProtocolEvent, data: Sequence[str], context: str) -> None:
        if not data:
            return
        stamp = format_timestamp(self._clock.now())
        rows = []
        for text in data:
            rows.append(
                (
                    stamp,
                    self.connector_id,
                    self.session_id,
                    str(self._sequence),
                    self.local_endpoint,
                    self.remote_endpoint,
                    event.value,
                    text,
                    context,
                )
            )
            self._sequence += 1
        self._writer.write_rows(rows)


class NullSessionLog:
    """Logging level None: the same calls, no rows."""

    __slots__ = ("session_id",)

    def __init__(self, session_id: str = "") -> None:
        self.session_id = session_id

    def set_endpoints(self, local: str | None = None, remote: str | None = None) -> None:
        pass

    def connect(self, context: str = "") -> None:
        pass

    def disconnect(self, context: str = "Local") -> None:
        pass

    def sent(self, text: str | Sequence[str], context: str = "") -> None:
        pass

    def received(self, text: str | Sequence[str], context: str = "") -> None:
        pass

    def info(self, data: str = "", context: str = "") -> None:
        pass

    def set_session_permissions(self, rights: Iterable[str]) -> None:
        pass


# --------------------------------------------------------------------------
# The log of one server and direction
# --------------------------------------------------------------------------


class ProtocolLog:
    """The SmtpReceive or SmtpSend log files of one server."""

    def __init__(
        self,
        directory: Path | str,
        direction: Direction,
        *,
        clock: Clock = SYSTEM_CLOCK,
        limits: LogLimits = PROTOCOL_LOG_LIMITS,
        settings: LogFileSettings | None = None,
        session_ids: SessionIdSource = SESSION_IDS,
    ) -> None:
        self.direction = direction
        self.clock = clock
        self.writer = LogWriter(
            directory, settings or protocol_log_settings(direction, limits), clock
        )
        self._session_ids = session_ids

    @classmethod
    def receive(
        cls,
        directory: Path | str,
        *,
        clock: Clock = SYSTEM_CLOCK,
        limits: LogLimits = PROTOCOL_LOG_LIMITS,
        version: str = VERSION_2010,
    ) -> ProtocolLog:
        """``version``: the header's ``#Version`` (the server's, org/version_facts.py)."""
        settings = replace(protocol_log_settings(Direction.RECEIVE, limits), version=version)
        return cls(directory, Direction.RECEIVE, clock=clock, settings=settings)

    @classmethod
    def send(
        cls,
        directory: Path | str,
        *,
        clock: Clock = SYSTEM_CLOCK,
        limits: LogLimits = PROTOCOL_LOG_LIMITS,
        version: str = VERSION_2010,
    ) -> ProtocolLog:
        """``version``: the header's ``#Version`` (the server's, org/version_facts.py)."""
        settings = replace(protocol_log_settings(Direction.SEND, limits), version=version)
        return cls(directory, Direction.SEND, clock=clock, settings=settings)

    @property
    def directory(self) -> Path:
        return self.writer.directory

    @property
    def settings(self) -> LogFileSettings:
        return self.writer.settings

    def set_limits(self, limits: LogLimits) -> None:
        """MaxFileSize / MaxDirectorySize / MaxAge changed by Set-TransportServer."""
        self.writer.set_limits(limits)

    def session(
        self,
        connector_id: str,
        local_endpoint: str = "",
        remote_endpoint: str = "",
        *,
        level: ProtocolLoggingLevel | str = ProtocolLoggingLevel.VERBOSE,
        session_id: str | None = None,
    ) -> SessionLog:
        """A logger for one SMTP session on ``connector_id``.

        ``connector_id`` is ``<SERVER>\\<connector name>`` for receive
        connectors and the send connector's name (or
        :data:`INTRA_ORG_SEND_CONNECTOR_ID`) for send logs (§4.3).
        """
        sid = session_id or self._session_ids.next_id(self.clock)
        if ProtocolLoggingLevel(level) is ProtocolLoggingLevel.NONE:
            return NullSessionLog(sid)
        return VerboseSessionLog(
            self.writer,
            self.direction,
            self.clock,
            connector_id,
            sid,
            local_endpoint,
            remote_endpoint,
        )

    def close(self) -> None:
        self.writer.close()


class NullProtocolLog:
    """A log whose path is ``$null``: every session is a :class:`NullSessionLog`."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK, session_ids: SessionIdSource = SESSION_IDS):
        self.clock = clock
        self._session_ids = session_ids

    def session(
        self,
        connector_id: str,
        local_endpoint: str = "",
        remote_endpoint: str = "",
        *,
        level: ProtocolLoggingLevel | str = ProtocolLoggingLevel.VERBOSE,
        session_id: str | None = None,
    ) -> SessionLog:
        return NullSessionLog(session_id or self._session_ids.next_id(self.clock))

    def close(self) -> None:
        pass
