"""The old path of :mod:`sitemail.mailflow.log_files`; delete it once the modules moving on
other branches (the receive server) import the new one."""

from sitemail.mailflow.log_files import (
    LogLimits,
)

__all__ = [
    "LogLimits",
]
