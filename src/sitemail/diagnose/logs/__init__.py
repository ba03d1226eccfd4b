"""Streaming readers for Exchange 2007/2010/2013+ transport logs.

``read_protocol_log(paths)`` yields :class:`ProtocolRow` objects,
``group_sessions(rows)`` turns them into :class:`SmtpSession` objects, and
``read_tracking_rows(paths)`` yields message tracking entries; ``paths`` are
files or folders as Exchange writes them.  Everything is lazy: gigabytes of
logs pass in bounded memory.
"""

from sitemail.diagnose.logs.files import (
    PROTOCOL_KINDS,
    ExchangeLogFile,
    LogKind,
    detect_kind,
    exchange_release,
    find_log_files,
    inspect_log_file,
)
from sitemail.diagnose.logs.protocol import ProtocolRow, read_protocol_file, read_protocol_log
from sitemail.diagnose.logs.sessions import SmtpSession, group_sessions
from sitemail.diagnose.logs.tracking import read_tracking_rows

__all__ = [
    "PROTOCOL_KINDS",
    "ExchangeLogFile",
    "LogKind",
    "ProtocolRow",
    "SmtpSession",
    "detect_kind",
    "exchange_release",
    "find_log_files",
    "group_sessions",
    "inspect_log_file",
    "read_protocol_file",
    "read_protocol_log",
    "read_tracking_rows",
]
