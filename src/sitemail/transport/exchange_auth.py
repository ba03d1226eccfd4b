"""The old path of :mod:`sitemail.mailflow.exchange_auth`; delete it once the modules moving on
other branches (the receive server) import the new one."""

from sitemail.mailflow.exchange_auth import (
    check_blob,
    make_mutual_blob,
)

__all__ = [
    "check_blob",
    "make_mutual_blob",
]
