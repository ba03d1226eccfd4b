"""Where :mod:`sitemail.mailflow.exchange_auth` was, for importers on other branches.

The receive server and the lab's Internet host and Exchange 2003 SMTP service are
being moved or split on other branches and still import this path; once they import
:mod:`sitemail.mailflow.exchange_auth`, delete this module
(the mail-flow pieces Mail Submission shares with the hub live there now).
"""

from sitemail.mailflow.exchange_auth import (
    check_blob,
    make_mutual_blob,
)

__all__ = [
    "check_blob",
    "make_mutual_blob",
]
