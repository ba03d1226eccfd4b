"""The old path of :mod:`sitemail.mailflow.send_decision`; delete it once the modules moving on
other branches (the lab's Internet host) import the new one."""

from sitemail.mailflow.send_decision import (
    SendPolicy,
)

__all__ = [
    "SendPolicy",
]
