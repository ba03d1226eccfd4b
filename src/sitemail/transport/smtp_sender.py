"""Where :mod:`sitemail.mailflow.smtp_sender` was, for importers on other branches.

The receive server and the lab's Internet host and Exchange 2003 SMTP service are
being moved or split on other branches and still import this path; once they import
:mod:`sitemail.mailflow.smtp_sender`, delete this module
(the mail-flow pieces Mail Submission shares with the hub live there now).
"""

from sitemail.mailflow.smtp_sender import (
    OutboundMessage,
    SenderSettings,
    Target,
    file_body,
    send_message,
)

__all__ = [
    "OutboundMessage",
    "SenderSettings",
    "Target",
    "file_body",
    "send_message",
]
