"""The old path of :mod:`sitemail.mailflow.protocol_log`; delete it once the modules moving on
other branches (the receive server) import the new one."""

from sitemail.mailflow.protocol_log import (
    NullProtocolLog,
    NullSessionLog,
    ProtocolLog,
    SessionLog,
)

__all__ = [
    "NullProtocolLog",
    "NullSessionLog",
    "ProtocolLog",
    "SessionLog",
]
